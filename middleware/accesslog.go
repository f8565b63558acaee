package middleware

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/redis-gateway/redis-gateway/internal/echo"
)

// AccessLogMessage is the message of every access log line.
const AccessLogMessage = "request"

// accessLog writes one line per request: method, route pattern, status,
// bytes, duration_ms, request id, the trace id (see Trace), the token's name
// and the error noted by the handler, if any. It never logs headers or
// bodies, so secrets and data stay out of the logs.
//
// When the logger's handler is a LineWriter (NewJSONHandler, as the gateway
// builds its JSON log), the line is encoded here into a pooled buffer and
// written as is: exactly the bytes slog's JSON handler would have written
// for the same record (TestAccessLineIsSlogJSON), without building the
// record. Any other handler, a logger with attributes or groups of its own,
// AddSource, or a ReplaceAttr that changes one of the line's attributes,
// gets the record through slog.
type accessLog struct {
	logger *slog.Logger
	lines  LineWriter // nil: every line goes through slog
	opts   slog.HandlerOptions
}

func newAccessLog(logger *slog.Logger) *accessLog {
	if logger == nil { // routes built only to be listed
		logger = slog.New(slog.DiscardHandler)
	}
	l := &accessLog{logger: logger}
	if lw, ok := logger.Handler().(LineWriter); ok {
		if opts, ok := lw.JSONOptions(); ok && !opts.AddSource {
			l.lines, l.opts = lw, opts
		}
	}
	return l
}

// accessAttrs is the most a line carries.
const accessAttrs = 9

func (l *accessLog) write(ctx context.Context, rq *request, method, route string, status int, now time.Time, took time.Duration) {
	// A 503 says Redis is away or the gateway is draining: worth a
	// warning, not an error line for every probe.
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	if !l.logger.Enabled(ctx, level) {
		return
	}
	var traceID [2 * len(trace.TraceID{})]byte
	var attrs [accessAttrs]slog.Attr
	a := append(attrs[:0],
		slog.String("method", method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int("bytes", rq.rw.bytes),
		// Milliseconds, with microseconds: a bare time.Duration is
		// nanoseconds in JSON, and nothing in the line says so.
		slog.Float64("duration_ms", float64(took.Microseconds())/1000),
		slog.String("request_id", rq.id),
	)
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		id := sc.TraceID()
		hex.Encode(traceID[:], id[:])
		a = append(a, slog.String("trace_id", string(traceID[:])))
	}
	if rq.token != nil {
		a = append(a, slog.String("token", rq.token.Name))
	}
	if rq.err != nil && !outcome(status) {
		a = append(a, slog.String("error", echo.Message(rq.err.Error())))
	}
	if l.lines != nil {
		buf := linePool.Get().(*[]byte)
		line, ok := appendJSONLine((*buf)[:0], &l.opts, now, level, AccessLogMessage, a)
		if ok {
			_ = l.lines.WriteLine(level, line)
		}
		*buf = line
		if cap(line) <= maxPooledLine {
			linePool.Put(buf)
		}
		if ok {
			return
		}
	}
	// The request's own context: the handlers of log/slog never look at
	// its cancellation, and a detached copy would cost an allocation.
	l.logger.LogAttrs(ctx, level, AccessLogMessage, a...)
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
