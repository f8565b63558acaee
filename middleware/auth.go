package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/redis-gateway/redis-gateway/problem"
)

// AuthOption changes where BearerAuth finds the token or how it answers.
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

// BearerAuth admits requests whose Authorization header carries one of tokens.
// Tokens are compared as SHA-256 digests, in constant time and against every
// token, so neither length nor position leaks through timing.
func BearerAuth(tokens []string, opts ...AuthOption) func(http.Handler) http.Handler {
	digests := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		digests[i] = sha256.Sum256([]byte(t))
	}
	cfg := authConfig{unauthorized: func(w http.ResponseWriter, r *http.Request, msg string) {
		problem.Write(w, http.StatusUnauthorized, "unauthorized", msg)
	}}
	for _, o := range opts {
		o(&cfg)
	}
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
				w.Header().Set("WWW-Authenticate", `Bearer realm="redis-gateway"`)
				cfg.unauthorized(w, r, "missing bearer token")
				return
			}
			d := sha256.Sum256([]byte(presented))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="redis-gateway", error="invalid_token"`)
				cfg.unauthorized(w, r, "invalid bearer token")
				return
			}
			next.ServeHTTP(w, r)
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
	r2.RequestURI = u.RequestURI()
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
