package handlers_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/store"
)

const (
	incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpan  = "00f067aa0ba902b7"
	traceparent   = "00-" + incomingTrace + "-" + incomingSpan + "-01"
)

// accessLogTraceIDs returns the trace_id of every access log line in logs,
// "" for a line without one.
func accessLogTraceIDs(t *testing.T, logs string) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Route   string `json:"route"`
			TraceID string `json:"trace_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" {
			ids = append(ids, line.Route+" "+line.TraceID)
		}
	}
	return ids
}

// With tracing on, a request continues the caller's trace: its span is a
// child of the incoming traceparent, and each Redis command it sends is a
// child of the request's span, batched or not, on the routes and through
// the command API.
func TestTracing(t *testing.T) {
	for _, batched := range []bool{true, false} {
		name := "plain"
		if batched {
			name = "auto-pipelined"
		}
		t.Run(name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
			g := startGateway(t, serverBackend(t),
				withConfig(func(c *handlers.Config) { c.TracerProvider = tp }),
				withStoreOptions(func(o *store.Options) { o.TracerProvider = tp; o.NoAutoPipeline = !batched }))

			for _, req := range []struct {
				method, path, body, route, redisSpan string
			}{
				{http.MethodGet, "/cache/k", "", "/cache/{key}", "get"},
				{http.MethodPost, "/redis", `["GET","k"]`, "/redis", "get"},
			} {
				exp.Reset()
				g.must(request{method: req.method, path: req.path, body: req.body, header: map[string]string{"traceparent": traceparent}},
					map[string]int{http.MethodGet: http.StatusNotFound, http.MethodPost: http.StatusOK}[req.method])
				spans := exp.GetSpans()
				var server *tracetest.SpanStub
				for i, s := range spans {
					if s.SpanKind == trace.SpanKindServer {
						server = &spans[i]
					}
				}
				if server == nil {
					t.Fatalf("%s %s: no server span among %d spans", req.method, req.path, len(spans))
				}
				if want := req.method + " " + req.route; server.Name != want {
					t.Errorf("%s %s: request span %q, want %q", req.method, req.path, server.Name, want)
				}
				if got := server.SpanContext.TraceID().String(); got != incomingTrace {
					t.Errorf("%s %s: request span's trace %s, want the incoming %s", req.method, req.path, got, incomingTrace)
				}
				if got := server.Parent.SpanID().String(); got != incomingSpan || !server.Parent.IsRemote() {
					t.Errorf("%s %s: request span's parent %s (remote %v), want the incoming %s", req.method, req.path, got, server.Parent.IsRemote(), incomingSpan)
				}
				var child bool
				for _, s := range spans {
					if s.Parent.SpanID() == server.SpanContext.SpanID() && s.Name == req.redisSpan && s.SpanContext.TraceID() == server.SpanContext.TraceID() {
						child = true
					}
				}
				if !child {
					var names []string
					for _, s := range spans {
						names = append(names, s.Name+" (parent "+s.Parent.SpanID().String()+")")
					}
					t.Errorf("%s %s: no Redis span %q under the request span %s; spans: %v", req.method, req.path, req.redisSpan, server.SpanContext.SpanID(), names)
				}
			}
			for _, id := range accessLogTraceIDs(t, g.logs.String()) {
				if !strings.HasSuffix(id, " "+incomingTrace) {
					t.Errorf("access log line %q, want trace_id %s", id, incomingTrace)
				}
			}
		})
	}
}

// With tracing off, the access log still carries the caller's trace id, and
// a request without traceparent gets none.
func TestTraceIDLoggedWithTracingOff(t *testing.T) {
	g := startGateway(t, miniBackend(t))
	g.must(request{method: http.MethodGet, path: "/cache/k", header: map[string]string{"traceparent": traceparent}}, http.StatusNotFound)
	g.must(request{method: http.MethodGet, path: "/healthz", header: map[string]string{"traceparent": traceparent}}, http.StatusOK)
	g.must(request{method: http.MethodGet, path: "/cache/k"}, http.StatusNotFound)
	g.must(request{method: http.MethodGet, path: "/cache/k", header: map[string]string{"traceparent": "00-not-a-trace-01"}}, http.StatusNotFound)
	got := accessLogTraceIDs(t, g.logs.String())
	want := []string{"/cache/{key} " + incomingTrace, "/healthz " + incomingTrace, "/cache/{key} ", "/cache/{key} "}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("access log (route, trace_id):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
