package commandapi

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// FuzzKeys checks the table's key extraction on a real Redis 7's table:
// the keys it names are arguments of the command, and when it says they
// are every key, Redis's own COMMAND GETKEYS names none it missed. (Redis's
// GETKEYS may name fewer: it reads only the first of a repeated keyword.)
// An input is the arguments, separated by NUL bytes.
func FuzzKeys(f *testing.F) {
	srv := redistest.Start(f)
	table := loadTable(f, srv.Addr())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	f.Cleanup(func() { c.Close() })
	for _, seed := range []string{
		// Issue 10, finding 1: the last of a repeated keyword.
		"GEORADIUS orders:g 0 0 1 m STORE orders:a STORE session:alice",
		"GEORADIUS orders:g 0 0 1 m STOREDIST orders:a STOREDIST session:alice",
		"GEORADIUSBYMEMBER orders:g m 1 m STORE orders:a STORE session:alice",
		"GEORADIUS orders:g 0 0 1 m STORE",
		"XREAD COUNT 1 STREAMS streams 0",
		"XREAD STREAMS a b 0 0",
		"XREADGROUP GROUP g c STREAMS s >",
		"ZUNIONSTORE dst 2 a b WEIGHTS 1 2",
		"ZUNIONSTORE dst 99 a b",
		"LMPOP 2 a b LEFT",
		"EVAL return 2 k1 k2 arg",
		"EVAL return -1 k",
		"FCALL f 1 k a",
		"MSET a 1 b",
		"SORT k BY w_* STORE d",
		"MIGRATE h 1 \"\" 0 1 KEYS a b",
		"OBJECT ENCODING k",
		"SET k v GET",
		"BITFIELD_RO k GET i8 0",
		"SINTERCARD 2 a b LIMIT 1",
	} {
		f.Add(strings.ReplaceAll(seed, " ", "\x00"))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, in string) {
		args := strings.Split(in, "\x00")
		if len(args) > 32 || args[0] == "" {
			return
		}
		cmd := table.Lookup(args)
		keys, exact, err := table.Keys(ctx, cmd, args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		for _, k := range keys {
			if !slices.Contains(args[1:], k) {
				t.Fatalf("%q: key %q is not one of the arguments", args, k)
			}
		}
		if !exact || !cmd.Known {
			return
		}
		q := []any{"COMMAND", "GETKEYS"}
		for _, a := range args {
			q = append(q, a)
		}
		theirs, err := c.Do(ctx, q...).StringSlice()
		if err != nil {
			return // arguments Redis cannot parse, or no keys
		}
		for _, k := range theirs {
			if !slices.Contains(keys, k) {
				t.Fatalf("%q: Redis's COMMAND GETKEYS names key %q, the table only %q", args, k, keys)
			}
		}
	})
}
