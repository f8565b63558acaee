package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// A report as wrk 4.1 prints it with --latency, a script's non-2xx count
// and socket errors added.
const wrkReport = `Running 10s test @ http://127.0.0.1:41234/cache/hot
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.40ms   12.49ms   1.20s    92.19%
    Req/Sec   599.60    248.27     0.90k    70.00%
  Latency Distribution
     50%  473.00us
     75%    4.85ms
     90%   13.19ms
     99%    1.20s
  6000 requests in 10.02s, 2.66MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:    589.50
Transfer/sec:      2.61MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	want := result{rps: 589.50, p50: 473 * time.Microsecond, p99: 1200 * time.Millisecond, requests: 6000,
		non2xx: 7, socketErr: "connect 0, read 2, write 0, timeout 1", measured: true}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("parseWrk of a failed run: no error")
	}
}

func TestStreamCountsEachMessageOnce(t *testing.T) {
	sent := time.Now().Add(-20 * time.Millisecond).UnixNano()
	events := ""
	// Out of order, a repeat, a heartbeat, an event with no timestamp.
	for _, seq := range []string{"2", "1", "2", "3"} {
		events += "event: message\ndata: {\"channel\":\"c\",\"message\":{\"seq\":" + seq +
			",\"sent\":" + strconv.FormatInt(sent, 10) + "}}\n\n"
	}
	events += ": ping\n\nevent: error\ndata: {\"error\":\"too slow\"}\n\n"
	// As the gateway sends it over HTTP/1.1: a chunk for each event or two.
	var chunked strings.Builder
	for rest := events; rest != ""; {
		n := min(len(rest), 90)
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", n, rest[:n])
		rest = rest[n:]
	}
	chunked.WriteString("0\r\n\r\n")

	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		reads   func(io.Reader) io.Reader
		head    int // bytes of the body read along with the head
	}{
		{"chunked", chunked.String(), true, func(r io.Reader) io.Reader { return r }, 0},
		{"chunked, a byte a read", chunked.String(), true, iotest.OneByteReader, 0},
		{"chunked, partly read with the head", chunked.String(), true, iotest.HalfReader, 50},
		{"not chunked", events, false, iotest.HalfReader, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &stream{head: []byte(tc.body[:tc.head]), rd: tc.reads(strings.NewReader(tc.body[tc.head:])),
				chunked: tc.chunked, buf: make([]byte, 64), seen: make([]bool, 2)}
			s.read()
			if got := s.delivered.Load(); got != 3 {
				t.Errorf("delivered %d, want 3", got)
			}
			if s.duplicated != 1 {
				t.Errorf("duplicated %d, want 1", s.duplicated)
			}
			if len(s.latencies) != 3 || s.latencies[0] < 20*time.Millisecond {
				t.Errorf("latencies %v, want 3 of at least 20ms", s.latencies)
			}
			if !s.endedEarly {
				t.Error("a stream that ended before the bench closed it is not marked")
			}
		})
	}
}

func TestStreamStopsAtBadChunking(t *testing.T) {
	body := "event: message\ndata: {\"seq\":1,\"sent\":1}\n\n"
	s := &stream{rd: strings.NewReader(fmt.Sprintf("%x\r\n%sXX", len(body), body) + "event: message\ndata: {\"seq\":2,\"sent\":1}\n\n"),
		chunked: true, buf: make([]byte, 64), seen: make([]bool, 3)}
	s.read()
	if got := s.delivered.Load(); got != 1 {
		t.Errorf("delivered %d, want 1: nothing after the chunk that does not end in CRLF", got)
	}
}

func TestReadReply(t *testing.T) {
	for in, want := range map[string]string{
		"+OK\r\n":                        "OK",
		":42\r\n":                        "42",
		"$12\r\nhello\r\nworld\r\n":      "hello\r\nworld",
		"*2\r\n$1\r\na\r\n+b\r\n":        "a\nb",
		"$19\r\nconnected_clients:3\r\n": "connected_clients:3",
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(in)))
		if err != nil || got != want {
			t.Errorf("readReply(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := readReply(bufio.NewReader(strings.NewReader("-ERR no\r\n"))); err == nil || err.Error() != "ERR no" {
		t.Errorf("readReply of an error reply: %v", err)
	}
}
