package middleware

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/series"
	"github.com/redis-gateway/redis-gateway/problem"
)

// AuthOption changes where Bearer finds the token or how it answers.
type AuthOption func(*authConfig)

type authConfig struct {
	queryParam   string
	unauthorized func(w http.ResponseWriter, r *http.Request, msg string)
}

// QueryToken also admits the token as the query parameter name (the Upstash
// protocol's ?_token=), for clients that cannot set headers. The parameter is
// removed from the request, admitted or not, so no handler reads it as input
// and no log line can carry it.
func QueryToken(name string) AuthOption {
	return func(c *authConfig) { c.queryParam = name }
}

// Unauthorized answers 401s with write instead of a problem document; the
// WWW-Authenticate header is set before write runs.
func Unauthorized(write func(w http.ResponseWriter, r *http.Request, msg string)) AuthOption {
	return func(c *authConfig) { c.unauthorized = write }
}

// Auth admits requests by bearer token, and counts the requests admitted, by
// token name, and those turned away: by authentication (401) and by a
// token's scopes (403).
type Auth struct {
	denials  *prometheus.CounterVec
	requests *prometheus.CounterVec
	admits   series.Cache[string, prometheus.Counter] // requests' children, by token name
}

func (a *Auth) admitted(name string) prometheus.Counter {
	return a.admits.Get(name, func(name string) prometheus.Counter { return a.requests.WithLabelValues(name) })
}

// NewAuth registers the counters with reg.
func NewAuth(reg prometheus.Registerer) *Auth {
	denials := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "redis_gateway",
		Name:      "auth_denials_total",
		Help: "Requests refused: by authentication (scope \"token\", token \"\"), or by the scope of the named token " +
			"(routes, access, keys, channels, commands).",
	}, []string{"token", "scope"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "redis_gateway",
		Name:      "token_requests_total",
		Help:      "Requests admitted, by the name of their token (names come from GATEWAY_TOKENS_FILE, GATEWAY_TOKENS#n, METRICS_TOKEN).",
	}, []string{"token"})
	reg.MustRegister(denials, requests)
	denials.WithLabelValues("", "token") // at zero from the start, so rate() sees the first 401
	return &Auth{denials: denials, requests: requests}
}

// zeroNames makes a series, at zero, for each token of set: a token that has
// not been used yet still shows, and rate() sees its first request.
func (a *Auth) zeroNames(set *access.Set) {
	for _, name := range set.Names() {
		a.admitted(name)
	}
}

// Bearer admits requests whose Authorization header carries a token of the
// set tokens returns, asked afresh for every request so a reloaded set
// applies at once. The token goes into the request's context
// (access.FromContext) and its name into the access log. A request the
// handler refuses with an *access.Denied (noted for the access log, as every
// handler error is) is counted under the token's name.
func (a *Auth) Bearer(tokens func() *access.Set, opts ...AuthOption) func(http.Handler) http.Handler {
	cfg := authConfig{unauthorized: func(w http.ResponseWriter, r *http.Request, msg string) {
		problem.Write(w, http.StatusUnauthorized, "unauthorized", msg)
	}}
	for _, o := range opts {
		o(&cfg)
	}
	refuse := func(w http.ResponseWriter, r *http.Request, challenge, msg string) {
		a.denials.WithLabelValues("", "token").Inc()
		NoteError(r.Context(), errors.New(msg))
		w.Header().Set("WWW-Authenticate", challenge)
		cfg.unauthorized(w, r, msg)
	}
	var seen atomic.Pointer[access.Set] // the last set whose names have a series
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			presented, ok := bearer(r.Header.Get("Authorization"))
			if cfg.queryParam != "" {
				var inQuery string
				var found bool
				r, inQuery, found = withoutQueryParam(r, cfg.queryParam)
				if !ok && found && inQuery != "" {
					presented, ok = inQuery, true
				}
			}
			if !ok {
				refuse(w, r, `Bearer realm="redis-gateway"`, "missing bearer token")
				return
			}
			set := tokens()
			if old := seen.Load(); old != set && seen.CompareAndSwap(old, set) {
				a.zeroNames(set)
			}
			tok := set.Lookup(presented)
			if tok == nil {
				refuse(w, r, `Bearer realm="redis-gateway", error="invalid_token"`, "invalid bearer token")
				return
			}
			a.admitted(tok.Name).Inc()
			if rq := requestOf(r.Context()); rq != nil {
				rq.token = tok // its context answers access.FromContext: no copy of the request
				next.ServeHTTP(w, r)
			} else {
				next.ServeHTTP(w, r.WithContext(access.NewContext(r.Context(), tok)))
			}
			if err := notedError(r.Context()); err != nil {
				var denied *access.Denied
				if errors.As(err, &denied) {
					a.denials.WithLabelValues(tok.Name, denied.Scope).Inc()
				}
			}
		})
	}
}

// withoutQueryParam returns r without the query parameter name, and the
// parameter's first value. The other parameters keep their order and their
// encoding as sent.
func withoutQueryParam(r *http.Request, name string) (*http.Request, string, bool) {
	if r.URL.RawQuery == "" {
		return r, "", false
	}
	var kept []string
	var value string
	found := false
	for _, part := range strings.Split(r.URL.RawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != name {
			kept = append(kept, part)
			continue
		}
		if !found {
			value, _ = url.QueryUnescape(v)
			found = true
		}
	}
	if !found {
		return r, "", false
	}
	u := *r.URL
	u.RawQuery = strings.Join(kept, "&")
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	// The path as sent stays as sent: u.RequestURI() would re-encode it.
	if path, _, _ := strings.Cut(r.RequestURI, "?"); path != "" && u.RawQuery != "" {
		r2.RequestURI = path + "?" + u.RawQuery
	} else {
		r2.RequestURI = path
	}
	return r2, value, true
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
