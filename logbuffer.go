package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/redis-gateway/redis-gateway/middleware"
)

// logBuffer gathers log lines and writes them out together, at most every
// interval, so the access log costs one write per batch of lines rather than
// one system call per request. Every line is still written, one per record.
type logBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// logBufferSize is what a burst between two flushes may fill before the
// writer flushes early.
const logBufferSize = 64 << 10

func newLogBuffer(w io.Writer, interval time.Duration) *logBuffer {
	b := &logBuffer{
		w:    bufio.NewWriterSize(w, logBufferSize),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes out what has gathered.
func (b *logBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the timer and writes out the rest.
func (b *logBuffer) Close() error {
	close(b.stop)
	<-b.done
	return b.Flush()
}

// accessBatches writes the buffer out after every record except the access
// log's own lines below warn level: start-up, reloads, warnings and errors
// reach the log at once (and are not lost with the process if it then dies),
// while the line of every request waits for the next batch.
type accessBatches struct {
	slog.Handler
	buf *logBuffer
}

func (h accessBatches) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || r.Message != middleware.AccessLogMessage {
		_ = h.buf.Flush()
	}
	return err
}

func (h accessBatches) WithAttrs(attrs []slog.Attr) slog.Handler {
	return accessBatches{h.Handler.WithAttrs(attrs), h.buf}
}

func (h accessBatches) WithGroup(name string) slog.Handler {
	return accessBatches{h.Handler.WithGroup(name), h.buf}
}

// JSONOptions and WriteLine pass the access log's own lines through (see
// middleware.LineWriter), under the same rule as Handle.
func (h accessBatches) JSONOptions() (slog.HandlerOptions, bool) {
	if lw, ok := h.Handler.(middleware.LineWriter); ok {
		return lw.JSONOptions()
	}
	return slog.HandlerOptions{}, false
}

func (h accessBatches) WriteLine(level slog.Level, line []byte) error {
	err := h.Handler.(middleware.LineWriter).WriteLine(level, line)
	if level >= slog.LevelWarn {
		_ = h.buf.Flush()
	}
	return err
}
