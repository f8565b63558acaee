package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/redis-gateway/redis-gateway/store"
)

// rateLimitStore is what the rate-limit routes need from Redis.
type rateLimitStore interface {
	CountFixed(ctx context.Context, key string, cost int64, window time.Duration) (store.Window, error)
	PeekFixed(ctx context.Context, key string, window time.Duration) (store.Window, error)
	ResetRateLimit(ctx context.Context, key string) error
}

// rateLimitRequest is the query of a rate-limit call.
type rateLimitRequest struct {
	key    string
	limit  int64 // 0 = a plain counter with no limit
	window time.Duration
	cost   int64
}

const maxLimit = 1 << 40

func parseRateLimit(r *http.Request, maxWindow time.Duration) (rateLimitRequest, error) {
	var req rateLimitRequest
	key, err := pathKey(r, "key")
	if err != nil {
		return req, err
	}
	q, err := query(r)
	if err != nil {
		return req, err
	}
	req.key = key
	if req.limit, err = intParam(q, "limit", 0, 1, maxLimit); err != nil {
		return req, err
	}
	if req.window, err = ttlParam(q, "window", time.Minute, maxWindow); err != nil {
		return req, err
	}
	if req.cost, err = intParam(q, "cost", 1, 1, maxLimit); err != nil {
		return req, err
	}
	alg, given, err := single(q, "algorithm")
	if err != nil {
		return req, err
	}
	if given && alg != "fixed" {
		return req, badRequest("algorithm must be fixed")
	}
	if req.limit > 0 && req.cost > req.limit {
		return req, badRequest("cost %d is above limit %d: no call could ever pass", req.cost, req.limit)
	}
	return req, nil
}

// counterResponse answers a call without a limit: a windowed counter.
type counterResponse struct {
	Count int64 `json:"count"`
	Reset int64 `json:"reset"`
}

type decisionResponse struct {
	Allowed    bool  `json:"allowed"`
	Limit      int64 `json:"limit"`
	Remaining  int64 `json:"remaining"`
	Reset      int64 `json:"reset"`
	RetryAfter int64 `json:"retry_after"`
	Count      int64 `json:"count"`
}

// writeDecision sets the IETF RateLimit headers and their legacy X- forms.
func writeDecision(w http.ResponseWriter, status int, req rateLimitRequest, d decisionResponse) {
	// The names are written in net/http's canonical form (RateLimit-Policy is
	// sent as Ratelimit-Policy either way), which spares Set a copy of each.
	h := w.Header()
	limit, remaining, reset := strconv.FormatInt(d.Limit, 10), strconv.FormatInt(d.Remaining, 10), strconv.FormatInt(d.Reset, 10)
	h.Set("Ratelimit-Policy", `"default";q=`+limit+";w="+strconv.FormatInt(seconds(req.window), 10))
	h.Set("Ratelimit", `"default";r=`+remaining+";t="+reset)
	h.Set("X-Ratelimit-Limit", limit)
	h.Set("X-Ratelimit-Remaining", remaining)
	h.Set("X-Ratelimit-Reset", reset)
	if !d.Allowed && status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.FormatInt(d.RetryAfter, 10))
	}
	writeJSON(w, status, d)
}

// decide turns a fixed window's state into a decision. pending is the cost of
// a call not yet counted (a peek); it is 0 once the call has been counted.
func decide(req rateLimitRequest, win store.Window, pending int64) decisionResponse {
	reset := seconds(win.Reset)
	d := decisionResponse{
		Allowed:   win.Count+pending <= req.limit,
		Limit:     req.limit,
		Remaining: max(0, req.limit-win.Count),
		Reset:     reset,
		Count:     win.Count,
	}
	if !d.Allowed {
		d.RetryAfter = max(1, reset)
	}
	return d
}

// handleRateLimitIncr counts a call. Without ?limit it is a plain windowed
// counter; with one, a fixed-window limiter answering 429 past the limit.
// Fixed windows count denied calls too.
func handleRateLimitIncr(s rateLimitStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		req, err := parseRateLimit(r, ttls.Max)
		if err != nil {
			return err
		}
		win, err := s.CountFixed(r.Context(), req.key, req.cost, req.window)
		if err != nil {
			return err
		}
		if req.limit == 0 {
			writeJSON(w, http.StatusOK, counterResponse{Count: win.Count, Reset: seconds(win.Reset)})
			return nil
		}
		d := decide(req, win, 0)
		status := http.StatusOK
		if !d.Allowed {
			status = http.StatusTooManyRequests
		}
		writeDecision(w, status, req, d)
		return nil
	})
}

// handleRateLimitPeek reports the limiter's state without counting; allowed
// says whether a call of ?cost would pass now.
func handleRateLimitPeek(s rateLimitStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		req, err := parseRateLimit(r, ttls.Max)
		if err != nil {
			return err
		}
		win, err := s.PeekFixed(r.Context(), req.key, req.window)
		if err != nil {
			return err
		}
		if req.limit == 0 {
			writeJSON(w, http.StatusOK, counterResponse{Count: win.Count, Reset: seconds(win.Reset)})
			return nil
		}
		writeDecision(w, http.StatusOK, req, decide(req, win, req.cost))
		return nil
	})
}

func handleRateLimitReset(s rateLimitStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := pathKey(r, "key")
		if err != nil {
			return err
		}
		if err := s.ResetRateLimit(r.Context(), key); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
