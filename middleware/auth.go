package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/redis-gateway/redis-gateway/problem"
)

// BearerAuth admits requests whose Authorization header carries one of tokens.
// Tokens are compared as SHA-256 digests, in constant time and against every
// token, so neither length nor position leaks through timing.
func BearerAuth(tokens []string) func(http.Handler) http.Handler {
	digests := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		digests[i] = sha256.Sum256([]byte(t))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			presented, ok := bearer(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="redis-gateway"`)
				problem.Write(w, http.StatusUnauthorized, "unauthorized", "missing bearer token")
				return
			}
			d := sha256.Sum256([]byte(presented))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="redis-gateway", error="invalid_token"`)
				problem.Write(w, http.StatusUnauthorized, "unauthorized", "invalid bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
