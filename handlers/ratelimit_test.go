package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/handlers"
)

type decision struct {
	Allowed    bool  `json:"allowed"`
	Limit      int64 `json:"limit"`
	Remaining  int64 `json:"remaining"`
	Reset      int64 `json:"reset"`
	RetryAfter int64 `json:"retry_after"`
	Count      int64 `json:"count"`
	Burst      int64 `json:"burst"`
}

func decode[T any](t *testing.T, what, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, body)
	}
	return v
}

func TestRateLimitFixedWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		const path = "/ratelimit/api/incr?limit=2&window=10"
		for i, want := range []int{200, 200, 429, 429} {
			resp := g.must(request{method: "POST", path: path}, want)
			d := decode[decision](t, "POST "+path, resp.body)
			wantRemaining := max(0, 2-int64(i+1))
			if d.Allowed != (want == 200) || d.Limit != 2 || d.Count != int64(i+1) || d.Remaining != wantRemaining {
				t.Errorf("call %d: %+v, want allowed=%v limit=2 count=%d remaining=%d", i+1, d, want == 200, i+1, wantRemaining)
			}
			if d.Reset < 1 || d.Reset > 10 {
				t.Errorf("call %d: reset = %d, want 1..10", i+1, d.Reset)
			}
			h := resp.header
			if got := h.Get("RateLimit-Policy"); got != `"default";q=2;w=10` {
				t.Errorf("call %d: RateLimit-Policy = %q", i+1, got)
			}
			if got, want := h.Get("RateLimit"), `"default";r=`+strconv.FormatInt(wantRemaining, 10)+";t="+strconv.FormatInt(d.Reset, 10); got != want {
				t.Errorf("call %d: RateLimit = %q, want %q", i+1, got, want)
			}
			if h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Remaining") != strconv.FormatInt(wantRemaining, 10) ||
				h.Get("X-RateLimit-Reset") != strconv.FormatInt(d.Reset, 10) {
				t.Errorf("call %d: legacy headers %v", i+1, h)
			}
			switch want {
			case 200:
				if h.Get("Retry-After") != "" || d.RetryAfter != 0 {
					t.Errorf("call %d allowed, but Retry-After %q / retry_after %d", i+1, h.Get("Retry-After"), d.RetryAfter)
				}
			case 429:
				ra, err := strconv.Atoi(h.Get("Retry-After"))
				if err != nil || ra < 1 || int64(ra) < d.Reset || int64(ra) != d.RetryAfter {
					t.Errorf("call %d denied: Retry-After %q, retry_after %d, reset %d; want equal and ≥ 1", i+1, h.Get("Retry-After"), d.RetryAfter, d.Reset)
				}
			}
		}

		peek := decode[decision](t, "peek", g.must(request{method: "GET", path: "/ratelimit/api?limit=2&window=10"}, http.StatusOK).body)
		if peek.Allowed || peek.Count != 4 {
			t.Errorf("peek after 4 calls: %+v, want allowed=false count=4", peek)
		}
		g.must(request{method: "DELETE", path: "/ratelimit/api"}, http.StatusNoContent)
		peek = decode[decision](t, "peek", g.must(request{method: "GET", path: "/ratelimit/api?limit=2&window=10"}, http.StatusOK).body)
		if !peek.Allowed || peek.Count != 0 || peek.Remaining != 2 {
			t.Errorf("peek after reset: %+v, want allowed count=0 remaining=2", peek)
		}
		if n := b.rdb.Exists(context.Background(), "ratelimit:{api}").Val(); n != 0 {
			t.Errorf("peek created the counter key")
		}
	})
}

func TestRateLimitWindowEnds(t *testing.T) {
	forEachClock(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		const path = "/ratelimit/w/incr?limit=1&window=1"
		g.must(request{method: "POST", path: path}, http.StatusOK)
		g.must(request{method: "POST", path: path}, http.StatusTooManyRequests)
		b.elapse(1100 * time.Millisecond)
		g.must(request{method: "POST", path: path}, http.StatusOK)
	})
}

func TestRateLimitCounterWindowIsNotExtended(t *testing.T) {
	forEachClock(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		first := decode[struct{ Count, Reset int64 }](t, "incr", g.must(request{method: "POST", path: "/ratelimit/c/incr?window=3"}, http.StatusOK).body)
		if first.Count != 1 || first.Reset != 3 {
			t.Errorf("first incr = %+v, want count 1 reset 3", first)
		}
		b.elapse(1200 * time.Millisecond)
		second := decode[struct{ Count, Reset int64 }](t, "incr", g.must(request{method: "POST", path: "/ratelimit/c/incr?window=3&cost=5"}, http.StatusOK).body)
		if second.Count != 6 || second.Reset != 2 {
			t.Errorf("second incr = %+v, want count 6 and reset 2 (the window is not pushed back)", second)
		}
		if d := b.rdb.PTTL(ctx, "ratelimit:{c}").Val(); d > 1900*time.Millisecond {
			t.Errorf("PTTL = %v after a later increment, want the original window's remainder", d)
		}
	})
}

func TestRateLimitCost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		g.must(request{method: "POST", path: "/ratelimit/k/incr?limit=5&cost=3"}, http.StatusOK)
		peek := decode[decision](t, "peek", g.must(request{method: "GET", path: "/ratelimit/k?limit=5&cost=3"}, http.StatusOK).body)
		if peek.Allowed || peek.Remaining != 2 {
			t.Errorf("peek cost=3 with 2 left: %+v, want not allowed, remaining 2", peek)
		}
		peek = decode[decision](t, "peek", g.must(request{method: "GET", path: "/ratelimit/k?limit=5&cost=2"}, http.StatusOK).body)
		if !peek.Allowed {
			t.Errorf("peek cost=2 with 2 left: %+v, want allowed", peek)
		}
		d := decode[decision](t, "incr", g.must(request{method: "POST", path: "/ratelimit/k/incr?limit=5&cost=3"}, http.StatusTooManyRequests).body)
		if d.Count != 6 {
			t.Errorf("fixed windows count denied calls too: count = %d, want 6", d.Count)
		}
	})
}

// redisNow is Redis's clock, which the limiters go by.
func redisNow(t *testing.T, b backend) time.Time {
	t.Helper()
	now, err := b.rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	return now
}

// windowOffset is how far into its window (aligned to Redis's clock, as the
// sliding limiter aligns them) the moment now is.
func windowOffset(now time.Time, window time.Duration) time.Duration {
	return time.Duration(now.UnixMilli()%window.Milliseconds()) * time.Millisecond
}

// ceilSeconds is what the gateway reports for a duration of ms milliseconds.
func ceilSeconds(ms int64) int64 { return (ms + 999) / 1000 }

// checkDenied holds a 429 to the contract: Retry-After equals retry_after,
// at least 1, and the reset the headers report names the same moment.
func checkDenied(t *testing.T, what string, resp response, d decision) {
	t.Helper()
	ra, err := strconv.ParseInt(resp.header.Get("Retry-After"), 10, 64)
	if err != nil || ra < 1 || ra != d.RetryAfter {
		t.Errorf("%s: Retry-After %q, retry_after %d; want equal and ≥ 1", what, resp.header.Get("Retry-After"), d.RetryAfter)
	}
	if d.Reset != d.RetryAfter || resp.header.Get("X-RateLimit-Reset") != strconv.FormatInt(d.Reset, 10) {
		t.Errorf("%s: reset %d, X-RateLimit-Reset %q; want both = retry_after %d", what, d.Reset, resp.header.Get("X-RateLimit-Reset"), d.RetryAfter)
	}
	if want := `"default";r=` + strconv.FormatInt(d.Remaining, 10) + ";t=" + strconv.FormatInt(d.Reset, 10); resp.header.Get("RateLimit") != want {
		t.Errorf("%s: RateLimit = %q, want %q", what, resp.header.Get("RateLimit"), want)
	}
}

// The sliding window counts the previous window by how much of it the
// sliding window still covers, measured on Redis's clock.
func TestRateLimitSlidingWindowBoundary(t *testing.T) {
	forEachClock(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		const window = time.Second
		// The eleven calls below must fall in one window. On a busy machine
		// they can run on into the next, where other counts hold: Redis's
		// clock says when, and the window is then tried again on a key of
		// its own.
		var path string
		for attempt := 1; ; attempt++ {
			path = "/ratelimit/s" + strconv.Itoa(attempt) + "/incr?algorithm=sliding&limit=10&window=1"
			b.elapse(window - windowOffset(redisNow(t, b), window)) // the beginning of a window
			start := redisNow(t, b)
			var allowed [10]decision
			for i := range allowed {
				allowed[i] = decode[decision](t, "POST "+path, g.must(request{method: "POST", path: path}, http.StatusOK).body)
			}
			// Denied: only the next window has room, once this window's 10
			// weigh 9 or less, 100ms into it.
			before := windowOffset(redisNow(t, b), window).Milliseconds()
			resp := g.must(request{method: "POST", path: path}, http.StatusTooManyRequests)
			end := redisNow(t, b)
			if end.Sub(start) >= window-windowOffset(start, window) {
				if attempt == 5 {
					t.Fatalf("five times the calls of one window ran on into the next: the machine is too busy for this test")
				}
				t.Logf("attempt %d: the calls took %v, past the end of their window; again", attempt, end.Sub(start))
				continue
			}
			for i, d := range allowed {
				if n := int64(i + 1); !d.Allowed || d.Count != n || d.Remaining != 10-n || d.Limit != 10 {
					t.Errorf("call %d: %+v, want allowed count=%d remaining=%d", n, d, n, 10-n)
				}
				if d.Reset < 1 || d.Reset > 2 {
					t.Errorf("call %d: reset = %d, want 1..2 (this window's rest plus the next, while it weighs in)", i+1, d.Reset)
				}
			}
			after := windowOffset(end, window).Milliseconds()
			d := decode[decision](t, "11th call", resp.body)
			checkDenied(t, "11th call", resp, d)
			if lo, hi := ceilSeconds(1100-after), ceilSeconds(1100-before); d.RetryAfter < lo || d.RetryAfter > hi {
				t.Errorf("11th call at %d..%dms into the window: retry_after = %d, want %d..%d", before, after, d.RetryAfter, lo, hi)
			}
			break
		}

		// Halfway through the next window the previous one weighs half: 5.
		now := redisNow(t, b)
		b.elapse(window + window/2 - windowOffset(now, window))
		first := redisNow(t, b)
		before := windowOffset(first, window).Milliseconds()
		allowed := 0
		for range 10 {
			if g.do(request{method: "POST", path: path}).status == http.StatusOK {
				allowed++
			}
		}
		// From the start of the same window: on a slow machine the calls can
		// run on into the window after it, where the previous window no
		// longer holds them back.
		after := before + redisNow(t, b).Sub(first).Milliseconds()
		// With the previous window weighing 10·(1000-e)/1000 at offset e, at
		// most 10 - ceil(weight) calls fit.
		lo, hi := 10-int(ceilDiv(10*(1000-before), 1000)), 10
		if after < 1000 {
			hi = 10 - int(ceilDiv(10*(1000-after), 1000))
		}
		if allowed < lo || allowed > hi {
			t.Errorf("10 calls %d..%dms into the next window: %d allowed, want %d..%d", before, after, allowed, lo, hi)
		}
	})
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// GCRA admits a burst at once, then one call per emission interval
// (window / limit).
func TestRateLimitGCRA(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		// 2 per 2 s: one call per second, up to 3 at once.
		const path = "/ratelimit/g/incr?algorithm=gcra&limit=2&window=2&burst=3"
		start := redisNow(t, b)
		for i := 1; i <= 3; i++ {
			resp := g.must(request{method: "POST", path: path}, http.StatusOK)
			d := decode[decision](t, "POST "+path, resp.body)
			if !d.Allowed || d.Limit != 2 || d.Burst != 3 || d.Remaining != int64(3-i) || d.Count != int64(i) || d.Reset != int64(i) {
				t.Errorf("call %d: %+v, want allowed limit=2 burst=3 remaining=%d count=%d reset=%d", i, d, 3-i, i, i)
			}
			if got := resp.header.Get("RateLimit-Policy"); got != `"default";q=2;w=2` {
				t.Errorf("call %d: RateLimit-Policy = %q", i, got)
			}
		}
		resp := g.must(request{method: "POST", path: path}, http.StatusTooManyRequests)
		d := decode[decision](t, "4th call", resp.body)
		checkDenied(t, "4th call", resp, d)
		if d.RetryAfter != 1 || d.Remaining != 0 || d.Count != 3 {
			t.Errorf("4th call: %+v, want retry_after 1 (one emission interval), remaining 0, count 3", d)
		}
		peek := decode[decision](t, "peek", g.must(request{method: "GET", path: "/ratelimit/g?algorithm=gcra&limit=2&window=2&burst=3"}, http.StatusOK).body)
		if peek.Allowed || peek.Remaining != 0 {
			t.Errorf("peek with the bucket full: %+v, want not allowed", peek)
		}

		b.elapse(time.Second)
		g.must(request{method: "POST", path: path}, http.StatusOK)
		// One interval drained: one call fitted, and a second fits only once
		// 2 s have passed since the first call, which on a real server a
		// slow machine can take. Redis's clock says which.
		status := g.do(request{method: "POST", path: path}).status
		if took := redisNow(t, b).Sub(start); took < 2*time.Second && status != http.StatusTooManyRequests {
			t.Errorf("a call %v after the first, one interval after the bucket was full: status %d, want 429", took, status)
		}
	})
}

func TestRateLimitGCRABurstAndRate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		tests := []struct {
			name      string
			path      string
			admitted  int
			deny      string // cost of the call that must then be denied
			wantRetry int64
		}{
			// A burst larger than the rate: 5 at once, then one per 10 s.
			{"burst above limit", "/ratelimit/a/incr?algorithm=gcra&limit=1&window=10&burst=5", 5, "1", 10},
			// A burst of 1 smooths everything: one per 10 s, an interval
			// no pause of a busy machine between two calls outlasts.
			{"burst of one", "/ratelimit/b/incr?algorithm=gcra&limit=6&window=60&burst=1", 1, "1", 10},
			// burst defaults to limit.
			{"default burst", "/ratelimit/c/incr?algorithm=gcra&limit=4&window=60", 4, "1", 15},
			// A cost above the rate but within the burst is admitted, and
			// weighs 3 emission intervals of 30 s.
			{"cost within burst", "/ratelimit/d/incr?algorithm=gcra&limit=2&window=60&burst=6&cost=3", 2, "3", 90},
			// Exact with numbers past 14 digits: the bucket holds 3.6e15 units.
			{"large burst", "/ratelimit/e/incr?algorithm=gcra&limit=1&window=3600&burst=1000000000&cost=1000000000", 1, "1", 3600},
		}
		for _, tt := range tests {
			start := redisNow(t, b)
			for range tt.admitted {
				g.must(request{method: "POST", path: tt.path}, http.StatusOK)
			}
			base, _, _ := strings.Cut(tt.path, "&cost=")
			resp := g.must(request{method: "POST", path: base + "&cost=" + tt.deny}, http.StatusTooManyRequests)
			// The wait shrinks by the time the calls took, which a busy
			// machine can stretch past a second: Redis's clock says how far.
			took := ceilSeconds(redisNow(t, b).Sub(start).Milliseconds())
			d := decode[decision](t, tt.name, resp.body)
			checkDenied(t, tt.name, resp, d)
			if d.RetryAfter > tt.wantRetry || d.RetryAfter < tt.wantRetry-took {
				t.Errorf("%s: retry_after = %d, want %d (less at most the %d s the calls took)", tt.name, d.RetryAfter, tt.wantRetry, took)
			}
		}
	})
}

// Each algorithm keeps its own state under the same key, and DELETE resets
// them all.
func TestRateLimitAlgorithmsKeepApartAndResetTogether(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b, withKeyPrefix("p:"))
		ctx := context.Background()
		for _, alg := range []string{"fixed", "sliding", "gcra"} {
			path := "/ratelimit/k/incr?limit=1&window=60&algorithm=" + alg
			g.must(request{method: "POST", path: path}, http.StatusOK)
			g.must(request{method: "POST", path: path}, http.StatusTooManyRequests)
		}
		keys := []string{"p:ratelimit:{k}", "p:ratelimit:{k}:sliding", "p:ratelimit:{k}:gcra"}
		if n := b.rdb.Exists(ctx, keys...).Val(); n != 3 {
			t.Errorf("%d of the keys %v exist, want all 3", n, keys)
		}
		g.must(request{method: "DELETE", path: "/ratelimit/k"}, http.StatusNoContent)
		if n := b.rdb.Exists(ctx, keys...).Val(); n != 0 {
			t.Errorf("%d of the keys %v exist after DELETE, want none", n, keys)
		}
		for _, alg := range []string{"fixed", "sliding", "gcra"} {
			g.must(request{method: "POST", path: "/ratelimit/k/incr?limit=1&window=60&algorithm=" + alg}, http.StatusOK)
		}
	})
}

// Peeking consumes nothing and writes nothing, whatever the algorithm.
func TestRateLimitPeekConsumesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		for _, alg := range []string{"sliding", "gcra"} {
			peek := "/ratelimit/" + alg + "?limit=2&window=60&algorithm=" + alg
			for range 3 {
				d := decode[decision](t, "peek", g.must(request{method: "GET", path: peek}, http.StatusOK).body)
				if !d.Allowed || d.Remaining != 2 || d.Count != 0 {
					t.Errorf("%s: peek on a fresh limiter = %+v, want allowed remaining=2 count=0", alg, d)
				}
			}
			if n := b.rdb.DBSize(ctx).Val(); n != 0 {
				t.Errorf("%s: peeks wrote %d keys", alg, n)
			}
			incr := "/ratelimit/" + alg + "/incr?limit=2&window=60&algorithm=" + alg
			g.must(request{method: "POST", path: incr}, http.StatusOK)
			g.must(request{method: "POST", path: incr}, http.StatusOK)
			d := decode[decision](t, "peek", g.must(request{method: "GET", path: peek}, http.StatusOK).body)
			if d.Allowed || d.Remaining != 0 || d.Count != 2 || d.RetryAfter < 1 {
				t.Errorf("%s: peek on a used-up limiter = %+v, want not allowed, count 2, retry_after ≥ 1", alg, d)
			}
			g.must(request{method: "DELETE", path: "/ratelimit/" + alg}, http.StatusNoContent)
		}
	})
}

// With RATELIMIT_FAIL_OPEN, a limiter Redis cannot answer for allows the
// call and says so; without it, the answer is 503.
func TestRateLimitFailOpen(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := miniBackend(t)
	open := startGateway(t, b, withConfig(func(c *handlers.Config) { c.RateLimitFailOpen = true; c.Registry = reg }))
	closed := startGateway(t, b)
	open.must(request{method: "POST", path: "/ratelimit/k/incr?limit=1"}, http.StatusOK)
	open.must(request{method: "POST", path: "/ratelimit/k/incr?limit=1"}, http.StatusTooManyRequests)
	b.stop()

	for _, alg := range []string{"fixed", "sliding", "gcra"} {
		incr := "/ratelimit/k/incr?limit=3&cost=2&algorithm=" + alg
		resp := open.must(request{method: "POST", path: incr}, http.StatusOK)
		if got := resp.header.Get("RateLimit-Degraded"); got != "redis-unavailable" {
			t.Errorf("%s: RateLimit-Degraded = %q, want redis-unavailable", alg, got)
		}
		d := decode[decision](t, "degraded "+alg, resp.body)
		if !d.Allowed || d.Limit != 3 || d.Remaining != 1 || d.Count != 2 || d.RetryAfter != 0 {
			t.Errorf("%s: degraded answer %+v, want allowed limit=3 remaining=1 count=2", alg, d)
		}
		peek := open.must(request{method: "GET", path: "/ratelimit/k?limit=3&algorithm=" + alg}, http.StatusOK)
		if peek.header.Get("RateLimit-Degraded") != "redis-unavailable" {
			t.Errorf("%s: degraded peek without RateLimit-Degraded", alg)
		}
		closed.must(request{method: "POST", path: incr}, http.StatusServiceUnavailable)
	}
	// A plain counter decides nothing, so there is nothing to fail open.
	open.must(request{method: "POST", path: "/ratelimit/k/incr"}, http.StatusServiceUnavailable)
	open.must(request{method: "DELETE", path: "/ratelimit/k"}, http.StatusServiceUnavailable)

	body := open.must(request{method: "GET", path: "/metrics", token: "-"}, http.StatusOK).body
	for _, want := range []string{
		`redis_gateway_ratelimit_decisions_total{algorithm="fixed",result="allowed"} 1`,
		`redis_gateway_ratelimit_decisions_total{algorithm="fixed",result="denied"} 1`,
		`redis_gateway_ratelimit_decisions_total{algorithm="gcra",result="allowed"} 0`,
		`redis_gateway_ratelimit_degraded_total{algorithm="fixed"} 2`,
		`redis_gateway_ratelimit_degraded_total{algorithm="sliding"} 2`,
		`redis_gateway_ratelimit_degraded_total{algorithm="gcra"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(open.logs.String(), `"status":200,`) || !strings.Contains(open.logs.String(), "redis unavailable") {
		t.Errorf("degraded answers left no trace of the outage in the access log")
	}
}

// A Redis that stops answering is a timeout, and fails open too.
func TestRateLimitFailOpenOnTimeout(t *testing.T) {
	b := serverBackend(t)
	g := startGateway(t, b, withConfig(func(c *handlers.Config) {
		c.RateLimitFailOpen = true
		c.RequestTimeout = 300 * time.Millisecond
	}))
	g.must(request{method: "POST", path: "/ratelimit/k/incr?limit=1&algorithm=gcra"}, http.StatusOK)
	if err := b.rdb.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	resp := g.must(request{method: "POST", path: "/ratelimit/k/incr?limit=1&algorithm=gcra"}, http.StatusOK)
	if resp.header.Get("RateLimit-Degraded") != "redis-unavailable" {
		t.Errorf("a timed-out decision was answered without RateLimit-Degraded: %s", resp.body)
	}
}

// quietWindow returns a window length of at least want seconds whose
// current window, aligned to Redis's clock as the sliding limiter aligns
// them, has margin left: a test inside it never crosses a window boundary.
func quietWindow(t *testing.T, b backend, want int64, margin time.Duration) int64 {
	t.Helper()
	now := redisNow(t, b)
	for w := want; ; w++ {
		window := time.Duration(w) * time.Second
		if window-windowOffset(now, window) >= margin {
			return w
		}
	}
}

// hammer runs clients goroutines that each send req until calls calls or
// until stop, and returns how many answers had each status.
func hammer(t *testing.T, g *gateway, req request, clients, calls int, stop time.Time) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range calls {
				if !stop.IsZero() && time.Now().After(stop) {
					return
				}
				resp, err := g.call(req)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				statuses[resp.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return statuses
}

// Many clients at once against limit L: fixed and sliding admit exactly L
// per window, and exactly floor(L / cost) calls of a larger cost.
func TestRateLimitConcurrentClients(t *testing.T) {
	forEachServer(t, testRateLimitConcurrentClients)
}

func testRateLimitConcurrentClients(t *testing.T, b backend) {
	g := startGateway(t, b)
	window := quietWindow(t, b, 3600, time.Minute)
	const clients, calls = 40, 5
	tests := []struct {
		alg         string
		limit, cost int64
		want        int
	}{
		{"fixed", 50, 1, 50},
		{"sliding", 50, 1, 50},
		{"fixed", 50, 3, 16},
		{"sliding", 50, 3, 16},
		{"fixed", 1, 1, 1},
		{"sliding", 1, 1, 1},
	}
	for i, tt := range tests {
		path := fmt.Sprintf("/ratelimit/c%d/incr?algorithm=%s&limit=%d&cost=%d&window=%d", i, tt.alg, tt.limit, tt.cost, window)
		got := hammer(t, g, request{method: "POST", path: path}, clients, calls, time.Time{})
		if got[http.StatusOK] != tt.want || got[http.StatusTooManyRequests] != clients*calls-tt.want {
			t.Errorf("%d clients × %d calls, %s limit=%d cost=%d: statuses %v, want %d × 200 and the rest 429",
				clients, calls, tt.alg, tt.limit, tt.cost, got, tt.want)
		}
	}
}

// Many clients hammering a GCRA limiter get no more than burst + rate·t.
func TestRateLimitGCRAConcurrentClients(t *testing.T) {
	forEachServer(t, testGCRAConcurrentClients)
}

func testGCRAConcurrentClients(t *testing.T, b backend) {
	g := startGateway(t, b)
	// 20 per second (one every 50 ms), up to 10 at once.
	const limit, burst = 20, 10
	req := request{method: "POST", path: fmt.Sprintf("/ratelimit/g/incr?algorithm=gcra&limit=%d&window=1&burst=%d", limit, burst)}
	start := time.Now()
	got := hammer(t, g, req, 16, 400, start.Add(1500*time.Millisecond))
	elapsed := time.Since(start)

	// Redis's clock counts whole milliseconds, so its view of the run may be
	// a millisecond longer than ours.
	most := burst + int((elapsed+2*time.Millisecond).Milliseconds()*limit/1000)
	if got[http.StatusOK] > most {
		t.Errorf("GCRA limit=%d/s burst=%d admitted %d calls in %v, want at most %d", limit, burst, got[http.StatusOK], elapsed, most)
	}
	if got[http.StatusOK] <= burst {
		t.Errorf("GCRA admitted %d calls in %v: nothing beyond the burst of %d, the bucket never drained", got[http.StatusOK], elapsed, burst)
	}
	if got[http.StatusOK]+got[http.StatusTooManyRequests] != sum(got) {
		t.Errorf("statuses %v, want only 200 and 429", got)
	}
	t.Logf("%d clients for %v: %v", 16, elapsed.Round(time.Millisecond), got)
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
