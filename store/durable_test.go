package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// confirmWithin is the WAIT timeout of writes that must be confirmed: a
// replica on a busy machine can take hundreds of milliseconds to answer, and
// a confirmed write returns as soon as it does, so a long bound costs nothing.
// The read timeout stays above it, as config.go requires.
const confirmWithin = 5 * time.Second

// With REDIS_WRITE_REPLICAS, a write returns once the replica has it: it
// reads back from the replica at once. A replica that cannot confirm (frozen
// with SIGSTOP) makes the write ErrUnconfirmed, which shows WAIT follows the
// write on its own connection: on another connection it would count replicas
// for that connection's earlier writes, all of which the replica has.
func TestDurableWritesSingleNode(t *testing.T) {
	primary := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	replica.WaitInSync(10 * time.Second)
	ctx := context.Background()

	s, err := New(Options{URL: primary.URL(), WriteReplicas: 1, WriteReplicasTimeout: confirmWithin, ReadTimeout: 2 * confirmWithin})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	for i := range 20 {
		k := "d" + strconv.Itoa(i)
		if _, err := s.PutCache(ctx, k, []byte(`1`), time.Minute, Condition{}); err != nil {
			t.Fatalf("PutCache: %v", err)
		}
		if got := replica.Client().Get(ctx, "cache:"+k).Val(); got != "1" {
			t.Fatalf("the replica has cache:%s = %q right after a confirmed write, want 1", k, got)
		}
	}
	if _, err := s.IncrCache(ctx, "n", 1, time.Minute); err != nil {
		t.Fatalf("IncrCache: %v", err)
	}

	// The replica, stopped, confirms nothing however long the write waits;
	// the short timeout only keeps the test quick.
	const unconfirmedWithin = 300 * time.Millisecond
	impatient, err := New(Options{URL: primary.URL(), WriteReplicas: 1, WriteReplicasTimeout: unconfirmedWithin})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer impatient.Close()
	replica.Freeze()
	start := time.Now()
	_, err = impatient.IncrCache(ctx, "n", 1, time.Minute)
	elapsed := time.Since(start)
	replica.Thaw()
	if !errors.Is(err, ErrUnconfirmed) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Errorf("IncrCache with the replica frozen = %v, want ErrUnconfirmed", err)
	}
	if elapsed < unconfirmedWithin {
		t.Errorf("an unconfirmed write answered after %v, want after the %v it waits for replicas", elapsed, unconfirmedWithin)
	}
	if got := primary.Client().Get(ctx, "cache:n").Val(); got != "2" {
		t.Errorf("cache:n on the primary = %q, want 2: an unconfirmed write still ran, once", got)
	}

	alone := redistest.Start(t)
	s2, err := New(Options{URL: alone.URL(), WriteReplicas: 1, WriteReplicasTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s2.Close()
	if err := s2.DeleteSession(ctx, "x"); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("DeleteSession on a primary with no replica = %v, want ErrUnconfirmed", err)
	}
	if _, err := s2.GetCache(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCache with durable writes on = %v, want reads untouched (ErrNotFound)", err)
	}
	if _, err := New(Options{URL: alone.URL(), WriteReplicas: 1}); err == nil {
		t.Errorf("New with REDIS_WRITE_REPLICAS and no timeout succeeded; WAIT 0 would block forever")
	}
}

// On a cluster each node confirms its share of a write: keys of all three
// primaries in one request.
func TestDurableWritesCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	ctx := context.Background()
	keys := keysPerPrimary(t, c)
	var all []string
	for _, k := range keys {
		all = append(all, k)
	}

	for _, tt := range []struct {
		replicas int
		timeout  time.Duration
		want     error
	}{
		{1, confirmWithin, nil},
		// Each primary has one replica: two never confirm, however long
		// the write waits.
		{2, 100 * time.Millisecond, ErrUnconfirmed},
	} {
		s, err := New(Options{ClusterNodes: c.Addrs()[:1], WriteReplicas: tt.replicas, WriteReplicasTimeout: tt.timeout, ReadTimeout: 2 * confirmWithin})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer s.Close()
		for _, k := range all {
			if _, err := s.PutCache(ctx, k, []byte(`1`), time.Minute, Condition{}); !errors.Is(err, tt.want) {
				t.Errorf("%d replicas: PutCache(%s) = %v, want %v", tt.replicas, k, err, tt.want)
			}
		}
		n, err := s.DeleteCacheMany(ctx, all)
		if !errors.Is(err, tt.want) {
			t.Errorf("%d replicas: DeleteCacheMany over 3 primaries = %d, %v; want %v", tt.replicas, n, err, tt.want)
		}
		if tt.want == nil && n != int64(len(all)) {
			t.Errorf("DeleteCacheMany = %d, want %d", n, len(all))
		}
	}
}
