package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// runningGateway is run() serving on a free loopback port, as main starts it.
type runningGateway struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	logs   strings.Builder
}

// startRun starts run() with env on top of a minimal configuration, waits
// until it listens, and stops it when the test ends.
func startRun(t *testing.T, env map[string]string) *runningGateway {
	t.Helper()
	vars := map[string]string{
		"HTTP_ADDR":        "127.0.0.1:0",
		"GATEWAY_TOKENS":   "test-token",
		"SHUTDOWN_DRAIN":   "0",
		"SHUTDOWN_TIMEOUT": "3s",
		"LOG_FORMAT":       "json",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &runningGateway{cancel: cancel, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	go func() {
		err := run(ctx, []string{"redis-gateway"}, func(k string) string { return vars[k] }, pw, io.Discard)
		pw.Close()
		g.done <- err
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			g.mu.Lock()
			g.logs.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				listening <- line.Addr
			}
		}
	}()
	select {
	case addr := <-listening:
		g.url = "http://" + addr
	case err := <-g.done:
		t.Fatalf("run: %v\n%s", err, g.log())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("the gateway did not listen within 10s\n%s", g.log())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(15 * time.Second):
			t.Errorf("run did not return after cancel")
		}
	})
	return g
}

func (g *runningGateway) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// Shutdown ends open event streams cleanly. Without that it would wait for
// them until SHUTDOWN_TIMEOUT and fail.
func TestShutdownEndsStreams(t *testing.T) {
	g := startRun(t, map[string]string{"REDIS_URL": "memory://"})
	var bodies []io.ReadCloser
	for _, r := range []struct{ method, path string }{{"GET", "/subscribe/c"}, {"POST", "/redis/subscribe/c"}} {
		req, err := http.NewRequest(r.method, g.url+r.path, strings.NewReader("[]"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", r.method, r.path, resp.StatusCode)
		}
		bodies = append(bodies, resp.Body)
	}
	g.cancel()
	for _, b := range bodies {
		if _, err := io.Copy(io.Discard, b); err != nil {
			t.Errorf("stream ended with %v, want a clean end", err)
		}
		b.Close()
	}
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		if err != nil {
			t.Errorf("run after shutdown with open streams: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of shutdown")
	}
}

func TestConfigStreams(t *testing.T) {
	base := map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": "t"}
	getenv := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	cfg, err := loadConfig(getenv(nil), false)
	if err != nil || cfg.MaxSubscribers != 1000 || cfg.SubscribeHeartbeat != 15*time.Second {
		t.Errorf("defaults: MaxSubscribers %d, SubscribeHeartbeat %s, %v; want 1000, 15s", cfg.MaxSubscribers, cfg.SubscribeHeartbeat, err)
	}
	cfg, err = loadConfig(getenv(map[string]string{"MAX_SUBSCRIBERS": "5", "SUBSCRIBE_HEARTBEAT": "2s"}), false)
	if err != nil || cfg.MaxSubscribers != 5 || cfg.SubscribeHeartbeat != 2*time.Second {
		t.Errorf("MAX_SUBSCRIBERS=5 SUBSCRIBE_HEARTBEAT=2s: %d, %s, %v", cfg.MaxSubscribers, cfg.SubscribeHeartbeat, err)
	}
	for _, bad := range []map[string]string{
		{"MAX_SUBSCRIBERS": "0"},
		{"MAX_SUBSCRIBERS": "many"},
		{"SUBSCRIBE_HEARTBEAT": "15"},
		{"SUBSCRIBE_HEARTBEAT": "10ms"},
	} {
		_, err := loadConfig(getenv(bad), false)
		for name := range bad {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s=%s: error %v, want one naming the variable", name, bad[name], err)
			}
		}
	}
}
