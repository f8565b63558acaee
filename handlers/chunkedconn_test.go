package handlers

import (
	"net"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps what is written to it, one entry a Write, as the
// server's own wrapped connections would pass each Write to the kernel.
type recordingConn struct {
	net.Conn
	writes []string
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.writes = append(c.writes, string(b))
	return len(b), nil
}

func TestChunkedConnWritesEachChunkAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
		want    []string
	}{
		{"HTTP/1.1", true, []string{"14\r\nevent: a\n\nevent: b\n\n\r\n", "0\r\n\r\n"}},
		{"HTTP/1.0", false, []string{"event: a\n\nevent: b\n\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			conn := &recordingConn{Conn: server}
			c := newChunkedConn(conn, tt.chunked, time.Minute, &sync.Pool{}, nil)
			if !c.write([]byte("event: a\n\n"), []byte("event: b\n\n")) {
				t.Fatal("write failed")
			}
			if !c.write() {
				t.Fatal("empty write failed")
			}
			c.end()
			<-c.gone
			if len(conn.writes) != len(tt.want) {
				t.Fatalf("writes = %q, want %q", conn.writes, tt.want)
			}
			for i := range tt.want {
				if conn.writes[i] != tt.want[i] {
					t.Errorf("write %d = %q, want %q", i, conn.writes[i], tt.want[i])
				}
			}
		})
	}
}

// deadlineConn keeps the write deadlines set on it.
type deadlineConn struct {
	recordingConn
	deadlines []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

// Every write may wait stall for the client, however seldom the deadline is
// moved.
func TestChunkedConnGivesEveryWriteItsStall(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	const stall = time.Hour
	conn := &deadlineConn{recordingConn: recordingConn{Conn: server}}
	c := newChunkedConn(conn, true, stall, &sync.Pool{}, nil)
	defer func() {
		c.end()
		<-c.gone
	}()
	write := func() {
		t.Helper()
		before := time.Now()
		if !c.write([]byte("event: a\n\n")) {
			t.Fatal("write failed")
		}
		if len(conn.deadlines) == 0 || conn.deadlines[len(conn.deadlines)-1].Before(before.Add(stall)) {
			t.Fatalf("deadlines %v: a write at %v may not wait %v", conn.deadlines, before, stall)
		}
	}
	for range 3 {
		write()
	}
	if len(conn.deadlines) != 1 {
		t.Errorf("%d deadlines set for 3 writes in a row, want 1", len(conn.deadlines))
	}
	// As if nearly stall had passed since the deadline was set.
	c.deadline = time.Now().Add(stall - time.Second)
	write()
	if len(conn.deadlines) != 2 {
		t.Errorf("%d deadlines set, want the deadline moved once more", len(conn.deadlines))
	}
}
