package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// newConnGrace is how long shutdown waits for a fresh connection to send its
// request; one that sends nothing for that long is not a request in flight.
const newConnGrace = time.Second

// connTracker knows which connections carry a request or may be about to.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]connState
}

type connState struct {
	state http.ConnState
	since time.Time
}

func newConnTracker() *connTracker {
	return &connTracker{conns: map[net.Conn]connState{}}
}

// track is the http.Server's ConnState hook.
func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateNew, http.StateActive:
		t.conns[c] = connState{state: s, since: time.Now()}
	default:
		delete(t.conns, c)
	}
}

// busy counts active connections and new ones still within their grace.
func (t *connTracker) busy(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, cs := range t.conns {
		if cs.state == http.StateActive || now.Sub(cs.since) < newConnGrace {
			n++
		}
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
