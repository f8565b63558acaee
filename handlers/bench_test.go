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
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	withRedisCPU(b, srv, func() { benchRoute(b, h, "GET", "/cache/hot", "", http.StatusOK) })
}

// BenchmarkCacheGetNearCache reads a value the near-cache holds: no Redis.
func BenchmarkCacheGetNearCache(b *testing.B) {
	h, reg := benchGatewayWithMetrics(b, store.Options{
		NearCache: &store.NearCacheOptions{MaxEntries: 1000, MaxBytes: 1 << 20, MaxStaleness: time.Minute},
	})
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(b, reg, "redis_gateway_near_cache_serving") != 1 {
		if time.Now().After(deadline) {
			b.Fatal("the near-cache did not start serving within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
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

func BenchmarkCachePut(b *testing.B) {
	h := benchGateway(b, store.Options{})
	benchRoute(b, h, "PUT", "/cache/p", `{"id":123456789,"name":"benchmark document","tags":["alpha","beta","gamma"],"active":true}`, http.StatusNoContent)
}

// BenchmarkRateLimitIncr also reports what the calls cost Redis: its CPU
// time (INFO cpu) and the time its commands ran (INFO commandstats), per
// call.
func BenchmarkRateLimitIncr(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	withRedisCPU(b, srv, func() {
		benchRoute(b, h, "POST", "/ratelimit/r/incr?limit=1000000000000&window=3600", "", http.StatusOK)
	})
}

// withRedisCPU runs bench and reports the CPU time per operation of this
// process and of srv, and the time srv's commands ran; the setup call bench
// makes before its timer counts too. On a shared machine the CPU times
// are steadier than the wall time.
func withRedisCPU(b *testing.B, srv *redistest.Server, bench func()) {
	b.Helper()
	c := srv.Client()
	ctx := context.Background()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	cpu := func() float64 {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			b.Fatalf("INFO cpu: %v", err)
		}
		return infoField(info, "used_cpu_user") + infoField(info, "used_cpu_sys")
	}
	before, self := cpu(), selfCPU(b)
	bench()
	b.StopTimer()
	spent, selfSpent := cpu()-before, selfCPU(b)-self
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
	b.ReportMetric(selfSpent.Seconds()*1e6/float64(b.N), "gw-cpu-µs/op")
	b.ReportMetric(spent*1e6/float64(b.N), "redis-cpu-µs/op")
	b.ReportMetric(usec/float64(b.N), "redis-cmd-µs/op")
}

// selfCPU is the CPU time this process has used: the gateway, its Redis
// clients and the callers, not the redis-server it started.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// infoField reads a number of an INFO reply.
func infoField(info, name string) float64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

func benchGateway(b *testing.B, opts store.Options) http.Handler {
	b.Helper()
	h, _ := benchGatewayWithMetrics(b, opts)
	return h
}

func benchGatewayWithMetrics(b *testing.B, opts store.Options) (http.Handler, *prometheus.Registry) {
	b.Helper()
	return benchGatewayOn(b, redistest.Start(b), opts)
}

func benchGatewayOn(b *testing.B, srv *redistest.Server, opts store.Options) (http.Handler, *prometheus.Registry) {
	b.Helper()
	reg := prometheus.NewRegistry()
	// The JSON log as the gateway builds it (LOG_FORMAT=json).
	logger := slog.New(middleware.NewJSONHandler(io.Discard, nil))
	opts.URL, opts.Logger, opts.Registry = srv.URL(), logger, reg
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
	withRedisCPU(b, srv, func() { benchRoute(b, h, "POST", "/redis", `["GET","hot"]`, http.StatusOK) })
}

// BenchmarkCommandPathGet is the path form, as bench/ sends it.
func BenchmarkCommandPathGet(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "POST", "/redis", `["SET","hot","gateway-gateway-gateway-gate"]`, http.StatusOK)
	withRedisCPU(b, srv, func() { benchRoute(b, h, "GET", "/redis/get/hot", "", http.StatusOK) })
}

func BenchmarkCommandPipeline(b *testing.B) {
	srv := redistest.Start(b)
	h, _ := benchGatewayOn(b, srv, store.Options{})
	mustServe(b, h, "POST", "/redis", `["SET","hot","gateway-gateway-gateway-gate"]`, http.StatusOK)
	body := "[" + strings.TrimSuffix(strings.Repeat(`["GET","hot"],`, 10), ",") + "]"
	withRedisCPU(b, srv, func() { benchRoute(b, h, "POST", "/redis/pipeline", body, http.StatusOK) })
}
