package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
)

// The garbage collector's pace. The gateway's live heap is small and its
// garbage is per request, so collecting less often saves CPU on every request
// (GOGC=400 saves about 7 µs per cached GET against Go's 100): by default the
// collector lets the heap grow to gcHeapFloor between collections, at most
// 5 times what is live (GOGC 400), and at least twice (GOGC 100, Go's own
// pace) once what is live needs more, as a full near-cache or thousands of
// event streams do. A fixed GOGC of 400 would grow those heaps fivefold; a
// soft memory limit low enough to stop that would make the collector run
// without pause once what is live neared it.
//
// The soft memory limit keeps any pace from growing into the container's
// limit: the collector runs as often as it must to stay under it.
const (
	gcHeapFloor = 32 << 20
	maxGOGC     = 400
	minGOGC     = 100
	// defaultMemoryLimitShare of a container's memory limit is the
	// default GOMEMLIMIT; the rest is for what the Go runtime does not
	// count (thread stacks outside Go, the binary, page cache charged to
	// the container).
	defaultMemoryLimitShare = 0.8
)

// gcSettings are GOGC and GOMEMLIMIT as the gateway applies them.
type gcSettings struct {
	Percent     int   // GOGC; 0 = paced (see gcHeapFloor); -1 = off
	MemoryLimit int64 // GOMEMLIMIT in bytes; 0 = the default, from the container; -1 = none
}

// gc reads GOGC and GOMEMLIMIT, in the Go runtime's own syntax. The runtime
// reads them too, but only from the process's environment at start, never
// from .env; applying them again is harmless.
func (e *envReader) gc() gcSettings {
	var s gcSettings
	if v := strings.TrimSpace(e.raw("GOGC")); v == "off" {
		s.Percent = -1
	} else if v != "" {
		s.Percent = e.int("GOGC", 0, 1)
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
// returns the limit applied (math.MaxInt64 for none), and the function that
// stops pacing.
func applyGC(s gcSettings, containerLimit int64) (limit int64, stop func()) {
	limit = s.MemoryLimit
	switch {
	case limit == 0 && containerLimit > 0:
		limit = int64(float64(containerLimit) * defaultMemoryLimitShare)
	case limit <= 0:
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
	if s.Percent != 0 {
		debug.SetGCPercent(s.Percent)
		return limit, func() {}
	}
	return limit, paceGC()
}

// gcPace is the GOGC that lets a heap of live bytes grow to gcHeapFloor,
// within [minGOGC, maxGOGC].
func gcPace(live uint64) int {
	if live == 0 || live >= gcHeapFloor {
		return minGOGC
	}
	return min(max(int((gcHeapFloor-live)*100/live), minGOGC), maxGOGC)
}

// paceGC sets GOGC after every collection, from the heap it left live,
// until stopped.
func paceGC() (stop func()) {
	debug.SetGCPercent(maxGOGC)
	var stopped atomic.Bool
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		// A sentinel nothing refers to: its cleanup runs once the next
		// collection has found it unreachable, and sets the next.
		runtime.AddCleanup(new(gcSentinel), func(struct{}) {
			if stopped.Load() {
				return
			}
			metrics.Read(live)
			if live[0].Value.Kind() == metrics.KindUint64 {
				debug.SetGCPercent(gcPace(live[0].Value.Uint64()))
			}
			arm()
		}, struct{}{})
	}
	arm()
	return func() { stopped.Store(true) }
}

// gcSentinel is large enough to stay out of the allocator's tiny blocks,
// which are freed together with their neighbours.
type gcSentinel struct{ _ [16]byte }

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
