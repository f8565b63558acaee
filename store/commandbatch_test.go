package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// The command API's reads share batches, and a batch's connection holds
// its replies to MAX_REPLY_BYTES together: concurrent reads whose replies
// pass it in one batch, and a read whose reply alone is over it, are going
// on all the time here. Every read within the budget still gets its own
// reply, and the one over it is refused.
func TestBatchedReadsKeepTheReplyBudget(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const limit, callers, calls = 4 << 10, 20, 20
	for i := range callers {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), strings.Repeat(string(rune('a'+i)), 1500), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Set(ctx, "huge", strings.Repeat("h", 2*limit), 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, Options{URL: srv.URL(), MaxReplyBytes: limit})
	before := commandCalls(t, rdb, "get")

	var wg sync.WaitGroup
	errs := make(chan error, callers*calls+calls)
	for i := range callers {
		wg.Go(func() {
			k, want := fmt.Sprintf("k%d", i), strings.Repeat(string(rune('a'+i)), 1500)
			for range calls {
				got, err := s.Command(ctx, Policy{}, []string{"GET", k})
				if err != nil || got != want {
					errs <- fmt.Errorf("GET %s: %.20v…, %v; want its own value", k, got, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range calls {
			var tooLarge *ReplyTooLargeError
			if _, err := s.Command(ctx, Policy{}, []string{"GET", "huge"}); !errors.As(err, &tooLarge) {
				errs <- fmt.Errorf("GET huge: error %v, want *ReplyTooLargeError", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Reads sent again: those behind a budget a batch used up.
	t.Logf("%d GETs asked, %d run by Redis", callers*calls+calls, commandCalls(t, rdb, "get")-before)
}

// Replies and errors read from a batch are those of a command sent on its
// own: nil for a missing key, Redis's error verbatim, and in a pipeline of
// reads each command's own.
func TestBatchedReadsAnswerAsSentAlone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	rdb.RPush(ctx, "list", "a", "b")
	rdb.Set(ctx, "k", "v", 0)
	s := newTestStore(t, Options{URL: srv.URL()})
	if s.cmdBatch == nil {
		t.Fatal("the command API's reads are not batched with auto-pipelining on")
	}

	if got, err := s.Command(ctx, Policy{}, []string{"GET", "missing"}); got != nil || err != nil {
		t.Errorf("GET missing = %v, %v; want nil, nil", got, err)
	}
	var cerr *CommandError
	if _, err := s.Command(ctx, Policy{}, []string{"GET", "list"}); !errors.As(err, &cerr) || !strings.HasPrefix(cerr.Msg, "WRONGTYPE") {
		t.Errorf("GET of a list: error %v, want Redis's WRONGTYPE", err)
	}
	got, err := s.Pipeline(ctx, Policy{}, [][]string{{"GET", "k"}, {"LRANGE", "list", "0", "-1"}, {"GET", "list"}, {"SUBSCRIBE", "c"}, {"GET", "missing"}})
	if err != nil {
		t.Fatalf("Pipeline: %v", err)
	}
	want := []string{"v <nil>", "[a b] <nil>", "<nil> WRONGTYPE", "<nil> ERR command 'subscribe'", "<nil> <nil>"}
	for i, r := range got {
		if s := fmt.Sprintf("%v %v", r.Reply, r.Err); !strings.HasPrefix(s, want[i]) {
			t.Errorf("pipeline command %d: %s, want %s…", i+1, s, want[i])
		}
	}
}

// On Redis Cluster the batches go to each key's node, and a read the batch
// sends to a node that no longer owns its key (ASK and MOVED while a slot
// moves) is answered all the same.
func TestBatchedReadsFollowAResharding(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	s := newTestStore(t, Options{ClusterNodes: c.Addrs()[:1]})
	if s.cmdBatch == nil {
		t.Fatal("the command API's reads are not batched on Redis Cluster")
	}
	ctx := context.Background()
	var pipeline [][]string
	var want []string
	var moving string
	var from *redistest.Server
	owners := map[*redistest.Server]string{}
	for i := 0; len(owners) < 3 && i < 1000; i++ {
		k := "k" + strconv.Itoa(i)
		if p, _ := c.PrimaryOf(t, k); owners[p] == "" {
			owners[p] = k
		}
	}
	for primary, k := range owners {
		if _, err := s.Command(ctx, Policy{}, []string{"SET", k, "v-" + k}); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		pipeline = append(pipeline, []string{"GET", k})
		want = append(want, "v-"+k)
		moving, from = k, primary
	}
	var to *redistest.Server
	for primary := range owners {
		if primary != from {
			to = primary
		}
	}

	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Pipeline(ctx, Policy{}, pipeline)
			for i := 0; err == nil && i < len(res); i++ {
				if res[i].Err != nil || res[i].Reply != want[i] {
					err = fmt.Errorf("%s = %v, %v; want %s", pipeline[i], res[i].Reply, res[i].Err, want[i])
				}
			}
			if err == nil {
				var got Reply
				if got, err = s.Command(ctx, Policy{}, []string{"GET", moving}); err == nil && got != "v-"+moving {
					err = fmt.Errorf("GET %s = %v, want v-%[1]s", moving, got)
				}
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	c.MoveSlot(t, keySlot(moving), from, to, 10*time.Millisecond)
	close(stop)
	for err := range errs {
		t.Errorf("reading while the slot of %s moved: %v", moving, err)
	}
	// The batch's map of the slots may still name the old owner.
	if got, err := s.Command(ctx, Policy{}, []string{"GET", moving}); err != nil || got != "v-"+moving {
		t.Errorf("GET %s after the move = %v, %v; want v-%[1]s", moving, got, err)
	}
}
