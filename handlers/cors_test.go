package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis-gateway/redis-gateway/handlers"
)

const appOrigin = "https://app.example"

// The headers a browser running @upstash/redis asks to send.
const upstashRequestHeaders = "authorization, content-type, upstash-encoding, upstash-response-format, upstash-sync-token, " +
	"upstash-telemetry-platform, upstash-telemetry-runtime, upstash-telemetry-sdk"

func preflight(path, origin, method, headers string) request {
	return request{method: "OPTIONS", path: path, token: "-", header: map[string]string{
		"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers,
	}}
}

func TestCORS(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.CORSOrigins = []string{appOrigin} }))
	fromApp := map[string]string{"Origin": appOrigin}
	tests := []struct {
		name   string
		req    request
		status int
		header map[string]string // "" = absent
	}{
		{"preflight of an Upstash client", preflight("/redis/pipeline", appOrigin, "POST", upstashRequestHeaders), 204, map[string]string{
			"Access-Control-Allow-Origin":  appOrigin,
			"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
			"Access-Control-Allow-Headers": upstashRequestHeaders,
			"Access-Control-Max-Age":       "600",
		}},
		{"preflight of a cache write", preflight("/cache/k", appOrigin, "PUT", "Authorization, Content-Type, If-Match"), 204, map[string]string{
			"Access-Control-Allow-Origin":  appOrigin,
			"Access-Control-Allow-Headers": "authorization, content-type, if-match",
		}},
		{"preflight from another origin", preflight("/redis", "https://evil.example", "POST", "authorization"), 403, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
		{"preflight of a header nobody reads", preflight("/redis", appOrigin, "POST", "authorization, x-forwarded-for"), 403, nil},
		{"preflight of a method nobody serves", preflight("/redis", appOrigin, "TRACE", ""), 403, nil},
		{"a command from the page", request{method: "POST", path: "/redis", body: `["PING"]`, header: fromApp}, 200, map[string]string{
			"Access-Control-Allow-Origin": appOrigin,
			"Upstash-Sync-Token":          "0",
		}},
		{"a 401 the page can read", request{method: "GET", path: "/cache/k", token: "-", header: fromApp}, 401, map[string]string{
			"Access-Control-Allow-Origin": appOrigin,
		}},
		{"another origin gets no CORS headers", request{method: "GET", path: "/cache/k", header: map[string]string{"Origin": "https://evil.example"}}, 404, map[string]string{
			"Access-Control-Allow-Origin":   "",
			"Access-Control-Expose-Headers": "",
		}},
		{"no Origin, no CORS headers", request{method: "GET", path: "/cache/k"}, 404, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do(tt.req)
			if resp.status != tt.status {
				t.Fatalf("%s %s: status = %d, want %d; body %s", tt.req.method, tt.req.path, resp.status, tt.status, resp.body)
			}
			for k, want := range tt.header {
				if got := resp.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if resp.header.Get("Access-Control-Allow-Origin") != "" && !strings.Contains(strings.Join(resp.header.Values("Vary"), ","), "Origin") {
				t.Errorf("an answer for one origin without Vary: Origin (Vary %q)", resp.header.Values("Vary"))
			}
			if tt.req.method != "OPTIONS" && resp.header.Get("Access-Control-Allow-Origin") != "" {
				exposed := resp.header.Get("Access-Control-Expose-Headers")
				for _, h := range []string{"Upstash-Sync-Token", "X-Request-Id", "ETag", "Retry-After", "RateLimit"} {
					if !strings.Contains(exposed, h) {
						t.Errorf("Access-Control-Expose-Headers = %q, want %s in it", exposed, h)
					}
				}
			}
		})
	}

	anyOrigin := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.CORSOrigins = []string{"*"} }))
	resp := anyOrigin.do(preflight("/cache/k", "https://anyone.example", "GET", "authorization"))
	if resp.status != 204 || resp.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS_ALLOWED_ORIGINS=*: preflight %d, Access-Control-Allow-Origin %q; want 204 and *", resp.status, resp.header.Get("Access-Control-Allow-Origin"))
	}

	off := startGateway(t, miniBackend(t))
	resp = off.do(preflight("/cache/k", appOrigin, "GET", "authorization"))
	if resp.status != http.StatusMethodNotAllowed || resp.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off: preflight %d, Access-Control-Allow-Origin %q; want 405 and none", resp.status, resp.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestMetricsToken(t *testing.T) {
	const metricsToken = "scrape-me-secret"
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.MetricsToken = metricsToken }))
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"no token", request{method: "GET", path: "/metrics", token: "-"}, 401},
		{"a data route's token", request{method: "GET", path: "/metrics"}, 401},
		{"the metrics token", request{method: "GET", path: "/metrics", token: metricsToken}, 200},
		{"the metrics token on a data route", request{method: "GET", path: "/cache/k", token: metricsToken}, 401},
		{"probes stay open", request{method: "GET", path: "/readyz", token: "-"}, 200},
	}
	for _, tt := range tests {
		resp := g.do(tt.req)
		if resp.status != tt.status {
			t.Errorf("%s: %s %s: status = %d, want %d", tt.name, tt.req.method, tt.req.path, resp.status, tt.status)
		}
		if tt.status == 401 && !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
	}
	if body := g.do(request{method: "GET", path: "/metrics", token: metricsToken}).body; !strings.Contains(body, "redis_gateway_http_requests_total") {
		t.Errorf("/metrics with its token: no metrics in %.200s", body)
	}
	if strings.Contains(g.logs.String(), metricsToken) {
		t.Errorf("the metrics token appears in the logs")
	}
}
