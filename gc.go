package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The garbage collector's pace, for a process whose live heap is small and
// whose garbage is per request: GOGC=400 lets the heap grow to five times
// what is live between collections instead of twice, which saves about
// 7 µs of CPU per cached GET for about 10 MiB of RSS (docs/performance.md).
// The soft memory limit keeps that from growing into the container's limit:
// the collector runs as often as it must to stay under it.
const (
	defaultGOGC = 400
	// defaultMemoryLimitShare of a container's memory limit is the
	// default GOMEMLIMIT; the rest is for what the Go runtime does not
	// count (thread stacks outside Go, the binary, page cache charged to
	// the container).
	defaultMemoryLimitShare = 0.8
)

// gcSettings are GOGC and GOMEMLIMIT as the gateway applies them.
type gcSettings struct {
	Percent     int   // GOGC; -1 = off
	MemoryLimit int64 // GOMEMLIMIT in bytes; 0 = the default, from the container; -1 = none
}

// gc reads GOGC and GOMEMLIMIT, in the Go runtime's own syntax. The runtime
// reads them too, but only from the process's environment at start, never
// from .env; applying them again is harmless.
func (e *envReader) gc() gcSettings {
	s := gcSettings{Percent: defaultGOGC}
	if v := strings.TrimSpace(e.raw("GOGC")); v == "off" {
		s.Percent = -1
	} else if v != "" {
		s.Percent = e.int("GOGC", defaultGOGC, 1)
	}
	if v := strings.TrimSpace(e.raw("GOMEMLIMIT")); v == "off" {
		s.MemoryLimit = -1
	} else if v != "" {
		n, err := parseMemoryLimit(v)
		if err != nil {
			e.fail("GOMEMLIMIT", v, "want a size such as 512MiB or 2GiB (units B, KiB, MiB, GiB, TiB), or off")
		}
		s.MemoryLimit = n
	}
	return s
}

// parseMemoryLimit reads a GOMEMLIMIT value: bytes with an optional unit.
func parseMemoryLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		size   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	size := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, size = n, u.size
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * size, nil
}

// applyGC sets the collector's pace and soft memory limit; containerLimit
// is the container's memory limit in bytes, 0 when there is none. It
// returns the limit applied, math.MaxInt64 for none.
func applyGC(s gcSettings, containerLimit int64) int64 {
	debug.SetGCPercent(s.Percent)
	limit := s.MemoryLimit
	switch {
	case limit == 0 && containerLimit > 0:
		limit = int64(float64(containerLimit) * defaultMemoryLimitShare)
	case limit <= 0:
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
	return limit
}

// containerMemoryLimit is the memory limit of the process's cgroup (v2, then
// v1), or 0 when none is set or none can be read.
func containerMemoryLimit() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2), or v1's "no limit", a page count near MaxInt64.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0
		}
		return n
	}
	return 0
}
