package handlers_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/handlers"
)

// Every route the router serves is in openapi.yaml, and every operation in
// openapi.yaml is served.
func TestRoutesMatchSpec(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	inSpec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec[method+" "+path] = true
		}
	}

	h := handlers.New(handlers.Config{
		Logger:         discardLogger(),
		Registry:       prometheus.NewRegistry(),
		RequestTimeout: time.Second,
	})
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("handlers.New returned %T, want a chi router", h)
	}
	served := map[string]bool{}
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// OpenAPI has no parameter spanning path segments; a chi catch-all
		// is written /{args} in openapi.yaml.
		if p, ok := strings.CutSuffix(route, "/*"); ok {
			route = p + "/{args}"
		}
		served[method+" "+strings.TrimSuffix(route, "/")] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walk routes: %v", err)
	}

	for _, r := range sortedKeys(served) {
		if !inSpec[r] {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range sortedKeys(inSpec) {
		if !served[r] {
			t.Errorf("%s is in openapi.yaml but not served", r)
		}
	}
	if len(served) < 20 {
		t.Errorf("only %d routes served; the walk missed some", len(served))
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The spec the gateway serves at /openapi.yaml is the one it is tested against.
func TestServesItsSpec(t *testing.T) {
	spec := []byte("openapi: 3.0.3\ninfo: {title: t, version: v}\npaths: {}\n")
	g := startGateway(t, miniBackend(t), withConfig(func(c *handlers.Config) { c.OpenAPI = spec }))
	resp := g.do(request{method: "GET", path: "/openapi.yaml", token: "-"})
	if resp.status != http.StatusOK || resp.body != string(spec) || resp.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /openapi.yaml: %d %q %q", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
}
