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
	return string(AppendDigest(nil, value))
}

// ETag is the strong entity tag of a stored value: its Digest, quoted.
func ETag(value []byte) string {
	var buf [64]byte // room for a quoted digest, so only the string allocates
	b := append(buf[:0], '"')
	b = AppendDigest(b, value)
	return string(append(b, '"'))
}

// AppendDigest appends the Digest of value to dst, so a caller can build a
// string around it in one allocation.
func AppendDigest(dst, value []byte) []byte {
	sum := sha1.Sum(value)
	return hex.AppendEncode(dst, sum[:])
}

// Condition restricts a write to the current state of the key.
type Condition struct {
	IfAbsent  bool     // create only (If-None-Match: *)
	IfPresent bool     // replace only (If-Match: *)
	IfDigest  []string // replace only a value with one of these digests (If-Match: "…")
}

// GetCache returns the stored bytes of a cache key.
func (s *Store) GetCache(ctx context.Context, key string) ([]byte, error) {
	b, err := runCmd(ctx, s, reading, redis.NewStringCmd, "get", s.keys.cache(key)).Bytes()
	return b, classify("get cache", err)
}

// GetCacheTagged returns the stored bytes of a cache key and their ETag,
// from the near-cache when it holds them. The bytes may be shared with the
// near-cache: callers must not change them.
func (s *Store) GetCacheTagged(ctx context.Context, key string) ([]byte, string, error) {
	c := s.near
	serving := c != nil && c.serving()
	if serving {
		if value, tag, ok := c.get(key); ok {
			c.metrics.hits.Inc()
			return value, tag, nil
		}
		c.metrics.misses.Inc()
	}
	k := s.keys.cache(key)
	if serving {
		if value, tag, done, err := s.readToKeep(ctx, c, key, k); done {
			return value, tag, err
		}
	}
	b, err := runCmd(ctx, s, reading, redis.NewStringCmd, "get", k).Bytes()
	if err != nil {
		return nil, "", classify("get cache", err)
	}
	return b, ETag(b), nil
}

// readToKeep reads key (k in Redis) on the near-cache's reader and keeps
// the value, unless an invalidation overtakes the read. done is false when
// it could not: another read holds the key's reservation, the reader is
// being replaced, or its connection failed. The main client answers then,
// and its answer is not kept.
func (s *Store) readToKeep(ctx context.Context, c *nearCache, key, k string) (value []byte, tag string, done bool, err error) {
	token := c.reserve(key)
	if token == 0 {
		return nil, "", false, nil
	}
	var r *reader
	if s.readers != nil {
		r = s.readers.readerFor(ctx, k)
	}
	if r == nil {
		c.cancel(key, token)
		return nil, "", false, nil
	}
	sent := c.now()
	value, ttl, err := s.getTracked(ctx, r, k)
	switch {
	case err == nil:
		tag = ETag(value)
		c.fill(key, token, value, tag, sent, ttl)
		return value, tag, true, nil
	case errors.Is(err, redis.Nil) || ctx.Err() != nil:
		c.cancel(key, token)
		return nil, "", true, classify("get cache", err)
	}
	c.cancel(key, token)
	return nil, "", false, nil
}

// getTracked reads a value and its TTL (negative: none) on the near-cache's
// reader, so that Redis reports the key's next change and the near-cache
// never keeps the value past its expiry in Redis. The two commands are not
// atomic and need not be: a write between them removes the reservation the
// answer would fill.
func (s *Store) getTracked(ctx context.Context, r *reader, k string) ([]byte, time.Duration, error) {
	get, pttl := redis.NewStringCmd(ctx, "get", k), newMsCmd(ctx, "pttl", k)
	if err := s.readTracked(ctx, r, get, pttl); err != nil {
		return nil, 0, err
	}
	value, err := get.Bytes()
	if err != nil {
		return nil, 0, err
	}
	ttl, err := pttl.Result()
	if err != nil {
		return nil, 0, err
	}
	if ttl < 0 { // go-redis gives -1 (no expiry) and -2 (gone meanwhile) as such
		ttl = -1
	}
	return value, ttl, nil
}

// forget drops a cache key (the client's name for it, without prefixes) from
// the near-cache after the gateway has written it, and before the write is
// acknowledged: a read that follows never sees what was there before. Call it
// deferred, at the start of every write.
func (s *Store) forget(key string) {
	if s.near != nil {
		s.near.invalidate(key, "write")
	}
}

// GetCacheMany returns the values of several keys in the order asked, nil for
// a missing one. One GET per key in a pipeline, rather than MGET, so the keys
// may live in different cluster slots.
func (s *Store) GetCacheMany(ctx context.Context, keys []string) ([][]byte, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	err := s.readPipeline(ctx, func(p redis.Pipeliner) {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.keys.cache(k))
		}
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
	defer s.forget(key)
	switch {
	case cond.IfAbsent, cond.IfPresent:
		only := "nx"
		if cond.IfPresent {
			only = "xx"
		}
		ok, err := runCmd(ctx, s, writing, redis.NewBoolCmd, setArgs(k, value, ttl, only)...).Result()
		if err != nil {
			return false, classify("put cache", err)
		}
		if !ok {
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
	// SET … GET says whether it replaced a value in one plain command, which
	// costs Redis a third of a script. It refuses to replace a key of another
	// type, and servers before 6.2 do not know it; the script replaces
	// anything, everywhere.
	err = runCmd(ctx, s, writing, redis.NewStringCmd, setArgs(k, value, ttl, "get")...).Err()
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, redis.Nil):
		return true, nil
	case !redis.HasErrorPrefix(err, "WRONGTYPE") && !redis.HasErrorPrefix(err, "syntax error"):
		return false, classify("put cache", err)
	}
	res, err := s.runScript(ctx, scriptCachePut, []string{k}, value, ttl.Milliseconds())
	if err != nil {
		return false, classify("put cache", err)
	}
	existed, err := res.Int()
	return existed == 0, classify("put cache", err)
}

// setArgs is SET key value [PX ttl] [NX|XX|GET]; a ttl of 0 keeps no expiry.
func setArgs(key string, value []byte, ttl time.Duration, option string) []any {
	args := []any{"set", key, value}
	if ttl > 0 {
		args = append(args, "px", ttl.Milliseconds())
	}
	if option != "" {
		args = append(args, option)
	}
	return args
}

// DeleteCache removes a key; ErrNotFound when there was none.
func (s *Store) DeleteCache(ctx context.Context, key string) error {
	defer s.forget(key)
	k := s.keys
	res, err := s.runScript(ctx, scriptCacheDelete, []string{k.cache(key), k.cacheLease(key)}, k.cacheLeaseChanged(key))
	var n int64
	if err == nil {
		n, err = res.Int64()
	}
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return classify("delete cache", err)
}

// DeleteCacheMany removes several keys and returns how many existed. One DEL
// per key, pipelined, so the keys may live in different cluster slots.
func (s *Store) DeleteCacheMany(ctx context.Context, keys []string) (int64, error) {
	defer func() {
		for _, k := range keys {
			s.forget(k)
		}
	}()
	// One script per key, pipelined: it withdraws the key's lease too. A
	// node that does not know the script yet refuses it without running
	// it; those keys go again, with the script's text.
	k := s.keys
	cmds := make([]*redis.Cmd, len(keys))
	err := s.write(ctx, func(p redis.Pipeliner) {
		for i, key := range keys {
			cmds[i] = scriptCacheDelete.EvalSha(ctx, p, []string{k.cache(key), k.cacheLease(key)}, k.cacheLeaseChanged(key))
		}
	})
	if errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = s.write(ctx, func(p redis.Pipeliner) {
			for i, key := range keys {
				if c := cmds[i]; errors.Is(c.Err(), redis.ErrNoScript) || redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
					cmds[i] = scriptCacheDelete.Eval(ctx, p, []string{k.cache(key), k.cacheLease(key)}, k.cacheLeaseChanged(key))
				}
			}
		})
	}
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return 0, classify("delete cache", err)
	}
	var n int64
	for _, c := range cmds {
		d, _ := c.Int64()
		n += d
	}
	return n, nil
}

// CacheTTL returns the time left before a key expires, -1 for a key with no
// expiry, ErrNotFound for a missing key.
func (s *Store) CacheTTL(ctx context.Context, key string) (time.Duration, error) {
	d, err := runCmd(ctx, s, reading, newMsCmd, "pttl", s.keys.cache(key)).Result()
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
	defer s.forget(key) // the near-cache keeps the TTL too
	ok, err := runCmd(ctx, s, writing, redis.NewBoolCmd, "pexpire", s.keys.cache(key), ttl.Milliseconds()).Result()
	if err == nil && !ok {
		err = ErrNotFound
	}
	return classify("expire cache", err)
}

// IncrCache adds by to an integer value and returns the result. A key this
// call creates expires after newTTL.
func (s *Store) IncrCache(ctx context.Context, key string, by int64, newTTL time.Duration) (int64, error) {
	defer s.forget(key)
	res, err := s.runScript(ctx, scriptCacheIncr, []string{s.keys.cache(key)}, by, newTTL.Milliseconds())
	if err != nil {
		return 0, classify("incr cache", err)
	}
	n, err := exactInt(res.Val())
	return n, classify("incr cache", err)
}
