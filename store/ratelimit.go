package store

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Suffixes of a limiter's keys, one per algorithm, so that switching a key
// from one algorithm to another never reads state the other wrote.
const (
	suffixFixed   = ""
	suffixSliding = ":sliding"
	suffixGCRA    = ":gcra"
)

// Window is the state of a fixed-window counter.
type Window struct {
	Count int64         // units counted in the current window
	Reset time.Duration // until the window ends (a whole window when none is open)
}

// CountFixed adds cost to the fixed-window counter of key and returns the new
// state. The window opens with the first call and is never extended.
func (s *Store) CountFixed(ctx context.Context, key string, cost int64, window time.Duration) (Window, error) {
	k := s.keys.rateLimit(key, suffixFixed)
	if s.fixedCount.plain(time.Now()) {
		w, ok, err := s.countFixedPlain(ctx, k, cost, window)
		if ok {
			return w, err
		}
		// The server refused PEXPIRE … NX after INCRBY had counted the call:
		// the script reads the count and opens the window (cost 0).
		s.fixedCount.useScript(time.Now())
		cost = 0
	}
	cmd, err := s.runScript(ctx, scriptRateLimitFixed, []string{k}, cost, window.Milliseconds(), flag(true))
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	res, err := replyInts(cmd, 2)
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	return Window{Count: res[0], Reset: time.Duration(res[1]) * time.Millisecond}, nil
}

// countFixedPlain counts with INCRBY and reads the window with PTTL, one
// write of two commands in one round trip, for less than half the Redis CPU
// of the script. The script's atomicity is not needed: INCRBY alone decides
// the count, so concurrent calls each get a count of their own.
//
// Only a counter without an expiry costs a second round trip (openFixed):
// the call that opened the window, or any call after a counter was left
// without one (a lost reply between the two round trips, a SET from
// outside), which the script would mend too. Its PEXPIRE … NX sets the
// expiry only on a key that has none, so concurrent openers never push a
// window back. ok is false when the server does not take PEXPIRE … NX
// (before Redis 7.0): the call is counted then, and the window not yet
// opened.
func (s *Store) countFixedPlain(ctx context.Context, k string, cost int64, window time.Duration) (w Window, ok bool, err error) {
	c := &fixedCall{}
	_, err = s.runWrites(ctx, func(ctx context.Context) []redis.Cmder {
		return c.count(ctx, k, cost)
	})
	if err == nil {
		err = c.incr.Err()
	}
	if err == nil {
		err = c.ttl.Err()
	}
	if err != nil {
		return Window{}, true, classify("rate limit", err)
	}
	w = Window{Count: c.incr.Val(), Reset: window}
	switch ms := c.ttl.Val(); {
	case ms >= 0:
		w.Reset = time.Duration(ms) * time.Millisecond
	case ms == -2:
		// The window ended (or was reset) between INCRBY and PTTL: the call
		// was counted in a window that is over.
		w.Reset = 0
	default: // -1: a counter without an expiry
		return s.openFixed(ctx, k, w, window)
	}
	return w, true, nil
}

// fixedCall holds the commands of one countFixedPlain round trip, and the
// arguments they share, in one allocation.
type fixedCall struct {
	incr, ttl *redis.IntCmd
	args      [5]any
	cmds      [2]redis.Cmder
}

func (c *fixedCall) count(ctx context.Context, k string, cost int64) []redis.Cmder {
	key := any(k) // boxed once for both
	c.args = [5]any{"incrby", key, cost, "pttl", key}
	c.incr = redis.NewIntCmd(ctx, c.args[0:3:3]...)
	c.ttl = redis.NewIntCmd(ctx, c.args[3:5:5]...)
	c.cmds = [2]redis.Cmder{c.incr, c.ttl}
	return c.cmds[:]
}

// openFixed opens the window of a counter found without an expiry, with
// PEXPIRE … NX, and reads it with PTTL in the same round trip: a concurrent
// call may have opened it first, and its expiry stands. w is the call's
// count, with a whole window.
func (s *Store) openFixed(ctx context.Context, k string, w Window, window time.Duration) (Window, bool, error) {
	var expire *redis.BoolCmd
	var ttl *redis.IntCmd
	_, err := s.runWrites(ctx, func(ctx context.Context) []redis.Cmder {
		expire = redis.NewBoolCmd(ctx, "pexpire", k, window.Milliseconds(), "nx")
		ttl = redis.NewIntCmd(ctx, "pttl", k)
		return []redis.Cmder{expire, ttl}
	})
	if err == nil {
		if err = expire.Err(); refusesNX(err) {
			return Window{}, false, nil
		}
	}
	if err == nil {
		err = ttl.Err()
	}
	if err != nil {
		return Window{}, true, classify("rate limit", err)
	}
	switch ms := ttl.Val(); {
	case expire.Val(): // this call opened the window
	case ms >= 0:
		w.Reset = time.Duration(ms) * time.Millisecond
	case ms == -2:
		// The counter was reset since INCRBY: the call was counted in a
		// window that is over.
		w.Reset = 0
	}
	return w, true, nil
}

// refusesNX reports a server's refusal of PEXPIRE … NX: an error reply that
// does not say the server is away.
func refusesNX(err error) bool {
	var rerr redis.Error
	return err != nil && errors.As(err, &rerr) && !isUnavailableReply(rerr.Error())
}

// PeekFixed returns the state of a fixed-window counter without counting:
// GET and PTTL, two reads in one round trip.
func (s *Store) PeekFixed(ctx context.Context, key string, window time.Duration) (Window, error) {
	k := s.keys.rateLimit(key, suffixFixed)
	a, b, err := s.runPair(ctx,
		func(ctx context.Context) redis.Cmder { return redis.NewStringCmd(ctx, "get", k) },
		func(ctx context.Context) redis.Cmder { return redis.NewIntCmd(ctx, "pttl", k) })
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	get, ttl := a.(*redis.StringCmd), b.(*redis.IntCmd)
	w := Window{Reset: window}
	switch v, err := get.Result(); {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return Window{}, classify("rate limit", err)
	default:
		if w.Count, err = exactInt(v); err != nil {
			return Window{}, classify("rate limit", err)
		}
	}
	if err := ttl.Err(); err != nil {
		return Window{}, classify("rate limit", err)
	}
	if ms := ttl.Val(); ms >= 0 {
		w.Reset = time.Duration(ms) * time.Millisecond
	}
	return w, nil
}

// fixedCounting says how fixed windows count: with plain commands, or with
// the script on a server that does not take PEXPIRE … NX (before Redis 7.0).
// It is learnt from the servers' answers, not their version: a call on an
// older server finds out, and the script counts for retryScript after it
// before plain commands are tried again. On a cluster of mixed versions
// during an upgrade, that is mostly the script, each retry's call on an
// older node costing a second round trip, until the last node is upgraded.
type fixedCounting struct {
	scriptUntil atomic.Int64 // Unix nanoseconds; 0 = plain commands
}

// retryScript is how long fixed windows keep to the script after a server
// refused PEXPIRE … NX.
const retryScript = time.Minute

func (f *fixedCounting) plain(now time.Time) bool {
	until := f.scriptUntil.Load()
	return until == 0 || now.UnixNano() >= until
}

func (f *fixedCounting) useScript(now time.Time) {
	f.scriptUntil.Store(now.Add(retryScript).UnixNano())
}

// Limit is the policy of a sliding-window or GCRA limiter.
type Limit struct {
	Limit  int64         // calls per window
	Window time.Duration // whole milliseconds
	Burst  int64         // GCRA only: calls admitted at once
	Cost   int64         // how much this call counts
}

// MaxExact bounds limit × window (in milliseconds) for the sliding window,
// and burst × window for GCRA: the scripts' arithmetic is exact below it.
const MaxExact = 1 << 52

// Decision is a limiter's answer to one call.
type Decision struct {
	Allowed    bool
	Count      int64         // units the limiter holds now
	Remaining  int64         // units that could still pass now
	Reset      time.Duration // until everything counted has aged out
	RetryAfter time.Duration // until a denied call could pass; 0 when allowed
}

// Sliding decides a call against a sliding-window counter. With consume
// false it only says whether the call would pass and changes nothing.
func (s *Store) Sliding(ctx context.Context, key string, l Limit, consume bool) (Decision, error) {
	cmd, err := s.decide(ctx, scriptRateLimitSliding, []string{s.keys.rateLimit(key, suffixSliding)}, consume,
		l.Limit, l.Window.Milliseconds(), l.Cost, flag(consume))
	if err != nil {
		return Decision{}, classify("rate limit", err)
	}
	res, err := cmd.Int64Slice()
	if err != nil {
		return Decision{}, classify("rate limit", err)
	}
	return decision(res), nil
}

// GCRA decides a call against a generic cell rate limiter: limit calls per
// window at a smooth rate, up to burst at once. With consume false it only
// says whether the call would pass and changes nothing.
func (s *Store) GCRA(ctx context.Context, key string, l Limit, consume bool) (Decision, error) {
	cmd, err := s.decide(ctx, scriptRateLimitGCRA, []string{s.keys.rateLimit(key, suffixGCRA)}, consume,
		l.Limit, l.Window.Milliseconds(), l.Burst, l.Cost, flag(consume))
	if err != nil {
		return Decision{}, classify("rate limit", err)
	}
	res, err := cmd.Int64Slice()
	if err != nil {
		return Decision{}, classify("rate limit", err)
	}
	return decision(res), nil
}

// decide runs a limiter's script. A call that counts is a write, never run
// twice: a retry after a lost reply would count the call again. A peek is a
// read.
func (s *Store) decide(ctx context.Context, sc *redis.Script, keys []string, consume bool, args ...any) (*redis.Cmd, error) {
	if consume {
		return s.runScript(ctx, sc, keys, args...)
	}
	cmd := sc.Run(ctx, s.scripts(reading), keys, args...)
	return cmd, cmd.Err()
}

func decision(res []int64) Decision {
	return Decision{
		Allowed:    res[0] == 1,
		Count:      res[1],
		Remaining:  res[2],
		Reset:      millis(res[3]),
		RetryAfter: millis(res[4]),
	}
}

// millis converts milliseconds to a Duration, saturating: a bucket a client
// sized at a billion calls an hour drains for longer than a Duration holds.
func millis(ms int64) time.Duration {
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// ResetRateLimit forgets everything every algorithm counted for key. The keys
// share a hash tag, so one DEL reaches them all, on a cluster too.
func (s *Store) ResetRateLimit(ctx context.Context, key string) error {
	k := s.keys
	err := s.write(ctx, func(p redis.Pipeliner) {
		p.Del(ctx, k.rateLimit(key, suffixFixed), k.rateLimit(key, suffixSliding), k.rateLimit(key, suffixGCRA))
	})
	return classify("reset rate limit", err)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
