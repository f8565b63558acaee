package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
)

// nearGateway is a gateway with the near-cache on, serving, against a real
// redis-server (miniredis has no client tracking).
func nearGateway(t *testing.T, staleness time.Duration, opts ...option) (*gateway, backend, *prometheus.Registry) {
	t.Helper()
	srv := redistest.Start(t)
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
	g, reg := nearGatewayOn(t, b, staleness, opts...)
	return g, b, reg
}

// nearGatewayOn is nearGateway on backend b.
func nearGatewayOn(t *testing.T, b backend, staleness time.Duration, opts ...option) (*gateway, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := startGateway(t, b,
		withConfig(func(c *handlers.Config) { c.Registry = reg }),
		func(s *setup) {
			s.store.NearCache = &store.NearCacheOptions{MaxEntries: 10_000, MaxBytes: 16 << 20, MaxStaleness: staleness}
			for _, o := range opts {
				o(s)
			}
		})
	waitForMetric(t, reg, "redis_gateway_near_cache_serving", 1)
	return g, reg
}

// Through one gateway, a GET that starts after a PUT has been answered
// returns that value or a newer one, never an older one: 10,000 PUT-then-GET
// pairs over four keys, from eight writers at once, while readers keep the
// near-cache busy filling and serving the same keys.
func TestNearCacheReadYourWrites(t *testing.T) {
	g, _, reg := nearGateway(t, time.Minute)
	readYourWrites(t, g, reg, 10_000, nil)
}

// The same on Redis Cluster: with the slot map as it is, through a planned
// failover of the primary of a key being written (the old primary, still
// up, becomes a replica), and through the migration of a key's slot to
// another primary. Writes and reads that fail while the cluster changes
// are left out; every answer still is checked.
func TestNearCacheReadYourWritesCluster(t *testing.T) {
	t.Run("steady", func(t *testing.T) {
		b := sharedClusterBackend(t)
		g, reg := nearGatewayOn(t, b, time.Minute)
		readYourWrites(t, g, reg, 2_000, nil)
	})
	t.Run("failover", func(t *testing.T) {
		skipIfShort(t)
		c := redistest.StartCluster(t, redistest.ClusterOptions{})
		g, reg := nearGatewayOn(t, clusterBackend(c), time.Minute)
		primary, replica := c.PrimaryOf(t, "cache:ryw0")
		readYourWrites(t, g, reg, 4_000, func() {
			if err := c.Failover(t, primary, replica); err != nil {
				t.Error(err)
			}
		})
	})
	t.Run("slot migration", func(t *testing.T) {
		skipIfShort(t)
		c := redistest.StartCluster(t, redistest.ClusterOptions{})
		b := clusterBackend(c)
		g, reg := nearGatewayOn(t, b, time.Minute)
		slot, err := b.rdb.ClusterKeySlot(context.Background(), "cache:ryw0").Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		from, _ := c.PrimaryOf(t, "cache:ryw0")
		var to *redistest.Server
		for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
			if p, _ := c.PrimaryOf(t, k); p != from {
				to = p
				break
			}
		}
		readYourWrites(t, g, reg, 4_000, func() {
			c.MoveSlot(t, int(slot), from, to, 10*time.Millisecond)
		})
		if p, _ := c.PrimaryOf(t, "cache:ryw0"); p != to {
			t.Errorf("cache:ryw0 is served by %s, want %s", p.Addr(), to.Addr())
		}
	})
}

// readYourWrites runs pairs PUT-then-GET pairs through g over four keys,
// from eight writers, with two readers filling and serving the same keys,
// and checks that no read returned a value older than one acknowledged
// before it began. disturb, when set, runs once the traffic has begun;
// the traffic goes on for a second after it returns. While it runs,
// requests may fail: a failed PUT counts as a write that may or may not
// have happened.
func readYourWrites(t *testing.T, g *gateway, reg *prometheus.Registry, pairs int, disturb func()) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	const keys, writers = 4, 8
	base := time.Now()
	call := func(method, path, body string) (status int, got string, start, end time.Duration) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, g.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+testToken)
		start = time.Since(base)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0, "", start, time.Since(base)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), start, time.Since(base)
	}

	var mu sync.Mutex
	writes := map[string]op{} // by value
	var reads []op
	var failed int
	for k := range keys {
		v := fmt.Sprintf(`{"key":%d,"initial":true}`, k)
		if status, _, start, end := call("PUT", fmt.Sprintf("/cache/ryw%d", k), v); status != http.StatusCreated {
			t.Fatalf("PUT /cache/ryw%d: status = %d, want 201", k, status)
		} else {
			writes[v] = op{key: k, value: v, start: start, end: end}
		}
	}
	var disturbing, disturbed atomic.Bool
	// failure notes a failed request: an error unless disturb is running
	// (or ran less than a second ago, for requests sent meanwhile).
	failure := func(format string, args ...any) bool {
		mu.Lock()
		defer mu.Unlock()
		if !disturbing.Load() {
			t.Errorf(format, args...)
			return true
		}
		failed++
		return false
	}

	done := make(chan struct{})
	var wg, readers sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < pairs/writers || (disturb != nil && !disturbed.Load()); i++ {
				k := (w + i) % keys
				path := fmt.Sprintf("/cache/ryw%d", k)
				v := fmt.Sprintf(`{"key":%d,"writer":%d,"i":%d}`, k, w, i)
				status, _, start, end := call("PUT", path, v)
				if status != http.StatusNoContent {
					mu.Lock()
					writes[v] = op{key: k, value: v, start: start, end: forever}
					mu.Unlock()
					if failure("PUT %s: status = %d, want 204", path, status) {
						return
					}
					continue
				}
				mu.Lock()
				writes[v] = op{key: k, value: v, start: start, end: end}
				mu.Unlock()
				status, got, start, end := call("GET", path, "")
				if status != http.StatusOK {
					if failure("GET %s: status = %d, want 200", path, status) {
						return
					}
					continue
				}
				mu.Lock()
				reads = append(reads, op{key: k, value: got, start: start, end: end, after: v})
				mu.Unlock()
			}
		})
	}
	for r := range 2 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := (r + i) % keys
				status, got, start, end := call("GET", fmt.Sprintf("/cache/ryw%d", k), "")
				if status != http.StatusOK {
					if failure("GET /cache/ryw%d: status = %d, want 200", k, status) {
						return
					}
					continue
				}
				mu.Lock()
				reads = append(reads, op{key: k, value: got, start: start, end: end})
				mu.Unlock()
			}
		})
	}
	if disturb != nil {
		time.Sleep(200 * time.Millisecond)
		disturbing.Store(true)
		disturb()
		time.Sleep(time.Second)
		disturbing.Store(false)
		time.Sleep(time.Second)
		disturbed.Store(true)
	}
	wg.Wait()
	close(done)
	readers.Wait()

	if stale := staleReads(t, writes, reads); stale > 0 {
		t.Errorf("%d of %d reads returned a value older than one written and acknowledged before the read began", stale, len(reads))
	}
	hits, misses := metricValue(t, reg, "redis_gateway_near_cache_hits_total"), metricValue(t, reg, "redis_gateway_near_cache_misses_total")
	t.Logf("%d reads: %.0f near-cache hits, %.0f misses; %d requests failed while the cluster changed", len(reads), hits, misses, failed)
	if hits == 0 || misses == 0 {
		t.Errorf("near-cache hits = %.0f, misses = %.0f; want both, or the test did not exercise the cache", hits, misses)
	}
}

// forever is the end of a write never acknowledged: it may have happened,
// and overwrites nothing for certain.
const forever = time.Duration(1<<63 - 1)

// op is one write or read of the read-your-writes test, timed on the test's
// clock from before the request to after the answer.
type op struct {
	key        int
	value      string
	start, end time.Duration
	after      string // for a writer's read: the value it had just written
}

// staleReads counts the reads that returned value X although another write
// Y of that key began after X had been acknowledged and was itself
// acknowledged before the read began: X was overwritten, for certain, before
// the read was sent. A writer's own PUT is such a Y whenever it is not X.
func staleReads(t *testing.T, writes map[string]op, reads []op) int {
	t.Helper()
	type byEnd struct {
		ends      []time.Duration
		maxStarts []time.Duration // the latest start among writes ended by then
	}
	perKey := map[int]*byEnd{}
	var all []op
	for _, w := range writes {
		all = append(all, w)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].end < all[j].end })
	for _, w := range all {
		b := perKey[w.key]
		if b == nil {
			b = &byEnd{}
			perKey[w.key] = b
		}
		latest := w.start
		if n := len(b.maxStarts); n > 0 {
			latest = max(latest, b.maxStarts[n-1])
		}
		b.ends = append(b.ends, w.end)
		b.maxStarts = append(b.maxStarts, latest)
	}
	stale := 0
	for _, r := range reads {
		x, ok := writes[r.value]
		if !ok || x.key != r.key {
			t.Errorf("GET /cache/ryw%d returned %s, which nobody wrote there", r.key, r.value)
			stale++
			continue
		}
		b := perKey[r.key]
		i, _ := slices.BinarySearch(b.ends, r.start) // writes [0, i) ended before the read began
		if i > 0 && b.maxStarts[i-1] > x.end {
			if stale < 5 {
				t.Errorf("GET /cache/ryw%d at %v returned %s (acknowledged at %v), but a write begun at %v was acknowledged before the read; own PUT: %s",
					r.key, r.start, r.value, x.end, b.maxStarts[i-1], r.after)
			}
			stale++
		}
	}
	return stale
}

// A value changed by another Redis client disappears from the near-cache as
// soon as Redis says so: the test measures how soon, over many trials, and
// holds each to a bound far below NEAR_CACHE_MAX_STALENESS, which would
// otherwise be what ends a stale value. Some trials flush the database, and
// some break the connection that carries the invalidations just before the
// write, which the near-cache must notice before it serves again.
func TestNearCacheSeesOtherWritersWithinABound(t *testing.T) {
	g, b, reg := nearGateway(t, time.Minute)
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", g.url+"/cache/ext", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /cache/ext: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	const trials, bound = 200, time.Second
	g.must(request{method: "PUT", path: "/cache/ext", body: `{"v":0}`}, http.StatusCreated)
	var took []time.Duration
	for i := 1; i <= trials; i++ {
		before := metricValue(t, reg, "redis_gateway_near_cache_hits_total")
		get()
		if status, body := get(); status != http.StatusOK || metricValue(t, reg, "redis_gateway_near_cache_hits_total") <= before {
			t.Fatalf("trial %d: GET /cache/ext = %d %s, and not from the near-cache; want the old value cached first", i, status, body)
		}
		want := fmt.Sprintf(`{"v":%d}`, i)
		if i%50 == 0 {
			want = "" // now and then, a FLUSHALL rather than a SET
		}
		resumed := i%50 == 25 // and now and then, the invalidation stream breaks first
		if resumed {
			if err := b.rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
				t.Fatalf("trial %d: CLIENT KILL TYPE pubsub: %v", i, err)
			}
		}
		var err error
		if want == "" {
			err = b.rdb.FlushAll(ctx).Err()
		} else {
			err = b.rdb.Set(ctx, "cache:ext", want, 0).Err()
		}
		if err != nil {
			t.Fatalf("trial %d: write behind the gateway's back: %v", i, err)
		}
		written := time.Now()
		for {
			status, body := get()
			if (want == "" && status == http.StatusNotFound) || (want != "" && body == want) {
				took = append(took, time.Since(written))
				break
			}
			if time.Since(written) > bound {
				t.Fatalf("trial %d: the gateway still answers %d %s %v after another client wrote %q", i, status, body, bound, want)
			}
		}
		if want == "" {
			g.must(request{method: "PUT", path: "/cache/ext", body: `{"v":0}`}, http.StatusCreated)
		}
		if want == "" || resumed {
			waitForMetric(t, reg, "redis_gateway_near_cache_serving", 1)
		}
	}
	slices.Sort(took)
	t.Logf("another client's write was visible through the gateway after p50 %v, p99 %v, max %v (%d trials, polling GET)",
		took[len(took)/2], took[len(took)*99/100], took[len(took)-1], len(took))
}

// The values the near-cache keeps are read on a connection of its own,
// whose reads Redis tracks. Should Redis drop that connection alone (CLIENT
// KILL here; an idle timeout or client eviction in production), it forgets
// what was read there and reports none of those keys' changes, though the
// invalidation connection is up. The gateway must notice within about a
// ping, far below NEAR_CACHE_MAX_STALENESS, and read from Redis again.
func TestNearCacheNoticesItsReaderGone(t *testing.T) {
	g, b, reg := nearGateway(t, time.Minute)
	ctx := context.Background()
	const bound = 5 * time.Second // a ping a second, and a busy machine
	for trial := range 3 {
		old, want := fmt.Sprintf(`{"v":%d}`, 2*trial), fmt.Sprintf(`{"v":%d}`, 2*trial+1)
		status := http.StatusNoContent
		if trial == 0 {
			status = http.StatusCreated
		}
		g.must(request{method: "PUT", path: "/cache/reader", body: old}, status)
		before := metricValue(t, reg, "redis_gateway_near_cache_hits_total")
		for metricValue(t, reg, "redis_gateway_near_cache_hits_total") == before {
			if got := g.must(request{method: "GET", path: "/cache/reader"}, http.StatusOK).body; got != old {
				t.Fatalf("trial %d: GET /cache/reader = %s, want %s", trial, got, old)
			}
		}
		id := trackedClient(t, b.rdb)
		if err := b.rdb.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
			t.Fatalf("trial %d: CLIENT KILL ID %d: %v", trial, id, err)
		}
		if err := b.rdb.Set(ctx, "cache:reader", want, 0).Err(); err != nil {
			t.Fatalf("trial %d: SET behind the gateway's back: %v", trial, err)
		}
		written := time.Now()
		for {
			got := g.must(request{method: "GET", path: "/cache/reader"}, http.StatusOK).body
			if got == want {
				t.Logf("trial %d: the new value was served %v after the reader's connection was killed", trial, time.Since(written))
				break
			}
			if time.Since(written) > bound {
				t.Fatalf("trial %d: GET /cache/reader still answers %s %v after its reader's connection was killed and another client wrote %s",
					trial, got, bound, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitForMetric(t, reg, "redis_gateway_near_cache_serving", 1)
	}
}

// trackedClient is the id of the one connection with CLIENT TRACKING on.
func trackedClient(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var ids []int64
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var id int64
		var flags string
		for _, field := range strings.Fields(line) {
			name, v, _ := strings.Cut(field, "=")
			switch name {
			case "id":
				id, _ = strconv.ParseInt(v, 10, 64)
			case "flags":
				flags = v
			}
		}
		if strings.Contains(flags, "t") {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("CLIENT LIST: %d connections with tracking on, want 1:\n%s", len(ids), list)
	}
	return ids[0]
}

// On Redis Cluster, a value another client changes leaves the near-cache
// within a bound far below NEAR_CACHE_MAX_STALENESS, on every primary:
// with the slot map as it is, for values cached before a planned failover
// and changed on the replica that took over, and for values cached before
// their slot moved to another primary and changed there; then again for
// values cached on the new primaries; and for values cached before their
// primary was killed, once its replica took over.
func TestNearCacheSeesOtherWritersCluster(t *testing.T) {
	skipIfShort(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	b := clusterBackend(c)
	g, reg := nearGatewayOn(t, b, time.Minute)
	ctx := context.Background()
	const bound = 5 * time.Second // the slot map is checked every second; a busy machine
	keys := keysOnEveryPrimary(t, c, "")
	cache := func(key string) {
		t.Helper()
		waitForMetric(t, reg, "redis_gateway_near_cache_serving", 1)
		before := metricValue(t, reg, "redis_gateway_near_cache_hits_total")
		for deadline := time.Now().Add(bound); metricValue(t, reg, "redis_gateway_near_cache_hits_total") == before; {
			if time.Now().After(deadline) {
				t.Fatalf("GET /cache/%s: no answer from the near-cache within %v", key, bound)
			}
			g.must(request{method: "GET", path: "/cache/" + key}, http.StatusOK)
		}
	}
	n := 0
	visible := func(step, key string) {
		t.Helper()
		n++
		want := fmt.Sprintf(`{"n":%d}`, n)
		for deadline := time.Now().Add(bound); ; time.Sleep(10 * time.Millisecond) {
			// The test's own cluster client may need a moment to find a
			// new primary.
			err := b.rdb.Set(ctx, "cache:"+key, want, 0).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: SET cache:%s behind the gateway's back: %v", step, key, err)
			}
			b.rdb.(*redis.ClusterClient).ReloadState(ctx)
		}
		written := time.Now()
		for {
			// A 503 is fine while the gateway finds a new primary; an old
			// value is fine until the bound.
			got := g.do(request{method: "GET", path: "/cache/" + key}).body
			if got == want {
				t.Logf("%s: another client's write of %s was visible after %v", step, key, time.Since(written).Round(time.Microsecond))
				return
			}
			if time.Since(written) > bound {
				t.Fatalf("%s: GET /cache/%s still answers %s %v after another client wrote %s", step, key, got, bound, want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	for _, k := range keys {
		g.must(request{method: "PUT", path: "/cache/" + k, body: `{"n":0}`}, http.StatusCreated)
		cache(k)
		visible("steady", k)
	}

	for _, k := range keys {
		cache(k)
	}
	primary, replica := c.PrimaryOf(t, "cache:"+keys[0])
	if err := c.Failover(t, primary, replica); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		visible("after a failover", k)
	}
	for _, k := range keys {
		cache(k)
		visible("after a failover, cached again", k)
	}

	for _, k := range keys {
		cache(k)
	}
	slot, err := b.rdb.ClusterKeySlot(ctx, "cache:"+keys[1]).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	from, _ := c.PrimaryOf(t, "cache:"+keys[1])
	to, _ := c.PrimaryOf(t, "cache:"+keys[2])
	c.MoveSlot(t, int(slot), from, to, 0)
	for _, k := range keys {
		visible("after a slot migration", k)
	}
	for _, k := range keys {
		cache(k)
		visible("after a slot migration, cached again", k)
	}

	for _, k := range keys {
		cache(k)
	}
	victim, heir := c.PrimaryOf(t, "cache:"+keys[2])
	victim.Stop()
	for deadline := time.Now().Add(15 * time.Second); c.Role(t, heir) != "master"; {
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not take over")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range keys {
		visible("after a crash", k)
	}
}

// A value leaves the near-cache when its TTL ends, without waiting for
// Redis to notice the expiry and report it. The near-cache's clock moves
// past the TTL while Redis's does not: the value, still in Redis, must be
// read from there.
func TestNearCacheKeepsTTLs(t *testing.T) {
	clock := redistest.NewClock()
	g, _, reg := nearGateway(t, time.Hour, withStoreOptions(func(o *store.Options) { o.NearCache.Now = clock.Now }))
	const hits, misses = "redis_gateway_near_cache_hits_total", "redis_gateway_near_cache_misses_total"
	servedFromCache := func(path string) bool {
		t.Helper()
		h, m := metricValue(t, reg, hits), metricValue(t, reg, misses)
		g.must(request{method: "GET", path: path}, http.StatusOK)
		hit, miss := metricValue(t, reg, hits) > h, metricValue(t, reg, misses) > m
		if hit == miss {
			t.Fatalf("GET %s: hit %v, miss %v; want one of them", path, hit, miss)
		}
		return hit
	}
	g.must(request{method: "PUT", path: "/cache/short?ttl=100", body: `1`}, http.StatusCreated)
	g.must(request{method: "GET", path: "/cache/short"}, http.StatusOK)
	if !servedFromCache("/cache/short") {
		t.Fatalf("GET /cache/short was not served from the near-cache")
	}
	clock.Add(90 * time.Second) // Redis counts the TTL down in real time: some margin
	if !servedFromCache("/cache/short") {
		t.Errorf("GET /cache/short was not served from the near-cache within its TTL")
	}
	clock.Add(10 * time.Second)
	if servedFromCache("/cache/short") {
		t.Errorf("GET /cache/short was served from the near-cache after its TTL")
	}

	// An EXPIRE through the gateway shortens the TTL the cache keeps too.
	g.must(request{method: "PUT", path: "/cache/long?ttl=3600", body: `2`}, http.StatusCreated)
	g.must(request{method: "GET", path: "/cache/long"}, http.StatusOK)
	g.must(request{method: "POST", path: "/cache/long/expire?ttl=100"}, http.StatusOK)
	g.must(request{method: "GET", path: "/cache/long"}, http.StatusOK)
	if !servedFromCache("/cache/long") {
		t.Fatalf("GET /cache/long was not served from the near-cache")
	}
	clock.Add(100 * time.Second)
	if servedFromCache("/cache/long") {
		t.Errorf("GET /cache/long was served from the near-cache 100 s after EXPIRE ttl=100")
	}
}

// Every write route drops the value it changes before it answers.
func TestNearCacheDropsOwnWrites(t *testing.T) {
	g, _, _ := nearGateway(t, time.Minute)
	cached := func(path, want string) {
		t.Helper()
		for range 2 { // fill, then hit
			if got := g.must(request{method: "GET", path: path}, http.StatusOK).body; got != want {
				t.Fatalf("GET %s = %s, want %s", path, got, want)
			}
		}
	}
	g.must(request{method: "PUT", path: "/cache/n", body: `1`}, http.StatusCreated)
	cached("/cache/n", `1`)
	g.must(request{method: "POST", path: "/cache/n/incr?by=2"}, http.StatusOK)
	cached("/cache/n", `3`)
	g.must(request{method: "PUT", path: "/cache/n", body: `4`, header: map[string]string{"If-Match": "*"}}, http.StatusNoContent)
	cached("/cache/n", `4`)
	tag := g.must(request{method: "GET", path: "/cache/n"}, http.StatusOK).header.Get("ETag")
	g.must(request{method: "PUT", path: "/cache/n", body: `5`, header: map[string]string{"If-Match": tag}}, http.StatusNoContent)
	cached("/cache/n", `5`)
	g.must(request{method: "DELETE", path: "/cache/n"}, http.StatusNoContent)
	g.must(request{method: "GET", path: "/cache/n"}, http.StatusNotFound)
	g.must(request{method: "PUT", path: "/cache/n", body: `6`, header: map[string]string{"If-None-Match": "*"}}, http.StatusCreated)
	cached("/cache/n", `6`)
	g.must(request{method: "DELETE", path: "/cache?key=n&key=other"}, http.StatusOK)
	g.must(request{method: "GET", path: "/cache/n"}, http.StatusNotFound)
}

// Without CLIENT TRACKING (miniredis here), the near-cache stays off and
// every read goes to Redis; its metrics are clean either way.
func TestNearCacheOffWithoutClientTracking(t *testing.T) {
	b := miniBackend(t)
	reg := prometheus.NewRegistry()
	g := startGateway(t, b,
		withConfig(func(c *handlers.Config) { c.Registry = reg }),
		func(s *setup) {
			s.store.NearCache = &store.NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Minute}
		})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(g.logs.String(), "near-cache off") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying the near-cache is off:\n%s", g.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.must(request{method: "PUT", path: "/cache/k", body: `1`}, http.StatusCreated)
	g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK)
	if err := b.rdb.Set(context.Background(), "cache:k", "2", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK).body; got != "2" {
		t.Errorf("GET /cache/k after another client wrote 2 = %s, want 2", got)
	}
	if v := metricValue(t, reg, "redis_gateway_near_cache_serving"); v != 0 {
		t.Errorf("redis_gateway_near_cache_serving = %v, want 0", v)
	}
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// metricValue sums every series of the counter or gauge named name.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func waitForMetric(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, reg, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 5s, want %v", name, metricValue(t, reg, name), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
