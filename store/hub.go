package store

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// hub is the gateway's one subscriber connection to Redis, shared by every
// request that waits for a notification and every event stream: a listener
// costs a list entry, never a connection. Channels and patterns are
// subscribed while someone listens to them and unsubscribed when the last
// listener leaves.
//
// For waiters, delivery is a wake-up, not a message: a listener learns that something
// happened on its channel and must look at the state in Redis again. When the
// connection breaks, notifications sent meanwhile are lost; go-redis
// reconnects and subscribes again, and every listener of a channel that is
// subscribed anew is woken, so waiters re-check rather than sleep through a
// release they missed.
//
// A listener is woken by every notification (broadcast), or takes its turn
// (handoff): a notification wakes only the first such listener not already
// woken, in the order they came, since only one of them can take what was
// released, and waking them all would send them all to Redis. A handoff
// listener that leaves with a wake-up it did not use passes it on.
//
// Event streams are a third kind of listener (pubsub.go): a Subscription,
// on a channel or a pattern, is handed each message's frame, encoded once for
// all the streams of its kind, and told of a reconnection by a gap frame.
// The receiving loop never waits for a stream: one whose queue is full is
// dropped.
type hub struct {
	rdb redis.UniversalClient

	start sync.Once
	ps    *redis.PubSub // nil until the first listener
	done  chan struct{} // closed once both loops have ended
	kick  chan struct{} // capacity 1: ops are queued

	mu     sync.Mutex
	closed bool
	topics map[topicKey]*topic
	// pending counts the SUBSCRIBE commands queued or sent for a channel
	// whose confirmation has not arrived. It outlives the channel's topic, so
	// a late confirmation of an earlier subscription is not taken for one of
	// a later.
	pending map[topicKey]int
	ops     []op // (P)SUBSCRIBE and (P)UNSUBSCRIBE commands, in the order to send them

	dropped atomic.Uint64 // streams ended for falling behind
}

// topicKey names a channel, or a pattern: Redis keeps the two apart, and so
// does the hub.
type topicKey struct {
	pattern bool
	name    string
}

type op struct {
	subscribe bool
	key       topicKey
}

// topic is one subscribed channel or pattern and its listeners.
type topic struct {
	listeners list.List       // of *Watch, in the order they came
	streams   []*Subscription // in no order: each knows its index
	ready     chan struct{}   // closed once Redis confirmed the subscription
	isReady   bool
	// failed is closed when a SUBSCRIBE could not be sent, which streams
	// waiting for ready take as Redis being unavailable. go-redis sends it
	// again once it reconnects, so the topic may yet become ready.
	failed   chan struct{}
	isFailed bool
}

func newHub(rdb redis.UniversalClient) *hub {
	return &hub{rdb: rdb, topics: make(map[topicKey]*topic), pending: make(map[topicKey]int),
		done: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Watch is one listener on a channel of the hub. Notifications that arrive
// while nobody waits are kept as one, so none is lost between two looks at
// Redis's state.
type Watch struct {
	h       *hub
	channel string
	handoff bool // woken in turn, not by every notification
	t       *topic
	elem    *list.Element // in t.listeners
	c       chan struct{} // capacity 1: a pending wake-up
	once    sync.Once
}

// watch starts listening on channel. It does not wait for Redis: Ready says
// when the subscription is in force, and until then a notification can be
// missed, so a waiter looks at the state again once it is.
func (h *hub) watch(channel string, handoff bool) *Watch {
	h.start.Do(h.run)
	w := &Watch{h: h, channel: channel, handoff: handoff, c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topic(topicKey{name: channel})
	w.t, w.elem = t, t.listeners.PushBack(w)
	return w
}

// topic returns the topic of key, subscribing when it is new; h.mu is held.
func (h *hub) topic(key topicKey) *topic {
	t := h.topics[key]
	if t == nil {
		t = &topic{ready: make(chan struct{}), failed: make(chan struct{})}
		h.topics[key] = t
		if h.closed {
			t.markReady()
		} else {
			h.pending[key]++
			h.queue(op{subscribe: true, key: key})
		}
	}
	return t
}

// retry subscribes again to a topic whose SUBSCRIBE could not be sent, for
// a new listener that would otherwise take the old failure for its own;
// h.mu is held.
func (h *hub) retry(key topicKey, t *topic) {
	if t.isReady || !t.isFailed || h.closed {
		return
	}
	t.failed, t.isFailed = make(chan struct{}), false
	h.pending[key]++
	h.queue(op{subscribe: true, key: key})
}

// leave drops the topic of key once nobody listens to it; h.mu is held.
func (h *hub) leave(key topicKey, t *topic) {
	if t.listeners.Len() > 0 || len(t.streams) > 0 || h.topics[key] != t {
		return
	}
	delete(h.topics, key)
	if !h.closed {
		h.queue(op{key: key})
	}
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
		var frames frameCache
		for v := range in {
			switch m := v.(type) {
			case *redis.Message:
				h.deliver(m, &frames)
			case *redis.Subscription:
				switch m.Kind {
				case "subscribe":
					h.confirmed(topicKey{name: m.Channel}, &frames)
				case "psubscribe":
					h.confirmed(topicKey{pattern: true, name: m.Channel}, &frames)
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
			var err error
			switch {
			case o.subscribe && o.key.pattern:
				err = h.ps.PSubscribe(ctx, o.key.name)
			case o.subscribe:
				err = h.ps.Subscribe(ctx, o.key.name)
			case o.key.pattern:
				_ = h.ps.PUnsubscribe(ctx, o.key.name)
			default:
				_ = h.ps.Unsubscribe(ctx, o.key.name)
			}
			if err != nil {
				h.failed(o.key)
			}
		}
	}
}

// failed tells the streams waiting for a subscription that it could not be
// sent.
func (h *hub) failed(key topicKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[key]; t != nil && !t.isReady && !t.isFailed {
		t.isFailed = true
		close(t.failed)
	}
}

// deliver wakes every listener of the message's channel, or hands it to
// every stream of its channel or pattern.
func (h *hub) deliver(m *redis.Message, frames *frameCache) {
	key := topicKey{name: m.Channel}
	if m.Pattern != "" {
		key = topicKey{pattern: true, name: m.Pattern}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[key]
	if t == nil {
		return
	}
	t.notify()
	frames.reset(func(enc Encoder, b []byte) []byte {
		return enc.Message(b, Message{Pattern: m.Pattern, Channel: m.Channel, Payload: m.Payload})
	})
	h.fanOut(key, t, frames)
}

// confirmed handles Redis's confirmation of a subscription. One that nobody
// is waiting for comes from go-redis subscribing again after a reconnection:
// what was published in between is lost, so every listener is woken and
// every stream told.
func (h *hub) confirmed(key topicKey, frames *frameCache) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[key]
	n := h.pending[key]
	if n == 0 {
		if t != nil {
			t.wake()
			frames.reset(func(enc Encoder, b []byte) []byte { return enc.Gap(b) })
			h.fanOut(key, t, frames)
		}
		return
	}
	if n == 1 {
		delete(h.pending, key)
		if t != nil {
			t.markReady()
		}
		return
	}
	h.pending[key] = n - 1
}

// fanOut queues the frame of a message, or of a gap, for every stream of
// the topic; a stream whose queue is full is ended instead, so that it never
// holds up the others. h.mu is held.
func (h *hub) fanOut(key topicKey, t *topic, frames *frameCache) {
	if len(t.streams) == 0 {
		return
	}
	// Downwards, since a stream removed takes the place of the last one.
	for i := len(t.streams) - 1; i >= 0; i-- {
		s := t.streams[i]
		b := frames.frame(s.enc)
		if b != nil && !s.push(b) {
			t.remove(s, ErrSlowSubscriber)
			h.dropped.Add(1)
		}
	}
	h.leave(key, t)
}

// droppedCounter counts the streams dropped when they are, not when their
// handler, perhaps stuck writing to the slow client, gets to know.
func (h *hub) droppedCounter() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "redis_gateway",
		Name:      "subscribers_dropped_total",
		Help:      "Event streams ended because their client fell SUBSCRIBE_BUFFER messages behind.",
	}, func() float64 { return float64(h.dropped.Load()) })
}

// remove takes s out of the topic; err, if any, ends its stream. h.mu is held.
func (t *topic) remove(s *Subscription, err error) {
	last := len(t.streams) - 1
	t.streams[s.index] = t.streams[last]
	t.streams[s.index].index = s.index
	t.streams[last] = nil
	t.streams = t.streams[:last]
	s.t = nil
	if err != nil {
		s.err = err
		close(s.done)
		s.Wake()
	}
}

// frameCache encodes a message once for each kind of stream it goes to, and
// shares those bytes among all the streams of that kind.
type frameCache struct {
	encode func(enc Encoder, b []byte) []byte
	encs   []Encoder
	frames [][]byte
}

func (c *frameCache) reset(encode func(enc Encoder, b []byte) []byte) {
	c.encode, c.encs, c.frames = encode, c.encs[:0], c.frames[:0]
	clear(c.frames[:cap(c.frames)]) // let the last message's frames go
}

// frame returns the bytes for streams encoded by enc: a handful of kinds
// at most, so a list beats a map.
func (c *frameCache) frame(enc Encoder) []byte {
	for i, e := range c.encs {
		if e == enc {
			return c.frames[i]
		}
	}
	b := c.encode(enc, nil)
	c.encs, c.frames = append(c.encs, enc), append(c.frames, b)
	return b
}

func (t *topic) markReady() {
	if !t.isReady {
		t.isReady = true
		close(t.ready)
	}
}

// notify wakes the broadcast listeners and the next handoff listener.
func (t *topic) notify() {
	handedOff := false
	for e := t.listeners.Front(); e != nil; e = e.Next() {
		w := e.Value.(*Watch)
		if !w.handoff {
			w.notify()
		} else if !handedOff && len(w.c) == 0 {
			w.notify()
			handedOff = true
		}
	}
}

// handOff wakes the first handoff listener not already woken.
func (t *topic) handOff() {
	for e := t.listeners.Front(); e != nil; e = e.Next() {
		if w := e.Value.(*Watch); w.handoff && len(w.c) == 0 {
			w.notify()
			return
		}
	}
}

// wake wakes every listener.
func (t *topic) wake() {
	for e := t.listeners.Front(); e != nil; e = e.Next() {
		e.Value.(*Watch).notify()
	}
}

// stop ends the hub: its connection closes, every listener is woken, to
// find Redis gone, and every stream ends.
func (h *hub) stop() error {
	h.start.Do(func() {}) // no loop starts after this
	h.mu.Lock()
	h.closed = true
	for _, t := range h.topics {
		t.markReady()
		t.wake()
		for len(t.streams) > 0 {
			t.remove(t.streams[0], errStopped)
		}
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
// leaves. A handoff listener's unused wake-up goes to the next in turn.
func (w *Watch) Close() {
	w.once.Do(func() {
		h := w.h
		h.mu.Lock()
		defer h.mu.Unlock()
		w.t.listeners.Remove(w.elem)
		if w.handoff && len(w.c) > 0 {
			<-w.c
			w.t.handOff()
		}
		h.leave(topicKey{name: w.channel}, w.t)
	})
}
