package store

import (
	"context"
	"math"
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
	return s.fixed(ctx, key, cost, window, true)
}

// PeekFixed returns the state of a fixed-window counter without counting.
func (s *Store) PeekFixed(ctx context.Context, key string, window time.Duration) (Window, error) {
	return s.fixed(ctx, key, 0, window, false)
}

func (s *Store) fixed(ctx context.Context, key string, cost int64, window time.Duration, count bool) (Window, error) {
	keys := []string{s.keys.rateLimit(key, suffixFixed)}
	cmd, err := s.decide(ctx, scriptRateLimitFixed, keys, count, cost, window.Milliseconds(), flag(count))
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	res, err := replyInts(cmd, 2)
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	return Window{Count: res[0], Reset: time.Duration(res[1]) * time.Millisecond}, nil
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
