package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
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
	keys := []string{s.keys.rateLimit(key, "")}
	var cmd *redis.Cmd
	var err error
	if count {
		// A decision is never run twice: a retry after a lost reply would
		// count the call again.
		cmd, err = s.runScript(ctx, scriptRateLimitFixed, keys, cost, window.Milliseconds(), "1")
	} else {
		cmd = scriptRateLimitFixed.Run(ctx, s.rdb, keys, cost, window.Milliseconds(), "0")
		err = cmd.Err()
	}
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	res, err := cmd.Int64Slice()
	if err != nil {
		return Window{}, classify("rate limit", err)
	}
	return Window{Count: res[0], Reset: time.Duration(res[1]) * time.Millisecond}, nil
}

// ResetRateLimit forgets everything counted for key.
func (s *Store) ResetRateLimit(ctx context.Context, key string) error {
	err := s.write(ctx, func(p redis.Pipeliner) { p.Del(ctx, s.keys.rateLimit(key, "")) })
	return classify("reset rate limit", err)
}
