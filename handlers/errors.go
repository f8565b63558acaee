package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/problem"
	"github.com/redis-gateway/redis-gateway/store"
)

// httpError is an error with the answer it deserves. Message goes to the
// client; Err, when set, only to the log.
type httpError struct {
	Status  int
	Slug    string
	Message string
	Err     error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *httpError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &httpError{Status: http.StatusBadRequest, Slug: "bad-request", Message: fmt.Sprintf(format, args...)}
}

// handlerFunc is a handler that returns its error instead of answering it, so
// that writeError is the one place errors become responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		writeError(w, r, err)
	}
}

// writeError maps an error to its problem response and notes it for the
// access log, which logs the request once.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	middleware.NoteError(r.Context(), err)

	var he *httpError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		problem.Write(w, he.Status, he.Slug, he.Message)
	case errors.As(err, &tooLarge):
		problem.Write(w, http.StatusRequestEntityTooLarge, "payload-too-large",
			fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit))
	case errors.Is(r.Context().Err(), context.Canceled), errors.Is(err, context.Canceled):
		// The client is gone; the status is for the log and the metrics.
		problem.Write(w, problem.StatusClientClosedRequest, "client-closed-request", "client closed the request")
	case errors.Is(err, store.ErrNotFound):
		problem.Write(w, http.StatusNotFound, "not-found", "not found")
	case errors.Is(err, store.ErrPreconditionFailed):
		problem.Write(w, http.StatusPreconditionFailed, "precondition-failed", "the condition in the request headers does not hold")
	case errors.Is(err, store.ErrWrongType):
		problem.Write(w, http.StatusConflict, "wrong-type", "the key holds a value of another type")
	case errors.Is(err, store.ErrNotInteger):
		problem.Write(w, http.StatusConflict, "not-an-integer", "the value is not an integer or the result is out of range")
	case errors.Is(err, store.ErrExists):
		problem.Write(w, http.StatusConflict, "conflict", "already exists")
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		problem.Write(w, http.StatusServiceUnavailable, "redis-unavailable", "redis is unavailable")
	case errors.Is(err, store.ErrUnconfirmed):
		// The write ran on the primary; the client must know it may not last,
		// and repeat it only if doing so twice is harmless.
		w.Header().Set("Retry-After", "1")
		problem.Write(w, http.StatusServiceUnavailable, "write-unconfirmed",
			"the write reached the primary but not enough replicas confirmed it in time: it may be lost if the primary fails")
	case errors.Is(err, store.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		problem.Write(w, http.StatusGatewayTimeout, "timeout", "the request timed out")
	default:
		problem.Write(w, http.StatusInternalServerError, "internal", "internal error")
	}
}
