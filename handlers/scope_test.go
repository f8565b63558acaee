package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// scopedToken is a token of the matrix: its secret, its entry in the tokens
// file, and what that entry means, written out for the test's own reckoning
// of every cell.
type scopedToken struct {
	name     string
	secret   string
	file     string                        // members after name and secret
	routes   map[access.Route]access.Level // nil: every route, writing
	keys     []string                      // nil: every key
	channels []string                      // nil: every channel
	classes  []string                      // nil: the default commands
	allow    []string
	deny     []string
}

var matrixTokens = []scopedToken{
	{name: "GATEWAY_TOKENS#1", secret: testToken},
	{name: "cache-reader", secret: "cache-reader-secret-0001", file: `"routes": ["cache"], "access": "read"`,
		routes: map[access.Route]access.Level{access.Cache: access.Read}},
	{name: "orders", secret: "orders-secret-000000001",
		file: `"keys": ["orders:*"], "channels": ["orders.*"], "access": {"cache": "write", "session": "write", "ratelimit": "write",
			"lock": "write", "pubsub": "write", "redis": "write"}`,
		keys: []string{"orders:*"}, channels: []string{"orders.*"}},
	{name: "redis-reader", secret: "redis-reader-secret-0001", file: `"routes": ["redis"], "access": "read"`,
		routes: map[access.Route]access.Level{access.Redis: access.Read}},
	{name: "redis-rw", secret: "redis-rw-secret-00000001", file: `"routes": ["redis"], "commands": {"classes": ["read", "write"]}`,
		routes: map[access.Route]access.Level{access.Redis: access.Write}, classes: []string{"read", "write"}},
	{name: "redis-admin", secret: "redis-admin-secret-00001",
		file:   `"routes": ["redis"], "commands": {"classes": ["read", "write", "admin"], "deny": ["flushall", "FLUSHDB", "config|set"]}`,
		routes: map[access.Route]access.Level{access.Redis: access.Write}, classes: []string{"read", "write", "admin"},
		deny: []string{"flushall", "flushdb", "config|set"}},
	{name: "orders-scripts", secret: "orders-scripts-secret-01",
		file:   `"routes": ["redis"], "keys": ["orders:*"], "commands": {"allow": ["eval"]}`,
		routes: map[access.Route]access.Level{access.Redis: access.Write}, keys: []string{"orders:*"}, allow: []string{"eval"}},
	{name: "pubsub-orders", secret: "pubsub-orders-secret-001", file: `"routes": ["pubsub"], "channels": ["orders.*"]`,
		routes: map[access.Route]access.Level{access.PubSub: access.Write}, channels: []string{"orders.*"}},
}

func matrixFile() string {
	var entries []string
	for _, tk := range matrixTokens[1:] {
		entries = append(entries, fmt.Sprintf(`{"name": %q, "secret": %q, %s}`, tk.name, tk.secret, tk.file))
	}
	return `{"tokens": [` + strings.Join(entries, ",\n") + `]}`
}

// matrixCell is one request of the matrix and what it is, written out by
// hand: its route and level, the user keys and channels it names, and on
// /redis its command's class. The gateway finds these itself; the test
// states them independently.
type matrixCell struct {
	name    string
	req     request
	route   access.Route
	level   access.Level
	keys    []string // user keys the request names
	channel string
	pattern string // a channel pattern (pattern subscriptions)
	stream  bool   // an event stream when allowed

	// For the command API: the commands in order.
	cmds []matrixCmd

	generated bool  // a session id the gateway generates
	ok        []int // the statuses that mean "allowed"
	// anyStatus: any status but 403 means "allowed" (the cells built from
	// the command table, whose arguments Redis may refuse).
	anyStatus bool

	// Redis keys a refused request must leave exactly as they were.
	guards []string
}

type matrixCmd struct {
	name, sub     string
	class         string
	keys          []string
	keyPattern    string // KEYS or SCAN MATCH; "-" for none given
	keyspace      bool   // reaches keys it does not name
	unknownKeys   bool   // SORT BY, MIGRATE: keys nobody can list
	script        bool
	otherDB       bool
	gatewayAdmin  bool // refused by default, unless the token's commands admit it
	server        bool // reaches state every user of the server shares (INFO, CONFIG, SLOWLOG, FUNCTION LOAD, ...)
	channels      []string
	channelPatern string
}

// expect reckons the status a cell must get with token tk: one of c.ok when
// allowed, 403 when a scope refuses it, 400 for an administrative command
// the token's commands do not admit (the gateway's default refusal).
func (tk scopedToken) expect(c matrixCell) (allowed bool, gatewayRefused bool) {
	if tk.routes != nil {
		l, ok := tk.routes[c.route]
		if !ok || l < c.level {
			return false, false
		}
	}
	if tk.keys != nil {
		if c.generated {
			return false, false
		}
		for _, k := range c.keys {
			if !matchesAny(tk.keys, k) {
				return false, false
			}
		}
	}
	if tk.channels != nil {
		if c.channel != "" && !matchesAny(tk.channels, c.channel) {
			return false, false
		}
		if c.pattern != "" && !slices.ContainsFunc(tk.channels, func(g string) bool { return g == c.pattern }) {
			return false, false
		}
	}
	for _, cmd := range c.cmds {
		allowed, refused := tk.expectCommand(cmd)
		if !allowed {
			return false, false
		}
		gatewayRefused = gatewayRefused || refused
	}
	return true, gatewayRefused
}

func (tk scopedToken) expectCommand(cmd matrixCmd) (allowed bool, gatewayRefused bool) {
	listed := func(list []string) bool {
		return slices.Contains(list, cmd.name) || cmd.sub != "" && slices.Contains(list, cmd.name+"|"+cmd.sub)
	}
	if listed(tk.deny) {
		return false, false
	}
	// A script could run what the deny list names.
	if len(tk.deny) > 0 && cmd.script && !listed(tk.allow) {
		return false, false
	}
	if tk.channels != nil {
		for _, ch := range cmd.channels {
			if !matchesAny(tk.channels, ch) {
				return false, false
			}
		}
	}
	if tk.routes != nil && tk.routes[access.Redis] == access.Read && cmd.class != "read" {
		return false, false
	}
	if tk.classes != nil && !listed(tk.allow) && !slices.Contains(tk.classes, cmd.class) {
		return false, false
	}
	if tk.keys != nil {
		switch {
		case (cmd.script || cmd.server) && !listed(tk.allow):
			return false, false
		case cmd.keyPattern == "-":
			return false, false
		case cmd.keyPattern != "":
			// The patterns of the matrix are literal prefixes plus one *.
			prefix := strings.TrimSuffix(cmd.keyPattern, "*")
			if !slices.ContainsFunc(tk.keys, func(g string) bool { return strings.HasPrefix(prefix, strings.TrimSuffix(g, "*")) }) {
				return false, false
			}
		case cmd.keyspace, cmd.unknownKeys, cmd.otherDB:
			return false, false
		}
		for _, k := range cmd.keys {
			if !matchesAny(tk.keys, k) {
				return false, false
			}
		}
	}
	admitted := slices.Contains(tk.classes, "admin") || listed(tk.allow)
	return true, cmd.gatewayAdmin && !admitted
}

func matchesAny(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { return access.Match(g, s) })
}

func matrixCells() []matrixCell {
	rd, wr := access.Read, access.Write
	c := func(name, method, path, body string, route access.Route, level access.Level, keys []string, ok ...int) matrixCell {
		return matrixCell{name: name, req: request{method: method, path: path, body: body}, route: route, level: level, keys: keys, ok: ok}
	}
	k := func(keys ...string) []string { return keys }
	cmd := func(name, class string, keys ...string) matrixCmd {
		return matrixCmd{name: name, class: class, keys: keys}
	}
	redis := func(name, body string, ok int, guards []string, cmds ...matrixCmd) matrixCell {
		path := "/redis"
		switch {
		case strings.HasPrefix(body, "[["):
			path = "/redis/pipeline"
			if strings.HasPrefix(name, "multi") {
				path = "/redis/multi-exec"
			}
		case strings.HasPrefix(body, "/"):
			path, body = "/redis"+body, ""
		}
		method := "POST"
		if body == "" {
			method = "GET"
		}
		return matrixCell{name: name, req: request{method: method, path: path, body: body}, route: access.Redis, level: rd,
			cmds: cmds, ok: []int{ok}, guards: guards}
	}
	guard := func(keys ...string) []string { return keys }
	cells := []matrixCell{
		c("cache get inside", "GET", "/cache/orders%3A1", "", access.Cache, rd, k("orders:1"), 200),
		c("cache get outside", "GET", "/cache/sessions%3A1", "", access.Cache, rd, k("sessions:1"), 200),
		c("cache head outside", "HEAD", "/cache/sessions%3A1", "", access.Cache, rd, k("sessions:1"), 200),
		c("cache ttl outside", "GET", "/cache/sessions%3A1/ttl", "", access.Cache, rd, k("sessions:1"), 200),
		c("cache put inside", "PUT", "/cache/orders%3A2", `{"v":1}`, access.Cache, wr, k("orders:2"), 201, 204),
		c("cache put outside", "PUT", "/cache/sessions%3A1", `"stolen"`, access.Cache, wr, k("sessions:1"), 201, 204),
		c("cache delete outside", "DELETE", "/cache/sessions%3A2", "", access.Cache, wr, k("sessions:2"), 204, 404),
		c("cache expire outside", "POST", "/cache/sessions%3A1/expire?ttl=100", "", access.Cache, wr, k("sessions:1"), 200),
		c("cache incr inside", "POST", "/cache/orders%3An/incr", "", access.Cache, wr, k("orders:n"), 200),
		c("cache multi-get inside", "GET", "/cache?key=orders%3A1&key=orders%3A2", "", access.Cache, rd, k("orders:1", "orders:2"), 200),
		c("cache multi-get one outside", "GET", "/cache?key=orders%3A1&key=sessions%3A1", "", access.Cache, rd, k("orders:1", "sessions:1"), 200),
		c("cache multi-delete one outside", "DELETE", "/cache?key=orders%3Ax&key=sessions%3A1", "", access.Cache, wr, k("orders:x", "sessions:1"), 200),
		// Decoded once, the key starts with orders: and stays inside: Redis
		// keys are not paths, and the gateway stores it as
		// cache:orders:../../sessions:1.
		c("cache put encoded dot-dot", "PUT", "/cache/orders%3A..%2F..%2Fsessions%3A1", `1`, access.Cache, wr, k("orders:../../sessions:1"), 201, 204),
		// %253A decodes once, to %3A: the key orders%3A1, outside orders:*.
		c("cache get double-encoded", "GET", "/cache/orders%253A1", "", access.Cache, rd, k("orders%3A1"), 404),
		c("cache get encoded letters", "GET", "/cache/%6Frders%3A1", "", access.Cache, rd, k("orders:1"), 200),

		{name: "session create", req: request{method: "POST", path: "/session", body: `{"a":1}`}, route: access.Session, level: wr, generated: true, ok: []int{201}},
		c("session put inside", "PUT", "/session/orders%3As1", `{"a":1}`, access.Session, wr, k("orders:s1"), 201, 204),
		c("session get outside", "GET", "/session/sessions%3As1", "", access.Session, rd, k("sessions:s1"), 200),
		c("session patch outside", "PATCH", "/session/sessions%3As1", `{"b":2}`, access.Session, wr, k("sessions:s1"), 200),
		c("session delete outside", "DELETE", "/session/sessions%3As2", "", access.Session, wr, k("sessions:s2"), 204, 404),

		c("ratelimit incr inside", "POST", "/ratelimit/orders%3Arl/incr?limit=1000", "", access.RateLimit, wr, k("orders:rl"), 200),
		c("ratelimit peek outside", "GET", "/ratelimit/sessions%3Arl", "", access.RateLimit, rd, k("sessions:rl"), 200),
		c("ratelimit reset outside", "DELETE", "/ratelimit/sessions%3Arl", "", access.RateLimit, wr, k("sessions:rl"), 204),

		c("lock acquire inside", "POST", "/lock/orders%3Alk?ttl_ms=50", "", access.Lock, wr, k("orders:lk"), 201, 409),
		c("lock inspect outside", "GET", "/lock/sessions%3Alk", "", access.Lock, rd, k("sessions:lk"), 200, 404),
		c("lock acquire outside", "POST", "/lock/sessions%3Alk?ttl_ms=50", "", access.Lock, wr, k("sessions:lk"), 201, 409),

		{name: "publish inside", req: request{method: "POST", path: "/publish/orders.eu", body: `1`}, route: access.PubSub, level: wr, channel: "orders.eu", ok: []int{200}},
		{name: "publish outside", req: request{method: "POST", path: "/publish/sessions", body: `1`}, route: access.PubSub, level: wr, channel: "sessions", ok: []int{200}},
		{name: "subscribe inside", req: request{method: "GET", path: "/subscribe/orders.eu"}, route: access.PubSub, level: rd, channel: "orders.eu", stream: true, ok: []int{200}},
		{name: "subscribe outside", req: request{method: "GET", path: "/subscribe/sessions"}, route: access.PubSub, level: rd, channel: "sessions", stream: true, ok: []int{200}},
		{name: "psubscribe inside", req: request{method: "GET", path: "/subscribe?pattern=orders.*"}, route: access.PubSub, level: rd, pattern: "orders.*", stream: true, ok: []int{200}},
		{name: "psubscribe outside", req: request{method: "GET", path: "/subscribe?pattern=*"}, route: access.PubSub, level: rd, pattern: "*", stream: true, ok: []int{200}},
		{name: "redis subscribe outside", req: request{method: "POST", path: "/redis/subscribe/sessions"}, route: access.Redis, level: rd, channel: "sessions", stream: true, ok: []int{200}},

		redis("get inside", `["GET","orders:1"]`, 200, nil, cmd("get", "read", "orders:1")),
		redis("get outside", `["GET","sessions:1"]`, 200, nil, cmd("get", "read", "sessions:1")),
		redis("set inside", `["SET","orders:1","x"]`, 200, nil, cmd("set", "write", "orders:1")),
		redis("set outside", `["SET","sessions:1","stolen"]`, 200, guard("sessions:1"), cmd("set", "write", "sessions:1")),
		redis("mset one outside", `["MSET","orders:a","1","sessions:1","2"]`, 200, guard("orders:a", "sessions:1"), cmd("mset", "write", "orders:a", "sessions:1")),
		redis("del one outside", `["DEL","orders:1","sessions:1"]`, 200, guard("orders:1", "sessions:1"), cmd("del", "write", "orders:1", "sessions:1")),
		redis("rename out", `["RENAME","orders:1","sessions:x"]`, 200, guard("orders:1", "sessions:x"), cmd("rename", "write", "orders:1", "sessions:x")),
		redis("path form inside", "/get/orders%3A1", 200, nil, cmd("get", "read", "orders:1")),
		redis("path form outside", "/get/sessions%3A1", 200, nil, cmd("get", "read", "sessions:1")),
		redis("path form double-encoded", "/get/orders%253A1", 200, nil, cmd("get", "read", "orders%3A1")),
		redis("path form write outside", "/set/sessions%3A1/stolen", 200, guard("sessions:1"), cmd("set", "write", "sessions:1")),
		redis("zunionstore into outside", `["ZUNIONSTORE","sessions:z",2,"orders:z1","orders:z2"]`, 200, guard("sessions:z"),
			cmd("zunionstore", "write", "sessions:z", "orders:z1", "orders:z2")),
		redis("xread one outside", `["XREAD","COUNT",1,"STREAMS","orders:s","sessions:s","0","0"]`, 200, nil, cmd("xread", "read", "orders:s", "sessions:s")),
		redis("object encoding outside", `["OBJECT","ENCODING","sessions:1"]`, 200, nil, matrixCmd{name: "object", sub: "encoding", class: "read", keys: k("sessions:1")}),
		redis("eval declared inside", `["EVAL","return redis.call('GET', KEYS[1])",1,"orders:1"]`, 200, nil,
			matrixCmd{name: "eval", class: "write", keys: k("orders:1"), script: true}),
		redis("eval declared outside", `["EVAL","return redis.call('SET', KEYS[1], 'stolen')",1,"sessions:1"]`, 200, guard("sessions:1"),
			matrixCmd{name: "eval", class: "write", keys: k("sessions:1"), script: true}),
		redis("evalsha", `["EVALSHA","0000000000000000000000000000000000000000",1,"orders:1"]`, 400, nil,
			matrixCmd{name: "evalsha", class: "write", keys: k("orders:1"), script: true}),
		redis("eval_ro", `["EVAL_RO","return 1",0]`, 200, nil, matrixCmd{name: "eval_ro", class: "read", script: true}),
		redis("keys inside", `["KEYS","orders:*"]`, 200, nil, matrixCmd{name: "keys", class: "admin", keyPattern: "orders:*"}),
		redis("keys everything", `["KEYS","*"]`, 200, nil, matrixCmd{name: "keys", class: "admin", keyPattern: "*"}),
		redis("scan inside", `["SCAN","0","MATCH","orders:*","COUNT","100"]`, 200, nil, matrixCmd{name: "scan", class: "read", keyPattern: "orders:*"}),
		redis("scan everything", `["SCAN","0"]`, 200, nil, matrixCmd{name: "scan", class: "read", keyPattern: "-"}),
		redis("randomkey", `["RANDOMKEY"]`, 200, nil, matrixCmd{name: "randomkey", class: "read", keyspace: true}),
		redis("dbsize", `["DBSIZE"]`, 200, nil, matrixCmd{name: "dbsize", class: "read", keyspace: true}),
		redis("sort by", `["SORT","orders:l","BY","sessions:*"]`, 200, nil, matrixCmd{name: "sort", class: "admin", unknownKeys: true}),
		redis("copy to another db", `["COPY","orders:1","orders:c","DB",1,"REPLACE"]`, 200, nil,
			matrixCmd{name: "copy", class: "write", keys: k("orders:1", "orders:c"), otherDB: true}),
		redis("ping", `["PING"]`, 200, nil, cmd("ping", "read")),
		redis("publish outside", `["PUBLISH","sessions","m"]`, 200, nil, matrixCmd{name: "publish", class: "write", channels: k("sessions")}),
		redis("config get", `["CONFIG","GET","maxmemory"]`, 200, nil, matrixCmd{name: "config", sub: "get", class: "admin", gatewayAdmin: true, server: true}),
		redis("config set", `["CONFIG","SET","maxmemory-samples","6"]`, 200, nil, matrixCmd{name: "config", sub: "set", class: "admin", gatewayAdmin: true, server: true}),
		redis("flushall", `["FLUSHALL"]`, 200, nil, matrixCmd{name: "flushall", class: "admin", keyspace: true, gatewayAdmin: true}),
		redis("info", `["INFO","server"]`, 200, nil, matrixCmd{name: "info", class: "admin", server: true}),
		redis("info commandstats", `["INFO","commandstats"]`, 200, nil, matrixCmd{name: "info", class: "admin", server: true}),
		redis("slowlog get", `["SLOWLOG","GET"]`, 200, nil, matrixCmd{name: "slowlog", sub: "get", class: "admin", server: true}),
		redis("latency reset", `["LATENCY","RESET"]`, 200, nil, matrixCmd{name: "latency", sub: "reset", class: "admin", server: true}),
		redis("memory stats", `["MEMORY","STATS"]`, 200, nil, matrixCmd{name: "memory", sub: "stats", class: "read", server: true}),
		redis("function list", `["FUNCTION","LIST","WITHCODE"]`, 200, nil, matrixCmd{name: "function", sub: "list", class: "read", server: true}),
		redis("function dump", `["FUNCTION","DUMP"]`, 200, nil, matrixCmd{name: "function", sub: "dump", class: "read", server: true}),
		redis("script load", `["SCRIPT","LOAD","return 1"]`, 200, nil, matrixCmd{name: "script", sub: "load", class: "write", server: true}),
		redis("eval undeclared", `["EVAL","return redis.call('DEL','sessions:1')","0"]`, 200, guard("sessions:1"),
			matrixCmd{name: "eval", class: "write", script: true}),
		// The kinds of key position: fixed, keyword, numkeys, and the last of
		// a repeated keyword.
		redis("fixed: lindex outside", `["LINDEX","sessions:l","0"]`, 200, nil, cmd("lindex", "read", "sessions:l")),
		redis("keyword: georadius store outside", `["GEORADIUS","orders:g","0","0","1","m","STORE","sessions:1"]`, 200, guard("sessions:1"),
			cmd("georadius", "write", "orders:g", "sessions:1")),
		redis("numkeys: sintercard one outside", `["SINTERCARD","2","orders:s","sessions:s"]`, 200, nil, cmd("sintercard", "read", "orders:s", "sessions:s")),
		redis("numkeys: lmpop inside", `["LMPOP","1","orders:l","LEFT"]`, 200, nil, cmd("lmpop", "write", "orders:l")),
		redis("last keyword: georadius store twice", `["GEORADIUS","orders:g","0","0","1","m","STORE","orders:a","STORE","sessions:1"]`, 200,
			guard("sessions:1"), cmd("georadius", "write", "orders:g", "orders:a", "sessions:1")),
		redis("last keyword: georadiusbymember storedist twice", `["GEORADIUSBYMEMBER","orders:g","m","1","m","STOREDIST","orders:a","STOREDIST","sessions:1"]`, 200,
			guard("sessions:1"), cmd("georadiusbymember", "write", "orders:g", "orders:a", "sessions:1")),
		redis("last keyword: path form", "/georadius/orders%3Ag/0/0/1/m/STORE/orders%3Aa/STORE/sessions%3A1", 200,
			guard("sessions:1"), cmd("georadius", "write", "orders:g", "orders:a", "sessions:1")),
		redis("pipeline one outside", `[["SET","orders:p","1"],["GET","sessions:1"]]`, 200, guard("orders:p"),
			cmd("set", "write", "orders:p"), cmd("get", "read", "sessions:1")),
		redis("pipeline inside", `[["SET","orders:p","1"],["GET","orders:p"]]`, 200, nil,
			cmd("set", "write", "orders:p"), cmd("get", "read", "orders:p")),
		redis("multi-exec one outside", `[["SET","orders:t","1"],["DEL","sessions:1"]]`, 200, guard("orders:t", "sessions:1"),
			cmd("set", "write", "orders:t"), cmd("del", "write", "sessions:1")),
		redis("multi-exec admin", `[["SET","orders:t","1"],["CONFIG","GET","maxmemory"]]`, 200, guard("orders:t"),
			cmd("set", "write", "orders:t"), matrixCmd{name: "config", sub: "get", class: "admin", gatewayAdmin: true, server: true}),
	}
	return cells
}

// refusedByCluster reports the errors Redis Cluster (or the gateway on one)
// gives to commands a single server runs.
func refusedByCluster(body string) bool {
	for _, s := range []string{"CROSSSLOT", "not supported on Redis Cluster", "denied in Cluster mode", "non local key"} {
		if strings.Contains(body, s) {
			return true
		}
	}
	return false
}

// TestScopeMatrix sends every request of the matrix with every token, on a
// real Redis (whose key specifications the command API reads), and checks
// each cell's status against the token's scopes. A refused request must
// change nothing, and no request a scope refuses may succeed.
func TestScopeMatrix(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		g := scopedGateway(t, b, matrixFile())
		ctx := context.Background()
		// Every cell starts from the same data, so its status does not
		// depend on the cells before it.
		reseed := func() {
			t.Helper()
			for _, kv := range [][2]string{{"orders:1", "mine"}, {"sessions:1", "secret"}, {"cache:orders:1", `"mine"`}, {"cache:sessions:1", `"secret"`}} {
				if err := b.rdb.Set(ctx, kv[0], kv[1], 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// 201 should a cell have removed it.
			if resp := g.do(request{method: "PUT", path: "/session/sessions%3As1", body: `{"user":"ada"}`}); resp.status != http.StatusNoContent && resp.status != http.StatusCreated {
				t.Fatalf("PUT /session/sessions%%3As1: status = %d, want 201 or 204", resp.status)
			}
		}
		g.must(request{method: "PUT", path: "/session/sessions%3As1", body: `{"user":"ada"}`}, http.StatusCreated)

		addr := strings.TrimPrefix(b.url, "redis://")
		if len(b.nodes) > 0 {
			addr = b.nodes[0]
		}
		generated := tableCells(t, addr)
		cells, unauthorized, checked := append(matrixCells(), generated...), 0, 0
		for _, tk := range matrixTokens {
			for _, c := range cells {
				allowed, gatewayRefused := tk.expect(c)
				reseed()
				before := dumps(t, b, c.guards)
				req := c.req
				req.token = tk.secret
				status, body := g.matrixCall(req, c.stream)
				checked++
				where := fmt.Sprintf("token %s, %s (%s %s %s)", tk.name, c.name, req.method, req.path, req.body)
				switch {
				case !allowed && status < 300:
					unauthorized++
					t.Errorf("%s: status = %d, want 403: AN UNAUTHORIZED REQUEST SUCCEEDED; body %s", where, status, body)
				case !allowed && status != http.StatusForbidden:
					t.Errorf("%s: status = %d, want 403; body %s", where, status, body)
				case allowed && gatewayRefused && status != http.StatusBadRequest:
					t.Errorf("%s: status = %d, want 400 (an administrative command the token was not granted); body %s", where, status, body)
				case allowed && !gatewayRefused && b.name == "cluster" && status == http.StatusBadRequest && refusedByCluster(body):
					// Authorized, then refused by Redis Cluster itself (keys in
					// several slots, SCAN): a topology limit, not a scope decision.
				case allowed && c.anyStatus && status != http.StatusForbidden:
				case allowed && !gatewayRefused && !slices.Contains(c.ok, status):
					t.Errorf("%s: status = %d, want one of %v; body %s", where, status, c.ok, body)
				}
				if status == http.StatusForbidden && req.method != "HEAD" {
					if strings.Contains(body, tk.secret) {
						t.Errorf("%s: the 403 echoes the secret", where)
					}
					if !strings.Contains(body, "scope") {
						t.Errorf("%s: the 403 does not name the scope: %s", where, body)
					}
				}
				if !allowed || gatewayRefused {
					if after := dumps(t, b, c.guards); !slices.Equal(before, after) {
						t.Errorf("%s: the refused request changed %q", where, c.guards)
					}
				}
			}
		}
		if unauthorized > 0 {
			t.Errorf("%d unauthorized successes in %d cells", unauthorized, checked)
		}
		t.Logf("%d cells (%d tokens x %d requests, %d of them two per command of the table that takes keys: %d commands), %d unauthorized successes",
			checked, len(matrixTokens), len(cells), len(generated), len(generated)/2, unauthorized)

		// The gateway's own keys stayed out of reach of the orders token.
		if v, err := b.rdb.Get(ctx, "cache:orders:../../sessions:1").Result(); err != nil || v != "1" {
			t.Errorf("the encoded dot-dot key: GET cache:orders:../../sessions:1 = %q, %v; want 1", v, err)
		}
		// Denials are logged by token name and counted.
		logs := g.logs.String()
		for _, tk := range matrixTokens {
			if strings.Contains(logs, tk.secret) {
				t.Errorf("the logs carry the secret of %s", tk.name)
			}
		}
		if !strings.Contains(logs, `"token":"orders"`) || !strings.Contains(logs, `"status":403`) {
			t.Errorf("the access log does not name the token of the refused requests")
		}
		metrics := g.do(request{method: "GET", path: "/metrics", token: "-"}).body
		for _, want := range []string{
			`redis_gateway_auth_denials_total{scope="keys",token="orders"}`,
			`redis_gateway_auth_denials_total{scope="routes",token="cache-reader"}`,
			`redis_gateway_auth_denials_total{scope="access",token="redis-reader"}`,
			`redis_gateway_auth_denials_total{scope="commands",token="redis-admin"}`,
			`redis_gateway_auth_denials_total{scope="channels",token="pubsub-orders"}`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics has no %s", want)
			}
		}
	})
}

// matrixCall sends req and returns its status and body; an event stream that
// opens is closed at once.
func (g *gateway) matrixCall(req request, stream bool) (int, string) {
	g.t.Helper()
	if !stream {
		resp := g.do(req)
		return resp.status, resp.body
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, req.method, g.url+req.path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+req.token)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(hr)
	if err != nil {
		g.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dumps is the serialized value of each key (empty when missing).
func dumps(t *testing.T, b backend, keys []string) []string {
	t.Helper()
	out := make([]string, len(keys))
	for i, k := range keys {
		v, err := b.rdb.Dump(context.Background(), k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[i] = v
	}
	return out
}

func scopedGateway(t *testing.T, b backend, file string) *gateway {
	t.Helper()
	set, err := access.NewSet([]string{testToken}, []byte(file))
	if err != nil {
		t.Fatalf("tokens file: %v", err)
	}
	return startGateway(t, b, withConfig(func(c *handlers.Config) { c.TokenSet = func() *access.Set { return set } }))
}

// A Redis that does not describe its commands leaves the gateway unable to
// check a key-restricted token's commands: it refuses them, and says why.
// Tokens without key or class restrictions do not need the description.
func TestScopedCommandsWithoutCommandInfo(t *testing.T) {
	srv := redistest.Start(t, "--rename-command", "COMMAND", "")
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client()}
	const secret = "orders-secret-000000001"
	g := scopedGateway(t, b, `{"tokens": [{"name": "orders", "secret": "`+secret+`", "keys": ["orders:*"]}]}`)
	runCmds(t, g, []cmd{
		{req: request{method: "POST", path: "/redis", body: `["GET","orders:1"]`, token: secret}, status: 403,
			body: cmdErr("NOPERM this token's keys scope refuses it: Redis does not describe its commands (COMMAND), so this token's keys " +
				"cannot be checked; use the gateway's other routes, or a Redis that answers COMMAND")},
		{req: post("/redis", `["GET","orders:1"]`), status: 200, body: ok(`null`)},
	})
	g.must(request{method: "PUT", path: "/cache/orders%3A1", body: `1`, token: secret}, http.StatusCreated)
}

// With Redis down, a command that needs Redis's description is 503, like
// any command.
func TestScopedCommandsRedisDown(t *testing.T) {
	b := serverBackend(t)
	const secret = "orders-secret-000000001"
	g := scopedGateway(t, b, `{"tokens": [{"name": "orders", "secret": "`+secret+`", "keys": ["orders:*"]}]}`)
	b.stop()
	resp := g.do(request{method: "POST", path: "/redis", body: `["GET","orders:1"]`, token: secret})
	if resp.status != http.StatusServiceUnavailable || resp.body != cmdErr("ERR redis unavailable") || resp.header.Get("Retry-After") != "1" {
		t.Errorf("POST /redis with Redis down: %d %s (Retry-After %q), want 503 ERR redis unavailable", resp.status, resp.body, resp.header.Get("Retry-After"))
	}
}

// 401s are counted too, under no token name.
func TestUnauthorizedIsCounted(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(request{method: "GET", path: "/cache/k", token: "nope"}, http.StatusUnauthorized)
	g.must(request{method: "GET", path: "/redis/get/k", token: "-"}, http.StatusUnauthorized)
	metrics := g.do(request{method: "GET", path: "/metrics", token: "-"}).body
	if want := `redis_gateway_auth_denials_total{scope="token",token=""} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics has no %s", want)
	}
	if !strings.Contains(g.logs.String(), `"error":"invalid bearer token"`) || !strings.Contains(g.logs.String(), `"error":"missing bearer token"`) {
		t.Errorf("the access log does not say why the requests were refused:\n%s", g.logs)
	}
}
