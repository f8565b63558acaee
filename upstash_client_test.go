package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// upstashPackages are the client versions the gateway is proven against.
var upstashPackages = []string{"@upstash/redis@1.39.0", "@upstash/ratelimit@2.2.0", "@upstash/lock@0.2.1"}

// upstashOperations are what testdata/upstash-client/run.mjs must report as
// exercised, so a script that skips a step cannot pass.
var upstashOperations = []string{
	"strings: set, get, del, setnx, append, strlen, getdel",
	"strings: mset, mget",
	"incr, incrby, decr",
	"expire, ttl, pexpire, persist",
	"JSON values",
	"hashes: hset, hget, hgetall as an object, hincrby, hdel, hkeys",
	"sorted sets with scores: zadd, zrange withScores, zscore, zincrby, zrank, zcard",
	"lists: rpush, lpush, lrange, lpop, llen, lindex",
	"sets: sadd, smembers, sismember, scard, srem",
	"keys, scan, exists, type, dbsize",
	"scripts: eval",
	"scripts: evalsha with the NOSCRIPT fallback (createScript)",
	"pipeline()",
	"multi()",
	"multi() across keys",
	"auto-pipelining under concurrency",
	"base64 round trips of non-ASCII and binary-ish strings",
	"refused commands answer with an error naming them",
	"subscribe and publish",
	"psubscribe and publish",
	"@upstash/ratelimit sliding window (scripts with #!lua flags=allow-key-locking)",
	"@upstash/ratelimit token bucket (scripts with #!lua flags=allow-key-locking)",
	"@upstash/ratelimit fixed window (scripts with #!lua flags=allow-key-locking)",
	"@upstash/lock acquire, contention, extend, release",
	"read-your-writes: the sync token changes after every write, pipeline and script call",
}

// The official Upstash clients, installed with the machine's Node.js and
// npm, work against the gateway on a real Redis unchanged.
func TestUpstashClients(t *testing.T) {
	node, npm := lookNode(t)
	modules := installUpstashClients(t, npm)
	srv := redistest.Start(t)
	g := mustStartGateway(t, srv.URL())

	runUpstashScript(t, g, modules, node, "all")
}

// runUpstashScript runs testdata/upstash-client/run.mjs against g and fails
// unless it reports every operation of upstashOperations. With scope
// "single-key" (Redis Cluster) it may skip those whose keys span slots.
func runUpstashScript(t *testing.T, g *gateway, modules, node, scope string) {
	t.Helper()
	// The script must sit next to node_modules for Node to resolve the
	// packages; a directory of its own per run keeps parallel runs apart.
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "upstash-client", "run.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"UPSTASH_REDIS_REST_URL="+g.URL+"/redis",
		"UPSTASH_REDIS_REST_TOKEN="+testToken,
		"GATEWAY_URL="+g.URL,
		"UPSTASH_TEST_SCOPE="+scope,
		"UPSTASH_DISABLE_TELEMETRY=1",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	exercised, skipped := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		t.Log(sc.Text())
		if op, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			exercised[op] = true
		}
		if op, ok := strings.CutPrefix(sc.Text(), "skip "); ok {
			skipped[strings.TrimSuffix(op, " (keys in several slots)")] = true
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run.mjs: %v\n%s\ngateway log:\n%s", err, stderr.String(), g.Stdout.String())
	}
	for _, op := range upstashOperations {
		if !exercised[op] && !(scope == "single-key" && skipped[op]) {
			t.Errorf("run.mjs did not report %q", op)
		}
	}
}

// lookNode finds node and npm. CI must run the real-client test, so their
// absence fails it there.
func lookNode(t *testing.T) (node, npm string) {
	t.Helper()
	if testing.Short() {
		t.Skip("installs and runs the Upstash clients with npm and Node.js; runs without -short")
	}
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	err := errors.Join(errNode, errNpm)
	if err == nil {
		// The clients need fetch and ES modules: Node.js 18 or later.
		out, verr := exec.Command(node, "-p", "process.versions.node.split('.')[0] >= 18").Output()
		if verr != nil || strings.TrimSpace(string(out)) != "true" {
			err = fmt.Errorf("%s is older than Node.js 18 (%v)", node, verr)
		}
	}
	if err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("Node.js 18+ and npm are needed for the real-client test and %s=1: %v", redistest.RequireEnv, err)
		}
		t.Skipf("no usable node and npm (install Node.js 18+, or set %s=1 to make this a failure): %v", redistest.RequireEnv, err)
	}
	return node, npm
}

// installUpstashClients installs the pinned clients once into the user's
// cache directory, outside the module, and returns their node_modules.
func installUpstashClients(t *testing.T, npm string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256([]byte(strings.Join(upstashPackages, " ")))
	dir := filepath.Join(cache, "redis-gateway-test", "upstash-clients-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "@upstash", "lock", "package.json")); err == nil {
		return modules
	}
	// Install next to the final place and rename, so a parallel run never
	// sees half an installation.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "installing-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, append([]string{"install", "--no-audit", "--no-fund", "--save-exact"}, upstashPackages...)...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(upstashPackages, " "), err, out)
	}
	t.Logf("installed %s into %s", strings.Join(upstashPackages, " "), dir)
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(modules); statErr != nil {
			t.Fatal(fmt.Errorf("move the installation into place: %w", err))
		}
	}
	return modules
}

// The Upstash client with scoped tokens: refusals arrive as the NOPERM
// errors the client raises, and pipelines and transactions are refused
// whole.
func TestUpstashClientsScoped(t *testing.T) {
	node, npm := lookNode(t)
	modules := installUpstashClients(t, npm)
	srv := redistest.Start(t)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	const readToken, ordersToken = "upstash-read-secret-0001", "upstash-orders-secret-01"
	if err := os.WriteFile(tokens, []byte(`{"tokens": [
		{"name": "reader", "secret": "`+readToken+`", "routes": ["redis"], "access": "read"},
		{"name": "orders", "secret": "`+ordersToken+`", "routes": ["redis"], "keys": ["orders:*"]}
	]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := mustStartGateway(t, srv.URL(), "GATEWAY_TOKENS_FILE="+tokens)

	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "upstash-client", "scoped.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scoped.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "scoped.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"UPSTASH_REDIS_REST_URL="+g.URL+"/redis",
		"FULL_TOKEN="+testToken, "READ_TOKEN="+readToken, "ORDERS_TOKEN="+ordersToken,
		"UPSTASH_DISABLE_TELEMETRY=1",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("scoped.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("scoped.mjs: %v\ngateway log:\n%s", err, g.Stdout.String())
	}
	for _, want := range []string{
		"ok a read-only token reads, and its writes are refused with NOPERM",
		"ok a key-restricted token stays inside its keys",
		"ok a pipeline with one command outside is refused whole, and runs nothing",
		"ok with auto-pipelining, a refused command fails its batch",
		"done",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("scoped.mjs did not report %q", want)
		}
	}
}
