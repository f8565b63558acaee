package store

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// Read-your-writes tokens of the command API (the upstash-sync-token header).
//
// Upstash sends reads to replicas and holds a read back until the replica
// has caught up with the token the client last saw. The gateway sends every
// command API read to the primary, so every read already sees every write
// before it and no token needs to be waited for. The token is still answered,
// and changes with every write, for the clients that compare it: it is a
// hybrid logical clock in microseconds, above the wall clock, the last
// token of this gateway, and the token the client sent. It therefore grows
// along each client's requests even when they reach different gateway
// replicas whose clocks disagree, and costs no Redis command. Should reads
// ever go to replicas, this is where the token would become the primary's
// replication offset.

// syncClock hands out sync tokens.
type syncClock struct {
	last atomic.Int64 // the last token handed out
}

// maxSyncToken keeps a client's token far from overflowing when one is added.
const maxSyncToken = 1 << 62

// NextSyncToken is the token to answer after a write; seen is the token the
// client sent, "" or a token of another kind counting as none.
func (s *Store) NextSyncToken(seen string) string {
	c := &s.sync
	n, err := strconv.ParseInt(seen, 10, 64)
	if err != nil || n < 0 || n > maxSyncToken {
		n = 0
	}
	for {
		last := c.last.Load()
		next := max(time.Now().UnixMicro(), last+1, n+1)
		if c.last.CompareAndSwap(last, next) {
			return strconv.FormatInt(next, 10)
		}
	}
}

// Changes reports whether args may change data, as the command table says:
// what Redis flags write, the scripts, and every command it does not
// describe.
func (s *Store) Changes(ctx context.Context, args []string) bool {
	if len(args) == 0 {
		return false
	}
	t, _ := s.commandTable(ctx) // nil: nothing is described, so everything may write
	return t.Changes(args)
}
