package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// writeRoute is one operation behind a route that changes data. setup
// prepares, through a store of its own, what the operation needs under the
// key k (a lock to refresh, a lease to fill) and returns the operation.
type writeRoute struct {
	name string
	// sends is the command, as go-redis names it on the wire, that carries
	// the write.
	sends string
	setup func(t *testing.T, prep *Store, k string) func(s *Store) error
	// read marks the controls: reads, which the retry policy does send
	// again.
	read bool
	// givesBack is how many more times the command is sent, by design,
	// after a lost reply: a lock acquire gives back, with a release (a
	// script too), the lock it may have taken.
	givesBack int64
	// notStored marks a write that leaves nothing a failover could lose:
	// durable writes do not wait for it.
	notStored bool
}

func routeOp(f func(ctx context.Context, s *Store, k string) error) func(*testing.T, *Store, string) func(*Store) error {
	return func(_ *testing.T, _ *Store, k string) func(*Store) error {
		return func(s *Store) error { return f(context.Background(), s, k) }
	}
}

// must is v, when the setup that returned it worked.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("setup: %v", err))
	}
	return v
}

var writeRoutes = []writeRoute{
	{name: "cache get (control)", sends: "get", read: true, setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutCache(context.Background(), k, []byte(`1`), time.Minute, Condition{}))
		return func(s *Store) error { _, err := s.GetCache(context.Background(), k); return err }
	}},
	{name: "cache put", sends: "set", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.PutCache(ctx, k, []byte(`1`), time.Minute, Condition{})
		return err
	})},
	{name: "cache put if absent", sends: "set", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.PutCache(ctx, k, []byte(`1`), time.Minute, Condition{IfAbsent: true})
		return err
	})},
	{name: "cache put if match", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutCache(context.Background(), k, []byte(`1`), time.Minute, Condition{}))
		return func(s *Store) error {
			_, err := s.PutCache(context.Background(), k, []byte(`2`), time.Minute, Condition{IfDigest: []string{string(AppendDigest(nil, []byte(`1`)))}})
			return err
		}
	}},
	{name: "cache delete", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutCache(context.Background(), k, []byte(`1`), time.Minute, Condition{}))
		return func(s *Store) error { return s.DeleteCache(context.Background(), k) }
	}},
	{name: "cache delete many", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutCache(context.Background(), k, []byte(`1`), time.Minute, Condition{}))
		return func(s *Store) error {
			_, err := s.DeleteCacheMany(context.Background(), []string{k, k + "-2"})
			return err
		}
	}},
	{name: "cache expire", sends: "pexpire", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutCache(context.Background(), k, []byte(`1`), time.Minute, Condition{}))
		return func(s *Store) error { return s.ExpireCache(context.Background(), k, time.Hour) }
	}},
	{name: "cache incr", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.IncrCache(ctx, k, 1, time.Minute)
		return err
	})},
	{name: "cache lease take", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.GetCacheLeased(ctx, k, time.Minute, time.Now())
		return err
	})},
	{name: "cache lease fill", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		r := must(prep.GetCacheLeased(context.Background(), k, time.Minute, time.Now()))
		return func(s *Store) error {
			return s.PutCacheLeased(context.Background(), k, r.Token, []byte(`1`), time.Minute)
		}
	}},
	{name: "session create", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, _ string) error {
		_, err := s.CreateSession(ctx, []byte(`{"a":1}`), time.Minute)
		return err
	})},
	{name: "session put", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.PutSession(ctx, k, []byte(`{"a":1}`), time.Minute)
		return err
	})},
	{name: "session patch", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutSession(context.Background(), k, []byte(`{"a":1}`), time.Minute))
		return func(s *Store) error {
			_, err := s.UpdateSession(context.Background(), k, func([]byte) ([]byte, error) { return []byte(`{"a":2}`), nil })
			return err
		}
	}},
	{name: "session delete", sends: "del", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.PutSession(context.Background(), k, []byte(`{"a":1}`), time.Minute))
		return func(s *Store) error { return s.DeleteSession(context.Background(), k) }
	}},
	{name: "rate limit fixed", sends: "incrby", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.CountFixed(ctx, k, 1, time.Minute)
		return err
	})},
	{name: "rate limit sliding", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.Sliding(ctx, k, Limit{Limit: 10, Window: time.Minute, Cost: 1}, true)
		return err
	})},
	{name: "rate limit gcra", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.GCRA(ctx, k, Limit{Limit: 10, Window: time.Minute, Burst: 1, Cost: 1}, true)
		return err
	})},
	{name: "rate limit reset", sends: "del", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		_ = must(prep.CountFixed(context.Background(), k, 1, time.Minute))
		return func(s *Store) error { return s.ResetRateLimit(context.Background(), k) }
	}},
	{name: "lock acquire", sends: "evalsha", givesBack: 1, setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.AcquireLock(ctx, k, time.Minute)
		return err
	})},
	{name: "lock acquire fair", sends: "evalsha", givesBack: 1, setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.AcquireLockFair(ctx, k, time.Minute, "ticket", time.Minute)
		return err
	})},
	{name: "lock refresh", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		l := must(prep.AcquireLock(context.Background(), k, time.Minute))
		return func(s *Store) error {
			_, err := s.RefreshLock(context.Background(), k, l.Token, time.Minute)
			return err
		}
	}},
	{name: "lock release", sends: "evalsha", setup: func(t *testing.T, prep *Store, k string) func(*Store) error {
		l := must(prep.AcquireLock(context.Background(), k, time.Minute))
		return func(s *Store) error { return s.ReleaseLock(context.Background(), k, l.Token) }
	}},
	{name: "lock leave queue", sends: "evalsha", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		return s.LeaveLockQueue(ctx, k, "ticket")
	})},
	{name: "publish", sends: "publish", notStored: true, setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.Publish(ctx, k, []byte("m"))
		return err
	})},
	{name: "command API", sends: "incr", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		_, err := s.Command(ctx, Policy{}, []string{"incr", k})
		return err
	})},
	{name: "command API pipeline", sends: "incr", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		res, err := s.Pipeline(ctx, Policy{}, [][]string{{"incr", k}})
		if err == nil {
			err = res[0].Err
		}
		return err
	})},
	{name: "command API transaction", sends: "incr", setup: routeOp(func(ctx context.Context, s *Store, k string) error {
		res, err := s.Transaction(ctx, Policy{}, [][]string{{"incr", k}})
		if err == nil {
			err = res[0].Err
		}
		return err
	})},
}

// With REDIS_WRITE_REPLICAS above the replicas there are, no write can be
// confirmed, whatever its route: every one is ErrUnconfirmed. With as many
// as there are, every one is confirmed. Reads, and a publish, which stores
// nothing, do not wait.
func TestDurableWritesEveryRoute(t *testing.T) {
	primary := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	replica.WaitInSync(10 * time.Second)
	checkDurableRoutes(t, Options{URL: primary.URL()})
}

// The same on Redis Cluster, where each node's client confirms its share;
// each primary has one replica.
func TestDurableWritesEveryRouteCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	checkDurableRoutes(t, Options{ClusterNodes: c.Addrs()[:1]})
}

// checkDurableRoutes runs every write route against the deployment of
// base, which has one replica per primary.
func checkDurableRoutes(t *testing.T, base Options) {
	prep := newTestStore(t, base)
	for _, tt := range []struct {
		replicas int
		timeout  time.Duration
	}{
		{1, confirmWithin},
		// One replica never confirms to two, however long WAIT waits:
		// the short timeout only keeps the test quick.
		{2, 50 * time.Millisecond},
	} {
		opts := base
		opts.WriteReplicas, opts.WriteReplicasTimeout, opts.ReadTimeout = tt.replicas, tt.timeout, 2*confirmWithin
		s := newTestStore(t, opts)
		for _, r := range writeRoutes {
			t.Run(strconv.Itoa(tt.replicas)+" replicas/"+r.name, func(t *testing.T) {
				err := r.setup(t, prep, "durable-"+strconv.Itoa(tt.replicas)+"-"+r.name)(s)
				unconfirmed := tt.replicas > 1 && !r.read && !r.notStored
				switch {
				case unconfirmed && !errors.Is(err, ErrUnconfirmed):
					t.Errorf("error = %v, want ErrUnconfirmed: one replica cannot confirm to %d", err, tt.replicas)
				case !unconfirmed && err != nil:
					t.Errorf("error = %v, want none", err)
				}
			})
		}
	}
}

// The retry policy on every route: the forwarder delivers the command that
// carries the write, then cuts the connection before the reply. The write
// ran, and the gateway cannot know, so it must not send it again: the
// server runs that command as often as when nothing fails. The control,
// a read, is sent again, which shows the count sees a resend.
func TestRetryRuleEveryRoute(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	prep := newTestStore(t, Options{URL: srv.URL()})

	for _, pipelined := range []bool{true, false} {
		f := redistest.Forward(t, srv.Addr())
		s := newTestStore(t, Options{URL: "redis://" + f.Addr(), MaxRetries: 3, NoAutoPipeline: !pipelined})
		for _, r := range writeRoutes {
			t.Run("autopipeline="+strconv.FormatBool(pipelined)+"/"+r.name, func(t *testing.T) {
				key := "retry-" + strconv.FormatBool(pipelined) + "-" + r.name + "-"
				// The first run loads the scripts, so the next two run
				// the same commands.
				if err := r.setup(t, prep, key+"warm")(s); err != nil {
					t.Fatalf("warm-up: %v", err)
				}
				run := r.setup(t, prep, key+"clean")
				before := commandCalls(t, rdb, r.sends)
				if err := run(s); err != nil {
					t.Fatalf("clean run: %v", err)
				}
				clean := commandCalls(t, rdb, r.sends) - before

				run = r.setup(t, prep, key+"cut")
				before = commandCalls(t, rdb, r.sends)
				f.CutReplyTo(r.sends)
				err := run(s)
				cut := commandCalls(t, rdb, r.sends) - before
				switch {
				case r.read:
					if err != nil || cut <= clean {
						t.Errorf("read with its reply cut: error %v after %d %s (%d when nothing fails), want it sent again and answered", err, cut, r.sends, clean)
					}
				case !errors.Is(err, ErrUnavailable):
					t.Errorf("error = %v, want ErrUnavailable: the reply was lost", err)
				case cut != clean+r.givesBack:
					t.Errorf("the server ran %s %d times with the reply cut, %d when nothing fails: the write was sent again", r.sends, cut, clean+r.givesBack)
				}
			})
		}
	}
}

// commandCalls is how many times the server has run command.
func commandCalls(t *testing.T, rdb *redis.Client, command string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for line := range strings.Lines(info) {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+command+":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(stats, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		return n
	}
	return 0
}
