package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// autoPipeliner is what the clients that can batch commands offer.
type autoPipeliner interface {
	AsyncAutoPipelineWithOptions(*redis.AutoPipelineOptions) (*redis.AutoPipeliner, error)
}

// enableAutoPipeline sends the single commands of concurrent requests to
// Redis in shared pipelines: one write and one read carry many requests'
// commands instead of one round trip each, which is where a gateway under
// load spends its time. Multi-command operations (Pipelined, TxPipelined)
// keep their own pipelines on the pool.
func (s *Store) enableAutoPipeline() error {
	c, ok := s.rdb.(autoPipeliner)
	if !ok {
		return nil
	}
	// The deferred face with the ordered default (one batch in flight at a
	// time, the next one filling meanwhile); Submit and WaitContext let every
	// command keep its request's deadline, which the blocking face ignores once
	// a command is queued.
	ap, err := c.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	if err != nil {
		return fmt.Errorf("auto-pipelining: %w", err)
	}
	s.ap = ap
	s.closers = append([]func() error{ap.Close}, s.closers...)
	return nil
}

// run builds a command with newCmd and runs it, batched with other
// requests' commands when auto-pipelining is on. It returns when the command
// has run or ctx is done, whichever comes first. A command abandoned at the
// deadline still runs, as one whose reply never arrived would; its result is
// written later, so the caller gets a fresh command carrying ctx's error.
func run[C redis.Cmder](ctx context.Context, s *Store, newCmd func(context.Context, ...any) C, args ...any) C {
	cmd := newCmd(ctx, args...)
	if s.ap == nil {
		_ = s.rdb.Process(ctx, cmd)
	} else if err := s.ap.Submit(ctx, cmd).WaitContext(ctx); err != nil && ctx.Err() != nil {
		cmd = newCmd(ctx, args...)
		cmd.SetErr(ctx.Err())
	}
	s.errs.count(cmd)
	return cmd
}

// runPair runs a then b, as run does, in one round trip. It returns ctx's
// error when ctx ended before both had run; the commands must not be read
// then.
func (s *Store) runPair(ctx context.Context, a, b redis.Cmder) error {
	if s.ap == nil {
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			_ = p.Process(ctx, a)
			_ = p.Process(ctx, b)
			return nil
		})
	} else {
		fa, fb := s.ap.Submit(ctx, a), s.ap.Submit(ctx, b)
		if fa.WaitContext(ctx) != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if fb.WaitContext(ctx) != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	s.errs.count(a, b)
	return nil
}

// newMsCmd builds commands whose reply is a time in milliseconds.
func newMsCmd(ctx context.Context, args ...any) *redis.DurationCmd {
	return redis.NewDurationCmd(ctx, time.Millisecond, args...)
}

// scripter runs Lua scripts through process, so EVALSHA batches like any
// other command; redis.Script keeps its EVAL fallback on NOSCRIPT.
type scripter struct{ s *Store }

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
// after their count, so a cluster client routes it by the first key.
func (sc scripter) eval(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, name, payload, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	return run(ctx, sc.s, func(ctx context.Context, a ...any) *redis.Cmd {
		cmd := redis.NewCmd(ctx, a...)
		if len(keys) > 0 {
			cmd.SetFirstKeyPos(3)
		}
		return cmd
	}, cmdArgs...)
}
