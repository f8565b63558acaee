// Package handlers holds the gateway's HTTP routes: the route map, one file
// per area, and the one place errors become problem responses.
package handlers

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/problem"
)

// Store is everything the routes need from Redis; *store.Store satisfies it.
type Store interface {
	cacheStore
	cacheLeaseStore
	sessionStore
	rateLimitStore
	lockStore
	commandStore
	pubSubStore
	pinger
}

// Config is what New needs to build the gateway's handler.
type Config struct {
	Store    Store
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// TracerProvider, when set, gives every request a span; nil = tracing
	// off, and the access log still carries an incoming traceparent's id.
	TracerProvider trace.TracerProvider

	// TokenSet returns the tokens admitted on data routes, with their
	// scopes; it is asked for every request, so a reloaded set applies at
	// once. No tokens (or a nil TokenSet) and AuthDisabled false admits
	// nobody: data routes are never open by accident.
	TokenSet     func() *access.Set
	AuthDisabled bool
	// MetricsToken, when set, is the bearer token /metrics requires; the
	// data routes' tokens do not open it.
	MetricsToken string
	// CORSOrigins may call the gateway from a browser ("*": any origin).
	// None: no CORS headers, and preflight requests are 405.
	CORSOrigins []string

	MaxBodyBytes int64
	// MaxJSONDepth is how deep a JSON body may nest arrays and objects;
	// deeper is 400. 0 means DefaultMaxJSONDepth.
	MaxJSONDepth   int
	RequestTimeout time.Duration
	TTLs           TTLs

	// CacheLeaseMaxWait bounds ?wait on GET /cache/{key}?lease=S, which
	// REQUEST_TIMEOUT does not. 0 means 60 s.
	CacheLeaseMaxWait time.Duration

	// RateLimitFailOpen allows rate-limited calls when Redis cannot be asked,
	// flagged with RateLimit-Degraded, instead of answering 503.
	RateLimitFailOpen bool

	Draining func() bool // true once shutdown has begun
	// ReadyWithoutRedis keeps /readyz at 200 while Redis is unreachable
	// (READINESS=process): the gateway stays in its load balancer and
	// answers 503 with Retry-After itself.
	ReadyWithoutRedis bool
	OpenAPI           []byte // the contract, served at /openapi.yaml

	// MaxSubscribers caps open event streams, which share the gateway's
	// Redis subscriber connection; past it, 503. 0 means 10000.
	MaxSubscribers int
	// SubscriberBuffer is how many messages a stream may fall behind before
	// it is ended with a dropped event. 0 means 128.
	SubscriberBuffer int
	// Heartbeat is how often idle event streams get a comment line. 0 means 15 s.
	Heartbeat time.Duration
	// LockMaxWait is the longest ?wait of POST /lock/{name}. 0 means 60 s.
	LockMaxWait time.Duration
	// LockMaxWaiters caps the requests waiting for locks at once; past it,
	// 503. 0 means 10000.
	LockMaxWaiters int
	// LockPollInterval is the longest a waiter goes without looking at the
	// lock when no release is announced. 0 means 2 s.
	LockPollInterval time.Duration
	// Streams, if set, counts the event streams served after their handler
	// returned, which http.Server.Shutdown does not wait for: shutdown waits
	// for it after closing Stop, so that each stream ends cleanly.
	Streams *Streams
	// Stop is closed when the server shuts down, which ends open event
	// streams and lock waits; http.Server.Shutdown would wait for them
	// otherwise.
	Stop <-chan struct{}
}

// New returns the gateway's whole HTTP handler.
func New(cfg Config) http.Handler {
	draining := cfg.Draining
	if draining == nil {
		draining = func() bool { return false }
	}
	r := chi.NewRouter()
	r.Use(
		escapedPath,
		middleware.Trace(cfg.TracerProvider),
		// Request id, deadline, recovery, metrics and the access log, in one
		// allocation per request.
		middleware.Front(middleware.FrontConfig{Logger: cfg.Logger, Registry: cfg.Registry, Timeout: cfg.RequestTimeout}),
	)
	if len(cfg.CORSOrigins) > 0 {
		// Before the routes and their auth: a preflight carries no token.
		r.Use(middleware.CORS(cfg.CORSOrigins))
	}
	r.Use(middleware.CloseWhen(draining))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, "not-found", "no such route")
	})
	r.MethodNotAllowed(methodNotAllowed(r))

	r.Get("/healthz", handleLive().ServeHTTP)
	r.Get("/livez", handleLive().ServeHTTP)
	r.Get("/readyz", handleReady(cfg.Store, draining, cfg.ReadyWithoutRedis).ServeHTTP)
	r.Get("/openapi.yaml", handleOpenAPI(cfg.OpenAPI).ServeHTTP)

	rl := rateLimiting{store: cfg.Store, maxTTL: cfg.TTLs.Max, failOpen: cfg.RateLimitFailOpen,
		metrics: newRateLimitMetrics(cfg.Registry)}

	auth := middleware.NewAuth(cfg.Registry)
	if cfg.MetricsToken != "" {
		metricsToken := access.OneToken("METRICS_TOKEN", cfg.MetricsToken)
		r.With(auth.Bearer(func() *access.Set { return metricsToken })).Get("/metrics", handleMetrics(cfg.Registry).ServeHTTP)
	} else {
		r.Get("/metrics", handleMetrics(cfg.Registry).ServeHTTP)
	}
	tokens := cfg.TokenSet
	if tokens == nil {
		none := access.EnvSet(nil)
		tokens = func() *access.Set { return none }
	}

	lim := bodyLimits{maxBytes: cfg.MaxBodyBytes, maxDepth: cfg.MaxJSONDepth}
	if lim.maxDepth <= 0 {
		lim.maxDepth = DefaultMaxJSONDepth
	}
	streams := newStreams(cfg)
	lockWaits := newLockWaits(cfg)
	r.Group(func(r chi.Router) {
		if !cfg.AuthDisabled {
			r.Use(auth.Bearer(tokens))
		}
		r.Use(middleware.BodyLimit(cfg.MaxBodyBytes))

		// Each route names the scope it needs: its family, and whether it
		// reads or writes.
		s, ttls := cfg.Store, cfg.TTLs
		read, write := need(access.Cache, access.Read), need(access.Cache, access.Write)
		r.With(read).Method(http.MethodGet, "/cache", handleCacheGetMany(s))
		r.With(write).Method(http.MethodDelete, "/cache", handleCacheDeleteMany(s))
		r.With(read).Method(http.MethodGet, "/cache/{key}", leaseGetRoute(handleCacheGet(s),
			middleware.NoDeadline(handleCacheLeaseGet(s, cfg.CacheLeaseMaxWait, cfg.RequestTimeout))))
		r.With(read).Method(http.MethodHead, "/cache/{key}", handleCacheGet(s))
		r.With(write).Method(http.MethodPut, "/cache/{key}", leasePutRoute(handleCachePut(s, ttls, lim), handleCacheLeasePut(s, ttls, lim)))
		r.With(write).Method(http.MethodDelete, "/cache/{key}", handleCacheDelete(s))
		r.With(read).Method(http.MethodGet, "/cache/{key}/ttl", handleCacheTTL(s))
		r.With(write).Method(http.MethodPost, "/cache/{key}/expire", handleCacheExpire(s, ttls))
		r.With(write).Method(http.MethodPost, "/cache/{key}/incr", handleCacheIncr(s, ttls))

		// Reading a session slides its expiry: still a read.
		read, write = need(access.Session, access.Read), need(access.Session, access.Write)
		r.With(write).Method(http.MethodPost, "/session", handleSessionCreate(s, ttls, lim))
		r.With(read).Method(http.MethodGet, "/session/{id}", handleSessionGet(s))
		r.With(write).Method(http.MethodPut, "/session/{id}", handleSessionPut(s, ttls, lim))
		r.With(write).Method(http.MethodPatch, "/session/{id}", handleSessionPatch(s, lim))
		r.With(write).Method(http.MethodDelete, "/session/{id}", handleSessionDelete(s))

		read, write = need(access.RateLimit, access.Read), need(access.RateLimit, access.Write)
		r.With(write).Method(http.MethodPost, "/ratelimit/{key}/incr", handleRateLimit(rl, true))
		r.With(read).Method(http.MethodGet, "/ratelimit/{key}", handleRateLimit(rl, false))
		r.With(write).Method(http.MethodDelete, "/ratelimit/{key}", handleRateLimitReset(s))

		read, write = need(access.Lock, access.Read), need(access.Lock, access.Write)
		// A wait may outlast REQUEST_TIMEOUT, up to LOCK_MAX_WAIT: each
		// attempt is bounded instead.
		r.With(write, middleware.NoDeadline).Method(http.MethodPost, "/lock/{name}", handleLockAcquire(s, ttls, lockWaits))
		r.With(read).Method(http.MethodGet, "/lock/{name}", handleLockInspect(s))
		r.With(write).Method(http.MethodDelete, "/lock/{name}", handleLockRelease(s))
		r.With(write).Method(http.MethodPost, "/lock/{name}/refresh", handleLockRefresh(s, ttls))

		read, write = need(access.PubSub, access.Read), need(access.PubSub, access.Write)
		r.With(write).Method(http.MethodPost, "/publish/{channel}", handlePublish(s, lim))
		r.With(read, middleware.NoDeadline).Method(http.MethodGet, "/subscribe/{channel}", handleSubscribe(s, streams))
		r.With(read, middleware.NoDeadline).Method(http.MethodGet, "/subscribe", handlePSubscribe(s, streams))
	})

	// The Upstash-compatible command API answers in that protocol's envelope,
	// {"error": ...}, down to its 401s and 405s, and also takes the token as
	// ?_token=.
	r.Route("/redis", func(r chi.Router) {
		r.NotFound(commandNotFound)
		r.MethodNotAllowed(commandMethodNotAllowed(r))
		if !cfg.AuthDisabled {
			r.Use(auth.Bearer(tokens, middleware.QueryToken("_token"), middleware.Unauthorized(writeCommandUnauthorized)))
		}
		r.Use(needCommandAPI, middleware.BodyLimit(cfg.MaxBodyBytes), syncToken)

		s := cfg.Store
		// The body forms take JSON; the path form's body is a raw argument.
		jsonBody := commandJSONBody(lim.maxDepth)
		r.With(jsonBody).Method(http.MethodPost, "/", handleCommandBody(s))
		r.With(jsonBody).Method(http.MethodPost, "/pipeline", handlePipeline(s))
		r.With(jsonBody).Method(http.MethodPost, "/multi-exec", handleMultiExec(s))
		r.With(middleware.NoDeadline).Method(http.MethodPost, "/subscribe/{channel}", handleUpstashSubscribe(s, streams, false))
		r.With(middleware.NoDeadline).Method(http.MethodPost, "/psubscribe/{pattern}", handleUpstashSubscribe(s, streams, true))
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut} {
			r.Method(m, "/{command}", handleCommandPath(s))
			r.Method(m, "/{command}/*", handleCommandPath(s))
		}
	})
	return r
}

// escapedPath makes the router match on the path as sent, so a key's
// segment reaches the handler still percent-encoded and is decoded exactly
// once there: "%2F" stays inside its segment and "%2541" is the key "%41".
func escapedPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			rctx.RoutePath = sentPath(r)
		}
		next.ServeHTTP(w, r)
	})
}

// sentPath is the request's path exactly as the client sent it. Not
// URL.EscapedPath: when the path holds a character net/http would have
// escaped ("|", a space...), that re-encodes the decoded path, and every
// "%2F" in it becomes a separator.
func sentPath(r *http.Request) string {
	p := r.RequestURI
	switch {
	case p == "" || p == "*": // a request built in-process, or OPTIONS *
		return r.URL.EscapedPath()
	case !strings.HasPrefix(p, "/"): // absolute form: scheme://authority/path
		_, rest, ok := strings.Cut(p, "://")
		if !ok {
			return r.URL.EscapedPath()
		}
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "/"
		}
		p = rest[i:]
	}
	p, _, _ = strings.Cut(p, "?")
	return p
}

// methodNotAllowed answers 405 with the Allow header listing what the path
// does take.
func methodNotAllowed(routes chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowedMethods(routes, sentPath(r)))
		problem.Write(w, http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed here")
	}
}

// allowedMethods lists, for a 405's Allow header, the methods routes serves
// at path.
func allowedMethods(routes chi.Routes, path string) string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}
