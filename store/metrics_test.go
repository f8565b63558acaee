package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// gathered returns the metric families of reg by name.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// labelled returns the metric of mf whose labels include want, or nil.
func labelled(mf *dto.MetricFamily, want map[string]string) *dto.Metric {
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		n := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				n++
			}
		}
		if n == len(want) {
			return m
		}
	}
	return nil
}

// Against a real Redis 7.0, which does not know CLIENT MAINT_NOTIFICATIONS,
// a new connection is not a failed command; every pool shows in one family
// with a pool label; each command's latency is observed, batched or not;
// and redis_up follows Redis.
func TestStoreMetrics(t *testing.T) {
	for _, batched := range []bool{true, false} {
		name := "plain"
		if batched {
			name = "auto-pipelined"
		}
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t)
			reg := prometheus.NewRegistry()
			s, err := New(Options{URL: srv.URL(), Registry: reg, NoAutoPipeline: !batched})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			if _, err := s.PutCache(ctx, "k", []byte(`1`), time.Minute, Condition{}); err != nil {
				t.Fatalf("PutCache: %v", err)
			}
			if _, err := s.GetCache(ctx, "k"); err != nil {
				t.Fatalf("GetCache: %v", err)
			}
			if _, err := s.Command(ctx, Policy{}, []string{"GET", "k"}); err != nil {
				t.Fatalf("Command GET: %v", err)
			}

			mfs := gathered(t, reg)
			if errs := mfs["redis_gateway_redis_command_errors_total"]; errs != nil {
				for _, m := range errs.GetMetric() {
					if m.GetCounter().GetValue() > 0 {
						t.Errorf("redis_gateway_redis_command_errors_total%v = %v after commands that all succeeded", m.GetLabel(), m.GetCounter().GetValue())
					}
				}
			}
			pools := []string{"main", "command_api"}
			if batched {
				pools = append(pools, "autopipeline", "command_api_autopipeline")
			}
			for _, pool := range pools {
				if labelled(mfs["redis_gateway_redis_pool_connections"], map[string]string{"pool": pool}) == nil {
					t.Errorf("redis_gateway_redis_pool_connections{pool=%q} missing", pool)
				}
			}
			for n := range mfs {
				if strings.HasPrefix(n, "redis_gateway_command_api_redis_pool_") {
					t.Errorf("%s: the command API's pool has a family of its own, want pool=\"command_api\"", n)
				}
			}
			lat := mfs["redis_gateway_redis_command_duration_seconds"]
			for _, cmd := range []string{"get", "set"} {
				if m := labelled(lat, map[string]string{"command": cmd}); m == nil || m.GetHistogram().GetSampleCount() == 0 {
					t.Errorf("redis_gateway_redis_command_duration_seconds{command=%q}: no observation", cmd)
				}
			}
			if m := labelled(lat, map[string]string{"command": "get"}); m != nil && m.GetHistogram().GetSampleCount() < 2 {
				t.Errorf("GET observed %d times, want the cache read and the command API's", m.GetHistogram().GetSampleCount())
			}

			if got := testutil.ToFloat64(collectorOf(t, reg, "redis_gateway_redis_up")); got != 1 {
				t.Errorf("redis_gateway_redis_up = %v with Redis up, want 1", got)
			}
			srv.Stop()
			if got := testutil.ToFloat64(collectorOf(t, reg, "redis_gateway_redis_up")); got != 0 {
				t.Errorf("redis_gateway_redis_up = %v with Redis stopped, want 0", got)
			}
		})
	}
}

// collectorOf gathers reg and returns the one metric named name, as a
// collector testutil can read.
func collectorOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mf := gathered(t, reg)[name]
	if mf == nil || len(mf.GetMetric()) != 1 {
		t.Fatalf("%s: %v, want one series", name, mf)
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
}
