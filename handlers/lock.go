package handlers

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/store"
)

// lockStore is what the lock routes need from Redis.
type lockStore interface {
	AcquireLock(ctx context.Context, name string, ttl time.Duration) (store.Lease, error)
	RefreshLock(ctx context.Context, name, token string, ttl time.Duration) (store.Lease, error)
	ReleaseLock(ctx context.Context, name, token string) error
	LockTTL(ctx context.Context, name string) (time.Duration, error)
	AcquireLockFair(ctx context.Context, name string, ttl time.Duration, ticket string, ticketTTL time.Duration) (store.Lease, error)
	LeaveLockQueue(ctx context.Context, name, ticket string) error
	WatchLock(name string, fair bool) *store.Watch
}

// defaultLockTTL is the lease of a lock acquired without ttl or ttl_ms.
const defaultLockTTL = 30 * time.Second

// lockTokenHeader carries the token on refresh and release. Never a query
// parameter: URLs end up in proxy and access logs.
const lockTokenHeader = "Lock-Token"

// Defaults of the lock waits when Config leaves them zero.
const (
	defaultLockMaxWait      = 60 * time.Second
	defaultLockMaxWaiters   = 10000
	defaultLockPollInterval = 2 * time.Second
)

// lockWaits is what every waiting acquisition shares.
type lockWaits struct {
	maxWait        time.Duration // the longest ?wait (LOCK_MAX_WAIT)
	requestTimeout time.Duration // bounds each attempt, not the wait
	// poll is the longest a waiter sleeps without looking at the lock: the
	// fallback for a release it was not told of (a lock deleted behind the
	// gateway's back, a notification lost to a reconnection).
	poll  time.Duration
	slots chan struct{} // one per waiting request (LOCK_MAX_WAITERS)
	stop  <-chan struct{}
}

func newLockWaits(cfg Config) *lockWaits {
	lw := &lockWaits{maxWait: cfg.LockMaxWait, requestTimeout: cfg.RequestTimeout, poll: cfg.LockPollInterval, stop: cfg.Stop}
	if lw.maxWait <= 0 {
		lw.maxWait = defaultLockMaxWait
	}
	if lw.poll <= 0 {
		lw.poll = defaultLockPollInterval
	}
	n := cfg.LockMaxWaiters
	if n <= 0 {
		n = defaultLockMaxWaiters
	}
	lw.slots = make(chan struct{}, n)
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "redis_gateway",
			Name:      "lock_waiters",
			Help:      "Requests waiting for a lock (POST /lock/{name}?wait=), none of which holds a Redis connection.",
		}, func() float64 { return float64(len(lw.slots)) }))
	}
	return lw
}

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
// to let go. The route has no request deadline: each attempt has
// REQUEST_TIMEOUT, and the wait its own bound, LOCK_MAX_WAIT.
func handleLockAcquire(s lockStore, ttls TTLs, lw *lockWaits) http.Handler {
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
		wait, err := waitParam(q, lw.maxWait)
		if err != nil {
			return err
		}
		fair, err := boolParam(q, "fair", false)
		if err != nil {
			return err
		}
		// net/http notices a client going away only once the body has been
		// read to its end; a waiter must notice.
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		lease, err := lw.acquire(r.Context(), s, name, ttl, wait, fair)
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

// errShuttingDown ends the waits still open when the gateway stops.
var errShuttingDown = &httpError{Status: http.StatusServiceUnavailable, Slug: "shutting-down",
	Message: "the gateway is shutting down; retry on another replica"}

// acquire tries to take the lock, then, while it is held and wait lasts,
// sleeps until the release is announced, the holder's lease ends or the
// fallback poll comes round, and tries again.
//
// Attempts run apart from ctx, each bounded by the request timeout: a client
// that leaves mid-attempt does not make the attempt's outcome unknown. An
// acquisition that lands once the client has gone, or the gateway is
// stopping, is released at once.
func (lw *lockWaits) acquire(ctx context.Context, s lockStore, name string, ttl, wait time.Duration, fair bool) (lease store.Lease, err error) {
	// A fair waiter's ticket is kept alive by its attempts, which come at
	// least every poll interval.
	ticket, ticketTTL := "", 3*lw.poll
	if fair {
		ticket = rand.Text()
	}
	attempt := func() (store.Lease, error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lw.requestTimeout)
		defer cancel()
		if fair {
			return s.AcquireLockFair(actx, name, ttl, ticket, ticketTTL)
		}
		return s.AcquireLock(actx, name, ttl)
	}
	detached := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), lw.requestTimeout)
	}
	defer func() {
		if err != nil {
			if fair {
				// Give up the ticket, or the next in line waits for its lease.
				lctx, cancel := detached()
				defer cancel()
				_ = s.LeaveLockQueue(lctx, name, ticket)
			}
			return
		}
		gone := ctx.Err()
		if gone == nil {
			select {
			case <-lw.stop:
				gone = errShuttingDown
			default:
			}
		}
		if gone != nil {
			rctx, cancel := detached()
			defer cancel()
			_ = s.ReleaseLock(rctx, name, lease.Token)
			lease, err = store.Lease{}, gone
		}
	}()
	// A waiter listens before its first attempt: when others already wait
	// for the lock, the subscription is in force and no release can slip
	// between the attempt and the listening.
	var watch *store.Watch
	var ready <-chan struct{}
	if wait > 0 {
		watch = s.WatchLock(name, fair)
		defer watch.Close()
		select {
		case <-watch.Ready():
		default:
			// Not yet: once it is, look again.
			ready = watch.Ready()
		}
	}
	lease, err = attempt()
	var held *store.LockHeldError
	if wait <= 0 || !errors.As(err, &held) {
		return lease, err
	}
	select {
	case lw.slots <- struct{}{}:
		defer func() { <-lw.slots }()
	default:
		return store.Lease{}, &httpError{Status: http.StatusServiceUnavailable, Slug: "too-many-waiters",
			Message: "too many requests are waiting for locks (LOCK_MAX_WAITERS); retry later"}
	}
	until := time.Now().Add(wait)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		left := time.Until(until)
		if left <= 0 {
			return lease, err
		}
		sleep := min(left, lw.poll)
		if held.Remaining > 0 {
			sleep = min(sleep, held.Remaining+time.Millisecond)
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
			return store.Lease{}, ctx.Err()
		case <-lw.stop:
			return store.Lease{}, errShuttingDown
		case <-ready:
			ready = nil
		case <-watch.C():
		case <-timer.C:
		}
		timer.Stop()
		lease, err = attempt()
		if !errors.As(err, &held) {
			return lease, err
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

// waitParam reads ?wait: seconds, fractions allowed, at most maxWait.
func waitParam(q url.Values, maxWait time.Duration) (time.Duration, error) {
	s, ok, err := single(q, "wait")
	if err != nil || !ok {
		return 0, err
	}
	if !isDecimal(s) {
		return 0, badRequest("wait must be seconds, such as 2 or 0.5")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > maxWait.Seconds() {
		return 0, badRequest("wait must be at most %g seconds (LOCK_MAX_WAIT)", maxWait.Seconds())
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
