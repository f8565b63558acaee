package middleware

import (
	"net/http"

	chimw "github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext reads and writes W3C traceparent and tracestate headers.
var traceContext = propagation.TraceContext{}

// Trace continues the caller's W3C trace context (traceparent): the access log
// line carries its trace id, and Redis commands' spans join it.
//
// With tp nil (tracing off) that is all it does, and only for requests that
// carry a traceparent; the others pass through untouched. Otherwise every
// request gets a server span, named by method and route pattern once routing
// is done, with its status.
func Trace(tp trace.TracerProvider) func(http.Handler) http.Handler {
	if tp == nil {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := r.Header["Traceparent"]; ok {
					r = r.WithContext(traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	tracer := tp.Tracer("github.com/redis-gateway/redis-gateway/middleware")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			method := methodLabel(r.Method)
			ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", method)))
			defer span.End()
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			r = r.WithContext(ctx)
			next.ServeHTTP(ww, r)

			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := routePattern(r)
			span.SetName(method + " " + route)
			span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		})
	}
}
