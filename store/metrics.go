package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
	"github.com/redis-gateway/redis-gateway/internal/series"
)

// latencyBuckets resolve a round trip on one machine (tens of microseconds)
// as well as a command that waits out its timeout.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// poolCollector exports a connection pool's own counters at scrape time, so
// the hot path pays nothing for them. Every pool of the gateway shares the
// redis_gateway_redis_pool_* families, told apart by their pool label.
type poolCollector struct {
	client redis.UniversalClient

	hits, misses, timeouts, total, idle, stale *prometheus.Desc
}

// newPoolCollector exports client's pool with the label pool=name.
func newPoolCollector(name string, client redis.UniversalClient) *poolCollector {
	desc := func(metric, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("redis_gateway", "redis_pool", metric), help, nil, prometheus.Labels{"pool": name})
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

// upCollector asks Redis at scrape time whether it answers: the gauge an
// alert on an unreachable Redis needs, at one PING per scrape.
type upCollector struct {
	ping    func(context.Context) error
	timeout time.Duration
	up      *prometheus.Desc
}

func newUpCollector(ping func(context.Context) error, timeout time.Duration) *upCollector {
	return &upCollector{ping: ping, timeout: timeout, up: prometheus.NewDesc("redis_gateway_redis_up",
		"1 when Redis answered PING at scrape time (on a cluster: some primary did), else 0.", nil, nil)}
}

func (c *upCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.up }

func (c *upCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 0.0
	if c.ping(ctx) == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}

// latencyHook observes how long each command took, by command name (through
// commandapi.Label, so clients of the command API cannot grow the series). The
// commands of a pipeline share its round trip.
type latencyHook struct {
	seconds *prometheus.HistogramVec
}

func (h latencyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h latencyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.seconds.WithLabelValues(commandapi.Label(cmd.Name())).Observe(time.Since(start).Seconds())
		return err
	}
}

func (h latencyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		d := time.Since(start).Seconds()
		for _, cmd := range cmds {
			h.seconds.WithLabelValues(commandapi.Label(cmd.Name())).Observe(d)
		}
		return err
	}
}

// errorHook counts commands that failed for a reason other than a missing key.
// Command names go through commandapi.Label: clients of the command API choose
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
// client. Its children are cached by command label: every command of every
// request passes here.
type batchErrors struct {
	vec     *prometheus.CounterVec   // nil = no metrics
	latency *prometheus.HistogramVec // nil = no metrics

	failures series.Cache[string, prometheus.Counter]
	seconds  series.Cache[string, prometheus.Observer]
}

// observe records the latency of commands that completed, batched since
// start: the time a request waited for them, queueing included.
func (c *batchErrors) observe(start time.Time, cmds ...redis.Cmder) {
	if c.latency == nil {
		return
	}
	d := time.Since(start).Seconds()
	for _, cmd := range cmds {
		c.seconds.Get(commandapi.Label(cmd.Name()), func(label string) prometheus.Observer {
			return c.latency.WithLabelValues(label)
		}).Observe(d)
	}
}

// count looks at commands that have completed.
func (c *batchErrors) count(cmds ...redis.Cmder) {
	if c.vec == nil {
		return
	}
	for _, cmd := range cmds {
		if countable(cmd.Err()) {
			c.failures.Get(commandapi.Label(cmd.Name()), func(label string) prometheus.Counter {
				return c.vec.WithLabelValues(label)
			}).Inc()
		}
	}
}
