package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
)

// commandTable holds the command API's table, built from Redis's
// description of its commands on first use (or at start-up, see
// LoadCommandInfo). Authorization, what is served, the retry policy,
// durable writes and metrics all read this one table.
type commandTable struct {
	mu    sync.Mutex                       // one COMMAND at a time
	table atomic.Pointer[commandapi.Table] // nil until Redis described its commands
}

// LoadCommandInfo reads Redis's description of its commands, so the first
// request that needs it does not wait. Until it succeeds, every request that
// needs it tries again.
func (s *Store) LoadCommandInfo(ctx context.Context) error {
	_, err := s.commandTable(ctx)
	return err
}

func (s *Store) commandTable(ctx context.Context) (*commandapi.Table, error) {
	ct := &s.commandInfo
	if t := ct.table.Load(); t != nil {
		return t, nil // every command of every request asks
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t := ct.table.Load(); t != nil {
		return t, nil
	}
	// Asked as the operations read, not on the command API's client: its
	// connections hold replies to MAX_REPLY_BYTES, and COMMAND's reply is
	// about 90 KB on Redis 7.0.
	v, err := runCmd(ctx, s, reading, redis.NewCmd, "command").Result()
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr) && (strings.HasPrefix(rerr.Error(), "NOPERM") || !isUnavailableReply(rerr.Error())):
		return nil, fmt.Errorf("%w: %s", commandapi.ErrNoCommandInfo, rerr.Error())
	case err != nil:
		return nil, classify("command", err)
	}
	t, err := commandapi.Parse(v, s.getKeys)
	if err != nil {
		return nil, err
	}
	ct.table.Store(t)
	return t, nil
}

// getKeys asks Redis for the keys of args with COMMAND GETKEYS, for the
// commands whose keys Redis 6 and older do not describe. The reply is read
// as it comes, since servers that lack GETKEYS answer other shapes.
func (s *Store) getKeys(ctx context.Context, args []string) ([]string, bool, error) {
	cmd := make([]any, 0, len(args)+2)
	cmd = append(cmd, "COMMAND", "GETKEYS")
	for _, a := range args {
		cmd = append(cmd, a)
	}
	v, err := s.readCommandAPI(ctx, cmd...).Result()
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr) && strings.Contains(rerr.Error(), "no key arguments"):
		return nil, true, nil
	case errors.As(err, &rerr) && !isUnavailableReply(rerr.Error()):
		return nil, false, nil // arguments Redis cannot parse: it will refuse the command too
	case err != nil:
		return nil, false, classify("command getkeys", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false, nil
	}
	keys := make([]string, len(list))
	for i, k := range list {
		if keys[i], ok = k.(string); !ok {
			return nil, false, nil
		}
	}
	return keys, true, nil
}
