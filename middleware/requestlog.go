package middleware

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	noteKey
	undeadlinedKey // the request's context as it was before Deadline
)

// RequestID echoes a well-formed X-Request-Id or makes one up, puts it on the
// response before anything else can answer, and in the request's context.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// GetRequestID returns the request id that RequestID stored in ctx.
func GetRequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// validRequestID bounds what a client may put into our logs and headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// note is where a handler leaves the error behind its response, so the
// access log line can carry it and a request is logged exactly once.
type note struct{ err error }

// NoteError attaches err to the request's access log line.
func NoteError(ctx context.Context, err error) {
	if n, ok := ctx.Value(noteKey).(*note); ok {
		n.err = err
	}
}

// AccessLog writes one line per request: method, route pattern, status,
// bytes, duration, request id and the error noted by the handler, if any. It
// never logs headers or bodies, so tokens and data stay out of the logs.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			n := &note{}
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			r = r.WithContext(context.WithValue(r.Context(), noteKey, n))
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
				slog.Duration("duration", time.Since(start)),
				slog.String("request_id", GetRequestID(r.Context())),
			}
			if n.err != nil {
				attrs = append(attrs, slog.String("error", n.err.Error()))
			}
			logger.LogAttrs(context.WithoutCancel(r.Context()), level, "request", attrs...)
		})
	}
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
