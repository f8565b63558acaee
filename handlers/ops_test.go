package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

func TestProbes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		for _, p := range []string{"/healthz", "/livez"} {
			if got := g.must(request{method: "GET", path: p, token: "-"}, http.StatusOK).body; got != `{"status":"ok"}` {
				t.Errorf("GET %s = %s", p, got)
			}
		}
		if got := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusOK).body; got != `{"status":"ready","redis":"ok"}` {
			t.Errorf("GET /readyz = %s", got)
		}

		b.stop()
		for _, p := range []string{"/healthz", "/livez"} {
			g.must(request{method: "GET", path: p, token: "-"}, http.StatusOK)
		}
		start := time.Now()
		ready := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusServiceUnavailable)
		var st struct{ Status, Redis string }
		if err := json.Unmarshal([]byte(ready.body), &st); err != nil || st.Status != "unavailable" || st.Redis == "" {
			t.Errorf("GET /readyz with Redis down = %s, want status unavailable and a reason", ready.body)
		}
		data := g.must(request{method: "GET", path: "/cache/k"}, http.StatusServiceUnavailable)
		if data.header.Get("Retry-After") != "1" {
			t.Errorf("503 without Retry-After: 1")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("answering with Redis down took %v, want well within the request timeout", d)
		}
		for _, req := range []request{
			{method: "PUT", path: "/cache/k", body: `1`},
			{method: "POST", path: "/session", body: `{}`},
			{method: "POST", path: "/ratelimit/k/incr?limit=1"},
			{method: "GET", path: "/cache?key=a&key=b"},
		} {
			g.must(req, http.StatusServiceUnavailable)
		}
	})
}

// With readiness that does not depend on Redis, a Redis outage keeps the
// gateway in its Service: clients get its 503 with Retry-After, not a
// connection error, and the probe still says what is wrong.
func TestReadyWithoutRedis(t *testing.T) {
	var draining atomic.Bool
	b := miniBackend(t)
	g := startGateway(t, b, withConfig(func(c *handlers.Config) {
		c.ReadyWithoutRedis = true
		c.Draining = draining.Load
	}))
	if got := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusOK).body; got != `{"status":"ready","redis":"ok"}` {
		t.Errorf("GET /readyz = %s, want ready with Redis ok", got)
	}
	b.stop()
	ready := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusOK)
	var st struct{ Status, Redis string }
	if err := json.Unmarshal([]byte(ready.body), &st); err != nil || st.Status != "degraded" || st.Redis == "" || st.Redis == "ok" {
		t.Errorf("GET /readyz with Redis down = %s, want 200 status degraded and the reason", ready.body)
	}
	data := g.must(request{method: "GET", path: "/cache/k"}, http.StatusServiceUnavailable)
	if data.header.Get("Retry-After") != "1" {
		t.Errorf("GET /cache/k with Redis down: 503 without Retry-After: 1")
	}
	draining.Store(true)
	if got := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusServiceUnavailable).body; got != `{"status":"draining"}` {
		t.Errorf("GET /readyz while draining = %s, want 503 draining whatever the readiness mode", got)
	}
}

func TestDraining(t *testing.T) {
	var draining atomic.Bool
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.Draining = draining.Load }))
	g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusOK)
	draining.Store(true)
	resp := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusServiceUnavailable)
	if resp.body != `{"status":"draining"}` {
		t.Errorf("GET /readyz while draining = %s, want {\"status\":\"draining\"}", resp.body)
	}
	// Traffic is still served while draining, but every answer asks the
	// client to reconnect, to another replica.
	data := g.must(request{method: "PUT", path: "/cache/k", body: `1`}, http.StatusCreated)
	if !data.close {
		t.Errorf("PUT while draining: no Connection: close")
	}
}

func TestRequestID(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	echoed := g.must(request{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "abc-123"}}, http.StatusOK)
	if got := echoed.header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id = %q, want the one sent, abc-123", got)
	}
	a := g.must(request{method: "GET", path: "/healthz"}, http.StatusOK).header.Get("X-Request-Id")
	b := g.must(request{method: "GET", path: "/healthz"}, http.StatusOK).header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Errorf("generated request ids %q and %q, want two different ones", a, b)
	}
	bad := g.must(request{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": strings.Repeat("x", 200)}}, http.StatusOK)
	if got := bad.header.Get("X-Request-Id"); len(got) > 128 {
		t.Errorf("a 200-byte request id was echoed; want it replaced")
	}
	if n := logLinesFor(t, g.logs.String(), "abc-123"); n != 1 {
		t.Errorf("request abc-123 logged %d times, want once", n)
	}
}

// panicStore panics where a bug would, to prove the process survives it.
type panicStore struct{ handlers.Store }

func (panicStore) GetCacheTagged(context.Context, string) ([]byte, string, error) {
	panic("boom")
}

func TestPanicIsRecovered(t *testing.T) {
	g := startGateway(t, miniBackend(t), withStore(func(s handlers.Store) handlers.Store { return panicStore{s} }))
	resp := g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"X-Request-Id": "panic-1"}}, http.StatusInternalServerError)
	if !strings.Contains(resp.body, `"request_id":"panic-1"`) || strings.Contains(resp.body, "boom") {
		t.Errorf("500 body = %s, want a problem with the request id and no panic text", resp.body)
	}
	logs := g.logs.String()
	if !strings.Contains(logs, `"msg":"panic in handler"`) || !strings.Contains(logs, `"panic":"boom"`) {
		t.Errorf("the panic was not logged with its value: %s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "panic in handler") && !strings.Contains(line, `"request_id":"panic-1"`) {
			t.Errorf("the panic log line has no request id: %s", line)
		}
	}
	g.must(request{method: "PUT", path: "/cache/k", body: `1`}, http.StatusCreated) // still serving
}

// A Redis that stops answering turns into 504 at the request deadline, and a
// client that gives up is logged as 499, not as an error.
func TestTimeoutAndClientGone(t *testing.T) {
	srv := redistest.Start(t)
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
	g := startGateway(t, b, withConfig(func(c *handlers.Config) { c.RequestTimeout = 300 * time.Millisecond }))
	g.must(request{method: "PUT", path: "/cache/k", body: `1`}, http.StatusCreated)

	if err := b.rdb.Do(context.Background(), "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	start := time.Now()
	g.must(request{method: "GET", path: "/cache/k"}, http.StatusGatewayTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("504 after %v, want it at the 300ms request deadline", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/cache/k", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Request-Id", "gone-1")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered %d while Redis was paused", resp.StatusCode)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(g.logs.String(), `"request_id":"gone-1"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"gone-1"`) {
			if !strings.Contains(line, `"status":499`) || !strings.Contains(line, `"level":"INFO"`) {
				t.Errorf("a request whose client went away was logged as %s, want status 499 at INFO", line)
			}
			return
		}
	}
	t.Errorf("the abandoned request was not logged")
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.Registry = reg }))
	g.must(request{method: "PUT", path: "/cache/a", body: `1`}, http.StatusCreated)
	for range 3 {
		g.must(request{method: "GET", path: "/cache/a"}, http.StatusOK)
	}
	g.must(request{method: "GET", path: "/cache/" + strings.Repeat("z", 20)}, http.StatusNotFound)
	g.must(request{method: "GET", path: "/no/such/route"}, http.StatusNotFound)

	body := g.must(request{method: "GET", path: "/metrics", token: "-"}, http.StatusOK).body
	for _, want := range []string{
		`redis_gateway_http_requests_total{method="GET",route="/cache/{key}",status="200"} 3`,
		`redis_gateway_http_requests_total{method="GET",route="/cache/{key}",status="404"} 1`,
		`redis_gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`redis_gateway_http_request_duration_seconds_count{method="PUT",route="/cache/{key}"} 1`,
		`redis_gateway_redis_pool_connections{pool="main"} `,
		`redis_gateway_redis_pool_hits_total{pool="main"} `,
		// Near-cache hits take tens of microseconds: the buckets resolve them.
		`redis_gateway_http_request_duration_seconds_bucket{method="GET",route="/cache/{key}",le="5e-05"} `,
		// Requests per token name, the names bounded by the tokens in force.
		`redis_gateway_token_requests_total{token="GATEWAY_TOKENS#1"} 5`,
		`redis_gateway_token_requests_total{token="GATEWAY_TOKENS#2"} 0`,
		`redis_gateway_subscribers 0`,
		`redis_gateway_subscribers_max 10000`,
		// At zero before the first event, so rate() and alerts see a 0.
		`redis_gateway_auth_denials_total{scope="token",token=""} 0`,
		`redis_gateway_redis_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "zzzzzzzz") {
		t.Errorf("/metrics has a label made from a key: the route label must be the pattern")
	}
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(reg, "redis_gateway_http_requests_in_flight"); n != 1 {
		t.Errorf("in-flight gauge: %d series, want 1", n)
	}
}

func mustGather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}
