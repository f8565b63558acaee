package redistest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Forwarder is a TCP forwarder on a loopback port, standing in for an
// endpoint whose target can change, like the primary endpoint of an
// ElastiCache replication group after a failover: new connections go to the
// current target, open ones stay where they are.
type Forwarder struct {
	t      testing.TB
	ln     net.Listener
	target atomic.Pointer[string]
	cut    atomic.Pointer[[]byte] // what the request to cut contains; empty = any
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// Forward starts a forwarder to target, closed when the test ends.
func Forward(t testing.TB, target string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("forwarder: %v", err)
	}
	f := &Forwarder{t: t, ln: ln}
	f.target.Store(&target)
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// Addr is host:port to connect to.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// To sends new connections to target from now on.
func (f *Forwarder) To(target string) { f.target.Store(&target) }

// CutNextReply makes the forwarder deliver the next request it sees on any
// connection, give Redis a moment to run it, and then close that connection
// without passing the reply on: the command ran, and the client cannot know.
func (f *Forwarder) CutNextReply() { f.cut.Store(&[]byte{}) }

// CutReplyTo is CutNextReply for the next request naming command (as go-redis
// sends it, in lower case): the requests before it pass untouched.
func (f *Forwarder) CutReplyTo(command string) {
	b := []byte("\r\n" + command + "\r\n")
	f.cut.Store(&b)
}

// Close stops accepting and closes every connection.
func (f *Forwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		client, err := f.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", *f.target.Load())
		if err != nil {
			client.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, client, server)
		f.mu.Unlock()
		p := &pipe{client: client, server: server}
		f.wg.Add(2)
		go func() {
			defer f.wg.Done()
			defer server.Close()
			f.requests(p)
		}()
		go func() {
			defer f.wg.Done()
			defer client.Close()
			p.replies()
		}()
	}
}

// pipe is one forwarded connection.
type pipe struct {
	client, server net.Conn
	swallow        atomic.Bool // replies are dropped: the connection is being cut
}

func (p *pipe) replies() {
	buf := make([]byte, 32<<10)
	for {
		n, err := p.server.Read(buf)
		if n > 0 && !p.swallow.Load() {
			if _, werr := p.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil || p.swallow.Load() {
			return
		}
	}
}

// requests copies client to server, cutting the connection after a request
// when asked to.
func (f *Forwarder) requests(p *pipe) {
	buf := make([]byte, 32<<10)
	for {
		n, err := p.client.Read(buf)
		if n > 0 {
			want := f.cut.Load()
			cut := want != nil && bytes.Contains(buf[:n], *want) && f.cut.CompareAndSwap(want, nil)
			if cut {
				p.swallow.Store(true)
			}
			if _, werr := p.server.Write(buf[:n]); werr != nil {
				return
			}
			if cut {
				time.Sleep(50 * time.Millisecond) // Redis runs the request
				p.client.Close()
				return
			}
		}
		if err != nil {
			return
		}
	}
}
