package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// fixedWays are the ways a fixed window counts: plain commands (Redis 7+),
// batched or each write its own pipeline, and the script older servers get.
var fixedWays = []struct {
	name   string
	opts   Options
	script bool
}{
	{name: "plain, batched"},
	{name: "plain, unbatched", opts: Options{NoAutoPipeline: true}},
	{name: "script", script: true},
}

func fixedStore(t *testing.T, srv *redistest.Server, opts Options, script bool) *Store {
	t.Helper()
	opts.URL = srv.URL()
	s := newTestStore(t, opts)
	if script {
		s.fixedCount.scriptUntil.Store(time.Now().Add(time.Hour).UnixNano())
	}
	return s
}

// Plain commands answer what the script answers, call after call, and
// peeks count nothing.
func TestFixedWindowPlainAnswersAsTheScript(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const window = time.Minute
	for _, way := range fixedWays {
		t.Run(way.name, func(t *testing.T) {
			s := fixedStore(t, srv, way.opts, way.script)
			k := "w-" + way.name
			scripts := commandCalls(t, rdb, "evalsha") + commandCalls(t, rdb, "eval")
			defer func() {
				ran := commandCalls(t, rdb, "evalsha") + commandCalls(t, rdb, "eval") - scripts
				if way.script != (ran > 0) {
					t.Errorf("%d scripts ran, want the script to count %v", ran, way.script)
				}
			}()
			if w, err := s.PeekFixed(ctx, k, window); err != nil || w != (Window{Count: 0, Reset: window}) {
				t.Errorf("peek of a new limiter = %+v, %v; want count 0 and a whole window", w, err)
			}
			for i, cost := range []int64{1, 3, 2} {
				w, err := s.CountFixed(ctx, k, cost, window)
				want := []int64{1, 4, 6}[i]
				if err != nil || w.Count != want || w.Reset <= 0 || w.Reset > window {
					t.Errorf("call %d of cost %d = %+v, %v; want count %d and a reset within (0, %v]", i+1, cost, w, err, want, window)
				}
			}
			w, err := s.PeekFixed(ctx, k, window)
			if err != nil || w.Count != 6 || w.Reset <= 0 || w.Reset > window {
				t.Errorf("peek after counting 6 = %+v, %v; want count 6 and a reset within (0, %v]", w, err, window)
			}
			if got := rdb.Get(ctx, "ratelimit:{"+k+"}").Val(); got != "6" {
				t.Errorf("the counter holds %q after a peek, want 6", got)
			}
			// The first call opened the window; later calls never push it back.
			if ttl := rdb.PTTL(ctx, "ratelimit:{"+k+"}").Val(); ttl <= 0 || ttl > window {
				t.Errorf("the counter's TTL = %v, want within (0, %v]", ttl, window)
			}
		})
	}
}

// A counter without an expiry — a reply lost between INCRBY and PEXPIRE, or
// a SET from outside — gets one with the next call, which counts on from
// it and answers a whole window.
func TestFixedWindowMendsACounterWithoutExpiry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	for _, way := range fixedWays {
		t.Run(way.name, func(t *testing.T) {
			s := fixedStore(t, srv, way.opts, way.script)
			k := "m-" + way.name
			rdb.Set(ctx, "ratelimit:{"+k+"}", "5", 0)
			w, err := s.CountFixed(ctx, k, 1, time.Minute)
			if err != nil || w != (Window{Count: 6, Reset: time.Minute}) {
				t.Errorf("count on a counter of 5 without expiry = %+v, %v; want count 6 and a whole window", w, err)
			}
			if ttl := rdb.PTTL(ctx, "ratelimit:{"+k+"}").Val(); ttl <= 0 {
				t.Errorf("the counter's TTL = %v after the call, want one set", ttl)
			}
		})
	}
}

// The first call opens the window; later calls neither push it back nor
// leave the counter without an expiry. With what is left of the window cut
// short from outside, each later call answers that and keeps it, and only
// the call that found no expiry sent PEXPIRE.
func TestFixedWindowIsNeverExtended(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const window, left = time.Minute, 10 * time.Second
	for _, way := range fixedWays {
		t.Run(way.name, func(t *testing.T) {
			s := fixedStore(t, srv, way.opts, way.script)
			k := "x-" + way.name
			key := "ratelimit:{" + k + "}"
			expires := commandCalls(t, rdb, "pexpire")
			if w, err := s.CountFixed(ctx, k, 1, window); err != nil || w != (Window{Count: 1, Reset: window}) {
				t.Errorf("first call = %+v, %v; want count 1 and a whole window", w, err)
			}
			if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > window {
				t.Errorf("the counter's TTL after the first call = %v, want within (0, %v]", ttl, window)
			}
			if err := rdb.PExpire(ctx, key, left).Err(); err != nil {
				t.Fatalf("PEXPIRE: %v", err)
			}
			for i := range 3 {
				w, err := s.CountFixed(ctx, k, 1, window)
				if err != nil || w.Count != int64(i+2) || w.Reset <= 0 || w.Reset > left {
					t.Errorf("call %d = %+v, %v; want count %d and a reset within (0, %v]", i+2, w, err, i+2, left)
				}
				if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > left {
					t.Errorf("the counter's TTL after call %d = %v, want within (0, %v]: never pushed back, never removed", i+2, ttl, left)
				}
			}
			// The test's own PEXPIRE is one of them.
			if n := commandCalls(t, rdb, "pexpire") - expires - 1; n != 1 {
				t.Errorf("PEXPIRE ran %d times in 4 calls, want once, by the call that opened the window", n)
			}
		})
	}
}

// A call that finds its counter without an expiry opens the window with
// PEXPIRE … NX; when a concurrent call opened it first, that window
// stands and is what the call answers, and a counter reset in between
// answers a window that is over.
func TestFixedWindowOpensOnlyAWindowNotOpenedYet(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const window, left = time.Minute, 10 * time.Second
	for _, way := range fixedWays[:2] {
		t.Run(way.name, func(t *testing.T) {
			s := fixedStore(t, srv, way.opts, false)
			k := "o-" + way.name
			rdb.Set(ctx, k, "3", left)
			w, ok, err := s.openFixed(ctx, k, Window{Count: 3, Reset: window}, window)
			if err != nil || !ok || w.Count != 3 || w.Reset <= 0 || w.Reset > left {
				t.Errorf("opening a window another call opened = %+v, %v, %v; want count 3 and a reset within (0, %v]", w, ok, err, left)
			}
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > left {
				t.Errorf("the counter's TTL = %v, want the other call's, within (0, %v]", ttl, left)
			}
			rdb.Set(ctx, k, "4", 0)
			if w, ok, err := s.openFixed(ctx, k, Window{Count: 4, Reset: window}, window); err != nil || !ok || w != (Window{Count: 4, Reset: window}) {
				t.Errorf("opening the window of a counter without expiry = %+v, %v, %v; want count 4 and a whole window", w, ok, err)
			}
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= left || ttl > window {
				t.Errorf("the counter's TTL = %v, want the window opened, within (%v, %v]", ttl, left, window)
			}
			rdb.Del(ctx, k)
			if w, ok, err := s.openFixed(ctx, k, Window{Count: 5, Reset: window}, window); err != nil || !ok || w != (Window{Count: 5}) {
				t.Errorf("opening the window of a counter reset since = %+v, %v, %v; want count 5 and a window that is over", w, ok, err)
			}
		})
	}
}

// Many callers at once on a real server: each call gets a count of its own,
// so exactly limit calls of cost 1 see a count within limit, however the
// commands of concurrent calls interleave.
func TestFixedWindowExactUnderConcurrency(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const callers, calls = 40, 10
	for _, way := range fixedWays {
		t.Run(way.name, func(t *testing.T) {
			s := fixedStore(t, srv, way.opts, way.script)
			k := "c-" + way.name
			var mu sync.Mutex
			var counts []int64
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for range calls {
						w, err := s.CountFixed(ctx, k, 1, time.Minute)
						if err != nil || w.Reset <= 0 || w.Reset > time.Minute {
							t.Errorf("CountFixed = %+v, %v", w, err)
							return
						}
						mu.Lock()
						counts = append(counts, w.Count)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			slices.Sort(counts)
			for i, c := range counts {
				if c != int64(i+1) {
					t.Fatalf("counts returned %v…, want each of 1..%d once", counts[:min(len(counts), i+3)], callers*calls)
				}
			}
			if got := rdb.Get(ctx, "ratelimit:{"+k+"}").Val(); got != fmt.Sprint(callers*calls) {
				t.Errorf("counter = %s, want %d", got, callers*calls)
			}
			// However many calls found it without one, the window opened once.
			if ttl := rdb.PTTL(ctx, "ratelimit:{"+k+"}").Val(); ttl <= 0 || ttl > time.Minute {
				t.Errorf("the counter's TTL = %v, want within (0, %v]", ttl, time.Minute)
			}
		})
	}
}

// On a server before Redis 7.0, which refuses PEXPIRE … NX as Redis 6.2
// does, the call that finds out is counted once and answered in full, the
// script counts for the next minute, and plain commands are tried again
// after it.
func TestFixedWindowOnAServerBefore7(t *testing.T) {
	mr := miniredis.RunT(t)
	var refused atomic.Int64
	mr.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd == "PEXPIRE" && len(args) > 2 {
			refused.Add(1)
			c.WriteError("ERR wrong number of arguments for 'pexpire' command")
			return true
		}
		return false
	})
	for _, way := range fixedWays[:2] {
		t.Run(way.name, func(t *testing.T) {
			opts := way.opts
			opts.URL = "redis://" + mr.Addr()
			s := newTestStore(t, opts)
			ctx := context.Background()
			k := "old-" + way.name
			before := refused.Load()
			for i := range 3 {
				w, err := s.CountFixed(ctx, k, 1, time.Minute)
				if err != nil || w != (Window{Count: int64(i + 1), Reset: time.Minute}) {
					t.Errorf("call %d = %+v, %v; want count %d and a whole window", i+1, w, err, i+1)
				}
			}
			if n := refused.Load() - before; n != 1 {
				t.Errorf("PEXPIRE … NX sent %d times in 3 calls, want once: the script counts after the first refusal", n)
			}
			if ttl := mr.TTL("ratelimit:{" + k + "}"); ttl <= 0 {
				t.Errorf("the counter's TTL = %v, want the window opened", ttl)
			}
			now := time.Now()
			if s.fixedCount.plain(now) || !s.fixedCount.plain(now.Add(retryScript)) {
				t.Errorf("plain commands now %v, after %v %v; want the script until then, plain commands after",
					s.fixedCount.plain(now), retryScript, s.fixedCount.plain(now.Add(retryScript)))
			}
		})
	}
}
