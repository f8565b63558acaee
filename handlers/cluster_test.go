package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
)

// Multi-key requests over keys of every primary, braces in keys included,
// are split by slot and merged, never failing with CROSSSLOT.
func TestClusterKeysAcrossSlots(t *testing.T) {
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
