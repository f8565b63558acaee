package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// woken reports whether w is woken within d. Used only where a wake-up is
// expected, so a slow machine makes d long, never the test fail.
func woken(w *Watch, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.C():
		return true
	case <-t.C:
		return false
	}
}

// ready waits for the subscription of w, failing the test after a long time.
func ready(t *testing.T, w *Watch) {
	t.Helper()
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("subscription of %s not confirmed within 10s", w.channel)
	}
}

// pubsubClients counts the server's connections in subscriber mode.
func pubsubClients(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	list, err := srv.Client().ClientList(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if strings.Contains(line, " sub=") && !strings.Contains(line, " sub=0 ") {
			n++
		}
	}
	return n
}

func TestHubReleaseWakesWaitersOnOneConnection(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := t.Context()

	const names, perName = 10, 5
	watches := make([][]*Watch, names)
	for i := range watches {
		for range perName {
			w := s.WatchLock(fmt.Sprint("job", i))
			defer w.Close()
			watches[i] = append(watches[i], w)
		}
	}
	for _, ws := range watches {
		for _, w := range ws {
			ready(t, w)
		}
	}
	if n := pubsubClients(t, srv); n != 1 {
		t.Errorf("%d waiters on %d locks use %d subscriber connections, want 1", names*perName, names, n)
	}

	lease, err := s.AcquireLock(ctx, "job3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLock(ctx, "job3", lease.Token); err != nil {
		t.Fatal(err)
	}
	for _, w := range watches[3] {
		if !woken(w, 10*time.Second) {
			t.Fatalf("a waiter on job3 was not woken by its release")
		}
	}
	// The others were not: their channel saw nothing. Their wake-up would
	// have been delivered with job3's, on the same connection, in order;
	// a second release of job3 is a marker that everything before it arrived.
	lease, _ = s.AcquireLock(ctx, "job3", time.Minute)
	_ = s.ReleaseLock(ctx, "job3", lease.Token)
	if !woken(watches[3][0], 10*time.Second) {
		t.Fatal("second release of job3 not delivered")
	}
	for i, ws := range watches {
		if i == 3 {
			continue
		}
		for _, w := range ws {
			select {
			case <-w.C():
				t.Errorf("a waiter on job%d was woken by the release of job3", i)
			default:
			}
		}
	}
}

func TestHubUnsubscribesWhenTheLastWaiterLeaves(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL(), KeyPrefix: "app:"})
	a, b := s.WatchLock("x"), s.WatchLock("x")
	ready(t, a)
	channel := "app:lock:{x}:released"
	numsub := func() int64 {
		n, err := srv.Client().PubSubNumSub(t.Context(), channel).Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		return n[channel]
	}
	if n := numsub(); n != 1 {
		t.Fatalf("PUBSUB NUMSUB %s = %d with two waiters, want 1 (one connection)", channel, n)
	}
	a.Close()
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for numsub() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still subscribed 10s after its last waiter left", channel)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Listening again subscribes again.
	c := s.WatchLock("x")
	defer c.Close()
	ready(t, c)
	if n := numsub(); n != 1 {
		t.Fatalf("PUBSUB NUMSUB %s = %d after a new waiter came, want 1", channel, n)
	}
}

// A notification published while the connection was down is lost; the
// waiters are woken once go-redis has subscribed again, to look for
// themselves.
func TestHubWakesEveryoneAfterAReconnection(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	w := s.WatchLock("x")
	defer w.Close()
	ready(t, w)

	if err := srv.Client().Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	if !woken(w, 30*time.Second) {
		t.Fatal("waiter not woken after its subscriber connection was killed and restored")
	}
	// And the subscription works again.
	ctx := t.Context()
	deadline := time.Now().Add(10 * time.Second)
	for pubsubClients(t, srv) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no subscriber connection 10s after the kill")
		}
		time.Sleep(10 * time.Millisecond)
	}
	lease, err := s.AcquireLock(ctx, "x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLock(ctx, "x", lease.Token); err != nil {
		t.Fatal(err)
	}
	if !woken(w, 10*time.Second) {
		t.Fatal("release after the reconnection did not wake the waiter")
	}
}

func TestHubCloseWakesWaiters(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	w := s.WatchLock("x")
	defer w.Close()
	ready(t, w)
	var wg sync.WaitGroup
	wg.Add(1)
	var waitErr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		waitErr = w.Wait(ctx)
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if waitErr != nil {
		t.Errorf("Wait after Close = %v, want a wake-up (nil)", waitErr)
	}
	// Watching a closed store does not block, and subscribes nothing.
	late := s.WatchLock("y")
	defer late.Close()
	select {
	case <-late.Ready():
	default:
		t.Error("a watch on a closed store is not ready at once")
	}
}
