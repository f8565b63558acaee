package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the gateway sends its spans over
// OTLP/HTTP, at the latest when it stops, in the caller's trace.
func TestTracesExportedOverOTLP(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		if r.URL.Path == "/v1/traces" {
			bodies = append(bodies, b)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	// The exporter reads the process's environment, as the SDK does.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)

	srv := redistest.Start(t)
	g := mustStartGateway(t, srv.URL(), "OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp := g.do(t, http.MethodGet, "/cache/k", "", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if resp.Status != http.StatusNotFound {
		t.Fatalf("GET /cache/k: status = %d, want 404", resp.Status)
	}
	if err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	id, _ := hex.DecodeString(trace)
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, b := range bodies {
		found = found || bytes.Contains(b, id)
	}
	if !found {
		t.Errorf("the collector received %d export requests, none with trace %s\nstdout:\n%s", len(bodies), trace, g.Stdout.String())
	}
}
