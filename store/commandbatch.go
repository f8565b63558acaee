package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// The command API's reads share batches the way the typed routes' commands
// do (autopipeline.go): the single commands of concurrent requests, and the
// commands of read-only pipelines, go to Redis together in one write and one
// read, on an auto-pipeliner over a RESP2 client of its own whose
// connections hold the reply budget (replybudget.go).
//
// Only reads ride the batch. The budget counts per round trip, which is now
// a batch of several requests' commands: when the replies of a batch
// together pass MAX_REPLY_BYTES, the command whose reply crosses it and
// every one after it fail, read or not. A read that failed so, or lost its
// reply, is sent again on the command client (send), under its own budget
// and with go-redis's retries: a read may be sent twice. A write may not —
// one behind an oversized reply would have run without its reply being
// read — so writes stay on the command client, as do transactions, which
// need their connection from MULTI to EXEC, and the commands a cluster
// routes itself (to every primary, or to a channel's). Blocking and
// connection-state commands never get this far: the command table refuses
// them. A read whose own reply is over the budget is read twice, up to the
// budget each time, before its request is refused.
//
// Each batch connection holds at most one budget of replies at a time, as
// each command client connection does, so the gateway holds no more reply
// bytes than it did without batching.

// enableCommandBatching starts the command API's auto-pipeliner, on a
// client of its own with the command client's options: RESP2 and the reply
// budget. On Redis Cluster go-redis batches each node's commands apart.
func (s *Store) enableCommandBatching(reg prometheus.Registerer) error {
	var c interface {
		redis.UniversalClient
		AsyncAutoPipelineWithOptions(*redis.AutoPipelineOptions) (*redis.AutoPipeliner, error)
	}
	switch api := s.cmdAPI.(type) {
	case *redis.Client:
		o := *api.Options()
		c = redis.NewClient(&o)
	case *redis.ClusterClient:
		cc := newClusterClient(*api.Options())
		cc.AddHook(reloadHook{cc})
		c = cc
	default:
		return fmt.Errorf("command API auto-pipelining: unexpected client %T", s.cmdAPI)
	}
	ap, err := c.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("command API auto-pipelining: %w", err)
	}
	s.cmdBatch = ap
	s.closers = append([]func() error{ap.Close, c.Close}, s.closers...)
	if reg != nil {
		if err := reg.Register(newPoolCollector("command_api_autopipeline", c)); err != nil {
			return fmt.Errorf("register redis metrics: %w", err)
		}
	}
	return nil
}

// batchable reports whether c may share a batch: a read Redis flags
// read-only, that changes nothing and that a cluster does not route itself.
func (s *Store) batchable(c command) bool {
	return s.cmdBatch != nil && c.refused == nil && !c.write && !c.changes && c.merge == nil && c.channel == ""
}

// runBatched runs c, a batchable read, in a shared batch, and again on the
// command client when the batch gave it no answer. It is counted and traced
// as the command client's hooks count and trace its commands.
func (s *Store) runBatched(ctx context.Context, c command) (Reply, error) {
	cmd := c.newCmd(ctx)
	start := time.Now()
	var span trace.Span
	if s.spans.tracer != nil {
		span = s.spans.start(ctx, cmd.FullName())
	}
	// once: go-redis must not send a batch again; whether to send a command
	// again is decided here.
	if err := s.cmdBatch.Submit(ctx, onceCmd{cmd}).WaitContext(ctx); err != nil && ctx.Err() != nil {
		s.spans.fail(span, ctx.Err())
		return nil, commandErr(ctx.Err())
	}
	s.spans.end(span, cmd)
	s.errs.observe(start, cmd)
	s.errs.count(cmd)
	if unanswered(cmd.Err()) {
		return c.result(s.send(ctx, s.cmdAPI, c))
	}
	return c.result(cmd)
}

// pipelineBatched runs prepared, every one refused or batchable, in shared
// batches, in order; false when one of them got no answer there, and the
// whole pipeline is to be sent on the command client instead.
func (s *Store) pipelineBatched(ctx context.Context, prepared []command) ([]*redis.Cmd, bool, error) {
	run := make([]command, 0, len(prepared))
	for _, c := range prepared {
		if c.refused == nil {
			run = append(run, c)
		}
	}
	cmds, err := s.sendBatch(ctx, run)
	if err != nil {
		return nil, true, err
	}
	sent := make([]*redis.Cmd, len(prepared))
	for i, c := range prepared {
		if c.refused != nil {
			continue
		}
		sent[i], cmds = cmds[0], cmds[1:]
		if unanswered(sent[i].Err()) {
			return nil, false, nil
		}
	}
	return sent, true, nil
}

// sendBatch submits prepared to the command API's auto-pipeliner, in
// order, and waits for them, as runBatched does for one; ctx's error when
// ctx ended first, and then the commands, which still run, must not be
// read.
func (s *Store) sendBatch(ctx context.Context, prepared []command) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(prepared))
	spans := make([]trace.Span, len(prepared)) // nil spans when tracing is off
	futures := make([]redis.AutoFuture, len(prepared))
	start := time.Now()
	for i, c := range prepared {
		cmds[i] = c.newCmd(ctx)
		if s.spans.tracer != nil {
			spans[i] = s.spans.start(ctx, cmds[i].FullName())
		}
		futures[i] = s.cmdBatch.Submit(ctx, onceCmd{cmds[i]})
	}
	for _, f := range futures {
		if f.WaitContext(ctx) != nil && ctx.Err() != nil {
			for _, span := range spans {
				s.spans.fail(span, ctx.Err())
			}
			return nil, ctx.Err()
		}
	}
	for i, cmd := range cmds {
		s.spans.end(spans[i], cmd)
		s.errs.observe(start, cmd)
		s.errs.count(cmd)
	}
	return cmds, nil
}

// unanswered reports an error that is not Redis's answer to the command: a
// lost reply, a reply over the budget (its own or one before it in the
// batch), or a server that cannot serve yet (LOADING, ...), which go-redis
// retries on the command client.
func unanswered(err error) bool {
	if err == nil || err == redis.Nil { // the usual answers, without errors.As
		return false
	}
	var rerr redis.Error
	var tooLarge *ReplyTooLargeError
	switch {
	case errors.Is(err, redis.Nil):
		return false
	case errors.As(err, &tooLarge):
		return true
	case errors.As(err, &rerr):
		// A redirect go-redis stopped following (MaxRedirects) while a
		// slot moved: the command client follows it afresh.
		msg := rerr.Error()
		return isUnavailableReply(msg) || strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
	}
	return true
}
