package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"

	"github.com/redis-gateway/redis-gateway/store"
)

var commandSeeds = []string{
	`["GET","hot"]`, ` [ "SET" , "k" , "v" ] `, `["SET","k",1]`, `["INCRBY","k",-12.5e+3]`, `["SET","k",true,false]`,
	`["SET","k","a\"b\\c\u00e9\ud83d\ude00"]`, `["SET","k","é€😀"]`, `["SET","k","\ud800"]`, `["SET","k",01]`,
	`["SET","k",-]`, `["SET","k",1.]`, `["SET","k",1e]`, `["GET"`, `[]`, `["GET",null]`, `["GET",{"a":1}]`,
	`["GET","a"] ["GET","b"]`, `{"cmd":"GET"}`, `["GET","a",]`, `["GET" "a"]`, "[\"GET\",\"a\tb\"]", `[truex]`,
	"[\"SET\",\"k\",\"\xff\"]", `[["GET","a"],["GET","b"]]`, `[["GET","a"] , [ "SET","b",2 ] ]`, `[["GET","a"],[]]`,
	`[["GET","a"]`, `[["GET","a"],]`, `[]`, `[["GET","a"]] x`,
}

// FuzzScanCommand holds the scanners to encoding/json and commandArgs:
// whatever they read, they read as those do, and what they leave is what
// those refuse or read the same.
func FuzzScanCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if args, ok := scanCommand(b); ok {
			var raw []any
			if err := decodeCommandJSON(b, &raw); err != nil {
				t.Fatalf("scanCommand(%q) = %q, encoding/json: %v", b, args, err)
			}
			want, err := commandArgs(raw, "")
			if err != nil || !slices.Equal(args, want) {
				t.Fatalf("scanCommand(%q) = %q, want %q (%v)", b, args, want, err)
			}
		}
		if cmds, ok := scanCommands(b); ok {
			var raw [][]any
			if err := decodeCommandJSON(b, &raw); err != nil {
				t.Fatalf("scanCommands(%q) = %q, encoding/json: %v", b, cmds, err)
			}
			if len(raw) != len(cmds) {
				t.Fatalf("scanCommands(%q) = %q, want %d commands", b, cmds, len(raw))
			}
			for i, c := range raw {
				want, err := commandArgs(c, "")
				if err != nil || !slices.Equal(cmds[i], want) {
					t.Fatalf("scanCommands(%q) command %d = %q, want %q (%v)", b, i+1, cmds[i], want, err)
				}
			}
		}
	})
}

func TestScanCommandReads(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`["GET","hot"]`, []string{"GET", "hot"}},
		{` ["SET", "k", -1.50E+2, true, false] `, []string{"SET", "k", "-1.50E+2", "true", "false"}},
		{`["SET","k","a\"b\u00e9"]`, []string{"SET", "k", `a"bé`}},
	} {
		got, ok := scanCommand([]byte(tc.body))
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("scanCommand(%s) = %q, %v; want %q", tc.body, got, ok, tc.want)
		}
	}
	cmds, ok := scanCommands([]byte(`[["GET","a"],["SET","b",2]]`))
	if want := [][]string{{"GET", "a"}, {"SET", "b", "2"}}; !ok || !slices.EqualFunc(cmds, want, slices.Equal) {
		t.Errorf("scanCommands = %q, %v; want %q", cmds, ok, want)
	}
}

// encodeReply is the reply as encoding/json writes it without HTML
// escaping: what appendJSONReply must write byte for byte.
func encodeReply(t testing.TB, r store.Reply, b64 bool) string {
	var value func(store.Reply) any
	value = func(r store.Reply) any {
		switch v := r.(type) {
		case string:
			if b64 {
				return base64.StdEncoding.EncodeToString([]byte(v))
			}
			return v
		case store.ReplyError:
			return value(string(v))
		case []store.Reply:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = value(e)
			}
			return out
		}
		return r
	}
	var v any = value(r)
	if s, ok := r.(string); ok && s == "OK" {
		v = s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encode %#v: %v", r, err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

var replySeeds = []string{
	"", "OK", "hot", `a"b\c`, "<&>", "\x00\x01\b\f\n\r\t\x1f\x7f", "é€😀", "\u2028\u2029", "\xff\xfe", "a\xc3", "\xed\xa0\x80",
	string(bytes.Repeat([]byte("0123456789"), 100)),
}

func TestAppendJSONReply(t *testing.T) {
	replies := []store.Reply{nil, int64(0), int64(-42), []store.Reply{}, []store.Reply{"OK", nil, int64(7), store.ReplyError("ERR x")},
		[]store.Reply{[]store.Reply{"a", []store.Reply{}}, "\xff"}, store.ReplyError("WRONGTYPE <no>")}
	for _, s := range replySeeds {
		replies = append(replies, s)
	}
	for _, r := range replies {
		for _, b64 := range []bool{false, true} {
			if got, want := string(appendJSONReply(nil, r, b64)), encodeReply(t, r, b64); got != want {
				t.Errorf("appendJSONReply(%#v, base64 %v) = %s, want %s", r, b64, got, want)
			}
		}
	}
}

func FuzzAppendJSONReply(f *testing.F) {
	for _, s := range replySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []store.Reply{s, []store.Reply{s, int64(len(s))}} {
			for _, b64 := range []bool{false, true} {
				if got, want := string(appendJSONReply(nil, r, b64)), encodeReply(t, r, b64); got != want {
					t.Fatalf("appendJSONReply(%q, base64 %v) = %s, want %s", s, b64, got, want)
				}
			}
		}
	})
}

// The scanners and the reply writer allocate nothing they need not: the
// body's one copy and the argument slices, and, for the reply, nothing.
func TestCommandJSONAllocations(t *testing.T) {
	body := []byte(`["SET","key","value",1,true]`)
	if n := testing.AllocsPerRun(100, func() { scanCommand(body) }); n > 2 {
		t.Errorf("scanCommand: %v allocations, want at most 2", n)
	}
	reply := store.Reply([]store.Reply{"value", int64(1), nil})
	b := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { b = appendJSONReply(b[:0], reply, true) }); n > 0 {
		t.Errorf("appendJSONReply: %v allocations, want none", n)
	}
}
