package middleware

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/access"
)

// What the middleware costs per request, below net/http: a bare handler,
// the same behind chi alone, and behind the gateway's whole chain (Trace
// off, Front, CloseWhen, Bearer, BodyLimit) with the access log written by
// the JSON handler the gateway builds, or by slog's own:
//
//	go test ./middleware -run '^$' -bench Chain -benchmem
func BenchmarkChain(b *testing.B) {
	body := []byte(`{"ok":true,"value":"gateway-gateway-gateway-gate"}`)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	chain := func(logHandler slog.Handler) http.Handler {
		reg := prometheus.NewRegistry()
		set := access.OneToken("bench", "secret")
		r := chi.NewRouter()
		r.Use(Trace(nil), Front(FrontConfig{Logger: slog.New(logHandler), Registry: reg, Timeout: 5 * time.Second}),
			CloseWhen(func() bool { return false }))
		r.With(NewAuth(reg).Bearer(func() *access.Set { return set }), BodyLimit(1<<20)).Get("/cache/{key}", handler)
		return r
	}
	bare := chi.NewRouter()
	bare.Get("/cache/{key}", handler)
	for _, bb := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", handler},
		{"chi", bare},
		{"front", chain(NewJSONHandler(io.Discard, nil))},
		{"front-slog-json", chain(slog.NewJSONHandler(io.Discard, nil))},
	} {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/cache/hot", nil)
			req.Header.Set("Authorization", "Bearer secret")
			w := &sink{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				w.status = 0
				bb.h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d, want 200", w.status)
				}
			}
		})
	}
}

// sink is a ResponseWriter that keeps only the status, as a reused
// connection's writer costs nothing per request.
type sink struct {
	header http.Header
	status int
}

func (s *sink) Header() http.Header { return s.header }

func (s *sink) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *sink) Write(p []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(p), nil
}
