package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

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
