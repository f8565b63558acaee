package handlers

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/redis-gateway/redis-gateway/internal/jsonquote"
	"github.com/redis-gateway/redis-gateway/store"
)

// The command API reads and writes small JSON on every request: a flat
// array of arguments in, {"result": ...} out. encoding/json spends more on
// that, by reflection into []any and back, than the rest of the handler;
// this file reads the usual shapes and writes every reply by hand.

// scanCommand reads body as one command, a JSON array of strings, numbers
// and booleans, as encoding/json and commandArgs read it; false for
// anything else (empty, nested, null, malformed), which the caller gives to
// encoding/json to refuse in its words.
func scanCommand(body []byte) ([]string, bool) {
	p := argScanner{s: string(body)} // one copy: every argument is a piece of it
	p.space()
	args, ok := p.array(make([]string, 0, strings.Count(p.s, ",")+1))
	p.space()
	return args, ok && p.i == len(p.s)
}

// scanCommands is scanCommand for a pipeline or transaction: a non-empty
// array of commands.
func scanCommands(body []byte) ([][]string, bool) {
	p := argScanner{s: string(body)}
	p.space()
	if !p.skip('[') {
		return nil, false
	}
	// Every command's arguments share one array.
	all := make([]string, 0, strings.Count(p.s, ",")+1)
	cmds := make([][]string, 0, strings.Count(p.s, "["))
	for {
		p.space()
		start := len(all)
		var ok bool
		if all, ok = p.array(all); !ok {
			return nil, false
		}
		cmds = append(cmds, all[start:len(all):len(all)])
		p.space()
		if p.skip(']') {
			break
		}
		if !p.skip(',') {
			return nil, false
		}
	}
	p.space()
	return cmds, p.i == len(p.s)
}

// argScanner reads JSON at s[i:].
type argScanner struct {
	s string
	i int
}

func (p *argScanner) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *argScanner) skip(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// array appends the values of a non-empty array of scalars to args.
func (p *argScanner) array(args []string) ([]string, bool) {
	if !p.skip('[') {
		return args, false
	}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		return args, false // no command name: encoding/json's path says so
	}
	for {
		a, ok := p.scalar()
		if !ok {
			return args, false
		}
		args = append(args, a)
		p.space()
		switch {
		case p.skip(']'):
			return args, true
		case !p.skip(','):
			return args, false
		}
		p.space()
	}
}

// scalar reads a string, a number exactly as written, or a boolean as
// "true" or "false".
func (p *argScanner) scalar() (string, bool) {
	if p.i >= len(p.s) {
		return "", false
	}
	rest := p.s[p.i:]
	switch c := rest[0]; {
	case c == '"':
		return p.str()
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case strings.HasPrefix(rest, "true"):
		p.i += 4
		return "true", true
	case strings.HasPrefix(rest, "false"):
		p.i += 5
		return "false", true
	}
	return "", false
}

// str reads a string. One with escapes is rare enough to leave to
// encoding/json, which also decides what a lone surrogate becomes.
func (p *argScanner) str() (string, bool) {
	start := p.i
	escaped, ascii := false, true
	for j := start + 1; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			p.i = j + 1
			s := p.s[start+1 : j]
			if !ascii && !utf8.ValidString(s) {
				return "", false // encoding/json would make U+FFFD of it
			}
			if !escaped {
				return s, true
			}
			var out string
			if json.Unmarshal([]byte(p.s[start:j+1]), &out) != nil {
				return "", false
			}
			return out, true
		case c == '\\':
			escaped = true
			j++ // the escaped byte, which may be a quote
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// number reads a number by JSON's grammar.
func (p *argScanner) number() (string, bool) {
	s, i := p.s, p.i
	digits := func() int {
		from := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i - from
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return "", false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return "", false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", false
		}
	}
	n := s[p.i:i]
	p.i = i
	return n, true
}

// replyBufs hold replies while they are written; one that grew past
// maxPooledReply is left to the garbage collector rather than kept.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledReply = 64 << 10

func getReplyBuf() *[]byte { return replyBufs.Get().(*[]byte) }

func putReplyBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledReply {
		*bp = b[:0]
		replyBufs.Put(bp)
	}
}

// appendJSONReply appends a reply as its JSON value: nil is null, integers
// are numbers, arrays nest. With b64 every string is base64, as the Upstash
// clients decode them, except a whole result that is "OK": their decoder
// takes that one as it is, but decodes every string inside an array.
// Without b64, bytes that are not UTF-8 cannot survive JSON.
func appendJSONReply(b []byte, r store.Reply, b64 bool) []byte {
	if s, ok := r.(string); ok && s == "OK" {
		return append(b, `"OK"`...)
	}
	return appendJSONValue(b, r, b64)
}

func appendJSONValue(b []byte, r store.Reply, b64 bool) []byte {
	switch v := r.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case string:
		if b64 {
			return appendBase64(b, v)
		}
		return jsonquote.Append(b, v)
	case store.ReplyError:
		return appendJSONValue(b, string(v), b64)
	case []store.Reply:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONValue(b, e, b64)
		}
		return append(b, ']')
	default:
		// The store gives only the types above.
		out, err := json.Marshal(v)
		if err != nil {
			panic("encode reply: " + err.Error())
		}
		return append(b, out...)
	}
}

// appendBase64 appends s in standard base64, quoted, through a buffer on
// the stack rather than a copy of s.
func appendBase64(b []byte, s string) []byte {
	var chunk [3 * 256]byte // a multiple of 3: no padding but at the end
	b = append(b, '"')
	for len(s) > 0 {
		n := copy(chunk[:], s)
		b = base64.StdEncoding.AppendEncode(b, chunk[:n])
		s = s[n:]
	}
	return append(b, '"')
}
