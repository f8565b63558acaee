package middleware

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/echo"
	"github.com/redis-gateway/redis-gateway/problem"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// FrontConfig is what Front needs.
type FrontConfig struct {
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Timeout bounds each request, its Redis commands included; 0 means no
	// bound. (A body that trickles in is bounded by the server's
	// ReadTimeout: a read deadline set here would also cut net/http's watch
	// for a vanished client short, and turn every timeout into a 499.)
	Timeout time.Duration
}

// Front is the per-request front of the gateway, in one middleware: it
// echoes a well-formed X-Request-Id or makes one up and puts it on the
// response before anything else can answer; bounds the request with
// Timeout (see NoDeadline); turns a panic into a 500 problem and one error
// line with the request id and the stack; counts the request per method,
// route pattern and status (RED metrics); and writes its access log line.
//
// One allocation carries all of it: the request's context, which holds the
// request id, the notes for the log line (NoteError, the token Bearer
// admits) and the deadline, which is armed only once something waits on the
// context (Done) or asks after the deadline has passed (Err), and is then
// kept by one clock for all requests (deadline.go). A request served from
// memory never arms one.
func Front(cfg FrontConfig) func(http.Handler) http.Handler {
	f := &front{
		log:     newAccessLog(cfg.Logger),
		metrics: newRouteMetrics(cfg.Registry),
		timeout: cfg.Timeout,
		clock:   &clock{tick: defaultTick},
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.serveHTTP(next, w, r)
		})
	}
}

type front struct {
	log     *accessLog
	metrics *routeMetrics
	timeout time.Duration
	clock   *clock
}

func (f *front) serveHTTP(next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rq := &request{parent: r.Context(), clock: f.clock, rw: responseWriter{ResponseWriter: w}}
	if f.timeout > 0 {
		rq.deadline = start.Add(f.timeout)
		if d, ok := rq.parent.Deadline(); ok && d.Before(rq.deadline) {
			rq.deadline = d
		}
	}
	rq.id = r.Header.Get(RequestIDHeader)
	if !echo.Verbatim(rq.id) {
		rq.id = newRequestID()
	}
	// The header's value lives in rq, as Header().Set would have it but
	// for the slice it allocates.
	rq.idHeader[0] = rq.id
	w.Header()[RequestIDHeader] = rq.idHeader[:]
	f.metrics.inFlight.Inc()
	defer f.metrics.inFlight.Dec()

	r = r.WithContext(rq)
	f.serve(next, rq, r)
	rq.release()

	status := rq.rw.status
	if status == 0 {
		status = http.StatusOK
	}
	method, route := methodLabel(r.Method), routePattern(r)
	end := time.Now()
	f.metrics.observe(method, route, status, end.Sub(start))
	f.log.write(r.Context(), rq, r.Method, route, status, end, end.Sub(start))
}

// serve runs next, recovering from its panic: the process keeps serving,
// and the request is answered, counted and logged as a 500.
func (f *front) serve(next http.Handler, rq *request, r *http.Request) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
			rq.release()
			panic(v) // net/http's way to abort a response; it logs nothing
		}
		f.log.logger.Error("panic in handler",
			"request_id", rq.id,
			"method", r.Method,
			"route", routePattern(r),
			"panic", v,
			"stack", string(debug.Stack()))
		problem.Write(&rq.rw, http.StatusInternalServerError, "internal", "internal error")
	}()
	next.ServeHTTP(&rq.rw, r)
}

// ids writes request ids as crypto/rand.Text writes its text: 26
// characters of base32.
var ids = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRequestID makes up 128 random bits for a request without an id. They
// name a request, they guard nothing (a client may choose its own), so the
// runtime's per-thread generator serves, without a system call.
func newRequestID() string {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var text [26]byte
	ids.Encode(text[:], raw[:])
	return string(text[:])
}

type ctxKey int

const requestKey ctxKey = 0

// request is what Front keeps about a request, and the request's context.
type request struct {
	parent   context.Context
	deadline time.Time // zero: none
	clock    *clock
	wait     atomic.Pointer[wait] // once armed
	served   atomic.Bool

	id       string
	idHeader [1]string
	err      error         // noted by the handler (NoteError)
	token    *access.Token // admitted by Bearer

	rw responseWriter
}

func requestOf(ctx context.Context) *request {
	rq, _ := ctx.Value(requestKey).(*request)
	return rq
}

func (rq *request) release() {
	if !rq.deadline.IsZero() {
		rq.clock.release(rq)
	}
}

func (rq *request) Deadline() (time.Time, bool) {
	if rq.deadline.IsZero() {
		return rq.parent.Deadline()
	}
	return rq.deadline, true
}

func (rq *request) Done() <-chan struct{} {
	if rq.deadline.IsZero() {
		return rq.parent.Done()
	}
	return rq.clock.arm(rq).done
}

// Err is what the armed context says once its wait has ended. A deadline
// that has passed arms it, which then says so from here on, to Done's
// waiters too.
func (rq *request) Err() error {
	if rq.deadline.IsZero() {
		return rq.parent.Err()
	}
	if w := rq.wait.Load(); w != nil {
		select {
		case <-w.done:
			return w.err
		default:
			return nil
		}
	}
	if err := rq.parent.Err(); err != nil {
		return err
	}
	if time.Now().Before(rq.deadline) {
		return nil
	}
	w := rq.clock.arm(rq)
	<-w.done // ended at once: the deadline has passed
	return w.err
}

// AfterFunc runs f once the request's context is done, as
// context.AfterFunc does: contexts derived from this one follow it through
// here, without a goroutine each.
func (rq *request) AfterFunc(f func()) (stop func() bool) {
	if rq.deadline.IsZero() {
		return context.AfterFunc(rq.parent, f)
	}
	return rq.clock.afterFunc(rq.clock.arm(rq), f)
}

func (rq *request) Value(key any) any {
	switch key.(type) {
	case ctxKey:
		if key == requestKey {
			return rq
		}
	case access.ContextKey:
		if rq.token != nil {
			return rq.token
		}
	}
	return rq.parent.Value(key)
}

func (rq *request) String() string { return "middleware.request(" + rq.id + ")" }

// GetRequestID returns the request id that Front gave the request of ctx.
func GetRequestID(ctx context.Context) string {
	if rq := requestOf(ctx); rq != nil {
		return rq.id
	}
	return ""
}

// NoteError attaches err to the request's access log line.
func NoteError(ctx context.Context, err error) {
	if rq := requestOf(ctx); rq != nil {
		rq.err = err
	}
}

func notedError(ctx context.Context) error {
	if rq := requestOf(ctx); rq != nil {
		return rq.err
	}
	return nil
}

// NoDeadline lifts Front's deadline for the routes it wraps, such as event
// streams that last as long as the client stays. The request's context
// keeps every value and still ends when the client goes away.
func NoDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := requestOf(r.Context())
		if rq == nil || rq.deadline.IsZero() {
			next.ServeHTTP(w, r)
			return
		}
		outer := rq.parent
		ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
		defer cancel(nil)
		stop := context.AfterFunc(outer, func() { cancel(context.Cause(outer)) })
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// responseWriter notes the status and size of the response for the log
// and the metrics.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int
	wroteHeader bool
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: the answer is still to come
		return
	}
	if w.wroteHeader {
		return
	}
	w.status, w.wroteHeader = code, true
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// FlushError sends what is buffered, for event streams;
// http.ResponseController's Flush calls it.
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
