package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
	"github.com/redis/go-redis/v9"
)

// reportEnv names a file the failover tests append their measurements to;
// .ci/run prints it, since go test shows no log of a passing test.
const reportEnv = "REDIS_GATEWAY_REPORT"

func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	if path := os.Getenv(reportEnv); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Errorf("%s: %v", reportEnv, err)
			return
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
}

// withProductionRedis gives the store the defaults the gateway runs with
// (config.go), instead of the harness's fail-fast settings.
func withProductionRedis(f ...func(*store.Options)) option {
	return func(s *setup) {
		s.store.DialTimeout = 2 * time.Second
		s.store.ReadTimeout = 3 * time.Second
		s.store.WriteTimeout = 3 * time.Second
		s.store.MaxRetries = 3
		s.store.MinRetryBackoff = 8 * time.Millisecond
		s.store.MaxRetryBackoff = 2 * time.Second
		s.cfg.RequestTimeout = 2 * time.Second
		for _, fn := range f {
			fn(&s.store)
		}
	}
}

// withLargeBodies lets traffic write values of tens of kilobytes.
func withLargeBodies() option {
	return withConfig(func(c *handlers.Config) { c.MaxBodyBytes = 1 << 20 })
}

// traffic is writers putting new keys through the gateway until halted. It
// remembers each write the gateway acknowledged and each request that failed.
type traffic struct {
	g      *gateway
	prefix string
	pad    int // bytes added to each value
	stop   atomic.Bool
	wg     sync.WaitGroup

	mu       sync.Mutex
	total    int
	acked    []string
	ackedAt  time.Time // of the last acknowledged write
	failures []failure
}

func (tr *traffic) lastAck() time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.ackedAt
}

// waitAcked waits until n writes have been acknowledged, however long a busy
// machine takes to serve them (up to two minutes).
func (tr *traffic) waitAcked(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		tr.mu.Lock()
		acked := len(tr.acked)
		tr.mu.Unlock()
		if acked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes acknowledged within two minutes: the traffic did not run", acked, n)
		}
	}
}

type failure struct {
	start, end time.Time
	status     int
	body       string
}

func startTraffic(g *gateway, prefix string, writers, pad int) *traffic {
	tr := &traffic{g: g, prefix: prefix, pad: pad}
	for w := 0; w < writers; w++ {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for i := 0; !tr.stop.Load() && i < 1_000_000; i++ {
				key := prefix + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				start := time.Now()
				status, body := tr.put(key, tr.pad)
				tr.mu.Lock()
				tr.total++
				if status == http.StatusCreated {
					tr.acked = append(tr.acked, key)
					tr.ackedAt = time.Now()
				} else {
					tr.failures = append(tr.failures, failure{start, time.Now(), status, body})
				}
				tr.mu.Unlock()
				if status != http.StatusCreated {
					time.Sleep(10 * time.Millisecond) // as a client honouring Retry-After would, briefly
				}
			}
		}()
	}
	return tr
}

func (tr *traffic) put(key string, pad int) (int, string) {
	req, err := http.NewRequest("PUT", tr.g.url+"/cache/"+key, strings.NewReader(value(key, pad)))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.g.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// value is what traffic writes under key: a JSON string of the key and pad
// more bytes.
func value(key string, pad int) string {
	return strconv.Quote(key + strings.Repeat(".", pad))
}

// halt stops the writers and waits for them.
func (tr *traffic) halt() {
	tr.stop.Store(true)
	tr.wg.Wait()
}

// window is the time from the start of the first failed request to the end
// of the last one; with kinds, of the failures of those problem types only.
func (tr *traffic) window(kinds ...string) time.Duration {
	var first, last time.Time
	for _, f := range tr.failures {
		if len(kinds) > 0 && !slices.Contains(kinds, f.kind()) {
			continue
		}
		if first.IsZero() || f.start.Before(first) {
			first = f.start
		}
		if f.end.After(last) {
			last = f.end
		}
	}
	return last.Sub(first)
}

// kind is the failure's problem type, such as redis-unavailable.
func (f failure) kind() string {
	var p struct{ Type string }
	if json.Unmarshal([]byte(f.body), &p) != nil {
		return strconv.Itoa(f.status)
	}
	return strings.TrimPrefix(p.Type, "urn:redis-gateway:problem:")
}

// statuses counts the failures by status and problem type, for the report.
func (tr *traffic) statuses() string {
	n := map[string]int{}
	for _, f := range tr.failures {
		n[strconv.Itoa(f.status)+" "+f.kind()]++
	}
	var parts []string
	for k, c := range n {
		parts = append(parts, fmt.Sprintf("%d×%s", c, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// readBack reads every acknowledged write through the gateway and returns
// how many are gone and how many could not be read. A read that fails is
// tried again for up to a second.
func (tr *traffic) readBack(t *testing.T) (lost, unreadable int) {
	t.Helper()
	for _, key := range tr.acked {
		deadline := time.Now().Add(time.Second)
		for {
			resp := tr.g.do(request{method: "GET", path: "/cache/" + key})
			if resp.status == http.StatusOK && resp.body == value(key, tr.pad) {
				break
			}
			if resp.status == http.StatusNotFound {
				lost++
				break
			}
			if time.Now().After(deadline) {
				unreadable++
				t.Errorf("GET /cache/%s after the failover: %d %s", key, resp.status, resp.body)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return lost, unreadable
}

func offset(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_repl_offset:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no master_repl_offset in INFO replication")
	return 0
}

// A single primary failing over the ElastiCache way: its endpoint moves to
// the promoted replica, here half a second after the promotion, as a DNS
// change would. Connections still open to the old primary answer READONLY;
// the gateway drops them and reconnects to the endpoint.
func TestFailoverSingleNode(t *testing.T) {
	skipIfShort(t)
	a := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	b := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(a.Port), "--repl-diskless-sync-delay", "0")
	b.WaitInSync(5 * time.Second)
	f := redistest.Forward(t, a.Addr())
	g := startGateway(t, backend{name: "failover", url: "redis://" + f.Addr()}, withProductionRedis())
	ctx := context.Background()

	tr := startTraffic(g, "single-", 4, 0)
	time.Sleep(500 * time.Millisecond)
	demoted := time.Now()
	// Demote A so that at no moment both take writes or each replicates the
	// other: A stops taking writes (its paused writers wait), B takes every
	// byte A wrote, B becomes the primary, A its replica. A paused primary
	// sends its replicas nothing, not even PINGs, so its offset holds still.
	ca, cb := a.Client(), b.Client()
	if err := ca.Do(ctx, "client", "pause", (time.Minute).Milliseconds(), "write").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE on A: %v", err)
	}
	written := offset(t, ca)
	for deadline := time.Now().Add(30 * time.Second); offset(t, cb) < written; {
		if time.Now().After(deadline) {
			t.Fatalf("B at offset %d did not catch up with A at %d", offset(t, cb), written)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cb.ReplicaOf(ctx, "no", "one").Err(); err != nil {
		t.Fatalf("REPLICAOF NO ONE on B: %v", err)
	}
	if err := ca.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(b.Port)).Err(); err != nil {
		t.Fatalf("REPLICAOF on A: %v", err)
	}
	// A's paused writers now find a replica: READONLY.
	if err := ca.Do(ctx, "client", "unpause").Err(); err != nil {
		t.Fatalf("CLIENT UNPAUSE on A: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	f.To(b.Addr())
	switched := time.Now()
	time.Sleep(time.Second)
	tr.halt()

	lost, unreadable := tr.readBack(t)
	report(t, "%d requests, %d failed (%s), error window %v for a switch of %v; %d acknowledged writes, %d lost, %d unreadable",
		tr.total, len(tr.failures), tr.statuses(), tr.window().Round(time.Millisecond), switched.Sub(demoted).Round(time.Millisecond),
		len(tr.acked), lost, unreadable)
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost in a failover where the replica had caught up", lost)
	}
	// Requests fail only while the endpoint points at the demoted primary.
	for _, fl := range tr.failures {
		if fl.end.Before(demoted) || fl.end.After(switched.Add(time.Second)) {
			t.Errorf("a request failed %v after the endpoint moved: %d %s", fl.end.Sub(switched).Round(time.Millisecond), fl.status, fl.body)
			break
		}
	}
}

// A planned cluster failover: CLUSTER FAILOVER on a replica, which waits for
// the replica to catch up before it takes over, while writers run.
func TestFailoverCluster(t *testing.T) {
	skipIfShort(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	g := startGateway(t, clusterBackend(c), withProductionRedis())
	primary, replica := c.PrimaryOf(t, "cache:planned-0-0")

	tr := startTraffic(g, "planned-", 4, 0)
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := c.Failover(t, primary, replica); err != nil {
		t.Fatal(err)
	}
	tookOver := time.Since(start)
	time.Sleep(time.Second)
	tr.halt()

	lost, unreadable := tr.readBack(t)
	report(t, "%d requests, %d failed (%s), error window %v; the replica took over in %v; %d acknowledged writes, %d lost, %d unreadable",
		tr.total, len(tr.failures), tr.statuses(), tr.window().Round(time.Millisecond), tookOver.Round(time.Millisecond),
		len(tr.acked), lost, unreadable)
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost in a planned failover", lost)
	}
	// Requests fail, if at all, only from the failover until a second after
	// the replica took over.
	for _, f := range tr.failures {
		if f.end.Before(start) || f.end.After(start.Add(tookOver+time.Second)) {
			t.Errorf("a request failed %v after the failover began: %d %s", f.end.Sub(start).Round(time.Millisecond), f.status, f.body)
			break
		}
	}
	if r := c.Role(t, primary); r != "slave" {
		t.Errorf("the old primary is a %s, want a replica", r)
	}
}

// An unplanned failover: a primary is killed (SIGKILL) while writers run.
// Redis promotes its replica once the other primaries agree it failed: after
// the node timeout, the gossip that follows and an election delay of 0.5 to
// 1 s. Until then the writes of its slots fail; the gateway must pick up the
// new primary at once. Redis replicates asynchronously: a write the primary
// acknowledged but had not yet sent to its replica is lost with it: the
// test measures how many. With durable writes (REDIS_WRITE_REPLICAS=1) the
// gateway acknowledges only what a replica has, and none may be lost; the
// promoted primary has no replica left, so its writes stay unconfirmed until
// the killed node returns as its replica, as a replaced node would.
func TestCrashCluster(t *testing.T) {
	skipIfShort(t)
	const nodeTimeout = 2 * time.Second
	t.Run("async replication", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{NodeTimeout: nodeTimeout})
		g := startGateway(t, clusterBackend(c), withProductionRedis(), withLargeBodies())
		crash(t, c, g, "crash-", nodeTimeout, false)
	})
	t.Run("durable writes", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{NodeTimeout: nodeTimeout})
		g := startGateway(t, clusterBackend(c), withProductionRedis(func(o *store.Options) {
			o.WriteReplicas, o.WriteReplicasTimeout = 1, 500*time.Millisecond
		}), withLargeBodies())
		if lost := crash(t, c, g, "durable-", nodeTimeout, true); lost > 0 {
			t.Errorf("%d writes acknowledged after their replica confirmed them are lost", lost)
		}
	})
}

// crash kills the primary of the first key traffic writes and measures.
// With rejoin, the killed node is started again once its replica took over.
func crash(t *testing.T, c *redistest.Cluster, g *gateway, prefix string, nodeTimeout time.Duration, rejoin bool) (lost int) {
	t.Helper()
	victim, replica := c.PrimaryOf(t, "cache:"+prefix+"0-0")
	if replica == nil {
		t.Fatalf("the primary %s has no replica", victim.Addr())
	}
	tr := startTraffic(g, prefix, 4, 32<<10)
	// Enough writes before the crash that what it loses can be counted.
	tr.waitAcked(t, 100)
	// The replica falls behind, as one across a congested network would:
	// frozen, it takes in only what its socket buffers hold, and the rest
	// waits in the primary.
	replica.Freeze()
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	victim.Stop()
	replica.Thaw()
	for deadline := time.Now().Add(nodeTimeout + 10*time.Second); c.Role(t, replica) != "master"; {
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not take over")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tookOver := time.Since(killed)
	var rejoined time.Time
	if rejoin {
		time.Sleep(500 * time.Millisecond)
		victim.Restart()
		victim.WaitInSync(10 * time.Second)
		rejoined = time.Now()
	}
	time.Sleep(time.Second)
	tr.halt()

	lost, unreadable := tr.readBack(t)
	var lastFailure time.Duration // after the kill
	for _, f := range tr.failures {
		lastFailure = max(lastFailure, f.end.Sub(killed))
	}
	rejoin_ := ""
	if rejoin {
		rejoin_ = fmt.Sprintf(", back as its replica %v after", rejoined.Sub(killed).Round(time.Millisecond))
	}
	report(t, "node timeout %v: %d requests, %d failed (%s); error window %v, the last failure ending %v after the kill "+
		"(node timeout + 2 s = %v); Redis promoted the replica %v after the kill%s; %d acknowledged writes, %d lost, %d unreadable",
		nodeTimeout, tr.total, len(tr.failures), tr.statuses(), tr.window().Round(time.Millisecond), lastFailure.Round(time.Millisecond),
		nodeTimeout+2*time.Second, tookOver.Round(time.Millisecond), rejoin_, len(tr.acked), lost, unreadable)

	// Failures to reach a primary end with Redis's own promotion plus what the
	// gateway takes to notice it: that part must stay small. With durable
	// writes the promoted primary's writes stay unconfirmed until the killed
	// node is back as its replica, which the loop below bounds.
	var lastUnreachable time.Duration
	for _, f := range tr.failures {
		if !strings.Contains(f.body, "write-unconfirmed") {
			lastUnreachable = max(lastUnreachable, f.end.Sub(killed))
		}
	}
	if lastUnreachable > tookOver+time.Second {
		t.Errorf("a write failed %v after the kill for want of a primary, want the gateway serving the new primary within 1 s of its promotion (%v)", lastUnreachable, tookOver)
	}
	for _, f := range tr.failures {
		if f.status != http.StatusServiceUnavailable {
			t.Errorf("a failed write answered %d %s, want 503 with Retry-After", f.status, f.body)
			break
		}
		if rejoin && f.end.After(rejoined.Add(time.Second)) {
			t.Errorf("a write failed %v after the replica was back: %s", f.end.Sub(rejoined).Round(time.Millisecond), f.body)
			break
		}
	}
	return lost
}

// A write that the primary ran but no replica confirmed answers 503 with a
// problem type saying so, and Retry-After.
func TestUnconfirmedWrite(t *testing.T) {
	srv := redistest.Start(t) // no replica at all
	g := startGateway(t, backend{name: "alone", url: srv.URL()}, withStoreOptions(func(o *store.Options) {
		o.WriteReplicas, o.WriteReplicasTimeout = 1, 50*time.Millisecond
	}))
	for _, req := range []request{
		{method: "PUT", path: "/cache/k", body: `1`},
		{method: "POST", path: "/cache/n/incr"},
		{method: "POST", path: "/session", body: `{}`},
		{method: "POST", path: "/ratelimit/r/incr?limit=5"},
		{method: "DELETE", path: "/cache/k"},
	} {
		resp := g.must(req, http.StatusServiceUnavailable)
		if !strings.Contains(resp.body, `"type":"urn:redis-gateway:problem:write-unconfirmed"`) || resp.header.Get("Retry-After") != "1" {
			t.Errorf("%s %s unconfirmed: %s (Retry-After %q), want the write-unconfirmed problem and Retry-After: 1",
				req.method, req.path, resp.body, resp.header.Get("Retry-After"))
		}
	}
	// It ran on the primary all the same; reads wait for nothing.
	if got := g.must(request{method: "GET", path: "/cache/n/ttl"}, http.StatusOK).body; !strings.Contains(got, "ttl") {
		t.Errorf("GET /cache/n/ttl = %s", got)
	}
}

// Redis down when the gateway starts, then up: readiness follows within a
// second. Then Redis restarted under load: requests succeed again within 3 s.
func TestRedisDownAtStartThenRestarted(t *testing.T) {
	skipIfShort(t)
	srv := redistest.Start(t)
	srv.Stop()
	g := startGateway(t, backend{name: "restart", url: srv.URL()}, withProductionRedis())
	g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusServiceUnavailable)
	for range 50 { // enough failed dials to trip go-redis's dial breaker
		g.must(request{method: "GET", path: "/cache/k"}, http.StatusServiceUnavailable)
	}

	srv.Restart()
	up := time.Now()
	for g.do(request{method: "GET", path: "/readyz", token: "-"}).status != http.StatusOK {
		if time.Since(up) > 5*time.Second {
			t.Fatalf("/readyz not 200 5 s after Redis came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ready := time.Since(up)

	tr := startTraffic(g, "restart-", 4, 0)
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	restarted := time.Now()
	var recovered time.Duration
	for deadline := restarted.Add(10 * time.Second); ; {
		if last := tr.lastAck(); last.After(restarted) {
			recovered = last.Sub(restarted)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 10 s of the restart")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	tr.halt()

	report(t, "ready %v after Redis came up; after a restart under load, writes succeeded again %v after Redis was back "+
		"(%d requests, %d failed: %s)", ready.Round(time.Millisecond), recovered.Round(time.Millisecond), tr.total, len(tr.failures), tr.statuses())
	if ready > time.Second {
		t.Errorf("/readyz answered 200 %v after Redis came up, want within 1 s", ready)
	}
	if recovered > 3*time.Second {
		t.Errorf("writes recovered %v after the restart, want within 3 s", recovered)
	}
}
