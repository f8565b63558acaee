package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// The one path to Redis. The functions of this file are the only code in
// store that sends an operation's commands to a go-redis client; the
// operations (cache.go, session.go, …) build commands and call them:
//
//   - runCmd(reading), readPipeline and scripts(reading) read: sent again
//     after a lost reply (see retry.go).
//   - readTracked reads the values the near-cache keeps, on its tracked
//     reader (tracker.go); a failed read is not sent again there, but
//     read through runCmd instead.
//   - runCmd(writing), write and runScript write: sent once, again only when
//     the error proves they never ran, and confirmed by REDIS_WRITE_REPLICAS
//     replicas (see durable.go).
//   - send, sendPipeline and sendTx run the command API's commands, reads or
//     writes by the command table, under the same two rules, on its RESP2
//     client (s.cmdAPI); readCommandAPI asks that client COMMAND GETKEYS.
//   - sendOnce runs a publish: sent once, and not confirmed, since it stores
//     nothing a failover could lose.
//
// Which hooks each client carries is said where New builds them.
//
// Connections that stay outside this path, each for its reason:
//   - subscriptions (pubsub.go) and the hub's subscriber connection
//     (hub.go): a subscribed connection runs no other command, and a
//     message is not a write;
//   - the near-cache's invalidation connection (tracker.go): it runs no
//     operation, only receives the invalidations; its reader runs only the
//     reads of readTracked, and a PING that checks it;
//   - the auto-pipeliner and its client (autopipeline.go): runCmd batches
//     through it, under the rules above;
//   - the WAIT that confirms a durable transaction (durability.wait): it
//     must follow EXEC on the transaction's own connection (txConn);
//   - Ping, the readiness probe, which checks each node, not the data.

// processor is a client, or one node of a cluster.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
}

// batched reports whether commands under policy go through the auto-pipeliner.
// Durable writes do not: their WAIT must follow them on their connection.
func (s *Store) batched(policy retryPolicy) bool {
	return s.ap != nil && (policy == reading || s.durable.replicas == 0)
}

// runCmd builds a command with newCmd and runs it under policy,
// batched with other requests' commands when auto-pipelining is on. It
// returns when the command has run or ctx is done, whichever comes first. A
// command abandoned at the deadline still runs, as one whose reply never
// arrived would; its result is written later, so the caller gets a fresh
// command carrying ctx's error.
func runCmd[C redis.Cmder](ctx context.Context, s *Store, policy retryPolicy, newCmd func(context.Context, ...any) C, args ...any) C {
	if !s.batched(policy) {
		if policy == reading {
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
		if err := s.ap.Submit(ctx, noRetry(cmd)).WaitContext(ctx); err != nil && ctx.Err() != nil {
			cmd = newCmd(ctx, args...)
			cmd.SetErr(ctx.Err())
			s.spans.end(span, cmd)
			return cmd
		}
		s.spans.end(span, cmd)
		s.errs.observe(start, cmd)
		s.errs.count(cmd)
		s.reloadAfter(ctx, cmd.Err())
		if !s.retry(ctx, policy, attempt, cmd.Err()) {
			return cmd
		}
	}
}

// runWrites runs the commands newCmds builds as one write, in order and in
// one round trip: batched with other requests' commands when
// auto-pipelining is on, else a pipeline through write. Like write, it sends
// them again only when none of them ran. Each command carries its own
// result; the error is ctx's when ctx ended first, or ErrUnconfirmed.
func (s *Store) runWrites(ctx context.Context, newCmds func(context.Context) []redis.Cmder) ([]redis.Cmder, error) {
	if !s.batched(writing) {
		var cmds []redis.Cmder
		err := s.write(ctx, func(p redis.Pipeliner) {
			cmds = newCmds(ctx)
			for _, c := range cmds {
				_ = p.Process(ctx, c)
			}
		})
		if errors.Is(err, ErrUnconfirmed) {
			return cmds, err
		}
		return cmds, nil
	}
	for attempt := 0; ; attempt++ {
		cmds := newCmds(ctx)
		start := time.Now()
		var spans []trace.Span
		if s.spans.tracer != nil {
			spans = make([]trace.Span, len(cmds))
			for i, c := range cmds {
				spans[i] = s.spans.start(ctx, c.FullName())
			}
		}
		var buf [4]redis.AutoFuture
		futures := buf[:0]
		for _, c := range cmds {
			futures = append(futures, s.ap.Submit(ctx, noRetry(c)))
		}
		for _, f := range futures {
			if f.WaitContext(ctx) != nil && ctx.Err() != nil {
				for _, span := range spans {
					s.spans.fail(span, ctx.Err())
				}
				return nil, ctx.Err()
			}
		}
		for i, span := range spans {
			s.spans.end(span, cmds[i])
		}
		s.errs.observe(start, cmds...)
		s.errs.count(cmds...)
		if !neverRan(cmds) || !s.retry(ctx, writing, attempt, cmds[0].Err()) {
			return cmds, nil
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
		fa, fb := s.ap.Submit(ctx, noRetry(a)), s.ap.Submit(ctx, noRetry(b))
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

// readTracked runs two reads on the near-cache's reader (tracker.go), in
// one round trip, so that Redis tracks the key they read. It returns ctx's
// error when ctx ended before both had run; the commands must not be read
// then. It never sends them again: a caller whose read failed reads from
// the main client instead, without keeping the value.
func (s *Store) readTracked(ctx context.Context, r *reader, a, b redis.Cmder) error {
	spanA, spanB := s.spans.start(ctx, a.FullName()), s.spans.start(ctx, b.FullName())
	fa, fb := r.ap.Submit(ctx, noRetry(a)), r.ap.Submit(ctx, noRetry(b))
	if fa.WaitContext(ctx) != nil && ctx.Err() != nil {
		s.spans.fail(spanA, ctx.Err())
		s.spans.fail(spanB, ctx.Err())
		return ctx.Err()
	}
	if fb.WaitContext(ctx) != nil && ctx.Err() != nil {
		s.spans.end(spanA, a)
		s.spans.fail(spanB, ctx.Err())
		return ctx.Err()
	}
	s.spans.end(spanA, a)
	s.spans.end(spanB, b)
	return nil
}

// write runs the commands queue adds as one pipeline, a write. It is sent
// again, after a backoff and within the deadline, only when no command ran:
// no connection could be opened, or the node refused before running
// anything (READONLY from a demoted primary, LOADING, CLUSTERDOWN while a
// cluster fails over). queue runs again for each attempt, so the commands
// it leaves behind are those of the last.
//
// With durable writes on, every node that ran some of the commands must
// also confirm that enough replicas have them, or the write is
// ErrUnconfirmed.
func (s *Store) write(ctx context.Context, queue func(p redis.Pipeliner)) error {
	ctx = context.WithValue(ctx, writeKey{}, true)
	var conf *confirmation
	if s.durable.replicas > 0 {
		conf = &confirmation{}
		ctx = context.WithValue(ctx, confirmKey{}, conf)
	}
	for attempt := 0; ; attempt++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			queue(p)
			return nil
		})
		if err == nil || attempt >= s.retries || !neverRan(cmds) {
			// A nil reply (SET … GET of a new key) is a write that ran, and
			// must be confirmed too.
			if (err == nil || errors.Is(err, redis.Nil)) && conf != nil {
				if cerr := conf.result(); cerr != nil {
					err = cerr
				}
			}
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(s.backoff(attempt)):
		}
	}
}

// runScript runs a script that writes, through write: EVALSHA, then EVAL
// when the node lacks the script, as a replica promoted since the script was
// loaded does. With auto-pipelining, the script is batched under the same
// retry policy (see runCmd).
func (s *Store) runScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	if s.batched(writing) {
		cmd := sc.Run(ctx, scripter{s, writing}, keys, args...)
		return cmd, cmd.Err()
	}
	var cmd *redis.Cmd
	err := s.write(ctx, func(p redis.Pipeliner) { cmd = sc.EvalSha(ctx, p, keys, args...) })
	if errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = s.write(ctx, func(p redis.Pipeliner) { cmd = sc.Eval(ctx, p, keys, args...) })
	}
	return cmd, err
}

// send runs one command of the command API on p under the retry policy. A
// write to be confirmed goes as a pipeline of one, which confirmHook
// follows with WAIT on the same connection.
func (s *Store) send(ctx context.Context, p processor, c command) *redis.Cmd {
	_, confirm := ctx.Value(confirmKey{}).(*confirmation)
	for attempt := 0; ; attempt++ {
		cmd := c.newCmd(ctx)
		if c.changes && confirm {
			pipe := p.Pipeline()
			_ = pipe.Process(ctx, guard(cmd, c.write))
			_, _ = pipe.Exec(ctx)
		} else {
			_ = p.Process(ctx, guard(cmd, c.write))
		}
		if !c.write || !notRun(cmd.Err()) || attempt >= s.retries {
			return cmd
		}
		select {
		case <-ctx.Done():
			return cmd
		case <-time.After(s.backoff(attempt)):
		}
	}
}

// sendPipeline runs the command API's commands queue adds, each guarded by
// its retry policy (guard), in one round trip per node. Each command
// carries its own error.
func (s *Store) sendPipeline(ctx context.Context, queue func(p redis.Pipeliner)) {
	pipe := s.cmdAPI.Pipeline()
	queue(pipe)
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

// sendTx runs the command API's commands queue adds in MULTI and EXEC: on
// conn when the transaction must be confirmed (see txConn and
// durability.wait), else on a connection of the command API's client.
func (s *Store) sendTx(ctx context.Context, conn *redis.Conn, queue func(tx redis.Pipeliner)) error {
	var tx redis.Pipeliner
	if conn != nil {
		tx = conn.TxPipeline()
	} else {
		tx = s.cmdAPI.TxPipeline()
	}
	queue(tx)
	_, err := tx.Exec(ctx)
	return err
}

// txConn is a connection of its own for a transaction whose writes must be
// confirmed: WAIT counts the writes of the connection it runs on. On Redis
// Cluster it is a connection to the primary of the first key's slot; Redis
// refuses keys of other slots itself (CROSSSLOT, or MOVED during a
// resharding).
func (s *Store) txConn(ctx context.Context, prepared []command) (*redis.Conn, error) {
	switch c := s.cmdAPI.(type) {
	case *redis.Client:
		return c.Conn(), nil
	case *redis.ClusterClient:
		key := ""
		for _, p := range prepared {
			if p.firstKey > 0 {
				key, _ = p.args[p.firstKey].(string)
				break
			}
		}
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, classify("redis transaction", err)
		}
		return node.Conn(), nil
	}
	return nil, fmt.Errorf("redis transaction: unexpected client %T", s.cmdAPI)
}

// readCommandAPI runs a read of the command API's own (COMMAND GETKEYS) on
// its client, retried by go-redis like any read.
func (s *Store) readCommandAPI(ctx context.Context, args ...any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, args...)
	_ = s.cmdAPI.Process(ctx, cmd)
	return cmd
}

// readPipeline runs the reads queue adds in one round trip per node, on the
// main client, retried by go-redis like any read. Each command carries its
// own error; the one returned is the first.
func (s *Store) readPipeline(ctx context.Context, queue func(p redis.Pipeliner)) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		return nil
	})
	return err
}

// sendOnce runs the command newCmd builds on p, sent again only when it
// provably never ran, and not confirmed by replicas: for what stores
// nothing, a publish.
func sendOnce[C redis.Cmder](ctx context.Context, s *Store, p processor, newCmd func(context.Context, ...any) C, args ...any) C {
	for attempt := 0; ; attempt++ {
		cmd := newCmd(ctx, args...)
		_ = p.Process(ctx, noRetry(cmd))
		if !s.retry(ctx, writing, attempt, cmd.Err()) {
			return cmd
		}
	}
}

// scripts is what runs Lua scripts under policy: through the auto-pipeliner
// when it takes them, else on the main client (reads) or through write.
func (s *Store) scripts(policy retryPolicy) redis.Scripter {
	if policy == reading && !s.batched(reading) {
		return s.rdb
	}
	return scripter{s, policy}
}

// scripter runs Lua scripts through runCmd, so EVALSHA batches like any other
// command and follows its retry policy; redis.Script keeps its
// EVAL fallback on NOSCRIPT.
type scripter struct {
	s      *Store
	policy retryPolicy
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
	return runCmd(ctx, sc.s, sc.policy, func(ctx context.Context, a ...any) *redis.Cmd {
		cmd := redis.NewCmd(ctx, a...)
		if len(keys) > 0 {
			cmd.SetFirstKeyPos(3)
		}
		return cmd
	}, cmdArgs...)
}

// newMsCmd builds commands whose reply is a time in milliseconds.
func newMsCmd(ctx context.Context, args ...any) *redis.DurationCmd {
	return redis.NewDurationCmd(ctx, time.Millisecond, args...)
}
