package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/middleware"
)

// Buffered log lines are all written, one per record: access log lines
// within the interval; every other line, and any warning, at once, with what
// came before it; the rest on close.
func TestLogBuffer(t *testing.T) {
	var out logtest.Buffer
	logger, closeLog := newLogger(config{LogFormat: "json", LogBuffer: time.Hour}, &out)
	logger.Info(middleware.AccessLogMessage, "n", 1)
	if got := out.String(); got != "" {
		t.Errorf("an access log line was written before the interval: %q", got)
	}
	logger.Info("listening")
	if got := out.String(); !strings.Contains(got, `"n":1`) || !strings.Contains(got, `"msg":"listening"`) {
		t.Errorf("after another info line the log holds %q, want both lines", got)
	}
	logger.With("k", "v").Info(middleware.AccessLogMessage, "n", 2)
	logger.With("k", "v").Warn(middleware.AccessLogMessage, "n", 3)
	if got := out.String(); !strings.Contains(got, `"n":3`) {
		t.Errorf("a warning through a derived logger was not written at once: %q", got)
	}
	logger.Info(middleware.AccessLogMessage, "n", 4)
	closeLog()
	if got := out.String(); strings.Count(got, "\n") != 5 || !strings.Contains(got, `"n":4`) {
		t.Errorf("after close the log holds %q, want five lines", got)
	}

	var ticked logtest.Buffer
	logger, closeLog = newLogger(config{LogFormat: "json", LogBuffer: 20 * time.Millisecond}, &ticked)
	defer closeLog()
	logger.Info(middleware.AccessLogMessage, "n", 5)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(ticked.String(), `"n":5`) {
		if time.Now().After(deadline) {
			t.Fatal("an info line was not written within 2s with LOG_BUFFER=20ms")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The access log's own lines follow the same rule as its records: below
// warn they wait for the batch, a warning goes out at once. A text log
// takes no such lines.
func TestLogBufferTakesAccessLines(t *testing.T) {
	var out logtest.Buffer
	logger, closeLog := newLogger(config{LogFormat: "json", LogBuffer: time.Hour}, &out)
	lw, ok := logger.Handler().(middleware.LineWriter)
	if !ok {
		t.Fatalf("the JSON log's handler is %T, not a middleware.LineWriter", logger.Handler())
	}
	if _, ok := lw.JSONOptions(); !ok {
		t.Fatal("the JSON log does not take access log lines")
	}
	if err := lw.WriteLine(slog.LevelInfo, []byte("{\"n\":1}\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "" {
		t.Errorf("an access log line was written before the interval: %q", got)
	}
	if err := lw.WriteLine(slog.LevelWarn, []byte("{\"n\":2}\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "{\"n\":1}\n{\"n\":2}\n" {
		t.Errorf("after a warning the log holds %q, want both lines", got)
	}
	closeLog()

	text, closeText := newLogger(config{LogFormat: "text", LogBuffer: time.Hour}, &out)
	defer closeText()
	if lw, ok := text.Handler().(middleware.LineWriter); ok {
		if _, ok := lw.JSONOptions(); ok {
			t.Error("the text log takes JSON access log lines")
		}
	}
}
