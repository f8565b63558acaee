package handlers

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis-gateway/redis-gateway/store"
)

// lockStore is what the lock routes need from Redis.
type lockStore interface {
	AcquireLock(ctx context.Context, name string, ttl time.Duration) (store.Lease, error)
	RefreshLock(ctx context.Context, name, token string, ttl time.Duration) (store.Lease, error)
	ReleaseLock(ctx context.Context, name, token string) error
	LockTTL(ctx context.Context, name string) (time.Duration, error)
}

// defaultLockTTL is the lease of a lock acquired without ttl or ttl_ms.
const defaultLockTTL = 30 * time.Second

// lockTokenHeader carries the token on refresh and release. Never a query
// parameter: URLs end up in proxy and access logs.
const lockTokenHeader = "Lock-Token"

// Retries of a waiting acquisition back off from lockBackoffMin to
// lockBackoffMax, each sleep drawn at random below the current bound ("full
// jitter"), so that many waiters neither hammer Redis nor wake in step.
const (
	lockBackoffMin = 5 * time.Millisecond
	lockBackoffMax = 100 * time.Millisecond
)

type lockAcquired struct {
	Token     string `json:"token"`
	Fence     int64  `json:"fence"`
	TTLMs     int64  `json:"ttl_ms"`
	ExpiresAt string `json:"expires_at"`
}

type lockRefreshed struct {
	TTLMs     int64  `json:"ttl_ms"`
	ExpiresAt string `json:"expires_at"`
	Fence     int64  `json:"fence"`
}

type lockState struct {
	Locked bool  `json:"locked"`
	TTLMs  int64 `json:"ttl_ms"`
}

// rfc3339Millis is RFC 3339 with the milliseconds a lease is counted in.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// handleLockAcquire takes a lock, waiting up to ?wait seconds for its holder
// to let go. The wait ends a little before the request deadline, so that the
// last attempt and the answer still fit in it.
func handleLockAcquire(s lockStore, ttls TTLs, requestTimeout time.Duration) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		name, err := scopedKey(r, "name")
		if err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		ttl, err := lockTTL(q, min(defaultLockTTL, ttls.Max), ttls.Max)
		if err != nil {
			return err
		}
		wait, err := waitParam(q, requestTimeout)
		if err != nil {
			return err
		}
		until := time.Now().Add(wait)
		if deadline, ok := r.Context().Deadline(); ok {
			if last := deadline.Add(-min(250*time.Millisecond, requestTimeout/4)); last.Before(until) {
				until = last
			}
		}
		lease, err := acquire(r.Context(), s, name, ttl, until)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store") // the body carries the token
		writeJSON(w, http.StatusCreated, lockAcquired{
			Token:     lease.Token,
			Fence:     lease.Fence,
			TTLMs:     lease.TTL.Milliseconds(),
			ExpiresAt: lease.ExpiresAt.UTC().Format(rfc3339Millis),
		})
		return nil
	})
}

// acquire tries to take the lock until it succeeds or until passes, sleeping
// between attempts but never past until or the holder's expiry.
func acquire(ctx context.Context, s lockStore, name string, ttl time.Duration, until time.Time) (store.Lease, error) {
	bound := lockBackoffMin
	for {
		lease, err := s.AcquireLock(ctx, name, ttl)
		var held *store.LockHeldError
		if !errors.As(err, &held) {
			return lease, err
		}
		left := time.Until(until)
		if left <= 0 {
			return lease, err
		}
		sleep := min(rand.N(bound)+1, left)
		if held.Remaining > 0 {
			sleep = min(sleep, held.Remaining+time.Millisecond)
		}
		bound = min(2*bound, lockBackoffMax)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return store.Lease{}, ctx.Err()
		case <-t.C:
		}
	}
}

// handleLockRefresh extends the lease of the Lock-Token's holder: for ?ttl or
// ?ttl_ms when given, else for the TTL the lease last had.
func handleLockRefresh(s lockStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		name, q, token, err := lockRequest(r)
		if err != nil {
			return err
		}
		ttl, err := lockTTL(q, 0, ttls.Max)
		if err != nil {
			return err
		}
		lease, err := s.RefreshLock(r.Context(), name, token, ttl)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, lockRefreshed{
			TTLMs:     lease.TTL.Milliseconds(),
			ExpiresAt: lease.ExpiresAt.UTC().Format(rfc3339Millis),
			Fence:     lease.Fence,
		})
		return nil
	})
}

func handleLockRelease(s lockStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		name, _, token, err := lockRequest(r)
		if err != nil {
			return err
		}
		if err := s.ReleaseLock(r.Context(), name, token); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleLockInspect says whether the lock is held and for how long; never by
// whom, and never the token.
func handleLockInspect(s lockStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		name, err := scopedKey(r, "name")
		if err != nil {
			return err
		}
		ttl, err := s.LockTTL(r.Context(), name)
		if err != nil {
			return err
		}
		ms := ttl.Milliseconds()
		if ttl < 0 {
			ms = -1 // no expiry: not a lock this gateway took
		}
		writeJSON(w, http.StatusOK, lockState{Locked: true, TTLMs: ms})
		return nil
	})
}

// lockRequest reads what refresh and release share: the name, the query and
// the token.
func lockRequest(r *http.Request) (name string, q url.Values, token string, err error) {
	if name, err = scopedKey(r, "name"); err != nil {
		return "", nil, "", err
	}
	if q, err = query(r); err != nil {
		return "", nil, "", err
	}
	if _, ok := q["token"]; ok {
		return "", nil, "", badRequest("send the lock token in the %s header, never in the URL", lockTokenHeader)
	}
	token = strings.TrimSpace(r.Header.Get(lockTokenHeader))
	if token == "" {
		return "", nil, "", badRequest("the %s header is required: the token POST /lock/{name} returned", lockTokenHeader)
	}
	return name, q, token, nil
}

// lockTTL reads a lease length from ?ttl (seconds) or ?ttl_ms, not both; def
// when neither is given.
func lockTTL(q url.Values, def, maxTTL time.Duration) (time.Duration, error) {
	_, inSeconds := q["ttl"]
	_, inMillis := q["ttl_ms"]
	switch {
	case inSeconds && inMillis:
		return 0, badRequest("give ttl or ttl_ms, not both")
	case inMillis:
		n, err := intParam(q, "ttl_ms", 0, 1, maxTTL.Milliseconds())
		return time.Duration(n) * time.Millisecond, err
	}
	return ttlParam(q, "ttl", def, maxTTL)
}

// waitParam reads ?wait: seconds, fractions allowed, at most the request
// timeout, since no request outlives that.
func waitParam(q url.Values, requestTimeout time.Duration) (time.Duration, error) {
	s, ok, err := single(q, "wait")
	if err != nil || !ok {
		return 0, err
	}
	if !isDecimal(s) {
		return 0, badRequest("wait must be seconds, such as 2 or 0.5")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > requestTimeout.Seconds() {
		return 0, badRequest("wait must be at most %g seconds: REQUEST_TIMEOUT bounds every request", requestTimeout.Seconds())
	}
	return time.Duration(f * float64(time.Second)), nil
}

// isDecimal accepts digits with at most one decimal point: no sign, no
// exponent, no "inf".
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
