package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/store"
)

// pubSubStore is what publishing and the event streams need from Redis.
type pubSubStore interface {
	Publish(ctx context.Context, channel string, message []byte) (int64, error)
	Subscribe(ctx context.Context, channel string, enc store.Encoder, buffer int) (*store.Subscription, error)
	PSubscribe(ctx context.Context, pattern string, enc store.Encoder, buffer int) (*store.Subscription, error)
}

// Defaults for the event streams when Config leaves them zero.
const (
	defaultMaxSubscribers   = 10000
	defaultSubscriberBuffer = 128
	defaultHeartbeat        = 15 * time.Second
	defaultSetupTimeout     = 5 * time.Second
)

// streams is what every event stream shares: the cap on open streams; how
// many messages a stream may fall behind; the heartbeat that keeps idle
// streams open through proxies and finds vanished clients; and the shutdown
// signal, since http.Server.Shutdown waits for handlers and a stream never
// ends on its own.
type streams struct {
	slots     chan struct{}
	buffer    int
	heartbeat time.Duration
	stop      <-chan struct{}
	// stopped is done once stop is closed: streams ask it to wake them.
	stopped context.Context
	// setup bounds subscribing, which the request deadline no longer does.
	setup time.Duration
	// served counts the streams served after their handler returned.
	served *Streams
	// chunks holds the buffers taken-over streams put their chunks together
	// in. They are shared rather than kept by each stream, since a stream's
	// writes are a tenth of a second apart and ten thousand idle buffers
	// would be memory for nothing.
	chunks sync.Pool
}

// Streams counts the event streams served after their handler returned,
// which http.Server.Shutdown no longer sees, so that shutdown can wait for
// each to end cleanly. Once Wait has begun none is added: a WaitGroup may
// not grow from zero while it is waited on.
type Streams struct {
	mu      sync.Mutex
	waiting bool
	wg      sync.WaitGroup
}

// add counts a stream, unless Wait has begun.
func (s *Streams) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting {
		return false
	}
	s.wg.Add(1)
	return true
}

// Wait waits for the streams counted to end, and counts no more.
func (s *Streams) Wait() {
	s.mu.Lock()
	s.waiting = true
	s.mu.Unlock()
	s.wg.Wait()
}

func newStreams(cfg Config) *streams {
	limit, buffer, heartbeat, setup := cfg.MaxSubscribers, cfg.SubscriberBuffer, cfg.Heartbeat, cfg.RequestTimeout
	if limit <= 0 {
		limit = defaultMaxSubscribers
	}
	if buffer <= 0 {
		buffer = defaultSubscriberBuffer
	}
	if heartbeat <= 0 {
		heartbeat = defaultHeartbeat
	}
	if setup <= 0 {
		setup = defaultSetupTimeout
	}
	st := &streams{slots: make(chan struct{}, limit), buffer: buffer, heartbeat: heartbeat, stop: cfg.Stop, setup: setup,
		served: cfg.Streams}
	if st.served == nil {
		st.served = &Streams{}
	}
	st.stopped = context.Background()
	if cfg.Stop != nil {
		stopped, stopping := context.WithCancel(context.Background())
		st.stopped = stopped
		go func() {
			<-cfg.Stop
			stopping()
		}()
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway",
			Name:      "subscribers",
			Help:      "Open event streams (GET /subscribe, POST /redis/subscribe, POST /redis/psubscribe); they share the gateway's Redis subscriber connection.",
		}, func() float64 { return float64(len(st.slots)) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway",
			Name:      "subscribers_max",
			Help:      "MAX_SUBSCRIBERS: the most open event streams; past it, new ones are answered 503.",
		}, func() float64 { return float64(cap(st.slots)) }))
	}
	return st
}

// frames writes one kind of event stream. As a store.Encoder it encodes
// messages, once for all the streams of a channel or pattern that share it.
type frames interface {
	store.Encoder
	start(b []byte) []byte
	// dropped is the last frame of a stream whose client fell behind.
	dropped(b []byte) []byte
}

// subscribeFunc subscribes a stream whose frames are enc's, queueing at
// most buffer of them.
type subscribeFunc func(ctx context.Context, enc store.Encoder, buffer int) (*store.Subscription, error)

// serve subscribes and streams what arrives until the client goes away, the
// subscription ends or the server shuts down. Errors before the first byte
// is sent are returned; after it, the stream just ends.
func (st *streams) serve(w http.ResponseWriter, r *http.Request, subscribe subscribeFunc, f frames) error {
	select {
	case st.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		return &httpError{Status: http.StatusServiceUnavailable, Slug: "too-many-subscribers",
			Message: "too many open streams (MAX_SUBSCRIBERS); retry later"}
	}
	release := func() { <-st.slots }
	// net/http notices a client going away only once the body has been read
	// to its end; until then a stream would outlive its client.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		release()
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), st.setup)
	sub, err := subscribe(ctx, f, st.buffer)
	cancel()
	if err != nil {
		release()
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would hold events back otherwise
	w.WriteHeader(http.StatusOK)

	// A handler parked for the life of a stream keeps its goroutine's stack,
	// as deep as the middleware, and net/http's buffers for the connection:
	// about 25 KiB a stream. Over HTTP/1.1 the connection is taken over
	// instead, once net/http has sent the head, and two small goroutines
	// serve it. HTTP/2 streams cannot be, and are served in place.
	// Once shutdown waits for the streams, none is taken over: served in
	// place, it ends at once, since Stop is closed by then.
	if st.served.add() {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			out := newChunkedConn(conn, r.ProtoAtLeast(1, 1), stallHeartbeats*st.heartbeat, &st.chunks, sub.Wake) // framed as net/http did
			go func() {
				defer st.served.wg.Done()
				defer release()
				defer sub.Close()
				defer out.end()
				st.stream(sub, f, out.write, out.gone)
			}()
			return nil
		}
		st.served.wg.Done()
	}
	defer release()
	defer sub.Close()
	defer context.AfterFunc(r.Context(), sub.Wake)()
	rc := http.NewResponseController(w)
	st.stream(sub, f, func(frames ...[]byte) bool {
		for _, b := range frames {
			if _, err := w.Write(b); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}, r.Context().Done())
	return nil
}

// stream writes what sub receives until the client is gone, the
// subscription ends or the server shuts down. write sends frames, shared
// with every other stream of the channel and so never changed, at once;
// whatever closes gone also wakes sub.
//
// The goroutine waits on sub.Waiting alone, which everything else it waits
// for also wakes (the heartbeat, shutdown, the client going): a receive from
// one channel costs a fraction of a select over five, once a delivery.
func (st *streams) stream(sub *store.Subscription, f frames, write func(frames ...[]byte) bool, gone <-chan struct{}) {
	if !write(f.start(nil)) {
		return
	}
	defer context.AfterFunc(st.stopped, sub.Wake)()
	var beat atomic.Bool
	heartbeat := time.AfterFunc(st.heartbeat, func() {
		beat.Store(true)
		sub.Wake()
	})
	defer heartbeat.Stop()
	var batch [][]byte
	for range sub.Waiting() {
		select {
		case <-gone:
			return
		case <-st.stop:
			return
		default:
		}
		if beat.Swap(false) {
			if !write(ping) {
				return
			}
			heartbeat.Reset(st.heartbeat)
		}
		// Whether the subscription has ended is asked before taking the
		// queue: once it has, nothing more is queued, and what was queued
		// before the end still goes out, so a dropped client knows exactly
		// where its stream stopped.
		err := sub.Err()
		batch = sub.Take(batch)
		if err != nil {
			if errors.Is(err, store.ErrSlowSubscriber) {
				batch = append(batch, f.dropped(nil))
			}
			write(batch...)
			return
		}
		if len(batch) > 0 && !write(batch...) {
			return
		}
	}
}

// chunkedConn writes the body of a response whose connection was taken over
// once net/http had sent the head: in chunks, as the head announced over
// HTTP/1.1, or, over HTTP/1.0, as plain bytes that closing the connection
// ends.
type chunkedConn struct {
	conn    net.Conn
	chunked bool
	stall   time.Duration // how long a write may wait for the client, at least
	gone    chan struct{} // closed when the client closed or broke the connection
	bufs    *sync.Pool    // of *[]byte, to put chunks together in
	// deadline is the write deadline last set; only write and end use it.
	deadline time.Time
}

// stallHeartbeats is how many heartbeats a write to a taken-over stream may
// wait for its client to read. A client that reads nothing for that long,
// such as one dropped for falling behind that then stopped reading
// altogether, would otherwise hold its MAX_SUBSCRIBERS slot and goroutines
// for as long as TCP keeps the connection.
const stallHeartbeats = 4

// newChunkedConn takes over conn; onGone, if not nil, is called once gone
// is closed.
func newChunkedConn(conn net.Conn, chunked bool, stall time.Duration, bufs *sync.Pool, onGone func()) *chunkedConn {
	c := &chunkedConn{conn: conn, chunked: chunked, stall: stall, gone: make(chan struct{}), bufs: bufs}
	// A stream's client sends nothing more: reading finds out at once when
	// it goes away.
	go func() {
		defer func() {
			close(c.gone)
			if onGone != nil {
				onGone()
			}
		}()
		var b [16]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	return c
}

// write sends frames as one chunk in one system call. The frames are
// copied into one buffer rather than handed to writev, which a wrapped
// connection, as every one the server accepts is, would turn into a write,
// and so a TCP segment, for each of them: three or more a message.
func (c *chunkedConn) write(frames ...[]byte) bool {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n == 0 {
		return true
	}
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := slices.Grow((*bp)[:0], n+20) // the frames, and a chunk's size line and end
	if c.chunked {
		b = append(strconv.AppendInt(b, int64(n), 16), "\r\n"...)
	}
	for _, f := range frames {
		b = append(b, f...)
	}
	if c.chunked {
		b = append(b, "\r\n"...)
	}
	c.extendDeadline()
	_, err := c.conn.Write(b)
	if cap(b) <= maxPooledChunk {
		*bp = b
		c.bufs.Put(bp)
	}
	return err == nil
}

// extendDeadline gives the next write at least stall, and at most an eighth
// more, to be accepted by the client. Moving a connection's deadline updates
// a runtime timer, which at ten messages a second to ten thousand streams
// was a twentieth of the gateway's CPU, so the deadline is set an eighth
// further than needed and moved only once that lead is used up: every few
// seconds rather than at every write.
func (c *chunkedConn) extendDeadline() {
	now := time.Now()
	if c.deadline.Sub(now) >= c.stall {
		return
	}
	c.deadline = now.Add(c.stall + c.stall/8)
	_ = c.conn.SetWriteDeadline(c.deadline)
}

// maxPooledChunk is the largest buffer kept for the next chunk: a rare huge
// batch should not stay pinned in the pool.
const maxPooledChunk = 64 << 10

// end finishes the body, cleanly, and closes the connection.
func (c *chunkedConn) end() {
	if c.chunked {
		c.extendDeadline()
		_, _ = c.conn.Write(lastChunk)
	}
	_ = c.conn.Close()
}

var (
	ping      = []byte(": ping\n\n")
	lastChunk = []byte("0\r\n\r\n")
)

// handlePublish serves POST /publish/{channel}: the JSON body goes to the
// channel as it was sent.
func handlePublish(s pubSubStore, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		channel, err := scopedChannel(r, "channel")
		if err != nil {
			return err
		}
		body, err := readJSON(r, lim.maxDepth)
		if err != nil {
			return err
		}
		n, err := s.Publish(r.Context(), channel, body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, receiversResponse{Receivers: n})
		return nil
	})
}

type receiversResponse struct {
	Receivers int64 `json:"receivers"`
}

// handleSubscribe serves GET /subscribe/{channel} as server-sent events.
func handleSubscribe(s pubSubStore, st *streams) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		channel, err := scopedChannel(r, "channel")
		if err != nil {
			return err
		}
		return st.serve(w, r, func(ctx context.Context, enc store.Encoder, buffer int) (*store.Subscription, error) {
			return s.Subscribe(ctx, channel, enc, buffer)
		}, eventFrames{})
	})
}

// handlePSubscribe serves GET /subscribe?pattern=... as server-sent events.
func handlePSubscribe(s pubSubStore, st *streams) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		q, err := query(r)
		if err != nil {
			return err
		}
		pattern, ok, err := single(q, "pattern")
		if err != nil {
			return err
		}
		if !ok {
			return badRequest("pattern is required (or subscribe to one channel at /subscribe/{channel})")
		}
		if err := checkKey("pattern", pattern); err != nil {
			return err
		}
		if err := access.FromContext(r.Context()).ChannelPattern(pattern); err != nil {
			return err
		}
		return st.serve(w, r, func(ctx context.Context, enc store.Encoder, buffer int) (*store.Subscription, error) {
			return s.PSubscribe(ctx, pattern, enc, buffer)
		}, eventFrames{})
	})
}

// eventFrames are the gateway's own events: "event: message" with the
// channel and the message as JSON; "event: reconnected" when messages may
// have been lost; "event: dropped" last, when the client fell behind.
type eventFrames struct{}

func (eventFrames) start(b []byte) []byte { return b }

func (eventFrames) Gap(b []byte) []byte {
	return append(b, "event: reconnected\ndata: {\"reason\":\"redis-reconnected\"}\n\n"...)
}

func (eventFrames) dropped(b []byte) []byte {
	return append(b, "event: dropped\ndata: {\"reason\":\"slow-reader\"}\n\n"...)
}

type eventData struct {
	Pattern string          `json:"pattern,omitempty"`
	Channel string          `json:"channel"`
	Message json.RawMessage `json:"message"`
}

func (eventFrames) Message(b []byte, m store.Message) []byte {
	d := eventData{Pattern: m.Pattern, Channel: m.Channel, Message: messageJSON(m.Payload)}
	data, err := json.Marshal(d)
	if err != nil {
		// A channel name that is not UTF-8 still encodes; only a bug gets here.
		panic("encode event: " + err.Error())
	}
	b = append(b, "event: message\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// messageJSON is the payload as JSON: itself, compacted onto one line, when
// it is JSON (everything POST /publish sends is), else a JSON string.
func messageJSON(payload string) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, []byte(payload)) == nil {
		return buf.Bytes()
	}
	s, _ := json.Marshal(payload)
	return s
}

// upstashFrames are the frames of the Upstash protocol's subscribe routes:
// "data: message,<channel>,<payload>", payloads as published. The gateway's
// own reconnected and dropped events keep their names, with data in the
// same comma-separated form.
type upstashFrames struct {
	kind string // subscribe or psubscribe
	name string // the channel or pattern
}

// start confirms the subscription; the count is the stream's own
// subscriptions, one, as it would be on a connection of its own.
func (f upstashFrames) start(b []byte) []byte {
	return appendData(b, f.kind+","+f.name+",1")
}

func (f upstashFrames) Gap(b []byte) []byte {
	return appendData(append(b, "event: reconnected\n"...), "reconnected,"+f.name)
}

func (f upstashFrames) dropped(b []byte) []byte {
	return appendData(append(b, "event: dropped\n"...), "dropped,"+f.name)
}

func (f upstashFrames) Message(b []byte, m store.Message) []byte {
	if m.Pattern != "" {
		return appendData(b, "pmessage,"+m.Pattern+","+m.Channel+","+m.Payload)
	}
	return appendData(b, "message,"+m.Channel+","+m.Payload)
}

// appendData writes s as one event. A line break cannot be inside a data
// line, so each line of s gets its own; event-stream readers join them back
// with "\n".
func appendData(b []byte, s string) []byte {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n") {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

// handleUpstashSubscribe serves POST /redis/subscribe/{channel} and
// POST /redis/psubscribe/{pattern}.
func handleUpstashSubscribe(s pubSubStore, st *streams, pattern bool) http.Handler {
	return commandHandler(func(w http.ResponseWriter, r *http.Request) error {
		param := "channel"
		if pattern {
			param = "pattern"
		}
		name, err := pathKey(r, param)
		if err != nil {
			return commandBadRequest("%s", err.Error())
		}
		tok := access.FromContext(r.Context())
		if pattern {
			err = tok.ChannelPattern(name)
		} else {
			err = tok.Channels(name)
		}
		if err != nil {
			return err
		}
		if pattern {
			return st.serve(w, r, func(ctx context.Context, enc store.Encoder, buffer int) (*store.Subscription, error) {
				return s.PSubscribe(ctx, name, enc, buffer)
			}, upstashFrames{kind: "psubscribe", name: name})
		}
		return st.serve(w, r, func(ctx context.Context, enc store.Encoder, buffer int) (*store.Subscription, error) {
			return s.Subscribe(ctx, name, enc, buffer)
		}, upstashFrames{kind: "subscribe", name: name})
	})
}
