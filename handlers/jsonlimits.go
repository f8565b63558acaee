package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"unicode/utf8"
)

// DefaultMaxJSONDepth is how deep a JSON body may nest when the
// configuration does not say (MAX_JSON_DEPTH).
const DefaultMaxJSONDepth = 128

// checkJSON holds a body to what the gateway accepts as JSON, in linear time
// and before anything decodes or merges it: within the limits of
// checkJSONLimits, and one valid JSON value. The error says which, to the
// client.
func checkJSON(b []byte, maxDepth int) error {
	if err := checkJSONLimits(b, maxDepth); err != nil {
		return err
	}
	if !json.Valid(b) {
		return errors.New("the body is not valid JSON")
	}
	return nil
}

// checkJSONLimits checks what a JSON syntax check lets through: nesting at
// most maxDepth arrays and objects deep, valid UTF-8, and no lone surrogate
// escape (decoders turn both silently into U+FFFD, so what is read would
// differ from what was written).
func checkJSONLimits(b []byte, maxDepth int) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '[', '{':
			if depth++; depth > maxDepth {
				return fmt.Errorf("the body is nested more than %d arrays and objects deep", maxDepth)
			}
		case ']', '}':
			depth--
		case '"':
			end, err := scanString(b, i+1)
			if err != nil {
				return err
			}
			i = end
		}
	}
	if !utf8.Valid(b) {
		return errors.New("the body is not valid UTF-8")
	}
	return nil
}

// scanString checks the escapes of the string that starts at b[i], just
// after its opening quote, and returns the index of its closing quote (or len(b) when it has
// none, which json.Valid reports).
func scanString(b []byte, i int) (int, error) {
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i, nil
		case c == '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				n, err := checkEscape(b, i)
				if err != nil {
					return 0, err
				}
				i += n
				continue
			}
			i += 2
		default:
			i++
		}
	}
	return len(b), nil
}

// checkEscape checks the \u escape at b[i] and returns its length: 6, or 12
// for a surrogate pair. A surrogate must come in a high-low pair.
func checkEscape(b []byte, i int) (int, error) {
	r, ok := hex4(b, i+2)
	if !ok {
		return 6, nil // not an escape json.Valid accepts; it says so
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, fmt.Errorf("the body holds a lone surrogate escape (at byte %d)", i)
	case r >= 0xD800 && r <= 0xDBFF:
		if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
			return 0, fmt.Errorf("the body holds a lone surrogate escape (at byte %d)", i)
		}
		if lo, ok := hex4(b, i+8); !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, fmt.Errorf("the body holds a lone surrogate escape (at byte %d)", i)
		}
		return 12, nil
	}
	return 6, nil
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// commandJSONBody holds the command API's JSON bodies to checkJSONLimits
// before its handlers decode them (and report bad syntax in their words):
// encoding/json would turn invalid UTF-8 into U+FFFD, and the command would
// write other bytes than the client sent. The body is read into a pooled
// buffer: the handlers behind it keep only copies of what they read.
func commandJSONBody(maxDepth int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return commandHandler(func(w http.ResponseWriter, r *http.Request) error {
			held := heldBodies.Get().(*heldBody)
			defer held.release()
			held.buf.Reset()
			if _, err := held.buf.ReadFrom(r.Body); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					return err
				}
				return commandBadRequest("reading the body: %v", err)
			}
			b := held.buf.Bytes()
			if err := checkJSONLimits(b, maxDepth); err != nil {
				return commandBadRequest("%v", err)
			}
			held.b = b
			held.Reset(b)
			r.Body = held
			next.ServeHTTP(w, r)
			return nil
		})
	}
}

// heldBody is a body commandJSONBody read and checked, which readBody
// hands on without reading it again.
type heldBody struct {
	bytes.Reader
	b   []byte
	buf bytes.Buffer
}

func (*heldBody) Close() error { return nil }

var heldBodies = sync.Pool{New: func() any { return new(heldBody) }}

// maxPooledBody bounds the buffers kept for the next body: a rare large
// one is left to the garbage collector.
const maxPooledBody = 64 << 10

func (h *heldBody) release() {
	h.Reset(nil)
	h.b = nil
	if h.buf.Cap() <= maxPooledBody {
		heldBodies.Put(h)
	}
}
