package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
)

// 20 contenders on two gateways share one lock on one real redis-server, each
// taking it rounds times: never two holders at once, fences strictly
// increasing in the order the lock was held. It reports the handoff latency
// (the holder's DELETE sent → the next holder's 201 received) and the Redis
// commands per acquisition, and asserts neither: they depend on the machine.
func TestLockHandoffAcrossGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("a contention run of a few seconds; not under -short")
	}
	// How long each holder works under the lock.
	for _, tt := range []struct {
		hold time.Duration
		fair bool
	}{{time.Millisecond, false}, {20 * time.Millisecond, false}, {time.Millisecond, true}} {
		t.Run(fmt.Sprintf("hold=%v,fair=%v", tt.hold, tt.fair), func(t *testing.T) { testLockHandoff(t, tt.hold, tt.fair) })
	}
}

func testLockHandoff(t *testing.T, hold time.Duration, fair bool) {
	b := serverBackend(t)
	// A generous request timeout, so that the same test runs against a
	// gateway whose waits were bounded by it.
	cfg := withConfig(func(c *handlers.Config) { c.RequestTimeout = 30 * time.Second })
	gateways := []*gateway{startGateway(t, b, cfg), startGateway(t, b, cfg)}
	const contenders, rounds = 20, 10

	ctx := t.Context()
	if err := b.rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	var (
		mu          sync.Mutex
		lastRelease time.Time // when the last holder sent its DELETE
		handoffs    []time.Duration
		fences      []int64 // in the order the lock was held
		inside      atomic.Int32
		wg          sync.WaitGroup
	)
	for c := range contenders {
		g := gateways[c%len(gateways)]
		wg.Go(func() {
			for range rounds {
				resp, err := g.call(request{method: "POST", path: "/lock/handoff?ttl=10&wait=20&fair=" + strconv.FormatBool(fair)})
				got := time.Now()
				if err != nil || resp.status != http.StatusCreated {
					t.Errorf("contender %d: POST /lock/handoff: %v %d %s, want 201", c, err, resp.status, resp.body)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("contender %d: %d holders at once", c, n)
				}
				var a lockAcquired
				if err := json.Unmarshal([]byte(resp.body), &a); err != nil {
					t.Error(err)
				}
				mu.Lock()
				if !lastRelease.IsZero() {
					handoffs = append(handoffs, got.Sub(lastRelease))
				}
				fences = append(fences, a.Fence)
				mu.Unlock()
				time.Sleep(hold) // work under the lock
				inside.Add(-1)
				mu.Lock()
				lastRelease = time.Now()
				mu.Unlock()
				resp, err = g.call(request{method: "DELETE", path: "/lock/handoff", header: withToken(a.Token)})
				if err != nil || resp.status != http.StatusNoContent {
					t.Errorf("contender %d: DELETE /lock/handoff: %v %d, want 204", c, err, resp.status)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Errorf("fence %d was held after fence %d: fences must increase with every acquisition", fences[i], fences[i-1])
		}
	}
	if len(fences) != contenders*rounds {
		t.Fatalf("%d acquisitions, want %d", len(fences), contenders*rounds)
	}

	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int64{}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.Split(rest, ",")[0], 10, 64)
		name = strings.TrimPrefix(name, "cmdstat_")
		if name == "info" || name == "config|resetstat" {
			continue
		}
		calls[name] = n
		total += n
	}
	slices.Sort(handoffs)
	q := func(p float64) time.Duration { return handoffs[int(p*float64(len(handoffs)-1))] }
	acq := float64(len(fences))
	t.Logf("%d contenders on %d gateways, %d acquisitions: handoff p50 %v, p99 %v, max %v",
		contenders, len(gateways), len(fences), q(0.50), q(0.99), handoffs[len(handoffs)-1])
	t.Logf("Redis commands per acquisition: %.1f in all (%v)", float64(total)/acq, perAcquisition(calls, acq))
}

func perAcquisition(calls map[string]int64, acq float64) string {
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n + " " + strconv.FormatFloat(float64(calls[n])/acq, 'f', 2, 64))
	}
	return b.String()
}
