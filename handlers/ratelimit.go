package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/store"
)

// rateLimitStore is what the rate-limit routes need from Redis.
type rateLimitStore interface {
	CountFixed(ctx context.Context, key string, cost int64, window time.Duration) (store.Window, error)
	PeekFixed(ctx context.Context, key string, window time.Duration) (store.Window, error)
	Sliding(ctx context.Context, key string, l store.Limit, consume bool) (store.Decision, error)
	GCRA(ctx context.Context, key string, l store.Limit, consume bool) (store.Decision, error)
	ResetRateLimit(ctx context.Context, key string) error
}

// The algorithms, as the algorithm parameter names them.
const (
	algFixed   = "fixed"
	algSliding = "sliding"
	algGCRA    = "gcra"
)

var algorithms = []string{algFixed, algSliding, algGCRA}

// rateLimitRequest is the query of a rate-limit call.
type rateLimitRequest struct {
	key       string
	algorithm string
	limit     int64 // 0 = a plain counter with no limit (fixed only)
	window    time.Duration
	cost      int64
	burst     int64 // gcra only
}

const maxLimit = 1 << 40

func parseRateLimit(r *http.Request, maxWindow time.Duration) (rateLimitRequest, error) {
	var req rateLimitRequest
	key, err := scopedKey(r, "key")
	if err != nil {
		return req, err
	}
	q, err := readRateLimitQuery(r)
	if err != nil {
		return req, err
	}
	req.key = key
	if req.limit, err = q.int("limit", 0, 1, maxLimit); err != nil {
		return req, err
	}
	if req.window, err = q.seconds("window", time.Minute, maxWindow); err != nil {
		return req, err
	}
	if req.cost, err = q.int("cost", 1, 1, maxLimit); err != nil {
		return req, err
	}
	alg, given, err := q.single("algorithm")
	if err != nil {
		return req, err
	}
	switch {
	case !given:
		req.algorithm = algFixed
	case alg == algFixed, alg == algSliding, alg == algGCRA:
		req.algorithm = alg
	default:
		return req, badRequest("algorithm must be fixed, sliding or gcra")
	}
	if _, n := q.lookup("burst"); n > 0 && req.algorithm != algGCRA {
		return req, badRequest("burst applies only to algorithm=gcra")
	}
	if req.limit == 0 {
		if req.algorithm != algFixed {
			return req, badRequest("algorithm=%s needs limit", req.algorithm)
		}
		return req, nil
	}

	// capacity is the most the limiter can ever admit at once.
	capacity, capName := req.limit, "limit"
	if req.algorithm == algGCRA {
		if req.burst, err = q.int("burst", req.limit, 1, maxLimit); err != nil {
			return req, err
		}
		capacity, capName = req.burst, "burst"
	}
	if req.cost > capacity {
		return req, badRequest("cost %d is above %s %d: no call could ever pass", req.cost, capName, capacity)
	}
	// The sliding and GCRA scripts count in milliseconds × calls, exactly,
	// which bounds their product.
	if ms := req.window.Milliseconds(); req.algorithm != algFixed && capacity > store.MaxExact/ms {
		return req, badRequest("%s %d is too large for a window of %d seconds with algorithm=%s: at most %d",
			capName, capacity, seconds(req.window), req.algorithm, store.MaxExact/ms)
	}
	return req, nil
}

// rateLimitQuery is the query of a rate-limit call. A plain one, without
// escapes or semicolons and with few parameters (what clients send), is read
// where it is, without the map url.ParseQuery builds; any other is parsed by
// query, so both answer alike.
type rateLimitQuery struct {
	plain string     // a plain query, or ""
	q     url.Values // any other
}

// maxPlainParams is the most parameters a query read in place has, far below
// url.ParseQuery's limit.
const maxPlainParams = 16

func readRateLimitQuery(r *http.Request) (rateLimitQuery, error) {
	raw := r.URL.RawQuery
	if !strings.ContainsAny(raw, "%+;") && strings.Count(raw, "&") < maxPlainParams {
		return rateLimitQuery{plain: raw}, nil
	}
	q, err := query(r)
	return rateLimitQuery{q: q}, err
}

// lookup returns the first value of parameter name, and how many it has.
func (q rateLimitQuery) lookup(name string) (first string, n int) {
	if q.q != nil {
		vs := q.q[name]
		if len(vs) == 0 {
			return "", 0
		}
		return vs[0], len(vs)
	}
	for rest := q.plain; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		k, v, _ := strings.Cut(part, "=")
		if k == name && part != "" {
			if n == 0 {
				first = v
			}
			n++
		}
	}
	return first, n
}

// single is the function of that name for a rate-limit query.
func (q rateLimitQuery) single(name string) (string, bool, error) {
	v, n := q.lookup(name)
	switch {
	case n == 0:
		return "", false, nil
	case n > 1:
		return "", false, badRequest("%s: give it once", name)
	}
	return v, true, nil
}

// int is intParam for a rate-limit query.
func (q rateLimitQuery) int(name string, def, min, max int64) (int64, error) {
	s, ok, err := q.single(name)
	if err != nil || !ok {
		return def, err
	}
	return wholeParam(name, s, min, max)
}

// seconds is ttlParam for a rate-limit query.
func (q rateLimitQuery) seconds(name string, def, max time.Duration) (time.Duration, error) {
	n, err := q.int(name, int64(def/time.Second), 1, int64(max/time.Second))
	return time.Duration(n) * time.Second, err
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
	Burst      int64 `json:"burst,omitempty"` // gcra only
}

// writeDecision sets the IETF RateLimit headers and their legacy X- forms,
// and writes d as JSON: the bytes Header.Set and json.Marshal would give. The
// header values are cut from one string, their slices from one array, and
// put under names already in net/http's canonical form (RateLimit-Policy is
// sent as Ratelimit-Policy either way), which Set would copy; each slice's
// capacity is its length, so a later Add copies it rather than writing over
// its neighbour.
func writeDecision(w http.ResponseWriter, status int, req rateLimitRequest, d decisionResponse) {
	var scratch [decisionJSONMax]byte
	body := bytes.Clone(appendDecisionJSON(scratch[:0], d))
	retry := !d.Allowed && status == http.StatusTooManyRequests

	var buf [224]byte // 7 values: 2 of at most 55 bytes, 5 numbers of at most 20
	var ends [7]int
	b := append(buf[:0], `"default";q=`...)
	b = strconv.AppendInt(b, d.Limit, 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, seconds(req.window), 10)
	ends[0] = len(b)
	b = append(b, `"default";r=`...)
	b = strconv.AppendInt(b, d.Remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, d.Reset, 10)
	ends[1] = len(b)
	b = strconv.AppendInt(b, d.Limit, 10)
	ends[2] = len(b)
	b = strconv.AppendInt(b, d.Remaining, 10)
	ends[3] = len(b)
	b = strconv.AppendInt(b, d.Reset, 10)
	ends[4] = len(b)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	ends[5] = len(b)
	if retry {
		b = strconv.AppendInt(b, d.RetryAfter, 10)
	}
	ends[6] = len(b)

	all := string(b)
	vals := new([7]string)
	for i, start := range [7]int{0, ends[0], ends[1], ends[2], ends[3], ends[4], ends[5]} {
		vals[i] = all[start:ends[i]]
	}
	h := w.Header()
	h["Ratelimit-Policy"] = vals[0:1:1]
	h["Ratelimit"] = vals[1:2:2]
	h["X-Ratelimit-Limit"] = vals[2:3:3]
	h["X-Ratelimit-Remaining"] = vals[3:4:4]
	h["X-Ratelimit-Reset"] = vals[4:5:5]
	if retry {
		h["Retry-After"] = vals[6:7:7]
	}
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = vals[5:6:6]
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decisionJSONMax bounds the JSON of a decisionResponse: its names and
// punctuation, and seven numbers of at most 20 bytes.
const decisionJSONMax = 96 + 7*20

// appendDecisionJSON appends d as json.Marshal encodes it: its fields in
// order, burst left out when 0.
func appendDecisionJSON(b []byte, d decisionResponse) []byte {
	b = append(b, `{"allowed":`...)
	b = strconv.AppendBool(b, d.Allowed)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, d.Limit, 10)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, d.Remaining, 10)
	b = append(b, `,"reset":`...)
	b = strconv.AppendInt(b, d.Reset, 10)
	b = append(b, `,"retry_after":`...)
	b = strconv.AppendInt(b, d.RetryAfter, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, d.Count, 10)
	if d.Burst != 0 {
		b = append(b, `,"burst":`...)
		b = strconv.AppendInt(b, d.Burst, 10)
	}
	return append(b, '}')
}

// denied completes a denial: retry_after is at least 1, and reset names the
// same moment as Retry-After, as the RateLimit header draft asks, so a client
// that waits for either never comes back too early.
func denied(d decisionResponse, retryAfter time.Duration) decisionResponse {
	d.RetryAfter = max(1, seconds(retryAfter))
	d.Reset = d.RetryAfter
	return d
}

// fixedDecision turns a fixed window's state into a decision. pending is the
// cost of a call not yet counted (a peek); it is 0 once the call has been
// counted. A fixed window frees its whole limit when it ends.
func fixedDecision(req rateLimitRequest, win store.Window, pending int64) decisionResponse {
	// Compared without adding to the count, which may be near the end of
	// int64; pending never exceeds the limit (parseRateLimit refuses that).
	remaining := req.limit
	if win.Count > 0 {
		remaining = max(0, req.limit-win.Count)
	}
	d := decisionResponse{
		Allowed:   win.Count <= req.limit-pending,
		Limit:     req.limit,
		Remaining: remaining,
		Reset:     seconds(win.Reset),
		Count:     win.Count,
	}
	if !d.Allowed {
		return denied(d, win.Reset)
	}
	return d
}

// rateLimiting is what the limiter routes share: the store, what to do when
// Redis is away, and the decision metrics.
type rateLimiting struct {
	store    rateLimitStore
	maxTTL   time.Duration
	failOpen bool
	metrics  rateLimitMetrics
}

// decide asks the request's algorithm about one call; consume false peeks.
func (rl rateLimiting) decide(ctx context.Context, req rateLimitRequest, consume bool) (decisionResponse, error) {
	if req.algorithm == algFixed {
		win, err := rl.fixedWindow(ctx, req, consume)
		pending := int64(0)
		if !consume {
			pending = req.cost
		}
		return fixedDecision(req, win, pending), err
	}

	l := store.Limit{Limit: req.limit, Window: req.window, Burst: req.burst, Cost: req.cost}
	var sd store.Decision
	var err error
	if req.algorithm == algGCRA {
		sd, err = rl.store.GCRA(ctx, req.key, l, consume)
	} else {
		sd, err = rl.store.Sliding(ctx, req.key, l, consume)
	}
	if err != nil {
		return decisionResponse{}, err
	}
	d := decisionResponse{
		Allowed:   sd.Allowed,
		Limit:     req.limit,
		Remaining: sd.Remaining,
		Reset:     seconds(sd.Reset),
		Count:     sd.Count,
		Burst:     req.burst,
	}
	if !d.Allowed {
		return denied(d, sd.RetryAfter), nil
	}
	return d, nil
}

// fixedWindow counts the call in its fixed window or, with consume false,
// only reads the window.
func (rl rateLimiting) fixedWindow(ctx context.Context, req rateLimitRequest, consume bool) (store.Window, error) {
	if consume {
		return rl.store.CountFixed(ctx, req.key, req.cost, req.window)
	}
	return rl.store.PeekFixed(ctx, req.key, req.window)
}

// degraded answers for a limiter Redis cannot be asked about, when
// RATELIMIT_FAIL_OPEN allows the call: the body describes an untouched
// limiter, and the RateLimit-Degraded header says none was consulted.
func (rl rateLimiting) degraded(w http.ResponseWriter, r *http.Request, req rateLimitRequest, consume bool, err error) bool {
	if !rl.failOpen || !redisAway(err) {
		return false
	}
	// The answer is a 200, but the cause belongs in the access log line.
	middleware.NoteError(r.Context(), err)
	rl.metrics.degraded.WithLabelValues(req.algorithm).Inc()
	capacity := req.limit
	if req.algorithm == algGCRA {
		capacity = req.burst
	}
	var count int64
	if consume {
		count = req.cost
	}
	w.Header().Set("RateLimit-Degraded", "redis-unavailable")
	writeDecision(w, http.StatusOK, req, decisionResponse{
		Allowed:   true,
		Limit:     req.limit,
		Remaining: capacity - count,
		Reset:     seconds(req.window),
		Count:     count,
		Burst:     req.burst,
	})
	return true
}

// redisAway reports errors that say Redis could not answer, as opposed to
// answers that say no.
func redisAway(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// handleRateLimit counts a call when consume is set, answering 429 once the
// algorithm says no; otherwise it reports the limiter's state without
// counting, allowed saying whether a call of ?cost would pass now. Without
// ?limit the limiter is a plain windowed counter.
func handleRateLimit(rl rateLimiting, consume bool) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		req, err := parseRateLimit(r, rl.maxTTL)
		if err != nil {
			return err
		}
		if req.limit == 0 {
			win, err := rl.fixedWindow(r.Context(), req, consume)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, counterResponse{Count: win.Count, Reset: seconds(win.Reset)})
			return nil
		}
		d, err := rl.decide(r.Context(), req, consume)
		if err != nil {
			if rl.degraded(w, r, req, consume, err) {
				return nil
			}
			return err
		}
		status := http.StatusOK
		if consume {
			if !d.Allowed {
				status = http.StatusTooManyRequests
			}
			rl.metrics.decided(req.algorithm, d.Allowed)
		}
		writeDecision(w, status, req, d)
		return nil
	})
}

// handleRateLimitReset forgets the key's state under every algorithm.
func handleRateLimitReset(s rateLimitStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
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

// rateLimitMetrics count what the limiters decide.
type rateLimitMetrics struct {
	decisions *prometheus.CounterVec
	degraded  *prometheus.CounterVec
	// The decisions' series by algorithm, looked up once: WithLabelValues
	// hashes its labels and takes a lock on every call.
	allowed, denied map[string]prometheus.Counter
}

// decided counts a decision of alg.
func (m rateLimitMetrics) decided(alg string, allowed bool) {
	if allowed {
		m.allowed[alg].Inc()
	} else {
		m.denied[alg].Inc()
	}
}

func newRateLimitMetrics(reg prometheus.Registerer) rateLimitMetrics {
	m := rateLimitMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway",
			Name:      "ratelimit_decisions_total",
			Help:      "Rate-limit calls decided by Redis, by algorithm and result (allowed or denied). Peeks decide nothing.",
		}, []string{"algorithm", "result"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway",
			Name:      "ratelimit_degraded_total",
			Help:      "Rate-limit calls and peeks answered allowed without Redis (RATELIMIT_FAIL_OPEN), by algorithm.",
		}, []string{"algorithm"}),
	}
	reg.MustRegister(m.decisions, m.degraded)
	// Every series exists from the start, so rate() and alerts see a 0, not nothing.
	m.allowed, m.denied = make(map[string]prometheus.Counter), make(map[string]prometheus.Counter)
	for _, alg := range algorithms {
		m.allowed[alg] = m.decisions.WithLabelValues(alg, "allowed")
		m.denied[alg] = m.decisions.WithLabelValues(alg, "denied")
		m.degraded.WithLabelValues(alg)
	}
	return m
}
