package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Message is one message a subscription received.
type Message struct {
	Pattern string // the pattern that matched; empty for channel subscriptions
	Channel string
	Payload string
}

// Encoder turns what a subscription receives into the bytes its stream
// writes. The hub encodes each message once for all the streams with equal
// encoders and shares the bytes among them, so an Encoder must be of a
// comparable type, and two equal encoders must encode alike.
type Encoder interface {
	// Message appends the frame of m to b.
	Message(b []byte, m Message) []byte
	// Gap appends the frame that tells a stream that messages may have been
	// lost while the subscriber connection was down; nil sends nothing.
	Gap(b []byte) []byte
}

// ErrSlowSubscriber ends a subscription whose stream fell so far behind
// that its queue was full when a message came: it missed that message and
// all that follow.
var ErrSlowSubscriber = errors.New("subscriber too slow: queue full")

// errStopped ends the subscriptions of a store that is closing.
var errStopped = errors.New("store closed")

// Subscription is one event stream's subscription to a channel or a
// pattern. It costs no connection: the streams share the hub's (hub.go),
// which subscribes when the first stream of a channel or pattern comes and
// unsubscribes when the last leaves. What arrives is queued, already
// encoded, up to a bound; past it, the subscription ends rather than make
// the hub, and every other stream, wait.
type Subscription struct {
	h     *hub
	key   topicKey
	enc   Encoder
	max   int    // frames queued at most
	t     *topic // nil once out of it; guarded by h.mu
	index int    // in t.streams; guarded by h.mu

	mu      sync.Mutex
	queue   [][]byte
	waiting chan struct{} // capacity 1: the queue is not empty
	done    chan struct{} // closed when the hub ends the subscription
	err     error         // why; written before done is closed
	once    sync.Once
}

// Publish sends message to channel and returns how many subscribers got it.
// Redis counts subscriber connections, not streams: a gateway's connection
// counts once for each of its channels and patterns the message matched,
// however many streams it serves. On Redis Cluster every node delivers the
// message but counts only its own subscribers, and the gateway's connection
// is on one node, so the count is a lower bound; the message goes to the
// primary of the channel's slot, where clients that subscribe by slot are.
//
// A publish is sent once, as a write is: sent again after a lost reply, it
// would be delivered twice. It stores nothing a failover could lose, so
// durable writes do not wait for replicas to have it.
func (s *Store) Publish(ctx context.Context, channel string, message []byte) (int64, error) {
	var node processor = s.rdb
	if cluster, ok := s.rdb.(*redis.ClusterClient); ok {
		n, err := cluster.MasterForKey(ctx, channel)
		if err != nil {
			return 0, classify("publish", err)
		}
		node = n
	}
	n, err := sendOnce(ctx, s, node, redis.NewIntCmd, "publish", channel, message).Result()
	return n, classify("publish", err)
}

// Subscribe subscribes a stream to channel, queueing up to buffer frames
// encoded by enc. It returns once Redis has confirmed the subscription, so
// that a message published after it is delivered; ctx bounds only that
// wait. The subscription lasts until Close, or until it is ended (Done).
func (s *Store) Subscribe(ctx context.Context, channel string, enc Encoder, buffer int) (*Subscription, error) {
	return s.hub.subscribe(ctx, topicKey{name: channel}, enc, buffer)
}

// PSubscribe is Subscribe to the channels matching pattern.
func (s *Store) PSubscribe(ctx context.Context, pattern string, enc Encoder, buffer int) (*Subscription, error) {
	return s.hub.subscribe(ctx, topicKey{pattern: true, name: pattern}, enc, buffer)
}

func (h *hub) subscribe(ctx context.Context, key topicKey, enc Encoder, buffer int) (*Subscription, error) {
	h.start.Do(h.run)
	sub := &Subscription{h: h, key: key, enc: enc, max: max(buffer, 1),
		waiting: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("subscribe: %w: %w", ErrUnavailable, errStopped)
	}
	t := h.topic(key)
	h.retry(key, t)
	sub.t, sub.index = t, len(t.streams)
	t.streams = append(t.streams, sub)
	ready, failed := t.ready, t.failed
	h.mu.Unlock()

	select {
	case <-ready:
		return sub, nil
	case <-failed:
		sub.Close()
		return nil, fmt.Errorf("subscribe: %w", ErrUnavailable)
	case <-ctx.Done():
		sub.Close()
		return nil, classify("subscribe", ctx.Err())
	}
}

// push queues a frame, unless the queue is full; h.mu is held.
func (s *Subscription) push(b []byte) bool {
	s.mu.Lock()
	if len(s.queue) >= s.max {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	s.Wake()
	return true
}

// Waiting receives a value when frames are queued for Take, when the
// subscription ends, and after Wake: a stream's goroutine can wait on it
// alone, however many things it waits for.
func (s *Subscription) Waiting() <-chan struct{} { return s.waiting }

// Wake makes Waiting receive a value, unless one is already pending.
func (s *Subscription) Wake() {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
}

// Take returns the frames queued, in order, and keeps buf, emptied, to
// queue the next ones in: a stream that passes back what it has written
// swaps two slices instead of allocating.
func (s *Subscription) Take(buf [][]byte) [][]byte {
	clear(buf)
	s.mu.Lock()
	q := s.queue
	s.queue = buf[:0]
	s.mu.Unlock()
	return q
}

// Done is closed when the subscription has ended by itself: its stream fell
// too far behind (Err is ErrSlowSubscriber) or the store is closing. The
// frames queued before are still there to Take.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why Done is closed.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription; the last stream of a channel or pattern to
// leave unsubscribes it.
func (s *Subscription) Close() {
	s.once.Do(func() {
		h := s.h
		h.mu.Lock()
		defer h.mu.Unlock()
		if t := s.t; t != nil {
			t.remove(s, nil)
			h.leave(s.key, t)
		}
	})
}
