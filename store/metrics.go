package store

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
)

// poolCollector exports the connection pool's own counters at scrape time, so
// the hot path pays nothing for them.
type poolCollector struct {
	client redis.UniversalClient

	hits, misses, timeouts, total, idle, stale *prometheus.Desc
}

func newPoolCollector(namespace string, client redis.UniversalClient) *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "redis_pool", name), help, nil, nil)
	}
	return &poolCollector{
		client:   client,
		hits:     desc("hits_total", "Times a free connection was found in the pool."),
		misses:   desc("misses_total", "Times no free connection was found in the pool."),
		timeouts: desc("timeouts_total", "Times a wait for a pool connection timed out."),
		total:    desc("connections", "Connections in the pool."),
		idle:     desc("idle_connections", "Idle connections in the pool."),
		stale:    desc("stale_connections_removed_total", "Stale connections removed from the pool."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.client.PoolStats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.CounterValue, float64(s.StaleConns))
}

// errorHook counts commands that failed for a reason other than a missing key.
// Command names go through commandLabel: clients of the command API choose
// them, and must not grow the number of series.
type errorHook struct {
	errors *prometheus.CounterVec
}

// DialHook passes dials through: the dialer counts its own failures, on
// every node of a cluster too.
func (h errorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if countable(err) {
			h.errors.WithLabelValues(commandapi.Label(cmd.Name())).Inc()
		}
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if countable(cmd.Err()) {
				h.errors.WithLabelValues(commandapi.Label(cmd.Name())).Inc()
			}
		}
		return err
	}
}

// countable leaves out a missing key, and NOSCRIPT, which redis.Script
// answers by sending the script itself.
func countable(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT")
}

// batchErrors counts, after the fact, the failures of commands sent through
// the auto-pipeliner. Its client carries no hook: with any hook on it, the
// auto-pipeliner walks the stack of every waiting caller (to spot a hook
// reading results on the batch's own goroutine), which cost a fifth of the
// gateway's CPU under load. Dials are counted by the dialer, as for every
// client.
type batchErrors struct {
	vec *prometheus.CounterVec // nil = no metrics
}

// count looks at commands that have completed.
func (c batchErrors) count(cmds ...redis.Cmder) {
	if c.vec == nil {
		return
	}
	for _, cmd := range cmds {
		if countable(cmd.Err()) {
			c.vec.WithLabelValues(commandapi.Label(cmd.Name())).Inc()
		}
	}
}
