package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is one measured row.
type result struct {
	name      string
	rps       float64
	p50, p99  time.Duration
	ratio     float64
	rssKiB    int64
	cpu       time.Duration // of the server per request
	redisCPU  time.Duration // of redis-server per request
	note      string
	measured  bool
	logLines  int64
	requests  int64
	non2xx    int64
	socketErr string
}

// printTable writes rows as a Markdown table.
func printTable(w io.Writer, rows []result) {
	fmt.Fprintln(w, "| scenario | requests/s | p50 | p99 | × ceiling | gateway RSS | CPU µs/request: server, redis | note |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		if !r.measured {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | – | %s |\n", r.name, r.note)
			continue
		}
		rss := "–"
		if r.rssKiB > 0 && !strings.HasPrefix(r.name, "ceiling") {
			rss = fmt.Sprintf("%.1f MiB", float64(r.rssKiB)/1024)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.2f | %s | %s | %s |\n",
			r.name, r.rps, fmtLatency(r.p50), fmtLatency(r.p99), r.ratio, rss, fmtCPU(r.cpu, r.redisCPU), r.note)
	}
}

// printMedian writes, per scenario, the median of the runs and their spread.
func printMedian(w io.Writer, runs [][]result) {
	fmt.Fprintln(w, "| scenario | requests/s | p50 | p99 | × ceiling | gateway RSS | CPU µs/request: server, redis |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for i, first := range runs[0] {
		if !first.measured {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | %s |\n", first.name, first.note)
			continue
		}
		var rps, ratio, p50, p99, rss, cpu, redisCPU []float64
		for _, rows := range runs {
			r := rows[i]
			rps = append(rps, r.rps)
			ratio = append(ratio, r.ratio)
			p50 = append(p50, float64(r.p50))
			p99 = append(p99, float64(r.p99))
			rss = append(rss, float64(r.rssKiB)/1024)
			cpu = append(cpu, float64(r.cpu))
			redisCPU = append(redisCPU, float64(r.redisCPU))
		}
		rssCell, ratioCell := "–", "1"
		if !strings.HasPrefix(first.name, "ceiling") {
			rssCell = fmt.Sprintf("%.1f MiB (%.1f–%.1f)", median(rss), slices.Min(rss), slices.Max(rss))
			ratioCell = fmt.Sprintf("%.2f (%.2f–%.2f)", median(ratio), slices.Min(ratio), slices.Max(ratio))
		}
		fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %s | %s (%s–%s) | %s | %s | %s |\n",
			first.name, median(rps), slices.Min(rps), slices.Max(rps),
			fmtLatency(time.Duration(median(p50))),
			fmtLatency(time.Duration(median(p99))), fmtLatency(time.Duration(slices.Min(p99))), fmtLatency(time.Duration(slices.Max(p99))),
			ratioCell, rssCell, fmtCPU(time.Duration(median(cpu)), time.Duration(median(redisCPU))))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtCPU(server, redis time.Duration) string {
	if redis == 0 {
		return fmt.Sprintf("%.1f", float64(server)/1e3)
	}
	return fmt.Sprintf("%.1f, %.1f", float64(server)/1e3, float64(redis)/1e3)
}

func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func printMachine(o options) {
	fmt.Printf("machine: %d CPUs (nproc), %s\n", runtime.NumCPU(), cpuModel())
	fmt.Printf("go: %s; %s; %s\n", goVersion(), firstLine("redis-server", "--version"), firstLine("wrk", "--version"))
	fmt.Printf("load average before: %s\n", loadavg())
	fmt.Printf("wrk -t%d -c%d, %s per scenario after %s of warm-up; %d keys, %d sessions\n\n",
		o.threads, o.connections, o.duration, o.warmup, o.keys, o.sessions)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
