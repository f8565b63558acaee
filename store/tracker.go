package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// invalidationChannel is where Redis sends the keys a tracking client must
// drop, when the client redirects its invalidations to a RESP2 connection.
const invalidationChannel = "__redis__:invalidate"

// trackerPing is how often the tracker checks that its connection still
// carries messages; one missed answer ends the near-cache's service until
// the connection is back.
const trackerPing = time.Second

// tracker keeps one connection that receives, from Redis itself, the name of
// every key under the cache's prefix that anyone changes, expires or evicts:
// CLIENT TRACKING in broadcasting mode, redirected to the connection's own
// subscription to __redis__:invalidate. It drives the near-cache: the cache
// serves only while the connection is known to be up, and is emptied each
// time it may have missed a message.
type tracker struct {
	client *redis.Client
	cache  *nearCache
	prefix string
	logger *slog.Logger
}

// errTrackingRefused is Redis refusing CLIENT TRACKING: an old server, one
// without the command (miniredis), or an ACL user without the permission.
type errTrackingRefused struct{ err error }

func (e errTrackingRefused) Error() string { return "CLIENT TRACKING: " + e.err.Error() }
func (e errTrackingRefused) Unwrap() error { return e.err }

// newTracker builds the tracker's client from the options of the main one:
// same server, credentials and TLS, but RESP2, one connection, and tracking
// switched on for every connection it opens, before it subscribes.
func newTracker(base *redis.Options, cache *nearCache, prefix string, logger *slog.Logger) *tracker {
	t := &tracker{cache: cache, prefix: prefix, logger: logger}
	opt := *base
	opt.Protocol = 2
	opt.PoolSize = 1
	opt.MinIdleConns = 0
	opt.MaxIdleConns = 0
	opt.ClientSideCacheConfig = nil
	opt.ClientSideCache = nil
	opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		id, err := cn.ClientID(ctx).Result()
		if err == nil {
			err = cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", "PREFIX", prefix).Err()
		}
		var reply redis.Error
		if errors.As(err, &reply) {
			return errTrackingRefused{err}
		}
		return err
	}
	t.client = redis.NewClient(&opt)
	return t
}

// run follows the invalidations until ctx ends, or for good if Redis refuses
// tracking.
func (t *tracker) run(ctx context.Context) {
	defer t.cache.stop()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := t.follow(ctx)
		served := t.cache.serving()
		t.cache.stop()
		if ctx.Err() != nil {
			return
		}
		var refused errTrackingRefused
		if errors.As(err, &refused) {
			t.logger.Warn("near-cache off: Redis refused client tracking; reads go to Redis", "error", err)
			return
		}
		if served {
			t.logger.Warn("near-cache paused until its invalidation stream is back; reads go to Redis", "error", err)
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// follow subscribes and applies messages until the connection fails or stops
// answering pings.
func (t *tracker) follow(ctx context.Context) error {
	ps := t.client.Subscribe(ctx, invalidationChannel)
	defer ps.Close()
	awaitingPong := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, trackerPing)
		var nerr net.Error
		switch {
		case err != nil && errors.As(err, &nerr) && nerr.Timeout():
			if awaitingPong {
				return errors.New("no answer to ping within " + (2 * trackerPing).String())
			}
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			awaitingPong = true
			continue
		case err != nil:
			// A dropped connection, a refused setup, or a message go-redis
			// cannot parse: Redis sends a flush (FLUSHALL) as a null list.
			// Whichever it was, nothing cached is known good any more.
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			// A fresh connection: tracking was switched on before SUBSCRIBE,
			// so from here every change reaches us.
			if m.Kind == "subscribe" {
				t.cache.start()
				t.logger.Info("near-cache serving", "prefix", t.prefix)
			}
		case *redis.Message:
			if len(m.PayloadSlice) == 0 && m.Payload == "" {
				t.cache.flush("redis")
				continue
			}
			for _, key := range m.PayloadSlice {
				t.invalidate(key)
			}
			if m.Payload != "" {
				t.invalidate(m.Payload)
			}
		case *redis.Pong:
			awaitingPong = false
		}
	}
}

// invalidate drops a key Redis reported; the near-cache knows keys by the
// client's names, without the prefix.
func (t *tracker) invalidate(redisKey string) {
	if key, ok := strings.CutPrefix(redisKey, t.prefix); ok {
		t.cache.invalidate(key, "redis")
	}
}

func (t *tracker) close() error { return t.client.Close() }

// enableNearCache starts the near-cache and the tracker that feeds it, on a
// single Redis server: a cluster would need one tracker per node.
func (s *Store) enableNearCache(base *redis.Options, embedded bool, opts NearCacheOptions, logger *slog.Logger, reg prometheus.Registerer) error {
	c := newNearCache(opts)
	if reg != nil {
		for _, col := range c.collectors() {
			if err := reg.Register(col); err != nil {
				return fmt.Errorf("register near-cache metrics: %w", err)
			}
		}
	}
	s.near = c
	if embedded {
		// miniredis has no CLIENT TRACKING; the cache stays empty.
		logger.Info("near-cache off: the embedded in-memory Redis has no client tracking")
		return nil
	}
	t := newTracker(base, c, s.keys.cache(""), logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.run(ctx)
	}()
	s.closers = append([]func() error{func() error {
		cancel()
		err := t.close()
		<-done
		return err
	}}, s.closers...)
	return nil
}
