package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// runOnce calls run with env and a context that ends after timeout, and
// returns its error and output. A run that should have failed at start-up but
// serves instead returns nil when the context ends.
func runOnce(t *testing.T, timeout time.Duration, env map[string]string, args ...string) (stdout, stderr string, took time.Duration, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut logtest.Buffer
	start := time.Now()
	err = run(ctx, append([]string{"redis-gateway"}, args...), envFunc(env), environFunc(env), &out, &errOut)
	return out.String(), errOut.String(), time.Since(start), err
}

// withEnv returns base with the changes applied; an empty value unsets.
func withEnv(base map[string]string, changes map[string]string) map[string]string {
	env := make(map[string]string, len(base)+len(changes))
	for k, v := range base {
		env[k] = v
	}
	for k, v := range changes {
		env[k] = v
	}
	return env
}

// withPairs is base with the variables of kv (name, value, name, value...)
// set.
func withPairs(base map[string]string, kv ...string) map[string]string {
	changes := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		changes[kv[i]] = kv[i+1]
	}
	return withEnv(base, changes)
}

func TestRunRejectsBadConfig(t *testing.T) {
	// A configuration that would otherwise start: every case changes one thing.
	valid := map[string]string{
		"REDIS_URL":      "redis://127.0.0.1:1",
		"GATEWAY_TOKENS": testToken,
		"HTTP_ADDR":      "127.0.0.1:0",
		"SHUTDOWN_DELAY": "0s",
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string // every one must appear in the error
	}{
		{
			name: "no REDIS_URL",
			env:  map[string]string{},
			want: []string{"REDIS_URL is not defined", ".env", "-dev", "memory://"},
		},
		{
			name: "no REDIS_URL with tokens",
			env:  withEnv(valid, map[string]string{"REDIS_URL": ""}),
			want: []string{"REDIS_URL is not defined", ".env", "-dev", "memory://"},
		},
		{name: "REDIS_DIAL_TIMEOUT=abc", env: withEnv(valid, map[string]string{"REDIS_DIAL_TIMEOUT": "abc"}), want: []string{"REDIS_DIAL_TIMEOUT", "abc"}},
		{name: "MAX_BODY_BYTES=-1", env: withEnv(valid, map[string]string{"MAX_BODY_BYTES": "-1"}), want: []string{"MAX_BODY_BYTES", "-1"}},
		{name: "PORT=http", env: withEnv(valid, map[string]string{"HTTP_ADDR": "", "PORT": "http"}), want: []string{"PORT", "http", "port number"}},
		{name: "CACHE_DEFAULT_TTL=1.5", env: withEnv(valid, map[string]string{"CACHE_DEFAULT_TTL": "1.5"}), want: []string{"CACHE_DEFAULT_TTL", "1.5"}},
		{name: "LOG_LEVEL=loud", env: withEnv(valid, map[string]string{"LOG_LEVEL": "loud"}), want: []string{"LOG_LEVEL", "loud"}},
		{name: "GATEWAY_AUTH=maybe", env: withEnv(valid, map[string]string{"GATEWAY_AUTH": "maybe"}), want: []string{"GATEWAY_AUTH", "maybe"}},
		{name: "REDIS_AUTOPIPELINE=yes", env: withEnv(valid, map[string]string{"REDIS_AUTOPIPELINE": "yes"}), want: []string{"REDIS_AUTOPIPELINE", "yes", "on or off"}},
		{name: "LOG_BUFFER=fast", env: withEnv(valid, map[string]string{"LOG_BUFFER": "fast"}), want: []string{"LOG_BUFFER", "fast"}},
		{name: "NEAR_CACHE=yes", env: withEnv(valid, map[string]string{"NEAR_CACHE": "yes"}), want: []string{"NEAR_CACHE", "yes", "on or off"}},
		{name: "NEAR_CACHE_MAX_BYTES=1MB", env: withEnv(valid, map[string]string{"NEAR_CACHE_MAX_BYTES": "1MB"}), want: []string{"NEAR_CACHE_MAX_BYTES", "1MB"}},
		{name: "NEAR_CACHE_MAX_STALENESS=0", env: withEnv(valid, map[string]string{"NEAR_CACHE_MAX_STALENESS": "0"}), want: []string{"NEAR_CACHE_MAX_STALENESS", "at least 1ms"}},
		{name: "TLS_CERT_CHECK_INTERVAL=0", env: withEnv(valid, map[string]string{"TLS_CERT_CHECK_INTERVAL": "0"}), want: []string{"TLS_CERT_CHECK_INTERVAL", "at least 1ms"}},
		{name: "PPROF_ADDR=6060", env: withEnv(valid, map[string]string{"PPROF_ADDR": "6060"}), want: []string{"PPROF_ADDR", "6060", "host:port"}},
		{
			name: "no GATEWAY_TOKENS and no GATEWAY_AUTH=none",
			env:  withEnv(valid, map[string]string{"GATEWAY_TOKENS": ""}),
			want: []string{"GATEWAY_TOKENS", "GATEWAY_AUTH=none"},
		},
		{
			name: "GATEWAY_TOKENS of only commas",
			env:  withEnv(valid, map[string]string{"GATEWAY_TOKENS": " , ,"}),
			want: []string{"GATEWAY_TOKENS", "GATEWAY_AUTH=none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, took, err := runOnce(t, 3*time.Second, tt.env)
			if err == nil {
				t.Fatalf("run: err = nil, want an error mentioning %q (it served instead; stdout:\n%s)", tt.want, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run: err = %q, want it to mention %q", err, w)
				}
			}
			if took > time.Second {
				t.Errorf("run took %s to reject the configuration, want under 1s", took)
			}
			if _, ok := listenAddr(stdout); ok {
				t.Errorf("run logged a listening address with a bad configuration:\n%s", stdout)
			}
		})
	}
}

func TestRunNeverLogsRedisPassword(t *testing.T) {
	const secret = "s3cret"
	tests := []struct {
		name string
		env  []string
	}{
		{name: "password in REDIS_URL", env: []string{"REDIS_URL=redis://:" + secret + "@127.0.0.1:1"}},
		{name: "user and password in REDIS_URL", env: []string{"REDIS_URL=redis://app:" + secret + "@127.0.0.1:1"}},
		{name: "REDIS_PASSWORD", env: []string{"REDIS_URL=redis://127.0.0.1:1", "REDIS_PASSWORD=" + secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Redis is down (nothing listens on port 1): the gateway must start anyway.
			env := append([]string{"GATEWAY_AUTH=none", "GATEWAY_TOKENS=", "LOG_LEVEL=debug"}, tt.env...)
			g := mustStartGateway(t, "", env...)

			ready := g.do(t, http.MethodGet, "/readyz", "")
			if ready.Status != http.StatusServiceUnavailable {
				t.Errorf("GET /readyz: status = %d, want 503; body: %s", ready.Status, ready.Body)
			}
			if bytes.Contains(ready.Body, []byte(secret)) {
				t.Errorf("GET /readyz: body %s contains the Redis password", ready.Body)
			}
			// An error on a data route is logged with its cause.
			data := g.do(t, http.MethodGet, "/cache/k", "")
			if data.Status != http.StatusServiceUnavailable {
				t.Errorf("GET /cache/k: status = %d, want 503; body: %s", data.Status, data.Body)
			}
			if bytes.Contains(data.Body, []byte(secret)) {
				t.Errorf("GET /cache/k: body %s contains the Redis password", data.Body)
			}
			if err := g.stop(); err != nil {
				t.Errorf("run: %v", err)
			}

			stdout, stderr := g.Stdout.String(), g.Stderr.String()
			if !strings.Contains(stdout, "127.0.0.1:1") {
				t.Errorf("stdout does not say which Redis the gateway uses:\n%s", stdout)
			}
			if strings.Contains(stdout, secret) {
				t.Errorf("stdout contains the Redis password:\n%s", stdout)
			}
			if strings.Contains(stderr, secret) {
				t.Errorf("stderr contains the Redis password:\n%s", stderr)
			}
		})
	}
}

func TestRunFailsFastOnTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	stdout, _, took, err := runOnce(t, 5*time.Second, map[string]string{
		"REDIS_URL":      "redis://127.0.0.1:1",
		"GATEWAY_TOKENS": testToken,
		"HTTP_ADDR":      addr,
		"SHUTDOWN_DELAY": "0s",
	})
	if err == nil {
		t.Fatalf("run on taken %s: err = nil, want an error naming the address\nstdout:\n%s", addr, stdout)
	}
	if !strings.Contains(err.Error(), port) {
		t.Errorf("run on taken %s: err = %q, want it to mention port %s", addr, err, port)
	}
	if took > 2*time.Second {
		t.Errorf("run on taken %s took %s to fail, want under 2s", addr, took)
	}
}

func TestRunVersion(t *testing.T) {
	stdout, _, _, err := runOnce(t, 3*time.Second, map[string]string{}, "version")
	if err != nil {
		t.Fatalf("run version: %v", err)
	}
	if !strings.HasPrefix(stdout, "redis-gateway ") {
		t.Errorf("run version: stdout = %q, want it to start with %q", stdout, "redis-gateway ")
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("run version: stdout = %q, want one line", stdout)
	}
}

func TestRunDevMode(t *testing.T) {
	// No REDIS_URL, no tokens: -dev brings its own Redis and needs no auth.
	g := startGateway(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0"}, "redis-gateway", "-dev")

	banner := strings.ToLower(g.Stdout.String())
	for _, want := range []string{"development", "in-memory", g.Addr} {
		if !strings.Contains(banner, strings.ToLower(want)) {
			t.Errorf("-dev banner does not mention %q:\n%s", want, g.Stdout)
		}
	}

	const value = `{"hello":"dev","n":12345678901234567890}`
	for _, tt := range []struct {
		method, body string
		want         int
	}{
		{http.MethodPut, value, http.StatusCreated},
		{http.MethodGet, "", http.StatusOK},
	} {
		// No Authorization header at all.
		resp := g.do(t, tt.method, "/cache/k", tt.body, "Authorization", "")
		if resp.Status != tt.want {
			t.Fatalf("%s /cache/k without a token in -dev: status = %d, want %d; body: %s", tt.method, resp.Status, tt.want, resp.Body)
		}
		if tt.method == http.MethodGet && string(resp.Body) != value {
			t.Errorf("GET /cache/k: body = %s, want %s", resp.Body, value)
		}
	}
}

// -addr says where to listen, over HTTP_ADDR, HOST and PORT.
func TestRunAddrFlag(t *testing.T) {
	g := startGateway(t, map[string]string{"HTTP_ADDR": "0.0.0.0:1", "HOST": "0.0.0.0"}, "redis-gateway", "-dev", "-addr", "127.0.0.1:0")
	if !strings.HasPrefix(g.Addr, "127.0.0.1:") {
		t.Errorf("-addr 127.0.0.1:0: listening on %s", g.Addr)
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"redis-gateway", "-dev", "-addr", "8080"}, envFunc(map[string]string{}), environFunc(nil), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-addr") {
		t.Errorf("-addr 8080: %v, want an error naming -addr", err)
	}
}

func TestHealthcheck(t *testing.T) {
	ready := mustStartGateway(t, "memory://")
	down := mustStartGateway(t, "redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t)))
	nobody := "http://127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	_, readyPort, _ := net.SplitHostPort(ready.Addr)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
	}{
		{name: "ready gateway", args: []string{"--url", ready.URL}},
		{name: "ready gateway, --live", args: []string{"--live", "--url", ready.URL}},
		{name: "ready gateway from HTTP_ADDR", env: map[string]string{"HTTP_ADDR": ready.Addr}},
		{name: "ready gateway from PORT", env: map[string]string{"PORT": readyPort}},
		{name: "redis down", args: []string{"--url", down.URL}, wantErr: true},
		{name: "redis down from HTTP_ADDR", env: map[string]string{"HTTP_ADDR": down.Addr}, wantErr: true},
		{name: "redis down, --live", args: []string{"--live", "--url", down.URL}},
		{name: "nothing listening", args: []string{"--url", nobody}, wantErr: true},
		{name: "nothing listening, --live", args: []string{"--live", "--url", nobody}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			_, _, took, err := runOnce(t, 10*time.Second, env, append([]string{"healthcheck"}, tt.args...)...)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("healthcheck %q: err = %v, want error: %v", tt.args, err, tt.wantErr)
			}
			if took > 4*time.Second {
				t.Errorf("healthcheck %q took %s, want under its 3s timeout", tt.args, took)
			}
		})
	}
}

// hungRedis accepts connections and never answers, like a Redis that is
// stuck or behind a network that drops its replies.
func hungRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "redis://" + ln.Addr().String()
}

func TestRunServesProbesWhileRedisIsDown(t *testing.T) {
	// Once the gateway says it is listening, liveness must answer at once (it
	// never depends on Redis) and readiness within its own short timeout.
	tests := []struct {
		name     string
		redisURL func(t *testing.T) string
	}{
		{"connection refused", func(t *testing.T) string {
			return "redis://127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
		}},
		{"redis never answers", hungRedis},
	}
	probes := []struct {
		path    string
		want    int
		maxTime time.Duration
	}{
		{"/healthz", http.StatusOK, 500 * time.Millisecond},
		{"/livez", http.StatusOK, 500 * time.Millisecond},
		{"/readyz", http.StatusServiceUnavailable, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustStartGateway(t, tt.redisURL(t))
			for _, p := range probes {
				resp := g.do(t, http.MethodGet, p.path, "")
				if resp.Status != p.want {
					t.Errorf("GET %s: status = %d, want %d; body: %s", p.path, resp.Status, p.want, resp.Body)
				}
				if resp.Duration > p.maxTime {
					t.Errorf("GET %s right after the listening log line: took %s, want at most %s",
						p.path, resp.Duration.Round(time.Millisecond), p.maxTime)
				}
			}
		})
	}
}

// A misspelt variable is otherwise silently ignored: start-up names the
// setting it probably meant.
func TestRunWarnsOfLookalikeVariables(t *testing.T) {
	g := mustStartGateway(t, "memory://", "REDIS_ULR=redis://127.0.0.1:1", "CACHE_DEFUALT_TTL=60", "HOME=/root")
	var warned []string
	for _, line := range strings.Split(g.Stdout.String(), "\n") {
		if strings.Contains(line, "not read by the gateway") {
			warned = append(warned, line)
		}
	}
	if len(warned) != 2 ||
		!strings.Contains(warned[0]+warned[1], `"variable":"REDIS_ULR","did_you_mean":"REDIS_URL"`) ||
		!strings.Contains(warned[0]+warned[1], `"variable":"CACHE_DEFUALT_TTL","did_you_mean":"CACHE_DEFAULT_TTL"`) ||
		!strings.Contains(warned[0], `"level":"WARN"`) {
		t.Errorf("warnings %q, want one for REDIS_ULR and one for CACHE_DEFUALT_TTL, each naming the known variable", warned)
	}
}
