package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// hub is the gateway's one subscriber connection to Redis, shared by every
// request that waits for a notification: a waiter costs a map entry, never a
// connection. Channels are subscribed while someone listens to them and
// unsubscribed when the last listener leaves.
//
// Delivery is a wake-up, not a message: a listener learns that something
// happened on its channel and must look at the state in Redis again. When the
// connection breaks, notifications sent meanwhile are lost; go-redis
// reconnects and subscribes again, and every listener of a channel that is
// subscribed anew is woken, so waiters re-check rather than sleep through a
// release they missed. The payload reaches the listeners' callbacks, so that
// event streams can later be served from the same connection.
type hub struct {
	rdb redis.UniversalClient

	start sync.Once
	ps    *redis.PubSub // nil until the first listener
	done  chan struct{} // closed once both loops have ended
	kick  chan struct{} // capacity 1: ops are queued

	mu     sync.Mutex
	closed bool
	topics map[string]*topic // by channel
	// pending counts the SUBSCRIBE commands queued or sent for a channel
	// whose confirmation has not arrived. It outlives the channel's topic, so
	// a late confirmation of an earlier subscription is not taken for one of
	// a later.
	pending map[string]int
	ops     []op // SUBSCRIBE and UNSUBSCRIBE commands, in the order to send them
}

type op struct {
	subscribe bool
	channel   string
}

// topic is one subscribed channel and its listeners.
type topic struct {
	listeners map[*Watch]struct{}
	ready     chan struct{} // closed once Redis confirmed the subscription
	isReady   bool
}

func newHub(rdb redis.UniversalClient) *hub {
	return &hub{rdb: rdb, topics: make(map[string]*topic), pending: make(map[string]int),
		done: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Watch is one listener on a channel of the hub. Notifications that arrive
// while nobody waits are kept as one, so none is lost between two looks at
// Redis's state.
type Watch struct {
	h       *hub
	channel string
	t       *topic
	c       chan struct{} // capacity 1: a pending wake-up
	once    sync.Once
}

// watch starts listening on channel. It does not wait for Redis: Ready says
// when the subscription is in force, and until then a notification can be
// missed, so a waiter looks at the state again once it is.
func (h *hub) watch(channel string) *Watch {
	h.start.Do(h.run)
	w := &Watch{h: h, channel: channel, c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[channel]
	if t == nil {
		t = &topic{listeners: make(map[*Watch]struct{}), ready: make(chan struct{})}
		h.topics[channel] = t
		if h.closed {
			t.markReady()
		} else {
			h.pending[channel]++
			h.queue(op{subscribe: true, channel: channel})
		}
	}
	t.listeners[w] = struct{}{}
	w.t = t
	return w
}

// queue adds a command for the sending loop; h.mu is held.
func (h *hub) queue(o op) {
	h.ops = append(h.ops, o)
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run opens the subscriber connection and starts two loops: one sends the
// queued commands in order, so that neither a listener nor the receive loop
// ever waits for a dial; the other receives.
func (h *hub) run() {
	h.ps = h.rdb.Subscribe(context.Background())
	in := h.ps.ChannelWithSubscriptions()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		h.send()
	}()
	go func() {
		defer wg.Done()
		for v := range in {
			switch m := v.(type) {
			case *redis.Message:
				h.deliver(m.Channel)
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					h.confirmed(m.Channel)
				}
			}
		}
	}()
	go func() {
		wg.Wait()
		close(h.done)
	}()
}

// send writes the queued commands until the hub stops. A command that fails
// to be written is repaired by go-redis's reconnection, which subscribes to
// every channel of the connection again.
func (h *hub) send() {
	for range h.kick {
		h.mu.Lock()
		ops, closed := h.ops, h.closed
		h.ops = nil
		h.mu.Unlock()
		if closed {
			return
		}
		ctx := context.Background()
		for _, o := range ops {
			if o.subscribe {
				_ = h.ps.Subscribe(ctx, o.channel)
			} else {
				_ = h.ps.Unsubscribe(ctx, o.channel)
			}
		}
	}
}

// deliver wakes every listener of channel.
func (h *hub) deliver(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[channel]; t != nil {
		t.wake()
	}
}

// confirmed handles Redis's confirmation of a subscription. One that nobody
// is waiting for comes from go-redis subscribing again after a reconnection:
// what was published in between is lost, so every listener is woken.
func (h *hub) confirmed(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[channel]
	n := h.pending[channel]
	if n == 0 {
		if t != nil {
			t.wake()
		}
		return
	}
	if n == 1 {
		delete(h.pending, channel)
		if t != nil {
			t.markReady()
		}
		return
	}
	h.pending[channel] = n - 1
}

func (t *topic) markReady() {
	if !t.isReady {
		t.isReady = true
		close(t.ready)
	}
}

func (t *topic) wake() {
	for w := range t.listeners {
		w.notify()
	}
}

// stop ends the hub: its connection closes and every listener is woken, to
// find Redis gone.
func (h *hub) stop() error {
	h.start.Do(func() {}) // no loop starts after this
	h.mu.Lock()
	h.closed = true
	for _, t := range h.topics {
		t.markReady()
		t.wake()
	}
	h.mu.Unlock()
	if h.ps == nil {
		return nil
	}
	close(h.kick)
	err := h.ps.Close()
	<-h.done
	return err
}

func (w *Watch) notify() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Ready is closed once Redis confirmed the subscription: from then on no
// notification of the channel is missed, except across reconnections, after
// which the watch is woken.
func (w *Watch) Ready() <-chan struct{} { return w.t.ready }

// C receives a value after notifications of the channel; several that
// arrive before it is read are one.
func (w *Watch) C() <-chan struct{} { return w.c }

// Wait returns nil after a notification of the channel, or ctx's error.
func (w *Watch) Wait(ctx context.Context) error {
	select {
	case <-w.c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops listening; the channel is unsubscribed when its last listener
// leaves.
func (w *Watch) Close() {
	w.once.Do(func() {
		h := w.h
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(w.t.listeners, w)
		if len(w.t.listeners) > 0 || h.topics[w.channel] != w.t {
			return
		}
		delete(h.topics, w.channel)
		if !h.closed {
			h.queue(op{channel: w.channel})
		}
	})
}
