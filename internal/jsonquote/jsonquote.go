// Package jsonquote quotes strings for JSON written by hand: the access log
// line and the command API's replies, which build their bytes without
// encoding/json's reflection and must still write what it would.
package jsonquote

import "unicode/utf8"

// Append appends s quoted as encoding/json quotes it without HTML escaping
// (an Encoder with SetEscapeHTML(false)).
func Append(b []byte, s string) []byte { return appendQuoted(b, s, true) }

// AppendSlog appends s quoted as log/slog's JSON handler quotes it: as
// Append does, but with \b and \f written as \u0008 and \u000c.
func AppendSlog(b []byte, s string) []byte { return appendQuoted(b, s, false) }

func appendQuoted(b []byte, s string, shortBF bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c == '\b' && shortBF:
				b = append(b, `\b`...)
			case c == '\f' && shortBF:
				b = append(b, `\f`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but they end lines in JavaScript.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
