package store

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/redis/go-redis/v9"
)

// CreateSession stores a new session under a fresh id of 130 random bits and
// returns the id.
func (s *Store) CreateSession(ctx context.Context, doc []byte, ttl time.Duration) (string, error) {
	// A collision is astronomically unlikely, but a taken id is never overwritten.
	for range 3 {
		id := rand.Text()
		_, err := s.putSession(ctx, id, doc, ttl, true)
		if err == nil {
			return id, nil
		}
		if !isErr(err, ErrExists) {
			return "", err
		}
	}
	return "", classify("create session", ErrExists)
}

// PutSession stores a session under a client-chosen id and reports whether it
// was created (rather than replaced).
func (s *Store) PutSession(ctx context.Context, id string, doc []byte, ttl time.Duration) (created bool, err error) {
	return s.putSession(ctx, id, doc, ttl, false)
}

func (s *Store) putSession(ctx context.Context, id string, doc []byte, ttl time.Duration, create bool) (bool, error) {
	mode := "put"
	if create {
		mode = "create"
	}
	res, err := s.runScript(ctx, scriptSessionPut, []string{s.keys.session(id)}, doc, int64(ttl/time.Second), mode)
	if err != nil {
		return false, classify("put session", err)
	}
	n, err := res.Int()
	if err != nil {
		return false, classify("put session", err)
	}
	if n < 0 {
		return false, classify("put session", ErrExists)
	}
	return n == 0, nil
}

// GetSession returns a session's document. With touch, the read slides the
// session's expiry back to its own full TTL.
func (s *Store) GetSession(ctx context.Context, id string, touch bool) ([]byte, error) {
	k := s.keys.session(id)
	if touch {
		b, err := scriptSessionGet.Run(ctx, s.rdb, []string{k}).Text()
		return []byte(b), classify("get session", err)
	}
	b, err := s.rdb.HGet(ctx, k, "doc").Bytes()
	return b, classify("get session", err)
}

// DeleteSession removes a session; ErrNotFound when there was none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	var del *redis.IntCmd
	err := s.write(ctx, func(p redis.Pipeliner) { del = p.Del(ctx, s.keys.session(id)) })
	if err == nil && del.Val() == 0 {
		err = ErrNotFound
	}
	return classify("delete session", err)
}
