package handlers_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/store"
)

// The hot routes, from the router down to a real redis-server, with the
// production middleware (auth, metrics, a JSON access log) and about 50
// concurrent callers. They start below net/http: a request costs its parsing and its
// connection on top of these. Run with -benchmem to see allocations per
// request:
//
//	go test ./handlers -run '^$' -bench . -benchmem

func BenchmarkCacheGet(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "PUT", "/cache/hot", `{"ok":true,"value":"gateway-gateway-gateway-gate"}`, http.StatusCreated)
	withCommandTime(b, srv, func() { benchRoute(b, h, "GET", "/cache/hot", "", http.StatusOK) })
}

// BenchmarkCacheGetNearCache reads a value the near-cache holds: no Redis.
func BenchmarkCacheGetNearCache(b *testing.B) {
	benchNearCacheHit(b, store.Options{})
}

func benchNearCacheHit(b *testing.B, opts store.Options) {
	opts.NearCache = &store.NearCacheOptions{MaxEntries: 1000, MaxBytes: 1 << 20, MaxStaleness: time.Minute}
	h, reg := benchGatewayWithMetrics(b, opts)
	waitServing(b, reg)
	deadline := time.Now().Add(5 * time.Second)
	mustServe(b, h, "PUT", "/cache/hot", `{"ok":true,"value":"gateway-gateway-gateway-gate"}`, http.StatusCreated)
	// The invalidation Redis sends for the PUT may drop the first value read
	// after it; read until one is served from memory.
	for metricValue(b, reg, "redis_gateway_near_cache_hits_total") == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no read was served from the near-cache within 5s")
		}
		mustServe(b, h, "GET", "/cache/hot", "", http.StatusOK)
	}
	before := metricValue(b, reg, "redis_gateway_near_cache_hits_total")
	benchRoute(b, h, "GET", "/cache/hot", "", http.StatusOK)
	if hits := metricValue(b, reg, "redis_gateway_near_cache_hits_total") - before; hits < float64(b.N)/2 {
		b.Errorf("%.0f of %d reads came from the near-cache, want most", hits, b.N)
	}
}

// waitServing waits until the near-cache serves.
func waitServing(b *testing.B, reg *prometheus.Registry) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(b, reg, "redis_gateway_near_cache_serving") != 1 {
		if time.Now().After(deadline) {
			b.Fatal("the near-cache did not start serving within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkCachePut(b *testing.B) {
	benchPut(b, benchGateway(b, store.Options{}))
}

// BenchmarkCachePutKeys writes 200-byte values to about 3,000 keys, as the
// PUT scenario of bench/ does to 10,000: with the near-cache on, what Redis's
// client tracking adds to writes of keys nobody reads, which Redis cannot
// fold into one invalidation as it does repeated writes of one key.
func BenchmarkCachePutKeys(b *testing.B) {
	benchPutKeys(b, benchGateway(b, store.Options{}))
}

func BenchmarkCachePutKeysNearCache(b *testing.B) {
	h, reg := benchGatewayWithMetrics(b, store.Options{
		NearCache: &store.NearCacheOptions{MaxEntries: 1000, MaxBytes: 1 << 20, MaxStaleness: time.Minute},
	})
	waitServing(b, reg)
	benchPutKeys(b, h)
}

func benchPutKeys(b *testing.B, h http.Handler) {
	const body = `{"id":123456789,"name":"benchmark document","tags":["alpha","beta","gamma"],"active":true,` +
		`"score":98.6,"note":"the payload of the PUT scenario is two hundred bytes of JSON","pad":"xxxxxxxxxxxxxxxxxx"}`
	const perCaller = 64
	var callers atomic.Int64
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		first := callers.Add(1) * perCaller
		w := &sinkWriter{header: http.Header{}}
		raw := []byte(body)
		rd := &rewindReader{}
		rd.Reset(raw)
		var reqs [perCaller]*http.Request
		for i := range reqs {
			reqs[i] = newBenchRequest(b, "PUT", "/cache/p"+strconv.FormatInt(first+int64(i), 10), rd)
		}
		for i := 0; pb.Next(); i++ {
			clear(w.header)
			w.status = 0
			rd.Reset(raw)
			h.ServeHTTP(w, reqs[i%perCaller])
			if w.status != http.StatusNoContent && w.status != http.StatusCreated {
				b.Errorf("PUT %s: status = %d, want 204 or 201", reqs[i%perCaller].URL.Path, w.status)
				return
			}
		}
	})
}

func benchPut(b *testing.B, h http.Handler) {
	benchRoute(b, h, "PUT", "/cache/p", `{"id":123456789,"name":"benchmark document","tags":["alpha","beta","gamma"],"active":true}`, http.StatusNoContent)
}

// BenchmarkRateLimitIncr also reports the time Redis's commands ran
// (INFO commandstats) per call.
func BenchmarkRateLimitIncr(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	withCommandTime(b, srv, func() { benchIncr(b, h) })
}

func benchIncr(b *testing.B, h http.Handler) {
	benchRoute(b, h, "POST", "/ratelimit/r/incr?limit=1000000000000&window=3600", "", http.StatusOK)
}

// withCommandTime runs bench and reports the time srv's commands ran per
// operation (redis-cmd-µs/op): what Redis spent running them, without its
// network and protocol work, which redis-ns/op includes. A script's time
// includes the commands it calls, which commandstats also counts on their
// own, so for scripts redis-ns/op is the figure to compare.
func withCommandTime(b *testing.B, srv *redistest.Server, bench func()) {
	b.Helper()
	c := srv.Client()
	ctx := context.Background()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	bench()
	b.StopTimer()
	stats, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	var usec float64
	for _, line := range strings.Split(stats, "\n") {
		if _, rest, ok := strings.Cut(line, "usec="); ok && strings.HasPrefix(line, "cmdstat_") {
			n, _ := strconv.ParseFloat(strings.SplitN(rest, ",", 2)[0], 64)
			usec += n
		}
	}
	b.ReportMetric(usec/float64(b.N), "redis-cmd-µs/op")
}

// The same routes on a Redis Cluster of three primaries (and three
// replicas), to set beside the single server's: the cluster client routes
// every command by slot, and batches them per primary.

func BenchmarkCacheGetCluster(b *testing.B) {
	h := benchGateway(b, store.Options{ClusterNodes: benchCluster(b)})
	mustServe(b, h, "PUT", "/cache/hot", `{"ok":true,"value":"gateway-gateway-gateway-gate"}`, http.StatusCreated)
	benchRoute(b, h, "GET", "/cache/hot", "", http.StatusOK)
}

func BenchmarkCacheGetNearCacheCluster(b *testing.B) {
	benchNearCacheHit(b, store.Options{ClusterNodes: benchCluster(b)})
}

func BenchmarkCachePutCluster(b *testing.B) {
	benchPut(b, benchGateway(b, store.Options{ClusterNodes: benchCluster(b)}))
}

// BenchmarkCachePutKeysCluster writes to about 3,000 keys on the cluster,
// as BenchmarkCachePutKeys does on one server: the keys spread over the
// three primaries, so each batch is split by node, where the one key of
// BenchmarkCachePutCluster always goes to one.
func BenchmarkCachePutKeysCluster(b *testing.B) {
	benchPutKeys(b, benchGateway(b, store.Options{ClusterNodes: benchCluster(b)}))
}

func BenchmarkRateLimitIncrCluster(b *testing.B) {
	benchIncr(b, benchGateway(b, store.Options{ClusterNodes: benchCluster(b)}))
}

// benchCluster starts a cluster (two seconds, for every b.N tried) and
// returns the one node the gateway is given.
func benchCluster(b *testing.B) []string {
	b.Helper()
	return redistest.StartCluster(b, redistest.ClusterOptions{}).Addrs()[:1]
}

func benchGateway(b *testing.B, opts store.Options) http.Handler {
	b.Helper()
	h, _ := benchGatewayWithMetrics(b, opts)
	return h
}

func benchGatewayWithMetrics(b *testing.B, opts store.Options) (http.Handler, *prometheus.Registry) {
	b.Helper()
	if opts.ClusterNodes == nil {
		return benchGatewayOn(b, redistest.Start(b), opts)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: opts.ClusterNodes, DisableIdentity: true})
	b.Cleanup(func() { cc.Close() })
	return benchGatewayFor(b, cc, opts)
}

func benchGatewayOn(b *testing.B, srv *redistest.Server, opts store.Options) (http.Handler, *prometheus.Registry) {
	b.Helper()
	opts.URL = srv.URL()
	return benchGatewayFor(b, srv.Client(), opts)
}

// benchGatewayFor builds the gateway on the Redis rdb reaches, and reports
// the CPU both spend per request.
func benchGatewayFor(b *testing.B, rdb redis.UniversalClient, opts store.Options) (http.Handler, *prometheus.Registry) {
	b.Helper()
	reportCPU(b, rdb)
	reg := prometheus.NewRegistry()
	// The JSON log as the gateway builds it (LOG_FORMAT=json).
	logger := slog.New(middleware.NewJSONHandler(io.Discard, nil))
	opts.Logger, opts.Registry = logger, reg
	st, err := store.New(opts)
	if err != nil {
		b.Fatalf("store.New: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	return handlers.New(handlers.Config{
		Store:          st,
		Logger:         logger,
		Registry:       reg,
		TokenSet:       staticTokens(testToken),
		MaxBodyBytes:   1 << 20,
		RequestTimeout: 5 * time.Second,
		TTLs:           handlers.TTLs{CacheDefault: time.Hour, Session: 30 * time.Minute, Max: 30 * 24 * time.Hour},
	}), reg
}

// reportCPU adds to the results the CPU time spent per request by this
// process (the gateway: cpu-ns/op) and by Redis (its primaries' together on
// a cluster: redis-ns/op), from now until the benchmark ends, so the few
// requests that set it up count too. On a shared machine they vary less
// than ns/op.
func reportCPU(b *testing.B, rdb redis.UniversalClient) {
	b.Helper()
	start, redisStart := processCPU(b), redisCPU(b, rdb)
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(redisCPU(b, rdb)-redisStart)/float64(b.N), "redis-ns/op")
		}
	})
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time Redis has used, user and system, on every
// primary.
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	b.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var total time.Duration
	add := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			name, v, _ := strings.Cut(line, ":")
			if name == "used_cpu_sys" || name == "used_cpu_user" {
				secs, _ := strconv.ParseFloat(v, 64)
				mu.Lock()
				total += time.Duration(secs * float64(time.Second))
				mu.Unlock()
			}
		}
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *redis.Client:
		err = add(ctx, c)
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, add)
	}
	if err != nil {
		b.Fatalf("INFO cpu: %v", err)
	}
	return total
}

// benchRoute serves method path from b.N concurrent callers; the first
// answer that is not want fails the benchmark.
func benchRoute(b *testing.B, h http.Handler, method, path, body string, want int) {
	b.Helper()
	mustServe(b, h, method, path, body, 0) // creates what the route changes
	raw := []byte(body)
	// About 50 callers on two CPUs, as in the wrk benchmark of bench/.
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &sinkWriter{header: http.Header{}}
		rd := &rewindReader{}
		rd.Reset(raw)
		req := newBenchRequest(b, method, path, rd)
		for pb.Next() {
			clear(w.header)
			w.status = 0
			rd.Reset(raw)
			h.ServeHTTP(w, req)
			if w.status != want {
				b.Errorf("%s %s: status = %d, want %d", method, path, w.status, want)
				return
			}
		}
	})
}

func mustServe(b *testing.B, h http.Handler, method, path, body string, want int) {
	b.Helper()
	rd := &rewindReader{}
	rd.Reset([]byte(body))
	w := &sinkWriter{header: http.Header{}}
	h.ServeHTTP(w, newBenchRequest(b, method, path, rd))
	if want != 0 && w.status != want {
		b.Fatalf("%s %s: status = %d, want %d", method, path, w.status, want)
	}
}

func newBenchRequest(b *testing.B, method, path string, body *rewindReader) *http.Request {
	var rd io.ReadCloser = http.NoBody // what net/http gives a request without a body
	if body.Len() > 0 {
		rd = body
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://gateway"+path, rd)
	if err != nil {
		b.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body.Len() > 0 {
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = int64(body.Len())
		req.Header.Set("Content-Length", strconv.Itoa(body.Len()))
	}
	return req
}

// sinkWriter is a ResponseWriter that keeps only the status, so the
// benchmark measures the gateway and not a recorder.
type sinkWriter struct {
	header http.Header
	status int
}

func (w *sinkWriter) Header() http.Header { return w.header }

func (w *sinkWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *sinkWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// rewindReader is a request body that can be read again, without an
// allocation per request.
type rewindReader struct{ bytes.Reader }

func (r *rewindReader) Reset(b []byte) { r.Reader.Reset(b) }
func (*rewindReader) Close() error     { return nil }

// The command API next to BenchmarkCacheGet, the near-cache off in both:
// one GET in the Upstash JSON body, and a pipeline of ten.
//
//	go test ./handlers -run '^$' -bench 'BenchmarkCacheGet$|BenchmarkCommand' -benchmem
func BenchmarkCommandGet(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "POST", "/redis", `["SET","hot","gateway-gateway-gateway-gate"]`, http.StatusOK)
	withCommandTime(b, srv, func() { benchRoute(b, h, "POST", "/redis", `["GET","hot"]`, http.StatusOK) })
}

// BenchmarkCommandPathGet is the path form, as bench/ sends it.
func BenchmarkCommandPathGet(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "POST", "/redis", `["SET","hot","gateway-gateway-gateway-gate"]`, http.StatusOK)
	withCommandTime(b, srv, func() { benchRoute(b, h, "GET", "/redis/get/hot", "", http.StatusOK) })
}

func BenchmarkCommandPipeline(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "POST", "/redis", `["SET","hot","gateway-gateway-gateway-gate"]`, http.StatusOK)
	body := "[" + strings.TrimSuffix(strings.Repeat(`["GET","hot"],`, 10), ",") + "]"
	withCommandTime(b, srv, func() { benchRoute(b, h, "POST", "/redis/pipeline", body, http.StatusOK) })
}
