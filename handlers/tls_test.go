package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
)

// A gateway that does not trust the server's certificate says so: /readyz
// names the TLS failure, and so does the log line of a request it failed.
func TestReadinessNamesTLSFailure(t *testing.T) {
	b := tlsBackend(t)
	tests := []struct {
		name string
		tls  store.TLSOptions
		want []string
	}{
		{"unknown CA", store.TLSOptions{CAFile: redistest.NewCA(t).File}, []string{"TLS", "unknown authority"}},
		{"name mismatch", store.TLSOptions{CAFile: b.tls.CAFile, ServerName: "redis.example.com"}, []string{"TLS", "name mismatch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := b
			b.tls = tt.tls
			g := startGateway(t, b)
			resp := g.must(request{method: "GET", path: "/readyz", token: "-"}, http.StatusServiceUnavailable)
			var st struct{ Status, Redis string }
			if err := json.Unmarshal([]byte(resp.body), &st); err != nil {
				t.Fatalf("GET /readyz: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Redis, w) {
					t.Errorf("GET /readyz: redis = %q, want it to say %q", st.Redis, w)
				}
			}
			g.must(request{method: "GET", path: "/cache/k", header: map[string]string{"X-Request-Id": "tls-1"}}, http.StatusServiceUnavailable)
			var line string
			for _, l := range strings.Split(g.logs.String(), "\n") {
				if strings.Contains(l, `"request_id":"tls-1"`) {
					line = l
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("log line of the failed request = %s, want it to say %q", line, w)
				}
			}
		})
	}
}
