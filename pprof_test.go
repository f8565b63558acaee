package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// PPROF_ADDR serves the profiler on its own listener; the gateway's port never
// serves it, with or without PPROF_ADDR.
func TestPprofOnItsOwnListener(t *testing.T) {
	srv := redistest.Start(t)

	plain := mustStartGateway(t, srv.URL())
	if resp := plain.do(t, http.MethodGet, "/debug/pprof/", ""); resp.Status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the gateway's port without PPROF_ADDR: status = %d, want 404", resp.Status)
	}
	if strings.Contains(plain.Stdout.String(), "pprof listening") {
		t.Errorf("without PPROF_ADDR the gateway started a pprof listener:\n%s", plain.Stdout)
	}

	g := mustStartGateway(t, srv.URL(), "PPROF_ADDR=127.0.0.1:0")
	addr := waitForLogAddr(t, g, "pprof listening")
	resp, err := g.Client.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("GET /debug/pprof/cmdline on PPROF_ADDR: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/cmdline on PPROF_ADDR: status = %d, want 200", resp.StatusCode)
	}
	if resp := g.do(t, http.MethodGet, "/debug/pprof/", ""); resp.Status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the gateway's port with PPROF_ADDR set: status = %d, want 404", resp.Status)
	}
}

// waitForLogAddr returns the addr of the first JSON log line with msg.
func waitForLogAddr(t *testing.T, g *gateway, msg string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(g.Stdout.String(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && l.Addr != "" {
				return l.Addr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q log line with an addr within 5s:\n%s", msg, g.Stdout)
	return ""
}
