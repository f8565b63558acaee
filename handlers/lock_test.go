package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type lockAcquired struct {
	Token     string `json:"token"`
	Fence     int64  `json:"fence"`
	TTLMs     int64  `json:"ttl_ms"`
	ExpiresAt string `json:"expires_at"`
}

type lockLease struct {
	TTLMs     int64  `json:"ttl_ms"`
	ExpiresAt string `json:"expires_at"`
	Fence     int64  `json:"fence"`
}

func withToken(token string) map[string]string { return map[string]string{"Lock-Token": token} }

func TestLockLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		resp := g.must(request{method: "POST", path: "/lock/job%2F1"}, http.StatusCreated)
		a := decode[lockAcquired](t, "POST /lock/job%2F1", resp.body)
		// 26 base32 characters carry 130 random bits.
		if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(a.Token) {
			t.Errorf("token %q is not 26 base32 characters (130 bits)", a.Token)
		}
		if a.Fence < 1 || a.TTLMs != 30000 {
			t.Errorf("acquired %+v, want fence ≥ 1 and the default ttl_ms 30000", a)
		}
		if resp.header.Get("Cache-Control") != "no-store" {
			t.Errorf("the answer carrying the token lacks Cache-Control: no-store")
		}
		expires, err := time.Parse(time.RFC3339, a.ExpiresAt)
		if now := redisNow(t, b); err != nil || expires.Before(now.Add(29*time.Second)) || expires.After(now.Add(30*time.Second)) {
			t.Errorf("expires_at = %q (%v), want Redis's now + 30s", a.ExpiresAt, err)
		}
		if d := b.rdb.PTTL(t.Context(), "lock:{job/1}").Val(); d <= 25*time.Second || d > 30*time.Second {
			t.Errorf("PTTL of lock:{job/1} = %v, want 30s", d)
		}

		state := g.must(request{method: "GET", path: "/lock/job%2F1"}, http.StatusOK)
		st := decode[struct {
			Locked bool  `json:"locked"`
			TTLMs  int64 `json:"ttl_ms"`
		}](t, "GET /lock/job%2F1", state.body)
		if !st.Locked || st.TTLMs <= 29000 || st.TTLMs > 30000 || strings.Contains(state.body, a.Token) {
			t.Errorf("GET /lock/job%%2F1 = %s, want locked, ttl_ms ≈ 30000 and no token", state.body)
		}

		// Held: the second acquirer is refused at once, told when to retry.
		held := g.must(request{method: "POST", path: "/lock/job%2F1?ttl=5"}, http.StatusConflict)
		if ra, err := strconv.Atoi(held.header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
			t.Errorf("409: Retry-After = %q, want the holder's remaining 1..30 s", held.header.Get("Retry-After"))
		}
		if !strings.Contains(held.body, "lock-held") {
			t.Errorf("409 body = %s, want problem type lock-held", held.body)
		}

		refreshed := decode[lockLease](t, "refresh", g.must(request{method: "POST", path: "/lock/job%2F1/refresh?ttl_ms=60000", header: withToken(a.Token)}, http.StatusOK).body)
		if refreshed.TTLMs != 60000 || refreshed.Fence != a.Fence {
			t.Errorf("refresh ttl_ms=60000 = %+v, want ttl_ms 60000 and fence %d", refreshed, a.Fence)
		}
		// Without a ttl, a refresh restores the lease's last length.
		b.elapse(1100 * time.Millisecond)
		again := decode[lockLease](t, "refresh", g.must(request{method: "POST", path: "/lock/job%2F1/refresh", header: withToken(a.Token)}, http.StatusOK).body)
		if again.TTLMs != 60000 {
			t.Errorf("refresh without ttl: ttl_ms = %d, want the last lease, 60000", again.TTLMs)
		}
		if d := b.rdb.PTTL(t.Context(), "lock:{job/1}").Val(); d <= 55*time.Second {
			t.Errorf("PTTL after refresh = %v, want 60s again", d)
		}

		g.must(request{method: "DELETE", path: "/lock/job%2F1", header: withToken("not-the-token")}, http.StatusConflict)
		g.must(request{method: "POST", path: "/lock/job%2F1/refresh", header: withToken("not-the-token")}, http.StatusConflict)
		g.must(request{method: "DELETE", path: "/lock/job%2F1", header: withToken(a.Token)}, http.StatusNoContent)
		g.must(request{method: "GET", path: "/lock/job%2F1"}, http.StatusNotFound)
		g.must(request{method: "DELETE", path: "/lock/job%2F1", header: withToken(a.Token)}, http.StatusNotFound)
		g.must(request{method: "POST", path: "/lock/job%2F1/refresh", header: withToken(a.Token)}, http.StatusNotFound)

		// The fence survives the release.
		next := decode[lockAcquired](t, "re-acquire", g.must(request{method: "POST", path: "/lock/job%2F1?ttl_ms=1500"}, http.StatusCreated).body)
		if next.Fence != a.Fence+1 || next.TTLMs != 1500 || next.Token == a.Token {
			t.Errorf("re-acquired %+v, want fence %d, ttl_ms 1500 and a new token", next, a.Fence+1)
		}
	})
}

// A lease that ran out belongs to nobody: another client takes the lock, and
// the old token can neither refresh nor release it.
func TestLockExpiredIsTakenOver(t *testing.T) {
	forEachClock(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		old := decode[lockAcquired](t, "first", g.must(request{method: "POST", path: "/lock/l?ttl_ms=300"}, http.StatusCreated).body)
		b.elapse(400 * time.Millisecond)
		g.must(request{method: "GET", path: "/lock/l"}, http.StatusNotFound)
		g.must(request{method: "POST", path: "/lock/l/refresh", header: withToken(old.Token)}, http.StatusNotFound)

		successor := decode[lockAcquired](t, "second", g.must(request{method: "POST", path: "/lock/l"}, http.StatusCreated).body)
		if successor.Fence <= old.Fence {
			t.Errorf("the successor's fence %d is not above the expired holder's %d", successor.Fence, old.Fence)
		}
		g.must(request{method: "POST", path: "/lock/l/refresh", header: withToken(old.Token)}, http.StatusConflict)
		g.must(request{method: "DELETE", path: "/lock/l", header: withToken(old.Token)}, http.StatusConflict)
		g.must(request{method: "GET", path: "/lock/l"}, http.StatusOK)
		g.must(request{method: "DELETE", path: "/lock/l", header: withToken(successor.Token)}, http.StatusNoContent)
	})
}

// With ?wait, an acquirer gets the lock as soon as the holder lets go, or a
// 409 once the wait is over.
func TestLockWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		holder := decode[lockAcquired](t, "holder", g.must(request{method: "POST", path: "/lock/w"}, http.StatusCreated).body)

		start := time.Now()
		g.must(request{method: "POST", path: "/lock/w?wait=0.3"}, http.StatusConflict)
		// The lower bound is the point; the upper one only catches a wait
		// that ignores ?wait, with room for a busy machine.
		if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("wait=0.3 answered 409 after %v, want after about 300ms", d)
		}

		releasing := make(chan time.Time, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			releasing <- time.Now()
			resp, err := g.call(request{method: "DELETE", path: "/lock/w", header: withToken(holder.Token)})
			if err != nil || resp.status != http.StatusNoContent {
				t.Errorf("DELETE /lock/w by its holder: %v %d", err, resp.status)
			}
		}()
		start = time.Now()
		waiter := decode[lockAcquired](t, "waiter", g.must(request{method: "POST", path: "/lock/w?wait=1.5"}, http.StatusCreated).body)
		got := time.Now()
		// 201 within its 1.5 s wait, and only after the release: the waiter
		// was woken by it, not by its own deadline.
		if rel := <-releasing; got.Before(rel) {
			t.Errorf("the waiter got the lock %v after asking, %v after its release began; want after the release", got.Sub(start), got.Sub(rel))
		}
		if waiter.Fence != holder.Fence+1 {
			t.Errorf("waiter's fence = %d, want %d", waiter.Fence, holder.Fence+1)
		}
	})
}

// Many acquirers of one name over many rounds: never two holders at once,
// and fences strictly increasing in the order the lock was held.
func TestLockMutualExclusion(t *testing.T) {
	forEachServer(t, testLockMutualExclusion)
}

func testLockMutualExclusion(t *testing.T, b backend) {
	g := startGateway(t, b)
	const workers, rounds = 50, 8
	type holding struct {
		from, to time.Time
		fence    int64
	}
	var (
		mu        sync.Mutex
		holdings  []holding
		inside    atomic.Int32
		conflicts atomic.Int32
		wg        sync.WaitGroup
	)
	stop := time.Now().Add(60 * time.Second)
	for w := range workers {
		wg.Go(func() {
			for held := 0; held < rounds; {
				if time.Now().After(stop) {
					t.Errorf("worker %d: held the lock %d of %d times before the test's time ran out", w, held, rounds)
					return
				}
				resp, err := g.call(request{method: "POST", path: "/lock/shared?ttl=10&wait=1.5"})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.status == http.StatusConflict {
					conflicts.Add(1)
					continue
				}
				if resp.status != http.StatusCreated {
					t.Errorf("worker %d: POST /lock/shared: status = %d, want 201 or 409; body %s", w, resp.status, resp.body)
					return
				}
				from := time.Now()
				if n := inside.Add(1); n != 1 {
					t.Errorf("worker %d: %d holders inside the critical section at once", w, n)
				}
				var a lockAcquired
				if err := json.Unmarshal([]byte(resp.body), &a); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Millisecond) // work under the lock
				inside.Add(-1)
				to := time.Now()
				resp, err = g.call(request{method: "DELETE", path: "/lock/shared", header: withToken(a.Token)})
				if err != nil || resp.status != http.StatusNoContent {
					t.Errorf("worker %d: DELETE /lock/shared: %v %d, want 204", w, err, resp.status)
					return
				}
				mu.Lock()
				holdings = append(holdings, holding{from: from, to: to, fence: a.Fence})
				mu.Unlock()
				held++
			}
		})
	}
	wg.Wait()

	sort.Slice(holdings, func(i, j int) bool { return holdings[i].from.Before(holdings[j].from) })
	for i := 1; i < len(holdings); i++ {
		prev, cur := holdings[i-1], holdings[i]
		if cur.from.Before(prev.to) {
			t.Errorf("holdings overlap: fence %d held %v..%v, fence %d from %v", prev.fence, prev.from, prev.to, cur.fence, cur.from)
		}
		if cur.fence <= prev.fence {
			t.Errorf("fence %d was held after fence %d: fences must increase with every acquisition", cur.fence, prev.fence)
		}
	}
	if n := len(holdings); n != workers*rounds || holdings[n-1].fence-holdings[0].fence != int64(n-1) {
		t.Errorf("%d holdings with fences %d..%d, want %d consecutive fences", n, holdings[0].fence, holdings[n-1].fence, workers*rounds)
	}
	t.Logf("%d workers × %d rounds: %d holdings, %d acquisitions timed out waiting (409)", workers, rounds, len(holdings), conflicts.Load())
}

func TestLockBadInput(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	token := withToken("x")
	tests := []struct {
		name string
		req  request
	}{
		{"ttl and ttl_ms", request{method: "POST", path: "/lock/n?ttl=5&ttl_ms=5000"}},
		{"ttl zero", request{method: "POST", path: "/lock/n?ttl=0"}},
		{"ttl_ms fractional", request{method: "POST", path: "/lock/n?ttl_ms=1.5"}},
		{"ttl_ms above MAX_TTL", request{method: "POST", path: "/lock/n?ttl_ms=2592000001"}},
		{"wait text", request{method: "POST", path: "/lock/n?wait=abc"}},
		{"wait negative", request{method: "POST", path: "/lock/n?wait=-1"}},
		{"wait exponent", request{method: "POST", path: "/lock/n?wait=1e-1"}},
		{"wait two dots", request{method: "POST", path: "/lock/n?wait=0.1.2"}},
		{"wait above the request timeout", request{method: "POST", path: "/lock/n?wait=2.5"}},
		{"refresh without token", request{method: "POST", path: "/lock/n/refresh"}},
		{"release without token", request{method: "DELETE", path: "/lock/n"}},
		{"token in the URL", request{method: "DELETE", path: "/lock/n?token=x", header: token}},
		{"refresh ttl and ttl_ms", request{method: "POST", path: "/lock/n/refresh?ttl=1&ttl_ms=1", header: token}},
		{"name too long", request{method: "POST", path: "/lock/" + strings.Repeat("n", 1025)}},
	}
	for _, tt := range tests {
		resp := g.do(tt.req)
		if resp.status != http.StatusBadRequest {
			t.Errorf("%s: %s %.40s: status = %d, want 400; body %s", tt.name, tt.req.method, tt.req.path, resp.status, resp.body)
		}
	}
	resp := g.must(request{method: "POST", path: "/lock/n?wait=3"}, http.StatusBadRequest)
	if !strings.Contains(resp.body, "REQUEST_TIMEOUT") {
		t.Errorf("a wait above the request timeout: %s, want the limit named", resp.body)
	}
	// Fractional and whole waits within the limit are fine.
	for _, wait := range []string{"0", "0.25", ".5", "2"} {
		path := fmt.Sprintf("/lock/n%s?wait=%s&ttl_ms=1", strings.ReplaceAll(wait, ".", "d"), wait)
		g.must(request{method: "POST", path: path}, http.StatusCreated)
	}
}
