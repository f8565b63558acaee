package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

type decision struct {
	Allowed    bool  `json:"allowed"`
	Limit      int64 `json:"limit"`
	Remaining  int64 `json:"remaining"`
	Reset      int64 `json:"reset"`
	RetryAfter int64 `json:"retry_after"`
	Count      int64 `json:"count"`
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
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		const path = "/ratelimit/w/incr?limit=1&window=1"
		g.must(request{method: "POST", path: path}, http.StatusOK)
		g.must(request{method: "POST", path: path}, http.StatusTooManyRequests)
		b.elapse(1100 * time.Millisecond)
		g.must(request{method: "POST", path: path}, http.StatusOK)
	})
}

func TestRateLimitCounterWindowIsNotExtended(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
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
