package echo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"orders:1", `"orders:1"`},
		{"a\"b\n", `"a\"b\n"`},
		{strings.Repeat("k", MaxValue), `"` + strings.Repeat("k", MaxValue) + `"`},
		{strings.Repeat("k", MaxValue+1), `"` + strings.Repeat("k", MaxValue) + `…" (257 bytes)`},
		{strings.Repeat("k", 1<<20), `"` + strings.Repeat("k", MaxValue) + `…" (1048576 bytes)`},
		// A cut never splits a character: 255 bytes of "k", then "é" (2 bytes) would straddle it.
		{strings.Repeat("k", MaxValue-1) + strings.Repeat("é", 10), `"` + strings.Repeat("k", MaxValue-1) + `…" (275 bytes)`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%.20q... %d bytes) = %.300s, want %.300s", tt.in, len(tt.in), got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	if got := Message("short"); got != "short" {
		t.Errorf("Message(short) = %q", got)
	}
	long := strings.Repeat("é", MaxMessage)
	got := Message(long)
	if !strings.HasSuffix(got, "… (2048 bytes)") || len(got) > MaxMessage+20 || !utf8.ValidString(got) {
		t.Errorf("Message(2048 bytes) = %d bytes ending %q, want at most %d bytes of valid UTF-8 and the length", len(got), got[len(got)-20:], MaxMessage+20)
	}
}

func TestVerbatim(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"abc-123", true},
		{"!~", true},
		{strings.Repeat("x", MaxVerbatim), true},
		{"", false},
		{strings.Repeat("x", MaxVerbatim+1), false},
		{"a b", false},
		{"a\r\nb", false},
		{"a\x7f", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := Verbatim(tt.in); got != tt.want {
			t.Errorf("Verbatim(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
