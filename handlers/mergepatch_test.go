package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMergePatch(t *testing.T) {
	tests := []struct{ doc, patch, want string }{
		// RFC 7396, Appendix A.
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},

		// Numbers keep every digit and [] stays apart from {}, in the
		// document and in the patch.
		{`{"id":12345678901234567890,"r":0.1,"l":[],"o":{}}`, `{"n":1e400,"z":-0.0,"m":0.30000000000000004}`,
			`{"id":12345678901234567890,"r":0.1,"l":[],"o":{},"n":1e400,"z":-0.0,"m":0.30000000000000004}`},
		{`{"l":[],"o":{}}`, `{"l":{},"o":[]}`, `{"l":{},"o":[]}`},
		{`{"deep":{"x":9007199254740993,"keep":[]}}`, `{"deep":{"y":1.10}}`, `{"deep":{"x":9007199254740993,"keep":[],"y":1.10}}`},
		// Order is kept; new members come last.
		{`{"a":1,"b":2,"c":3}`, `{"b":null,"a":4,"d":5}`, `{"a":4,"c":3,"d":5}`},
		// A name given twice counts once, with its last value.
		{`{"a":1,"b":2}`, `{"a":null,"a":3}`, `{"a":3,"b":2}`},
		// Insignificant space goes; names keep their escapes and still match.
		{"{ \"a\" : [1, 2],\n \"s\": \"x y\" }", `{"b":true}`, `{"a":[1,2],"s":"x y","b":true}`},
		{`{"\u0061":1}`, `{"a":2}`, `{"\u0061":2}`},
		{`{"a":1,"a":2}`, `{}`, `{"a":2}`},
	}
	for _, tt := range tests {
		got, err := mergePatch(context.Background(), []byte(tt.doc), []byte(tt.patch), DefaultMaxJSONDepth)
		if err != nil || string(got) != tt.want {
			t.Errorf("mergePatch(%s, %s) = %s, %v; want %s", tt.doc, tt.patch, got, err, tt.want)
		}
	}
}

// bigObject is an object of n members with a nested object and an array each.
func bigObject(n int, prefix string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s%d":{"n":%d,"l":[1,2,3]}`, prefix, i, i)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

func TestMergePatchLargeObjects(t *testing.T) {
	doc, patch := bigObject(5000, "k"), bigObject(5000, "k")
	got, err := mergePatch(context.Background(), doc, patch, DefaultMaxJSONDepth)
	if err != nil || string(got) != string(doc) {
		t.Errorf("merging a 5000-member object into itself changed it: %v", err)
	}
}

func BenchmarkMergePatch(b *testing.B) {
	doc, patch := bigObject(1000, "k"), []byte(`{"k500":{"n":null,"m":1},"new":[]}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := mergePatch(context.Background(), doc, patch, DefaultMaxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}

// A merge stops when its request ends, and never starts on a document
// nested past the limit, the patch or the stored one.
func TestMergePatchBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	doc, patch := bigObject(5000, "k"), bigObject(5000, "k")
	if _, err := mergePatch(ctx, doc, patch, DefaultMaxJSONDepth); !errors.Is(err, context.Canceled) {
		t.Errorf("merge under a cancelled context: err = %v, want context.Canceled", err)
	}
	deep := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	}
	for _, tt := range []struct {
		name       string
		doc, patch []byte
	}{
		{"deep patch", []byte(`{}`), deep(9990)},
		{"deep stored document", deep(200), []byte(`{"a":null}`)},
	} {
		if got, err := mergePatch(context.Background(), tt.doc, tt.patch, DefaultMaxJSONDepth); err == nil {
			t.Errorf("%s: merged to %.40s..., want an error", tt.name, got)
		}
	}
	if _, err := mergePatch(context.Background(), deep(128), deep(128), DefaultMaxJSONDepth); err != nil {
		t.Errorf("merge at the depth limit: %v", err)
	}
}

// BenchmarkCheckJSON is the cost the JSON limits add to every body.
func BenchmarkCheckJSON(b *testing.B) {
	body := bigObject(1000, "k")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := checkJSON(body, DefaultMaxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}
