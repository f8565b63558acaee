package handlers_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// cmd is a call to the command API and the answer a client would check.
type cmd struct {
	req    request
	status int
	body   string // exact, unless prefix is set
	prefix bool
}

func runCmds(t *testing.T, g *gateway, cmds []cmd) {
	t.Helper()
	for _, c := range cmds {
		resp := g.do(c.req)
		if resp.status != c.status {
			t.Errorf("%s %s %s: status = %d, want %d; body %s", c.req.method, c.req.path, c.req.body, resp.status, c.status, resp.body)
			continue
		}
		if c.prefix && !strings.HasPrefix(resp.body, c.body) || !c.prefix && resp.body != c.body {
			t.Errorf("%s %s %s: body = %s, want %s", c.req.method, c.req.path, c.req.body, resp.body, c.body)
		}
		if c.req.method != "HEAD" && resp.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type = %q, want application/json", c.req.method, c.req.path, resp.header.Get("Content-Type"))
		}
	}
}

func post(path, body string) request { return request{method: "POST", path: path, body: body} }
func get(path string) request        { return request{method: "GET", path: path} }
func ok(result string) string        { return `{"result":` + result + `}` }
func cmdErr(msg string) string       { return `{"error":` + jsonString(msg) + `}` }
func jsonString(s string) string     { b, _ := json.Marshal(s); return string(b) }
func b64(s string) string            { return base64.StdEncoding.EncodeToString([]byte(s)) }
func with(r request, h, v string) request {
	if r.header == nil {
		r.header = map[string]string{}
	}
	r.header[h] = v
	return r
}

func TestCommandBodyForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "MGET over two slots")
		g := startGateway(t, b)
		runCmds(t, g, []cmd{
			{req: post("/redis", `["SET","foo","bar","EX",100]`), status: 200, body: ok(`"OK"`)},
			{req: post("/redis", `["get","foo"]`), status: 200, body: ok(`"bar"`)},
			{req: post("/redis", `["GET","missing"]`), status: 200, body: ok(`null`)},
			// Numbers go to Redis exactly as written, booleans as words.
			{req: post("/redis", `["SET","n",12345678901234567890]`), status: 200, body: ok(`"OK"`)},
			{req: post("/redis", `["GET","n"]`), status: 200, body: ok(`"12345678901234567890"`)},
			{req: post("/redis", `["SET","f",1.50]`), status: 200, body: ok(`"OK"`)},
			{req: post("/redis", `["GET","f"]`), status: 200, body: ok(`"1.50"`)},
			{req: post("/redis", `["SET","t",true]`), status: 200, body: ok(`"OK"`)},
			{req: post("/redis", `["GET","t"]`), status: 200, body: ok(`"true"`)},
			{req: post("/redis", `["INCR","counter"]`), status: 200, body: ok(`1`)},
			{req: post("/redis", `["HSET","h","a","1","b","2"]`), status: 200, body: ok(`2`)},
			{req: post("/redis", `["HGETALL","h"]`), status: 200, body: ok(`["a","1","b","2"]`)},
			{req: post("/redis", `["ZADD","z","1.5","m","2","n"]`), status: 200, body: ok(`2`)},
			{req: post("/redis", `["ZRANGE","z",0,-1,"WITHSCORES"]`), status: 200, body: ok(`["m","1.5","n","2"]`)},
			{req: post("/redis", `["LRANGE","nolist",0,-1]`), status: 200, body: ok(`[]`)},
			{req: post("/redis", `["MGET","foo","missing"]`), status: 200, body: ok(`["bar",null]`)},
			{req: post("/redis", `["SET","html","<a>&</a>"]`), status: 200, body: ok(`"OK"`)},
			{req: post("/redis", `["GET","html"]`), status: 200, body: ok(`"<a>&</a>"`)},
			// Redis's errors, verbatim.
			{req: post("/redis", `["INCR","foo"]`), status: 400, body: cmdErr("ERR value is not an integer or out of range")},
			{req: post("/redis", `["LPUSH","foo","x"]`), status: 400, body: cmdErr("WRONGTYPE Operation against a key holding the wrong kind of value")},
			{req: post("/redis", `["NOSUCHCOMMAND","x"]`), status: 400, body: `{"error":"ERR unknown command`, prefix: true},
			// Bad requests, in the same envelope.
			{req: post("/redis", `[]`), status: 400, body: cmdErr("ERR a command needs at least its name")},
			{req: post("/redis", `["SET","k",null]`), status: 400, body: cmdErr("ERR argument 3 must be a string, number or boolean")},
			{req: post("/redis", `["SET","k",{"a":1}]`), status: 400, body: cmdErr("ERR argument 3 must be a string, number or boolean")},
			{req: post("/redis", `{"cmd":"GET"}`), status: 400, body: `{"error":"ERR the body must be a JSON array of commands`, prefix: true},
			{req: post("/redis", `["GET","a"] ["GET","b"]`), status: 400, body: cmdErr("ERR the body must be one JSON array")},
			{req: post("/redis", `["GET"`), status: 400, body: `{"error":"ERR the body must be a JSON array`, prefix: true},
			// Decoding would turn these into U+FFFD and write other bytes.
			{req: post("/redis", "[\"SET\",\"k\",\"\xff\"]"), status: 400, body: cmdErr("ERR the body is not valid UTF-8")},
			{req: post("/redis", `["SET","k","\udc00"]`), status: 400, body: cmdErr("ERR the body holds a lone surrogate escape (at byte 12)")},
			{req: post("/redis/pipeline", "[[\"SET\",\"k\",\"\xc3\"]]"), status: 400, body: cmdErr("ERR the body is not valid UTF-8")},
			{req: post("/redis/multi-exec", "[[\"SET\",\"k\",\"\xc3\"]]"), status: 400, body: cmdErr("ERR the body is not valid UTF-8")},
			{req: post("/redis", `["SET","k","\ud83d\ude00"]`), status: 200, body: `{"result":"OK"}`},
			{req: post("/redis", strings.Repeat("[", 129)+strings.Repeat("]", 129)), status: 400, body: cmdErr("ERR the body is nested more than 128 arrays and objects deep")},
		})
	})
}

func TestCommandPathForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "MGET over two slots, DBSIZE of one server")
		g := startGateway(t, b)
		runCmds(t, g, []cmd{
			{req: get("/redis/set/p/hello%2Fworld"), status: 200, body: ok(`"OK"`)},
			{req: get("/redis/get/p"), status: 200, body: ok(`"hello/world"`)},
			{req: get("/redis/GET/p"), status: 200, body: ok(`"hello/world"`)},
			// %25 is decoded once: the argument is "%41", not "A".
			{req: get("/redis/set/pct/%2541"), status: 200, body: ok(`"OK"`)},
			{req: get("/redis/get/pct"), status: 200, body: ok(`"%41"`)},
			// The body is the last argument, then the query's NAME value pairs.
			{req: post("/redis/set/q?EX=100", "raw body"), status: 200, body: ok(`"OK"`)},
			{req: get("/redis/get/q"), status: 200, body: ok(`"raw body"`)},
			{req: request{method: "PUT", path: "/redis/set/q2", body: `{"json":"as text"}`}, status: 200, body: ok(`"OK"`)},
			{req: get("/redis/get/q2"), status: 200, body: ok(`"{\"json\":\"as text\"}"`)},
			{req: post("/redis/set/q?NX", "again"), status: 200, body: ok(`null`)},
			{req: get("/redis/set/sp/a?GET"), status: 200, body: ok(`null`)},
			{req: get("/redis/echo/a?b=c+d"), status: 400, body: `{"error":"ERR wrong number of arguments`, prefix: true},
			{req: get("/redis/dbsize"), status: 200, body: ok(`5`)},
			{req: get("/redis/mget/p/nope"), status: 200, body: ok(`["hello/world",null]`)},
			{req: request{method: "HEAD", path: "/redis/get/p"}, status: 200, body: ""},
			{req: get("/redis/incr/p"), status: 400, body: cmdErr("ERR value is not an integer or out of range")},
		})
		ttl := g.must(get("/redis/ttl/q"), 200).body
		if ttl != ok("100") && ttl != ok("99") {
			t.Errorf("GET /redis/ttl/q = %s, want 100 (the query's EX 100)", ttl)
		}
		resp := g.do(request{method: "DELETE", path: "/redis/get/p"})
		if resp.status != 405 || resp.header.Get("Allow") != "GET, HEAD, POST, PUT" || resp.body != cmdErr("ERR DELETE is not allowed here") {
			t.Errorf("DELETE /redis/get/p: %d Allow %q %s, want 405 with the envelope", resp.status, resp.header.Get("Allow"), resp.body)
		}
		resp = g.do(request{method: "GET", path: "/redis/pipeline"})
		if resp.status != 400 || !strings.HasPrefix(resp.body, `{"error":"ERR unknown command`) {
			t.Errorf("GET /redis/pipeline: %d %s, want Redis's unknown command (the path form)", resp.status, resp.body)
		}
	})
}

// With Upstash-Encoding: base64, every string at any depth is base64 but
// "OK"; numbers, nulls and error texts are not.
func TestCommandBase64(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "MGET over two slots")
		g := startGateway(t, b)
		enc := func(r request) request { return with(r, "Upstash-Encoding", "base64") }
		text := "héllo 世界 🙂"
		binary := "\x00\x01\xfe\xff end"
		runCmds(t, g, []cmd{
			{req: enc(post("/redis", `["SET","u",`+jsonString(text)+`]`)), status: 200, body: ok(`"OK"`)},
			{req: enc(post("/redis", `["GET","u"]`)), status: 200, body: ok(`"` + b64(text) + `"`)},
			{req: enc(post("/redis/set/bin", binary)), status: 200, body: ok(`"OK"`)},
			{req: enc(get("/redis/get/bin")), status: 200, body: ok(`"` + b64(binary) + `"`)},
			{req: enc(post("/redis", `["SET","okvalue","OK"]`)), status: 200, body: ok(`"OK"`)},
			{req: enc(post("/redis", `["GET","okvalue"]`)), status: 200, body: ok(`"OK"`)},
			{req: enc(post("/redis", `["RPUSH","l","a","b"]`)), status: 200, body: ok(`2`)},
			{req: enc(post("/redis", `["LRANGE","l",0,-1]`)), status: 200, body: ok(`["` + b64("a") + `","` + b64("b") + `"]`)},
			{req: enc(post("/redis", `["MGET","u","missing"]`)), status: 200, body: ok(`["` + b64(text) + `",null]`)},
			{req: enc(post("/redis", `["INCR","u"]`)), status: 400, body: cmdErr("ERR value is not an integer or out of range")},
			{req: enc(post("/redis/pipeline", `[["GET","u"],["TYPE","l"],["INCR","c"],["INCR","u"]]`)), status: 200,
				body: `[` + ok(`"`+b64(text)+`"`) + `,` + ok(`"`+b64("list")+`"`) + `,` + ok(`1`) + `,` + cmdErr("ERR value is not an integer or out of range") + `]`},
		})
		// Without base64, bytes that are not UTF-8 cannot survive JSON; text can.
		runCmds(t, g, []cmd{{req: post("/redis", `["GET","u"]`), status: 200, body: ok(jsonString(text))}})
	})
}

func TestCommandRESP2Format(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	resp2 := func(r request) request { return with(r, "Upstash-Response-Format", "resp2") }
	g.must(post("/redis", `["RPUSH","l","a","bc"]`), 200)
	tests := []struct {
		req  request
		want string
	}{
		{resp2(post("/redis", `["LRANGE","l",0,-1]`)), "*2\r\n$1\r\na\r\n$2\r\nbc\r\n"},
		{resp2(post("/redis", `["GET","missing"]`)), "$-1\r\n"},
		{resp2(get("/redis/llen/l")), ":2\r\n"},
		{resp2(post("/redis/pipeline", `[["LLEN","l"],["INCR","l"]]`)),
			"*2\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
	}
	for _, tt := range tests {
		resp := g.must(tt.req, 200)
		if resp.body != tt.want || resp.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s %s: %q (%s), want %q", tt.req.method, tt.req.path, resp.body, resp.header.Get("Content-Type"), tt.want)
		}
	}
	runCmds(t, g, []cmd{
		// Errors keep the JSON envelope: the clients parse every error body.
		{req: resp2(post("/redis", `["INCR","l"]`)), status: 400, body: cmdErr("WRONGTYPE Operation against a key holding the wrong kind of value")},
		{req: with(post("/redis", `["GET","l"]`), "Upstash-Response-Format", "resp3"), status: 400,
			body: cmdErr(`ERR unknown Upstash-Response-Format "resp3": want json or resp2`)},
		{req: with(resp2(post("/redis", `["GET","l"]`)), "Upstash-Encoding", "base64"), status: 400,
			body: cmdErr("ERR Upstash-Response-Format: resp2 cannot be combined with Upstash-Encoding: base64")},
	})
}

func TestCommandSyncToken(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	tests := []struct{ sent, want string }{
		{"", "0"},
		{"abc-123", "abc-123"},
		{"has space", "0"},
		{strings.Repeat("x", 129), "0"},
	}
	for _, tt := range tests {
		req := post("/redis", `["PING"]`)
		if tt.sent != "" {
			req = with(req, "Upstash-Sync-Token", tt.sent)
		}
		if got := g.must(req, 200).header.Get("Upstash-Sync-Token"); got != tt.want {
			t.Errorf("sync token %q: answered %q, want %q", tt.sent, got, tt.want)
		}
	}
}

func TestCommandAuth(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	runCmds(t, g, []cmd{
		{req: request{method: "POST", path: "/redis", body: `["PING"]`, token: "-"}, status: 401, body: cmdErr("ERR missing bearer token")},
		{req: request{method: "POST", path: "/redis", body: `["PING"]`, token: "wrong"}, status: 401, body: cmdErr("ERR invalid bearer token")},
		{req: request{method: "GET", path: "/redis/ping?_token=wrong", token: "-"}, status: 401, body: cmdErr("ERR invalid bearer token")},
		{req: request{method: "POST", path: "/redis/pipeline", body: `[["PING"]]`, token: "-"}, status: 401, body: cmdErr("ERR missing bearer token")},
		// ?_token= admits, on every form, and never becomes an argument:
		// ECHO with a third argument would be an arity error.
		{req: request{method: "GET", path: "/redis/echo/hi?_token=" + testToken, token: "-"}, status: 200, body: ok(`"hi"`)},
		{req: request{method: "GET", path: "/redis/set/k/v?_token=" + testToken + "&EX=60", token: "-"}, status: 200, body: ok(`"OK"`)},
		{req: request{method: "GET", path: "/redis/ttl/k?_token=" + testToken, token: "-"}, status: 200, body: ok(`60`)},
		{req: request{method: "POST", path: "/redis?_token=" + testToken, body: `["ECHO","hi"]`, token: "-"}, status: 200, body: ok(`"hi"`)},
		{req: request{method: "POST", path: "/redis/pipeline?_token=" + testToken, body: `[["ECHO","hi"]]`, token: "-"}, status: 200, body: `[` + ok(`"hi"`) + `]`},
		// The header wins, and the parameter is still dropped.
		{req: request{method: "GET", path: "/redis/echo/hi?_token=wrong"}, status: 200, body: ok(`"hi"`)},
	})
	if resp := g.do(request{method: "GET", path: "/redis/ping", token: "-"}); !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET /redis/ping without a token: %d without WWW-Authenticate: Bearer", resp.status)
	}
	// Only the command API takes the query parameter.
	g.must(request{method: "GET", path: "/cache/k?_token=" + testToken, token: "-"}, http.StatusUnauthorized)
	if strings.Contains(g.logs.String(), testToken) {
		t.Errorf("the token appears in the logs")
	}
}

// With auth off, _token is still never an argument.
func TestCommandQueryTokenIgnoredWithoutAuth(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.AuthDisabled = true }))
	runCmds(t, g, []cmd{{req: request{method: "GET", path: "/redis/echo/hi?_token=x", token: "-"}, status: 200, body: ok(`"hi"`)}})
}

func TestCommandBodyLimit(t *testing.T) {
	g := startGateway(t, miniBackend(t)) // MAX_BODY_BYTES is 4 KiB in the harness
	big := strings.Repeat("x", 5<<10)
	runCmds(t, g, []cmd{
		{req: post("/redis", `["SET","k","`+big+`"]`), status: 413, body: cmdErr("ERR max request size exceeded")},
		{req: post("/redis/set/k", big), status: 413, body: cmdErr("ERR max request size exceeded")},
		{req: post("/redis/pipeline", `[["SET","k","`+big+`"]]`), status: 413, body: cmdErr("ERR max request size exceeded")},
		{req: post("/redis/multi-exec", `[["SET","k","`+big+`"]]`), status: 413, body: cmdErr("ERR max request size exceeded")},
		{req: post("/redis/set/k", big[:3<<10]), status: 200, body: ok(`"OK"`)},
	})
}

// Refused commands are refused on every request form, with an error naming
// them, and never reach Redis.
func TestRefusedCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "EXISTS over two slots")
		g := startGateway(t, b)
		if err := b.rdb.Set(context.Background(), "survivor", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"FLUSHALL"}, "ERR command 'flushall' is not allowed through the gateway"},
			{[]string{"flushdb"}, "ERR command 'flushdb' is not allowed through the gateway"},
			{[]string{"CONFIG", "SET", "maxmemory", "1"}, "ERR command 'config' is not allowed through the gateway"},
			{[]string{"SCRIPT", "FLUSH"}, "ERR command 'script flush' is not allowed through the gateway"},
			{[]string{"FUNCTION", "DELETE", "lib"}, "ERR command 'function delete' is not allowed through the gateway"},
			{[]string{"SHUTDOWN", "NOSAVE"}, "ERR command 'shutdown' is not allowed through the gateway"},
			{[]string{"DEBUG", "SLEEP", "0"}, "ERR command 'debug' is not allowed through the gateway"},
			{[]string{"SWAPDB", "0", "1"}, "ERR command 'swapdb' is not allowed through the gateway"},
			{[]string{"CLIENT", "KILL", "ID", "1"}, "ERR command 'client kill' is not allowed through the gateway"},
			{[]string{"CLIENT", "SETNAME", "x"}, "ERR command 'client setname' changes connection state and is not supported over HTTP"},
			{[]string{"SELECT", "1"}, "ERR command 'select' changes connection state and is not supported over HTTP"},
			{[]string{"MONITOR"}, "ERR command 'monitor' changes connection state and is not supported over HTTP"},
			{[]string{"BLPOP", "survivor", "0"}, "ERR blocking command 'blpop' is not supported over HTTP"},
			{[]string{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, "ERR blocking command 'xread' is not supported over HTTP"},
			{[]string{"WAIT", "1", "0"}, "ERR blocking command 'wait' is not supported over HTTP"},
			{[]string{"MULTI"}, "ERR command 'multi' is not supported: send the whole transaction to /redis/multi-exec"},
			{[]string{"WATCH", "survivor"}, "ERR command 'watch' is not supported: send the whole transaction to /redis/multi-exec"},
			{[]string{"SUBSCRIBE", "c"}, "ERR command 'subscribe' is only served as an event stream: POST /redis/subscribe/{channel} or /redis/psubscribe/{pattern}"},
		}
		for _, tt := range tests {
			body, _ := json.Marshal(tt.args)
			path := "/redis/" + strings.Join(tt.args, "/")
			runCmds(t, g, []cmd{
				{req: post("/redis", string(body)), status: 400, body: cmdErr(tt.want)},
				{req: get(path), status: 400, body: cmdErr(tt.want)},
				{req: post("/redis/pipeline", `[["SET","p","1"],`+string(body)+`]`), status: 200, body: `[` + ok(`"OK"`) + `,` + cmdErr(tt.want) + `]`},
				{req: post("/redis/multi-exec", `[["SET","m","1"],`+string(body)+`]`), status: 400,
					body: cmdErr("EXECABORT Transaction discarded because of previous errors. (command 2: " + tt.want + ")")},
			})
		}
		if n, err := b.rdb.Exists(context.Background(), "survivor", "m").Result(); err != nil || n != 1 {
			t.Errorf("after the refused commands: %d of survivor and m exist (%v), want only survivor", n, err)
		}
		// Their harmless relatives pass.
		runCmds(t, g, []cmd{
			{req: post("/redis", `["XADD","s","1-1","f","v"]`), status: 200, body: ok(`"1-1"`)},
			{req: post("/redis", `["XREAD","COUNT","1","STREAMS","s","0"]`), status: 200, body: ok(`[["s",[["1-1",["f","v"]]]]]`)},
			{req: post("/redis", `["XREAD","STREAMS","block","0"]`), status: 200, body: ok(`null`)},
			{req: post("/redis", `["SCRIPT","EXISTS","0000000000000000000000000000000000000000"]`), status: 200, body: ok(`[0]`)},
		})
	})
}

func TestPipeline(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		runCmds(t, g, []cmd{
			{req: post("/redis/pipeline", `[["SET","a","1"],["INCR","a"],["LPUSH","a","x"],["GET","missing"],["GET","a"]]`), status: 200,
				body: `[` + ok(`"OK"`) + `,` + ok(`2`) + `,` + cmdErr("WRONGTYPE Operation against a key holding the wrong kind of value") + `,` + ok(`null`) + `,` + ok(`"2"`) + `]`},
			{req: post("/redis/pipeline", `[]`), status: 400, body: cmdErr("ERR the body must be a non-empty array of commands")},
			{req: post("/redis/pipeline", `[["GET","a"],[]]`), status: 400, body: cmdErr("ERR command 2: a command needs at least its name")},
			{req: post("/redis/pipeline", `["GET","a"]`), status: 400, body: `{"error":"ERR the body must be a JSON array of commands`, prefix: true},
		})
		b.stop()
		resp := g.do(post("/redis/pipeline", `[["GET","a"],["GET","b"]]`))
		if resp.status != 503 || resp.body != cmdErr("ERR redis unavailable") || resp.header.Get("Retry-After") != "1" {
			t.Errorf("pipeline with Redis down: %d %s, want 503 with the envelope", resp.status, resp.body)
		}
	})
}

func TestMultiExec(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "a transaction over several slots")
		g := startGateway(t, b)
		runCmds(t, g, []cmd{
			{req: post("/redis/multi-exec", `[["SET","a","1"],["INCR","a"],["GET","a"]]`), status: 200,
				body: `[` + ok(`"OK"`) + `,` + ok(`2`) + `,` + ok(`"2"`) + `]`},
			// A command failing at run time has its own entry; the rest applied.
			{req: post("/redis/multi-exec", `[["SET","s","x"],["INCR","s"],["SET","after","1"]]`), status: 200,
				body: `[` + ok(`"OK"`) + `,` + cmdErr("ERR value is not an integer or out of range") + `,` + ok(`"OK"`) + `]`},
			// Redis refusing to queue a command rejects all of it.
			{req: post("/redis/multi-exec", `[["SET","rejected","1"],["SET","a"]]`), status: 400,
				body: cmdErr("EXECABORT Transaction discarded because of previous errors. (command 2: ERR wrong number of arguments for 'set' command)")},
			{req: post("/redis/multi-exec", `[]`), status: 400, body: cmdErr("ERR the body must be a non-empty array of commands")},
		})
		if n := b.rdb.Exists(context.Background(), "rejected").Val(); n != 0 {
			t.Errorf("a rejected transaction still set its first key")
		}
		if got := b.rdb.Get(context.Background(), "after").Val(); got != "1" {
			t.Errorf("after a run-time error, the next command's key = %q, want 1", got)
		}
		if b.name == "redis-server" {
			// miniredis never answers an unknown command inside MULTI.
			runCmds(t, g, []cmd{{req: post("/redis/multi-exec", `[["SET","rejected","1"],["NOSUCH"]]`), status: 400,
				body: `{"error":"EXECABORT Transaction discarded because of previous errors. (command 2: ERR unknown command`, prefix: true}})
		}
	})
}

func TestCommandRedisDown(t *testing.T) {
	b := miniBackend(t)
	g := startGateway(t, b, withConfig(func(c *handlers.Config) { c.RequestTimeout = 500 * time.Millisecond }))
	b.stop()
	for _, r := range []request{post("/redis", `["GET","a"]`), get("/redis/get/a"), post("/redis/multi-exec", `[["GET","a"]]`)} {
		resp := g.do(r)
		if resp.status != 503 || resp.body != cmdErr("ERR redis unavailable") || resp.header.Get("Retry-After") != "1" {
			t.Errorf("%s %s with Redis down: %d %s, want 503 in the envelope", r.method, r.path, resp.status, resp.body)
		}
	}
}

// Clients choose command names; the metrics count names outside the Redis
// command set as "other", so they cannot grow the series.
func TestCommandMetricsAreBounded(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(post("/redis", `["SET","a","1"]`), 200)
	g.must(post("/redis", `["FLUSHALL"]`), 400)
	for _, name := range []string{"made-up-1", "made-up-2", "Made-Up-3"} {
		g.must(post("/redis", `["`+name+`","x"]`), 400)
		g.must(post("/redis/pipeline", `[["`+name+`"]]`), 200)
	}
	metrics := g.must(request{method: "GET", path: "/metrics"}, 200).body
	for _, want := range []string{
		`redis_gateway_command_api_commands_total{command="set",result="ok"} 1`,
		`redis_gateway_command_api_commands_total{command="flushall",result="error"} 1`,
		`redis_gateway_command_api_commands_total{command="other",result="error"} 6`,
		`redis_gateway_redis_command_errors_total{command="other"} 6`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(strings.ToLower(metrics), "made-up") {
		t.Errorf("/metrics carries a client's command name as a label")
	}
}

// Scripts written for the hosted service carry a shebang flag Redis rejects;
// the gateway runs them, and EVALSHA with the client's SHA finds them.
func TestScriptsWithHostedServiceFlags(t *testing.T) {
	srv := redistest.Start(t)
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
	g := startGateway(t, b)
	ctx := context.Background()

	script := "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])"
	sha := sha1hex(script)
	// The premise: Redis itself refuses the script.
	if err := b.rdb.Eval(ctx, script, []string{"n"}).Err(); err == nil || !strings.Contains(err.Error(), "Unexpected flag in script shebang") {
		t.Fatalf("Redis ran the flagged script directly (%v); the test proves nothing", err)
	}
	evalBody := func(s string) string {
		return `["EVAL",` + jsonString(s) + `,1,"n"]`
	}
	readOnly := "#!lua flags=no-writes,allow-key-locking\nreturn redis.call('INCR', KEYS[1])"
	runCmds(t, g, []cmd{
		// Before any EVAL, the client's SHA is unknown: NOSCRIPT, as the
		// client expects, and it falls back to EVAL.
		{req: post("/redis", `["EVALSHA","`+sha+`",1,"n"]`), status: 400, body: `{"error":"NOSCRIPT`, prefix: true},
		{req: post("/redis", evalBody(script)), status: 200, body: ok(`1`)},
		// From now on EVALSHA with the SHA of the text the client sent works,
		// without a NOSCRIPT first, on every form.
		{req: post("/redis", `["EVALSHA","`+sha+`",1,"n"]`), status: 200, body: ok(`2`)},
		{req: post("/redis", `["EVALSHA","`+strings.ToUpper(sha)+`",1,"n"]`), status: 200, body: ok(`3`)},
		{req: get("/redis/evalsha/" + sha + "/1/n"), status: 200, body: ok(`4`)},
		{req: post("/redis/pipeline", `[["EVALSHA","`+sha+`",1,"n"],`+evalBody(script)+`]`), status: 200, body: `[` + ok(`5`) + `,` + ok(`6`) + `]`},
		{req: post("/redis/multi-exec", `[["EVALSHA","`+sha+`",1,"n"],["GET","n"]]`), status: 200, body: `[` + ok(`7`) + `,` + ok(`"7"`) + `]`},
		{req: post("/redis", `["SCRIPT","EXISTS","`+sha+`","0000000000000000000000000000000000000000"]`), status: 200, body: ok(`[1,0]`)},
		// Flags Redis knows stay: this script may not write.
		{req: post("/redis", evalBody(readOnly)), status: 400, body: `{"error":"ERR Write commands are not allowed from read-only scripts`, prefix: true},
		// Another engine is Redis's to refuse.
		{req: post("/redis", evalBody("#!python flags=allow-key-locking\nreturn 1")), status: 400, body: cmdErr("ERR Unexpected engine in script shebang: #!python")},
	})
	// SCRIPT LOAD answers the SHA of the text sent.
	other := "#!lua flags=allow-key-locking,allow-oom\nreturn ARGV[1]"
	runCmds(t, g, []cmd{
		{req: post("/redis", `["SCRIPT","LOAD",`+jsonString(other)+`]`), status: 200, body: ok(`"` + sha1hex(other) + `"`)},
		{req: post("/redis", `["EVALSHA","`+sha1hex(other)+`",0,"hi"]`), status: 200, body: ok(`"hi"`)},
	})

	// After a restart Redis has forgotten the script: NOSCRIPT goes back to
	// the client, whose EVAL loads it again.
	srv.Restart()
	runCmds(t, g, []cmd{
		{req: post("/redis", `["EVALSHA","`+sha+`",1,"n"]`), status: 400, body: `{"error":"NOSCRIPT`, prefix: true},
		{req: post("/redis", evalBody(script)), status: 200, body: ok(`1`)},
		{req: post("/redis", `["EVALSHA","`+sha+`",1,"n"]`), status: 200, body: ok(`2`)},
	})
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
