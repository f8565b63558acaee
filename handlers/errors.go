package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/echo"
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
	var held *store.LockHeldError
	var denied *access.Denied
	switch {
	case errors.As(err, &he):
		problem.Write(w, he.Status, he.Slug, he.Message)
	case errors.As(err, &denied):
		problem.WriteScope(w, http.StatusForbidden, "forbidden", denied.Detail, denied.Scope)
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
	case errors.Is(err, store.ErrOverflow):
		problem.Write(w, http.StatusConflict, "overflow", "the result would not fit a signed 64-bit integer; the value is unchanged")
	case errors.Is(err, store.ErrNotInteger):
		problem.Write(w, http.StatusConflict, "not-an-integer", "the value is not an integer or the result is out of range")
	case errors.As(err, &held):
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, seconds(held.Remaining)), 10))
		problem.Write(w, http.StatusConflict, "lock-held", "the lock is held by someone else")
	case errors.Is(err, store.ErrLockHeld):
		problem.Write(w, http.StatusConflict, "lock-held", "the lock is held by another token")
	case errors.Is(err, store.ErrLeaseLost):
		problem.Write(w, http.StatusConflict, "lease-lost",
			"the lease is no longer current: the key was deleted or written, or the lease ended and another caller holds the next one")
	case errors.Is(err, store.ErrConflict):
		problem.Write(w, http.StatusConflict, "conflict", "too many concurrent updates; retry the request")
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

// commandHandler is handlerFunc for the command API, whose errors keep the
// Upstash envelope {"error": "..."} instead of problem documents.
type commandHandler func(w http.ResponseWriter, r *http.Request) error

func (f commandHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		writeCommandError(w, r, err)
	}
}

// writeCommandError is writeError for the command API. Redis's error replies
// go back verbatim with 400; the log gets only their first word, since
// Redis quotes arguments in some of them.
func writeCommandError(w http.ResponseWriter, r *http.Request, err error) {
	var cerr *store.CommandError
	var he *httpError
	var tooLarge *http.MaxBytesError
	var denied *access.Denied
	var replyTooLarge *store.ReplyTooLargeError
	status, msg := http.StatusInternalServerError, "ERR internal error"
	switch {
	case errors.As(err, &replyTooLarge):
		// The request asked for more than the gateway holds for one request;
		// 413 says to ask for less, as for a request too large.
		status, msg = http.StatusRequestEntityTooLarge, replyTooLarge.Error()
	case errors.As(err, &denied):
		// NOPERM is how Redis's own ACLs refuse; clients treat it alike.
		status, msg = http.StatusForbidden, "NOPERM this token's "+denied.Scope+" scope refuses it: "+denied.Detail
	case errors.As(err, &cerr):
		status, msg = http.StatusBadRequest, cerr.Msg
		if !cerr.Refused {
			code, _, _ := strings.Cut(cerr.Msg, " ")
			err = fmt.Errorf("redis replied %s", code)
		}
	case errors.As(err, &he):
		status, msg = he.Status, he.Message
		if !strings.HasPrefix(msg, "ERR ") {
			msg = "ERR " + msg
		}
	case errors.As(err, &tooLarge):
		status, msg = http.StatusRequestEntityTooLarge, "ERR max request size exceeded"
	case errors.Is(r.Context().Err(), context.Canceled), errors.Is(err, context.Canceled):
		status, msg = problem.StatusClientClosedRequest, "ERR client closed request"
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, "ERR redis unavailable"
	case errors.Is(err, store.ErrUnconfirmed):
		w.Header().Set("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, "ERR the write reached the primary but not enough replicas confirmed it in time "+
			"(REDIS_WRITE_REPLICAS): it may be lost if the primary fails"
	case errors.Is(err, store.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusGatewayTimeout, "ERR redis timeout"
	}
	middleware.NoteError(r.Context(), err)
	writeCommandJSON(w, status, errorBody{Error: echo.Message(msg)})
}
