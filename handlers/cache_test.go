package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCacheLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		// Exact bytes: whitespace, a 64-bit id and 0.1 must survive untouched.
		const value = `{ "id": 12345678901234567890, "ratio": 0.1, "tags": [], "meta": {} }`

		put := g.must(request{method: "PUT", path: "/cache/k", body: value}, http.StatusCreated)
		tag := put.header.Get("ETag")
		if !strings.HasPrefix(tag, `"`) || strings.HasPrefix(tag, "W/") {
			t.Fatalf("PUT /cache/k: ETag = %q, want a strong entity tag", tag)
		}

		get := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK)
		if get.body != value {
			t.Errorf("GET /cache/k: body = %q, want %q", get.body, value)
		}
		if ct := get.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET /cache/k: Content-Type = %q, want application/json", ct)
		}
		if got := get.header.Get("ETag"); got != tag {
			t.Errorf("GET /cache/k: ETag = %q, want %q as on PUT", got, tag)
		}

		head := g.must(request{method: "HEAD", path: "/cache/k"}, http.StatusOK)
		if head.body != "" || head.header.Get("ETag") != tag {
			t.Errorf("HEAD /cache/k: body %q, ETag %q; want no body and ETag %q", head.body, head.header.Get("ETag"), tag)
		}

		g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"If-None-Match": tag}}, http.StatusNotModified)
		g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"If-None-Match": `"other", W/` + tag}}, http.StatusNotModified)
		g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"If-None-Match": `"other"`}}, http.StatusOK)

		replaced := g.must(request{method: "PUT", path: "/cache/k", body: `[1,2]`}, http.StatusNoContent)
		if replaced.header.Get("ETag") == tag {
			t.Errorf("PUT /cache/k with a new value kept ETag %s", tag)
		}
		if got := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK).body; got != `[1,2]` {
			t.Errorf("GET /cache/k after replace: body = %q, want [1,2]", got)
		}
		g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"If-None-Match": tag}}, http.StatusOK)

		g.must(request{method: "DELETE", path: "/cache/k"}, http.StatusNoContent)
		g.must(request{method: "GET", path: "/cache/k"}, http.StatusNotFound)
		g.must(request{method: "HEAD", path: "/cache/k"}, http.StatusNotFound)
		g.must(request{method: "DELETE", path: "/cache/k"}, http.StatusNotFound)
	})
}

func TestCacheConditionalPut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		value := func() string {
			t.Helper()
			v, err := b.rdb.Get(ctx, "cache:c").Result()
			if err != nil {
				return "<" + err.Error() + ">"
			}
			return v
		}
		ifMatch := func(v string) map[string]string { return map[string]string{"If-Match": v} }
		ifNone := map[string]string{"If-None-Match": "*"}

		g.must(request{method: "PUT", path: "/cache/c", body: `1`, header: ifMatch("*")}, http.StatusPreconditionFailed)
		if n := b.rdb.Exists(ctx, "cache:c").Val(); n != 0 {
			t.Fatalf("If-Match: * on a missing key created it")
		}
		tag := g.must(request{method: "PUT", path: "/cache/c", body: `1`, header: ifNone}, http.StatusCreated).header.Get("ETag")
		g.must(request{method: "PUT", path: "/cache/c", body: `2`, header: ifNone}, http.StatusPreconditionFailed)
		if v := value(); v != "1" {
			t.Fatalf("after a failed If-None-Match: * the value is %s, want 1", v)
		}
		g.must(request{method: "PUT", path: "/cache/c", body: `2`, header: ifMatch(tag)}, http.StatusNoContent)
		g.must(request{method: "PUT", path: "/cache/c", body: `3`, header: ifMatch(tag)}, http.StatusPreconditionFailed)
		g.must(request{method: "PUT", path: "/cache/c", body: `3`, header: ifMatch("W/" + tag)}, http.StatusPreconditionFailed)
		if v := value(); v != "2" {
			t.Fatalf("after stale If-Match the value is %s, want 2", v)
		}
		g.must(request{method: "PUT", path: "/cache/c", body: `3`, header: ifMatch("*")}, http.StatusNoContent)
		cur := g.must(request{method: "GET", path: "/cache/c"}, http.StatusOK).header.Get("ETag")
		g.must(request{method: "PUT", path: "/cache/c?ttl=50", body: `4`, header: ifMatch(`"nope", ` + cur)}, http.StatusNoContent)
		if v := value(); v != "4" {
			t.Fatalf("after If-Match with the current tag in a list the value is %s, want 4", v)
		}
		if d := b.rdb.PTTL(ctx, "cache:c").Val(); d <= 45*time.Second || d > 50*time.Second {
			t.Errorf("If-Match write with ttl=50: PTTL = %v, want about 50s", d)
		}
	})
}

func TestCacheTTL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		g.must(request{method: "PUT", path: "/cache/t?ttl=100", body: `"v"`}, http.StatusCreated)
		if d := b.rdb.PTTL(ctx, "cache:t").Val(); d <= 90*time.Second || d > 100*time.Second {
			t.Errorf("PUT ?ttl=100: PTTL in Redis = %v, want (90s, 100s]", d)
		}
		if got := g.must(request{method: "GET", path: "/cache/t/ttl"}, http.StatusOK).body; got != `{"ttl":100}` {
			t.Errorf("GET /cache/t/ttl = %s, want {\"ttl\":100}", got)
		}

		g.must(request{method: "PUT", path: "/cache/default", body: `"v"`}, http.StatusCreated)
		if d := b.rdb.PTTL(ctx, "cache:default").Val(); d <= 3590*time.Second || d > time.Hour {
			t.Errorf("PUT without ttl: PTTL = %v, want CACHE_DEFAULT_TTL (1h)", d)
		}

		if got := g.must(request{method: "POST", path: "/cache/t/expire?ttl=50"}, http.StatusOK).body; got != `{"ttl":50}` {
			t.Errorf("POST /cache/t/expire?ttl=50 = %s, want {\"ttl\":50}", got)
		}
		if d := b.rdb.PTTL(ctx, "cache:t").Val(); d <= 45*time.Second || d > 50*time.Second {
			t.Errorf("after expire ttl=50: PTTL = %v", d)
		}
		g.must(request{method: "POST", path: "/cache/missing/expire?ttl=5"}, http.StatusNotFound)
		g.must(request{method: "GET", path: "/cache/missing/ttl"}, http.StatusNotFound)

		b.rdb.Set(ctx, "cache:forever", `1`, 0)
		if got := g.must(request{method: "GET", path: "/cache/forever/ttl"}, http.StatusOK).body; got != `{"ttl":-1}` {
			t.Errorf("GET ttl of a key without expiry = %s, want {\"ttl\":-1}", got)
		}

		g.must(request{method: "PUT", path: "/cache/short?ttl=1", body: `1`}, http.StatusCreated)
		b.elapse(1100 * time.Millisecond)
		g.must(request{method: "GET", path: "/cache/short"}, http.StatusNotFound)
	})
}

func TestCacheMany(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		g.must(request{method: "PUT", path: "/cache/a", body: `{"n":1}`}, http.StatusCreated)
		g.must(request{method: "PUT", path: "/cache/b%2Fc", body: `[true]`}, http.StatusCreated)
		b.rdb.Set(context.Background(), "cache:raw", "not json", 0)

		got := g.must(request{method: "GET", path: "/cache?key=a&key=b/c&key=missing&key=raw&key=a"}, http.StatusOK).body
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("GET /cache?key=…: %v in %s", err, got)
		}
		want := map[string]string{"a": `{"n":1}`, "b/c": `[true]`, "missing": `null`, "raw": `"not json"`}
		if len(m) != len(want) {
			t.Errorf("GET /cache?key=…: %d members, want %d: %s", len(m), len(want), got)
		}
		for k, v := range want {
			if string(m[k]) != v {
				t.Errorf("GET /cache?key=…: %q = %s, want %s", k, m[k], v)
			}
		}

		del := g.must(request{method: "DELETE", path: "/cache?key=a&key=b%2Fc&key=missing"}, http.StatusOK).body
		if del != `{"deleted":2}` {
			t.Errorf("DELETE /cache?key=a&key=b/c&key=missing = %s, want {\"deleted\":2}", del)
		}
		g.must(request{method: "GET", path: "/cache/a"}, http.StatusNotFound)
	})
}

func TestCacheIncr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		steps := []struct {
			path string
			want string
		}{
			{"/cache/n/incr", `{"value":1}`},
			{"/cache/n/incr?by=5", `{"value":6}`},
			{"/cache/n/incr?by=-10", `{"value":-4}`},
			{"/cache/n/incr?by=0", `{"value":-4}`},
		}
		for _, s := range steps {
			if got := g.must(request{method: "POST", path: s.path}, http.StatusOK).body; got != s.want {
				t.Errorf("POST %s = %s, want %s", s.path, got, s.want)
			}
		}
		if d := b.rdb.PTTL(ctx, "cache:n").Val(); d <= 3590*time.Second || d > time.Hour {
			t.Errorf("a counter created by incr: PTTL = %v, want CACHE_DEFAULT_TTL", d)
		}
		if got := g.must(request{method: "GET", path: "/cache/n"}, http.StatusOK).body; got != "-4" {
			t.Errorf("GET /cache/n = %s, want -4", got)
		}

		g.must(request{method: "PUT", path: "/cache/m?ttl=100", body: `41`}, http.StatusCreated)
		g.must(request{method: "POST", path: "/cache/m/incr"}, http.StatusOK)
		if d := b.rdb.PTTL(ctx, "cache:m").Val(); d > 100*time.Second || d < 90*time.Second {
			t.Errorf("incr of an existing key changed its TTL: PTTL = %v, want about 100s", d)
		}

		g.must(request{method: "PUT", path: "/cache/s", body: `"five"`}, http.StatusCreated)
		g.must(request{method: "POST", path: "/cache/s/incr"}, http.StatusConflict)
		b.rdb.Set(ctx, "cache:max", "9223372036854775807", 0)
		g.must(request{method: "POST", path: "/cache/max/incr"}, http.StatusConflict)
	})
}

func TestWrongTypeIsConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		b.rdb.HSet(ctx, "cache:h", "f", "v")
		b.rdb.Set(ctx, "session:str", "v", 0)
		for _, req := range []request{
			{method: "GET", path: "/cache/h"},
			{method: "POST", path: "/cache/h/incr"},
			{method: "GET", path: "/session/str"},
			{method: "GET", path: "/session/str?touch=false"},
		} {
			resp := g.must(req, http.StatusConflict)
			if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s %s: Content-Type = %q, want application/problem+json", req.method, req.path, ct)
			}
		}
	})
}

// Keys travel percent-encoded in one path segment, are decoded exactly once,
// and land in Redis under exactly the gateway's prefixes.
func TestKeysRoundTrip(t *testing.T) {
	keys := []string{
		"user:42/profile",
		"with space",
		"{tag}x",
		"}{",
		"naïve-日本語-🔑",
		"%41",   // decoded once: stays the three bytes %41
		"a+b=c", // + is not a space in a path
		"?#&",
		"..",
		strings.Repeat("k", 1024),
	}
	for _, prefix := range []string{"", "orders:"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				g := startGateway(t, b, withKeyPrefix(prefix))
				ctx := context.Background()
				for _, k := range keys {
					path := "/cache/" + url.PathEscape(k)
					body, _ := json.Marshal(k)
					g.must(request{method: "PUT", path: path, body: string(body)}, http.StatusCreated)
					if got := g.must(request{method: "GET", path: path}, http.StatusOK).body; got != string(body) {
						t.Errorf("GET %s = %s, want %s", path, got, body)
					}
					if n := b.rdb.Exists(ctx, prefix+"cache:"+k).Val(); n != 1 {
						t.Errorf("PUT %s: no Redis key %q", path, prefix+"cache:"+k)
					}
				}
				if n := b.rdb.DBSize(ctx).Val(); n != int64(len(keys)) {
					t.Errorf("Redis holds %d keys, want exactly %d", n, len(keys))
				}
				q := url.Values{"key": keys}
				var m map[string]string
				got := g.must(request{method: "GET", path: "/cache?" + q.Encode()}, http.StatusOK).body
				if err := json.Unmarshal([]byte(got), &m); err != nil {
					t.Fatalf("GET /cache?key=…: %v", err)
				}
				for _, k := range keys {
					if m[k] != k {
						t.Errorf("GET /cache?key=%q = %q, want %q", k, m[k], k)
					}
				}
			})
		})
	}
}

// Counters answer the exact 64-bit integer Redis holds, to the last digit
// and at the ends of the range, and a result past them is 409 "overflow"
// with the value unchanged.
func TestCounterExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		tests := []struct {
			path, want, held string
		}{
			{"/cache/big/incr?by=9223372036854775807", `{"value":9223372036854775807}`, "9223372036854775807"},
			{"/cache/odd/incr?by=9007199254740993", `{"value":9007199254740993}`, "9007199254740993"},
			{"/cache/odd/incr?by=2", `{"value":9007199254740995}`, "9007199254740995"},
			{"/cache/low/incr?by=-9223372036854775808", `{"value":-9223372036854775808}`, "-9223372036854775808"},
		}
		for _, tt := range tests {
			if got := g.must(request{method: "POST", path: tt.path}, http.StatusOK).body; got != tt.want {
				t.Errorf("POST %s = %s, want %s", tt.path, got, tt.want)
			}
			key, _, _ := strings.Cut(strings.TrimPrefix(tt.path, "/cache/"), "/")
			if v := b.rdb.Get(ctx, "cache:"+key).Val(); v != tt.held {
				t.Errorf("after POST %s Redis holds %s, want %s", tt.path, v, tt.held)
			}
		}
		for _, path := range []string{"/cache/big/incr", "/cache/low/incr?by=-1"} {
			resp := g.must(request{method: "POST", path: path}, http.StatusConflict)
			if p := decode[struct{ Type string }](t, path, resp.body); p.Type != "urn:redis-gateway:problem:overflow" {
				t.Errorf("POST %s: type %q, want urn:redis-gateway:problem:overflow", path, p.Type)
			}
		}
		if v := b.rdb.Get(ctx, "cache:big").Val(); v != "9223372036854775807" {
			t.Errorf("an overflowing increment changed the value to %s", v)
		}

		// The rate-limit counter, past 2^53 and at its end.
		if err := b.rdb.Set(ctx, "ratelimit:{r}", "9007199254740992", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got := g.must(request{method: "POST", path: "/ratelimit/r/incr"}, http.StatusOK).body; !strings.HasPrefix(got, `{"count":9007199254740993,`) {
			t.Errorf("POST /ratelimit/r/incr = %s, want count 9007199254740993", got)
		}
		if got := g.must(request{method: "GET", path: "/ratelimit/r"}, http.StatusOK).body; !strings.HasPrefix(got, `{"count":9007199254740993,`) {
			t.Errorf("GET /ratelimit/r = %s, want count 9007199254740993", got)
		}
		if err := b.rdb.Set(ctx, "ratelimit:{r}", "9223372036854775802", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		// A peek that would wrap past the end must not read as allowed.
		if got := g.must(request{method: "GET", path: "/ratelimit/r?limit=10&cost=10"}, http.StatusOK).body; !strings.Contains(got, `"allowed":false`) || !strings.Contains(got, `"count":9223372036854775802`) {
			t.Errorf("GET /ratelimit/r?limit=10&cost=10 = %s, want allowed false at count 9223372036854775802", got)
		}
		g.must(request{method: "POST", path: "/ratelimit/r/incr?cost=1000"}, http.StatusConflict)
		if v := b.rdb.Get(ctx, "ratelimit:{r}").Val(); v != "9223372036854775802" {
			t.Errorf("an overflowing rate-limit call changed the counter to %s", v)
		}

		// A lock's fencing token, past 2^53.
		if err := b.rdb.Set(ctx, "lock:{f}:fence", "9007199254740992", 0).Err(); err != nil {
			t.Fatal(err)
		}
		lease := g.must(request{method: "POST", path: "/lock/f"}, http.StatusCreated)
		if !strings.Contains(lease.body, `"fence":9007199254740993,`) {
			t.Errorf("POST /lock/f = %s, want fence 9007199254740993", lease.body)
		}
		token := decode[struct{ Token string }](t, "POST /lock/f", lease.body).Token
		refreshed := g.must(request{method: "POST", path: "/lock/f/refresh", header: map[string]string{"Lock-Token": token}}, http.StatusOK)
		if !strings.Contains(refreshed.body, `"fence":9007199254740993`) {
			t.Errorf("POST /lock/f/refresh = %s, want fence 9007199254740993", refreshed.body)
		}
	})
}
