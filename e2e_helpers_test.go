package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
)

// testToken is the bearer token every test gateway admits.
const testToken = "test-token-4f9c2e7b1d6a"

// envFunc turns a map into a getenv; an empty value is the same as unset.
func envFunc(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// environFunc lists env as os.Environ does.
func environFunc(env map[string]string) func() []string {
	return func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		slices.Sort(kv)
		return kv
	}
}

// gateway is one in-process run() of the program, serving on a loopback port.
type gateway struct {
	URL    string // http://127.0.0.1:PORT
	Addr   string // 127.0.0.1:PORT
	Stdout *logtest.Buffer
	Stderr *logtest.Buffer
	Client *http.Client

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// mustStartGateway starts the gateway against redisURL with a test token,
// JSON logs, short timeouts and a free port; extra holds NAME=value pairs that
// override those.
func mustStartGateway(t testing.TB, redisURL string, extra ...string) *gateway {
	t.Helper()
	env := map[string]string{
		"REDIS_URL":        redisURL,
		"GATEWAY_TOKENS":   testToken,
		"HTTP_ADDR":        "127.0.0.1:0",
		"LOG_FORMAT":       "json",
		"SHUTDOWN_DELAY":   "0s",
		"SHUTDOWN_TIMEOUT": "2s",
	}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("mustStartGateway: %q is not NAME=value", kv)
		}
		env[name] = value
	}
	return startGateway(t, env, "redis-gateway")
}

// startGateway calls run(ctx, args, env) in the background, waits for its
// "listening" line and stops it when the test ends.
func startGateway(t testing.TB, env map[string]string, args ...string) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{
		Stdout: &logtest.Buffer{},
		Stderr: &logtest.Buffer{},
		Client: &http.Client{Timeout: 10 * time.Second},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { g.done <- run(ctx, args, envFunc(env), environFunc(env), g.Stdout, g.Stderr) }()
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("gateway stopped with error: %v", err)
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		if addr, ok := listenAddr(g.Stdout.String()); ok {
			g.Addr, g.URL = addr, "http://"+addr
			return g
		}
		select {
		case err := <-g.done:
			g.done <- err // for stop
			t.Fatalf("run returned before listening: %v\nstdout:\n%s\nstderr:\n%s", err, g.Stdout, g.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not log a listening address within 10s\nstdout:\n%s\nstderr:\n%s", g.Stdout, g.Stderr)
		}
	}
}

// stop cancels run's context, as SIGTERM does, and returns what run returned.
func (g *gateway) stop() error {
	g.once.Do(func() {
		g.cancel()
		select {
		case g.err = <-g.done:
		case <-time.After(15 * time.Second):
			g.err = errors.New("run did not return within 15s of its context being cancelled")
		}
		g.Client.CloseIdleConnections()
	})
	return g.err
}

var textListening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// listenAddr finds the address in run's "listening" log line, in JSON or
// text format.
func listenAddr(out string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" && l.Addr != "" {
				return l.Addr, true
			}
			continue
		}
		if m := textListening.FindStringSubmatch(line); m != nil {
			return m[1], true
		}
	}
	return "", false
}

// response is what a test looks at in an HTTP answer.
type response struct {
	Status   int
	Header   http.Header
	Body     []byte
	Duration time.Duration
}

// do sends one request with the test token and returns the whole answer.
// Headers come as name, value pairs; a body is sent as application/json.
func (g *gateway) do(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.URL+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := g.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b, Duration: time.Since(start)}
}

// mustStatus fails the test unless the request answers want, and returns the
// answer.
func (g *gateway) mustStatus(t testing.TB, want int, method, path, body string, headers ...string) response {
	t.Helper()
	resp := g.do(t, method, path, body, headers...)
	if resp.Status != want {
		t.Fatalf("%s %s: status = %d, want %d; body: %s", method, path, resp.Status, want, resp.Body)
	}
	return resp
}
