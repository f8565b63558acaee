package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
)

// Multi-key requests over keys of every primary, braces in keys included,
// are split by slot and merged, never failing with CROSSSLOT.
func TestClusterKeysAcrossSlots(t *testing.T) {
	t.Parallel() // its own cluster
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	b := clusterBackend(c)
	g := startGateway(t, b)

	keys := []string{"{", "}", "{}", "}{", "{a}", "{a}b", "a{b}c", "{{x}}", "%7B"}
	for i := 0; i < 20; i++ {
		keys = append(keys, "k"+strconv.Itoa(i))
	}
	primaries := map[*redistest.Server]bool{}
	for _, k := range keys {
		p, _ := c.PrimaryOf(t, "cache:"+k)
		primaries[p] = true
	}
	if len(primaries) != 3 {
		t.Fatalf("the keys live on %d primaries, want all 3", len(primaries))
	}
	for _, k := range keys {
		body, _ := json.Marshal(k)
		g.must(request{method: "PUT", path: "/cache/" + url.PathEscape(k), body: string(body)}, http.StatusCreated)
	}
	q := url.Values{"key": keys}.Encode()
	var m map[string]string
	if err := json.Unmarshal([]byte(g.must(request{method: "GET", path: "/cache?" + q}, http.StatusOK).body), &m); err != nil {
		t.Fatalf("GET /cache?key=…: %v", err)
	}
	for _, k := range keys {
		if m[k] != k {
			t.Errorf("GET /cache?key=…: %q = %q, want %q", k, m[k], k)
		}
	}
	if got := g.must(request{method: "DELETE", path: "/cache?" + q}, http.StatusOK).body; got != fmt.Sprintf(`{"deleted":%d}`, len(keys)) {
		t.Errorf("DELETE /cache?key=… = %s, want all %d deleted", got, len(keys))
	}

	// A limiter's key carries the user key as one escaped hash tag, whatever
	// braces it holds.
	for _, k := range []string{"}x", "{", "a}b{c", "{x}"} {
		path := "/ratelimit/" + url.PathEscape(k) + "/incr?limit=5"
		g.must(request{method: "POST", path: path}, http.StatusOK)
		if got := g.must(request{method: "GET", path: "/ratelimit/" + url.PathEscape(k) + "?limit=5"}, http.StatusOK).body; !json.Valid([]byte(got)) {
			t.Errorf("GET /ratelimit/%s = %s", k, got)
		}
	}
}

// A slot moving to another primary under traffic: clients meet ASK while its
// keys migrate and MOVED afterwards, and no error reaches them.
func TestClusterResharding(t *testing.T) {
	skipIfShort(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	b := clusterBackend(c)
	g := startGateway(t, b, withStoreOptions(func(o *store.Options) { o.MaxRetries = 3 }))
	ctx := context.Background()

	const n = 300
	key := func(i int) string { return "{m}" + strconv.Itoa(i) } // one slot: the tag m
	for i := 0; i < n; i++ {
		g.must(request{method: "PUT", path: "/cache/" + url.PathEscape(key(i)), body: strconv.Itoa(i)}, http.StatusCreated)
	}
	slot, err := b.rdb.ClusterKeySlot(ctx, "cache:"+key(0)).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	from, _ := c.PrimaryOf(t, "cache:"+key(0))
	var to *redistest.Server
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if p, _ := c.PrimaryOf(t, k); p != from {
			to = p
			break
		}
	}

	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		requests atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load() && i < 100000; i += 4 {
				k := url.PathEscape(key(i % (2 * n))) // half exist, half are new
				for _, req := range []request{
					{method: "PUT", path: "/cache/" + k, body: strconv.Itoa(i)},
					{method: "GET", path: "/cache/" + url.PathEscape(key(i%n))},
					{method: "POST", path: "/cache/" + k + "/incr"},
				} {
					resp := g.do(req)
					requests.Add(1)
					if resp.status >= 500 || (req.method == "GET" && resp.status != http.StatusOK) {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s %s: %d %s", req.method, req.path, resp.status, resp.body))
						mu.Unlock()
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	c.MoveSlot(t, int(slot), from, to, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // traffic after the move: MOVED
	stop.Store(true)
	wg.Wait()

	t.Logf("resharding slot %d under %d requests: %d failed", slot, requests.Load(), len(failures))
	for i, f := range failures {
		if i == 10 {
			break
		}
		t.Errorf("during resharding: %s", f)
	}
	if p, _ := c.PrimaryOf(t, "cache:"+key(0)); p != to {
		t.Errorf("the slot is still served by %s, want %s", p.Addr(), to.Addr())
	}
	for i := 0; i < n; i++ {
		g.must(request{method: "GET", path: "/cache/" + url.PathEscape(key(i))}, http.StatusOK)
	}
}

// The command API on a cluster: commands are routed by the slot of their
// first key and pipelines split by node; a command or transaction over
// several slots gets Redis's own CROSSSLOT error, as any cluster client does.
func TestClusterCommandAPI(t *testing.T) {
	t.Parallel() // its own cluster
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	g := startGateway(t, clusterBackend(c))
	keys := keysOnEveryPrimary(t, c, "")
	var cmds []cmd
	for i, k := range keys {
		cmds = append(cmds,
			cmd{req: post("/redis", `["SET","`+k+`","v`+strconv.Itoa(i)+`"]`), status: 200, body: ok(`"OK"`)},
			cmd{req: get("/redis/get/" + k), status: 200, body: ok(`"v` + strconv.Itoa(i) + `"`)},
			cmd{req: post("/redis", `["INCR","n`+k+`"]`), status: 200, body: ok(`1`)},
		)
	}
	crossSlot := cmdErr("CROSSSLOT Keys in request don't hash to the same slot")
	cmds = append(cmds,
		cmd{req: post("/redis", `["MSET","{u}a","1","{u}b","2"]`), status: 200, body: ok(`"OK"`)},
		cmd{req: post("/redis", `["MGET","{u}a","{u}b","{u}c"]`), status: 200, body: ok(`["1","2",null]`)},
		cmd{req: post("/redis", `["MGET","`+keys[0]+`","`+keys[1]+`"]`), status: 400, body: crossSlot},
		cmd{req: post("/redis/pipeline", `[["GET","`+keys[0]+`"],["GET","`+keys[1]+`"],["GET","`+keys[2]+`"]]`), status: 200,
			body: `[` + ok(`"v0"`) + `,` + ok(`"v1"`) + `,` + ok(`"v2"`) + `]`},
		cmd{req: post("/redis/multi-exec", `[["INCR","{u}n"],["INCR","{u}n"],["GET","{u}a"]]`), status: 200,
			body: `[` + ok(`1`) + `,` + ok(`2`) + `,` + ok(`"1"`) + `]`},
		cmd{req: post("/redis/multi-exec", `[["SET","`+keys[0]+`","x"],["SET","`+keys[1]+`","y"]]`), status: 400, body: crossSlot},
		// Commands about the whole data set ask every primary.
		cmd{req: get("/redis/dbsize"), status: 200, body: ok(strconv.Itoa(2*len(keys) + 3))},
	)
	runCmds(t, g, cmds)
}

// Pub/sub on a cluster: a message published on any node reaches every
// subscriber, and a stream's subscription is released when its client goes.
func TestClusterPubSub(t *testing.T) {
	t.Parallel() // its own cluster
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	b := clusterBackend(c)
	g := startGateway(t, b)
	ctx := context.Background()
	channels := keysOnEveryPrimary(t, c, "orders:")

	psub := g.openStream(get("/subscribe?pattern=orders%3A*"))
	subs := make([]*stream, len(channels))
	for i, ch := range channels {
		subs[i] = g.openStream(get("/subscribe/" + url.PathEscape(ch)))
	}
	for i, ch := range channels {
		// The count is the node's own subscribers, and the gateway's one
		// subscriber connection is on one node: only delivery is certain.
		g.must(request{method: "POST", path: "/publish/" + url.PathEscape(ch), body: strconv.Itoa(i)}, http.StatusOK)
		if got, want := subs[i].next(), `event: message`+"\n"+`data: {"channel":"`+ch+`","message":`+strconv.Itoa(i)+`}`; got != want {
			t.Errorf("channel %s: event %q, want %q", ch, got, want)
		}
		if got, want := psub.next(), `event: message`+"\n"+`data: {"pattern":"orders:*","channel":"`+ch+`","message":`+strconv.Itoa(i)+`}`; got != want {
			t.Errorf("pattern on a message of %s: event %q, want %q", ch, got, want)
		}
	}

	subscribers := func() (n int64) {
		var mu sync.Mutex
		err := b.rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			m, err := node.PubSubNumSub(ctx, channels...).Result()
			p, err2 := node.PubSubNumPat(ctx).Result()
			mu.Lock()
			defer mu.Unlock()
			for _, v := range m {
				n += v
			}
			n += p
			return errors.Join(err, err2)
		})
		if err != nil {
			t.Fatalf("PUBSUB on the primaries: %v", err)
		}
		return n
	}
	if n := subscribers(); n != int64(len(channels))+1 {
		t.Errorf("%d subscriptions on the primaries, want %d", n, len(channels)+1)
	}
	psub.close()
	for _, s := range subs {
		s.close()
	}
	waitFor(t, "the subscriptions to be released", func() bool { return subscribers() == 0 })
}

// keysOnEveryPrimary returns one key per primary, each starting with prefix.
func keysOnEveryPrimary(t *testing.T, c *redistest.Cluster, prefix string) []string {
	t.Helper()
	seen := map[*redistest.Server]bool{}
	var keys []string
	for i := 0; len(keys) < 3 && i < 1000; i++ {
		k := prefix + "k" + strconv.Itoa(i)
		if p, _ := c.PrimaryOf(t, k); !seen[p] {
			seen[p] = true
			keys = append(keys, k)
		}
	}
	if len(keys) < 3 {
		t.Fatalf("found keys on %d primaries, want 3", len(keys))
	}
	return keys
}
