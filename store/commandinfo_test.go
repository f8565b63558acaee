package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

type describeCase struct {
	args     string // space-separated
	name     string
	keys     []string
	known    bool // KeysKnown
	class    string
	keyspace bool
}

func (tt describeCase) check(t *testing.T, f CommandFacts, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", tt.args, err)
		return
	}
	if !f.Known {
		t.Errorf("%s: not known to Redis", tt.args)
		return
	}
	if f.Name != tt.name || f.KeysKnown != tt.known || f.Keyspace != tt.keyspace || tt.class != "" && f.Class != tt.class ||
		!slices.Equal(f.Keys, tt.keys) {
		t.Errorf("%s: got name %s, keys %q (known %v), class %s, keyspace %v; want %s, %q (known %v), %s, %v",
			tt.args, f.Name, f.Keys, f.KeysKnown, f.Class, f.Keyspace, tt.name, tt.keys, tt.known, tt.class, tt.keyspace)
	}
}

// The keys of every kind of command, from a real Redis's key specifications.
func TestDescribeCommand(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	tests := []describeCase{
		{"GET k", "get", []string{"k"}, true, "read", false},
		{"set k v EX 1", "set", []string{"k"}, true, "write", false},
		{"MSET a 1 b 2", "mset", []string{"a", "b"}, true, "write", false},
		{"MGET a b c", "mget", []string{"a", "b", "c"}, true, "read", false},
		{"DEL a b", "del", []string{"a", "b"}, true, "write", false},
		{"RENAME a b", "rename", []string{"a", "b"}, true, "write", false},
		{"COPY a b DB 1", "copy", []string{"a", "b"}, true, "write", false},
		{"BITOP AND dst a b", "bitop", []string{"dst", "a", "b"}, true, "write", false},
		{"LCS a b", "lcs", []string{"a", "b"}, true, "read", false},
		{"EVAL return 2 k1 k2 arg", "eval", []string{"k1", "k2"}, true, "write", false},
		{"EVAL return 0", "eval", nil, true, "write", false},
		{"EVAL return 0 notakey", "eval", nil, true, "write", false},
		{"EVAL return 3 k1", "eval", nil, false, "write", false},
		{"EVAL return x k1", "eval", nil, false, "write", false},
		{"EVAL_RO return 1 k", "eval_ro", []string{"k"}, true, "read", false},
		{"EVALSHA 0123 1 k", "evalsha", []string{"k"}, true, "write", false},
		{"FCALL f 1 k a", "fcall", []string{"k"}, true, "write", false},
		{"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", "zunionstore", []string{"dst", "a", "b"}, true, "write", false},
		{"ZUNION 2 a b", "zunion", []string{"a", "b"}, true, "read", false},
		{"LMPOP 2 a b LEFT", "lmpop", []string{"a", "b"}, true, "write", false},
		{"XREAD COUNT 1 STREAMS s1 s2 0 0", "xread", []string{"s1", "s2"}, true, "read", false},
		{"XREADGROUP GROUP g c STREAMS s >", "xreadgroup", []string{"s"}, true, "write", false},
		{"GEORADIUS g 0 0 1 km STORE dst", "georadius", []string{"g", "dst"}, true, "write", false},
		{"GEORADIUS g 0 0 1 km", "georadius", []string{"g"}, true, "write", false},
		{"OBJECT ENCODING k", "object|encoding", []string{"k"}, true, "read", false},
		{"object help", "object|help", nil, true, "read", true},
		{"MEMORY USAGE k", "memory|usage", []string{"k"}, true, "read", false},
		{"XINFO STREAM s", "xinfo|stream", []string{"s"}, true, "read", false},
		{"SORT k BY w_*", "sort", nil, false, "admin", false},
		{"SORT_RO k", "sort_ro", nil, false, "admin", false},
		{"MIGRATE h 1 \"\" 0 1 KEYS a b", "migrate", nil, false, "admin", false},
		{"KEYS *", "keys", nil, true, "admin", true},
		{"SCAN 0 MATCH a*", "scan", nil, true, "read", true},
		{"RANDOMKEY", "randomkey", nil, true, "read", true},
		{"FLUSHALL", "flushall", nil, true, "admin", true},
		{"PING", "ping", nil, true, "read", false},
		{"PUBLISH ch m", "publish", nil, true, "write", false},
		{"SPUBLISH ch m", "spublish", nil, true, "write", false}, // the shard channel is not a key
		{"CONFIG GET maxmemory", "config|get", nil, true, "admin", false},
		{"INFO", "info", nil, true, "admin", false},
		{"SCRIPT LOAD x", "script|load", nil, true, "read", false},
		{"FUNCTION LOAD x", "function|load", nil, true, "write", false},
		{"SET", "set", nil, false, "write", false},
	}
	for _, tt := range tests {
		f, err := s.DescribeCommand(ctx, strings.Fields(tt.args))
		tt.check(t, f, err)
	}
	for _, args := range [][]string{{"NOSUCH", "a"}, {"CLIENT", "NOSUCH"}} {
		if f, err := s.DescribeCommand(ctx, args); err != nil || f.Known {
			t.Errorf("%q: known = %v, %v; want unknown", args, f.Known, err)
		}
	}
}

// Before Redis 7 there were no key specifications: keys come from the first,
// last and step positions, and from COMMAND GETKEYS for commands whose keys
// move. The table here is a real server's, stripped of its key
// specifications and subcommands as older servers sent it.
func TestDescribeCommandWithoutKeySpecs(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	commands, keySpecs, err := s.commandTable(ctx)
	if err != nil || !keySpecs {
		t.Fatalf("commandTable: %v, key specs %v", err, keySpecs)
	}
	for _, c := range commands {
		c.specs, c.subcommands = nil, nil
	}
	tests := []describeCase{
		{"GET k", "get", []string{"k"}, true, "read", false},
		{"MSET a 1 b 2", "mset", []string{"a", "b"}, true, "write", false},
		{"MGET a b c", "mget", []string{"a", "b", "c"}, true, "read", false},
		{"EVAL return 2 k1 k2 arg", "eval", []string{"k1", "k2"}, true, "write", false},
		{"EVAL return 0", "eval", nil, true, "write", false},
		// GETKEYS finds no keys in arguments EVAL itself refuses, as Redis's
		// ACL key checks do.
		{"EVAL return 3 k1", "eval", nil, true, "write", false},
		{"ZUNIONSTORE dst 2 a b", "zunionstore", []string{"dst", "a", "b"}, true, "write", false},
		{"XREAD STREAMS s1 s2 0 0", "xread", []string{"s1", "s2"}, true, "read", false},
		{"SORT k", "sort", nil, false, "admin", false},
		{"KEYS *", "keys", nil, true, "admin", true},
	}
	for _, tt := range tests {
		args := strings.Fields(tt.args)
		f, err := describe(ctx, commands, false, args, func(ctx context.Context) ([]string, bool, error) {
			return s.getKeys(ctx, args)
		})
		tt.check(t, f, err)
	}
}

// miniredis answers COMMAND as Redis 5 did, and has no COMMAND GETKEYS:
// commands with fixed key positions are described, the others are not.
func TestDescribeCommandOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	s, err := New(Options{URL: "redis://" + mr.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, tt := range []describeCase{
		{"GET k", "get", []string{"k"}, true, "read", false},
		{"MSET a 1 b 2", "mset", []string{"a", "b"}, true, "write", false},
		{"DBSIZE", "dbsize", nil, true, "read", true},
		{"EVAL return 1 k", "eval", nil, false, "write", false},
	} {
		f, err := s.DescribeCommand(ctx, strings.Fields(tt.args))
		tt.check(t, f, err)
	}
}

// Redis down at start-up: the description is read once Redis is back.
func TestDescribeCommandRedisDownThenUp(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	srv.Stop()
	if err := s.LoadCommandInfo(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LoadCommandInfo with Redis down: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.DescribeCommand(ctx, []string{"GET", "k"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("DescribeCommand with Redis down: err = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	f, err := s.DescribeCommand(ctx, []string{"GET", "k"})
	if err != nil || !slices.Equal(f.Keys, []string{"k"}) {
		t.Errorf("DescribeCommand once Redis is back: %+v, %v", f, err)
	}
}

// A Redis whose COMMAND is renamed away describes nothing.
func TestDescribeCommandWithoutCommand(t *testing.T) {
	srv := redistest.Start(t, "--rename-command", "COMMAND", "")
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.DescribeCommand(context.Background(), []string{"GET", "k"}); !errors.Is(err, ErrNoCommandInfo) {
		t.Errorf("DescribeCommand: err = %v, want ErrNoCommandInfo", err)
	}
}
