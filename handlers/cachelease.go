package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/store"
)

// Cache leases: GET /cache/{key}?lease=S[&wait=W] and PUT /cache/{key} with
// Cache-Lease. The plain cache routes stay as they are; cacheLeaseRoutes
// sends the requests that carry a lease here.

// cacheLeaseStore is what the lease routes need from Redis.
type cacheLeaseStore interface {
	GetCacheLeased(ctx context.Context, key string, lease time.Duration, until time.Time) (store.LeasedRead, error)
	PutCacheLeased(ctx context.Context, key, token string, value []byte, ttl time.Duration) error
}

// cacheLeaseHeader carries a lease: to the caller granted it, and back on
// the PUT that fills the key.
const cacheLeaseHeader = "Cache-Lease"

// The lease a caller may ask for, in seconds; wait bounds are configured
// (CACHE_LEASE_MAX_WAIT).
const (
	minLease = 100 * time.Millisecond
	maxLease = 60 * time.Second
)

// defaultLeaseMaxWait is CACHE_LEASE_MAX_WAIT's default.
const defaultLeaseMaxWait = 60 * time.Second

// maxLeaseTokenBytes bounds the Cache-Lease header: a token is a 20-digit id
// at most, a dot and 26 characters.
const maxLeaseTokenBytes = 64

// leaseGetRoute sends GET /cache/{key} to leased when the query asks for a
// lease (or a wait), to plain otherwise. A query-less GET, the common one,
// costs no parsing.
func leaseGetRoute(plain, leased http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && (q.Has("lease") || q.Has("wait")) {
				leased.ServeHTTP(w, r)
				return
			}
		}
		plain.ServeHTTP(w, r)
	})
}

// leasePutRoute sends PUT /cache/{key} to leased when it carries a lease.
func leasePutRoute(plain, leased http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header[cacheLeaseHeader]; ok {
			leased.ServeHTTP(w, r)
			return
		}
		plain.ServeHTTP(w, r)
	})
}

// handleCacheLeaseGet reads a key from Redis, never from the near-cache. On
// a miss, one caller gets 404 with a lease to fill it; the others wait up to
// ?wait seconds for the fill. A wait outlives REQUEST_TIMEOUT: the request's
// deadline is the wait plus REQUEST_TIMEOUT, so the last look and the answer
// still fit (the route is mounted without the common deadline).
func handleCacheLeaseGet(s cacheLeaseStore, maxWait, requestTimeout time.Duration) http.Handler {
	if maxWait <= 0 {
		maxWait = defaultLeaseMaxWait
	}
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		// The lease is a promise to write: a token that may only read must
		// not hold the key's other readers up.
		if err := access.FromContext(r.Context()).Route(access.Cache, access.Write); err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		lease, wait, err := leaseParams(q, maxWait)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait+requestTimeout)
		defer cancel()
		read, err := s.GetCacheLeased(ctx, key, lease, time.Now().Add(wait))
		if err != nil {
			return err
		}
		switch {
		case read.Value != nil:
			tag := store.ETag(read.Value)
			w.Header().Set("ETag", tag)
			if inm := r.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, tag, true) {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
			writeRawJSON(w, http.StatusOK, read.Value)
			return nil
		case read.Token != "":
			w.Header().Set(cacheLeaseHeader, read.Token)
			w.Header().Set("Cache-Control", "no-store")
			return &httpError{Status: http.StatusNotFound, Slug: "not-found", Message: "not found; you hold the lease to fill it: " +
				"PUT the value with the Cache-Lease header within " + strconv.FormatFloat(lease.Seconds(), 'f', -1, 64) + " seconds"}
		}
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, seconds(read.Held)), 10))
		return &httpError{Status: http.StatusNotFound, Slug: "not-found",
			Message: "not found; another caller holds the lease to fill it and has not yet"}
	})
}

// leaseParams reads ?lease (seconds, 0.1 to 60, required) and ?wait (seconds,
// 0 to maxWait; default the lease, or maxWait when shorter).
func leaseParams(q url.Values, maxWait time.Duration) (lease, wait time.Duration, err error) {
	s, ok, err := single(q, "lease")
	switch {
	case err != nil:
		return 0, 0, err
	case !ok:
		return 0, 0, badRequest("wait needs lease: ask for a lease of S seconds with ?lease=S")
	}
	lease, ok = decimalSeconds(s)
	if !ok || lease < minLease || lease > maxLease {
		return 0, 0, badRequest("lease must be seconds from %g to %g, such as 2 or 0.5", minLease.Seconds(), maxLease.Seconds())
	}
	wait = min(lease, maxWait)
	if s, ok, err := single(q, "wait"); err != nil {
		return 0, 0, err
	} else if ok {
		if wait, ok = decimalSeconds(s); !ok || wait > maxWait {
			return 0, 0, badRequest("wait must be seconds from 0 to %g (CACHE_LEASE_MAX_WAIT), such as 2 or 0.5", maxWait.Seconds())
		}
	}
	return lease, wait, nil
}

// decimalSeconds reads seconds written as digits with at most one decimal
// point.
func decimalSeconds(s string) (time.Duration, bool) {
	if !isDecimal(s) || len(s) > 20 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// handleCacheLeasePut fills a key under the lease a leased GET granted:
// stored only while that lease is the key's current one, 409 lease-lost
// otherwise. The key was empty when the lease was granted, so a fill
// creates it: 201.
func handleCacheLeasePut(s cacheLeaseStore, ttls TTLs, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		ttl, err := ttlQuery(r, ttls.CacheDefault, ttls.Max)
		if err != nil {
			return err
		}
		token := strings.TrimSpace(r.Header.Get(cacheLeaseHeader))
		if !validLeaseToken(token) {
			return badRequest("%s must be the token a GET with ?lease returned", cacheLeaseHeader)
		}
		if r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != "" {
			return badRequest("a PUT with %s takes no If-Match or If-None-Match: the lease is its condition", cacheLeaseHeader)
		}
		value, err := readJSON(r, lim.maxDepth)
		if err != nil {
			return err
		}
		if err := s.PutCacheLeased(r.Context(), key, token, value, ttl); err != nil {
			return err
		}
		w.Header().Set("ETag", store.ETag(value))
		w.WriteHeader(http.StatusCreated)
		return nil
	})
}

// validLeaseToken accepts what the gateway issues: digits, a dot, and
// base32 letters and digits.
func validLeaseToken(t string) bool {
	if t == "" || len(t) > maxLeaseTokenBytes {
		return false
	}
	for _, c := range t {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.') {
			return false
		}
	}
	return true
}
