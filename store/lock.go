package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is a lock held by the bearer of its token.
type Lease struct {
	Token     string // 130 random bits; the only proof of holding the lock
	Fence     int64  // grows with every acquisition of the lock's name
	TTL       time.Duration
	ExpiresAt time.Time // by Redis's clock
}

// LockHeldError is AcquireLock's answer when another token holds the lock.
// It matches ErrLockHeld.
type LockHeldError struct {
	Remaining time.Duration // until the holder's lease ends, unless refreshed
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("acquire lock: %v (for another %v)", ErrLockHeld, e.Remaining)
}

func (e *LockHeldError) Is(target error) bool { return target == ErrLockHeld }

// giveBackTimeout bounds the release of an acquisition whose reply was lost.
const giveBackTimeout = 2 * time.Second

// outcomeUnknown reports whether a command that failed with err may still
// have run: no reply came, and nothing shows it was never sent.
func outcomeUnknown(err error) bool {
	if err == nil {
		return false
	}
	var reply redis.Error // past the nil check, as in notRun
	return !errors.As(err, &reply) && !notRun(err)
}

// AcquireLock takes the lock name for ttl under a fresh token, or answers
// *LockHeldError when another token holds it.
func (s *Store) AcquireLock(ctx context.Context, name string, ttl time.Duration) (Lease, error) {
	k := s.keys
	return s.acquireLock(ctx, name, ttl, scriptLockAcquire, []string{k.lock(name, ""), k.lock(name, ":fence")})
}

// AcquireLockFair is AcquireLock in arrival order: ticket, the waiter's own
// random string, joins the lock's queue on the first call and is kept there
// for ticketTTL by each call after it. The lock is taken only by the first
// live ticket; a free lock that is another ticket's turn is a
// *LockHeldError with no Remaining. Call LeaveLockQueue when giving up.
func (s *Store) AcquireLockFair(ctx context.Context, name string, ttl time.Duration, ticket string, ticketTTL time.Duration) (Lease, error) {
	k := s.keys
	return s.acquireLock(ctx, name, ttl, scriptLockAcquireFair,
		[]string{k.lock(name, ""), k.lock(name, ":fence"), k.lock(name, ":queue"), k.lock(name, ":tickets")},
		ticket, ticketTTL.Milliseconds())
}

// LeaveLockQueue takes ticket out of the lock's queue, waking the waiters:
// the next ticket may be first now.
func (s *Store) LeaveLockQueue(ctx context.Context, name, ticket string) error {
	k := s.keys
	_, err := s.runScript(ctx, scriptLockLeave, []string{k.lock(name, ":queue"), k.lock(name, ":tickets")}, ticket, k.lockReleased(name))
	return classify("leave lock queue", err)
}

func (s *Store) acquireLock(ctx context.Context, name string, ttl time.Duration, sc *redis.Script, keys []string, extra ...any) (Lease, error) {
	token := rand.Text()
	// Never run twice: a retry after a lost reply would find the lock held,
	// by this very token.
	cmd, err := s.runScript(ctx, sc, keys, append([]any{token, ttl.Milliseconds()}, extra...)...)
	if err != nil {
		if outcomeUnknown(err) {
			// The script may have taken the lock under a token nobody will
			// see: give it back rather than leave it stuck for its lease.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
			_ = s.ReleaseLock(rctx, name, token)
			cancel()
		}
		return Lease{}, classify("acquire lock", err)
	}
	res, err := replyInts(cmd, 3)
	if err != nil {
		return Lease{}, classify("acquire lock", err)
	}
	if res[0] == 0 {
		return Lease{}, &LockHeldError{Remaining: time.Duration(max(0, res[1])) * time.Millisecond}
	}
	return Lease{Token: token, Fence: res[1], TTL: ttl, ExpiresAt: time.UnixMilli(res[2]).Add(ttl)}, nil
}

// RefreshLock extends the lease of token for ttl, or for the TTL it last had
// when ttl is 0. ErrNotFound when nobody holds the lock, ErrLockHeld when
// another token does.
func (s *Store) RefreshLock(ctx context.Context, name, token string, ttl time.Duration) (Lease, error) {
	arg := ""
	if ttl > 0 {
		arg = fmt.Sprint(ttl.Milliseconds())
	}
	cmd, err := s.runScript(ctx, scriptLockRefresh, []string{s.keys.lock(name, "")}, token, arg)
	if err != nil {
		return Lease{}, classify("refresh lock", err)
	}
	res, err := replyInts(cmd, 1)
	if err != nil {
		return Lease{}, classify("refresh lock", err)
	}
	switch res[0] {
	case 0:
		return Lease{}, classify("refresh lock", ErrNotFound)
	case -1:
		return Lease{}, classify("refresh lock", ErrLockHeld)
	}
	if len(res) != 4 {
		return Lease{}, classify("refresh lock", fmt.Errorf("%w: %d values, want 4", errScriptReply, len(res)))
	}
	ttl = time.Duration(res[2]) * time.Millisecond
	return Lease{Token: token, Fence: res[1], TTL: ttl, ExpiresAt: time.UnixMilli(res[3]).Add(ttl)}, nil
}

// ReleaseLock frees the lock held by token. ErrNotFound when nobody holds
// it, ErrLockHeld when another token does.
func (s *Store) ReleaseLock(ctx context.Context, name, token string) error {
	cmd, err := s.runScript(ctx, scriptLockRelease, []string{s.keys.lock(name, "")}, token, s.keys.lockReleased(name))
	var n int
	if err == nil {
		n, err = cmd.Int()
	}
	switch {
	case err != nil:
	case n == 0:
		err = ErrNotFound
	case n < 0:
		err = ErrLockHeld
	}
	return classify("release lock", err)
}

// LockTTL returns how long the lock's current lease has left; ErrNotFound
// when nobody holds it.
func (s *Store) LockTTL(ctx context.Context, name string) (time.Duration, error) {
	d, err := runCmd(ctx, s, reading, newMsCmd, "pttl", s.keys.lock(name, "")).Result()
	if err == nil && d == -2 { // go-redis returns the reply as a Duration of nanoseconds
		err = ErrNotFound
	}
	return d, classify("lock ttl", err)
}

// WatchLock listens for the releases of the lock name, on this gateway's one
// subscriber connection: a waiter holds no connection of its own. A release
// wakes one waiter of this gateway, in the order they came (a handoff watch,
// see hub); one that loses the race to a waiter of another gateway is next
// again. A fair waiter is woken by every release, since only Redis knows
// whose turn it is. Close the watch when done. Expiry is not announced; a
// waiter sleeps no longer than the holder's remaining lease.
func (s *Store) WatchLock(name string, fair bool) *Watch {
	return s.hub.watch(s.keys.lockReleased(name), !fair)
}
