package handlers

import (
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// writeDecisionPlainly is writeDecision as Header.Set and json.Marshal write
// it, to hold the real one to.
func writeDecisionPlainly(w http.ResponseWriter, status int, req rateLimitRequest, d decisionResponse) {
	h := w.Header()
	limit, remaining, reset := strconv.FormatInt(d.Limit, 10), strconv.FormatInt(d.Remaining, 10), strconv.FormatInt(d.Reset, 10)
	h.Set("RateLimit-Policy", `"default";q=`+limit+";w="+strconv.FormatInt(seconds(req.window), 10))
	h.Set("RateLimit", `"default";r=`+remaining+";t="+reset)
	h.Set("X-RateLimit-Limit", limit)
	h.Set("X-RateLimit-Remaining", remaining)
	h.Set("X-RateLimit-Reset", reset)
	if !d.Allowed && status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.FormatInt(d.RetryAfter, 10))
	}
	writeJSON(w, status, d)
}

// A decision's headers and body are those Header.Set and json.Marshal give,
// byte for byte: allowed, denied (with Retry-After only on a 429), with and
// without burst, at the ends of the ranges.
func TestWriteDecisionAsSetAndMarshalWriteIt(t *testing.T) {
	cases := []struct {
		name   string
		status int
		window time.Duration
		d      decisionResponse
	}{
		{"allowed", 200, time.Minute, decisionResponse{Allowed: true, Limit: 3, Remaining: 2, Reset: 60, Count: 1}},
		{"denied", 429, 10 * time.Second, decisionResponse{Limit: 2, Reset: 7, RetryAfter: 7, Count: 3}},
		{"peek denied", 200, 10 * time.Second, decisionResponse{Limit: 2, Reset: 7, RetryAfter: 7, Count: 2}},
		{"gcra", 200, 1500 * time.Millisecond, decisionResponse{Allowed: true, Limit: 5, Remaining: 4, Reset: 1, Count: 1, Burst: 9}},
		{"gcra denied", 429, time.Hour, decisionResponse{Limit: 5, Reset: 720, RetryAfter: 720, Count: 5, Burst: 5}},
		{"zeros", 200, time.Millisecond, decisionResponse{}},
		{"large", 429, 30 * 24 * time.Hour, decisionResponse{Limit: maxLimit, Remaining: 0, Reset: math.MaxInt64, RetryAfter: math.MaxInt64, Count: math.MaxInt64, Burst: math.MaxInt64}},
		{"negative", 429, time.Minute, decisionResponse{Limit: math.MinInt64, Remaining: math.MinInt64, Reset: math.MinInt64, RetryAfter: math.MinInt64, Count: math.MinInt64, Burst: math.MinInt64}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := rateLimitRequest{window: c.window}
			got, want := httptest.NewRecorder(), httptest.NewRecorder()
			got.Header().Set("RateLimit-Degraded", "redis-unavailable")
			want.Header().Set("RateLimit-Degraded", "redis-unavailable")
			writeDecision(got, c.status, req, c.d)
			writeDecisionPlainly(want, c.status, req, c.d)
			if got.Code != want.Code {
				t.Errorf("status %d, want %d", got.Code, want.Code)
			}
			if !reflect.DeepEqual(got.Header(), want.Header()) {
				t.Errorf("headers\n%v\nwant\n%v", got.Header(), want.Header())
			}
			if got.Body.String() != want.Body.String() {
				t.Errorf("body %s, want %s", got.Body, want.Body)
			}
			// The values share one array: a value added to one header
			// leaves the others as they were.
			h := got.Header()
			h.Add("Ratelimit-Policy", "x")
			h.Add("Ratelimit", "y")
			h.Add("X-Ratelimit-Limit", "z")
			for _, name := range []string{"Ratelimit", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "Content-Length"} {
				if g, w := h[name][0], want.Header()[name][0]; g != w {
					t.Errorf("%s = %q after values were added to the others, want %q", name, g, w)
				}
			}
		})
	}
}

// A query read in place gives every parameter the values url.ParseQuery
// gives it, and one it cannot read in place is refused as query refuses it.
func FuzzRateLimitQuery(f *testing.F) {
	for _, raw := range []string{
		"", "limit=3&window=60", "limit=3&limit=4", "limit", "limit=&cost=2", "&&limit=1&", "=1&limit==2",
		"algorithm=gcra&burst", "window=60&window", "lim%69t=3", "limit=3;window=2", "cost=1+1", "limit=%zz",
		"a&b&c&d&e&f&g&h&i&j&k&l&m&n&o&p&limit=1",
	} {
		f.Add(raw, "limit")
	}
	f.Fuzz(func(t *testing.T, raw, name string) {
		q, err := readRateLimitQuery(&http.Request{URL: &url.URL{RawQuery: raw}})
		want, wantErr := url.ParseQuery(raw)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, want %v", raw, err, wantErr)
		}
		if err != nil {
			return
		}
		for _, n := range []string{name, "limit", "window", "cost", "algorithm", "burst"} {
			v, count := q.lookup(n)
			if vs := want[n]; count != len(vs) || count > 0 && v != vs[0] {
				t.Errorf("%q: %q has %d values, the first %q; want %q", raw, n, count, v, vs)
			}
		}
	})
}
