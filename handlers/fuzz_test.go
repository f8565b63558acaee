package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzDepth is the nesting limit under fuzzing: small, so that the fuzzer
// reaches it.
const fuzzDepth = 6

func deepObject(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }

// jsonSeeds are the findings (issue 10: deep nesting, invalid UTF-8, lone
// surrogates) and the merge patch's own edge cases.
// (The finding's 9,990 levels stand here as 200: past the fuzzing limit
// all the same, and small enough for the fuzzer to mutate quickly.)
var jsonSeeds = []string{
	deepObject(200),
	deepObject(fuzzDepth), deepObject(fuzzDepth + 1),
	strings.Repeat("[", fuzzDepth+1) + strings.Repeat("]", fuzzDepth+1),
	"\"\xff\"", "{\"\xc3\":1}", "[\"\xed\xa0\x80\"]",
	`"\ud800"`, `"a\udc00b"`, `"\ud800\u0041"`, `"\ud83d\ude00"`, `"\\ud800"`, `"\u00e9"`,
	`["[[[[[[[["]`, `{"a":"}}}}"}`, `"\"[["`,
	`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":null,"a":3}`, `{"\u0061":1}`,
	`{"id":12345678901234567890,"r":0.1,"l":[],"o":{}}`, `{"n":1e400,"z":-0.0}`, `[1,2]`, `null`, `"x"`, ``, ` `,
}

func FuzzJSONLimits(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSON(b, fuzzDepth)
		depth, syntaxOK := tokenDepth(b)
		valid := json.Valid(b) && utf8.Valid(b)
		switch {
		case err == nil && (!valid || !syntaxOK):
			t.Fatalf("checkJSON(%q) accepted what is not valid UTF-8 JSON", b)
		case err == nil && depth > fuzzDepth:
			t.Fatalf("checkJSON(%q) accepted nesting %d deep, limit %d", b, depth, fuzzDepth)
		case err == nil && lonelySurrogate(b):
			t.Fatalf("checkJSON(%q) accepted a lone surrogate", b)
		case err != nil && valid && syntaxOK && depth <= fuzzDepth && !lonelySurrogate(b):
			t.Fatalf("checkJSON(%q) = %v, want it accepted", b, err)
		}
	})
}

// tokenDepth is how deep b nests, by encoding/json's own tokens.
func tokenDepth(b []byte) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest, true
		}
		if err != nil {
			return deepest, false
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// lonelySurrogate reports whether a string of valid JSON b holds a \u escape
// of a surrogate that is not half of a high-low pair, by decoding each
// string escape by escape with encoding/json.
func lonelySurrogate(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if _, ok := tok.(string); !ok {
			continue
		}
		raw := string(b[start:dec.InputOffset()])
		for i := strings.Index(raw, `\u`); i >= 0; i = nextEscape(raw, i) {
			if escapes(raw, i) {
				var r string
				if json.Unmarshal([]byte(`"`+raw[i:i+6]+`"`), &r) == nil && r == "\uFFFD" && !strings.EqualFold(raw[i:i+6], `\ufffd`) {
					// A surrogate alone decodes to U+FFFD; see whether it pairs.
					var pair string
					if i+12 <= len(raw) && json.Unmarshal([]byte(`"`+raw[i:i+12]+`"`), &pair) == nil && utf8.RuneCountInString(pair) == 1 && pair != "\uFFFD" {
						i += 6
						continue
					}
					return true
				}
			}
		}
	}
}

// escapes reports whether the backslash at raw[i] starts an escape, not the
// second half of "\\".
func escapes(raw string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && raw[j] == '\\'; j-- {
		n++
	}
	return n%2 == 0
}

func nextEscape(raw string, i int) int {
	j := strings.Index(raw[i+1:], `\u`)
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func FuzzMergePatch(f *testing.F) {
	for _, d := range jsonSeeds {
		f.Add([]byte(`{"a":{"b":1},"c":[]}`), []byte(d))
		f.Add([]byte(d), []byte(`{"a":null,"b":{"c":1}}`))
	}
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		got, err := mergePatch(context.Background(), doc, patch, fuzzDepth)
		if checkJSON(doc, fuzzDepth) != nil || checkJSON(patch, fuzzDepth) != nil {
			if err == nil {
				t.Fatalf("mergePatch(%q, %q) merged a document past the limits", doc, patch)
			}
			return
		}
		if err != nil {
			t.Fatalf("mergePatch(%q, %q): %v", doc, patch, err)
		}
		want := referenceMerge(decodeAny(t, doc), decodeAny(t, patch))
		if !json.Valid(got) || !reflect.DeepEqual(decodeAny(t, got), want) {
			t.Fatalf("mergePatch(%q, %q) = %s, want %v", doc, patch, got, want)
		}
	})
}

// referenceMerge is RFC 7396's pseudo-code, on decoded values.
func referenceMerge(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for name, v := range p {
		if v == nil {
			delete(t, name)
			continue
		}
		t[name] = referenceMerge(t[name], v)
	}
	return t
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}
