package store

import (
	"fmt"

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
