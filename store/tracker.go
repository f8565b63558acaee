package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// invalidationChannel is where Redis sends the keys a tracking client must
// drop, when the client redirects its invalidations to a RESP2 connection.
const invalidationChannel = "__redis__:invalidate"

// trackerPing is how often the tracker checks that its connections still
// work; one missed answer ends the near-cache's service until they are back.
const trackerPing = time.Second

// tracker keeps the near-cache's two connections to Redis:
//
//   - the invalidation connection, subscribed to __redis__:invalidate, on
//     which Redis reports the keys to drop;
//   - the reader, one connection with CLIENT TRACKING on in Redis's default
//     mode, redirected to the invalidation connection. Redis remembers each
//     key read on it and reports that key once, at its next change; the
//     values the near-cache keeps are read there.
//
// So Redis reports only the changes of keys the near-cache may hold: a write
// of a key nobody read through this gateway costs Redis nothing more, where
// broadcasting mode would report every write under the cache's prefix.
//
// The cache serves only while both connections are known to be up, and is
// emptied each time it may have missed a message: when the invalidation
// connection fails or answers no ping, and when the reader's connection
// closes, since Redis forgets what a closed connection read. The reader
// belongs to one invalidation connection (it names that connection's id), and
// is replaced with it.
type tracker struct {
	client *redis.Client // the invalidation connection's
	base   redis.Options // the reader's options, but for the redirect
	id     atomic.Int64  // the invalidation connection's CLIENT ID
	reader atomic.Pointer[reader]
	live   atomic.Bool // between up and down
	cache  *nearCache
	prefix string
	logger *slog.Logger

	// up runs once both connections are up, down when one of them may have
	// missed a message: on one server they start and stop the cache; on a
	// cluster, clusterTracker decides.
	up, down func()
}

// errTrackingRefused is Redis refusing CLIENT TRACKING: an old server, one
// without the command (miniredis), or an ACL user without the permission.
type errTrackingRefused struct{ err error }

func (e errTrackingRefused) Error() string { return "CLIENT TRACKING: " + e.err.Error() }
func (e errTrackingRefused) Unwrap() error { return e.err }

// refused marks a reply error of the connection's setup as a refusal,
// unless it says that Redis is busy and will do better later.
func refused(err error) error {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return err
	}
	for _, transient := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"} {
		if strings.HasPrefix(reply.Error(), transient) {
			return err
		}
	}
	return errTrackingRefused{err}
}

// newTracker builds the tracker's clients from the options of the main one:
// same server, credentials and TLS, but RESP2 and one connection each.
func newTracker(base *redis.Options, cache *nearCache, prefix string, logger *slog.Logger) *tracker {
	t := &tracker{cache: cache, prefix: prefix, logger: logger, up: cache.start, down: cache.stop}
	opt := *base
	opt.Protocol = 2
	opt.PoolSize = 1
	opt.MinIdleConns = 0
	opt.MaxIdleConns = 0
	opt.ClientSideCacheConfig = nil
	opt.ClientSideCache = nil
	t.base = opt
	opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return refused(err)
		}
		t.id.Store(id)
		return nil
	}
	t.client = redis.NewClient(&opt)
	return t
}

// reader is the connection whose reads Redis tracks for the near-cache, with
// an auto-pipeliner of its own so that concurrent misses share its round
// trips.
type reader struct {
	client *redis.Client
	ap     *redis.AutoPipeliner
}

// newReader builds the reader that sends its invalidations to connection id.
// Every connection it opens turns tracking on before its first read; when one
// closes, readerClosed runs.
func (t *tracker) newReader(id int64) (*reader, error) {
	opt := t.base
	opt.MaxRetries = -1 // a failed read goes to the main client instead
	dial := opt.Dialer
	r := &reader{}
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &watchedConn{Conn: c, closed: func() { t.readerClosed(r) }}, nil
	}
	opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		return refused(cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id).Err())
	}
	r.client = redis.NewClient(&opt)
	ap, err := r.client.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	if err != nil {
		_ = r.client.Close()
		return nil, fmt.Errorf("near-cache reader: %w", err)
	}
	r.ap = ap
	return r, nil
}

// ping checks that the reader's connection is up, with tracking on: it
// opens one when there is none.
func (r *reader) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*trackerPing)
	defer cancel()
	cmd := redis.NewStatusCmd(ctx, "ping")
	if err := r.ap.Submit(ctx, cmd).WaitContext(ctx); err != nil {
		return err
	}
	return cmd.Err()
}

func (r *reader) close() {
	_ = r.ap.Close()
	_ = r.client.Close()
}

// readerClosed empties the cache when a connection of the current reader
// closes: Redis no longer reports changes to the keys read on it. A retired
// reader's connections held nothing the cache still keeps.
func (t *tracker) readerClosed(r *reader) {
	if t.reader.Load() == r {
		t.cache.flush("reset")
	}
}

// watchedConn tells when go-redis closes a connection, for whatever reason:
// an error, a timeout, the pool's idle reaper.
type watchedConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.closed)
	return err
}

// current is the reader to read values for the near-cache on, or nil while
// there is none.
func (t *tracker) current() *reader { return t.reader.Load() }

// nearReaders finds the reader to read a key on for the near-cache: a
// tracker on one server, a clusterTracker on a cluster.
type nearReaders interface {
	// readerFor is the reader of the node that serves key (as Redis names
	// it), or nil when there is none to read on.
	readerFor(ctx context.Context, key string) *reader
}

// readerFor is the reader to read key on: on one server, the one there is.
func (t *tracker) readerFor(context.Context, string) *reader { return t.current() }

// retire stops reading on the current reader. Its commands in flight fail,
// and their callers read from the main client instead.
func (t *tracker) retire() {
	if r := t.reader.Swap(nil); r != nil {
		go r.close()
	}
}

// run follows the invalidations until ctx ends, or for good if Redis refuses
// tracking.
func (t *tracker) run(ctx context.Context) {
	defer t.stop()
	defer func() {
		if r := t.reader.Swap(nil); r != nil {
			r.close()
		}
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := t.follow(ctx)
		served := t.live.Load()
		t.stop()
		t.retire()
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

// follow subscribes, starts a reader redirected to the subscription, and
// applies messages until a connection fails or stops answering pings.
func (t *tracker) follow(ctx context.Context) error {
	ps := t.client.Subscribe(ctx, invalidationChannel)
	defer ps.Close()
	awaitingPong := false
	var pinged time.Time // when the reader last answered
	for {
		if r := t.current(); r != nil && time.Since(pinged) >= trackerPing {
			// Also while messages keep the subscription busy: a reader
			// connection that died unnoticed holds keys Redis no longer
			// tracks.
			if err := r.ping(ctx); err != nil {
				return fmt.Errorf("near-cache reader: %w", err)
			}
			pinged = time.Now()
		}
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
			// A fresh connection: from here on it receives what the
			// reader's connections redirect to it.
			if m.Kind == "subscribe" {
				if err := t.startReader(ctx); err != nil {
					return err
				}
				pinged = time.Now()
				t.live.Store(true)
				t.up()
				t.logger.Info("near-cache following invalidations", "addr", t.base.Addr, "prefix", t.prefix)
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

// stop runs down and marks the tracker down.
func (t *tracker) stop() {
	t.live.Store(false)
	t.down()
}

// startReader replaces the reader with one redirected to the subscribed
// connection, and checks that Redis accepts its tracking.
func (t *tracker) startReader(ctx context.Context) error {
	t.retire()
	r, err := t.newReader(t.id.Load())
	if err != nil {
		return err
	}
	if err := r.ping(ctx); err != nil {
		r.close()
		// A reply error to the first PING is the connection's setup
		// refused: go-redis passes OnConnect's error on unwrapped.
		return refused(err)
	}
	t.reader.Store(r)
	return nil
}

// invalidate drops a key Redis reported; the near-cache knows keys by the
// client's names, without the prefix.
func (t *tracker) invalidate(redisKey string) {
	if key, ok := strings.CutPrefix(redisKey, t.prefix); ok {
		t.cache.invalidate(key, "redis")
	}
}

func (t *tracker) close() error { return t.client.Close() }

// enableNearCache starts the near-cache and what feeds it: a tracker on a
// single server, a clusterTracker on a cluster (cc non-nil), whose client
// routes the reads.
func (s *Store) enableNearCache(base *redis.Options, cc *redis.ClusterClient, embedded bool, opts NearCacheOptions, logger *slog.Logger, reg prometheus.Registerer) error {
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
	var run func(context.Context)
	stop := func() error { return nil }
	if cc != nil {
		ct := newClusterTracker(cc, c, s.keys.cache(""), logger)
		s.readers, run = ct, ct.run
	} else {
		t := newTracker(base, c, s.keys.cache(""), logger)
		s.readers, run, stop = t, t.run, t.close
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	s.closers = append([]func() error{func() error {
		cancel()
		err := stop()
		<-done
		return err
	}}, s.closers...)
	return nil
}
