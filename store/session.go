package store

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
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
	res, err := s.runScript(ctx, scriptSessionPut, []string{s.keys.session(id)}, doc, int64(ttl/time.Second), mode, rand.Text())
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
		b, err := scriptSessionGet.Run(ctx, s.scripts(reading), []string{k}).Text()
		return []byte(b), classify("get session", err)
	}
	b, err := runCmd(ctx, s, reading, redis.NewStringCmd, "hget", k, "doc").Bytes()
	return b, classify("get session", err)
}

// keyedMutex serializes this process's updates of one key. Without it,
// concurrent patches of one session through one gateway would race each
// other through compare-and-swap and mostly lose; with it, only writers in
// other gateway replicas can come between a read and its write, and the
// version check catches those.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held    chan struct{} // a token in the channel = locked
	waiters int           // holders and waiters; the entry goes at 0
}

// lock waits for key, or for ctx to end, and returns the unlock function.
func (m *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*keyLock{}
	}
	l := m.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		m.locks[key] = l
	}
	l.waiters++
	m.mu.Unlock()

	done := func() {
		m.mu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(m.locks, key)
		}
		m.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// Bounds of UpdateSession's compare-and-swap. The first lost race retries
// at once, on the newer document the reply carries. Later ones sleep a random
// time below a bound that doubles up to updateBackoffMax ("full jitter"),
// then read the session afresh, so that writers in several replicas spread
// out instead of colliding again. Every lost race means that another writer
// made progress.
const (
	updateAttempts   = 30
	updateBackoffMin = time.Millisecond
	updateBackoffMax = 32 * time.Millisecond
)

// UpdateSession replaces a session's document with what update makes of it,
// atomically: the write goes through only if no other write came between
// the read and it; otherwise update runs again on the newer document. The
// write restores the session's own TTL. It returns the document written.
// After updateAttempts lost races the answer is ErrConflict; an error from
// update is returned as it is.
func (s *Store) UpdateSession(ctx context.Context, id string, update func(doc []byte) ([]byte, error)) ([]byte, error) {
	k := s.keys.session(id)
	unlock, err := s.updating.lock(ctx, k)
	if err != nil {
		return nil, classify("update session", err)
	}
	defer unlock()
	doc, ver, err := s.sessionVersion(ctx, k)
	if err != nil {
		return nil, err
	}
	bound := updateBackoffMin
	for attempt := 1; ; attempt++ {
		next, err := update(doc)
		if err != nil {
			return nil, err
		}
		cmd, err := s.runScript(ctx, scriptSessionPatch, []string{k}, ver, next, rand.Text())
		if err != nil {
			return nil, classify("update session", err)
		}
		res, err := cmd.Slice()
		if err != nil {
			return nil, classify("update session", err)
		}
		switch {
		case len(res) == 1 && res[0] == int64(1):
			return next, nil
		case len(res) == 1:
			return nil, classify("update session", ErrNotFound)
		case len(res) != 3:
			return nil, fmt.Errorf("update session: unexpected reply of %d elements", len(res))
		case attempt == updateAttempts:
			return nil, classify("update session", ErrConflict)
		case attempt == 1:
			current, _ := res[1].(string)
			doc = []byte(current)
			ver, _ = res[2].(string)
			continue
		}
		t := time.NewTimer(mrand.N(bound) + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, classify("update session", ctx.Err())
		case <-t.C:
		}
		bound = min(2*bound, updateBackoffMax)
		if doc, ver, err = s.sessionVersion(ctx, k); err != nil {
			return nil, err
		}
	}
}

// sessionVersion reads a session's document and version ("" for a session
// written before sessions had versions).
func (s *Store) sessionVersion(ctx context.Context, k string) ([]byte, string, error) {
	fields, err := runCmd(ctx, s, reading, redis.NewSliceCmd, "hmget", k, "doc", "ver").Result()
	if err != nil {
		return nil, "", classify("update session", err)
	}
	doc, ok := fields[0].(string)
	if !ok {
		return nil, "", classify("update session", ErrNotFound)
	}
	ver, _ := fields[1].(string)
	return []byte(doc), ver, nil
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
