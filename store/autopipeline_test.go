package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// Batched and unbatched stores give the same answers, errors included, on
// one server and on a cluster.
func TestBatchedAndPlainAgree(t *testing.T) {
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t)
		batchedAndPlainAgree(t, srv.Client(), Options{URL: srv.URL()})
	})
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a cluster")
		}
		c := redistest.StartCluster(t, redistest.ClusterOptions{})
		batchedAndPlainAgree(t, c.Client(), Options{ClusterNodes: c.Addrs()[:1]})
	})
}

func batchedAndPlainAgree(t *testing.T, rdb redis.UniversalClient, opts Options) {
	for _, k := range []string{"a:cache:hash", "b:cache:hash"} {
		if err := rdb.HSet(context.Background(), k, "f", "v").Err(); err != nil {
			t.Fatalf("HSET: %v", err)
		}
	}
	run := func(s *Store) []string {
		ctx := context.Background()
		var got []string
		note := func(v any, err error) { got = append(got, fmt.Sprintf("%v %v", v, kind(err))) }
		note(s.PutCache(ctx, "k", []byte(`{"a":1}`), time.Minute, Condition{}))
		note(s.PutCache(ctx, "k", []byte(`{"a":2}`), time.Minute, Condition{}))
		note(s.PutCache(ctx, "k", []byte(`3`), time.Minute, Condition{IfAbsent: true}))
		note(s.PutCache(ctx, "new", []byte(`3`), time.Minute, Condition{IfPresent: true}))
		note(s.PutCache(ctx, "k", []byte(`4`), time.Minute, Condition{IfDigest: []string{Digest([]byte(`{"a":2}`))}}))
		b, err := s.GetCache(ctx, "k")
		note(string(b), err)
		note(s.GetCache(ctx, "missing"))
		note(s.GetCache(ctx, "hash"))
		d, err := s.CacheTTL(ctx, "k")
		note(d > 50*time.Second && d <= time.Minute, err)
		note(nil, s.ExpireCache(ctx, "missing", time.Minute))
		note(s.IncrCache(ctx, "n", 5, time.Minute))
		note(s.IncrCache(ctx, "k", 1, time.Minute))
		note(nil, s.DeleteCache(ctx, "k"))
		note(nil, s.DeleteCache(ctx, "k"))
		note(s.PutSession(ctx, "s", []byte(`{"u":1}`), time.Minute))
		b, err = s.GetSession(ctx, "s", true)
		note(string(b), err)
		w, err := s.CountFixed(ctx, "r", 2, time.Minute)
		note(w.Count, err)
		note(nil, s.ResetRateLimit(ctx, "r"))
		return got
	}
	batchedOpts, plainOpts := opts, opts
	batchedOpts.KeyPrefix = "a:"
	plainOpts.KeyPrefix, plainOpts.NoAutoPipeline = "b:", true
	batched, plain := newTestStore(t, batchedOpts), newTestStore(t, plainOpts)
	if batched.ap == nil || plain.ap != nil {
		t.Fatalf("auto-pipelining: batched store has it %v, plain store has it %v; want true, false", batched.ap != nil, plain.ap != nil)
	}
	got, want := run(batched), run(plain)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: batched = %q, plain = %q", i, got[i], want[i])
		}
	}
}

// Concurrent callers share batches, and each gets its own reply.
func TestBatchedCallersGetTheirOwnReplies(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("w%d", w)
				want := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				if _, err := s.PutCache(ctx, key, []byte(want), time.Minute, Condition{}); err != nil {
					t.Errorf("PutCache(%s): %v", key, err)
					return
				}
				got, err := s.GetCache(ctx, key)
				if err != nil || string(got) != want {
					t.Errorf("GetCache(%s) = %s, %v; want %s", key, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A batched command answers at its caller's deadline even when Redis does
// not, like an unbatched one.
func TestBatchedCommandKeepsTheCallersDeadline(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	if _, err := s.PutCache(ctx, "k", []byte("1"), time.Minute, Condition{}); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
	if err := srv.Client().Do(ctx, "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.GetCache(short, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetCache while Redis is paused: err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("GetCache returned after %v, want it at the 200ms deadline", d)
	}
}

// Close does not hang on a Redis that accepts connections and never answers,
// though batched commands are still waiting for it.
func TestCloseDoesNotWaitForAHungRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	s, err := New(Options{URL: "redis://" + ln.Addr().String()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.GetCache(ctx, "k"); err == nil {
		t.Fatalf("GetCache against a Redis that never answers succeeded")
	}
	start := time.Now()
	_ = s.Close()
	if d := time.Since(start); d > closeTimeout+time.Second {
		t.Errorf("Close took %v, want at most about %v", d, closeTimeout)
	}
}

// A failed command is counted under its name; a missing key, or a script
// not yet loaded, is not a failure; a command that could not connect also
// counts as "dial".
func TestCommandErrorsAreCounted(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().HSet(ctx, "cache:hash", "f", "v").Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := newTestStore(t, Options{URL: srv.URL(), Registry: reg, NoAutoPipeline: !batched})
			_, _ = s.GetCache(ctx, "missing")
			_, _ = s.GetCache(ctx, "hash")
			_, _ = s.GetCacheMany(ctx, []string{"hash", "missing"})
			_, _ = s.IncrCache(ctx, "n", 1, time.Minute) // its first EVALSHA meets NOSCRIPT, which is no failure
			_, _ = s.Command(ctx, Policy{}, []string{"GET", "cache:hash"})
			_, _ = s.Command(ctx, Policy{}, []string{"GET", "cache:missing"})
			// Only the commands this test sends: go-redis's own set-up of a
			// connection may fail (CLIENT MAINT_NOTIFICATIONS on Redis 7.0).
			want := map[string]float64{"get": 3}
			if got := commandErrors(t, reg, "get", "evalsha", "eval"); !equalCounts(got, want) {
				t.Errorf("redis_gateway_redis_command_errors_total = %v, want %v", got, want)
			}

			down := prometheus.NewRegistry()
			refused := newTestStore(t, Options{URL: "redis://127.0.0.1:" + fmt.Sprint(redistest.FreePort(t)), Registry: down,
				NoAutoPipeline: !batched, MaxRetries: -1})
			_, _ = refused.GetCache(ctx, "k")
			// The scrape itself PINGs Redis (redis_gateway_redis_up), and that
			// PING's failed dial may be counted before or after the errors are
			// collected: the command's own dial is the one that must be there.
			if got := commandErrors(t, down, "get", "dial"); got["get"] != 1 || got["dial"] < 1 {
				t.Errorf("with Redis refusing connections: redis_gateway_redis_command_errors_total = %v, want get 1 and dial at least 1", got)
			}
		})
	}
}

func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kind names the sentinel an error wraps, for comparing outcomes.
func kind(err error) string {
	for _, k := range []error{ErrNotFound, ErrExists, ErrPreconditionFailed, ErrWrongType, ErrNotInteger, ErrUnavailable, ErrTimeout} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	if err != nil {
		return "error"
	}
	return "ok"
}

// commandErrors returns the failures counted for the commands named.
func commandErrors(t *testing.T, g prometheus.Gatherer, commands ...string) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "redis_gateway_redis_command_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "command" && slices.Contains(commands, l.GetValue()) {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

func equalCounts(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// PUT replaces whatever the key holds, and says whether there was anything:
// a string takes one SET … GET; another type needs the script.
func TestPutCacheReplacesAnyType(t *testing.T) {
	srv := redistest.Start(t)
	mr := miniredis.RunT(t)
	for name, url := range map[string]string{"redis-server": srv.URL(), "miniredis": "redis://" + mr.Addr()} {
		t.Run(name, func(t *testing.T) {
			s := newTestStore(t, Options{URL: url})
			ctx := context.Background()
			if err := s.rdb.HSet(ctx, "cache:h", "f", "v").Err(); err != nil {
				t.Fatalf("HSET: %v", err)
			}
			for _, tt := range []struct {
				key         string
				wantCreated bool
			}{{"new", true}, {"new", false}, {"h", false}} {
				created, err := s.PutCache(ctx, tt.key, []byte(`{"v":1}`), time.Minute, Condition{})
				if err != nil || created != tt.wantCreated {
					t.Errorf("PutCache(%s) = %v, %v; want %v, nil", tt.key, created, err, tt.wantCreated)
				}
				got, err := s.GetCache(ctx, tt.key)
				if err != nil || string(got) != `{"v":1}` {
					t.Errorf("GetCache(%s) = %s, %v; want {\"v\":1}", tt.key, got, err)
				}
				if d := s.rdb.PTTL(ctx, "cache:"+tt.key).Val(); d <= 50*time.Second || d > time.Minute {
					t.Errorf("PTTL(cache:%s) = %v, want about 1m", tt.key, d)
				}
			}
		})
	}
}
