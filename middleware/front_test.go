package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/logtest"
)

// frontRouter serves h at /x/{key} behind Front, as handlers.New does.
func frontRouter(logger *slog.Logger, reg prometheus.Registerer, timeout time.Duration, h http.HandlerFunc) http.Handler {
	r := chi.NewRouter()
	r.Use(Front(FrontConfig{Logger: logger, Registry: reg, Timeout: timeout}))
	r.Get("/x/{key}", h)
	return r
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// The line the access log writes itself and the one slog writes for it carry
// the same fields; only the time and the duration may differ.
func TestFrontLogsTheSameThroughEitherPath(t *testing.T) {
	var lines []map[string]any
	for _, fast := range []bool{true, false} {
		var logs logtest.Buffer
		h := slog.Handler(slog.NewJSONHandler(&logs, nil))
		if fast {
			h = NewJSONHandler(&logs, nil)
		}
		router := frontRouter(slog.New(h), prometheus.NewRegistry(), time.Minute, func(w http.ResponseWriter, r *http.Request) {
			NoteError(r.Context(), errors.New("odd \"error\"\n\x01 \xff"))
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("four"))
		})
		req := httptest.NewRequest("GET", "/x/k", nil)
		req.Header.Set(RequestIDHeader, "id-1")
		serve(router, req)
		got := logLines(t, logs.String())
		if len(got) != 1 {
			t.Fatalf("fast=%v: %d log lines, want 1: %s", fast, len(got), logs.String())
		}
		lines = append(lines, got[0])
	}
	for _, l := range lines {
		delete(l, "time")
		delete(l, "duration_ms")
	}
	fast, slow := lines[0], lines[1]
	if len(fast) != len(slow) {
		t.Errorf("fields: own line %v, slog's %v", fast, slow)
	}
	for k, v := range slow {
		if fast[k] != v {
			t.Errorf("%s = %v in the own line, %v in slog's", k, fast[k], v)
		}
	}
	if slow["status"] != 502.0 || slow["bytes"] != 4.0 || slow["request_id"] != "id-1" || slow["route"] != "/x/{key}" || slow["level"] != "ERROR" {
		t.Errorf("line = %v, want status 502, 4 bytes, request id id-1, route /x/{key}, level ERROR", slow)
	}
}

// The deadline is armed only when something waits; waits, derived
// contexts and Err see it as a context.WithTimeout would show it.
func TestFrontDeadline(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	run := func(timeout time.Duration, h http.HandlerFunc) {
		t.Helper()
		serve(frontRouter(logger, prometheus.NewRegistry(), timeout, h), httptest.NewRequest("GET", "/x/k", nil))
	}

	run(time.Hour, func(w http.ResponseWriter, r *http.Request) {
		rq, ok := r.Context().(*request)
		if !ok {
			t.Fatalf("the handler's context is %T, want Front's own", r.Context())
		}
		if d, ok := r.Context().Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Errorf("Deadline() = %v, %v; want about an hour from now", d, ok)
		}
		if err := r.Context().Err(); err != nil {
			t.Errorf("Err() = %v before the deadline", err)
		}
		if rq.wait.Load() != nil {
			t.Error("the deadline is armed, though nothing waited")
		}
		select {
		case <-r.Context().Done():
			t.Error("Done before the deadline")
		default:
		}
		if rq.wait.Load() == nil {
			t.Error("Done did not arm the deadline")
		}
	})

	run(time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		derived, cancel := context.WithCancel(ctx)
		defer cancel()
		<-derived.Done() // ends with the deadline, or the test times out
		<-ctx.Done()
		for name, err := range map[string]error{"Err": ctx.Err(), "Cause": context.Cause(ctx), "derived Err": derived.Err(), "derived Cause": context.Cause(derived)} {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s = %v, want context.DeadlineExceeded", name, err)
			}
		}
	})

	// Past the deadline, Err says so without anything having waited, and
	// Done is then closed.
	run(time.Nanosecond, func(w http.ResponseWriter, r *http.Request) {
		deadline, _ := r.Context().Deadline()
		time.Sleep(time.Until(deadline))
		if err := r.Context().Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Err() = %v past the deadline, want context.DeadlineExceeded", err)
		}
		select {
		case <-r.Context().Done():
		default:
			t.Error("Done is open after Err reported the deadline")
		}
	})

	run(0, func(w http.ResponseWriter, r *http.Request) {
		if d, ok := r.Context().Deadline(); ok {
			t.Errorf("Deadline() = %v with no timeout, want none", d)
		}
	})

	// The client going away ends the request's context.
	parent, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("gone")
	router := frontRouter(logger, prometheus.NewRegistry(), time.Hour, func(w http.ResponseWriter, r *http.Request) {
		done := r.Context().Done()
		cancel(gone)
		<-done
		if err := r.Context().Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Err() = %v after the client left, want context.Canceled", err)
		}
		if err := context.Cause(r.Context()); !errors.Is(err, gone) {
			t.Errorf("Cause = %v after the client left, want its cause", err)
		}
	})
	serve(router, httptest.NewRequest("GET", "/x/k", nil).WithContext(parent))
}

// NoDeadline lifts the deadline, keeps the values, and still ends with the
// client.
func TestNoDeadline(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := chi.NewRouter()
	r.Use(Front(FrontConfig{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Timeout: time.Nanosecond}))
	r.With(NoDeadline).Get("/x", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if d, ok := ctx.Deadline(); ok {
			t.Errorf("Deadline() = %v under NoDeadline", d)
		}
		time.Sleep(time.Until(requestOf(ctx).deadline)) // past the lifted deadline
		if err := ctx.Err(); err != nil {
			t.Errorf("Err() = %v under NoDeadline, past the lifted deadline", err)
		}
		if GetRequestID(ctx) != "id-2" {
			t.Errorf("request id = %q under NoDeadline, want id-2", GetRequestID(ctx))
		}
		cancel()
		<-ctx.Done() // ends when the client leaves, or the test times out
	})
	req := httptest.NewRequest("GET", "/x", nil).WithContext(parent)
	req.Header.Set(RequestIDHeader, "id-2")
	serve(r, req)
}

// A panic is a 500 problem with the request id, one error line with the
// stack, and an access line and a count of its 500.
func TestFrontRecovers(t *testing.T) {
	var logs logtest.Buffer
	reg := prometheus.NewRegistry()
	router := frontRouter(slog.New(NewJSONHandler(&logs, nil)), reg, time.Minute, func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	})
	req := httptest.NewRequest("GET", "/x/k", nil)
	req.Header.Set(RequestIDHeader, "panic-1")
	resp := serve(router, req)
	if resp.Code != http.StatusInternalServerError || !strings.Contains(resp.Body.String(), `"request_id":"panic-1"`) {
		t.Errorf("status %d, body %s; want 500 with the request id", resp.Code, resp.Body)
	}
	lines := logLines(t, logs.String())
	if len(lines) != 2 || lines[0]["msg"] != "panic in handler" || lines[0]["request_id"] != "panic-1" || !strings.Contains(lines[0]["stack"].(string), "front_test.go") ||
		lines[1]["msg"] != AccessLogMessage || lines[1]["status"] != 500.0 {
		t.Errorf("log = %s; want the panic with its stack, then the access line with 500", logs.String())
	}
	if n := requestsCounted(t, reg, "GET", "/x/{key}", "500"); n != 1 {
		t.Errorf("500s counted: %v, want 1", n)
	}

	// net/http's way to abort a response goes on up, unlogged.
	var aborted logtest.Buffer
	router = frontRouter(slog.New(NewJSONHandler(&aborted, nil)), prometheus.NewRegistry(), time.Minute, func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		serve(router, httptest.NewRequest("GET", "/x/k", nil))
	}()
	if aborted.String() != "" {
		t.Errorf("an aborted response was logged: %s", aborted.String())
	}
}

// requestsCounted is http_requests_total for method, route and status.
func requestsCounted(t *testing.T, reg *prometheus.Registry, method, route, status string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "redis_gateway_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["method"] == method && got["route"] == route && got["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Requests are counted per method, route and status, however often each
// comes.
func TestFrontCountsPerRouteAndStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	router := frontRouter(slog.New(slog.DiscardHandler), reg, time.Minute, func(w http.ResponseWriter, r *http.Request) {
		if chi.URLParam(r, "key") == "missing" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	for range 3 {
		serve(router, httptest.NewRequest("GET", "/x/k", nil))
	}
	serve(router, httptest.NewRequest("GET", "/x/missing", nil))
	serve(router, httptest.NewRequest("GET", "/nowhere", nil))
	for _, tt := range []struct {
		route, status string
		want          float64
	}{{"/x/{key}", "200", 3}, {"/x/{key}", "404", 1}, {"unmatched", "404", 1}} {
		if got := requestsCounted(t, reg, "GET", tt.route, tt.status); got != tt.want {
			t.Errorf("GET %s %s: counted %v, want %v", tt.route, tt.status, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "redis_gateway_http_request_duration_seconds"); n != 2 {
		t.Errorf("%d duration series, want 2 (one per method and route)", n)
	}
}

// Bearer puts the token in Front's context: the handler finds it there,
// with no context layer or request copy of its own.
func TestBearerUsesFrontsContext(t *testing.T) {
	set := access.OneToken("T", "secret")
	auth := NewAuth(prometheus.NewRegistry())
	var logs logtest.Buffer
	r := chi.NewRouter()
	r.Use(Front(FrontConfig{Logger: slog.New(NewJSONHandler(&logs, nil)), Registry: prometheus.NewRegistry(), Timeout: time.Minute}))
	r.With(auth.Bearer(func() *access.Set { return set })).Get("/x", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().(*request); !ok {
			t.Errorf("the handler's context is %T, want Front's own", r.Context())
		}
		if tok := access.FromContext(r.Context()); tok == nil || tok.Name != "T" {
			t.Errorf("access.FromContext = %v, want the token named T", tok)
		}
	})
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer secret")
	if resp := serve(r, req); resp.Code != http.StatusOK {
		t.Errorf("status %d, want 200", resp.Code)
	}
	if lines := logLines(t, logs.String()); lines[0]["token"] != "T" {
		t.Errorf("access line %v, want token T", lines[0])
	}
}
