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

	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/problem"
)

// Store is everything the routes need from Redis; *store.Store satisfies it.
type Store interface {
	cacheStore
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

	// Tokens admitted on data routes. Empty with AuthDisabled false admits
	// nobody: data routes are never open by accident.
	Tokens       []string
	AuthDisabled bool

	MaxBodyBytes   int64
	RequestTimeout time.Duration
	TTLs           TTLs

	// RateLimitFailOpen allows rate-limited calls when Redis cannot be asked,
	// flagged with RateLimit-Degraded, instead of answering 503.
	RateLimitFailOpen bool

	Draining func() bool // true once shutdown has begun
	OpenAPI  []byte      // the contract, served at /openapi.yaml

	// MaxSubscribers caps open event streams, each holding a Redis
	// connection; past it, 503. 0 means 1000.
	MaxSubscribers int
	// Heartbeat is how often idle event streams get a comment line. 0 means 15 s.
	Heartbeat time.Duration
	// Stop is closed when the server shuts down, which ends open event
	// streams; http.Server.Shutdown would wait for them otherwise.
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
		middleware.RequestID,
		middleware.AccessLog(cfg.Logger),
		middleware.Metrics(cfg.Registry),
		middleware.Recover(cfg.Logger),
		middleware.CloseWhen(draining),
		middleware.Deadline(cfg.RequestTimeout),
	)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, "not-found", "no such route")
	})
	r.MethodNotAllowed(methodNotAllowed(r))

	r.Get("/healthz", handleLive().ServeHTTP)
	r.Get("/livez", handleLive().ServeHTTP)
	r.Get("/readyz", handleReady(cfg.Store, draining).ServeHTTP)
	r.Get("/metrics", handleMetrics(cfg.Registry).ServeHTTP)
	r.Get("/openapi.yaml", handleOpenAPI(cfg.OpenAPI).ServeHTTP)

	rl := rateLimiting{store: cfg.Store, maxTTL: cfg.TTLs.Max, failOpen: cfg.RateLimitFailOpen,
		metrics: newRateLimitMetrics(cfg.Registry)}

	streams := newStreams(cfg)
	r.Group(func(r chi.Router) {
		if !cfg.AuthDisabled {
			r.Use(middleware.BearerAuth(cfg.Tokens))
		}
		r.Use(middleware.BodyLimit(cfg.MaxBodyBytes))

		s, ttls := cfg.Store, cfg.TTLs
		r.Method(http.MethodGet, "/cache", handleCacheGetMany(s))
		r.Method(http.MethodDelete, "/cache", handleCacheDeleteMany(s))
		r.Method(http.MethodGet, "/cache/{key}", handleCacheGet(s))
		r.Method(http.MethodHead, "/cache/{key}", handleCacheGet(s))
		r.Method(http.MethodPut, "/cache/{key}", handleCachePut(s, ttls))
		r.Method(http.MethodDelete, "/cache/{key}", handleCacheDelete(s))
		r.Method(http.MethodGet, "/cache/{key}/ttl", handleCacheTTL(s))
		r.Method(http.MethodPost, "/cache/{key}/expire", handleCacheExpire(s, ttls))
		r.Method(http.MethodPost, "/cache/{key}/incr", handleCacheIncr(s, ttls))

		r.Method(http.MethodPost, "/session", handleSessionCreate(s, ttls))
		r.Method(http.MethodGet, "/session/{id}", handleSessionGet(s))
		r.Method(http.MethodPut, "/session/{id}", handleSessionPut(s, ttls))
		r.Method(http.MethodPatch, "/session/{id}", handleSessionPatch(s, cfg.MaxBodyBytes))
		r.Method(http.MethodDelete, "/session/{id}", handleSessionDelete(s))

		r.Method(http.MethodPost, "/ratelimit/{key}/incr", handleRateLimitIncr(rl))
		r.Method(http.MethodGet, "/ratelimit/{key}", handleRateLimitPeek(rl))
		r.Method(http.MethodDelete, "/ratelimit/{key}", handleRateLimitReset(s))

		r.Method(http.MethodPost, "/lock/{name}", handleLockAcquire(s, ttls, cfg.RequestTimeout))
		r.Method(http.MethodGet, "/lock/{name}", handleLockInspect(s))
		r.Method(http.MethodDelete, "/lock/{name}", handleLockRelease(s))
		r.Method(http.MethodPost, "/lock/{name}/refresh", handleLockRefresh(s, ttls))

		r.Method(http.MethodPost, "/publish/{channel}", handlePublish(s))
		r.With(middleware.NoDeadline).Method(http.MethodGet, "/subscribe/{channel}", handleSubscribe(s, streams))
		r.With(middleware.NoDeadline).Method(http.MethodGet, "/subscribe", handlePSubscribe(s, streams))
	})

	// The Upstash-compatible command API answers in that protocol's envelope,
	// {"error": ...}, down to its 401s and 405s, and also takes the token as
	// ?_token=.
	r.Route("/redis", func(r chi.Router) {
		r.NotFound(commandNotFound)
		r.MethodNotAllowed(commandMethodNotAllowed(r))
		if !cfg.AuthDisabled {
			r.Use(middleware.BearerAuth(cfg.Tokens,
				middleware.QueryToken("_token"), middleware.Unauthorized(writeCommandUnauthorized)))
		}
		r.Use(middleware.BodyLimit(cfg.MaxBodyBytes), syncToken)

		s := cfg.Store
		r.Method(http.MethodPost, "/", handleCommandBody(s))
		r.Method(http.MethodPost, "/pipeline", handlePipeline(s))
		r.Method(http.MethodPost, "/multi-exec", handleMultiExec(s))
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
			rctx.RoutePath = r.URL.EscapedPath()
		}
		next.ServeHTTP(w, r)
	})
}

// methodNotAllowed answers 405 with the Allow header listing what the path
// does take.
func methodNotAllowed(routes chi.Routes) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range methods {
			if routes.Match(chi.NewRouteContext(), m, r.URL.EscapedPath()) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		problem.Write(w, http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed here")
	}
}
