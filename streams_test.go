package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Shutdown ends open event streams cleanly. Without that it would wait for
// them until SHUTDOWN_TIMEOUT and fail.
func TestShutdownEndsStreams(t *testing.T) {
	g := mustStartGateway(t, "memory://")
	var bodies []io.ReadCloser
	for _, r := range []struct{ method, path string }{{"GET", "/subscribe/c"}, {"POST", "/redis/subscribe/c"}} {
		req, err := http.NewRequest(r.method, g.URL+r.path, strings.NewReader("[]"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", r.method, r.path, resp.StatusCode)
		}
		bodies = append(bodies, resp.Body)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()
	for _, b := range bodies {
		if _, err := io.Copy(io.Discard, b); err != nil {
			t.Errorf("stream ended with %v, want a clean end", err)
		}
		b.Close()
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("run after shutdown with open streams: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of shutdown")
	}
}

func TestConfigStreams(t *testing.T) {
	base := map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken}
	getenv := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	cfg, err := loadConfig(getenv(nil), false)
	if err != nil || cfg.MaxSubscribers != 10000 || cfg.SubscribeBuffer != 128 || cfg.SubscribeHeartbeat != 15*time.Second {
		t.Errorf("defaults: MaxSubscribers %d, SubscribeBuffer %d, SubscribeHeartbeat %s, %v; want 10000, 128, 15s",
			cfg.MaxSubscribers, cfg.SubscribeBuffer, cfg.SubscribeHeartbeat, err)
	}
	cfg, err = loadConfig(getenv(map[string]string{"MAX_SUBSCRIBERS": "5", "SUBSCRIBE_BUFFER": "3", "SUBSCRIBE_HEARTBEAT": "2s"}), false)
	if err != nil || cfg.MaxSubscribers != 5 || cfg.SubscribeBuffer != 3 || cfg.SubscribeHeartbeat != 2*time.Second {
		t.Errorf("MAX_SUBSCRIBERS=5 SUBSCRIBE_BUFFER=3 SUBSCRIBE_HEARTBEAT=2s: %d, %d, %s, %v", cfg.MaxSubscribers, cfg.SubscribeBuffer, cfg.SubscribeHeartbeat, err)
	}
	for _, bad := range []map[string]string{
		{"MAX_SUBSCRIBERS": "0"},
		{"MAX_SUBSCRIBERS": "many"},
		{"SUBSCRIBE_BUFFER": "0"},
		{"SUBSCRIBE_BUFFER": "lots"},
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
