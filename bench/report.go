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

// run is what one run of every scenario measured.
type run struct {
	rows   []result
	fanout *fanoutResult // nil when the fan-out scenario did not run
}

func (r run) row(name string) (result, bool) {
	for _, x := range r.rows {
		if x.name == name && x.measured {
			return x, true
		}
	}
	return result{}, false
}

// printRun writes the tables of one run, in Markdown.
func printRun(w io.Writer, r run, o options) {
	if len(r.rows) > 0 {
		printTable(w, r.rows)
		if rs := ratios(o); len(rs) > 0 {
			fmt.Fprint(w, "\nRatios within the run:\n\n")
			fmt.Fprintln(w, "| ratio | requests/s | ÷ requests/s | ratio | p99 | ÷ p99 |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
			for _, rr := range rs {
				a, okA := r.row(rr.num)
				b, okB := r.row(rr.den)
				if !okA || !okB {
					fmt.Fprintf(w, "| %s | – | – | – | – | – |\n", rr.label)
					continue
				}
				fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %s | %s |\n",
					rr.label, a.rps, b.rps, a.rps/b.rps, fmtLatency(a.p99), fmtLatency(b.p99))
			}
		}
	}
	if r.fanout != nil {
		fmt.Fprintln(w)
		printFanout(w, []fanoutResult{*r.fanout}, o)
	}
}

// printTable writes rows as a Markdown table.
func printTable(w io.Writer, rows []result) {
	fmt.Fprintln(w, "| scenario | requests/s | p50 | p99 | × ceiling | server RSS (peak) | CPU µs/request: server, redis | note |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		if !r.measured {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | – | %s |\n", r.name, r.note)
			continue
		}
		rss := "–"
		if r.rssKiB > 0 && r.name != ceilingName {
			rss = fmt.Sprintf("%.1f MiB", float64(r.rssKiB)/1024)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.2f | %s | %s | %s |\n",
			r.name, r.rps, fmtLatency(r.p50), fmtLatency(r.p99), r.ratio, rss, fmtCPU(r.cpu, r.redisCPU), r.note)
	}
}

// printMedians writes, per scenario and per ratio, the median of the runs
// and their spread.
func printMedians(w io.Writer, runs []run, o options) {
	if len(runs[0].rows) > 0 {
		printMedian(w, runs)
		if rs := ratios(o); len(rs) > 0 {
			fmt.Fprint(w, "\nRatios within each run, median of the runs:\n\n")
			fmt.Fprintln(w, "| ratio | median (lowest–highest) |")
			fmt.Fprintln(w, "|---|---:|")
			for _, rr := range rs {
				fmt.Fprintf(w, "| %s | %s |\n", rr.label, spread(rr.values(runs), "%.2f"))
			}
		}
	}
	var fs []fanoutResult
	for _, r := range runs {
		if r.fanout != nil {
			fs = append(fs, *r.fanout)
		}
	}
	if len(fs) > 0 {
		fmt.Fprintln(w)
		printFanout(w, fs, o)
	}
}

// printMedian writes, per scenario, the median of the runs and their spread.
func printMedian(w io.Writer, runs []run) {
	fmt.Fprintln(w, "| scenario | requests/s | p50 | p99 | × ceiling | server RSS (peak) | CPU µs/request: server, redis |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for i, first := range runs[0].rows {
		if !first.measured {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | %s |\n", first.name, first.note)
			continue
		}
		var rps, ratio, p50, p99, rss, cpu, redisCPU []float64
		for _, run := range runs {
			r := run.rows[i]
			rps = append(rps, r.rps)
			ratio = append(ratio, r.ratio)
			p50 = append(p50, float64(r.p50))
			p99 = append(p99, float64(r.p99))
			rss = append(rss, float64(r.rssKiB)/1024)
			cpu = append(cpu, float64(r.cpu))
			redisCPU = append(redisCPU, float64(r.redisCPU))
		}
		rssCell, ratioCell := "–", "1"
		if first.name != ceilingName {
			rssCell = fmt.Sprintf("%.1f MiB (%.1f–%.1f)", median(rss), slices.Min(rss), slices.Max(rss))
			ratioCell = spread(ratio, "%.2f")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s (%s–%s) | %s | %s | %s |\n",
			first.name, spread(rps, "%.0f"),
			fmtLatency(time.Duration(median(p50))),
			fmtLatency(time.Duration(median(p99))), fmtLatency(time.Duration(slices.Min(p99))), fmtLatency(time.Duration(slices.Max(p99))),
			ratioCell, rssCell, fmtCPU(time.Duration(median(cpu)), time.Duration(median(redisCPU))))
	}
}

// spread is the median of xs, with the lowest and highest when they differ.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "–"
	}
	m := fmt.Sprintf(format, median(xs))
	if slices.Min(xs) == slices.Max(xs) {
		return m
	}
	return fmt.Sprintf("%s ("+format+"–"+format+")", m, slices.Min(xs), slices.Max(xs))
}

// ratioRow is a ratio of two scenarios of the same run: num's requests/s
// over den's.
type ratioRow struct {
	label    string
	num, den string
	want     float64 // target, at least this (0: none)
}

// ratios are the same-run comparisons of the scenarios selected, each
// written as the gateway's figure over what it is compared with.
func ratios(o options) []ratioRow {
	var out []ratioRow
	for _, sc := range o.selected() {
		switch {
		case sc.vs == "":
		case sc.server == onWebdis:
			out = append(out, ratioRow{label: "gateway " + sc.vs + " ÷ " + sc.name, num: sc.vs, den: sc.name})
		default:
			out = append(out, ratioRow{label: sc.name + " ÷ " + sc.vs, num: sc.name, den: sc.vs, want: sc.wantVs})
		}
	}
	return out
}

// values is the ratio in each run where both sides were measured.
func (rr ratioRow) values(runs []run) []float64 {
	var vs []float64
	for _, r := range runs {
		a, okA := r.row(rr.num)
		b, okB := r.row(rr.den)
		if okA && okB && b.rps > 0 {
			vs = append(vs, a.rps/b.rps)
		}
	}
	return vs
}

// printFanout writes the fan-out scenario's figures: of one run, or the
// medians of several.
func printFanout(w io.Writer, fs []fanoutResult, o options) {
	col := func(f func(fanoutResult) float64, format string) string {
		var xs []float64
		for _, r := range fs {
			xs = append(xs, f(r))
		}
		return spread(xs, format)
	}
	lat := func(f func(fanoutResult) time.Duration) string {
		var xs []float64
		for _, r := range fs {
			xs = append(xs, float64(f(r)))
		}
		s := fmtLatency(time.Duration(median(xs)))
		if slices.Min(xs) != slices.Max(xs) {
			s += fmt.Sprintf(" (%s–%s)", fmtLatency(time.Duration(slices.Min(xs))), fmtLatency(time.Duration(slices.Max(xs))))
		}
		return s
	}
	fmt.Fprintf(w, "Fan-out: %d SSE streams on one channel, %d messages/s published through the gateway for %s:\n\n",
		o.subscribers, o.publishRate, o.duration)
	fmt.Fprintln(w, "| streams open | deliveries | expected | publish-to-delivery p50 | p99 | max | Redis connections added | of them subscribed | gateway RSS (peak) | CPU µs/delivery: gateway, bench |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %s of %d | %s | %s | %s | %s | %s | %s | %s | %s MiB | %s, %s |\n",
		col(func(r fanoutResult) float64 { return float64(r.opened) }, "%.0f"), o.subscribers,
		col(func(r fanoutResult) float64 { return float64(r.delivered) }, "%.0f"),
		col(func(r fanoutResult) float64 { return float64(r.expected) }, "%.0f"),
		lat(func(r fanoutResult) time.Duration { return r.p50 }),
		lat(func(r fanoutResult) time.Duration { return r.p99 }),
		lat(func(r fanoutResult) time.Duration { return r.maxLatency }),
		col(func(r fanoutResult) float64 { return float64(r.redisConns) }, "%.0f"),
		col(func(r fanoutResult) float64 { return float64(r.pubsubConns) }, "%.0f"),
		col(func(r fanoutResult) float64 { return float64(r.rssKiB) / 1024 }, "%.0f"),
		col(func(r fanoutResult) float64 { return float64(r.cpu) / 1e3 }, "%.1f"),
		col(func(r fanoutResult) float64 { return float64(r.benchCPU) / 1e3 }, "%.1f"))
	for i, r := range fs {
		var notes []string
		for why, n := range r.refused {
			notes = append(notes, fmt.Sprintf("%d not opened (%s)", n, why))
		}
		slices.Sort(notes)
		if r.endedEarly > 0 {
			notes = append(notes, fmt.Sprintf("%d ended by the gateway", r.endedEarly))
		}
		if r.duplicated > 0 {
			notes = append(notes, fmt.Sprintf("%d deliveries duplicated", r.duplicated))
		}
		if r.failed > 0 {
			notes = append(notes, fmt.Sprintf("%d publishes failed", r.failed))
		}
		notes = append(notes, fmt.Sprintf("opened in %s", r.openTime.Round(time.Millisecond)))
		prefix := ""
		if len(fs) > 1 {
			prefix = fmt.Sprintf("run %d: ", i+1)
		}
		fmt.Fprintf(w, "\n%s%s; %d of %d messages published.\n", prefix, strings.Join(notes, ", "), r.published, o.messages())
	}
}

// printTargets writes each target of the benchmark with the median of what
// the runs measured, and whether it was met.
func printTargets(w io.Writer, runs []run, o options) {
	fmt.Fprintln(w, "| target | wanted | measured | |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(name, wanted string, xs []float64, format string, met func(float64) bool) {
		if len(xs) == 0 {
			fmt.Fprintf(w, "| %s | %s | – | not measured |\n", name, wanted)
			return
		}
		verdict := "missed"
		if met(median(xs)) {
			verdict = "met"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, wanted, spread(xs, format), verdict)
	}
	atLeast := func(t float64) func(float64) bool { return func(x float64) bool { return x >= t } }
	atMost := func(t float64) func(float64) bool { return func(x float64) bool { return x <= t } }

	selected := o.selected()
	for _, sc := range selected {
		if sc.wantCeiling == 0 {
			continue
		}
		var xs []float64
		for _, r := range runs {
			if x, ok := r.row(sc.name); ok {
				xs = append(xs, x.ratio)
			}
		}
		row(sc.name+" × ceiling", fmt.Sprintf("≥ %.2f", sc.wantCeiling), xs, "%.2f", atLeast(sc.wantCeiling))
	}
	for _, rr := range ratios(o) {
		if rr.want > 0 {
			row(rr.label, fmt.Sprintf("≥ %.2f", rr.want), rr.values(runs), "%.2f", atLeast(rr.want))
		}
	}
	if len(selected) > 0 {
		// The highest peak of the gateway scenarios in each run.
		var rss []float64
		peakOf := map[string]int{}
		reported := true
		for _, r := range runs {
			peak, at := 0.0, ""
			for _, x := range r.rows {
				if !x.measured {
					continue
				}
				if x.p99 <= 0 {
					reported = false
				}
				if x.name == ceilingName || strings.HasPrefix(x.name, "webdis") {
					continue
				}
				if v := float64(x.rssKiB) / 1024; v > peak {
					peak, at = v, x.name
				}
			}
			rss = append(rss, peak)
			peakOf[at]++
		}
		var at []string
		for name := range peakOf {
			at = append(at, name)
		}
		slices.Sort(at)
		row("gateway RSS under the benchmark, highest peak (in "+strings.Join(at, "; ")+")", "≤ 64 MiB", rss, "%.1f MiB", atMost(64))
		verdict := "missed"
		if reported {
			verdict = "met"
		}
		fmt.Fprintf(w, "| p99 latency reported for every scenario | all | %s | %s |\n",
			map[bool]string{true: "all", false: "some missing"}[reported], verdict)
	}
	var fs []fanoutResult
	for _, r := range runs {
		if r.fanout != nil {
			fs = append(fs, *r.fanout)
		}
	}
	if len(fs) == 0 {
		return
	}
	vals := func(f func(fanoutResult) float64) []float64 {
		var xs []float64
		for _, r := range fs {
			xs = append(xs, f(r))
		}
		return xs
	}
	n := float64(o.subscribers)
	row("fan-out: streams open", fmt.Sprintf("%d", o.subscribers),
		vals(func(r fanoutResult) float64 { return float64(r.opened) }), "%.0f", atLeast(n))
	row("fan-out: Redis connections used for pub/sub", "≤ 4",
		vals(func(r fanoutResult) float64 { return float64(r.pubsubConns) }), "%.0f", atMost(4))
	// A publish that failed is a message lost too.
	sent := float64(o.messages())
	row("fan-out: every message delivered to every subscriber (deliveries ÷ streams wanted × messages sent)", "1",
		vals(func(r fanoutResult) float64 { return float64(r.delivered) / (n * sent) }), "%.4f", atLeast(1))
	row("fan-out: publish-to-delivery p99", "≤ 50 ms",
		vals(func(r fanoutResult) float64 { return float64(r.p99) / 1e6 }), "%.1f ms", atMost(50))
	row("fan-out: gateway RSS (peak)", "≤ 256 MiB",
		vals(func(r fanoutResult) float64 { return float64(r.rssKiB) / 1024 }), "%.0f MiB", atMost(256))
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
	fmt.Printf("wrk -t%d -c%d, %s per scenario after %s of warm-up; %d keys, %d sessions; fan-out: %d streams, %d messages/s\n",
		o.threads, o.connections, o.duration, o.warmup, o.keys, o.sessions, o.subscribers, o.publishRate)
	webdis := "not installed"
	if _, err := exec.LookPath("webdis"); err == nil {
		webdis = "installed (" + debianVersion("webdis") + ")"
	}
	fmt.Printf("webdis: %s; open files: ulimit -n %s\n\n", webdis, firstLine("sh", "-c", "ulimit -n"))
}

// debianVersion is the version of an installed Debian package, if known.
func debianVersion(pkg string) string {
	v := firstLine("dpkg-query", "-W", "-f=${Version}", pkg)
	if v == "" || strings.Contains(v, "no packages") || strings.Contains(v, "not found") {
		return "version unknown"
	}
	return v
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
