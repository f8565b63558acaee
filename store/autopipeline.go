package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// enableAutoPipeline sends the single commands of concurrent requests to
// Redis in shared pipelines: one write and one read carry many requests'
// commands instead of one round trip each, which is where a gateway under
// load spends its time. Multi-command operations (write, Pipelined) keep
// their own pipelines on the main client.
//
// The auto-pipeliner gets a client of its own, to the same server with the
// same options but without hooks (see batchErrors), and the deferred face with
// the ordered default: one batch in flight at a time, the next one filling
// meanwhile. Submit and WaitContext let every command keep its request's
// deadline, which the blocking face ignores once a command is queued.
func (s *Store) enableAutoPipeline(base redis.Options) error {
	c := redis.NewClient(&base)
	ap, err := c.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("auto-pipelining: %w", err)
	}
	s.ap, s.apClient = ap, c
	s.closers = append([]func() error{ap.Close, c.Close}, s.closers...)
	return nil
}

// mode is how a command may be retried (see write.go): a read after a
// network error, a write only when it provably never ran.
type mode int

const (
	reading mode = iota
	writing
)

// batched reports whether commands of mode m go through the auto-pipeliner.
// Durable writes do not: their WAIT must follow them on their connection.
func (s *Store) batched(m mode) bool {
	return s.ap != nil && (m == reading || s.durable.replicas == 0)
}

// runCmd builds a command with newCmd and runs it under the retry policy of m,
// batched with other requests' commands when auto-pipelining is on. It
// returns when the command has run or ctx is done, whichever comes first. A
// command abandoned at the deadline still runs, as one whose reply never
// arrived would; its result is written later, so the caller gets a fresh
// command carrying ctx's error.
func runCmd[C redis.Cmder](ctx context.Context, s *Store, m mode, newCmd func(context.Context, ...any) C, args ...any) C {
	if !s.batched(m) {
		if m == reading {
			cmd := newCmd(ctx, args...)
			_ = s.rdb.Process(ctx, cmd)
			return cmd
		}
		var cmd C
		err := s.write(ctx, func(p redis.Pipeliner) {
			cmd = newCmd(ctx, args...)
			_ = p.Process(ctx, cmd)
		})
		if errors.Is(err, ErrUnconfirmed) { // ran, but not on enough replicas
			cmd.SetErr(err)
		}
		return cmd
	}
	for attempt := 0; ; attempt++ {
		cmd := newCmd(ctx, args...)
		start, span := time.Now(), s.spans.start(ctx, cmd.FullName())
		// once: go-redis must not send a batch again; retries are decided
		// here, command by command.
		if err := s.ap.Submit(ctx, once{cmd}).WaitContext(ctx); err != nil && ctx.Err() != nil {
			cmd = newCmd(ctx, args...)
			cmd.SetErr(ctx.Err())
			s.spans.end(span, cmd)
			return cmd
		}
		s.spans.end(span, cmd)
		s.errs.observe(start, cmd)
		s.errs.count(cmd)
		if !s.retry(ctx, m, attempt, cmd.Err()) {
			return cmd
		}
	}
}

// runPair runs two reads as runCmd does, in one round trip. It returns ctx's
// error when ctx ended before both had run; the commands must not be read
// then.
func (s *Store) runPair(ctx context.Context, newA, newB func(context.Context) redis.Cmder) (redis.Cmder, redis.Cmder, error) {
	if !s.batched(reading) {
		a, b := newA(ctx), newB(ctx)
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			_ = p.Process(ctx, a)
			_ = p.Process(ctx, b)
			return nil
		})
		return a, b, nil
	}
	for attempt := 0; ; attempt++ {
		a, b := newA(ctx), newB(ctx)
		start := time.Now()
		spanA, spanB := s.spans.start(ctx, a.FullName()), s.spans.start(ctx, b.FullName())
		fa, fb := s.ap.Submit(ctx, once{a}), s.ap.Submit(ctx, once{b})
		if fa.WaitContext(ctx) != nil && ctx.Err() != nil {
			s.spans.fail(spanA, ctx.Err())
			s.spans.fail(spanB, ctx.Err())
			return nil, nil, ctx.Err()
		}
		if fb.WaitContext(ctx) != nil && ctx.Err() != nil {
			s.spans.end(spanA, a)
			s.spans.fail(spanB, ctx.Err())
			return nil, nil, ctx.Err()
		}
		s.spans.end(spanA, a)
		s.spans.end(spanB, b)
		s.errs.observe(start, a, b)
		s.errs.count(a, b)
		err := a.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			err = b.Err()
		}
		if !s.retry(ctx, reading, attempt, err) {
			return a, b, nil
		}
	}
}

// retry waits before another attempt at a command that failed with err, and
// reports whether to make it: at most REDIS_MAX_RETRIES times, within ctx,
// and for a write only when it never ran.
func (s *Store) retry(ctx context.Context, m mode, attempt int, err error) bool {
	if err == nil || attempt >= s.retries || !(notRun(err) || (m == reading && lostReply(err))) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(s.backoff(attempt)):
		return true
	}
}

// lostReply reports an error that left a command without a reply, which a
// read may be sent again for: the connection failed, not the command.
func lostReply(err error) bool {
	var reply redis.Error
	switch {
	case errors.Is(err, redis.Nil), errors.As(err, &reply),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return !errors.Is(classify("", err), ErrTimeout)
}

// newMsCmd builds commands whose reply is a time in milliseconds.
func newMsCmd(ctx context.Context, args ...any) *redis.DurationCmd {
	return redis.NewDurationCmd(ctx, time.Millisecond, args...)
}

// scripts is what runs Lua scripts of mode m: through the auto-pipeliner
// when it takes them, else on the main client (reads) or through write.
func (s *Store) scripts(m mode) redis.Scripter {
	if m == reading && !s.batched(reading) {
		return s.rdb
	}
	return scripter{s, m}
}

// scripter runs Lua scripts through runCmd, so EVALSHA batches like any other
// command and follows the retry policy of its mode; redis.Script keeps its
// EVAL fallback on NOSCRIPT.
type scripter struct {
	s *Store
	m mode
}

func (sc scripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return sc.eval(ctx, "eval", script, keys, args)
}

func (sc scripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return sc.eval(ctx, "evalsha", sha1, keys, args)
}

func (sc scripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return sc.eval(ctx, "eval_ro", script, keys, args)
}

func (sc scripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return sc.eval(ctx, "evalsha_ro", sha1, keys, args)
}

func (sc scripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return sc.s.rdb.ScriptExists(ctx, hashes...)
}

func (sc scripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return sc.s.rdb.ScriptLoad(ctx, script)
}

// eval builds the command as go-redis's own Eval family does: the keys
// after their count.
func (sc scripter) eval(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, name, payload, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	return runCmd(ctx, sc.s, sc.m, func(ctx context.Context, a ...any) *redis.Cmd {
		cmd := redis.NewCmd(ctx, a...)
		if len(keys) > 0 {
			cmd.SetFirstKeyPos(3)
		}
		return cmd
	}, cmdArgs...)
}
