package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// instrumentTracing gives every command of the clients a span, through
// go-redis's OpenTelemetry hook. Spans carry the command's name, never its
// arguments: keys and values are the users' data. The caller's file and line
// are left out too, which would cost a stack walk per command.
func instrumentTracing(tp trace.TracerProvider, clients ...redis.UniversalClient) error {
	for _, c := range clients {
		if err := redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(tp),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
	}
	return nil
}

// batchSpans traces commands sent through the auto-pipeliner, whose client
// carries no hooks (see batchErrors), as the hook traces the others.
type batchSpans struct {
	tracer trace.Tracer // nil = no tracing
	opts   []trace.SpanStartOption
}

func newBatchSpans(tp trace.TracerProvider) batchSpans {
	return batchSpans{
		tracer: tp.Tracer("github.com/redis-gateway/redis-gateway/store"),
		opts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system", "redis"))},
	}
}

// start begins the span of a batched command named name; nil when tracing
// is off.
func (b batchSpans) start(ctx context.Context, name string) trace.Span {
	if b.tracer == nil {
		return nil
	}
	_, span := b.tracer.Start(ctx, name, b.opts...)
	return span
}

// end ends span with the outcome of cmds.
func (b batchSpans) end(span trace.Span, cmds ...redis.Cmder) {
	if span == nil {
		return
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); countable(err) {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// fail ends span with err: the command was abandoned at the deadline.
func (b batchSpans) fail(span trace.Span, err error) {
	if span == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.End()
}
