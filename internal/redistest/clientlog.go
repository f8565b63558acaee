package redistest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// go-redis keeps one logger per process and by default prints to stderr:
// every failed dial of an outage or TLS test would show in a passing run.
// LogClientToTests routes those lines to the log of the tests running at the
// time, which go test shows only for a test that fails (or with -v).
var clientLog testLog

// LogClientToTests makes go-redis log to the tests that called LogClient (the
// fixtures here do it) and are still running; lines logged while none is are
// dropped. A test binary's TestMain calls it once.
func LogClientToTests() { redis.SetLogger(&clientLog) }

// LogClient sends go-redis's log lines to t's log until t ends.
func LogClient(t testing.TB) { clientLog.attach(t) }

type testLog struct {
	mu    sync.Mutex
	tests []testing.TB
}

func (l *testLog) attach(t testing.TB) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Contains(l.tests, t) {
		return
	}
	l.tests = append(l.tests, t)
	// Cleanups run last-registered first: this one after those that close
	// the clients and servers of t, whose lines still reach its log.
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.tests = slices.DeleteFunc(l.tests, func(u testing.TB) bool { return u == t })
	})
}

// Printf is go-redis's internal.Logging. It holds the lock while it logs, so
// no line reaches a test whose cleanup has detached it.
func (l *testLog) Printf(_ context.Context, format string, v ...any) {
	line := "go-redis: " + fmt.Sprintf(format, v...)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.tests {
		t.Log(line)
	}
}
