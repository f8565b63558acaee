package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Shutdown runs its steps in one order: readiness off, then the listener
// closed, then the streams told to end, then the requests drained, and the
// store closed last, after the last request.
func TestGatewayServerShutdownOrder(t *testing.T) {
	var (
		mu    sync.Mutex
		steps []string
	)
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, s)
	}
	gs := newGatewayServer(func() error { note("store closed"); return nil }, 0, 10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	inStream := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inStream)
		<-gs.stop // a stream: it ends when told
		if !gs.Draining() {
			t.Errorf("a stream was ended before readiness went off")
		}
		note("stream ended")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := gs.Serve(srv, ln)
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-inStream
	if gs.Draining() {
		t.Errorf("draining before Shutdown")
	}
	if err := gs.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-got; err != nil {
		t.Errorf("the stream's request: %v, want its answer", err)
	}
	select {
	case err := <-served:
		t.Errorf("served delivered %v after a shutdown, want nothing", err)
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(steps) != 2 || steps[0] != "stream ended" || steps[1] != "store closed" {
		t.Errorf("steps = %q, want the stream ended, then the store closed", steps)
	}
	if err := gs.closeStore(); err != nil || len(steps) != 2 {
		t.Errorf("a second closeStore: %v, steps %q; want the store closed once", err, steps)
	}
}
