package main

import (
	"strings"
	"testing"
	"time"
)

// Buffered log lines are all written, one per record: info lines within the
// interval, warnings at once (with what came before them), the rest on close.
func TestLogBuffer(t *testing.T) {
	var out syncBuffer
	logger, closeLog := newLogger(config{LogFormat: "json", LogBuffer: time.Hour}, &out)
	logger.Info("first")
	if got := out.String(); got != "" {
		t.Errorf("an info line was written before the interval: %q", got)
	}
	logger.Warn("second")
	if got := out.String(); !strings.Contains(got, `"msg":"first"`) || !strings.Contains(got, `"msg":"second"`) {
		t.Errorf("after a warning the log holds %q, want both lines", got)
	}
	logger.With("k", "v").Info("third")
	logger.With("k", "v").Error("fourth")
	if got := out.String(); !strings.Contains(got, `"msg":"fourth"`) {
		t.Errorf("an error through a derived logger was not written at once: %q", got)
	}
	logger.Info("fifth")
	closeLog()
	if got := out.String(); strings.Count(got, "\n") != 5 || !strings.Contains(got, `"msg":"fifth"`) {
		t.Errorf("after close the log holds %q, want five lines", got)
	}

	var ticked syncBuffer
	logger, closeLog = newLogger(config{LogFormat: "json", LogBuffer: 20 * time.Millisecond}, &ticked)
	defer closeLog()
	logger.Info("soon")
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(ticked.String(), `"msg":"soon"`) {
		if time.Now().After(deadline) {
			t.Fatal("an info line was not written within 2s with LOG_BUFFER=20ms")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
