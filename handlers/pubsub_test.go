package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// stream is an open event stream, read one event at a time.
type stream struct {
	t      *testing.T
	name   string
	header http.Header
	events chan string // each event's lines, joined by "\n"; closed at the end of the stream
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the stream ended; read after done is closed
}

// openStream starts req on its own connection and fails the test unless the
// answer is a 200 event stream.
func (g *gateway) openStream(req request) *stream {
	g.t.Helper()
	s, err := g.tryOpenStream(req)
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

// tryOpenStream is openStream for goroutines other than the test's.
func (g *gateway) tryOpenStream(req request) (*stream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	body := strings.NewReader(req.body)
	hr, err := http.NewRequestWithContext(ctx, req.method, g.url+req.path, body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	sendAsWritten(hr, req.path)
	req.setHeaders(hr)
	// A transport of its own: closing the stream closes its connection.
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Do(hr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%s %s: %d %s, want a 200 event stream", req.method, req.path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: g.t, name: req.method + " " + req.path, header: resp.Header, events: make(chan string, 100), done: make(chan struct{})}
	s.cancel = func() {
		cancel()
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	go func() {
		defer close(s.done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		for sc.Scan() {
			if sc.Text() != "" {
				lines = append(lines, sc.Text())
				continue
			}
			select {
			case s.events <- strings.Join(lines, "\n"):
			case <-ctx.Done(): // closed unread: the test is over
				return
			}
			lines = nil
		}
		s.err = sc.Err()
	}()
	g.t.Cleanup(s.close)
	return s, nil
}

// next returns the next event that is not a comment, failing the test after
// a generous wait.
func (s *stream) next() string {
	s.t.Helper()
	return s.await("event", func(line string) bool { return !strings.HasPrefix(line, ":") })
}

// comment waits for a comment line such as the heartbeat.
func (s *stream) comment() string {
	s.t.Helper()
	return s.await("comment", func(line string) bool { return strings.HasPrefix(line, ":") })
}

// await returns the next line want accepts, passing over the others.
func (s *stream) await(kind string, want func(line string) bool) string {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatalf("%s: the stream ended (%v) while waiting for the next %s", s.name, s.err, kind)
			}
			if want(e) {
				return e
			}
		case <-deadline:
			s.t.Fatalf("%s: no %s within 10s", s.name, kind)
		}
	}
}

// ended waits for the server to end the stream, and returns how it ended.
func (s *stream) ended() error {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				<-s.done
				return s.err
			}
		case <-timeout:
			s.t.Fatalf("%s: still open after 10s", s.name)
		}
	}
}

func (s *stream) close() {
	s.cancel()
	<-s.done
}

func TestPublishAndSubscribe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "a cluster counts as receivers only the subscribers of the node PUBLISH went to")
		g := startGateway(t, b)
		sub := g.openStream(get("/subscribe/orders%3Aeu"))
		psub := g.openStream(get("/subscribe?pattern=orders%3A*"))
		if cc := sub.header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET /subscribe: Cache-Control = %q, want no-cache", cc)
		}

		resp := g.must(request{method: "POST", path: "/publish/orders%3Aeu", body: `{"order": 42, "items": [1, 2.50]}`}, 200)
		if resp.body != `{"receivers":2}` {
			t.Errorf("POST /publish/orders%%3Aeu = %s, want 2 receivers", resp.body)
		}
		if got, want := sub.next(), "event: message\ndata: {\"channel\":\"orders:eu\",\"message\":{\"order\":42,\"items\":[1,2.50]}}"; got != want {
			t.Errorf("channel event = %q, want %q", got, want)
		}
		if got, want := psub.next(), "event: message\ndata: {\"pattern\":\"orders:*\",\"channel\":\"orders:eu\",\"message\":{\"order\":42,\"items\":[1,2.50]}}"; got != want {
			t.Errorf("pattern event = %q, want %q", got, want)
		}
		// Messages from other Redis clients that are not JSON arrive as strings.
		if err := b.rdb.Publish(context.Background(), "orders:us", "plain\ntext").Err(); err != nil {
			t.Fatal(err)
		}
		if got, want := psub.next(), `event: message`+"\n"+`data: {"pattern":"orders:*","channel":"orders:us","message":"plain\ntext"}`; got != want {
			t.Errorf("pattern event = %q, want %q", got, want)
		}

		g.must(request{method: "POST", path: "/publish/nobody", body: `"x"`}, 200)
		if body := g.must(request{method: "POST", path: "/publish/nobody", body: `1`}, 200).body; body != `{"receivers":0}` {
			t.Errorf("publish without subscribers = %s", body)
		}
		g.must(request{method: "POST", path: "/publish/x", body: `not json`}, 400)
		g.must(request{method: "POST", path: "/publish/x", body: `1`, header: map[string]string{"Content-Type": "text/plain"}}, 415)
		g.must(request{method: "POST", path: "/publish/x", body: `1`, token: "-"}, 401)
		g.must(get("/subscribe"), 400)
		g.must(get("/subscribe?pattern=a&pattern=b"), 400)
		g.must(request{method: "GET", path: "/subscribe/x", token: "-"}, 401)
	})
}

func TestUpstashSubscribeFrames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		// The client posts an empty command and asks for base64, which the
		// streams ignore.
		sub := g.openStream(with(request{method: "POST", path: "/redis/subscribe/chat", body: `[]`}, "Upstash-Encoding", "base64"))
		psub := g.openStream(request{method: "POST", path: "/redis/psubscribe/ch*", body: `[]`})
		if got := sub.next(); got != "data: subscribe,chat,1" {
			t.Errorf("first frame = %q, want data: subscribe,chat,1", got)
		}
		if got := psub.next(); got != "data: psubscribe,ch*,1" {
			t.Errorf("first frame = %q, want data: psubscribe,ch*,1", got)
		}
		g.must(get("/redis/publish/chat/hello%2C%20w%C3%B6rld"), 200)
		if got := sub.next(); got != "data: message,chat,hello, wörld" {
			t.Errorf("message frame = %q", got)
		}
		if got := psub.next(); got != "data: pmessage,ch*,chat,hello, wörld" {
			t.Errorf("pmessage frame = %q", got)
		}
		// A line break cannot be inside a data line.
		g.must(post("/redis/publish/chat", "line 1\nline 2"), 200)
		if got := sub.next(); got != "data: message,chat,line 1\ndata: line 2" {
			t.Errorf("multi-line frame = %q", got)
		}
		// The query token works here too.
		q := g.openStream(request{method: "POST", path: "/redis/subscribe/chat?_token=" + testToken, token: "-"})
		if got := q.next(); got != "data: subscribe,chat,1" {
			t.Errorf("first frame with ?_token = %q", got)
		}
		runCmds(t, g, []cmd{
			{req: request{method: "POST", path: "/redis/subscribe/chat", token: "-"}, status: 401, body: cmdErr("ERR missing bearer token")},
		})
	})
}

// Streams outlive REQUEST_TIMEOUT and the server's ReadTimeout, and carry
// heartbeats while idle.
func TestStreamsOutliveDeadlines(t *testing.T) {
	g := startGateway(t, miniBackend(t),
		withConfig(func(c *handlers.Config) {
			c.RequestTimeout = 200 * time.Millisecond
			c.Heartbeat = 50 * time.Millisecond
		}),
		withServer(func(s *http.Server) { s.ReadTimeout = 300 * time.Millisecond }))
	sub := g.openStream(get("/subscribe/c"))
	usub := g.openStream(request{method: "POST", path: "/redis/subscribe/c", body: `[]`})
	if got := usub.next(); got != "data: subscribe,c,1" {
		t.Fatalf("first frame = %q", got)
	}
	if got := sub.comment(); got != ": ping" {
		t.Errorf("heartbeat = %q, want : ping", got)
	}
	time.Sleep(time.Second)
	g.must(request{method: "POST", path: "/publish/c", body: `"late"`}, 200)
	if got := sub.next(); got != `event: message`+"\n"+`data: {"channel":"c","message":"late"}` {
		t.Errorf("event after 1s = %q", got)
	}
	if got := usub.next(); got != `data: message,c,"late"` {
		t.Errorf("frame after 1s = %q", got)
	}
}

// A client going away releases its Redis subscription at once.
func TestStreamReleasedOnDisconnect(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		b.skipOnCluster(t, "PUBSUB NUMSUB and NUMPAT answer for one node")
		g := startGateway(t, b)
		ctx := context.Background()
		sub := g.openStream(get("/subscribe/gone"))
		usub := g.openStream(request{method: "POST", path: "/redis/psubscribe/gone*", body: `[]`})
		usub.next()
		if n := b.rdb.PubSubNumSub(ctx, "gone").Val()["gone"]; n != 1 {
			t.Fatalf("PUBSUB NUMSUB gone = %d while subscribed, want 1", n)
		}
		if n := b.rdb.PubSubNumPat(ctx).Val(); n != 1 {
			t.Fatalf("PUBSUB NUMPAT = %d while subscribed, want 1", n)
		}
		sub.close()
		usub.close()
		waitFor(t, "the subscriptions to be released", func() bool {
			return b.rdb.PubSubNumSub(ctx, "gone").Val()["gone"] == 0 && b.rdb.PubSubNumPat(ctx).Val() == 0
		})
	})
}

// Shutdown ends every stream cleanly: the client sees the end of the body,
// not a broken connection.
func TestStreamsEndOnStop(t *testing.T) {
	stop := make(chan struct{})
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.Stop = stop }))
	sub := g.openStream(get("/subscribe/c"))
	usub := g.openStream(request{method: "POST", path: "/redis/subscribe/c", body: `[]`})
	usub.next()
	close(stop)
	for _, s := range []*stream{sub, usub} {
		if err := s.ended(); err != nil {
			t.Errorf("%s ended with %v, want a clean end", s.name, err)
		}
	}
}

func TestSubscriberCap(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.MaxSubscribers = 2 }))
	first := g.openStream(get("/subscribe/a"))
	g.openStream(request{method: "POST", path: "/redis/subscribe/b", body: `[]`}).next()

	resp := g.must(get("/subscribe/c"), http.StatusServiceUnavailable)
	if resp.header.Get("Retry-After") != "1" || resp.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET /subscribe past the cap: Retry-After %q, %s", resp.header.Get("Retry-After"), resp.header.Get("Content-Type"))
	}
	runCmds(t, g, []cmd{
		{req: post("/redis/subscribe/c", `[]`), status: 503, body: cmdErr("ERR too many open streams (MAX_SUBSCRIBERS); retry later")},
		{req: post("/redis/psubscribe/c*", `[]`), status: 503, body: cmdErr("ERR too many open streams (MAX_SUBSCRIBERS); retry later")},
	})
	if !strings.Contains(g.must(get("/metrics"), 200).body, "redis_gateway_subscribers 2") {
		t.Errorf("/metrics does not count 2 subscribers")
	}
	first.close()
	waitFor(t, "a slot to free up", func() bool {
		return strings.Contains(g.do(get("/metrics")).body, "redis_gateway_subscribers 1")
	})
	g.openStream(get("/subscribe/c"))
}

func TestSubscribeRedisDown(t *testing.T) {
	b := miniBackend(t)
	g := startGateway(t, b)
	b.stop()
	resp := g.must(get("/subscribe/c"), http.StatusServiceUnavailable)
	if resp.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET /subscribe with Redis down: %s", resp.body)
	}
	runCmds(t, g, []cmd{{req: post("/redis/subscribe/c", `[]`), status: 503, body: cmdErr("ERR redis unavailable")}})
	g.must(request{method: "POST", path: "/publish/c", body: `1`}, http.StatusServiceUnavailable)
}

// Opening and dropping 1,000 subscriptions costs no Redis connection of
// their own, and leaves no goroutine and no subscription behind.
func TestThousandSubscriptionsLeaveNothingBehind(t *testing.T) {
	srv := redistest.Start(t)
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
	g := startGateway(t, b, withConfig(func(c *handlers.Config) { c.MaxSubscribers = 1000 }))
	ctx := context.Background()
	clients := func() int {
		list, err := b.rdb.ClientList(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		return strings.Count(list, "\n")
	}
	// Warm up, so what the first stream starts once (pools, timers) is part
	// of the baseline.
	g.openStream(get("/subscribe/warm-up")).close()
	g.must(request{method: "POST", path: "/publish/warm-up", body: `1`}, 200)
	var baseGoroutines, baseClients int
	waitFor(t, "a stable baseline", func() bool {
		g1, c1 := runtime.NumGoroutine(), clients()
		time.Sleep(100 * time.Millisecond)
		baseGoroutines, baseClients = runtime.NumGoroutine(), clients()
		return g1 == baseGoroutines && c1 == baseClients
	})

	const batches, perBatch = 5, 200
	for batch := range batches {
		streams := make([]*stream, perBatch)
		errs := make([]error, perBatch)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Half the gateway's own streams, half the Upstash ones.
				req := get(fmt.Sprintf("/subscribe/ch-%d-%d", batch, i))
				if i%2 == 1 {
					req = request{method: "POST", path: fmt.Sprintf("/redis/subscribe/ch-%d-%d", batch, i), body: `[]`}
				}
				streams[i], errs[i] = g.tryOpenStream(req)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("batch %d: %v", batch, err)
			}
		}
		// The streams share the subscriber connection the warm-up opened.
		if got := clients(); got != baseClients {
			t.Errorf("batch %d: %d Redis clients with %d streams open, want %d", batch, got, perBatch, baseClients)
		}
		if n := len(b.rdb.PubSubChannels(ctx, "ch-*").Val()); n != perBatch {
			t.Errorf("batch %d: PUBSUB CHANNELS ch-* lists %d with %d streams open", batch, n, perBatch)
		}
		for _, s := range streams {
			s.close()
		}
	}
	waitFor(t, "every channel to be unsubscribed", func() bool { return len(b.rdb.PubSubChannels(ctx, "ch-*").Val()) == 0 })
	waitFor(t, fmt.Sprintf("Redis clients to return to %d", baseClients), func() bool { return clients() == baseClients })
	waitFor(t, fmt.Sprintf("goroutines to return to %d", baseGoroutines), func() bool { return runtime.NumGoroutine() <= baseGoroutines })
	if n := b.rdb.PubSubNumPat(ctx).Val(); n != 0 {
		t.Errorf("PUBSUB NUMPAT = %d after all streams closed", n)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every stream of a channel or pattern gets every message, once, in the
// order it was published, whatever the mix of streams sharing the gateway's
// one subscriber connection.
func TestFanOutDeliversEveryMessageInOrder(t *testing.T) {
	skipIfShort(t)
	srv := redistest.Start(t)
	b := backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
	const perKind, messages = 50, 100
	// The queue holds every message: what is checked here is the fan-out,
	// not how fast the test reads.
	g := startGateway(t, b, withConfig(func(c *handlers.Config) { c.SubscriberBuffer = messages }))

	kinds := []struct {
		req   request
		frame func(i int) string
	}{
		{get("/subscribe/fan"), func(i int) string {
			return fmt.Sprintf("event: message\ndata: {\"channel\":\"fan\",\"message\":{\"n\":%d}}", i)
		}},
		{get("/subscribe?pattern=fa%3F"), func(i int) string {
			return fmt.Sprintf("event: message\ndata: {\"pattern\":\"fa?\",\"channel\":\"fan\",\"message\":{\"n\":%d}}", i)
		}},
		{post("/redis/subscribe/fan", `[]`), func(i int) string { return fmt.Sprintf(`data: message,fan,{"n":%d}`, i) }},
	}
	type sub struct {
		s     *stream
		frame func(int) string
	}
	var subs []sub
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range kinds {
		for range perKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := g.tryOpenStream(k.req)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				subs = append(subs, sub{s, k.frame})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if n := pubsubConnections(t, b); n != 1 {
		t.Errorf("%d streams use %d subscriber connections, want 1", len(subs), n)
	}

	for i := range messages {
		g.must(request{method: "POST", path: "/publish/fan", body: fmt.Sprintf(`{"n":%d}`, i)}, http.StatusOK)
	}
	for _, s := range subs {
		if strings.HasPrefix(s.s.name, "POST") {
			s.s.next() // subscribe,fan,1
		}
		for i := range messages {
			if got, want := s.s.next(), s.frame(i); got != want {
				t.Fatalf("%s: event %d = %q, want %q", s.s.name, i, got, want)
			}
		}
	}
	// And not one more.
	g.must(request{method: "POST", path: "/publish/fan", body: `"end"`}, http.StatusOK)
	for _, s := range subs {
		if got := s.s.next(); !strings.Contains(got, `"end"`) {
			t.Fatalf("%s: event after the last = %q, want the end marker", s.s.name, got)
		}
	}
}

// A client that stops reading is dropped once its queue is full, with a
// last event after what it was sent; meanwhile the streams sharing its
// channel get every message as it comes.
func TestSlowReaderIsDroppedWithoutDelayingOthers(t *testing.T) {
	skipIfShort(t)
	const buffer = 4
	stop := make(chan struct{})
	g := startGateway(t, serverBackend(t), withConfig(func(c *handlers.Config) {
		c.SubscriberBuffer = buffer
		c.MaxBodyBytes = 64 << 10
		c.Stop = stop
	}))
	t.Cleanup(func() { close(stop) })

	// The slow client reads the response's head, then nothing until the end.
	conn, slow := stalledClient(t, g, "/subscribe/busy")
	defer conn.Close()

	fast := make([]*stream, 5)
	for i := range fast {
		fast[i] = g.openStream(get("/subscribe/busy"))
	}
	dropped := func() bool {
		return strings.Contains(g.must(get("/metrics"), http.StatusOK).body, "redis_gateway_subscribers_dropped_total 1")
	}
	payload := strings.Repeat("x", 32<<10)
	frame := func(i int) string {
		return fmt.Sprintf("event: message\ndata: {\"channel\":\"busy\",\"message\":\"%d %s\"}", i, payload)
	}
	// Each message reaches every fast stream before the next is published:
	// a slow stream that held up the fan-out would stop them here.
	sent := 0
	for ; sent < 5000 && !dropped(); sent++ {
		g.must(request{method: "POST", path: "/publish/busy", body: fmt.Sprintf(`"%d %s"`, sent, payload)}, http.StatusOK)
		for _, s := range fast {
			if got := s.next(); got != frame(sent) {
				t.Fatalf("fast stream: event %d = %.80q..., want %.80q...", sent, got, frame(sent))
			}
		}
	}
	if !dropped() {
		t.Fatalf("the slow stream was not dropped after %d messages of %d bytes", sent, len(payload))
	}

	// Reading at last, the slow client finds the messages it was sent, in
	// order and none missing, then the dropped event, then the end.
	events, err := readEvents(slow.Body)
	if err != nil {
		t.Fatalf("slow client: stream ended with %v, want a clean end", err)
	}
	if len(events) == 0 || events[len(events)-1] != "event: dropped\ndata: {\"reason\":\"slow-reader\"}" {
		t.Fatalf("slow client: last event = %.80q, want the dropped event", events[len(events)-1:])
	}
	got := events[:len(events)-1]
	if len(got) < buffer || len(got) >= sent {
		t.Errorf("slow client got %d messages of %d sent, want at least the queue's %d and fewer than all", len(got), sent, buffer)
	}
	for i, e := range got {
		if e != frame(i) {
			t.Fatalf("slow client: event %d = %.80q..., want %.80q...", i, e, frame(i))
		}
	}
	// The fast streams go on.
	g.must(request{method: "POST", path: "/publish/busy", body: `"after"`}, http.StatusOK)
	for _, s := range fast {
		if got := s.next(); got != "event: message\ndata: {\"channel\":\"busy\",\"message\":\"after\"}" {
			t.Errorf("fast stream after the drop: %q", got)
		}
	}
}

// readEvents reads an event stream to its end, leaving out comments.
func readEvents(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	var events, lines []string
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "":
			if len(lines) > 0 {
				events = append(events, strings.Join(lines, "\n"))
			}
			lines = nil
		case !strings.HasPrefix(line, ":"):
			lines = append(lines, line)
		}
	}
	return events, sc.Err()
}

// pubsubConnections counts the server's connections in subscriber mode.
func pubsubConnections(t *testing.T, b backend) int {
	t.Helper()
	list, err := b.rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.Contains(line, " sub=0 ") || !strings.Contains(line, " psub=0 ") {
			n++
		}
	}
	return n
}

// Over HTTP/1.1 a stream is served off its handler, which returns once the
// connection is taken over: its access log line comes while the stream is
// open. A response writer in the middleware that hid the connection would
// leave every stream parked in its handler, at twice the memory.
func TestStreamsServedOffTheHandler(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	for _, req := range []request{get("/subscribe/c"), post("/redis/subscribe/c", `[]`)} {
		id := "stream-" + strings.ReplaceAll(req.path, "/", "-")
		s := g.openStream(with(req, "X-Request-Id", id))
		if req.method == "POST" {
			s.next() // subscribe,c,1
		}
		waitFor(t, "the access log line of "+s.name, func() bool {
			logs := g.logs.String()
			return logs != "" && logLinesFor(t, logs, id) == 1
		})
		g.must(request{method: "POST", path: "/publish/c", body: `"still open"`}, http.StatusOK)
		if got := s.next(); !strings.Contains(got, "still open") {
			t.Errorf("%s after its handler returned: %q", s.name, got)
		}
		var line struct{ Status int }
		for _, l := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(l, id) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
			}
		}
		if line.Status != http.StatusOK {
			t.Errorf("%s: access log status %d, want 200", s.name, line.Status)
		}
	}
}

// A client that reads nothing for four heartbeats loses its stream, and its
// MAX_SUBSCRIBERS slot comes back, even when it keeps its connection open.
func TestStalledStreamIsClosed(t *testing.T) {
	skipIfShort(t)
	g := startGateway(t, serverBackend(t), withConfig(func(c *handlers.Config) {
		c.SubscriberBuffer = 1
		c.MaxBodyBytes = 64 << 10
		c.Heartbeat = 100 * time.Millisecond
	}))
	conn, _ := stalledClient(t, g, "/subscribe/stall")
	defer conn.Close()
	metric := func(line string) bool {
		return strings.Contains(g.must(get("/metrics"), http.StatusOK).body, "\n"+line+"\n")
	}
	payload := strings.Repeat("x", 32<<10)
	for sent := 0; !metric("redis_gateway_subscribers_dropped_total 1"); sent++ {
		if sent == 5000 {
			t.Fatalf("the stalled stream was not dropped after %d messages of %d bytes", sent, len(payload))
		}
		g.must(request{method: "POST", path: "/publish/stall", body: `"` + payload + `"`}, http.StatusOK)
	}
	waitFor(t, "the stalled stream to give back its slot", func() bool { return metric("redis_gateway_subscribers 0") })
}

// stalledClient opens a stream on a connection of its own with a small
// receive buffer, reads the response's head, and leaves the body unread.
func stalledClient(t *testing.T, g *gateway, path string) (net.Conn, *http.Response) {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", g.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v, %v", path, resp, err)
	}
	return conn, resp
}
