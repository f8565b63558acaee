package middleware

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/redis-gateway/redis-gateway/internal/echo"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// AccessLogMessage is the message of every access log line.
const AccessLogMessage = "request"

type ctxKey int

const (
	requestKey     ctxKey = iota
	undeadlinedKey        // the request's context as it was before Deadline
)

// request is what the middleware keeps about a request in its context: one
// allocation carries the id and, once noted, the error behind the response
// and the name of the request's token, so the access log line can carry them
// and a request is logged exactly once.
type request struct {
	id    string
	err   error
	token string
}

// RequestID echoes a well-formed X-Request-Id or makes one up, puts it on the
// response before anything else can answer, and in the request's context.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !echo.Verbatim(id) {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey, &request{id: id})))
	})
}

// GetRequestID returns the request id that RequestID stored in ctx.
func GetRequestID(ctx context.Context) string {
	if req, ok := ctx.Value(requestKey).(*request); ok {
		return req.id
	}
	return ""
}

// NoteError attaches err to the request's access log line.
func NoteError(ctx context.Context, err error) {
	if req, ok := ctx.Value(requestKey).(*request); ok {
		req.err = err
	}
}

// NoteToken attaches the name (never the secret) of the request's token to
// its access log line.
func NoteToken(ctx context.Context, name string) {
	if req, ok := ctx.Value(requestKey).(*request); ok {
		req.token = name
	}
}

func notedError(ctx context.Context) error {
	if req, ok := ctx.Value(requestKey).(*request); ok {
		return req.err
	}
	return nil
}

// AccessLog writes one line per request: method, route pattern, status,
// bytes, duration_ms, request id, the trace id (see Trace), the token's name and
// the error noted by the handler, if any. It never logs headers or bodies, so secrets and data stay
// out of the logs.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			req, ok := r.Context().Value(requestKey).(*request)
			if !ok { // RequestID did not run first: keep a place for the notes anyway
				req = &request{}
				r = r.WithContext(context.WithValue(r.Context(), requestKey, req))
			}
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)

			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			// A 503 says Redis is away or the gateway is draining: worth a
			// warning, not an error line for every probe.
			level := slog.LevelInfo
			switch {
			case status == http.StatusServiceUnavailable:
				level = slog.LevelWarn
			case status >= 500:
				level = slog.LevelError
			}
			if !logger.Enabled(r.Context(), level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("route", routePattern(r)),
				slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()),
				// Milliseconds, with microseconds: a bare time.Duration is
				// nanoseconds in JSON, and nothing in the line says so.
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("request_id", req.id),
			}
			if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
				attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
			}
			if req.token != "" {
				attrs = append(attrs, slog.String("token", req.token))
			}
			if req.err != nil && !outcome(status) {
				attrs = append(attrs, slog.String("error", echo.Message(req.err.Error())))
			}
			// The request's own context: the handlers of log/slog never look at
			// its cancellation, and a detached copy would cost an allocation.
			logger.LogAttrs(r.Context(), level, AccessLogMessage, attrs...)
		})
	}
}

// outcome says whether a status is a normal answer about the data, not a
// failure: a key that is not there, a lock that is held, a condition that
// does not hold. Its line carries no error; the status says it all.
func outcome(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed:
		return true
	}
	return false
}

// routePattern is the matched route, such as /cache/{key}: a bounded label,
// unlike the path.
func routePattern(r *http.Request) string {
	if rctx := chi.RouteContext(r.Context()); rctx != nil {
		if p := rctx.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}
