package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestConfigGC(t *testing.T) {
	base := map[string]string{"REDIS_URL": "memory://", "GATEWAY_AUTH": "none"}
	for _, tt := range []struct {
		kv   []string
		want gcSettings
	}{
		{nil, gcSettings{Percent: 400}},
		{[]string{"GOGC", "100"}, gcSettings{Percent: 100}},
		{[]string{"GOGC", "off"}, gcSettings{Percent: -1}},
		{[]string{"GOMEMLIMIT", "512MiB"}, gcSettings{Percent: 400, MemoryLimit: 512 << 20}},
		{[]string{"GOMEMLIMIT", "2GiB"}, gcSettings{Percent: 400, MemoryLimit: 2 << 30}},
		{[]string{"GOMEMLIMIT", "1000000"}, gcSettings{Percent: 400, MemoryLimit: 1000000}},
		{[]string{"GOMEMLIMIT", "64KiB"}, gcSettings{Percent: 400, MemoryLimit: 64 << 10}},
		{[]string{"GOMEMLIMIT", "1TiB"}, gcSettings{Percent: 400, MemoryLimit: 1 << 40}},
		{[]string{"GOMEMLIMIT", "off"}, gcSettings{Percent: 400, MemoryLimit: -1}},
	} {
		cfg, err := loadConfig(env(withPairs(base, tt.kv...)), false)
		if err != nil || cfg.GC != tt.want {
			t.Errorf("%v: %+v, %v; want %+v", tt.kv, cfg.GC, err, tt.want)
		}
	}
	for _, bad := range [][2]string{{"GOGC", "0"}, {"GOGC", "-5"}, {"GOGC", "fast"}, {"GOMEMLIMIT", "512MB"}, {"GOMEMLIMIT", "0"},
		{"GOMEMLIMIT", "-1GiB"}, {"GOMEMLIMIT", "lots"}, {"GOMEMLIMIT", "9000000TiB"}} {
		if _, err := loadConfig(env(withPairs(base, bad[0], bad[1])), false); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v, want an error naming it", bad[0], bad[1], err)
		}
	}
}

// The soft limit is the one set, or a share of the container's, or none.
func TestApplyGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range []struct {
		name      string
		s         gcSettings
		container int64
		want      int64
	}{
		{"default, no container limit", gcSettings{Percent: 400}, 0, math.MaxInt64},
		{"default in a 1 GiB container", gcSettings{Percent: 400}, 1 << 30, (1 << 30) * 4 / 5},
		{"set", gcSettings{Percent: 400, MemoryLimit: 300 << 20}, 1 << 30, 300 << 20},
		{"off in a container", gcSettings{Percent: 400, MemoryLimit: -1}, 1 << 30, math.MaxInt64},
	} {
		if got := applyGC(tt.s, tt.container); got != tt.want || debug.SetMemoryLimit(-1) != tt.want {
			t.Errorf("%s: limit %d, want %d", tt.name, got, tt.want)
		}
		if got := debug.SetGCPercent(-1); got != tt.s.Percent {
			t.Errorf("%s: GOGC %d, want %d", tt.name, got, tt.s.Percent)
		}
	}
}
