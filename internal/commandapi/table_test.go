package commandapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// loadTable builds the table from the COMMAND reply of the server at addr,
// over RESP2 as the command API reads it, with COMMAND GETKEYS for keys it
// cannot locate.
func loadTable(t testing.TB, addr string) *Table {
	return loadTableOver(t, addr, 2)
}

func loadTableOver(t testing.TB, addr string, protocol int) *Table {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	v, err := c.Do(context.Background(), "COMMAND").Result()
	if err != nil {
		t.Fatalf("COMMAND: %v", err)
	}
	table, err := Parse(v, func(ctx context.Context, args []string) ([]string, bool, error) {
		cmd := []any{"COMMAND", "GETKEYS"}
		for _, a := range args {
			cmd = append(cmd, a)
		}
		keys, err := c.Do(ctx, cmd...).StringSlice()
		var rerr redis.Error
		switch {
		case errors.As(err, &rerr) && strings.Contains(rerr.Error(), "no key arguments"):
			return nil, true, nil
		case err != nil:
			return nil, false, nil
		}
		return keys, true, nil
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return table
}

type describeCase struct {
	args     string // space-separated
	name     string
	keys     []string
	exact    bool
	class    string
	keyspace bool
}

func (tt describeCase) check(t *testing.T, table *Table) {
	t.Helper()
	args := strings.Fields(tt.args)
	c := table.Lookup(args)
	if !c.Known {
		t.Errorf("%s: not known to Redis", tt.args)
		return
	}
	keys, exact, err := table.Keys(context.Background(), c, args)
	if err != nil {
		t.Errorf("%s: %v", tt.args, err)
		return
	}
	keyspace := c.Reach == ReachKeyspace
	if c.Name != tt.name || exact != tt.exact || keyspace != tt.keyspace || tt.class != "" && c.Class != tt.class || !slices.Equal(keys, tt.keys) {
		t.Errorf("%s: got name %s, keys %q (exact %v), class %s, keyspace %v; want %s, %q (exact %v), %s, %v",
			tt.args, c.Name, keys, exact, c.Class, keyspace, tt.name, tt.keys, tt.exact, tt.class, tt.keyspace)
	}
}

// The keys of every kind of command, from a real Redis's key specifications
// and the table's corrections of them.
func TestDescribeCommand(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTable(t, srv.Addr())
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
		{"EVAL return -1 k1", "eval", nil, false, "write", false},
		{"EVAL_RO return 1 k", "eval_ro", []string{"k"}, true, "read", false},
		{"EVALSHA 0123 1 k", "evalsha", []string{"k"}, true, "write", false},
		{"FCALL f 1 k a", "fcall", []string{"k"}, true, "write", false},
		{"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", "zunionstore", []string{"dst", "a", "b"}, true, "write", false},
		{"ZUNION 2 a b", "zunion", []string{"a", "b"}, true, "read", false},
		{"LMPOP 2 a b LEFT", "lmpop", []string{"a", "b"}, true, "write", false},
		{"XREAD COUNT 1 STREAMS s1 s2 0 0", "xread", []string{"s1", "s2"}, true, "read", false},
		{"XREADGROUP GROUP g c STREAMS s >", "xreadgroup", []string{"s"}, true, "write", false},
		// A stream named like the keyword: which STREAMS starts the keys is
		// ambiguous to a keyword search.
		{"XREAD COUNT 1 STREAMS streams 0", "xread", nil, false, "read", false},
		{"GEORADIUS g 0 0 1 km STORE dst", "georadius", []string{"g", "dst"}, true, "write", false},
		{"GEORADIUS g 0 0 1 km", "georadius", []string{"g"}, true, "write", false},
		// Redis stores into the last STORE: every occurrence is a key.
		{"GEORADIUS g 0 0 1 m STORE a STORE b", "georadius", []string{"g", "a", "b"}, true, "write", false},
		{"GEORADIUS g 0 0 1 m STOREDIST a STOREDIST b", "georadius", []string{"g", "a", "b"}, true, "write", false},
		{"GEORADIUS g 0 0 1 m STORE a STOREDIST b", "georadius", []string{"g", "a", "b"}, true, "write", false},
		{"georadiusbymember g store 1 m store a store b", "georadiusbymember", []string{"g", "a", "b"}, true, "write", false},
		{"GEORADIUS g 0 0 1 m STORE", "georadius", nil, false, "write", false},
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
		// SCRIPT LOAD grows the script cache, which nothing evicts.
		{"SCRIPT LOAD x", "script|load", nil, true, "write", false},
		{"FUNCTION LOAD x", "function|load", nil, true, "write", false},
		{"SET", "set", nil, false, "write", false},
	}
	for _, tt := range tests {
		tt.check(t, table)
	}
	for _, args := range [][]string{{"NOSUCH", "a"}, {"CLIENT", "NOSUCH"}} {
		if c := table.Lookup(args); c.Known {
			t.Errorf("%q: known, want unknown", args)
		}
	}
}

// The store reads COMMAND over RESP3, whose key specifications are maps:
// the same table.
func TestDescribeCommandOverRESP3(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTableOver(t, srv.Addr(), 3)
	for _, tt := range []describeCase{
		{"GET k", "get", []string{"k"}, true, "read", false},
		{"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", "zunionstore", []string{"dst", "a", "b"}, true, "write", false},
		{"XREAD COUNT 1 STREAMS s1 s2 0 0", "xread", []string{"s1", "s2"}, true, "read", false},
		{"GEORADIUS g 0 0 1 m STORE a STORE b", "georadius", []string{"g", "a", "b"}, true, "write", false},
		{"OBJECT ENCODING k", "object|encoding", []string{"k"}, true, "read", false},
		{"SORT k BY w_*", "sort", nil, false, "admin", false},
		{"SCRIPT LOAD x", "script|load", nil, true, "write", false},
	} {
		tt.check(t, table)
	}
}

// What a key-restricted token must not reach without an allow: state every
// user of the server shares.
func TestReach(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTable(t, srv.Addr())
	tests := []struct {
		args string
		want Reach
	}{
		{"GET k", ReachKeys},
		{"PING", ReachKeys},
		{"MEMORY USAGE k", ReachKeys},
		{"SCRIPT EXISTS a", ReachKeys},
		{"EVAL x 0", ReachScript},
		{"FCALL_RO f 0", ReachScript},
		{"KEYS *", ReachKeyspace},
		{"DBSIZE", ReachKeyspace},
		{"SLOWLOG GET", ReachServer},
		{"SLOWLOG RESET", ReachServer},
		{"LATENCY RESET", ReachServer},
		{"MEMORY STATS", ReachServer},
		{"MEMORY DOCTOR", ReachServer},
		{"INFO commandstats", ReachServer},
		{"FUNCTION LOAD x", ReachServer},
		{"FUNCTION LIST WITHCODE", ReachServer},
		{"FUNCTION DUMP", ReachServer},
		{"SCRIPT LOAD x", ReachServer},
		{"CONFIG GET x", ReachServer},
		{"LASTSAVE", ReachServer},
	}
	for _, tt := range tests {
		if got := table.Lookup(strings.Fields(tt.args)).Reach; got != tt.want {
			t.Errorf("%s: reach = %d, want %d", tt.args, got, tt.want)
		}
	}
}

// Before Redis 7 there were no key specifications: keys come from the first,
// last and step positions, and from COMMAND GETKEYS for commands whose keys
// move. The table here is a real server's, stripped of its key
// specifications and subcommands as older servers sent it.
func TestDescribeCommandWithoutKeySpecs(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTable(t, srv.Addr())
	if !table.keySpecs {
		t.Fatal("Redis 7 sent no key specifications")
	}
	for _, e := range table.commands {
		e.specs, e.subcommands = nil, nil
	}
	table.keySpecs = false
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
		tt.check(t, table)
	}
}

// miniredis answers COMMAND as Redis 5 did, and has no COMMAND GETKEYS:
// commands with fixed key positions are described, the others are not.
func TestDescribeCommandOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	table := loadTable(t, mr.Addr())
	for _, tt := range []describeCase{
		{"GET k", "get", []string{"k"}, true, "read", false},
		{"MSET a 1 b 2", "mset", []string{"a", "b"}, true, "write", false},
		{"DBSIZE", "dbsize", nil, true, "read", true},
		{"EVAL return 1 k", "eval", nil, false, "write", false},
	} {
		tt.check(t, table)
	}
}

func TestServing(t *testing.T) {
	tests := []struct {
		args string
		want Serving
	}{
		{"GET k", Served},
		{"nosuchcommand", Served},
		{"FlushAll", RefusedAdmin},
		{"script load x", Served},
		{"script exists a", Served},
		{"SCRIPT FLUSH", RefusedAdmin},
		{"script kill", RefusedAdmin},
		{"script debug yes", RefusedConnection},
		{"script", Served}, // Redis answers the arity error
		{"function load x", Served},
		{"function restore x", RefusedAdmin},
		{"client", RefusedConnection},
		{"client setname x", RefusedConnection},
		{"client list", RefusedAdmin},
		{"blpop k 0", RefusedBlocking},
		{"xread count 1 streams s 0", Served},
		{"xread count 1 BLOCK 0 streams s 0", RefusedBlocking},
		{"xread streams block 0", Served},
		{"xreadgroup group g c block 10 streams s >", RefusedBlocking},
		{"exec", RefusedTransaction},
		{"psubscribe p*", RefusedSubscribe},
		{"select 1", RefusedConnection},
	}
	var undescribed Table
	for _, tt := range tests {
		if got := undescribed.Lookup(strings.Fields(tt.args)).Serve; got != tt.want {
			t.Errorf("serving of %s = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestLabel(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTable(t, srv.Addr())
	var undescribed Table
	tests := []struct{ name, want string }{
		{"GET", "get"},
		{"evalsha", "evalsha"},
		{"FLUSHALL", "flushall"},
		{"made-up", "other"},
		{strings.Repeat("x", 1000), "other"},
	}
	for _, tt := range tests {
		for _, tb := range []*Table{table, &undescribed} {
			if got := tb.Label(tt.name); got != tt.want {
				t.Errorf("Label(%q) (described %v) = %q, want %q", tt.name, tb.Described(), got, tt.want)
			}
		}
	}
}

// Table.Changes, asked after every command, must answer what Lookup's
// Changes answers, for every command and subcommand Redis describes, in
// either case, and for names it does not.
func TestChangesAgreesWithLookup(t *testing.T) {
	srv := redistest.Start(t)
	table := loadTable(t, srv.Addr())
	var names [][]string
	table.Each(func(name string, _ int, _ []string) {
		cmd, sub, _ := strings.Cut(name, "|")
		args := []string{cmd, "k"}
		if sub != "" {
			args = []string{cmd, sub, "k"}
		}
		names = append(names, args, []string{strings.ToUpper(args[0]), strings.ToUpper(args[1])}, args[:1])
	})
	names = append(names, []string{"nosuchcommand", "k"}, []string{"object", "nosuchsub"}, []string{"SET"})
	for _, args := range names {
		if got, want := table.Changes(args), table.Lookup(args).Changes(); got != want {
			t.Errorf("Changes(%q) = %v, Lookup(...).Changes() = %v", args, got, want)
		}
	}
	var none *Table
	if !none.Changes([]string{"get", "k"}) {
		t.Error("a table without a description: Changes(get) = false, want true")
	}
}
