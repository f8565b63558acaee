package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The retry policy. Reads are retried by go-redis on network errors, up to
// REDIS_MAX_RETRIES times within the request deadline: running them twice is
// harmless. A write is never sent again once it may have reached Redis —
// an INCR, a rate-limit decision or a conditional PUT that ran but whose
// reply was lost would count, decide or answer twice — so writes go through
// write, which retries only when the error shows the commands never ran.

// writeKey marks, in a context, a pipeline of write commands.
type writeKey struct{}

// once marks a command go-redis must not send a second time.
type once struct{ redis.Cmder }

func (once) NoRetry() bool { return true }

// writeHook wraps the commands of a write pipeline in once, so go-redis
// leaves the decision to retry to write. On a cluster it sits on the cluster
// client, before the pipeline is split by node.
type writeHook struct{}

func (writeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (writeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (writeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(writeKey{}) == nil {
			return next(ctx, cmds)
		}
		wrapped := make([]redis.Cmder, len(cmds))
		for i, c := range cmds {
			wrapped[i] = once{c}
		}
		return next(ctx, wrapped)
	}
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

// Durable writes: REDIS_WRITE_REPLICAS makes every write wait until that many
// replicas have it (WAIT), so that a crashed primary's replica, promoted,
// holds every write the gateway acknowledged. WAIT counts the writes of its
// own connection, so it must follow the write on the same connection: a hook
// on each node's client appends it to the batch that node runs, after go-redis
// has split a pipeline by node and before it picks the connection.

// durability is REDIS_WRITE_REPLICAS and REDIS_WRITE_REPLICAS_TIMEOUT.
type durability struct {
	replicas int
	timeout  time.Duration
}

// confirmKey holds, in a write's context, the confirmation to fill in.
type confirmKey struct{}

// confirmation collects what the nodes of one write said to WAIT.
type confirmation struct {
	mu    sync.Mutex
	waits []redis.Cmder // the WAITs added, told apart from the write's own commands
	short error
}

func (c *confirmation) result() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.short != nil {
		return fmt.Errorf("%w: %w", ErrUnconfirmed, c.short)
	}
	return nil
}

// own drops from cmds the WAITs this write added before: go-redis moves a
// batch that could not get a connection, WAIT included, to the next attempt.
func (c *confirmation) own(cmds []redis.Cmder) []redis.Cmder {
	c.mu.Lock()
	defer c.mu.Unlock()
	var own []redis.Cmder
	for _, cmd := range cmds {
		if !slices.Contains(c.waits, cmd) {
			own = append(own, cmd)
		}
	}
	return own
}

func (c *confirmation) add(wait redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, wait)
}

// check notes a node that ran some of cmds without enough replicas
// confirming. A node that ran none (it answered MOVED, say) need not confirm.
func (c *confirmation) check(cmds []redis.Cmder, wait *redis.IntCmd, d durability) {
	ran := false
	for _, cmd := range cmds {
		ran = ran || cmd.Err() == nil || errors.Is(cmd.Err(), redis.Nil) // a nil reply ran too
	}
	if !ran {
		return
	}
	var short error
	switch n, err := wait.Result(); {
	case err != nil:
		short = fmt.Errorf("WAIT: %w", err)
	case n < int64(d.replicas):
		short = fmt.Errorf("%d of %d replicas confirmed within %v", n, d.replicas, d.timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.short == nil {
		c.short = short
	}
}

// confirmHook adds a WAIT to each write batch a node runs. On a cluster it
// sits on every node's client.
type confirmHook struct{ durability }

func (confirmHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (confirmHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h confirmHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		conf, ok := ctx.Value(confirmKey{}).(*confirmation)
		if !ok || (len(cmds) > 0 && cmds[0].Name() == "multi") {
			return next(ctx, cmds)
		}
		own := conf.own(cmds)
		if len(own) == 0 {
			return nil
		}
		wait := redis.NewIntCmd(ctx, "wait", h.replicas, h.timeout.Milliseconds())
		conf.add(wait)
		err := next(ctx, append(own[:len(own):len(own)], wait))
		conf.check(own, wait, h.durability)
		return err
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

// neverRan reports whether every command failed in a way that shows it was
// not run.
func neverRan(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !notRun(c.Err()) {
			return false
		}
	}
	return len(cmds) > 0
}

func notRun(err error) bool {
	var rerr redis.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &rerr):
		return isUnavailableReply(rerr.Error())
	}
	return isDialError(err) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted)
}

// backoff grows from REDIS_MIN_RETRY_BACKOFF to REDIS_MAX_RETRY_BACKOFF, with
// jitter so that gateway replicas do not retry in step.
func (s *Store) backoff(attempt int) time.Duration {
	d := s.minBackoff << min(attempt, 16)
	if d <= 0 || d > s.maxBackoff {
		d = s.maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// The command API runs commands its clients name. Those the command table
// says Redis flags read-only keep go-redis's retries; every other one is a
// write under the policy above: sent once, and again only when it provably
// never ran. With durable writes on, a write also waits for replicas.

// guard is cmd as the command API must send it.
func guard(cmd *redis.Cmd, write bool) redis.Cmder {
	if write {
		return once{cmd}
	}
	return cmd
}

// confirming returns ctx in which the command API's write batches are
// followed by WAIT (see confirmHook), and the confirmation to read once they
// ran; nil when no confirmation is needed.
func (s *Store) confirming(ctx context.Context, write bool) (context.Context, *confirmation) {
	if !write || s.durable.replicas == 0 {
		return ctx, nil
	}
	conf := &confirmation{}
	return context.WithValue(ctx, confirmKey{}, conf), conf
}

// wait confirms the writes that ran on conn, a transaction's own
// connection: WAIT counts the writes of the connection it runs on.
func (d durability) wait(ctx context.Context, conn *redis.Conn) error {
	switch n, err := conn.Wait(ctx, d.replicas, d.timeout).Result(); {
	case err != nil:
		return fmt.Errorf("%w: WAIT: %w", ErrUnconfirmed, err)
	case n < int64(d.replicas):
		return fmt.Errorf("%w: %d of %d replicas confirmed within %v", ErrUnconfirmed, n, d.replicas, d.timeout)
	}
	return nil
}

// processor is a client, or one node of a cluster.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
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

// sendOnce runs the command newCmd builds on p, sent again only when it
// provably never ran, and not confirmed by replicas: for what stores
// nothing, a publish.
func (s *Store) sendOnce(ctx context.Context, p processor, newCmd func(context.Context) redis.Cmder) redis.Cmder {
	for attempt := 0; ; attempt++ {
		cmd := newCmd(ctx)
		_ = p.Process(ctx, once{cmd})
		if !s.retry(ctx, writing, attempt, cmd.Err()) {
			return cmd
		}
	}
}
