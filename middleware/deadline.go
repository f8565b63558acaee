package middleware

import (
	"context"
	"slices"
	"sync"
	"time"
)

// A request's deadline, armed once something waits on its context, is kept
// by the front's clock: one goroutine for all the requests that wait, which
// ends the waits of those whose deadline has passed or whose client went
// away, checking every tick while any request waits. A timer and a context
// per request (context.WithDeadline under net/http's request context) cost
// six allocations, a timer in the runtime's heap and a registration with
// the parent: about 1 to 2 µs of CPU for every request that waits on Redis.
// The price of the clock is precision: a wait ends up to a tick after its
// deadline, or after its client went away.

// defaultTick is how often the clock looks at the requests that wait.
const defaultTick = 10 * time.Millisecond

// clock ends the waits of armed requests.
type clock struct {
	tick time.Duration

	mu      sync.Mutex
	waiting *wait // armed and not yet ended, a doubly linked list
	running bool  // a goroutine runs sweep every tick
}

// wait is a request's context once something waited on it.
type wait struct {
	deadline time.Time
	parent   context.Context // net/http's request context

	done chan struct{}
	err  error // set before done is closed; read after it is

	// Under the clock's lock:
	prev, next *wait
	linked     bool
	ended      bool
	funcs      []*afterFunc
}

type afterFunc struct{ f func() }

// arm returns rq's wait, making it on first use: ended at once when rq's
// deadline has passed, its parent has ended or rq itself has been served.
func (c *clock) arm(rq *request) *wait {
	if w := rq.wait.Load(); w != nil {
		return w
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := rq.wait.Load(); w != nil {
		return w
	}
	w := &wait{deadline: rq.deadline, parent: rq.parent, done: make(chan struct{})}
	rq.wait.Store(w)
	switch err := w.over(time.Now()); {
	case err != nil:
		c.end(w, err)
	case rq.served.Load():
		c.end(w, context.Canceled)
	default:
		w.next, w.linked = c.waiting, true
		if c.waiting != nil {
			c.waiting.prev = w
		}
		c.waiting = w
		if !c.running {
			c.running = true
			go c.run()
		}
	}
	return w
}

// release ends rq's wait, if it has one, once rq has been served: what
// still waits on the context (a goroutine the handler left behind) sees it
// canceled, as net/http's own request context is.
func (c *clock) release(rq *request) {
	rq.served.Store(true)
	if w := rq.wait.Load(); w != nil {
		c.mu.Lock()
		c.end(w, context.Canceled)
		c.mu.Unlock()
	}
}

// end closes w's done with err, once, under c.mu.
func (c *clock) end(w *wait, err error) {
	if w.ended {
		return
	}
	w.ended = true
	if w.linked {
		if w.prev != nil {
			w.prev.next = w.next
		} else {
			c.waiting = w.next
		}
		if w.next != nil {
			w.next.prev = w.prev
		}
		w.prev, w.next, w.linked = nil, nil, false
	}
	w.err = err
	close(w.done)
	for _, a := range w.funcs {
		go a.f()
	}
	w.funcs = nil
}

func (c *clock) run() {
	t := time.NewTicker(c.tick)
	defer t.Stop()
	for now := range t.C {
		if !c.sweep(now) {
			return
		}
	}
}

// sweep ends the waits that are over at now, and reports whether any
// request still waits; when none does, the goroutine stops.
func (c *clock) sweep(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := c.waiting; w != nil; {
		next := w.next
		if err := w.over(now); err != nil {
			c.end(w, err)
		}
		w = next
	}
	if c.waiting == nil {
		c.running = false
		return false
	}
	return true
}

// afterFunc runs f once w has ended, as context.AfterFunc does; contexts
// derived from the request's find it there (see context.WithCancel), so none
// needs a goroutine of its own to follow the request.
func (c *clock) afterFunc(w *wait, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.ended {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	w.funcs = append(w.funcs, a)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(w.funcs, a)
		if i < 0 {
			return false
		}
		w.funcs = slices.Delete(w.funcs, i, i+1)
		return true
	}
}

// over says why w is over at now: its deadline has passed, or its parent
// (the client's request) has ended; nil while it is not.
func (w *wait) over(now time.Time) error {
	if !now.Before(w.deadline) {
		return context.DeadlineExceeded
	}
	return w.parent.Err()
}
