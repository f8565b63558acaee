package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Errors a caller can act on, checked with errors.Is. The error returned by a
// Store method wraps one of them and the cause, so the log keeps the detail.
var (
	ErrNotFound           = errors.New("not found")
	ErrExists             = errors.New("already exists")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrWrongType          = errors.New("key holds another type")
	ErrNotInteger         = errors.New("value is not an integer or out of range")
	// ErrOverflow is an increment whose result a signed 64-bit integer
	// cannot hold; the value is unchanged.
	ErrOverflow    = errors.New("increment would overflow")
	ErrLockHeld    = errors.New("lock held by another token")
	ErrConflict    = errors.New("too many concurrent updates")
	ErrUnavailable = errors.New("redis unavailable")
	ErrTimeout     = errors.New("redis timeout")
	// ErrUnconfirmed is a write the primary ran but fewer replicas than
	// REDIS_WRITE_REPLICAS confirmed in time: it may be lost if the primary
	// fails before they catch up.
	ErrUnconfirmed = errors.New("write not confirmed by enough replicas")
)

// classify wraps err with the sentinel that says what it means for the caller.
// op names the operation, as in "get cache".
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	var rerr redis.Error
	var nerr net.Error
	var terr *TLSError
	switch {
	case errors.Is(err, redis.Nil):
		kind = ErrNotFound
	case errors.As(err, &terr):
		// Even a handshake cut short by the deadline is a TLS problem to report
		// as such, not a slow command.
		kind = ErrUnavailable
	case isTLSAlert(err):
		kind, err = ErrUnavailable, &TLSError{Err: err}
	case isOwn(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &rerr):
		msg := rerr.Error()
		switch {
		case strings.Contains(msg, "WRONGTYPE"):
			kind = ErrWrongType
		case strings.Contains(msg, "would overflow"):
			kind = ErrOverflow
		case strings.Contains(msg, "not an integer"):
			kind = ErrNotInteger
		case isUnavailableReply(msg):
			kind = ErrUnavailable
		default:
			return fmt.Errorf("%s: %w", op, err)
		}
	case isDialError(err):
		kind = ErrUnavailable
	case errors.As(err, &nerr) && nerr.Timeout():
		kind = ErrTimeout
	default:
		// Everything else go-redis returns without a server reply is a transport
		// failure: refused or reset connections, EOF, a closed or exhausted pool.
		kind = ErrUnavailable
	}
	return fmt.Errorf("%s: %w: %w", op, kind, err)
}

// isUnavailableReply reports server replies that mean "not now" rather than
// "bad command": loading, failing over, or read-only after a demotion.
func isUnavailableReply(msg string) bool {
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isOwn(err error) bool {
	for _, e := range []error{ErrNotFound, ErrExists, ErrPreconditionFailed, ErrWrongType, ErrNotInteger, ErrOverflow, errScriptReply, ErrLockHeld, ErrConflict, ErrUnavailable, ErrTimeout, ErrUnconfirmed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// errScriptReply is a script reply of a shape the gateway's own scripts never
// give: a bug, not a Redis outage.
var errScriptReply = errors.New("unexpected script reply")

// exactInt reads an integer of a script's reply: an integer reply, or one
// the script returned as the string Redis holds, so that no digit went
// through a Lua double.
func exactInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %q", ErrNotInteger, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%w: %T, want an integer", errScriptReply, v)
}

// replyInts reads a script's reply of at least min integers (see exactInt).
func replyInts(cmd *redis.Cmd, min int) ([]int64, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) < min {
		return nil, fmt.Errorf("%w: %d values, want %d", errScriptReply, len(vals), min)
	}
	ns := make([]int64, len(vals))
	for i, v := range vals {
		if ns[i], err = exactInt(v); err != nil {
			return nil, err
		}
	}
	return ns, nil
}
