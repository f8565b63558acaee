package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	fanoutName    = "fan-out"
	fanoutChannel = "bench:fanout"
	// fanoutDials is how many streams are being opened at once.
	fanoutDials = 200
	// fanoutDrain is how long, after the last publish, the subscribers have
	// to receive what is still on its way.
	fanoutDrain = 10 * time.Second
)

// fanoutResult is what the fan-out scenario measured.
type fanoutResult struct {
	want, opened int
	refused      map[string]int // why streams did not open, and how many
	openTime     time.Duration
	endedEarly   int // streams the gateway ended while messages were due
	duplicated   int // messages a stream received again
	published    int
	failed       int // publishes that were not answered 200
	expected     int64
	delivered    int64
	p50, p99     time.Duration
	maxLatency   time.Duration
	redisConns   int // Redis connections the open streams added, at the peak
	pubsubConns  int // of them, subscribed to a channel or pattern, once all are open
	rssKiB       int64
	cpu          time.Duration // of the gateway per delivery
	benchCPU     time.Duration // of the bench's own subscribers and publisher, per delivery
}

func (o options) fanout() bool {
	return o.subscribers > 0 && (o.only == nil || o.only.MatchString(fanoutName))
}

// measureFanout opens the subscriber streams on one channel through a fresh
// gateway, publishes through it at -publish-rate for -duration, each message
// carrying the time it was sent, and counts what every stream received.
func (b *bench) measureFanout(ctx context.Context) (fanoutResult, error) {
	res := fanoutResult{want: b.o.subscribers, refused: map[string]int{}}
	env := []string{"MAX_SUBSCRIBERS=" + strconv.Itoa(b.o.subscribers)}
	pprofAddr := ""
	if b.o.profileDir != "" {
		var err error
		if pprofAddr, err = freeAddr(); err != nil {
			return res, err
		}
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	g, err := b.startGateway(ctx, false, env...)
	if err != nil {
		return res, err
	}
	defer g.stop()
	u, err := url.Parse(g.url)
	if err != nil {
		return res, err
	}
	// What the gateway holds before any stream, such as the near-cache's
	// invalidation subscription, is not the streams'.
	baseline, err := b.redisClients()
	if err != nil {
		return res, err
	}
	subscribed, err := b.pubsubClients()
	if err != nil {
		return res, err
	}

	// Open every stream before the first publish, so each is due every message.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*stream, b.o.subscribers)
	due := b.o.messages()
	var reasons sync.Map
	sem := make(chan struct{}, fanoutDials)
	started := time.Now()
	var opening sync.WaitGroup
	for i := range streams {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		opening.Go(func() {
			defer func() { <-sem }()
			s, err := openStream(ctx, u.Host, b.token, due)
			if err != nil {
				n, _ := reasons.LoadOrStore(err.Error(), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				return
			}
			streams[i] = s
		})
	}
	opening.Wait()
	res.openTime = time.Since(started)
	reasons.Range(func(k, v any) bool {
		res.refused[k.(string)] = int(v.(*atomic.Int64).Load())
		return true
	})
	streams = slices.DeleteFunc(streams, func(s *stream) bool { return s == nil })
	defer func() {
		for _, s := range streams {
			s.conn.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.opened = len(streams)
	fmt.Printf("    %d of %d streams open after %s\n", res.opened, res.want, res.openTime.Round(time.Millisecond))
	var reading sync.WaitGroup
	for _, s := range streams {
		reading.Go(s.read)
	}

	peak, err := b.redisClients()
	if err != nil {
		return res, err
	}
	if res.pubsubConns, err = b.pubsubClients(); err != nil {
		return res, err
	}
	res.pubsubConns -= subscribed

	var profiled sync.WaitGroup
	if pprofAddr != "" {
		seconds := max(1, int((b.o.duration-time.Second)/time.Second))
		profiled.Go(func() {
			b.saveProfile(ctx, pprofAddr, fanoutName, "cpu", fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds))
		})
	}
	cpu, own := processCPU(g.cmd.Process.Pid), processCPU(os.Getpid())
	published, failed := b.publish(ctx, g.url, func() {
		if n, err := b.redisClients(); err == nil {
			peak = max(peak, n)
		}
	})
	res.published, res.failed = published, failed
	res.expected = int64(res.opened) * int64(published)

	// Wait for the messages on their way, then end the streams.
	drain := time.Now().Add(fanoutDrain)
	for time.Now().Before(drain) && delivered(streams) < res.expected {
		time.Sleep(50 * time.Millisecond)
	}
	res.cpu = perRequest(processCPU(g.cmd.Process.Pid)-cpu, delivered(streams))
	res.benchCPU = perRequest(processCPU(os.Getpid())-own, delivered(streams))
	profiled.Wait()
	if pprofAddr != "" {
		b.saveProfile(ctx, pprofAddr, fanoutName, "allocs", "/debug/pprof/allocs")
	}
	res.rssKiB = vmHWM(g.cmd.Process.Pid)
	res.redisConns = peak - baseline
	for _, s := range streams {
		s.closing.Store(true)
		s.conn.Close()
	}
	reading.Wait()

	var latencies []time.Duration
	for _, s := range streams {
		res.delivered += s.delivered.Load()
		res.duplicated += s.duplicated
		if s.endedEarly {
			res.endedEarly++
		}
		latencies = append(latencies, s.latencies...)
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		res.p50 = latencies[len(latencies)/2]
		res.p99 = latencies[len(latencies)*99/100]
		res.maxLatency = latencies[len(latencies)-1]
	}
	fmt.Printf("    %d messages published, %d of %d deliveries, p99 %s\n",
		res.published, res.delivered, res.expected, fmtLatency(res.p99))
	return res, nil
}

// messages is how many the fan-out scenario publishes.
func (o options) messages() int {
	return max(1, int(float64(o.publishRate)*o.duration.Seconds()))
}

// publish sends -publish-rate messages a second for -duration, each in its
// own request so a slow answer does not delay the next message, and calls
// sample once a second meanwhile, on a goroutine of its own.
func (b *bench) publish(ctx context.Context, base string, sample func()) (published, failed int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var ok, bad atomic.Int64
	var sent sync.WaitGroup
	interval := time.Second / time.Duration(b.o.publishRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sampling := make(chan struct{})
	var sampled sync.WaitGroup
	sampled.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				sample()
			case <-sampling:
				return
			}
		}
	})
	defer sampled.Wait()
	defer close(sampling)
	for seq := 1; seq <= b.o.messages(); seq++ {
		sent.Go(func() {
			body := fmt.Sprintf(`{"seq":%d,"sent":%d}`, seq, time.Now().UnixNano())
			status, err := b.send(ctx, client, http.MethodPost, base+"/publish/"+url.PathEscape(fanoutChannel), strings.NewReader(body))
			if err != nil || status != http.StatusOK {
				bad.Add(1)
				return
			}
			ok.Add(1)
		})
		select {
		case <-tick.C:
		case <-ctx.Done():
			sent.Wait()
			return int(ok.Load()), int(bad.Load())
		}
	}
	sent.Wait()
	return int(ok.Load()), int(bad.Load())
}

// stream is one subscriber: an HTTP/1.1 connection of its own reading
// server-sent events. Its reader shares the two cores with the gateway it
// measures, so it reads the connection itself into a buffer it keeps,
// undoes the chunked framing and splits the events without allocating:
// whatever it spends per delivery is taken from the gateway's fan-out.
type stream struct {
	conn    net.Conn
	rd      io.Reader
	head    []byte // body bytes read along with the response's head
	chunked bool
	buf     []byte // every read of the connection, reused
	line    []byte // a line split between two reads, put together
	// The chunked framing: the size line being read, or the bytes of the
	// current chunk still to come, then its CRLF.
	state     chunkState
	chunkLeft int
	// The event being read: its message's sequence number and send time,
	// once a data line has carried them.
	seq, sent int64
	hasData   bool

	delivered atomic.Int64
	// duplicated counts messages received again on the stream.
	duplicated int
	latencies  []time.Duration
	// seen marks the messages received: concurrent publishes may arrive out
	// of order.
	seen       []bool
	closing    atomic.Bool
	endedEarly bool
}

type chunkState uint8

const (
	chunkSize chunkState = iota // the hex digits of a chunk's size
	chunkExt                    // the rest of the size line
	chunkData
	chunkCR // the CRLF after a chunk's data
	chunkLF
	chunkLast // the last chunk came: the body is over
)

// openStream subscribes over a connection of its own, without net/http's
// transport, which would add two goroutines and two buffers to each of
// thousands of streams; http.ReadResponse reads only the head.
func openStream(ctx context.Context, host, token string, due int) (*stream, error) {
	var d net.Dialer
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(dialCtx, "tcp", host)
	if err != nil {
		return nil, simpleErr("dial", err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /subscribe/" + url.PathEscape(fanoutChannel) + " HTTP/1.1\r\nHost: " + host +
		"\r\nAuthorization: Bearer " + token + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, simpleErr("write", err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, simpleErr("read", err)
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
	head, _ := br.Peek(br.Buffered())
	return &stream{conn: conn, rd: conn, head: bytes.Clone(head), chunked: slices.Contains(resp.TransferEncoding, "chunked"),
		buf: make([]byte, 2048), line: make([]byte, 0, 256),
		latencies: make([]time.Duration, 0, due), seen: make([]bool, due+1)}, nil
}

// simpleErr keeps the kind of a failure, not its addresses, so the failures
// of thousands of streams group into a few lines.
func simpleErr(op string, err error) error {
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%s: connection closed", op)
	case isErrno(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: connection reset", op)
	case isErrno(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: connection refused", op)
	case isErrno(err, syscall.EMFILE):
		return fmt.Errorf("%s: too many open files", op)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return fmt.Errorf("%s: timeout", op)
	}
	return fmt.Errorf("%s: %v", op, err)
}

func isErrno(err error, errno syscall.Errno) bool {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e == errno
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

var (
	sentField = []byte(`"sent":`)
	seqField  = []byte(`"seq":`)
	dataField = []byte("data:")
)

// read counts the messages of the stream and when each arrived, until the
// connection ends. Every byte is read and every event parsed; of the data,
// only the two numbers the publisher wrote are looked at, by hand, since
// decoding 100,000 events a second as JSON would take CPU from the gateway.
func (s *stream) read() {
	ok := s.feed(s.head, time.Now().UnixNano())
	s.head = nil
	for ok {
		n, err := s.rd.Read(s.buf)
		if n > 0 {
			// A delivery is timed when its bytes are read, not when the
			// parsing got to it.
			ok = s.feed(s.buf[:n], time.Now().UnixNano())
		}
		if err != nil {
			break
		}
	}
	s.endedEarly = !s.closing.Load()
}

// feed takes bytes of the response body as they come, in chunks unless the
// body is not chunked; false means the body ended, or is not chunked as it
// says.
func (s *stream) feed(p []byte, now int64) bool {
	if !s.chunked {
		s.events(p, now)
		return true
	}
	for len(p) > 0 {
		switch s.state {
		case chunkSize, chunkExt:
			c := p[0]
			p = p[1:]
			switch {
			case c == '\n':
				if s.chunkLeft == 0 {
					s.state = chunkLast
					return false
				}
				s.state = chunkData
			case s.state == chunkExt || c == '\r':
			case c == ';':
				s.state = chunkExt
			default:
				d := hexDigit(c)
				if d < 0 || s.chunkLeft > 1<<24 {
					return false
				}
				s.chunkLeft = s.chunkLeft<<4 | d
			}
		case chunkData:
			n := min(s.chunkLeft, len(p))
			s.events(p[:n], now)
			p, s.chunkLeft = p[n:], s.chunkLeft-n
			if s.chunkLeft == 0 {
				s.state = chunkCR
			}
		case chunkCR, chunkLF:
			want := byte('\r')
			if s.state == chunkLF {
				want = '\n'
			}
			if p[0] != want {
				return false
			}
			p = p[1:]
			s.state++
			if s.state > chunkLF {
				s.state = chunkSize
			}
		default:
			return false
		}
	}
	return true
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// events splits event-stream bytes into lines; a line split between two
// reads is put together in s.line.
func (s *stream) events(p []byte, now int64) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p...)
			return
		}
		line := p[:i]
		if len(s.line) > 0 {
			s.line = append(s.line, line...)
			line = s.line
		}
		s.eventLine(bytes.TrimSuffix(line, []byte("\r")), now)
		s.line, p = s.line[:0], p[i+1:]
	}
}

// eventLine takes one line of the event stream: a data line carries the
// message, and the blank line after it delivers the event.
func (s *stream) eventLine(line []byte, now int64) {
	if len(line) == 0 {
		if s.hasData {
			s.deliver(s.seq, s.sent, now)
		}
		s.hasData = false
		return
	}
	if !bytes.HasPrefix(line, dataField) {
		return // the event's name, a comment such as a heartbeat
	}
	sent, ok := numberAfter(line, sentField)
	seq, ok2 := numberAfter(line, seqField)
	s.seq, s.sent, s.hasData = seq, sent, ok && ok2
}

func (s *stream) deliver(seq, sent, now int64) {
	if seq < 1 || seq > 1<<24 {
		return
	}
	for int64(len(s.seen)) <= seq {
		s.seen = append(s.seen, false)
	}
	if s.seen[seq] {
		s.duplicated++
		return
	}
	s.seen[seq] = true
	s.latencies = append(s.latencies, time.Duration(now-sent))
	s.delivered.Add(1)
}

func numberAfter(line, field []byte) (int64, bool) {
	i := bytes.Index(line, field)
	if i < 0 {
		return 0, false
	}
	var n int64
	digits := 0
	for _, c := range line[i+len(field):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}

func delivered(streams []*stream) int64 {
	var n int64
	for _, s := range streams {
		n += s.delivered.Load()
	}
	return n
}

// redisClients is connected_clients of the single redis-server.
func (b *bench) redisClients() (int, error) {
	info, err := redisDo(b.redis.addr, "INFO", "clients")
	if err != nil {
		return 0, fmt.Errorf("INFO clients: %w", err)
	}
	return strconv.Atoi(infoField(info, "connected_clients"))
}

// pubsubClients counts the connections of the single redis-server that are
// subscribed to a channel or a pattern.
func (b *bench) pubsubClients() (int, error) {
	list, err := redisDo(b.redis.addr, "CLIENT", "LIST")
	if err != nil {
		return 0, fmt.Errorf("CLIENT LIST: %w", err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			if (k == "sub" || k == "psub" || k == "ssub") && v != "0" && v != "" {
				n++
				break
			}
		}
	}
	return n, nil
}
