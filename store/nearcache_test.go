package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

func testNearCache(opts NearCacheOptions) *nearCache {
	c := newNearCache(opts)
	c.start()
	return c
}

// put fills key as a read that met no invalidation would.
func (c *nearCache) put(key string, value []byte, ttl time.Duration) {
	if token := c.reserve(key); token != 0 {
		c.fill(key, token, value, ETag(value), c.now(), ttl)
	}
}

func TestNearCacheStaysWithinItsLimits(t *testing.T) {
	value := []byte(`{"a":"0123456789012345678901234567890123456789"}`)
	tests := []struct {
		name       string
		opts       NearCacheOptions
		maxEntries int
		maxBytes   int64
	}{
		{"entries", NearCacheOptions{MaxEntries: 1600, MaxBytes: 1 << 30, MaxStaleness: time.Minute}, 1600, 1 << 30},
		{"bytes", NearCacheOptions{MaxEntries: 1 << 30, MaxBytes: 256 << 10, MaxStaleness: time.Minute}, 1 << 30, 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testNearCache(tt.opts)
			for i := range 20_000 {
				key := fmt.Sprintf("cache:k%d", i)
				c.put(key, value, -1)
				if i%7 == 0 {
					c.get(key) // some values are read, and get a second chance
				}
			}
			entries, bytes := c.size()
			if entries > tt.maxEntries || bytes > tt.maxBytes {
				t.Errorf("after 20,000 values: %d entries, %d bytes; want at most %d and %d", entries, bytes, tt.maxEntries, tt.maxBytes)
			}
			if entries < tt.maxEntries/2 && bytes < tt.maxBytes/2 {
				t.Errorf("after 20,000 values: %d entries, %d bytes; the cache evicts far more than its limits ask", entries, bytes)
			}
			if v, _, ok := c.get("cache:k19999"); !ok || string(v) != string(value) {
				t.Errorf("the last value stored is not served")
			}
		})
	}
	big := testNearCache(NearCacheOptions{MaxEntries: 100, MaxBytes: 16 << 10, MaxStaleness: time.Minute})
	big.put("cache:big", make([]byte, 2<<10), -1) // more than a shard's share of 16 KiB
	if _, _, ok := big.get("cache:big"); ok {
		t.Errorf("a value larger than a shard's share of NEAR_CACHE_MAX_BYTES was kept")
	}
}

func TestNearCacheServesOnlyFreshValues(t *testing.T) {
	clock := redistest.NewClock()
	c := testNearCache(NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Second, Now: clock.Now})
	c.put("cache:ttl", []byte("1"), 200*time.Millisecond)
	c.put("cache:none", []byte("2"), -1)
	for _, k := range []string{"cache:ttl", "cache:none"} {
		if _, _, ok := c.get(k); !ok {
			t.Fatalf("%s is not served right after it was stored", k)
		}
	}
	clock.Add(199 * time.Millisecond)
	if _, _, ok := c.get("cache:ttl"); !ok {
		t.Errorf("cache:ttl is not served 1ms before its TTL ends")
	}
	clock.Add(time.Millisecond)
	if _, _, ok := c.get("cache:ttl"); ok {
		t.Errorf("cache:ttl is served once its TTL ended")
	}
	clock.Add(799 * time.Millisecond)
	if _, _, ok := c.get("cache:none"); !ok {
		t.Errorf("cache:none is not served within NEAR_CACHE_MAX_STALENESS")
	}
	clock.Add(time.Millisecond)
	if _, _, ok := c.get("cache:none"); ok {
		t.Errorf("cache:none is served after NEAR_CACHE_MAX_STALENESS")
	}
}

// A read that an invalidation overtakes does not keep its answer, which may
// predate the change; nor does one overtaken by a reset of the stream.
func TestNearCacheReadsLoseToInvalidations(t *testing.T) {
	c := testNearCache(NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Minute})
	for _, invalidate := range []func(){
		func() { c.invalidate("cache:k", "redis") },
		func() { c.invalidate("cache:k", "write") },
		func() { c.flush("redis") },
		func() { c.stop(); c.start() },
	} {
		token := c.reserve("cache:k")
		if token == 0 {
			t.Fatalf("reserve: no token for a key nobody reads")
		}
		if again := c.reserve("cache:k"); again != 0 {
			t.Errorf("a second reserve of a key being read got token %d, want 0", again)
		}
		invalidate()
		c.fill("cache:k", token, []byte("old"), ETag([]byte("old")), c.now(), -1)
		if v, _, ok := c.get("cache:k"); ok {
			t.Errorf("a read overtaken by an invalidation kept %s", v)
		}
	}
	c.put("cache:k", []byte("1"), -1)
	c.stop()
	if c.serving() {
		t.Errorf("serving after stop")
	}
	c.start()
	if _, _, ok := c.get("cache:k"); ok {
		t.Errorf("a value stored before the stream was interrupted is served after it resumed")
	}
}

// waitServing waits until the near-cache of s serves, or fails the test.
func waitServing(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.near.serving() {
		if time.Now().After(deadline) {
			t.Fatalf("the near-cache did not serve within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Redis forgets the keys a connection read once it closes, and reports none
// of their changes: when a connection of the near-cache's reader closes on
// the gateway's side (here, after a lost reply), the values read there leave
// the cache, though the invalidation connection stays up and the reader's
// next connection answers its pings.
func TestNearCacheEmptiesWhenItsReaderCloses(t *testing.T) {
	srv := redistest.Start(t)
	f := redistest.Forward(t, srv.Addr())
	s := newTestStore(t, Options{URL: "redis://" + f.Addr(), MaxRetries: -1,
		NearCache: &NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Hour}})
	waitServing(t, s)
	ctx := context.Background()
	if _, err := s.PutCache(ctx, "k", []byte("1"), 0, Condition{}); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
	for range 2 {
		if v, _, err := s.GetCacheTagged(ctx, "k"); err != nil || string(v) != "1" {
			t.Fatalf("GetCacheTagged(k) = %s, %v; want 1", v, err)
		}
	}
	if _, _, ok := s.near.get("k"); !ok {
		t.Fatalf("k is not in the near-cache after two reads")
	}

	f.CutReplyTo("pttl") // of the next value the reader reads
	_, _, _ = s.GetCacheTagged(ctx, "other")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok := s.near.get("k"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("k is still in the near-cache 10s after the connection it was read on closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Client().Set(ctx, "cache:k", "2", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, _, err := s.GetCacheTagged(ctx, "k"); err != nil || string(v) != "2" {
		t.Errorf("GetCacheTagged(k) after another client wrote 2 = %s, %v; want 2", v, err)
	}
}

// Redis is asked to report only the keys the near-cache read: a write of a
// key nobody read through the gateway puts nothing in Redis's tracking
// table, so it costs no invalidation message. (Broadcasting mode, which
// reports every write under the prefix, shows as a tracked prefix.)
func TestNearCacheTracksOnlyWhatItReads(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL(),
		NearCache: &NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Hour}})
	waitServing(t, s)
	ctx := context.Background()
	tracking := func() (keys, prefixes string) {
		t.Helper()
		info, err := srv.Client().Info(ctx, "stats").Result()
		if err != nil {
			t.Fatalf("INFO stats: %v", err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			name, v, _ := strings.Cut(line, ":")
			switch name {
			case "tracking_total_keys":
				keys = v
			case "tracking_total_prefixes":
				prefixes = v
			}
		}
		return keys, prefixes
	}
	for i := range 100 {
		if _, err := s.PutCache(ctx, fmt.Sprintf("w%d", i), []byte("1"), 0, Condition{}); err != nil {
			t.Fatalf("PutCache: %v", err)
		}
	}
	if keys, prefixes := tracking(); keys != "0" || prefixes != "0" {
		t.Errorf("after 100 writes of keys nobody read: tracking_total_keys %s, tracking_total_prefixes %s; want 0 and 0", keys, prefixes)
	}
	for range 2 {
		if _, _, err := s.GetCacheTagged(ctx, "w1"); err != nil {
			t.Fatalf("GetCacheTagged(w1): %v", err)
		}
	}
	if keys, _ := tracking(); keys != "1" {
		t.Errorf("after reading one key: tracking_total_keys %s, want 1", keys)
	}
	if _, err := s.PutCache(ctx, "w1", []byte("2"), 0, Condition{}); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
	if keys, _ := tracking(); keys != "0" {
		t.Errorf("after that key was written: tracking_total_keys %s, want 0: Redis reports a change once", keys)
	}
}

// A user whom Redis refuses CLIENT TRACKING gets no near-cache, and reads
// that go to Redis: the refusal comes on the reading connection, after the
// invalidation connection has subscribed.
func TestNearCacheOffWhenTrackingIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "gateway", "on", ">secret", "~*", "&*", "+@all", "-client|tracking").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s := newTestStore(t, Options{URL: "redis://gateway:secret@" + srv.Addr(), Logger: logger,
		NearCache: &NearCacheOptions{MaxEntries: 100, MaxBytes: 1 << 20, MaxStaleness: time.Hour}})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		off := strings.Contains(logs.String(), "near-cache off: Redis refused client tracking")
		mu.Unlock()
		if off {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("no log line saying the near-cache is off within 10s:\n%s", logs.String())
		}
	}
	if s.near.serving() {
		t.Errorf("the near-cache serves though Redis refused tracking")
	}
	if _, err := s.PutCache(ctx, "k", []byte("1"), 0, Condition{}); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
	if v, _, err := s.GetCacheTagged(ctx, "k"); err != nil || string(v) != "1" {
		t.Errorf("GetCacheTagged(k) = %s, %v; want 1", v, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
