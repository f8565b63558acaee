package middleware

import (
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/jsonquote"
)

// A LineWriter is a slog.Handler that writes each record as one line of
// slog's JSON, and also takes an access log line encoded the same way
// elsewhere. The access log uses it to write its line without building a
// slog.Record; see NewJSONHandler.
type LineWriter interface {
	slog.Handler
	// JSONOptions returns the options its lines are written with, as
	// slog.NewJSONHandler would with them, and false when it does not write
	// such lines (a handler with attributes or groups of its own does not).
	JSONOptions() (slog.HandlerOptions, bool)
	// WriteLine writes one access log line (message AccessLogMessage) at
	// level, already encoded and ending in a newline.
	WriteLine(level slog.Level, line []byte) error
}

// NewJSONHandler returns slog.NewJSONHandler(w, opts) as a LineWriter. Its
// WithAttrs and WithGroup return plain slog JSON handlers.
func NewJSONHandler(w io.Writer, opts *slog.HandlerOptions) LineWriter {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	// Lines written by either path do not interleave: both go through one
	// lock, and each is one Write.
	lw := &lockedWriter{w: w}
	return &jsonHandler{JSONHandler: slog.NewJSONHandler(lw, opts), out: lw, opts: *opts}
}

type jsonHandler struct {
	*slog.JSONHandler
	out  *lockedWriter
	opts slog.HandlerOptions
}

func (h *jsonHandler) JSONOptions() (slog.HandlerOptions, bool) { return h.opts, true }

func (h *jsonHandler) WriteLine(_ slog.Level, line []byte) error {
	_, err := h.out.Write(line)
	return err
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// linePool holds the buffers access log lines are encoded in; one larger
// than maxPooledLine (a long error message) is left to the collector.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledLine = 4 << 10

// appendJSONLine appends the line slog.JSONHandler with opts would write for
// a record of now, level, msg and attrs, and true; or false when it cannot
// be sure of writing the same: a ReplaceAttr that changes an attribute, an
// attribute of a kind other than string, int and float, a year past 9999.
func appendJSONLine(b []byte, opts *slog.HandlerOptions, now time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	now = now.Round(0) // as slog: the monotonic reading is not the time
	if y := now.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if rep := opts.ReplaceAttr; rep != nil {
		if a := rep(nil, slog.Time(slog.TimeKey, now)); a.Key != slog.TimeKey || a.Value.Kind() != slog.KindTime || a.Value.Time() != now {
			return b, false
		}
		if a := rep(nil, slog.Any(slog.LevelKey, level)); a.Key != slog.LevelKey || a.Value.Kind() != slog.KindAny || a.Value.Any() != any(level) {
			return b, false
		}
		if a := rep(nil, slog.String(slog.MessageKey, msg)); !a.Equal(slog.String(slog.MessageKey, msg)) {
			return b, false
		}
		for _, a := range attrs {
			if r := rep(nil, a); !r.Equal(a) {
				return b, false
			}
		}
	}
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = jsonquote.AppendSlog(b, level.String())
	b = append(b, `,"msg":`...)
	b = jsonquote.AppendSlog(b, msg)
	for _, a := range attrs {
		b = append(b, ',')
		b = jsonquote.AppendSlog(b, a.Key)
		b = append(b, ':')
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			b = jsonquote.AppendSlog(b, v.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindFloat64:
			// encoding/json, which slog calls for floats, writes these
			// without an exponent; the others it writes its own way.
			f := v.Float64()
			if abs := math.Abs(f); f != 0 && (abs < 1e-6 || abs >= 1e21 || math.IsNaN(f)) {
				return b, false
			}
			b = strconv.AppendFloat(b, f, 'f', -1, 64)
		default:
			return b, false
		}
	}
	return append(b, "}\n"...), true
}
