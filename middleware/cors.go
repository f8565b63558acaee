package middleware

import (
	"net/http"
	"strings"

	"github.com/redis-gateway/redis-gateway/problem"
)

// corsMaxAge is how long, in seconds, a browser may reuse a preflight's
// answer. Browsers cap it (Chromium at two hours).
const corsMaxAge = "600"

// corsMethods are the methods the routes take.
const corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"

var corsMethodSet = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// corsHeaders are the request headers browsers may send: the gateway's own,
// and those of the Upstash clients, whose telemetry headers are a family
// (Upstash-Telemetry-Runtime, -Platform, -Sdk, ...).
var corsHeaders = map[string]bool{
	"authorization": true, "content-type": true, "if-match": true, "if-none-match": true, "lock-token": true,
	"x-request-id": true, "upstash-encoding": true, "upstash-response-format": true, "upstash-sync-token": true,
}

const corsHeaderFamily = "upstash-telemetry-"

// corsExposed are the response headers scripts may read, beyond the ones
// every response exposes (Content-Type, Content-Length, ...).
const corsExposed = "Upstash-Sync-Token, X-Request-Id, ETag, Location, Retry-After, RateLimit, RateLimit-Policy, " +
	"RateLimit-Degraded, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, WWW-Authenticate"

// CORS lets pages on origins call the gateway from a browser: it answers
// their preflight requests, and marks the answers to their requests as
// readable by them. origins are serialized origins ("https://app.example")
// or "*" for every origin. The token still decides what a request may do;
// CORS only decides which pages may read the answers. Tokens travel in the
// Authorization header, not cookies, so no credentials mode is needed.
func CORS(origins []string) func(http.Handler) http.Handler {
	anyOrigin := false
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		if o == "*" {
			anyOrigin = true
		}
		allowed[strings.ToLower(o)] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
			}
			if !anyOrigin && !allowed[strings.ToLower(origin)] {
				if preflight {
					problem.Write(w, http.StatusForbidden, "cors-origin", "origin "+origin+" is not in CORS_ALLOWED_ORIGINS")
					return
				}
				next.ServeHTTP(w, r) // answered without CORS headers: the browser keeps it from the page
				return
			}
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			if !preflight {
				h.Set("Access-Control-Expose-Headers", corsExposed)
				next.ServeHTTP(w, r)
				return
			}
			method := r.Header.Get("Access-Control-Request-Method")
			if !corsMethodSet[method] {
				problem.Write(w, http.StatusForbidden, "cors-method", "method "+method+" is not served")
				return
			}
			var headers []string
			for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if name == "" {
					continue
				}
				if !corsHeaders[name] && !strings.HasPrefix(name, corsHeaderFamily) {
					problem.Write(w, http.StatusForbidden, "cors-header", "request header "+name+" is not accepted")
					return
				}
				headers = append(headers, name)
			}
			h.Set("Access-Control-Allow-Methods", corsMethods)
			if len(headers) > 0 {
				h.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
			}
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
		})
	}
}
