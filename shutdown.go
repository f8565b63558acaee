package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
)

// gatewayServer is the gateway's HTTP server with what it serves from, and
// the one order in which they stop: Shutdown.
type gatewayServer struct {
	srv        *http.Server
	ln         net.Listener
	conns      *connTracker
	draining   atomic.Bool   // /readyz fails once set
	stop       chan struct{} // closed to end event streams and lock waits
	served     chan error    // what srv.Serve returned
	closeStore func() error  // once only: serve also closes the store on its way out
	delay      time.Duration // SHUTDOWN_DELAY
	timeout    time.Duration // SHUTDOWN_TIMEOUT
	logger     *slog.Logger

	// streams counts the event streams served past their handler's return,
	// which srv.Shutdown does not wait for.
	streams handlers.Streams
}

// newGatewayServer returns the server before it serves: the handlers are
// built from its draining flag and stop channel.
func newGatewayServer(closeStore func() error, delay, timeout time.Duration, logger *slog.Logger) *gatewayServer {
	return &gatewayServer{
		conns: newConnTracker(), stop: make(chan struct{}), served: make(chan error, 1),
		closeStore: sync.OnceValue(closeStore), delay: delay, timeout: timeout, logger: logger,
	}
}

// Draining says whether shutdown has begun: /readyz fails.
func (g *gatewayServer) Draining() bool { return g.draining.Load() }

// Serve serves srv on ln in the background, over TLS when tlsConfig is set;
// the channel it returns delivers the error that ended serving before a
// shutdown.
func (g *gatewayServer) Serve(srv *http.Server, ln net.Listener, tlsConfig *tls.Config) <-chan error {
	g.srv, g.ln = srv, ln
	srv.ConnState = g.conns.track
	// Below TLS: net/http must still see the *tls.Conn it serves.
	served := net.Listener(trackingListener{ln})
	if tlsConfig != nil {
		served = tls.NewListener(served, tlsConfig)
	}
	go func() { g.served <- srv.Serve(served) }()
	return g.served
}

// Shutdown stops the gateway. ctx is a fresh context (the one that asked for
// the shutdown is already done); SHUTDOWN_TIMEOUT bounds the wait for
// requests under it.
func (g *gatewayServer) Shutdown(ctx context.Context) error {
	// Readiness fails first so load balancers stop sending: they take a few
	// probe intervals (and kube-proxy its endpoint update) to notice, and
	// traffic that still arrives during SHUTDOWN_DELAY is served.
	g.draining.Store(true)
	g.logger.Info("shutting down", "delay", g.delay, "timeout", g.timeout)
	select {
	case <-time.After(g.delay):
	case <-ctx.Done():
	}

	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	// Stop accepting, then let every accepted request be read and answered
	// before Shutdown: net/http closes a request it reads after Shutdown began
	// without answering it (golang/go#75591), and the client cannot tell
	// whether its write was applied.
	_ = g.ln.Close()
	<-g.served
	// End event streams and lock waits: they stay active until told, and
	// would hold the waits below.
	close(g.stop)
	g.waitStreams(ctx)
	g.conns.waitQuiet(ctx)
	if err := g.srv.Shutdown(ctx); err != nil {
		_ = g.srv.Close()
		_ = g.closeStore()
		return fmt.Errorf("shutdown: in-flight requests did not finish within SHUTDOWN_TIMEOUT (%s): %w", g.timeout, err)
	}
	if err := g.closeStore(); err != nil {
		g.logger.Warn("closing the connections to redis", "error", err)
	}
	g.logger.Info("stopped")
	return nil
}

// waitStreams waits for the event streams that net/http no longer tracks to
// send their clean end, or for ctx.
func (g *gatewayServer) waitStreams(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		g.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// newConnGrace is how long shutdown waits for a fresh connection to send its
// request; one that sends nothing for that long is not a request in flight.
const newConnGrace = time.Second

// connTracker knows how many connections carry a request or may be about
// to. Each connection keeps its own state (trackedConn), so the ConnState
// hook, which runs twice for every request, takes no lock.
type connTracker struct {
	active  atomic.Int64 // connections in StateActive
	fresh   atomic.Int64 // connections in StateNew
	lastNew atomic.Int64 // when the latest connection arrived, in Unix nanoseconds
}

func newConnTracker() *connTracker { return &connTracker{} }

// track is the http.Server's ConnState hook.
func (t *connTracker) track(c net.Conn, s http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return // not from Serve's listener
	}
	if s == http.StateNew {
		t.lastNew.Store(time.Now().UnixNano())
	}
	t.count(http.ConnState(tc.state.Swap(int32(s))), -1)
	t.count(s, 1)
}

func (t *connTracker) count(s http.ConnState, delta int64) {
	switch s {
	case http.StateActive:
		t.active.Add(delta)
	case http.StateNew:
		t.fresh.Add(delta)
	}
}

// busy counts active connections and, while the latest to arrive is
// within its grace, the new ones: a connection that sent nothing for
// that long is not a request in flight, and one that did is active.
func (t *connTracker) busy(now time.Time) int64 {
	n := t.active.Load()
	if now.UnixNano()-t.lastNew.Load() < int64(newConnGrace) {
		n += t.fresh.Load()
	}
	return n
}

// waitQuiet returns once no connection is busy, or when ctx ends.
func (t *connTracker) waitQuiet(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for t.busy(time.Now()) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// trackingListener hands out connections that carry their state for the
// connTracker.
type trackingListener struct{ net.Listener }

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c}
	tc.state.Store(-1) // before StateNew, which is 0
	return tc, nil
}

type trackedConn struct {
	net.Conn
	state atomic.Int32 // http.ConnState, or -1 before the first
}

// CloseWrite lets net/http end a response whose request body it will not
// read with a half-close, as it does on a bare TCP connection.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
