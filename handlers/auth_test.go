package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis-gateway/redis-gateway/handlers"
)

func TestAuth(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(request{method: "PUT", path: "/cache/k", body: `1`}, http.StatusCreated)
	tests := []struct {
		name   string
		req    request
		want   int
		header map[string]string
	}{
		{"no token", request{method: "GET", path: "/cache/k", token: "-"}, 401, nil},
		{"wrong token", request{method: "GET", path: "/cache/k", token: "nope"}, 401, nil},
		{"token prefix", request{method: "GET", path: "/cache/k", token: testToken[:4]}, 401, nil},
		{"token plus suffix", request{method: "GET", path: "/cache/k", token: testToken + "x"}, 401, nil},
		{"basic scheme", request{method: "GET", path: "/cache/k", token: "-", header: map[string]string{"Authorization": "Basic dGVzdC10b2tlbg=="}}, 401, nil},
		{"token in query is not accepted", request{method: "GET", path: "/cache/k?token=" + testToken, token: "-"}, 401, nil},
		{"no token on a write", request{method: "PUT", path: "/cache/k", body: `2`, token: "-"}, 401, nil},
		{"no token on a bad request", request{method: "PUT", path: "/cache/k?ttl=abc", body: `2`, token: "-"}, 401, nil},
		{"second token", request{method: "GET", path: "/cache/k", token: "second-token"}, 200, nil},
		{"scheme is case-insensitive", request{method: "GET", path: "/cache/k", token: "-", header: map[string]string{"Authorization": "bearer " + testToken}}, 200, nil},
		{"healthz needs none", request{method: "GET", path: "/healthz", token: "-"}, 200, nil},
		{"livez needs none", request{method: "GET", path: "/livez", token: "-"}, 200, nil},
		{"readyz needs none", request{method: "GET", path: "/readyz", token: "-"}, 200, nil},
		{"metrics needs none", request{method: "GET", path: "/metrics", token: "-"}, 200, nil},
		{"openapi needs none", request{method: "GET", path: "/openapi.yaml", token: "-"}, 200, nil},
		{"unknown path without token", request{method: "GET", path: "/nope", token: "-"}, 404, nil},
		{"unknown path with token", request{method: "GET", path: "/nope"}, 404, nil},
		{"unknown method", request{method: "PATCH", path: "/cache/k", body: `1`}, 405, map[string]string{"Allow": "GET, HEAD, PUT, DELETE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do(tt.req)
			if resp.status != tt.want {
				t.Fatalf("%s %s: status = %d, want %d; body %s", tt.req.method, tt.req.path, resp.status, tt.want, resp.body)
			}
			if tt.want == 401 {
				if !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", resp.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(resp.body, testToken) {
					t.Errorf("401 body echoes a token: %s", resp.body)
				}
			}
			if tt.want >= 400 && resp.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", resp.header.Get("Content-Type"))
			}
			for k, v := range tt.header {
				if got := resp.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if got := g.must(request{method: "GET", path: "/cache/k"}, http.StatusOK).body; got != "1" {
		t.Errorf("an unauthorized PUT changed the value to %s", got)
	}
	if strings.Contains(g.logs.String(), testToken) || strings.Contains(g.logs.String(), "second-token") {
		t.Errorf("a token appears in the logs")
	}
}

// No tokens and auth not switched off: nobody gets in.
func TestNoTokensAdmitsNobody(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.TokenSet = nil }))
	g.must(request{method: "GET", path: "/cache/k"}, http.StatusUnauthorized)
	g.must(request{method: "GET", path: "/cache/k", token: "-", header: map[string]string{"Authorization": "Bearer "}}, http.StatusUnauthorized)
}

func TestAuthDisabled(t *testing.T) {
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.AuthDisabled = true }))
	g.must(request{method: "PUT", path: "/cache/k", body: `1`, token: "-"}, http.StatusCreated)
	g.must(request{method: "GET", path: "/cache/k", token: "-"}, http.StatusOK)
}
