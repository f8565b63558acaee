package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cache leases (memcache's, from "Scaling Memcache at Facebook", §3.2.1):
// of the callers that miss a key, one is granted a lease to fill it and the
// others wait for the fill, so a hot key that expires is recomputed once;
// and a fill succeeds only while its lease is current, so a value computed
// before a DELETE or a plain PUT can never overwrite what they left.
//
// A lease is a hash beside the cache key, on the same cluster slot
// (keys.cacheLease): its token, whose leading number is a fencing id drawn
// from a counter of the slot, and the Redis time it ends. A fill needs the
// lease to be current and the key to be empty: a plain PUT since the grant
// left a value, which refuses it; a DELETE removes the lease with the value.
// The fill and the DELETE publish on the lease's channel, which wakes the
// waiters of every gateway (hub.go). A plain PUT costs nothing more than before, and
// publishes nothing: its waiters find the value when the lease they wait on
// ends.

// ErrLeaseLost is a leased fill refused: the lease ended and another caller
// holds the next one, or the key was deleted or written since it was granted.
var ErrLeaseLost = errors.New("cache lease lost")

// LeasedRead is what GetCacheLeased found.
type LeasedRead struct {
	Value []byte // the value; nil when there was none
	// Token is a lease granted to the caller, when Value is nil: it should
	// compute the value and PutCacheLeased it.
	Token string
	// Held, when neither, is how long the lease another caller holds has
	// left: the wait ended before it was filled.
	Held time.Duration
}

// leaseMetrics count what happens to leases.
type leaseMetrics struct {
	events  *prometheus.CounterVec // granted, filled, expired, lost
	woken   prometheus.Counter
	waiting prometheus.Gauge
}

func (s *Store) initLeases(reg prometheus.Registerer) error {
	s.leaseMetrics = leaseMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "cache", Name: "leases_total",
			Help: "Cache leases by what became of them: granted (to a caller that missed), filled (its PUT stored the value), " +
				"expired (ended unfilled; counted when the next lease is granted), lost (its PUT was refused with 409).",
		}, []string{"event"}),
		woken: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "redis_gateway", Subsystem: "cache", Name: "lease_waiters_woken_total",
			Help: "Requests waiting on a leased key that a fill or a withdrawn lease woke.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "redis_gateway", Subsystem: "cache", Name: "lease_waiters",
			Help: "Requests waiting now for another caller to fill a leased key.",
		}),
	}
	for _, e := range []string{"granted", "filled", "expired", "lost"} {
		s.leaseMetrics.events.WithLabelValues(e) // exported at 0 from the start
	}
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{s.leaseMetrics.events, s.leaseMetrics.woken, s.leaseMetrics.waiting} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register lease metrics: %w", err)
		}
	}
	return nil
}

// GetCacheLeased reads key from Redis, never from the near-cache, so a miss
// is one. On a miss it grants the caller a lease of length lease, unless
// another caller holds one; then it waits, until the value is written (and
// returns it), the lease ends (and tries for the next), or until passes.
func (s *Store) GetCacheLeased(ctx context.Context, key string, lease time.Duration, until time.Time) (LeasedRead, error) {
	read, err := s.tryLease(ctx, key, lease)
	if err != nil || read.Held == 0 || !time.Now().Before(until) {
		return read, err
	}
	// Watch before looking again, so a fill after the look wakes this
	// request. Until Redis confirms the subscription a fill can be missed:
	// look again once it has.
	w := s.hub.watch(s.keys.cacheLeaseChanged(key), false) // a fill wakes every waiter
	defer w.Close()
	ready := w.Ready()
	s.leaseMetrics.waiting.Inc()
	defer s.leaseMetrics.waiting.Dec()
	for {
		if read, err = s.tryLease(ctx, key, lease); err != nil || read.Held == 0 {
			return read, err
		}
		left := time.Until(until)
		if left <= 0 {
			return read, nil
		}
		// Look again when the lease ends, a millisecond after Redis's clock
		// says so, unless a fill or the caller's own deadline comes first.
		t := time.NewTimer(min(left, read.Held+time.Millisecond))
		select {
		case <-w.C():
			s.leaseMetrics.woken.Inc()
		case <-ready:
			ready = nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return LeasedRead{}, classify("get cache leased", ctx.Err())
		}
		t.Stop()
	}
}

// tryLease runs one look: hit, grant, or held.
func (s *Store) tryLease(ctx context.Context, key string, lease time.Duration) (LeasedRead, error) {
	k := s.keys
	// Never sent twice: a retry after a lost reply would find the lease this
	// very call was granted, and wait on it.
	cmd, err := s.runScript(ctx, scriptCacheLeaseGet,
		[]string{k.cache(key), k.cacheLease(key), k.cacheLeaseSeq(key)}, lease.Milliseconds(), rand.Text())
	if err != nil {
		return LeasedRead{}, classify("get cache leased", err)
	}
	res, err := cmd.Slice()
	if err != nil || len(res) < 2 {
		return LeasedRead{}, classify("get cache leased", fmt.Errorf("unexpected reply %v: %w", res, err))
	}
	switch res[0] {
	case int64(1):
		v, _ := res[1].(string)
		return LeasedRead{Value: []byte(v)}, nil
	case int64(0):
		token, _ := res[1].(string)
		s.leaseMetrics.events.WithLabelValues("granted").Inc()
		if len(res) > 2 && res[2] == int64(1) {
			s.leaseMetrics.events.WithLabelValues("expired").Inc()
		}
		return LeasedRead{Token: token}, nil
	}
	ms, _ := res[1].(int64)
	return LeasedRead{Held: time.Duration(max(ms, 1)) * time.Millisecond}, nil
}

// PutCacheLeased stores value for ttl under the lease token, which must be
// the key's current lease; ErrLeaseLost otherwise. Waiters, in every
// gateway, are woken to read it.
func (s *Store) PutCacheLeased(ctx context.Context, key, token string, value []byte, ttl time.Duration) error {
	defer s.forget(key)
	k := s.keys
	cmd, err := s.runScript(ctx, scriptCacheLeasePut, []string{k.cache(key), k.cacheLease(key)},
		token, value, ttl.Milliseconds(), k.cacheLeaseChanged(key))
	var n int64
	if err == nil {
		n, err = cmd.Int64()
	}
	if err != nil {
		return classify("put cache leased", err)
	}
	if n == 0 {
		s.leaseMetrics.events.WithLabelValues("lost").Inc()
		return classify("put cache leased", ErrLeaseLost)
	}
	s.leaseMetrics.events.WithLabelValues("filled").Inc()
	return nil
}
