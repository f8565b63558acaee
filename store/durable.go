package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

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
