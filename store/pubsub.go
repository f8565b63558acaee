package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Message is one message a subscription received.
type Message struct {
	Pattern string // the pattern that matched; empty for channel subscriptions
	Channel string
	Payload string
}

// Subscription is one Redis subscription on a connection of its own, which
// Close gives back at once.
type Subscription struct {
	ps    *redis.PubSub
	count int
	msgs  chan Message
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// Publish sends message to channel and returns how many subscribers got it.
// On Redis Cluster every node delivers the message but counts only its own
// subscribers; go-redis subscribes on the primary of the channel's slot, so
// the message goes there, and the count includes the gateway's streams.
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

// Subscribe subscribes to channel. ctx bounds only the subscribing; the
// subscription lasts until Close.
func (s *Store) Subscribe(ctx context.Context, channel string) (*Subscription, error) {
	return subscribe(ctx, s.rdb.Subscribe(ctx), func(ps *redis.PubSub) error { return ps.Subscribe(ctx, channel) })
}

// PSubscribe subscribes to the channels matching pattern.
func (s *Store) PSubscribe(ctx context.Context, pattern string) (*Subscription, error) {
	return subscribe(ctx, s.rdb.PSubscribe(ctx), func(ps *redis.PubSub) error { return ps.PSubscribe(ctx, pattern) })
}

func subscribe(ctx context.Context, ps *redis.PubSub, sub func(*redis.PubSub) error) (*Subscription, error) {
	fail := func(err error) (*Subscription, error) {
		_ = ps.Close()
		return nil, classify("subscribe", err)
	}
	if err := sub(ps); err != nil {
		return fail(err)
	}
	// Wait for Redis to confirm, so a stream starts only once messages can
	// reach it, and a Redis that is down is an error rather than silence.
	v, err := ps.Receive(ctx)
	if err != nil {
		return fail(err)
	}
	confirmed, ok := v.(*redis.Subscription)
	if !ok {
		return fail(fmt.Errorf("unexpected reply %T to subscribe", v))
	}
	s := &Subscription{ps: ps, count: confirmed.Count, msgs: make(chan Message), done: make(chan struct{})}
	// go-redis pings every subscription's connection every 3 s by default, to
	// find and replace dead ones; with a thousand streams that is a lot of
	// pings for an answer that is rarely urgent.
	in := ps.Channel(redis.WithChannelHealthCheckInterval(15 * time.Second))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.msgs)
		for m := range in {
			select {
			case s.msgs <- Message{Pattern: m.Pattern, Channel: m.Channel, Payload: m.Payload}:
			case <-s.done:
				// Keep reading until go-redis closes its channel, so its
				// goroutine is never left waiting to hand over a message.
				for range in {
				}
				return
			}
		}
	}()
	return s, nil
}

// Count is the number of subscriptions of the connection, as Redis confirmed
// it: 1.
func (s *Subscription) Count() int { return s.count }

// Messages delivers what the subscription receives; it is closed by Close.
func (s *Subscription) Messages() <-chan Message { return s.msgs }

// Close ends the subscription and closes its Redis connection.
func (s *Subscription) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ps.Close()
		s.wg.Wait()
	})
	return err
}
