package store

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NearCacheOptions size the near-cache, which keeps the values read by GET
// /cache/{key} in the gateway's memory.
type NearCacheOptions struct {
	MaxEntries   int           // at most this many values
	MaxBytes     int64         // at most about this much memory, values, keys and bookkeeping
	MaxStaleness time.Duration // a value is read from Redis again at least this often

	// Now is the clock TTLs and staleness are measured on; nil is
	// time.Now. Tests move it instead of waiting.
	Now func() time.Time
}

// nearCache holds cache values by key (the client's name, without the
// prefixes of the Redis key), with their ETags and the time
// their Redis TTL ends. Entries are dropped when the gateway writes the key
// (before the write is acknowledged), when Redis reports that anyone else
// changed it (see tracker), when their TTL or MaxStaleness passes, and all
// at once whenever the stream of invalidations from Redis may have missed
// something. It serves only while that stream is known to be complete.
//
// A read that misses reserves the key before it asks Redis; an invalidation
// that arrives meanwhile removes the reservation, and the read's answer, which
// may predate the change, is then not kept. That is what makes a value
// written by anyone, once invalidated, never come back from the cache.
type nearCache struct {
	shards       [nearCacheShards]nearShard
	seed         maphash.Seed
	maxStaleness time.Duration
	clock        func() time.Time
	epoch        time.Time // entries are timed from here, on clock
	live         atomic.Bool
	tokens       atomic.Uint64
	metrics      nearCacheMetrics
}

// nearCacheShards spreads the keys over locks, so concurrent requests for
// different keys rarely wait for each other.
const nearCacheShards = 16

// entryOverhead estimates the memory of an entry beyond its key, value and
// ETag: the entry itself and its slot in the map.
const entryOverhead = 160

type nearShard struct {
	mu         sync.RWMutex
	entries    map[string]*nearEntry
	bytes      int64
	maxEntries int
	maxBytes   int64
}

// nearEntry is a value, or while token is set, a reservation for one.
type nearEntry struct {
	value   []byte
	etag    string
	expires time.Duration // on the cache's clock; 0 = no TTL
	stale   time.Duration // on the cache's clock: read it from Redis again from then on
	token   uint64        // non-zero while the value is being read from Redis
	size    int64
	used    atomic.Bool // read since the last eviction sweep passed it
}

// fresh reports whether a value may still be served at now.
func (e *nearEntry) fresh(now time.Duration) bool {
	return now < e.stale && (e.expires == 0 || now < e.expires)
}

type nearCacheMetrics struct {
	hits, misses, evictions prometheus.Counter
	invalidations           *prometheus.CounterVec
}

func newNearCache(opts NearCacheOptions) *nearCache {
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	c := &nearCache{seed: maphash.MakeSeed(), maxStaleness: opts.MaxStaleness, clock: clock, epoch: clock()}
	for i := range c.shards {
		c.shards[i] = nearShard{
			entries:    map[string]*nearEntry{},
			maxEntries: max(1, opts.MaxEntries/nearCacheShards),
			maxBytes:   max(1, opts.MaxBytes/nearCacheShards),
		}
	}
	c.metrics = nearCacheMetrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "hits_total",
			Help: "GET /cache/{key} answered from the gateway's memory.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "misses_total",
			Help: "GET /cache/{key} read from Redis while the near-cache was serving.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "evictions_total",
			Help: "Values dropped to stay within NEAR_CACHE_MAX_ENTRIES and NEAR_CACHE_MAX_BYTES.",
		}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "invalidations_total",
			Help: "Values dropped because their key may have changed: write (by this gateway), " +
				"redis (Redis reported a change), reset (the invalidation stream was interrupted).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{"write", "redis", "reset"} {
		c.metrics.invalidations.WithLabelValues(reason) // at zero from the start
	}
	return c
}

func (c *nearCache) collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{
		m.hits, m.misses, m.evictions, m.invalidations,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "entries",
			Help: "Values in the near-cache.",
		}, func() float64 { n, _ := c.size(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "size_bytes",
			Help: "Estimated memory of the near-cache's values, keys and bookkeeping.",
		}, func() float64 { _, b := c.size(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway", Subsystem: "near_cache", Name: "serving",
			Help: "1 while invalidations from Redis are known to arrive and the near-cache answers reads.",
		}, func() float64 {
			if c.live.Load() {
				return 1
			}
			return 0
		}),
	}
}

func (c *nearCache) now() time.Duration { return c.clock().Sub(c.epoch) }

func (c *nearCache) shard(key string) *nearShard {
	return &c.shards[maphash.String(c.seed, key)%nearCacheShards]
}

// serving reports whether reads may use the cache.
func (c *nearCache) serving() bool { return c.live.Load() }

// get returns a value and its ETag. The value is shared: callers must not
// change it.
func (c *nearCache) get(key string) ([]byte, string, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e, ok := s.entries[key]
	if !ok || e.token != 0 {
		s.mu.RUnlock()
		return nil, "", false
	}
	if !e.fresh(c.now()) {
		s.mu.RUnlock()
		s.mu.Lock()
		if s.entries[key] == e {
			s.remove(key, e)
		}
		s.mu.Unlock()
		return nil, "", false
	}
	value, etag := e.value, e.etag
	if !e.used.Load() {
		e.used.Store(true)
	}
	s.mu.RUnlock()
	return value, etag, true
}

// reserve claims key for a read from Redis and returns its token, or 0 when
// another read holds it, or filled it since get missed.
func (c *nearCache) reserve(key string) uint64 {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		if e.token != 0 || e.fresh(c.now()) {
			return 0
		}
		s.remove(key, e)
	}
	token := c.tokens.Add(1)
	e := &nearEntry{token: token, size: int64(len(key)) + entryOverhead}
	s.entries[key] = e
	s.bytes += e.size
	return token
}

// fill keeps the value read under token, unless an invalidation removed the
// reservation meanwhile. sent is when the read was sent; ttl is the key's
// TTL that Redis reported (negative: none).
func (c *nearCache) fill(key string, token uint64, value []byte, etag string, sent, ttl time.Duration) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.token != token {
		return
	}
	size := int64(len(key)+len(value)+len(etag)) + entryOverhead
	if size > s.maxBytes {
		s.remove(key, e)
		return
	}
	e.value, e.etag, e.token = value, etag, 0
	// Timed from when the read was sent, so both end no later than they do
	// in Redis.
	e.stale = sent + c.maxStaleness
	if ttl >= 0 {
		e.expires = sent + ttl
	}
	s.bytes += size - e.size
	e.size = size
	c.metrics.evictions.Add(float64(s.evict(e)))
}

// cancel gives up a reservation, when the read failed or found no value.
func (c *nearCache) cancel(key string, token uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && e.token == token {
		s.remove(key, e)
	}
}

// invalidate drops key, value or reservation.
func (c *nearCache) invalidate(key, reason string) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.entries[key]
	if ok {
		s.remove(key, e)
	}
	s.mu.Unlock()
	if ok && e.token == 0 {
		c.metrics.invalidations.WithLabelValues(reason).Inc()
	}
}

// flush drops everything, reservations included.
func (c *nearCache) flush(reason string) {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range s.entries {
			if e.token == 0 {
				n++
			}
		}
		clear(s.entries)
		s.bytes = 0
		s.mu.Unlock()
	}
	if n > 0 {
		c.metrics.invalidations.WithLabelValues(reason).Add(float64(n))
	}
}

// start serves again once the invalidation stream is complete from here on;
// stop stops serving when it may not be. Both flush, so nothing read before
// the stream was known complete is ever served.
func (c *nearCache) start() {
	c.flush("reset")
	c.live.Store(true)
}

func (c *nearCache) stop() {
	c.live.Store(false)
	c.flush("reset")
}

func (c *nearCache) size() (entries int, bytes int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entries += len(s.entries)
		bytes += s.bytes
		s.mu.RUnlock()
	}
	return entries, bytes
}

func (s *nearShard) remove(key string, e *nearEntry) {
	delete(s.entries, key)
	s.bytes -= e.size
}

// evict drops values until the shard fits its limits again, giving every
// value read since the last pass a second chance; keep is never dropped, nor
// is a reservation. It returns how many it dropped.
func (s *nearShard) evict(keep *nearEntry) int {
	dropped := 0
	for pass := 0; pass < 2 && (len(s.entries) > s.maxEntries || s.bytes > s.maxBytes); pass++ {
		for key, e := range s.entries {
			if len(s.entries) <= s.maxEntries && s.bytes <= s.maxBytes {
				break
			}
			if e == keep || e.token != 0 {
				continue
			}
			if e.used.Load() {
				e.used.Store(false)
				continue
			}
			s.remove(key, e)
			dropped++
		}
	}
	return dropped
}
