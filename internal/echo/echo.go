// Package echo bounds how much of a client's input the gateway repeats back:
// in error details, in NOPERM messages and in log lines.
package echo

import (
	"strconv"
	"unicode/utf8"
)

// MaxValue is how many bytes of one echoed key, pattern, channel or value are
// shown; MaxMessage bounds a whole message (a problem's detail, a log line's
// error) that may hold several, or Redis's own words about the input.
const (
	MaxValue   = 256
	MaxMessage = 1024
)

// Quote quotes s as %q does, cut at MaxValue bytes: a longer s keeps its
// first bytes and says its full length, "\"abc…\" (1048576 bytes)".
func Quote(s string) string {
	if len(s) <= MaxValue {
		return strconv.Quote(s)
	}
	return strconv.Quote(prefix(s, MaxValue)+"…") + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// Message cuts a whole message at MaxMessage bytes, saying its full length.
func Message(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	return prefix(s, MaxMessage) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// prefix is s cut at n bytes, backed off to a character boundary so the cut
// adds no broken character of its own.
func prefix(s string, n int) string {
	cut := n
	for cut > n-utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == n-utf8.UTFMax || cut == 0 { // not UTF-8 here anyway: cut where asked
		cut = n
	}
	return s[:cut]
}

// MaxVerbatim bounds an opaque value a client sends for the gateway to repeat
// unquoted, in a response header and in log lines: a request id, a sync
// token.
const MaxVerbatim = 128

// Verbatim reports whether s may be repeated as it is: 1 to MaxVerbatim bytes
// of visible ASCII, nothing that could split a header or a log line.
func Verbatim(s string) bool {
	if s == "" || len(s) > MaxVerbatim {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
