package store

import (
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
