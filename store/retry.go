package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// The retry policy. Reads are retried by go-redis on network errors, up to
// REDIS_MAX_RETRIES times within the request deadline: running them twice is
// harmless. A write is never sent again once it may have reached Redis —
// an INCR, a rate-limit decision or a conditional PUT that ran but whose
// reply was lost would count, decide or answer twice — so writes go through
// write, which retries only when the error shows the commands never ran.

// retryPolicy is how a command may be sent again: a read after a network
// error, a write only when it provably never ran.
type retryPolicy int

const (
	reading retryPolicy = iota
	writing
)

// writeKey marks, in a context, a pipeline of write commands.
type writeKey struct{}

// once marks a command go-redis must not send a second time. noRetry makes
// it, and for the commonest commands the one-pointer forms below, which go
// into an interface without an allocation of their own.
type once struct{ redis.Cmder }

type (
	onceCmd    struct{ *redis.Cmd }
	onceInt    struct{ *redis.IntCmd }
	onceString struct{ *redis.StringCmd }
)

func (once) NoRetry() bool       { return true }
func (onceCmd) NoRetry() bool    { return true }
func (onceInt) NoRetry() bool    { return true }
func (onceString) NoRetry() bool { return true }

// noRetry marks c as a command go-redis must not send a second time.
func noRetry(c redis.Cmder) redis.Cmder {
	switch c := c.(type) {
	case *redis.Cmd:
		return onceCmd{c}
	case *redis.IntCmd:
		return onceInt{c}
	case *redis.StringCmd:
		return onceString{c}
	}
	return once{c}
}

// writeHook wraps the commands of a write pipeline in once, so go-redis
// leaves the decision to retry to write. On a cluster it sits on the cluster
// client, before the pipeline is split by node.
type writeHook struct{}

func (writeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (writeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (writeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(writeKey{}) == nil {
			return next(ctx, cmds)
		}
		wrapped := make([]redis.Cmder, len(cmds))
		for i, c := range cmds {
			wrapped[i] = noRetry(c)
		}
		return next(ctx, wrapped)
	}
}

// neverRan reports whether every command failed in a way that shows it was
// not run.
func neverRan(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !notRun(c.Err()) {
			return false
		}
	}
	return len(cmds) > 0
}

func notRun(err error) bool {
	if err == nil {
		return false
	}
	// Declared past the nil check: errors.As moves its target to the heap,
	// which would otherwise cost every command that succeeded an allocation.
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return isUnavailableReply(rerr.Error())
	}
	return isDialError(err) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted)
}

// backoff grows from REDIS_MIN_RETRY_BACKOFF to REDIS_MAX_RETRY_BACKOFF, with
// jitter so that gateway replicas do not retry in step.
func (s *Store) backoff(attempt int) time.Duration {
	d := s.minBackoff << min(attempt, 16)
	if d <= 0 || d > s.maxBackoff {
		d = s.maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// retry waits before another attempt at a command that failed with err, and
// reports whether to make it: at most REDIS_MAX_RETRIES times, within ctx,
// and for a write only when it never ran.
func (s *Store) retry(ctx context.Context, policy retryPolicy, attempt int, err error) bool {
	if err == nil || attempt >= s.retries || !(notRun(err) || (policy == reading && lostReply(err))) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(s.backoff(attempt)):
		return true
	}
}

// lostReply reports an error that left a command without a reply, which a
// read may be sent again for: the connection failed, not the command.
func lostReply(err error) bool {
	var reply redis.Error
	switch {
	case errors.Is(err, redis.Nil), errors.As(err, &reply),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return !errors.Is(classify("", err), ErrTimeout)
}

// The command API runs commands its clients name. Those the command table
// says Redis flags read-only keep go-redis's retries; every other one is a
// write under the policy above: sent once, and again only when it provably
// never ran. With durable writes on, a write also waits for replicas.

// guard is cmd as the command API must send it.
func guard(cmd *redis.Cmd, write bool) redis.Cmder {
	if write {
		return onceCmd{cmd}
	}
	return cmd
}
