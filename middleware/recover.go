package middleware

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/redis-gateway/redis-gateway/problem"
)

// Recover turns a panic in a handler into a 500 problem and one error log
// line with the request id and the stack, and keeps the process serving.
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
					panic(v) // net/http's way to abort a response; it logs nothing
				}
				logger.Error("panic in handler",
					"request_id", GetRequestID(r.Context()),
					"method", r.Method,
					"route", routePattern(r),
					"panic", v,
					"stack", string(debug.Stack()))
				problem.Write(w, http.StatusInternalServerError, "internal", "internal error")
			}()
			next.ServeHTTP(w, r)
		})
	}
}
