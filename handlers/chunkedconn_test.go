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
			c := newChunkedConn(conn, tt.chunked, time.Minute, &sync.Pool{})
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
