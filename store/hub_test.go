package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
			w := s.hub.watch(s.keys.lockReleased(fmt.Sprint("job", i)), false) // broadcast
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
	a, b := s.WatchLock("x", false), s.WatchLock("x", false)
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
	c := s.WatchLock("x", false)
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
	w := s.WatchLock("x", false)
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
	w := s.WatchLock("x", false)
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
	late := s.WatchLock("y", false)
	defer late.Close()
	select {
	case <-late.Ready():
	default:
		t.Error("a watch on a closed store is not ready at once")
	}
}

// An acquisition whose reply is lost may have taken the lock under a token
// nobody will ever see; the store gives it back rather than leave the lock
// stuck for its whole lease.
func TestAcquireLockWithLostReplyLeavesNoHolder(t *testing.T) {
	srv := redistest.Start(t)
	if err := scriptLockAcquire.Load(t.Context(), srv.Client()).Err(); err != nil {
		t.Fatalf("SCRIPT LOAD: %v", err)
	}
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("autopipeline=%v", batched), func(t *testing.T) {
			ctx := t.Context()
			name := fmt.Sprint("cut", batched)
			f := redistest.Forward(t, srv.Addr())
			s := newTestStore(t, Options{URL: "redis://" + f.Addr(), NoAutoPipeline: !batched})
			if err := s.Ping(ctx); err != nil { // connections in the pools
				t.Fatalf("Ping: %v", err)
			}
			f.CutNextReply()
			if _, err := s.AcquireLock(ctx, name, time.Minute); err == nil {
				t.Fatal("AcquireLock with its reply cut succeeded, want an error")
			}
			if n := srv.Client().Get(ctx, "lock:{"+name+"}:fence").Val(); n != "1" {
				t.Fatalf("fence = %q, want 1: the acquisition did not run, the test shows nothing", n)
			}
			if n := srv.Client().Exists(ctx, "lock:{"+name+"}").Val(); n != 0 {
				t.Errorf("the lock exists after an acquisition whose reply was lost: nobody can release it")
			}
		})
	}
}

// A release wakes one handoff waiter, the first to come; one that leaves
// with its wake-up unused passes it to the next.
func TestHubHandoffWakesOneInTurn(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := t.Context()
	ws := []*Watch{s.WatchLock("q", false), s.WatchLock("q", false), s.WatchLock("q", false)}
	for _, w := range ws {
		defer w.Close()
		ready(t, w)
	}
	release := func() {
		t.Helper()
		lease, err := s.AcquireLock(ctx, "q", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseLock(ctx, "q", lease.Token); err != nil {
			t.Fatal(err)
		}
	}
	// A broadcast listener on the same channel sees every release, as a
	// marker that a release has been delivered to all.
	marker := s.hub.watch(s.keys.lockReleased("q"), false)
	defer marker.Close()
	ready(t, marker)
	delivered := func() {
		t.Helper()
		if !woken(marker, 10*time.Second) {
			t.Fatal("release not delivered within 10s")
		}
	}
	pending := func() []bool {
		var p []bool
		for _, w := range ws {
			p = append(p, len(w.C()) > 0)
		}
		return p
	}

	release()
	delivered()
	if got, want := fmt.Sprint(pending()), "[true false false]"; got != want {
		t.Fatalf("woken after one release: %s, want %s (the first waiter only)", got, want)
	}
	// A second release, while the first waiter has not yet looked, goes to
	// the second: two releases, two chances.
	release()
	delivered()
	if got, want := fmt.Sprint(pending()), "[true true false]"; got != want {
		t.Fatalf("woken after two releases: %s, want %s", got, want)
	}
	// The first leaves without using its wake-up: the third gets it.
	ws[0].Close()
	if got, want := fmt.Sprint(pending()[1:]), "[true true]"; got != want {
		t.Fatalf("woken after the first left: %s, want %s", got, want)
	}
}

// frameEncoder writes frames a test can read: "<pattern>|<channel>|<payload>",
// and "gap".
type frameEncoder struct{}

func (frameEncoder) Message(b []byte, m Message) []byte {
	return append(b, m.Pattern+"|"+m.Channel+"|"+m.Payload...)
}

func (frameEncoder) Gap(b []byte) []byte { return append(b, "gap"...) }

// nextFrames waits for frames queued on sub, failing the test after a long
// time.
func nextFrames(t *testing.T, sub *Subscription) []string {
	t.Helper()
	select {
	case <-sub.Waiting():
	case <-time.After(30 * time.Second):
		t.Fatal("no frame within 30s")
	}
	var got []string
	for _, b := range sub.Take(nil) {
		got = append(got, string(b))
	}
	return got
}

// A stream whose queue is full is dropped, keeping what was queued, while
// the others of its channel get every message; the last to leave
// unsubscribes.
func TestHubDropsAStreamThatFallsBehind(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := t.Context()
	slow, err := s.Subscribe(ctx, "c", frameEncoder{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := s.PSubscribe(ctx, "c*", frameEncoder{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if n := pubsubClients(t, srv); n != 1 {
		t.Errorf("two streams use %d subscriber connections, want 1", n)
	}
	var got []string
	for i := range 3 {
		if err := srv.Client().Publish(ctx, "c", fmt.Sprint(i)).Err(); err != nil {
			t.Fatal(err)
		}
		got = append(got, nextFrames(t, fast)...)
	}
	if want := []string{"c*|c|0", "c*|c|1", "c*|c|2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the stream that keeps up got %q, want %q", got, want)
	}
	select {
	case <-slow.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stream that fell behind was not dropped")
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Errorf("Err() = %v, want ErrSlowSubscriber", slow.Err())
	}
	var kept []string
	for _, b := range slow.Take(nil) {
		kept = append(kept, string(b))
	}
	if want := []string{"|c|0", "|c|1"}; fmt.Sprint(kept) != fmt.Sprint(want) {
		t.Errorf("the dropped stream kept %q, want %q", kept, want)
	}
	// The dropped stream was the channel's last: Redis no longer sends it.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Client().PubSubNumSub(ctx, "c").Val()["c"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("channel c still subscribed 10s after its last stream was dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fast.Close()
	for srv.Client().PubSubNumPat(ctx).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("pattern c* still subscribed 10s after its last stream closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Streams outlive a broken subscriber connection and are told that they may
// have missed messages once they are subscribed again.
func TestHubTellsStreamsOfAReconnection(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	ctx := t.Context()
	var subs []*Subscription
	for _, subscribe := range []func(context.Context, string, Encoder, int) (*Subscription, error){s.Subscribe, s.PSubscribe} {
		sub, err := subscribe(ctx, "r", frameEncoder{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs = append(subs, sub)
	}
	if err := srv.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	for _, sub := range subs {
		if got := nextFrames(t, sub); fmt.Sprint(got) != "[gap]" {
			t.Errorf("after the connection was killed: %q, want [gap]", got)
		}
	}
	if err := srv.Client().Publish(ctx, "r", "m").Err(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"[|r|m]", "[r|r|m]"} {
		if got := nextFrames(t, subs[i]); fmt.Sprint(got) != want {
			t.Errorf("after the reconnection: %q, want %s", got, want)
		}
	}
}

// Subscribing with Redis down fails at once rather than at the deadline.
func TestHubSubscribeWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestStore(t, Options{URL: srv.URL()})
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := s.Subscribe(ctx, "down", frameEncoder{}, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Subscribe with Redis down = %v, want ErrUnavailable", err)
	}
}

// The cost of handing one message to a channel's streams: the frame is
// encoded once per kind of stream, so allocations do not grow with the
// number of streams.
func BenchmarkHubFanOut(b *testing.B) {
	for _, streams := range []int{1, 100, 10000} {
		b.Run(fmt.Sprint(streams, "streams"), func(b *testing.B) {
			srv := redistest.Start(b)
			s, err := New(Options{URL: srv.URL()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			subs := make([]*Subscription, streams)
			taken := make([][][]byte, streams)
			for i := range subs {
				if subs[i], err = s.Subscribe(b.Context(), "bench", frameEncoder{}, 2); err != nil {
					b.Fatal(err)
				}
			}
			m := &redis.Message{Channel: "bench", Payload: `{"n":1}`}
			var frames frameCache
			b.ReportAllocs()
			for b.Loop() {
				s.hub.deliver(m, &frames)
				b.StopTimer()
				for i, sub := range subs {
					taken[i] = sub.Take(taken[i])
				}
				b.StartTimer()
			}
		})
	}
}
