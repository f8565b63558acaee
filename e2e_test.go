package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

func TestE2ECacheTTL(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		wantKey string
	}{
		{name: "no prefix", prefix: "", wantKey: "cache:k"},
		{name: "REDIS_KEY_PREFIX=orders:", prefix: "orders:", wantKey: "orders:cache:k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			rdb := srv.Client()
			ctx := context.Background()
			g := mustStartGateway(t, srv.URL(), "REDIS_KEY_PREFIX="+tt.prefix)

			const value = `{"answer":42}`
			g.mustStatus(t, http.StatusCreated, http.MethodPut, "/cache/k?ttl=100", value)

			resp := g.mustStatus(t, http.StatusOK, http.MethodGet, "/cache/k/ttl", "")
			var body struct {
				TTL *int64 `json:"ttl"`
			}
			if err := json.Unmarshal(resp.Body, &body); err != nil || body.TTL == nil {
				t.Fatalf("GET /cache/k/ttl: body = %s, want {\"ttl\": seconds} (%v)", resp.Body, err)
			}
			if got := *body.TTL; got < 99 || got > 100 {
				t.Errorf("GET /cache/k/ttl: ttl = %d, want 99..100", got)
			}

			keys, err := rdb.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatalf("redis KEYS *: %v", err)
			}
			if len(keys) != 1 || keys[0] != tt.wantKey {
				t.Errorf("redis keys = %q, want [%q]", keys, tt.wantKey)
			}
			pttl, err := rdb.PTTL(ctx, tt.wantKey).Result()
			if err != nil {
				t.Fatalf("redis PTTL %s: %v", tt.wantKey, err)
			}
			if pttl <= 99*time.Second || pttl > 100*time.Second {
				t.Errorf("redis PTTL %s = %s, want in (99s, 100s]", tt.wantKey, pttl)
			}
			if got, err := rdb.Get(ctx, tt.wantKey).Result(); err != nil || got != value {
				t.Errorf("redis GET %s = %q, %v; want %q", tt.wantKey, got, err, value)
			}
		})
	}
}

func TestE2ESessionSliding(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	g := mustStartGateway(t, srv.URL())

	pttl := func(when string) time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, "session:s").Result()
		if err != nil {
			t.Fatalf("redis PTTL session:s %s: %v", when, err)
		}
		return d
	}

	const doc = `{"user":"ada","id":9007199254740993,"tags":[]}`
	g.mustStatus(t, http.StatusCreated, http.MethodPut, "/session/s?ttl=3", doc)
	time.Sleep(1200 * time.Millisecond)

	resp := g.mustStatus(t, http.StatusOK, http.MethodGet, "/session/s?touch=false", "")
	if string(resp.Body) != doc {
		t.Errorf("GET /session/s?touch=false: body = %s, want %s", resp.Body, doc)
	}
	if got := pttl("after GET ?touch=false"); got <= 0 || got >= 2000*time.Millisecond {
		t.Errorf("PTTL session:s after GET ?touch=false = %s, want in (0, 2s): the read must not slide the expiry", got)
	}

	resp = g.mustStatus(t, http.StatusOK, http.MethodGet, "/session/s", "")
	if string(resp.Body) != doc {
		t.Errorf("GET /session/s: body = %s, want %s", resp.Body, doc)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("GET /session/s: Cache-Control = %q, want no-store", got)
	}
	if got := pttl("after GET"); got <= 2800*time.Millisecond || got > 3000*time.Millisecond {
		t.Errorf("PTTL session:s after GET = %s, want in (2.8s, 3s]: the read must slide the expiry back to the session's ttl=3", got)
	}

	g.mustStatus(t, http.StatusNoContent, http.MethodDelete, "/session/s", "")
	g.mustStatus(t, http.StatusNotFound, http.MethodGet, "/session/s", "")
	g.mustStatus(t, http.StatusNotFound, http.MethodGet, "/session/s?touch=false", "")
}

func TestE2ERedisOutage(t *testing.T) {
	const requestTimeout = 2 * time.Second
	const maxDuration = 2500 * time.Millisecond

	srv := redistest.Start(t)
	g := mustStartGateway(t, srv.URL(), "REQUEST_TIMEOUT="+requestTimeout.String())
	g.mustStatus(t, http.StatusOK, http.MethodGet, "/readyz", "")
	g.mustStatus(t, http.StatusCreated, http.MethodPut, "/cache/k", `"before"`)

	srv.Stop()

	tests := []struct {
		method, path string
		want         int
		problem      bool // a data route: problem+json with Retry-After: 1
	}{
		{http.MethodGet, "/healthz", http.StatusOK, false},
		{http.MethodGet, "/readyz", http.StatusServiceUnavailable, false},
		{http.MethodGet, "/cache/k", http.StatusServiceUnavailable, true},
		{http.MethodGet, "/cache/k", http.StatusServiceUnavailable, true},
		{http.MethodPut, "/cache/k", http.StatusServiceUnavailable, true},
		{http.MethodGet, "/livez", http.StatusOK, false},
	}
	for _, tt := range tests {
		body := ""
		if tt.method == http.MethodPut {
			body = `"during"`
		}
		resp := g.do(t, tt.method, tt.path, body)
		if resp.Status != tt.want {
			t.Errorf("%s %s with Redis stopped: status = %d, want %d; body: %s", tt.method, tt.path, resp.Status, tt.want, resp.Body)
		}
		if resp.Duration > maxDuration {
			t.Errorf("%s %s with Redis stopped took %s, want at most %s (REQUEST_TIMEOUT=%s)", tt.method, tt.path, resp.Duration.Round(time.Millisecond), maxDuration, requestTimeout)
		}
		if !tt.problem {
			continue
		}
		if got := resp.Header.Get("Retry-After"); got != "1" {
			t.Errorf("%s %s with Redis stopped: Retry-After = %q, want \"1\"", tt.method, tt.path, got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("%s %s with Redis stopped: Content-Type = %q, want application/problem+json", tt.method, tt.path, got)
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(resp.Body, &p); err != nil || p.Status != tt.want || p.Type == "" {
			t.Errorf("%s %s with Redis stopped: body = %s, want a problem document with status %d", tt.method, tt.path, resp.Body, tt.want)
		}
	}

	srv.Restart() // same port, empty; returns once the server accepts connections
	restarted := time.Now()
	deadline := restarted.Add(10 * time.Second)
	var last string
	for {
		put := g.do(t, http.MethodPut, "/cache/k", `"after"`)
		if put.Status == http.StatusCreated || put.Status == http.StatusNoContent {
			get := g.do(t, http.MethodGet, "/cache/k", "")
			if get.Status == http.StatusOK && string(get.Body) == `"after"` {
				break
			}
			last = fmt.Sprintf("GET /cache/k: status = %d, body %s", get.Status, get.Body)
		} else {
			last = fmt.Sprintf("PUT /cache/k: status = %d, body %s", put.Status, put.Body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not recover within 10s of Redis coming back; last: %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(restarted); took >= 3*time.Second {
		t.Errorf("PUT+GET /cache/k succeeded %s after Redis came back, want under 3s", took.Round(time.Millisecond))
	}
	g.mustStatus(t, http.StatusOK, http.MethodGet, "/readyz", "")
}

// buildGateway compiles the program once for tests that need a real process.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redis-gateway")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "." // the repository root: this package's directory
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// loadResult is the outcome of one request under load.
type loadResult struct {
	status int
	body   []byte
	// refused: no connection could be made (refused, or reset during the
	// handshake): no request left the client.
	refused bool
	// reset: the kernel had completed the handshake but the connection was
	// reset before any answer. That is what closing a listener does to the
	// connections still in its accept queue, so it is expected at the moment
	// the listener closes, and a failure at any other time.
	reset   bool
	failure string // any transport failure, described
}

// loadRequest sends one request and says how it ended.
func loadRequest(client *http.Client, method, url, body string) loadResult {
	var gotConn, reused, wrote, firstByte bool
	trace := &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { gotConn, reused = true, i.Reused },
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = true },
		GotFirstResponseByte: func() { firstByte = true },
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return loadResult{failure: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		desc := fmt.Sprintf("%s %s: %v (connected %v, reused %v, request written %v, response started %v)",
			method, url, err, gotConn, reused, wrote, firstByte)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), !gotConn && errors.As(err, &op) && op.Op == "dial":
			return loadResult{refused: true, failure: desc}
		case gotConn && !reused && !firstByte && errors.Is(err, syscall.ECONNRESET):
			return loadResult{reset: true, failure: desc}
		}
		return loadResult{failure: desc}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return loadResult{status: resp.StatusCode, failure: fmt.Sprintf("%s %s: status %d, reading the body: %v", method, url, resp.StatusCode, err)}
	}
	return loadResult{status: resp.StatusCode, body: b}
}

func TestE2ESIGTERMDuringLoad(t *testing.T) {
	const (
		delay           = time.Second
		shutdownTimeout = 5 * time.Second
		workers         = 8
		maxIterations   = 50000 // per worker; the listener closing ends the loop long before
	)
	srv := redistest.Start(t)
	rdb := srv.Client()
	bin := buildGateway(t)
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	base := "http://" + addr

	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // no .env here
	cmd.Env = []string{
		"REDIS_URL=" + srv.URL(),
		"HTTP_ADDR=" + addr,
		"GATEWAY_TOKENS=" + testToken,
		"SHUTDOWN_DELAY=" + delay.String(),
		"SHUTDOWN_TIMEOUT=" + shutdownTimeout.String(),
		"LOG_FORMAT=json",
	}
	var stdout, stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails harmlessly once it has exited
		<-exited
	})
	output := func() string { return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String()) }

	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	readyBy := time.Now().Add(10 * time.Second)
	for {
		resp, err := probe.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the gateway exited before it was ready: %v\n%s", exitErr, output())
		default:
		}
		if time.Now().After(readyBy) {
			t.Fatalf("GET /readyz did not answer 200 within 10s\n%s", output())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var (
		draining      atomic.Bool
		signalledAt   atomic.Int64 // UnixNano of SIGTERM, 0 before
		ok            atomic.Int64
		okDuringDrain atomic.Int64
		refused       atomic.Int64
		resets        atomic.Int64
		mu            sync.Mutex
		failures      []string
		acked         = map[string]string{} // key -> value of a write answered 2xx
	)
	fail := func(s string) {
		mu.Lock()
		failures = append(failures, s)
		mu.Unlock()
	}
	// listenerGone reports whether a request's transport outcome means the
	// listener has closed, which ends a worker's loop; anything else wrong
	// with it is recorded as a failure.
	listenerGone := func(res loadResult) bool {
		switch {
		case res.refused:
			if at := signalledAt.Load(); at == 0 {
				fail("connection refused before SIGTERM: " + res.failure)
			} else if since := time.Duration(time.Now().UnixNano() - at); since < delay {
				fail(fmt.Sprintf("connection refused %s after SIGTERM, before the %s SHUTDOWN_DELAY ended: %s", since.Round(time.Millisecond), delay, res.failure))
			}
			refused.Add(1)
			return true
		case res.reset:
			at := signalledAt.Load()
			if at == 0 {
				fail("connection reset before SIGTERM: " + res.failure)
				return false
			}
			if since := time.Duration(time.Now().UnixNano() - at); since < delay {
				fail(fmt.Sprintf("connection reset %s after SIGTERM, before the %s delay ended: %s", since.Round(time.Millisecond), delay, res.failure))
				return false
			}
			resets.Add(1)
			return true
		case res.failure != "":
			fail(res.failure)
		}
		return false
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	loadBy := time.Now().Add(20 * time.Second)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; i < maxIterations && time.Now().Before(loadBy); i++ {
				key := fmt.Sprintf("load-%d-%d", w, i)
				value := fmt.Sprintf(`{"worker":%d,"i":%d}`, w, i)
				inDrain := draining.Load()

				put := loadRequest(client, http.MethodPut, base+"/cache/"+key, value)
				if listenerGone(put) {
					return
				}
				if put.failure != "" {
					continue
				}
				if put.status != http.StatusCreated && put.status != http.StatusNoContent {
					fail(fmt.Sprintf("PUT /cache/%s: status = %d, want 201 or 204; body: %s", key, put.status, put.body))
					continue
				}
				mu.Lock()
				acked[key] = value
				mu.Unlock()
				ok.Add(1)
				if inDrain {
					okDuringDrain.Add(1)
				}

				get := loadRequest(client, http.MethodGet, base+"/cache/"+key, "")
				if listenerGone(get) {
					return
				}
				if get.failure != "" {
					continue
				}
				if get.status != http.StatusOK || string(get.body) != value {
					fail(fmt.Sprintf("GET /cache/%s: status = %d, body %s; want 200, %s", key, get.status, get.body, value))
					continue
				}
				ok.Add(1)
				if inDrain {
					okDuringDrain.Add(1)
				}
			}
		})
	}

	// Let the load get going, then do what the orchestrator does.
	time.Sleep(300 * time.Millisecond)
	if ok.Load() == 0 {
		t.Errorf("no request succeeded in the 300ms of load before SIGTERM")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	signalled := time.Now()
	signalledAt.Store(signalled.UnixNano())

	// Readiness must fail first, and keep failing for the whole delay, while
	// the listener still serves. An answer may come before the signal is
	// handled (200); none may fail before the delay is over.
	sawDraining, probes := false, 0
	for time.Since(signalled) < delay {
		resp, err := probe.Get(base + "/readyz")
		if err != nil {
			if since := time.Since(signalled); since < delay {
				t.Errorf("GET /readyz %s after SIGTERM: %v; want 503 {\"status\":\"draining\"} for the whole %s delay",
					since.Round(time.Millisecond), err, delay)
			}
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Status string `json:"status"`
		}
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && json.Unmarshal(b, &body) == nil && body.Status == "draining":
			sawDraining = true
			probes++
			draining.Store(true)
			if !resp.Close {
				t.Errorf("GET /readyz while draining: no Connection: close")
			}
		case sawDraining:
			t.Errorf("GET /readyz after it answered draining: status %d, body %s; want 503 draining until the delay ends", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawDraining {
		t.Errorf("GET /readyz never answered 503 {\"status\":\"draining\"} during the %s delay", delay)
	}

	wg.Wait()
	select {
	case <-exited:
	case <-time.After(delay + shutdownTimeout + 2*time.Second - time.Since(signalled)):
		t.Fatalf("the gateway had not exited %s after SIGTERM\n%s", delay+shutdownTimeout+2*time.Second, output())
	}
	exitedAfter := time.Since(signalled)
	if exitErr != nil {
		t.Errorf("the gateway exited with %v after SIGTERM, want exit code 0\n%s", exitErr, output())
	}
	t.Logf("SIGTERM to exit: %s; /readyz answered draining %d times; %d requests answered 2xx (%d of them started during the delay); "+
		"as the listener closed, %d connections were refused and %d reset unanswered; %d failed",
		exitedAfter.Round(time.Millisecond), probes, ok.Load(), okDuringDrain.Load(), refused.Load(), resets.Load(), len(failures))

	if exitedAfter < delay {
		t.Errorf("the gateway exited %s after SIGTERM, before its %s SHUTDOWN_DELAY ended", exitedAfter.Round(time.Millisecond), delay)
	}
	if okDuringDrain.Load() == 0 {
		t.Errorf("no data request succeeded during the delay, want them served until the listener closes")
	}
	if refused.Load()+resets.Load() == 0 {
		t.Errorf("the load loop never saw the listener close")
	}
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more failures", len(failures)-10)
			break
		}
		t.Errorf("request failed during shutdown: %s", f)
	}

	// Every write the gateway acknowledged is in Redis.
	ctx := context.Background()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	var lost []string
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		redisKeys := make([]string, len(batch))
		for i, k := range batch {
			redisKeys[i] = "cache:" + k
		}
		values, err := rdb.MGet(ctx, redisKeys...).Result()
		if err != nil {
			t.Fatalf("redis MGET: %v", err)
		}
		for i, v := range values {
			if s, _ := v.(string); s != acked[batch[i]] {
				lost = append(lost, fmt.Sprintf("%s = %v, want %s", redisKeys[i], v, acked[batch[i]]))
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are not in Redis, such as %s", len(lost), len(keys), lost[0])
	}
}

// scrape returns the gateway's /metrics, raw and parsed.
func scrape(t *testing.T, g *gateway) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp := g.do(t, http.MethodGet, "/metrics", "", "Authorization", "")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /metrics: status = %d, want 200; body: %s", resp.Status, resp.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("GET /metrics: parse the text format: %v", err)
	}
	return resp.Body, families
}

// counterValue is the value of the counter in families with exactly labels,
// 0 when it has not been counted yet.
func counterValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf, ok := families[name]
	if !ok {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if match {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestE2EMetrics(t *testing.T) {
	srv := redistest.Start(t)
	g := mustStartGateway(t, srv.URL())

	const n = 5
	for i := range n {
		g.mustStatus(t, http.StatusCreated, http.MethodPut, fmt.Sprintf("/cache/key-%d", i), strconv.Itoa(i))
	}
	const name = "redis_gateway_http_requests_total"
	labels := map[string]string{"method": "GET", "route": "/cache/{key}", "status": "200"}

	_, before := scrape(t, g)
	for i := range n {
		g.mustStatus(t, http.StatusOK, http.MethodGet, fmt.Sprintf("/cache/key-%d", i), "")
	}
	g.mustStatus(t, http.StatusNotFound, http.MethodGet, "/cache/missing", "")
	raw, after := scrape(t, g)

	if got := counterValue(after, name, labels) - counterValue(before, name, labels); got != n {
		t.Errorf("%s%v rose by %v after %d GET /cache/{key} answered 200, want %d", name, labels, got, n, n)
	}
	notFound := map[string]string{"method": "GET", "route": "/cache/{key}", "status": "404"}
	if got := counterValue(after, name, notFound) - counterValue(before, name, notFound); got != 1 {
		t.Errorf("%s%v rose by %v after one 404, want 1", name, notFound, got)
	}
	for _, m := range after[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" && strings.Contains(lp.GetValue(), "key-") {
				t.Errorf("%s has route=%q: the label must be the route pattern, not the path", name, lp.GetValue())
			}
		}
	}

	problems, err := promlint.New(bytes.NewReader(raw)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
