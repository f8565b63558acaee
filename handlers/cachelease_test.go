package handlers_test

import (
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

// leaseID is the fencing id that leads a Cache-Lease token.
func leaseID(t *testing.T, token string) int64 {
	t.Helper()
	id, _, ok := strings.Cut(token, ".")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil {
		t.Fatalf("Cache-Lease %q: want <id>.<random>", token)
	}
	return n
}

// takeLease asks for a lease on key without waiting and fails unless it is
// granted.
func (g *gateway) takeLease(key, lease string) string {
	g.t.Helper()
	resp := g.must(request{method: "GET", path: "/cache/" + key + "?lease=" + lease + "&wait=0"}, http.StatusNotFound)
	token := resp.header.Get("Cache-Lease")
	if token == "" {
		g.t.Fatalf("GET /cache/%s?lease=%s: no Cache-Lease on a miss nobody else holds", key, lease)
	}
	return token
}

func TestCacheLeaseLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		token := g.takeLease("k", "2")
		if cc := g.do(request{method: "GET", path: "/cache/k?lease=2&wait=0"}); cc.status != http.StatusNotFound ||
			cc.header.Get("Cache-Lease") != "" || cc.header.Get("Retry-After") == "" {
			t.Fatalf("second GET /cache/k?lease=2&wait=0: status %d, Cache-Lease %q, Retry-After %q; want 404, none, set",
				cc.status, cc.header.Get("Cache-Lease"), cc.header.Get("Retry-After"))
		}
		// A plain GET knows nothing of leases.
		g.must(request{method: "GET", path: "/cache/k"}, http.StatusNotFound)

		put := g.must(request{method: "PUT", path: "/cache/k?ttl=60", body: `{"v":1}`, header: map[string]string{"Cache-Lease": token}}, http.StatusCreated)
		got := g.must(request{method: "GET", path: "/cache/k?lease=2"}, http.StatusOK)
		if got.body != `{"v":1}` || got.header.Get("ETag") != put.header.Get("ETag") {
			t.Errorf("GET /cache/k?lease=2 after the fill: body %s, ETag %s; want {\"v\":1}, %s", got.body, got.header.Get("ETag"), put.header.Get("ETag"))
		}
		g.must(request{method: "GET", path: "/cache/k?lease=2", header: map[string]string{"If-None-Match": put.header.Get("ETag")}}, http.StatusNotModified)
		if ttl := g.must(request{method: "GET", path: "/cache/k/ttl"}, http.StatusOK).body; ttl != `{"ttl":60}` {
			t.Errorf("GET /cache/k/ttl after a fill with ?ttl=60: %s", ttl)
		}
		// A lease fills once.
		lost := g.must(request{method: "PUT", path: "/cache/k", body: `{"v":2}`, header: map[string]string{"Cache-Lease": token}}, http.StatusConflict)
		if !strings.Contains(lost.body, "lease-lost") {
			t.Errorf("second PUT with the same lease: body %s, want type lease-lost", lost.body)
		}
		if got := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK).body; got != `{"v":1}` {
			t.Errorf("GET /cache/k after a lost fill: %s, want the first fill", got)
		}
	})
}

// The stale set: a value computed under a lease that a DELETE or a plain PUT
// has since overtaken is refused, and what the overtaking write left stays.
func TestCacheLeaseStaleSet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		for _, tc := range []struct {
			name   string
			writes []request
			want   int    // status of GET afterwards
			value  string // its body, when 200
		}{
			{"delete", []request{{method: "DELETE", path: "/cache/%s"}}, http.StatusNotFound, ""},
			{"plain put", []request{{method: "PUT", path: "/cache/%s", body: `"fresh"`}}, http.StatusOK, `"fresh"`},
			{"put then delete", []request{{method: "PUT", path: "/cache/%s", body: `"fresh"`}, {method: "DELETE", path: "/cache/%s"}}, http.StatusNotFound, ""},
			{"delete many", []request{{method: "DELETE", path: "/cache?key=other&key=%s"}}, http.StatusNotFound, ""},
			{"create only", []request{{method: "PUT", path: "/cache/%s", body: `"fresh"`, header: map[string]string{"If-None-Match": "*"}}}, http.StatusOK, `"fresh"`},
		} {
			key := "stale-" + strings.ReplaceAll(tc.name, " ", "-")
			token := g.takeLease(key, "5")
			for _, w := range tc.writes {
				w.path = fmt.Sprintf(w.path, key)
				if resp := g.do(w); resp.status >= 300 && resp.status != http.StatusNotFound {
					t.Fatalf("%s: %s %s: status %d", tc.name, w.method, w.path, resp.status)
				}
			}
			resp := g.must(request{method: "PUT", path: "/cache/" + key, body: `"stale"`, header: map[string]string{"Cache-Lease": token}}, http.StatusConflict)
			if !strings.Contains(resp.body, "lease-lost") {
				t.Errorf("%s: late leased PUT: body %s, want type lease-lost", tc.name, resp.body)
			}
			got := g.must(request{method: "GET", path: "/cache/" + key}, tc.want)
			if tc.want == http.StatusOK && got.body != tc.value {
				t.Errorf("%s: GET after the refused fill: %s, want %s", tc.name, got.body, tc.value)
			}
			// The key is open to a new lease, with a larger id.
			if tc.want == http.StatusNotFound {
				if next := g.takeLease(key, "5"); leaseID(t, next) <= leaseID(t, token) {
					t.Errorf("%s: next lease %s does not follow %s", tc.name, next, token)
				}
			}
		}
	})
}

// A lease that ends unfilled passes to the next caller; the first holder's
// late fill is then refused, and ids only grow.
func TestCacheLeaseExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		first := g.takeLease("exp", "0.2")
		b.elapse(300 * time.Millisecond)
		second := g.takeLease("exp", "5")
		if leaseID(t, second) <= leaseID(t, first) {
			t.Errorf("lease after expiry %s does not follow %s", second, first)
		}
		g.must(request{method: "PUT", path: "/cache/exp", body: `"late"`, header: map[string]string{"Cache-Lease": first}}, http.StatusConflict)
		g.must(request{method: "PUT", path: "/cache/exp", body: `"fresh"`, header: map[string]string{"Cache-Lease": second}}, http.StatusCreated)
		if got := g.must(request{method: "GET", path: "/cache/exp"}, http.StatusOK).body; got != `"fresh"` {
			t.Errorf("GET /cache/exp: %s, want the second holder's fill", got)
		}
	})
}

func TestCacheLeaseBadInput(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.CacheLeaseMaxWait = 10 * time.Second }))
	for _, path := range []string{
		"/cache/k?lease=", "/cache/k?lease=0", "/cache/k?lease=0.05", "/cache/k?lease=61", "/cache/k?lease=abc",
		"/cache/k?lease=-1", "/cache/k?lease=1e1", "/cache/k?lease=1&lease=2", "/cache/k?lease=inf",
		"/cache/k?lease=1&wait=-1", "/cache/k?lease=1&wait=11", "/cache/k?lease=1&wait=x", "/cache/k?wait=1",
	} {
		resp := g.must(request{method: "GET", path: path}, http.StatusBadRequest)
		if resp.header.Get("Cache-Lease") != "" {
			t.Errorf("GET %s: a lease on a refused request", path)
		}
	}
	for _, h := range []map[string]string{
		{"Cache-Lease": ""},
		{"Cache-Lease": "1.ABC DEF"},
		{"Cache-Lease": strings.Repeat("1", 65)},
		{"Cache-Lease": "1.ABC", "If-Match": "*"},
		{"Cache-Lease": "1.ABC", "If-None-Match": "*"},
	} {
		// An empty header is still sent: net/http keeps a key with "".
		req := request{method: "PUT", path: "/cache/k", body: `1`, header: h}
		if h["Cache-Lease"] == "" {
			req.header = map[string]string{"Cache-Lease": " "}
		}
		g.must(req, http.StatusBadRequest)
	}
	// Nothing was leased or stored.
	g.takeLease("k", "1")
	g.must(request{method: "GET", path: "/cache/k"}, http.StatusNotFound)
}

// The herd: 200 callers miss one key at once, across two gateways on one
// Redis. Exactly one is granted the lease; once the other 199 wait, it
// fills the key 100 ms later, and every one of them is answered 200 with the
// value, woken by the fill.
func TestCacheLeaseHerd(t *testing.T) {
	if testing.Short() {
		t.Skip("200 concurrent requests; -short")
	}
	forEachServer(t, func(t *testing.T, b backend) {
		regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
		gws := []*gateway{
			startGateway(t, b, withConfig(func(c *handlers.Config) { c.Registry = regs[0] })),
			startGateway(t, b, withConfig(func(c *handlers.Config) { c.Registry = regs[1] })),
		}
		waiting := func() float64 {
			return metricValue(t, regs[0], "redis_gateway_cache_lease_waiters") + metricValue(t, regs[1], "redis_gateway_cache_lease_waiters")
		}
		const callers = 200
		const value = `{"computed":true}`
		type result struct {
			status int
			token  string
			body   string
			end    time.Time
			err    error
		}
		results := make([]result, callers)
		var wg sync.WaitGroup
		var wrote time.Time
		start := make(chan struct{})
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := gws[i%2]
				<-start
				// A lease longer than the test may take to gather 200
				// requests on a busy machine: the fill, not its end, must
				// answer them.
				resp, err := g.call(request{method: "GET", path: "/cache/hot?lease=60&wait=60"})
				results[i] = result{status: resp.status, token: resp.header.Get("Cache-Lease"), body: resp.body, end: time.Now(), err: err}
				if err != nil || results[i].token == "" {
					return
				}
				for deadline := time.Now().Add(30 * time.Second); waiting() < callers-1 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond) // the recomputation
				put, err := g.call(request{method: "PUT", path: "/cache/hot", body: value, header: map[string]string{"Cache-Lease": results[i].token}})
				wrote = time.Now()
				if err != nil || put.status != http.StatusCreated {
					t.Errorf("the holder's PUT: status %d, %v; want 201", put.status, err)
				}
			}()
		}
		close(start)
		wg.Wait()

		holders, served := 0, 0
		var slowest time.Duration
		for i, r := range results {
			switch {
			case r.err != nil:
				t.Errorf("caller %d: %v", i, r.err)
			case r.token != "":
				holders++
			case r.status == http.StatusOK && r.body == value:
				served++
				slowest = max(slowest, r.end.Sub(wrote))
			default:
				t.Errorf("caller %d: status %d, body %s; want 200 with the value", i, r.status, r.body)
			}
		}
		if holders != 1 || served != callers-1 {
			t.Fatalf("%d callers granted the lease and %d served the value, want 1 and %d", holders, served, callers-1)
		}
		// The timing is reported, not held to: the machine may be busy. The
		// bound only says that nobody waited for the lease to end.
		t.Logf("%s: the last of %d waiters was answered %v after the fill was acknowledged", b.name, callers-1, slowest)
		if slowest > 30*time.Second {
			t.Errorf("a waiter was answered %v after the fill: not woken by it", slowest)
		}
		if got := leaseEvents(t, regs, "granted"); got != 1 {
			t.Errorf("leases granted = %v, want 1", got)
		}
		if got := leaseEvents(t, regs, "filled"); got != 1 {
			t.Errorf("leases filled = %v, want 1", got)
		}
		woken := metricValue(t, regs[0], "redis_gateway_cache_lease_waiters_woken_total") +
			metricValue(t, regs[1], "redis_gateway_cache_lease_waiters_woken_total")
		// A waiter whose subscription was confirmed only after the fill
		// finds the value when it looks again, unwoken.
		t.Logf("%s: %v of %d waiters woken by the fill", b.name, woken, callers-1)
		if woken < 1 || woken > callers-1 {
			t.Errorf("waiters woken = %v, want 1 to %d", woken, callers-1)
		}
		if w := waiting(); w != 0 {
			t.Errorf("%v requests still counted as waiting", w)
		}
	})
}

// leaseEvents sums redis_gateway_cache_leases_total{event} over regs.
func leaseEvents(t *testing.T, regs []*prometheus.Registry, event string) float64 {
	t.Helper()
	var sum float64
	for _, reg := range regs {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "redis_gateway_cache_leases_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "event" && l.GetValue() == event {
						sum += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sum
}

// A holder that never fills: when its lease ends, exactly one of the waiters
// is granted the next; its fill then answers all the others.
func TestCacheLeaseHandsOverOnExpiry(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
		gws := []*gateway{
			startGateway(t, b, withConfig(func(c *handlers.Config) { c.Registry = regs[0] })),
			startGateway(t, b, withConfig(func(c *handlers.Config) { c.Registry = regs[1] })),
		}
		gws[0].takeLease("orphan", "0.3") // and never fills it
		const waiters = 20
		type result struct {
			status int
			token  string
			body   string
		}
		results := make([]result, waiters)
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := gws[i%2]
				// A lease of 10 s for the next holder, so it surely fills
				// before that one ends too.
				resp, err := g.call(request{method: "GET", path: "/cache/orphan?lease=10&wait=20"})
				if err != nil {
					t.Error(err)
					return
				}
				results[i] = result{resp.status, resp.header.Get("Cache-Lease"), resp.body}
				if results[i].token != "" {
					g.must(request{method: "PUT", path: "/cache/orphan", body: `"second"`, header: map[string]string{"Cache-Lease": results[i].token}}, http.StatusCreated)
				}
			}()
		}
		wg.Wait()
		holders := 0
		for i, r := range results {
			switch {
			case r.token != "":
				holders++
			case r.status != http.StatusOK || r.body != `"second"`:
				t.Errorf("waiter %d: status %d, body %s; want 200 \"second\"", i, r.status, r.body)
			}
		}
		if holders != 1 {
			t.Errorf("%d waiters were granted the next lease, want exactly 1", holders)
		}
		for event, want := range map[string]float64{"granted": 2, "expired": 1, "filled": 1, "lost": 0} {
			if got := leaseEvents(t, regs, event); got != want {
				t.Errorf("leases %s = %v, want %v", event, got, want)
			}
		}
	})
}

// A waiter whose wait ends before the fill gets 404 with Retry-After, not a
// lease.
func TestCacheLeaseWaitEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		g.takeLease("slow", "30")
		resp := g.must(request{method: "GET", path: "/cache/slow?lease=5&wait=0.2"}, http.StatusNotFound)
		if resp.header.Get("Cache-Lease") != "" {
			t.Errorf("a waiter was granted a lease that is held")
		}
		if ra, err := strconv.Atoi(resp.header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
			t.Errorf("Retry-After = %q, want the seconds the lease has left", resp.header.Get("Retry-After"))
		}
	})
}

// A leased GET reads Redis, never the near-cache: its miss is a real miss,
// its hit the current value; and a fill is read back at once by the
// gateway that made it.
func TestCacheLeaseBypassesNearCache(t *testing.T) {
	g, _, reg := nearGateway(t, time.Minute)
	g.must(request{method: "PUT", path: "/cache/near", body: `"v0"`}, http.StatusCreated)
	g.must(request{method: "GET", path: "/cache/near"}, http.StatusOK)
	g.must(request{method: "GET", path: "/cache/near"}, http.StatusOK)
	hits := metricValue(t, reg, "redis_gateway_near_cache_hits_total")
	if hits < 1 {
		t.Fatalf("near-cache hits = %v after two GETs, want the second to hit", hits)
	}
	if got := g.must(request{method: "GET", path: "/cache/near?lease=1"}, http.StatusOK).body; got != `"v0"` {
		t.Errorf("GET ?lease on a hit: %s, want \"v0\"", got)
	}
	if got := metricValue(t, reg, "redis_gateway_near_cache_hits_total"); got != hits {
		t.Errorf("near-cache hits went from %v to %v on a leased GET, want it to read Redis", hits, got)
	}
	g.must(request{method: "DELETE", path: "/cache/near"}, http.StatusNoContent)
	token := g.takeLease("near", "5")
	g.must(request{method: "PUT", path: "/cache/near", body: `"v1"`, header: map[string]string{"Cache-Lease": token}}, http.StatusCreated)
	for range 2 {
		if got := g.must(request{method: "GET", path: "/cache/near"}, http.StatusOK).body; got != `"v1"` {
			t.Errorf("GET after the fill: %s, want \"v1\"", got)
		}
	}
}

// A DELETE withdraws the lease and wakes the waiters: one is granted the
// next lease at once. Without the wake-up the waiter would wait out its 30 s
// and come away without one, the withdrawn lease having 60 s.
func TestCacheLeaseDeleteWakesWaiters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		g.must(request{method: "PUT", path: "/cache/del", body: `"old"`}, http.StatusCreated)
		g.must(request{method: "DELETE", path: "/cache/del"}, http.StatusNoContent)
		g.takeLease("del", "60")
		done := make(chan response, 1)
		go func() {
			resp, err := g.call(request{method: "GET", path: "/cache/del?lease=5&wait=30"})
			if err != nil {
				t.Error(err)
			}
			done <- resp
		}()
		// The waiter may not be waiting yet; either way, it must come away
		// with the next lease, which it could not before the DELETE.
		time.Sleep(100 * time.Millisecond)
		g.must(request{method: "DELETE", path: "/cache/del"}, http.StatusNotFound) // no value, but a lease
		resp := <-done
		if resp.status != http.StatusNotFound || resp.header.Get("Cache-Lease") == "" {
			t.Errorf("the waiter after a DELETE: status %d, Cache-Lease %q; want 404 with the next lease", resp.status, resp.header.Get("Cache-Lease"))
		}
	})
}

// A lease is a promise to write: a token that may only read the cache reads
// as before, but may not take a lease and hold the other readers up.
func TestCacheLeaseNeedsWriteScope(t *testing.T) {
	const reader = "cache-reader-secret-lease01"
	g := scopedGateway(t, miniBackend(t), `{"tokens": [{"name": "reader", "secret": "`+reader+`", "routes": ["cache"], "access": "read"}]}`)
	g.must(request{method: "GET", path: "/cache/k", token: reader}, http.StatusNotFound)
	resp := g.must(request{method: "GET", path: "/cache/k?lease=2&wait=0", token: reader}, http.StatusForbidden)
	if resp.header.Get("Cache-Lease") != "" {
		t.Errorf("a read-only token was granted a lease")
	}
	// Nobody holds the key: the full token is granted the lease at once.
	g.takeLease("k", "2")
}
