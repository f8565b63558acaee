package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// leaseWake tells the requests waiting on a leased cache key, in this
// gateway, that the key was filled or its lease withdrawn, so they look again
// at once instead of polling. Gateways publish the client's key on one
// channel (keys.cacheLeaseChannel); each gateway holds one subscriber
// connection, opened at the first wait, and fans the messages out in memory.
//
// A message missed while that connection reconnects costs only latency:
// waiters also look again when the lease they wait on ends.
type leaseWake struct {
	rdb     redis.UniversalClient
	channel string

	mu       sync.Mutex
	ps       *redis.PubSub // nil until the first wait, and after a failed start
	waiters  map[string]map[chan struct{}]struct{}
	closed   bool
	loopDone chan struct{}
}

func newLeaseWake(rdb redis.UniversalClient, channel string) *leaseWake {
	return &leaseWake{rdb: rdb, channel: channel, waiters: map[string]map[chan struct{}]struct{}{}}
}

// watch registers interest in key and returns a channel that receives a
// value whenever key is announced, and the function that ends the watch. It
// subscribes first when no subscription is up, and returns only once Redis
// confirmed it, so no announcement made after watch returns is missed.
func (w *leaseWake) watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	if err := w.start(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	set := w.waiters[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.waiters[key] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if set := w.waiters[key]; set != nil {
			delete(set, ch)
			if len(set) == 0 {
				delete(w.waiters, key)
			}
		}
	}, nil
}

// start opens the subscription unless it is up. Concurrent first waits wait
// for one subscription, under the lock: it takes one round trip.
func (w *leaseWake) start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("lease wake: %w", ErrUnavailable)
	}
	if w.ps != nil {
		return nil
	}
	ps := w.rdb.Subscribe(ctx, w.channel)
	if _, err := ps.Receive(ctx); err != nil { // the confirmation
		_ = ps.Close()
		return classify("subscribe to lease wake-ups", err)
	}
	w.ps = ps
	w.loopDone = make(chan struct{})
	go w.loop(ps.Channel(), w.loopDone)
	return nil
}

// loop hands each announcement to the waiters of its key; a waiter that has
// one pending already needs no second.
func (w *leaseWake) loop(in <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range in {
		w.mu.Lock()
		for ch := range w.waiters[m.Payload] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		w.mu.Unlock()
	}
}

func (w *leaseWake) close() error {
	w.mu.Lock()
	w.closed = true
	ps, done := w.ps, w.loopDone
	w.ps = nil
	w.mu.Unlock()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-done
	return err
}
