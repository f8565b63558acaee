package middleware

import (
	"context"
	"net/http"
	"time"
)

// BodyLimit caps request bodies at max bytes; reading past it fails with
// *http.MaxBytesError, which the handlers answer with 413.
func BodyLimit(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Deadline bounds each request, its Redis commands included. (A body that
// trickles in is bounded by the server's ReadTimeout: a read deadline set here
// would also cut net/http's watch for a vanished client short, and turn every
// timeout into a 499.)
func Deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			ctx = context.WithValue(ctx, undeadlinedKey, r.Context())
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// NoDeadline lifts Deadline for the routes it wraps, such as event streams
// that last as long as the client stays. The request's context keeps every
// value and still ends when the client goes away.
func NoDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer, ok := r.Context().Value(undeadlinedKey).(context.Context)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
		defer cancel(nil)
		stop := context.AfterFunc(outer, func() { cancel(context.Cause(outer)) })
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// CloseWhen asks clients to close their connection once draining reports
// true, so load balancers move them to other replicas during shutdown.
func CloseWhen(draining func() bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining() {
				w.Header().Set("Connection", "close")
			}
			next.ServeHTTP(w, r)
		})
	}
}
