package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// enableAutoPipeline sends the single commands of concurrent requests to
// Redis in shared pipelines: one write and one read carry many requests'
// commands instead of one round trip each, which is where a gateway under
// load spends its time. Multi-command operations (write, Pipelined) keep
// their own pipelines on the main client.
//
// The auto-pipeliner gets a client of its own, to the same deployment with
// the same options but without hooks (see batchErrors), and the deferred face
// with the ordered default: one batch in flight at a time, the next one
// filling meanwhile. Submit and WaitContext let every command keep its
// request's deadline, which the blocking face ignores once a command is
// queued.
//
// On Redis Cluster (cluster non-nil) the client is a cluster client:
// go-redis groups the commands by slot, so each batch goes to the one
// primary that serves them, and follows MOVED and ASK during a resharding.
// Without reloadHook on that client, the store asks it to reload its slot
// map itself when a batched command finds a node gone (reloadAfter).
func (s *Store) enableAutoPipeline(base redis.Options, cluster *redis.ClusterOptions) error {
	var c redis.UniversalClient
	var ap *redis.AutoPipeliner
	var err error
	if cluster != nil {
		cc := newClusterClient(*cluster)
		c = cc
		ap, err = cc.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	} else {
		single := redis.NewClient(&base)
		c = single
		ap, err = single.AsyncAutoPipelineWithOptions(redis.DefaultAutoPipelineOptions())
	}
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("auto-pipelining: %w", err)
	}
	s.ap, s.apClient = ap, c
	s.closers = append([]func() error{ap.Close, c.Close}, s.closers...)
	return nil
}

// reloadAfter does for a batched command what reloadHook does for the main
// client's: on a cluster, a node that cannot be reached makes the
// auto-pipeliner's client reload its slot map, so the next batch finds the
// replica that took over.
func (s *Store) reloadAfter(ctx context.Context, err error) {
	if cc, ok := s.apClient.(*redis.ClusterClient); ok {
		reloadHook{cc}.check(ctx, err)
	}
}
