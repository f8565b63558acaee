package main

import (
	"context"
	"crypto/tls"
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
	served := gs.Serve(srv, ln, nil)
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

// The tracker counts each connection by its latest state, however it got
// there, TLS or not, and new ones only within their grace.
func TestConnTracker(t *testing.T) {
	tr := newConnTracker()
	conn := func() *trackedConn {
		c := &trackedConn{}
		c.state.Store(-1)
		return c
	}
	a, b, c := conn(), conn(), conn()
	overTLS := tls.Server(c, &tls.Config{})
	tr.track(a, http.StateNew)
	tr.track(b, http.StateNew)
	tr.track(overTLS, http.StateNew)
	now := time.Now()
	if got := tr.busy(now); got != 3 {
		t.Errorf("three new connections: busy = %d, want 3", got)
	}
	if got := tr.busy(now.Add(newConnGrace)); got != 0 {
		t.Errorf("three new connections past their grace: busy = %d, want 0", got)
	}
	tr.track(a, http.StateActive)
	tr.track(overTLS, http.StateActive)
	if got := tr.busy(now.Add(newConnGrace)); got != 2 {
		t.Errorf("two active past the grace: busy = %d, want 2", got)
	}
	tr.track(a, http.StateIdle)
	tr.track(b, http.StateClosed)
	tr.track(overTLS, http.StateHijacked)
	tr.track(overTLS, http.StateClosed) // twice gone counts once
	if got := tr.busy(now); got != 0 {
		t.Errorf("one idle, two gone: busy = %d, want 0", got)
	}
	tr.track(a, http.StateActive)
	tr.track(a, http.StateClosed)
	if tr.active.Load() != 0 || tr.fresh.Load() != 0 {
		t.Errorf("all closed: %d active, %d new; want none", tr.active.Load(), tr.fresh.Load())
	}
	tr.track(&net.TCPConn{}, http.StateActive) // not from Serve's listener: not counted
	if got := tr.busy(now); got != 0 {
		t.Errorf("a connection Serve did not accept: busy = %d, want 0", got)
	}
}
