package access

// The globs of a token's keys and channels are Redis's own glob dialect, the
// one KEYS, SCAN MATCH and PSUBSCRIBE speak, so a pattern means the same in a
// tokens file as in redis-cli: * is any run of bytes (":" and "/" included),
// ? is one byte, [abc], [a-z] and [^a] are classes, and \ takes the next byte
// literally. Go's path.Match is not it: its * stops at "/", and keys and
// channels are not paths.

// Match reports whether s matches the Redis glob pattern, byte for byte and
// case-sensitively, as Redis's stringmatchlen does.
func Match(pattern, s string) bool {
	p, i := 0, 0
	// Where to resume after the last *: the pattern after it, and the next
	// byte of s it has not yet swallowed.
	star, resume := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				star, resume = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if next, ok := matchClass(pattern, p, s[i]); ok {
					p = next
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					c = pattern[p+1]
					if c == s[i] {
						p += 2
						i++
						continue
					}
					break
				}
				fallthrough // a trailing backslash is itself
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		resume++
		p, i = star+1, resume
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class that opens at pattern[open] ('['),
// and returns where the pattern continues after it. Like Redis, a class with
// no closing ']' runs to the end of the pattern.
func matchClass(pattern string, open int, b byte) (int, bool) {
	p := open + 1
	negate := p < len(pattern) && pattern[p] == '^'
	if negate {
		p++
	}
	match := false
	for p < len(pattern) && pattern[p] != ']' {
		switch {
		case pattern[p] == '\\' && p+1 < len(pattern):
			p++
			match = match || pattern[p] == b
		case p+2 < len(pattern) && pattern[p+1] == '-':
			lo, hi := pattern[p], pattern[p+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			match = match || (b >= lo && b <= hi)
			p += 2
		default:
			match = match || pattern[p] == b
		}
		p++
	}
	if p < len(pattern) {
		p++ // the ']'
	}
	return p, match != negate
}

// literal reports whether pattern has no glob metacharacters, so that it
// matches exactly itself.
func literal(pattern string) bool {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*', '?', '[', '\\':
			return false
		}
	}
	return true
}

// within reports whether every string that pattern matches is matched by
// glob. Deciding that in general is costly, so within admits three cases a
// client meets in practice, and refuses the rest: pattern is literal and
// matches glob; pattern is glob; or glob is a literal prefix followed by one
// *, and pattern starts with that prefix, taken literally.
func within(pattern, glob string) bool {
	if pattern == glob || literal(pattern) && Match(glob, pattern) {
		return true
	}
	if glob == "" || glob[len(glob)-1] != '*' {
		return false
	}
	prefix := glob[:len(glob)-1]
	if !literal(prefix) {
		return false
	}
	return len(pattern) >= len(prefix) && pattern[:len(prefix)] == prefix
}

// checkGlob refuses globs that Redis would read differently from how a
// person would: a class that never closes, or a trailing backslash.
func checkGlob(glob string) string {
	switch {
	case glob == "":
		return "is empty"
	case len(glob) > 1024:
		return "is longer than 1024 bytes"
	}
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '\\':
			if i+1 == len(glob) {
				return "ends with a lone backslash"
			}
			i++
		case '[':
			j := i + 1
			if j < len(glob) && glob[j] == '^' {
				j++
			}
			for ; j < len(glob) && glob[j] != ']'; j++ {
				if glob[j] == '\\' {
					j++
				}
			}
			if j >= len(glob) {
				return "has a [ with no closing ]"
			}
			i = j
		}
	}
	return ""
}
