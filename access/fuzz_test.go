package access

import (
	"strings"
	"testing"
)

// FuzzGlob checks the glob matcher against properties Redis's matching
// has: a pattern with every byte escaped matches exactly that string; a
// literal pattern matches only itself; and within never admits a pattern
// that matches a string its glob does not.
func FuzzGlob(f *testing.F) {
	for _, seed := range [][3]string{
		{"orders:*", "orders:*", "orders:1"},
		{"orders:eu:*", "orders:*", "orders:eu:1"},
		{"orders:1", "orders:*", "orders:1"},
		{"*", "orders:*", "session:alice"},
		{"orders:[a-z]*", "orders:*", "orders:x"},
		{"orders\\:*", "orders:*", "orders:1"},
		{"orders:*", "orders:\\*", "orders:*"},
		{"orders:[", "orders:*", "orders:["},
		{"orders:\\", "orders:*", "orders:\\"},
		{"session:alice", "orders:*", "session:alice"},
		{"orders:?", "orders:?", "orders:1"},
		{"[^o]*", "orders:*", "xyz"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, pattern, glob, s string) {
		if len(pattern) > 64 || len(glob) > 64 || len(s) > 64 {
			return // matching with many * costs time exponential in them, as in Redis
		}
		var quoted strings.Builder
		for i := 0; i < len(s); i++ {
			quoted.WriteByte('\\')
			quoted.WriteByte(s[i])
		}
		if !Match(quoted.String(), s) {
			t.Fatalf("Match(%q, %q) = false, want true", quoted.String(), s)
		}
		if literal(pattern) && Match(pattern, s) != (pattern == s) {
			t.Fatalf("literal %q: Match against %q = %v", pattern, s, Match(pattern, s))
		}
		if checkGlob(glob) == "" && within(pattern, glob) && Match(pattern, s) && !Match(glob, s) {
			t.Fatalf("within(%q, %q), and %q matches the pattern but not the glob", pattern, glob, s)
		}
	})
}
