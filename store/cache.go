package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Digest identifies a stored value: the hex SHA-1 of its bytes. Lua computes
// the same with redis.sha1hex, which lets If-Match run inside one script.
func Digest(value []byte) string {
	sum := sha1.Sum(value)
	return hex.EncodeToString(sum[:])
}

// Condition restricts a write to the current state of the key.
type Condition struct {
	IfAbsent  bool     // create only (If-None-Match: *)
	IfPresent bool     // replace only (If-Match: *)
	IfDigest  []string // replace only a value with one of these digests (If-Match: "…")
}

// GetCache returns the stored bytes of a cache key.
func (s *Store) GetCache(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.keys.cache(key)).Bytes()
	return b, classify("get cache", err)
}

// GetCacheMany returns the values of several keys in the order asked, nil for
// a missing one. One GET per key in a pipeline, rather than MGET, so the keys
// may live in different cluster slots.
func (s *Store) GetCacheMany(ctx context.Context, keys []string) ([][]byte, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.keys.cache(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, classify("get cache", err)
	}
	values := make([][]byte, len(keys))
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, classify("get cache", err)
		default:
			values[i] = b
		}
	}
	return values, nil
}

// PutCache stores value for ttl. It reports whether the key was created
// (rather than replaced); a write that cond forbids is ErrPreconditionFailed.
func (s *Store) PutCache(ctx context.Context, key string, value []byte, ttl time.Duration, cond Condition) (created bool, err error) {
	k := s.keys.cache(key)
	switch {
	case cond.IfAbsent, cond.IfPresent:
		var set *redis.BoolCmd
		err := s.write(ctx, func(p redis.Pipeliner) {
			if cond.IfAbsent {
				set = p.SetNX(ctx, k, value, ttl)
			} else {
				set = p.SetXX(ctx, k, value, ttl)
			}
		})
		if err != nil {
			return false, classify("put cache", err)
		}
		if !set.Val() {
			return false, classify("put cache", ErrPreconditionFailed)
		}
		return cond.IfAbsent, nil
	case len(cond.IfDigest) > 0:
		args := make([]any, 0, 2+len(cond.IfDigest))
		args = append(args, value, ttl.Milliseconds())
		for _, d := range cond.IfDigest {
			args = append(args, d)
		}
		res, err := s.runScript(ctx, scriptCachePutIfMatch, []string{k}, args...)
		if err != nil {
			return false, classify("put cache", err)
		}
		if n, _ := res.Int(); n == 0 {
			return false, classify("put cache", ErrPreconditionFailed)
		}
		return false, nil
	}
	res, err := s.runScript(ctx, scriptCachePut, []string{k}, value, ttl.Milliseconds())
	if err != nil {
		return false, classify("put cache", err)
	}
	existed, err := res.Int()
	return existed == 0, classify("put cache", err)
}

// DeleteCache removes a key; ErrNotFound when there was none.
func (s *Store) DeleteCache(ctx context.Context, key string) error {
	var del *redis.IntCmd
	err := s.write(ctx, func(p redis.Pipeliner) { del = p.Del(ctx, s.keys.cache(key)) })
	if err == nil && del.Val() == 0 {
		err = ErrNotFound
	}
	return classify("delete cache", err)
}

// DeleteCacheMany removes several keys and returns how many existed. One DEL
// per key, pipelined, so the keys may live in different cluster slots.
func (s *Store) DeleteCacheMany(ctx context.Context, keys []string) (int64, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	err := s.write(ctx, func(p redis.Pipeliner) {
		for i, k := range keys {
			cmds[i] = p.Del(ctx, s.keys.cache(k))
		}
	})
	if err != nil {
		return 0, classify("delete cache", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// CacheTTL returns the time left before a key expires, -1 for a key with no
// expiry, ErrNotFound for a missing key.
func (s *Store) CacheTTL(ctx context.Context, key string) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.keys.cache(key)).Result()
	if err != nil {
		return 0, classify("cache ttl", err)
	}
	switch d {
	case -2: // go-redis returns the reply as a Duration of nanoseconds
		return 0, classify("cache ttl", ErrNotFound)
	case -1:
		return -1, nil
	}
	return d, nil
}

// ExpireCache sets a new TTL on an existing key.
func (s *Store) ExpireCache(ctx context.Context, key string, ttl time.Duration) error {
	var set *redis.BoolCmd
	err := s.write(ctx, func(p redis.Pipeliner) { set = p.PExpire(ctx, s.keys.cache(key), ttl) })
	if err == nil && !set.Val() {
		err = ErrNotFound
	}
	return classify("expire cache", err)
}

// IncrCache adds by to an integer value and returns the result. A key this
// call creates expires after newTTL.
func (s *Store) IncrCache(ctx context.Context, key string, by int64, newTTL time.Duration) (int64, error) {
	res, err := s.runScript(ctx, scriptCacheIncr, []string{s.keys.cache(key)}, by, newTTL.Milliseconds())
	if err != nil {
		return 0, classify("incr cache", err)
	}
	n, err := res.Int64()
	return n, classify("incr cache", err)
}
