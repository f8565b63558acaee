package main

import (
	"math"
	"runtime"
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
		{nil, gcSettings{}},
		{[]string{"GOGC", "100"}, gcSettings{Percent: 100}},
		{[]string{"GOGC", "off"}, gcSettings{Percent: -1}},
		{[]string{"GOMEMLIMIT", "512MiB"}, gcSettings{MemoryLimit: 512 << 20}},
		{[]string{"GOMEMLIMIT", "2GiB"}, gcSettings{MemoryLimit: 2 << 30}},
		{[]string{"GOMEMLIMIT", "1000000"}, gcSettings{MemoryLimit: 1000000}},
		{[]string{"GOMEMLIMIT", "64KiB"}, gcSettings{MemoryLimit: 64 << 10}},
		{[]string{"GOMEMLIMIT", "1TiB"}, gcSettings{MemoryLimit: 1 << 40}},
		{[]string{"GOMEMLIMIT", "off"}, gcSettings{MemoryLimit: -1}},
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

// The soft limit is the one set, or a share of the container's, or none;
// GOGC is the one set, or paced.
func TestApplyGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range []struct {
		name      string
		s         gcSettings
		container int64
		limit     int64
		gogc      int
	}{
		{"default, no container limit", gcSettings{}, 0, math.MaxInt64, maxGOGC},
		{"default in a 1 GiB container", gcSettings{}, 1 << 30, (1 << 30) * 4 / 5, maxGOGC},
		{"set", gcSettings{Percent: 150, MemoryLimit: 300 << 20}, 1 << 30, 300 << 20, 150},
		{"off in a container", gcSettings{Percent: -1, MemoryLimit: -1}, 1 << 30, math.MaxInt64, -1},
	} {
		limit, stop := applyGC(tt.s, tt.container)
		stop()
		if limit != tt.limit || debug.SetMemoryLimit(-1) != tt.limit {
			t.Errorf("%s: limit %d, want %d", tt.name, limit, tt.limit)
		}
		if got := debug.SetGCPercent(100); got != tt.gogc {
			t.Errorf("%s: GOGC %d, want %d", tt.name, got, tt.gogc)
		}
	}
}

// The pace lets the heap grow to the floor, within Go's pace and 400.
func TestGCPace(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, minGOGC},
		{1 << 20, maxGOGC},
		{6 << 20, maxGOGC},
		{8 << 20, 300},
		{12 << 20, 166},
		{16 << 20, minGOGC},
		{30 << 20, minGOGC},
		{1 << 30, minGOGC},
	} {
		if got := gcPace(tt.live); got != tt.want {
			t.Errorf("live heap %d MiB: GOGC %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}

// Pacing follows the collections: each one sets GOGC from what it left live.
func TestPaceGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := paceGC()
	defer stop()
	debug.SetGCPercent(99) // below any pace
	for range 1000 {
		runtime.GC()
		if debug.SetGCPercent(99) != 99 {
			return // paced again after a collection
		}
		runtime.Gosched() // let the cleanup run
	}
	t.Error("GOGC was not paced after 1000 collections")
}
