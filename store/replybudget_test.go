package store

import (
	"strconv"
	"strings"
	"testing"
)

func TestRespScan(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		limit  int64
		ok     bool
	}{
		{"small bulk", "$3\r\nabc\r\n", 64, true},
		{"bulk declared past the limit", "$100\r\n", 64, false},
		{"bulk fitting exactly", "$5\r\nabcde\r\n", 11, true},
		{"bulk one byte over", "$6\r\nabcdef\r\n", 11, false},
		{"a header inside a body is data", "$6\r\n$999\r\n\r\n", 64, true},
		{"array of bulks, the second over", "*2\r\n$10\r\n0123456789\r\n$40\r\n", 64, false},
		{"array declaring more elements than bytes allow", "*100\r\n", 64, false},
		{"nil and integers", "$-1\r\n:12345\r\n*-1\r\n", 64, true},
		{"long simple string", "+" + strings.Repeat("a", 50) + "\r\n", 64, true},
		{"huge length", "$9223372036854775807\r\n", 1 << 30, false},
		{"map", "%100\r\n", 64, false},
	}
	for _, tt := range tests {
		var s respScan
		if got := s.feed([]byte(tt.stream), 0, tt.limit); got != tt.ok {
			t.Errorf("%s: feed = %v, want %v", tt.name, got, tt.ok)
		}
		// Byte by byte, as a slow connection delivers it: the same verdict.
		s = respScan{}
		ok := true
		for i := 0; i < len(tt.stream) && ok; i++ {
			ok = s.feed([]byte{tt.stream[i]}, int64(i), tt.limit)
		}
		if ok != tt.ok {
			t.Errorf("%s, byte by byte: feed = %v, want %v", tt.name, ok, tt.ok)
		}
	}
}

// FuzzRespScan checks that the reply scanner's verdict does not depend on
// how the connection cuts the stream into reads, and that it never accepts
// a bulk string that declares more than the budget.
func FuzzRespScan(f *testing.F) {
	for _, seed := range []string{
		"$3\r\nabc\r\n",
		"*5\r\n$10000000\r\n",
		"$10000001\r\nx",
		"*2\r\n$1\r\na\r\n:1\r\n",
		"+OK\r\n-ERR x\r\n",
		"$-1\r\n*-1\r\n",
		"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
	} {
		f.Add(seed, int64(64), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream string, limit int64, cut uint8) {
		if limit < 1 || len(stream) > 4096 {
			return
		}
		var whole respScan
		want := whole.feed([]byte(stream), 0, limit)
		step := int(cut%16) + 1
		var parts respScan
		got := true
		for i := 0; i < len(stream) && got; i += step {
			got = parts.feed([]byte(stream[i:min(i+step, len(stream))]), int64(i), limit)
		}
		if got != want {
			t.Fatalf("feed(%q, limit %d) = %v whole, %v in reads of %d bytes", stream, limit, want, got, step)
		}
		if want && strings.HasPrefix(stream, "$") {
			if n, err := strconv.ParseInt(strings.SplitN(stream[1:], "\r\n", 2)[0], 10, 64); err == nil && strings.Contains(stream, "\r\n") && n+2 > limit {
				t.Fatalf("feed(%q, limit %d) accepted a bulk string of %d bytes", stream, limit, n)
			}
		}
	})
}
