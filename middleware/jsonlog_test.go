package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// oddStrings need escaping in JSON, or look as if they might.
var oddStrings = []string{
	"",
	"plain",
	`"quoted" and \backslashed\`,
	"line\nbreak\rreturn\ttab",
	"\x00\x01\x07\x08\x0b\x0c\x1b\x1f",
	"del\x7f",
	"<html> & 'apostrophe'",
	"é, 中文, 😀",
	"bad utf-8 \xff\xfe\xc3 and a cut rune \xe2\x82",
	"separators \u2028 \u2029",
	"\ufffd replacement char",
	strings.Repeat("long ", 1000),
}

// durationText is what the gateway's JSON log does to durations.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// The access log's own line is byte for byte what slog's JSON handler writes
// for the same record, odd strings and all.
func TestAccessLineIsSlogJSON(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 12, 7, 20, 44, 30, 123456789, time.FixedZone("", 5*3600+30*60)),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.FixedZone("west", -8*3600)),
		time.Now(), // with a monotonic reading
	}
	floats := []float64{0, 0.001, 1.5, 12.345, 999.999, 123456.789, 1e15, 1e20}
	options := map[string]*slog.HandlerOptions{
		"no options":    nil,
		"debug level":   {Level: slog.LevelDebug},
		"duration text": {ReplaceAttr: durationText},
	}
	for name, opts := range options {
		for i, s := range oddStrings {
			level := []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError}[i%3]
			now := times[i%len(times)]
			attrs := []slog.Attr{
				slog.String("method", "GET"),
				slog.String("route", "/cache/{key}"),
				slog.Int("status", 200+i),
				slog.Int("bytes", i*1000),
				slog.Float64("duration_ms", floats[i%len(floats)]),
				slog.String("request_id", s),
				slog.String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
				slog.String("token", s),
				slog.String("error", s),
			}
			opts := opts
			if opts == nil {
				opts = &slog.HandlerOptions{}
			}

			var want bytes.Buffer
			r := slog.NewRecord(now, level, AccessLogMessage, 0)
			r.AddAttrs(attrs...)
			if err := slog.NewJSONHandler(&want, opts).Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got, ok := appendJSONLine(nil, opts, now, level, AccessLogMessage, attrs)
			if !ok {
				t.Errorf("%s, string %d: the line was left to slog, want it written", name, i)
				continue
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s, string %d:\n got %s\nwant %s", name, i, got, want.Bytes())
			}
			var gotFields, wantFields map[string]any
			if err := json.Unmarshal(got, &gotFields); err != nil {
				t.Errorf("%s, string %d: the line is not JSON: %v", name, i, err)
			}
			if err := json.Unmarshal(want.Bytes(), &wantFields); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotFields, wantFields) {
				t.Errorf("%s, string %d: fields = %v, want %v", name, i, gotFields, wantFields)
			}
		}
	}
}

// Whatever slog would write differently is left to slog.
func TestAccessLineLeavesTheRestToSlog(t *testing.T) {
	now := time.Date(2026, 12, 7, 20, 44, 30, 0, time.UTC)
	attrs := []slog.Attr{slog.String("route", "/cache/{key}"), slog.Float64("duration_ms", 1.5)}
	for _, tt := range []struct {
		name  string
		rep   func([]string, slog.Attr) slog.Attr
		attrs []slog.Attr
		when  time.Time
	}{
		{name: "renamed attribute", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "route" {
				a.Key = "path"
			}
			return a
		}},
		{name: "changed value", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "duration_ms" {
				a.Value = slog.StringValue("1.5ms")
			}
			return a
		}},
		{name: "time in another zone", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				a.Value = slog.TimeValue(a.Value.Time().In(time.FixedZone("", 3600)))
			}
			return a
		}},
		{name: "time dropped", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}},
		{name: "level renamed", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				a.Value = slog.StringValue("info")
			}
			return a
		}},
		{name: "message renamed", rep: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.MessageKey {
				a.Key = "message"
			}
			return a
		}},
		{name: "NaN", attrs: []slog.Attr{slog.Float64("duration_ms", math.NaN())}},
		{name: "tiny float", attrs: []slog.Attr{slog.Float64("duration_ms", 1e-7)}},
		{name: "huge float", attrs: []slog.Attr{slog.Float64("duration_ms", 1e21)}},
		{name: "duration", attrs: []slog.Attr{slog.Duration("took", time.Second)}},
		{name: "year 10000", when: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		a, when := attrs, now
		if tt.attrs != nil {
			a = tt.attrs
		}
		if !tt.when.IsZero() {
			when = tt.when
		}
		if line, ok := appendJSONLine(nil, &slog.HandlerOptions{ReplaceAttr: tt.rep}, when, slog.LevelInfo, AccessLogMessage, a); ok {
			t.Errorf("%s: wrote %s, want it left to slog", tt.name, line)
		}
	}

	// Handlers that could write something else are never given lines.
	for name, h := range map[string]slog.Handler{
		"slog's own JSON handler": slog.NewJSONHandler(&bytes.Buffer{}, nil),
		"text":                    slog.NewTextHandler(&bytes.Buffer{}, nil),
		"with attributes":         NewJSONHandler(&bytes.Buffer{}, nil).WithAttrs([]slog.Attr{slog.String("k", "v")}),
		"with a group":            NewJSONHandler(&bytes.Buffer{}, nil).WithGroup("g"),
		"with AddSource":          NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{AddSource: true}),
	} {
		if l := newAccessLog(slog.New(h)); l.lines != nil {
			t.Errorf("%s: the access log writes its own lines to it", name)
		}
	}
	if l := newAccessLog(slog.New(NewJSONHandler(&bytes.Buffer{}, nil))); l.lines == nil {
		t.Error("NewJSONHandler: the access log leaves its lines to slog")
	}
}
