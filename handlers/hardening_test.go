package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/store"
)

// The tokens of issue 10's findings: rw and ro reach orders:* only, ops
// has every class but may not flush or shut down.
const (
	rwSecret     = "rw-secret-0000000000001"
	roSecret     = "ro-secret-0000000000001"
	opsSecret    = "ops-secret-000000000001"
	fnSecret     = "fn-secret-000000000001"
	readerSecret = "reader-secret-000000001"
	opsEvSecret  = "ops-eval-secret-0000001"
	hardenTokens = `{"tokens": [
	{"name": "rw", "secret": "` + rwSecret + `", "routes": ["redis"], "keys": ["orders:*"]},
	{"name": "ro", "secret": "` + roSecret + `", "routes": ["redis"], "access": "read", "keys": ["orders:*"]},
	{"name": "ops", "secret": "` + opsSecret + `", "routes": ["redis"],
	 "commands": {"classes": ["read", "write", "admin"], "deny": ["flushall", "flushdb", "shutdown"]}},
	{"name": "ops-eval", "secret": "` + opsEvSecret + `", "routes": ["redis"],
	 "commands": {"classes": ["read", "write", "admin"], "allow": ["eval"], "deny": ["flushall", "flushdb", "shutdown"]}},
	{"name": "reader", "secret": "` + readerSecret + `", "routes": ["redis"], "access": "read"},
	{"name": "fn", "secret": "` + fnSecret + `", "routes": ["redis"], "keys": ["orders:*"],
	 "commands": {"allow": ["function|load", "function|list", "slowlog", "script|load", "fcall"]}}
]}`
)

func as(secret string, r request) request { r.token = secret; return r }

// refusedUnchanged sends each request with the token and checks it is a
// 403 that left the guarded keys as they were.
func refusedUnchanged(t *testing.T, g *gateway, b backend, guards []string, reqs ...request) {
	t.Helper()
	for _, req := range reqs {
		before := dumps(t, b, guards)
		resp := g.do(req)
		if resp.status != http.StatusForbidden || !strings.Contains(resp.body, "NOPERM") {
			t.Errorf("%s %s %s: status = %d, want 403 NOPERM; body %s", req.method, req.path, req.body, resp.status, resp.body)
		}
		if after := dumps(t, b, guards); !slices.Equal(before, after) {
			t.Errorf("%s %s %s: the refused request changed %q", req.method, req.path, req.body, guards)
		}
	}
}

// Finding 1: GEORADIUS and GEORADIUSBYMEMBER store into the last STORE or
// STOREDIST they are given; every occurrence names a key the token must
// reach, in every form of the command API.
func TestKeywordKeysEveryOccurrence(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		g := scopedGateway(t, b, hardenTokens)
		ctx := context.Background()
		if err := b.rdb.GeoAdd(ctx, "orders:g", &redis.GeoLocation{Name: "m"}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.rdb.Set(ctx, "session:alice", "secret", 0).Err(); err != nil {
			t.Fatal(err)
		}
		guards := []string{"session:alice"}
		var reqs []request
		for _, c := range []string{
			`["GEORADIUS","orders:g","0","0","1","m","STORE","orders:a","STORE","session:alice"]`,
			`["GEORADIUS","orders:g","0","0","1","m","STOREDIST","orders:a","STOREDIST","session:alice"]`,
			`["GEORADIUS","orders:g","0","0","1","m","STORE","orders:a","STOREDIST","session:alice"]`,
			`["georadiusbymember","orders:g","m","1","m","store","orders:a","store","session:alice"]`,
			`["GEORADIUSBYMEMBER","orders:g","m","1","m","STOREDIST","orders:a","STOREDIST","session:alice"]`,
		} {
			reqs = append(reqs,
				as(rwSecret, post("/redis", c)),
				as(rwSecret, post("/redis/pipeline", `[["GET","orders:x"],`+c+`]`)),
				as(rwSecret, post("/redis/multi-exec", `[["GET","orders:x"],`+c+`]`)))
		}
		reqs = append(reqs, as(rwSecret, get("/redis/georadius/orders:g/0/0/1/m/STORE/orders:a/STORE/session:alice")))
		refusedUnchanged(t, g, b, guards, reqs...)
		// One STORE inside the token's keys is still served.
		if b.name != "cluster" {
			runCmds(t, g, []cmd{{req: as(rwSecret, post("/redis", `["GEORADIUS","orders:g","0","0","1","m","STORE","orders:a"]`)), status: 200, body: ok(`1`)}})
		}
	})
}

// Finding 2: a key-restricted token may not load, delete, list or dump
// function libraries, which belong to every user of the database, unless
// its commands allow it.
func TestFunctionsNeedAllowForKeyRestrictedTokens(t *testing.T) {
	b := serverBackend(t)
	g := scopedGateway(t, b, hardenTokens)
	const lib = "#!lua name=victim\nredis.register_function('victim', function() return 'owner' end)"
	ctx := context.Background()
	if err := b.rdb.FunctionLoad(ctx, lib).Err(); err != nil {
		t.Fatal(err)
	}
	evil := `#!lua name=victim\nredis.register_function('victim', function() return 'attacker' end)`
	for _, tok := range []string{rwSecret, roSecret} {
		for _, c := range []string{
			`["FUNCTION","LOAD","REPLACE",` + jsonString(evil) + `]`,
			`["FUNCTION","DELETE","victim"]`,
			`["FUNCTION","FLUSH"]`,
			`["FUNCTION","RESTORE","x"]`,
			`["FUNCTION","LIST","WITHCODE"]`,
			`["FUNCTION","DUMP"]`,
			`["FUNCTION","STATS"]`,
		} {
			refusedUnchanged(t, g, b, nil, as(tok, post("/redis", c)), as(tok, post("/redis/pipeline", `[`+c+`]`)))
		}
	}
	if got, err := b.rdb.FCall(ctx, "victim", nil).Result(); err != nil || got != "owner" {
		t.Errorf("FCALL victim = %v, %v; want owner", got, err)
	}
	// Allowed by name, the same token may.
	runCmds(t, g, []cmd{
		{req: as(fnSecret, post("/redis", `["FUNCTION","LIST","LIBRARYNAME","victim"]`)), status: 200, body: `{"result":[[`, prefix: true},
		{req: as(fnSecret, post("/redis", `["FUNCTION","LOAD",`+jsonString("#!lua name=orders\nredis.register_function('orders_f', function() return 1 end)")+`]`)), status: 200, body: ok(`"orders"`)},
	})
}

// Finding 3 (deny lists through scripts): a token whose commands deny
// FLUSHALL may not run it from a script either, unless its commands allow
// scripts by name.
func TestDenyListHoldsThroughScripts(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		g := scopedGateway(t, b, hardenTokens)
		ctx := context.Background()
		if err := b.rdb.Set(ctx, "survivor", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		guards := []string{"survivor"}
		refusedUnchanged(t, g, b, guards,
			as(opsSecret, post("/redis", `["EVAL","return redis.call('FLUSHALL')","0"]`)),
			as(opsSecret, post("/redis", `["EVAL_RO","return redis.call('GET','survivor')","0"]`)),
			as(opsSecret, post("/redis", `["EVALSHA","0000000000000000000000000000000000000000","0"]`)),
			as(opsSecret, post("/redis", `["FCALL","victim","0"]`)),
			as(opsSecret, post("/redis", `["FCALL_RO","victim","0"]`)),
			as(opsSecret, post("/redis/pipeline", `[["PING"],["EVAL","return redis.call('FLUSHALL')","0"]]`)),
			as(opsSecret, post("/redis/multi-exec", `[["PING"],["EVAL","return redis.call('FLUSHALL')","0"]]`)),
			as(opsSecret, get("/redis/eval/return%20redis.call('FLUSHALL')/0")),
		)
		// Allowed by name, the script runs (and reads here, not flushes).
		runCmds(t, g, []cmd{{req: as(opsEvSecret, post("/redis", `["EVAL","return redis.call('GET',KEYS[1])","1","survivor"]`)), status: 200, body: ok(`"1"`)}})
	})
}

// Finding 5: server-wide introspection shows other clients' commands and
// values; a key-restricted token is refused it unless allowed by name.
func TestIntrospectionNeedsAllowForKeyRestrictedTokens(t *testing.T) {
	b := serverBackend(t)
	g := scopedGateway(t, b, hardenTokens)
	var reqs []request
	for _, c := range []string{
		`["SLOWLOG","GET"]`, `["SLOWLOG","RESET"]`, `["SLOWLOG","LEN"]`,
		`["LATENCY","RESET"]`, `["LATENCY","LATEST"]`, `["LATENCY","DOCTOR"]`,
		`["MEMORY","DOCTOR"]`, `["MEMORY","STATS"]`, `["MEMORY","MALLOC-STATS"]`,
		`["INFO","commandstats"]`, `["INFO"]`, `["INFO","keyspace"]`,
	} {
		reqs = append(reqs, as(rwSecret, post("/redis", c)), as(roSecret, post("/redis", c)))
	}
	reqs = append(reqs, as(rwSecret, get("/redis/slowlog/get")))
	refusedUnchanged(t, g, b, nil, reqs...)
	runCmds(t, g, []cmd{
		{req: as(fnSecret, post("/redis", `["SLOWLOG","LEN"]`)), status: 200, body: `{"result":`, prefix: true},
		{req: post("/redis", `["SLOWLOG","LEN"]`), status: 200, body: `{"result":`, prefix: true},
		{req: post("/redis", `["MEMORY","USAGE","orders:none"]`), status: 200, body: ok(`null`)},
		{req: as(rwSecret, post("/redis", `["MEMORY","USAGE","orders:none"]`)), status: 200, body: ok(`null`)},
	})
}

// Finding 6: SCRIPT LOAD grows Redis's script cache: a write, and script
// management a key-restricted token needs an allow for.
func TestScriptLoadIsAWrite(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		g := scopedGateway(t, b, hardenTokens)
		refusedUnchanged(t, g, b, nil,
			as(roSecret, post("/redis", `["SCRIPT","LOAD","return 1"]`)),
			as(rwSecret, post("/redis", `["SCRIPT","LOAD","return 1"]`)),
			as(rwSecret, post("/redis/pipeline", `[["SCRIPT","LOAD","return 1"]]`)),
		)
		refusedUnchanged(t, g, b, nil, as(readerSecret, post("/redis", `["SCRIPT","LOAD","return 1"]`)))
		runCmds(t, g, []cmd{
			{req: as(fnSecret, post("/redis", `["SCRIPT","LOAD","return 1"]`)), status: 200, body: ok(jsonString(sha1hex("return 1")))},
			{req: post("/redis", `["SCRIPT","LOAD","return 2"]`), status: 200, body: ok(jsonString(sha1hex("return 2")))},
		})
	})
}

// REDIS_WRITE_REPLICAS covers the command API: a write through /redis waits
// for the replicas, and with none to confirm it is 503 write-unconfirmed,
// while a read is served.
func TestCommandWritesWaitForReplicas(t *testing.T) {
	b := serverBackend(t)
	g := startGateway(t, b, withStoreOptions(func(o *store.Options) {
		o.WriteReplicas, o.WriteReplicasTimeout = 1, 20*time.Millisecond
	}))
	for _, req := range []request{
		post("/redis", `["SET","k","v"]`),
		get("/redis/incr/n"),
		post("/redis/pipeline", `[["GET","k"],["SET","k","v"]]`),
		post("/redis/multi-exec", `[["GET","k"],["SET","k","v"]]`),
		post("/redis", `["EVAL","return redis.call('SET',KEYS[1],'v')","1","k"]`),
	} {
		resp := g.do(req)
		if resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.body, "replicas") {
			t.Errorf("%s %s %s with no replica to confirm: status = %d, want 503 naming the replicas; body %s", req.method, req.path, req.body, resp.status, resp.body)
		}
	}
	runCmds(t, g, []cmd{
		{req: post("/redis", `["GET","k"]`), status: 200, body: ok(`"v"`)},
		{req: post("/redis/pipeline", `[["GET","k"],["PING"]]`), status: 200, body: fmt.Sprintf(`[%s,%s]`, ok(`"v"`), ok(`"PONG"`))},
		{req: post("/redis/multi-exec", `[["GET","k"],["PING"]]`), status: 200, body: fmt.Sprintf(`[%s,%s]`, ok(`"v"`), ok(`"PONG"`))},
	})
}

// Finding 3: replies are bounded. Past MAX_REPLY_BYTES a request is 413
// with an error naming the limit, whatever its form; the connection that
// carried the oversized reply is dropped, and the next requests are served.
func TestReplyBudget(t *testing.T) {
	forEachServer(t, func(t *testing.T, b backend) {
		const limit = 64 << 10
		g := startGateway(t, b, withStoreOptions(func(o *store.Options) { o.MaxReplyBytes = limit }))
		ctx := context.Background()
		big := strings.Repeat("x", 40<<10)
		for _, k := range []string{"{z}1", "{z}2", "{z}3"} {
			if err := b.rdb.Set(ctx, k, big, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.rdb.Set(ctx, "{z}huge", strings.Repeat("y", 200<<10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		want := cmdErr(fmt.Sprintf("ERR reply exceeds MAX_REPLY_BYTES (%d bytes): ask for less (GETRANGE, LRANGE with bounds, SCAN with COUNT), or in several requests", limit))
		runCmds(t, g, []cmd{
			{req: post("/redis", `["GET","{z}huge"]`), status: 413, body: want},
			{req: get("/redis/get/{z}huge"), status: 413, body: want},
			{req: post("/redis/pipeline", `[["GET","{z}1"],["GET","{z}2"],["GET","{z}3"]]`), status: 413, body: want},
			{req: post("/redis/multi-exec", `[["GET","{z}1"],["GET","{z}2"]]`), status: 413, body: want},
			{req: post("/redis", `["MGET","{z}1","{z}2"]`), status: 413, body: want},
			{req: with(post("/redis", `["GET","{z}huge"]`), "Upstash-Encoding", "base64"), status: 413, body: want},
			// Within the budget, and after the refusals, all is served.
			{req: post("/redis", `["GET","{z}1"]`), status: 200, body: ok(jsonString(big))},
			{req: post("/redis/pipeline", `[["STRLEN","{z}huge"],["GETRANGE","{z}huge","0","2"]]`), status: 200, body: `[` + ok(`204800`) + `,` + ok(`"yyy"`) + `]`},
			{req: post("/redis/multi-exec", `[["GET","{z}1"],["PING"]]`), status: 200, body: `[` + ok(jsonString(big)) + `,` + ok(`"PONG"`) + `]`},
		})
	})
}

// On Redis Cluster too, a write through /redis waits for replicas: asking
// for more than any primary has, it is 503, transactions included.
func TestCommandWritesWaitForReplicasOnCluster(t *testing.T) {
	b := sharedClusterBackend(t)
	g := startGateway(t, b, withStoreOptions(func(o *store.Options) {
		o.WriteReplicas, o.WriteReplicasTimeout = 5, 20*time.Millisecond
	}))
	for _, req := range []request{
		post("/redis", `["SET","{c}k","v"]`),
		post("/redis/pipeline", `[["GET","{c}k"],["SET","{c}k","v"]]`),
		post("/redis/multi-exec", `[["GET","{c}k"],["SET","{c}k","v"]]`),
		post("/redis/multi-exec", `[["SET","{c}a","v"],["SET","{c}b","v"]]`),
	} {
		resp := g.do(req)
		if resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.body, "replicas") {
			t.Errorf("%s %s %s with too few replicas to confirm: status = %d, want 503 naming the replicas; body %s", req.method, req.path, req.body, resp.status, resp.body)
		}
	}
	runCmds(t, g, []cmd{
		{req: post("/redis", `["GET","{c}k"]`), status: 200, body: ok(`"v"`)},
		{req: post("/redis/multi-exec", `[["GET","{c}a"],["GET","{c}b"]]`), status: 200, body: `[` + ok(`"v"`) + `,` + ok(`"v"`) + `]`},
		{req: post("/redis/multi-exec", `[["SET","a","v"],["SET","b","v"]]`), status: 400, body: `{"error":"`, prefix: true},
	})
}

// On Redis Cluster a pipeline's replies come from several nodes, each
// within the budget: together they are held to it as well.
func TestReplyBudgetAcrossClusterNodes(t *testing.T) {
	b := sharedClusterBackend(t)
	const limit = 64 << 10
	g := startGateway(t, b, withStoreOptions(func(o *store.Options) { o.MaxReplyBytes = limit }))
	ctx := context.Background()
	var cmds []string
	for i := range 16 {
		k := fmt.Sprintf("{n%d}v", i)
		if err := b.rdb.Set(ctx, k, strings.Repeat("v", 6<<10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, `["GET","`+k+`"]`)
	}
	runCmds(t, g, []cmd{
		{req: post("/redis/pipeline", "["+strings.Join(cmds, ",")+"]"), status: 413, body: `{"error":"ERR reply exceeds MAX_REPLY_BYTES (65536 bytes)`, prefix: true},
		{req: post("/redis/pipeline", "["+strings.Join(cmds[:4], ",")+"]"), status: 200, body: `[{"result":"vvv`, prefix: true},
	})
}
