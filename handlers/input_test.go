package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/handlers"
)

// Every malformed input the contract names gets its 4xx problem response,
// is logged once, and writes nothing to Redis.
func TestBadInput(t *testing.T) {
	long := strings.Repeat("k", 1025)
	manyKeys := "/cache?" + strings.Repeat("key=k&", 1001)
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"ttl not a number", request{method: "PUT", path: "/cache/k?ttl=abc", body: `1`}, 400},
		{"ttl negative", request{method: "PUT", path: "/cache/k?ttl=-1", body: `1`}, 400},
		{"ttl zero", request{method: "PUT", path: "/cache/k?ttl=0", body: `1`}, 400},
		{"ttl fractional", request{method: "PUT", path: "/cache/k?ttl=1.5", body: `1`}, 400},
		{"ttl above MAX_TTL", request{method: "PUT", path: "/cache/k?ttl=99999999999", body: `1`}, 400},
		{"ttl empty", request{method: "PUT", path: "/cache/k?ttl=", body: `1`}, 400},
		{"ttl with plus sign", request{method: "PUT", path: "/cache/k?ttl=%2B5", body: `1`}, 400},
		{"ttl twice", request{method: "PUT", path: "/cache/k?ttl=5&ttl=6", body: `1`}, 400},
		{"session ttl", request{method: "POST", path: "/session?ttl=abc", body: `{}`}, 400},
		{"session put ttl", request{method: "PUT", path: "/session/s?ttl=0", body: `{}`}, 400},
		{"expire without ttl", request{method: "POST", path: "/cache/k/expire"}, 400},
		{"expire ttl", request{method: "POST", path: "/cache/k/expire?ttl=1.5"}, 400},
		{"key too long", request{method: "PUT", path: "/cache/" + long, body: `1`}, 400},
		{"key too long on GET", request{method: "GET", path: "/cache/" + long}, 400},
		{"session id too long", request{method: "PUT", path: "/session/" + long, body: `{}`}, 400},
		{"empty key in list", request{method: "GET", path: "/cache?key="}, 400},
		{"no key in list", request{method: "GET", path: "/cache"}, 400},
		{"too many keys", request{method: "DELETE", path: manyKeys}, 400},
		{"malformed query", request{method: "PUT", path: "/cache/k?ttl=%zz", body: `1`}, 400},
		{"invalid JSON", request{method: "PUT", path: "/cache/k", body: `{"a":`}, 400},
		{"two JSON values", request{method: "PUT", path: "/cache/k", body: `1 2`}, 400},
		{"empty body", request{method: "PUT", path: "/cache/k", header: map[string]string{"Content-Type": "application/json"}}, 400},
		{"body too large", request{method: "PUT", path: "/cache/k", body: `"` + strings.Repeat("x", 5000) + `"`}, 413},
		{"session body too large", request{method: "POST", path: "/session", body: `{"a":"` + strings.Repeat("x", 5000) + `"}`}, 413},
		{"text body", request{method: "PUT", path: "/cache/k", body: `1`, header: map[string]string{"Content-Type": "text/plain"}}, 415},
		{"form body", request{method: "POST", path: "/session", body: `{}`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415},
		{"session array", request{method: "POST", path: "/session", body: `[]`}, 400},
		{"session string", request{method: "PUT", path: "/session/s", body: `"x"`}, 400},
		{"session null", request{method: "PUT", path: "/session/s", body: `null`}, 400},
		{"touch not a bool", request{method: "GET", path: "/session/s?touch=maybe"}, 400},
		{"If-None-Match with a tag on PUT", request{method: "PUT", path: "/cache/k", body: `1`, header: map[string]string{"If-None-Match": `"abc"`}}, 400},
		{"malformed If-Match", request{method: "PUT", path: "/cache/k", body: `1`, header: map[string]string{"If-Match": `abc`}}, 400},
		{"both preconditions", request{method: "PUT", path: "/cache/k", body: `1`, header: map[string]string{"If-Match": `*`, "If-None-Match": `*`}}, 400},
		{"incr by text", request{method: "POST", path: "/cache/k/incr?by=abc"}, 400},
		{"incr by fraction", request{method: "POST", path: "/cache/k/incr?by=1.5"}, 400},
		{"incr by overflow", request{method: "POST", path: "/cache/k/incr?by=9223372036854775808"}, 400},
		{"limit zero", request{method: "POST", path: "/ratelimit/k/incr?limit=0"}, 400},
		{"limit text", request{method: "POST", path: "/ratelimit/k/incr?limit=abc"}, 400},
		{"window zero", request{method: "POST", path: "/ratelimit/k/incr?window=0"}, 400},
		{"window above MAX_TTL", request{method: "POST", path: "/ratelimit/k/incr?window=99999999999"}, 400},
		{"cost zero", request{method: "POST", path: "/ratelimit/k/incr?cost=0"}, 400},
		{"cost above limit", request{method: "POST", path: "/ratelimit/k/incr?limit=2&cost=3"}, 400},
		{"unknown algorithm", request{method: "POST", path: "/ratelimit/k/incr?limit=2&algorithm=leaky"}, 400},
		{"algorithm twice", request{method: "POST", path: "/ratelimit/k/incr?limit=2&algorithm=gcra&algorithm=fixed"}, 400},
		{"sliding without limit", request{method: "POST", path: "/ratelimit/k/incr?algorithm=sliding"}, 400},
		{"gcra without limit", request{method: "GET", path: "/ratelimit/k?algorithm=gcra"}, 400},
		{"burst with fixed", request{method: "POST", path: "/ratelimit/k/incr?limit=2&burst=3"}, 400},
		{"burst with sliding", request{method: "POST", path: "/ratelimit/k/incr?algorithm=sliding&limit=2&burst=3"}, 400},
		{"burst zero", request{method: "POST", path: "/ratelimit/k/incr?algorithm=gcra&limit=2&burst=0"}, 400},
		{"sliding cost above limit", request{method: "POST", path: "/ratelimit/k/incr?algorithm=sliding&limit=2&cost=3"}, 400},
		{"gcra cost above burst", request{method: "POST", path: "/ratelimit/k/incr?algorithm=gcra&limit=5&burst=2&cost=3"}, 400},
		{"sliding limit too large to count exactly", request{method: "POST", path: "/ratelimit/k/incr?algorithm=sliding&limit=5000000&window=2592000"}, 400},
		{"gcra burst too large to count exactly", request{method: "GET", path: "/ratelimit/k?algorithm=gcra&limit=1&burst=5000000&window=2592000"}, 400},
		{"peek limit text", request{method: "GET", path: "/ratelimit/k?limit=x"}, 400},
		{"invalid UTF-8 in a cache value", request{method: "PUT", path: "/cache/k", body: "\"\xff\""}, 400},
		{"invalid UTF-8 in a member name", request{method: "PUT", path: "/session/s", body: "{\"\xc3\":1}"}, 400},
		{"invalid UTF-8 in a new session", request{method: "POST", path: "/session", body: "{\"a\":\"\xed\xa0\x80\"}"}, 400},
		{"invalid UTF-8 in a patch", request{method: "PATCH", path: "/session/s", body: "{\"a\":\"\xff\"}"}, 400},
		{"invalid UTF-8 in a message", request{method: "POST", path: "/publish/c", body: "[\"\xfe\"]"}, 400},
		{"lone surrogate escape", request{method: "PUT", path: "/cache/k", body: `"\ud800"`}, 400},
		{"lone low surrogate escape", request{method: "PUT", path: "/cache/k", body: `"a\udc00b"`}, 400},
		{"high surrogate without its pair", request{method: "PUT", path: "/cache/k", body: `"\ud800\u0041"`}, 400},
		{"nested past the limit", request{method: "PUT", path: "/cache/k", body: strings.Repeat("[", 129) + strings.Repeat("]", 129)}, 400},
		{"session nested past the limit", request{method: "PUT", path: "/session/s", body: strings.Repeat(`{"a":`, 129) + "1" + strings.Repeat("}", 129)}, 400},
		{"patch nested past the limit", request{method: "PATCH", path: "/session/s", body: strings.Repeat(`{"a":`, 129) + "1" + strings.Repeat("}", 129)}, 400},
		{"message nested past the limit", request{method: "POST", path: "/publish/c", body: strings.Repeat(`[{"a":`, 65) + "1" + strings.Repeat("}]", 65)}, 400},
	}
	b := miniBackend(t)
	g := startGateway(t, b)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const id = "bad-input-request"
			if tt.req.header == nil {
				tt.req.header = map[string]string{}
			}
			tt.req.header["X-Request-Id"] = id + "-" + strings.ReplaceAll(tt.name, " ", "-")
			resp := g.do(tt.req)
			if resp.status != tt.want {
				t.Fatalf("%s %.60s: status = %d, want %d; body %s", tt.req.method, tt.req.path, resp.status, tt.want, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			p := decode[struct {
				Type, Title, Detail string
				Status              int
				RequestID           string `json:"request_id"`
			}](t, "problem", resp.body)
			if p.Status != tt.want || p.Detail == "" || !strings.HasPrefix(p.Type, "urn:redis-gateway:problem:") || p.RequestID != tt.req.header["X-Request-Id"] {
				t.Errorf("problem = %s, want status %d, a type, a detail and the request id", resp.body, tt.want)
			}
			if n := b.rdb.DBSize(ctx).Val(); n != 0 {
				t.Errorf("bad input wrote %d keys to Redis", n)
			}
			if n := logLinesFor(t, g.logs.String(), tt.req.header["X-Request-Id"]); n != 1 {
				t.Errorf("request logged %d times, want once", n)
			}
		})
	}
}

// logLinesFor counts the JSON log lines that carry request id id.
func logLinesFor(t *testing.T, logs, id string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["request_id"] == id {
			n++
		}
	}
	return n
}

// A key of exactly 1024 bytes is the longest allowed.
func TestKeyLengthBoundary(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(request{method: "PUT", path: "/cache/" + strings.Repeat("é", 512), body: `1`}, http.StatusCreated)
	g.must(request{method: "PUT", path: "/cache/" + strings.Repeat("é", 512) + "x", body: `1`}, http.StatusBadRequest)
}

// A JSON media type with a +json suffix is JSON; no Content-Type is accepted.
func TestJSONMediaTypes(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	for _, ct := range []string{"application/json; charset=utf-8", "application/merge-patch+json", ""} {
		g.must(request{method: "PUT", path: "/cache/k", body: `1`, header: map[string]string{"Content-Type": ct}}, http.StatusCreated)
		g.must(request{method: "DELETE", path: "/cache/k"}, http.StatusNoContent)
	}
}

// A key is decoded exactly once from the path as sent, whatever else the
// path holds: "%2F" stays inside its segment even next to a character
// (here "|") that net/http would re-encode, on every route with a key.
func TestRawPathKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()

		// Read as /cache/a|/incr, this would increment the key "a|".
		g.must(request{method: "POST", path: "/cache/a|%2Fincr"}, http.StatusMethodNotAllowed)
		if n := b.rdb.Exists(ctx, "cache:a|").Val(); n != 0 {
			t.Errorf(`POST /cache/a|%%2Fincr created the key "cache:a|"`)
		}
		g.must(request{method: "POST", path: "/cache/a|%2Fb/incr"}, http.StatusOK)
		if v := b.rdb.Get(ctx, "cache:a|/b").Val(); v != "1" {
			t.Errorf(`POST /cache/a|%%2Fb/incr: "cache:a|/b" = %q, want 1`, v)
		}
		g.must(request{method: "PUT", path: "/cache/c|%2Fd%2541", body: `1`}, http.StatusCreated)
		if v := b.rdb.Get(ctx, "cache:c|/d%41").Val(); v != "1" {
			t.Errorf(`PUT /cache/c|%%2Fd%%2541: "cache:c|/d%%41" = %q, want 1`, v)
		}
		g.must(request{method: "GET", path: "/cache/c|%2Fd%2541/ttl"}, http.StatusOK)
		g.must(request{method: "POST", path: "/cache/c|%2Fd%2541/expire?ttl=60"}, http.StatusOK)

		g.must(request{method: "PUT", path: "/session/s|%2Fx", body: `{}`}, http.StatusCreated)
		if n := b.rdb.Exists(ctx, "session:s|/x").Val(); n != 1 {
			t.Errorf(`PUT /session/s|%%2Fx did not write "session:s|/x"`)
		}
		g.must(request{method: "PATCH", path: "/session/s|%2Fx", body: `{"a":1}`}, http.StatusOK)

		// Read as /ratelimit/r|/incr, this would count the key "r|".
		g.must(request{method: "POST", path: "/ratelimit/r|%2Fincr"}, http.StatusMethodNotAllowed)
		if got := decode[struct{ Count int64 }](t, "ratelimit", g.must(request{method: "POST", path: "/ratelimit/r|%2Fb/incr"}, http.StatusOK).body); got.Count != 1 {
			t.Errorf("POST /ratelimit/r|%%2Fb/incr: count = %d, want 1", got.Count)
		}
		if n := b.rdb.Exists(ctx, "ratelimit:{r|/b}").Val(); n != 1 {
			t.Errorf(`POST /ratelimit/r|%%2Fb/incr did not count "ratelimit:{r|/b}"`)
		}

		// Read as /lock/l|/refresh, this would be a refresh (400 without a token).
		g.must(request{method: "POST", path: "/lock/l|%2Frefresh"}, http.StatusCreated)
		if n := b.rdb.Exists(ctx, "lock:{l|/refresh}").Val(); n != 1 {
			t.Errorf(`POST /lock/l|%%2Frefresh did not take the lock "l|/refresh"`)
		}

		sub := g.openStream(request{method: "GET", path: "/subscribe/p|%2Fq"})
		g.must(request{method: "POST", path: "/publish/p|%2Fq", body: `1`}, http.StatusOK)
		if got, want := sub.next(), `data: {"channel":"p|/q","message":1}`; !strings.Contains(got, want) {
			t.Errorf("GET /subscribe/p|%%2Fq: event %q, want %s", got, want)
		}
	})
}

// The command API's path form routes on the path as sent too, with the
// token in the query or not.
func TestRawPathCommand(t *testing.T) {
	g := startGateway(t, serverBackend(t))
	g.must(request{method: "GET", path: "/redis/set/a|%2Fb/v"}, http.StatusOK)
	g.must(request{method: "GET", path: "/redis/set/c|%2Fd/w?_token=" + testToken, token: "-"}, http.StatusOK)
	for key, want := range map[string]string{"a|%2Fb": `{"result":"v"}`, "c|%2Fd": `{"result":"w"}`} {
		if got := g.must(request{method: "GET", path: "/redis/get/" + key}, http.StatusOK).body; got != want {
			t.Errorf("GET /redis/get/%s = %s, want %s", key, got, want)
		}
	}
	sub := g.openStream(request{method: "POST", path: "/redis/subscribe/p|%2Fq", body: `[]`})
	if got := sub.next(); got != "data: subscribe,p|/q,1" {
		t.Errorf("POST /redis/subscribe/p|%%2Fq: first frame %q, want data: subscribe,p|/q,1", got)
	}
}

// The nesting limit (MAX_JSON_DEPTH, 128 by default) admits exactly its
// depth; valid UTF-8 and escaped surrogate pairs are JSON like any other.
func TestJSONLimitsBoundary(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(request{method: "PUT", path: "/cache/k", body: strings.Repeat("[", 128) + strings.Repeat("]", 128)}, http.StatusCreated)
	g.must(request{method: "PUT", path: "/session/s", body: strings.Repeat(`{"a":`, 128) + "1" + strings.Repeat("}", 128)}, http.StatusCreated)
	g.must(request{method: "PATCH", path: "/session/s", body: strings.Repeat(`{"a":`, 128) + "2" + strings.Repeat("}", 128)}, http.StatusOK)
	g.must(request{method: "PUT", path: "/cache/k", body: `"é 😀 \ud83d\ude00 [{\"\\"`}, http.StatusNoContent)
	if got := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK).body; got != `"é 😀 \ud83d\ude00 [{\"\\"` {
		t.Errorf("GET /cache/k = %s, want the value as sent", got)
	}

	small := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.MaxJSONDepth = 2 }))
	small.must(request{method: "PUT", path: "/cache/k", body: `[[1]]`}, http.StatusCreated)
	small.must(request{method: "PUT", path: "/cache/k", body: `[[[1]]]`}, http.StatusBadRequest)
	small.must(request{method: "PUT", path: "/cache/k", body: `["[[[[["]`}, http.StatusNoContent)
}

// A merge patch nested 9,990 deep in 60 KB is refused at once, on every
// backend, and leaves the session as it was.
func TestDeepMergePatch(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 9990) + "1" + strings.Repeat("}", 9990)
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b, withConfig(func(c *handlers.Config) { c.MaxBodyBytes = 64 << 10 }))
		g.must(request{method: "PUT", path: "/session/deep", body: `{"a":{"b":1}}`}, http.StatusCreated)
		start := time.Now()
		resp := g.must(request{method: "PATCH", path: "/session/deep", body: deep}, http.StatusBadRequest)
		t.Logf("PATCH of %d bytes nested 9990 deep: %v", len(deep), time.Since(start))
		if !strings.Contains(resp.body, "nested") {
			t.Errorf("PATCH /session/deep: detail %s, want it to say the body is nested too deep", resp.body)
		}
		if got := g.must(request{method: "GET", path: "/session/deep"}, http.StatusOK).body; got != `{"a":{"b":1}}` {
			t.Errorf("GET /session/deep = %s, want it unchanged", got)
		}
		g.must(request{method: "PUT", path: "/session/deep", body: deep}, http.StatusBadRequest)
		g.must(request{method: "PUT", path: "/cache/deep", body: deep}, http.StatusBadRequest)
	})
}

// What the gateway repeats of a client's input, in a 403 or its access log
// line, is cut at a few hundred bytes and says the full length: a denied
// 1 MB key does not come back whole.
func TestEchoLimits(t *testing.T) {
	const secret = "orders-secret-000000001"
	set, err := access.NewSet(nil, []byte(`{"tokens": [{"name": "orders", "secret": "`+secret+`", "keys": ["orders:*"], "channels": ["orders.*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b, withConfig(func(c *handlers.Config) {
			c.TokenSet = func() *access.Set { return set }
			c.MaxBodyBytes = 2 << 20
		}))
		huge := strings.Repeat("k", 1<<20)
		long := strings.Repeat("x", 1000)
		tests := []struct {
			req    request
			status int
			length int // of the input echoed
		}{
			{request{method: "POST", path: "/redis", body: `["GET","` + huge + `"]`}, 403, len(huge)},
			{request{method: "POST", path: "/redis", body: `["SET","` + huge + `","v"]`}, 403, len(huge)},
			{request{method: "POST", path: "/redis", body: `["KEYS","` + huge + `"]`}, 403, len(huge)},
			{request{method: "POST", path: "/redis", body: `["PUBLISH","` + huge + `","m"]`}, 403, len(huge)},
			{request{method: "GET", path: "/cache/" + long}, 403, len(long)},
			{request{method: "PUT", path: "/session/" + long, body: `{}`}, 403, len(long)},
			{request{method: "POST", path: "/publish/" + long, body: `1`}, 403, len(long)},
			{request{method: "PUT", path: "/cache/orders:1", body: `1`, header: map[string]string{"If-Match": huge[:60000]}}, 400, 60000},
		}
		for _, tt := range tests {
			tt.req.token = secret
			resp := g.must(tt.req, tt.status)
			if len(resp.body) > 2048 || !strings.Contains(resp.body, fmt.Sprintf("(%d bytes)", tt.length)) {
				t.Errorf("%s %.40s: %d-byte answer %.300s..., want at most 2048 bytes that say the input's length", tt.req.method, tt.req.path, len(resp.body), resp.body)
			}
			id := resp.header.Get("X-Request-Id")
			for _, line := range strings.Split(g.logs.String(), "\n") {
				if strings.Contains(line, id) && (len(line) > 2048 || !strings.Contains(line, fmt.Sprintf("(%d bytes)", tt.length))) {
					t.Errorf("%s %.40s: %d-byte log line %.300s..., want at most 2048 bytes that say the input's length", tt.req.method, tt.req.path, len(line), line)
				}
			}
		}
	})
}

// Invalid UTF-8 is refused on every backend, before anything reaches Redis,
// on the routes and through the command API alike.
func TestInvalidUTF8Refused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		for _, req := range []request{
			{method: "PUT", path: "/cache/u", body: "\"\xff\""},
			{method: "PUT", path: "/session/u", body: "{\"a\":\"\xc3\"}"},
			{method: "POST", path: "/redis", body: "[\"SET\",\"u\",\"\xff\"]"},
			{method: "POST", path: "/redis/pipeline", body: "[[\"SET\",\"u\",\"\xff\"]]"},
		} {
			g.must(req, http.StatusBadRequest)
		}
		for _, key := range []string{"cache:u", "session:u", "u"} {
			if n := b.rdb.Exists(ctx, key).Val(); n != 0 {
				t.Errorf("invalid UTF-8 reached Redis: %s exists", key)
			}
		}
		g.must(request{method: "PUT", path: "/session/u", body: `{"a":1}`}, http.StatusCreated)
		g.must(request{method: "PATCH", path: "/session/u", body: "{\"a\":\"\xff\"}"}, http.StatusBadRequest)
		if got := g.must(request{method: "GET", path: "/session/u"}, http.StatusOK).body; got != `{"a":1}` {
			t.Errorf("GET /session/u = %s after a refused patch, want it unchanged", got)
		}
	})
}
