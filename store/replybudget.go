package store

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Bounded replies: the command API runs commands its clients choose, and one
// GET of a 500 MB value, or a pipeline of many large ones, would make the
// gateway hold all of it. go-redis reads a reply whole, allocating each
// bulk string at the size its header declares, so the bound must hold
// before go-redis sees the bytes: the command API's connections count what
// they read, and look at the length each RESP header declares as it
// passes, from the moment a command is written until the next one is.
// Past the budget the read fails with *ReplyTooLargeError; go-redis then
// discards the connection, with the rest of that reply unread.

// DefaultMaxReplyBytes is MAX_REPLY_BYTES's default.
const DefaultMaxReplyBytes = 16 << 20

// ReplyTooLargeError is a reply (or the replies of a pipeline or
// transaction) larger than MAX_REPLY_BYTES.
type ReplyTooLargeError struct {
	Limit int64
}

func (e *ReplyTooLargeError) Error() string {
	return fmt.Sprintf("ERR reply exceeds MAX_REPLY_BYTES (%d bytes): ask for less (GETRANGE, LRANGE with bounds, SCAN with COUNT), or in several requests", e.Limit)
}

// budgetDialer wraps dial so every connection it makes holds replies to
// limit bytes per round trip.
func budgetDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), limit int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		bc := &budgetConn{Conn: c, limit: limit}
		if sc, ok := c.(syscall.Conn); ok {
			return &budgetSyscallConn{budgetConn: bc, sc: sc}, nil
		}
		return bc, nil
	}
}

// budgetSyscallConn is a budgetConn over a plain socket, which go-redis's
// pool checks for a closed peer before reusing it (a restarted Redis); the
// budget adds no buffering that check could miss. Over TLS, go-redis checks
// nothing either way.
type budgetSyscallConn struct {
	*budgetConn
	sc syscall.Conn
}

func (c *budgetSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// budgetConn counts the bytes of the replies to the commands last written.
// go-redis uses a connection from one goroutine at a time.
type budgetConn struct {
	net.Conn
	limit   int64
	used    int64 // reply bytes read since the last write
	reading bool  // a read came after the last write
	scan    respScan
	failed  error // once over the budget, the connection stays unusable
}

func (c *budgetConn) Write(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	if c.reading {
		c.used, c.reading, c.scan = 0, false, respScan{}
	}
	return c.Conn.Write(p)
}

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	c.reading = true
	n, err := c.Conn.Read(p)
	if n > 0 {
		if !c.scan.feed(p[:n], c.used, c.limit) || c.used+int64(n) > c.limit {
			c.failed = &ReplyTooLargeError{Limit: c.limit}
			return 0, c.failed
		}
		c.used += int64(n)
	}
	return n, err
}

// respScan follows a RESP stream just enough to see the length each header
// declares: the bulk strings go-redis will allocate whole, and the arrays
// whose elements it will allocate room for.
type respScan struct {
	skip int64  // bytes of a bulk string's body (and CRLF) still to pass
	line []byte // the header line read so far, at most maxHeader bytes
	long bool   // the current line is longer than any length header
}

// maxHeader is the longest header line that can declare a length: a type
// byte and a 64-bit integer.
const maxHeader = 24

// feed passes b, which follows the used bytes of the replies, and reports
// whether every length declared so far fits within limit.
func (s *respScan) feed(b []byte, used, limit int64) bool {
	for i := 0; i < len(b); {
		if s.skip > 0 {
			n := min(s.skip, int64(len(b)-i))
			s.skip -= n
			i += int(n)
			continue
		}
		c := b[i]
		i++
		if c != '\n' {
			switch {
			case '0' <= c && c <= '9' && leadingZero(s.line):
				// "$007" declares 7 bytes: the zeros are dropped, so that
				// padding cannot push a length past maxHeader unseen.
				s.line[len(s.line)-1] = c
			case len(s.line) < maxHeader:
				s.line = append(s.line, c)
			default:
				s.long = true
			}
			continue
		}
		line, long := s.line, s.long
		s.line, s.long = s.line[:0], false
		if long || len(line) < 2 || line[len(line)-1] != '\r' {
			continue // a simple string, error or integer: no length
		}
		n, err := strconv.ParseInt(string(line[1:len(line)-1]), 10, 64)
		if err != nil || n < 0 {
			continue
		}
		at := used + int64(i) // the bytes up to the end of this header
		switch line[0] {
		case '$', '=', '!': // bulk, verbatim and bulk-error strings
			if n > limit || at+n+2 > limit {
				return false
			}
			s.skip = n + 2
		case '*', '~', '>': // arrays, sets, pushes: each element takes at least 3 bytes
			if n > limit/3 || at+3*n > limit {
				return false
			}
		case '%', '|': // maps and attributes: two elements per entry
			if n > limit/6 || at+6*n > limit {
				return false
			}
		}
	}
	return true
}

// leadingZero reports whether line is a type byte, an optional sign and
// one 0: a digit after it makes the 0 a leading zero.
func leadingZero(line []byte) bool {
	n := len(line)
	if n < 2 || line[n-1] != '0' {
		return false
	}
	return n == 2 || n == 3 && (line[1] == '+' || line[1] == '-')
}

// replySize is about how many bytes r took as RESP, to hold a request's
// replies from several connections (a cluster pipeline's nodes, a command
// every primary runs) to the same budget as one connection's.
func replySize(r Reply) int64 {
	switch v := r.(type) {
	case string:
		return int64(len(v)) + 16
	case ReplyError:
		return int64(len(v)) + 3
	case []Reply:
		n := int64(16)
		for _, e := range v {
			n += replySize(e)
		}
		return n
	}
	return 16
}
