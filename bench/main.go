// Command bench measures the gateway against the fastest Go HTTP server this
// machine runs: it starts its own redis-server, the gateway and a ceiling
// server on loopback, drives each with wrk and prints one table.
//
//	go run ./bench [-duration 10s] [-runs 3] [-only get] [-profile dir]
//
// wrk (the Debian package wrk) and redis-server must be on PATH; bench/run
// installs them when they are missing.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

//go:embed wrk/*.lua
var scripts embed.FS

// getValue is what the GET scenarios read: 50 bytes of JSON, the size of the
// ceiling's answer, so both servers send bodies of the same length.
const getValue = `{"ok":true,"value":"gateway-gateway-gateway-gate"}`

// sessionDoc is the document of every benchmark session.
const sessionDoc = `{"user_id":9007199254740993,"roles":["reader"]}`

// scenario is one row of the table.
type scenario struct {
	name      string
	method    string // of the probe request, which checks the route first
	path      string // wrk's URL path; a script may override it
	script    string // file in wrk/, or "" for a plain GET of path
	body      string // of the probe request
	nearCache bool
	optional  bool // a 404 means "not served by this build", not a failure
}

var scenarios = []scenario{
	{name: "GET hot key", method: "GET", path: "/cache/hot", nearCache: true},
	{name: "GET 100k keys", method: "GET", path: "/cache/u0", script: "get_uniform.lua", nearCache: true},
	{name: "PUT 200 B", method: "PUT", path: "/cache/p0", script: "put.lua", nearCache: true,
		body: `{"probe":true}`},
	{name: "rate-limit incr", method: "POST", path: "/ratelimit/r0/incr?limit=1000000000&window=60", script: "ratelimit.lua", nearCache: true},
	{name: "GET session (sliding)", method: "GET", path: "/session/s0", script: "session.lua", nearCache: true},
	{name: "pipeline 10 cmds", method: "POST", path: "/redis/pipeline", script: "pipeline.lua", nearCache: true,
		body: `[["PING"]]`, optional: true},
	{name: "GET hot key, near-cache off", method: "GET", path: "/cache/hot"},
	{name: "GET 100k keys, near-cache off", method: "GET", path: "/cache/u0", script: "get_uniform.lua"},
}

type options struct {
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	runs        int
	keys        int
	sessions    int
	only        *regexp.Regexp
	profileDir  string
	envs        []string
}

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

func main() {
	var o options
	var only string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured wrk run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measured one (0 = none)")
	flag.IntVar(&o.connections, "connections", 50, "wrk -c")
	flag.IntVar(&o.threads, "threads", 2, "wrk -t")
	flag.IntVar(&o.runs, "runs", 1, "times to run every scenario; with more than one, a median table follows")
	flag.IntVar(&o.keys, "keys", 100_000, "keys of the uniform GET scenario")
	flag.IntVar(&o.sessions, "sessions", 1000, "sessions of the session scenario")
	flag.StringVar(&only, "only", "", "run only the scenarios whose name matches this regular expression")
	flag.StringVar(&o.profileDir, "profile", "", "save a CPU and an allocation profile of the gateway per scenario into this directory (costs a few percent)")
	flag.Func("env", "NAME=value for every gateway started (repeatable), such as -env LOG_LEVEL=warn", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want NAME=value")
		}
		o.envs = append(o.envs, s)
		return nil
	})
	flag.Parse()
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			fatalf("-only: %v", err)
		}
		o.only = re
	}
	if o.runs < 1 || o.duration < time.Second || o.keys < 1 || o.sessions < 1 {
		fatalf("-runs, -keys and -sessions must be at least 1 and -duration at least 1s")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, o options) error {
	for _, tool := range []string{"wrk", "redis-server", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found on PATH: run bench/run, which installs wrk and redis-server "+
				"(Debian/Ubuntu: apt-get install -y wrk redis-server)", tool)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "redis-gateway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	printMachine(o)
	step("building the gateway and the ceiling server")
	gatewayBin, ceilingBin := filepath.Join(tmp, "redis-gateway"), filepath.Join(tmp, "ceiling")
	if err := goBuild(ctx, root, gatewayBin, "."); err != nil {
		return err
	}
	if err := goBuild(ctx, root, ceilingBin, "./bench/ceiling"); err != nil {
		return err
	}
	scriptDir := filepath.Join(tmp, "wrk")
	if err := writeScripts(scriptDir); err != nil {
		return err
	}

	step("starting redis-server")
	redisAddr, redisPid, stopRedis, err := startRedis(ctx, tmp)
	if err != nil {
		return err
	}
	defer stopRedis()

	b := &bench{o: o, tmp: tmp, gatewayBin: gatewayBin, ceilingBin: ceilingBin, scriptDir: scriptDir,
		redisURL: "redis://" + redisAddr, redisPid: redisPid, token: randomToken()}
	step(fmt.Sprintf("storing %d keys and %d sessions through the gateway", o.keys, o.sessions))
	if err := b.populate(ctx); err != nil {
		return err
	}

	var runs [][]result
	for i := 1; i <= o.runs; i++ {
		rows, err := b.runOnce(ctx, i)
		if err != nil {
			return err
		}
		runs = append(runs, rows)
		fmt.Printf("\nrun %d of %d, wrk -t%d -c%d -d%s, load average now %s\n\n", i, o.runs, o.threads, o.connections, o.duration, loadavg())
		printTable(os.Stdout, rows)
	}
	if o.runs > 1 {
		fmt.Printf("\nmedian of %d runs (spread: lowest–highest)\n\n", o.runs)
		printMedian(os.Stdout, runs)
	}
	return nil
}

type bench struct {
	o          options
	tmp        string
	gatewayBin string
	ceilingBin string
	scriptDir  string
	redisURL   string
	redisPid   int
	token      string
}

// runOnce measures every scenario between two runs of the ceiling server, so
// each ratio compares runs seconds apart: the ratio of a scenario is to the
// mean of the ceiling runs just before and just after it.
func (b *bench) runOnce(ctx context.Context, n int) ([]result, error) {
	var selected []scenario
	for _, sc := range scenarios {
		if b.o.only == nil || b.o.only.MatchString(sc.name) {
			selected = append(selected, sc)
		}
	}
	step(fmt.Sprintf("run %d: ceiling", n))
	last, err := b.measureCeiling(ctx)
	if err != nil {
		return nil, err
	}
	ceilings := []result{last}
	var rows []result
	for _, sc := range selected {
		step(fmt.Sprintf("run %d: %s", n, sc.name))
		r, err := b.measureGateway(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		if !r.measured {
			rows = append(rows, r)
			continue
		}
		step(fmt.Sprintf("run %d: ceiling", n))
		next, err := b.measureCeiling(ctx)
		if err != nil {
			return nil, err
		}
		r.ratio = r.rps / ((last.rps + next.rps) / 2)
		r.note = strings.TrimSpace(fmt.Sprintf("%s (ceiling %.0f / %.0f)", r.note, last.rps, next.rps))
		rows = append(rows, r)
		ceilings = append(ceilings, next)
		last = next
	}
	var rps, p50, p99, cpu []float64
	for _, c := range ceilings {
		rps = append(rps, c.rps)
		p50 = append(p50, float64(c.p50))
		p99 = append(p99, float64(c.p99))
		cpu = append(cpu, float64(c.cpu))
	}
	ceiling := result{
		name:     "ceiling (net/http, fixed 50 B)",
		rps:      median(rps),
		p50:      time.Duration(median(p50)),
		p99:      time.Duration(median(p99)),
		cpu:      time.Duration(median(cpu)),
		ratio:    1,
		measured: true,
		note:     fmt.Sprintf("median of %d runs, %.0f–%.0f", len(ceilings), slices.Min(rps), slices.Max(rps)),
	}
	return append([]result{ceiling}, rows...), nil
}

func (b *bench) measureCeiling(ctx context.Context) (result, error) {
	cmd := exec.CommandContext(ctx, b.ceilingBin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer stopProcess(cmd)
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return result{}, fmt.Errorf("ceiling: no address: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	if b.o.warmup > 0 {
		if _, err := b.wrk(ctx, url, "", b.o.warmup, false); err != nil {
			return result{}, err
		}
	}
	cpu := processCPU(cmd.Process.Pid)
	r, err := b.wrk(ctx, url, "", b.o.duration, false)
	if err != nil {
		return result{}, err
	}
	r.rssKiB = vmHWM(cmd.Process.Pid)
	r.cpu = perRequest(processCPU(cmd.Process.Pid)-cpu, r.requests)
	return r, nil
}

func (b *bench) measureGateway(ctx context.Context, sc scenario) (result, error) {
	env := []string{"NEAR_CACHE=on"}
	if !sc.nearCache {
		env = []string{"NEAR_CACHE=off"}
	}
	pprofAddr := ""
	if b.o.profileDir != "" {
		pprofAddr = freeAddr()
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	g, err := b.startGateway(ctx, env...)
	if err != nil {
		return result{}, err
	}
	defer g.stop()

	status, err := b.probe(ctx, g.url, sc)
	if err != nil {
		return result{}, err
	}
	switch {
	case status == http.StatusNotFound && sc.optional:
		return result{name: sc.name, note: "n/a (route not served)"}, nil
	case status >= 300:
		return result{}, fmt.Errorf("probe %s %s: status %d", sc.method, sc.path, status)
	}

	script, path := "", sc.path
	if sc.script != "" {
		script = filepath.Join(b.scriptDir, sc.script)
		// Should the script fail, wrk would send plain GETs of the URL's path:
		// make those fail loudly rather than measure the wrong route.
		path = "/bench-script-not-loaded"
	}
	if b.o.warmup > 0 {
		if _, err := b.wrk(ctx, g.url+path, script, b.o.warmup, true); err != nil {
			return result{}, err
		}
	}
	var profiled sync.WaitGroup
	if pprofAddr != "" {
		seconds := max(1, int((b.o.duration-time.Second)/time.Second))
		profiled.Go(func() {
			b.saveProfile(ctx, pprofAddr, sc.name, "cpu", fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds))
		})
	}
	logged := g.lines.Load()
	cpu, redisCPU := processCPU(g.cmd.Process.Pid), processCPU(b.redisPid)
	r, err := b.wrk(ctx, g.url+path, script, b.o.duration, true)
	if err != nil {
		return result{}, err
	}
	r.cpu = perRequest(processCPU(g.cmd.Process.Pid)-cpu, r.requests)
	r.redisCPU = perRequest(processCPU(b.redisPid)-redisCPU, r.requests)
	profiled.Wait()
	if pprofAddr != "" {
		b.saveProfile(ctx, pprofAddr, sc.name, "allocs", "/debug/pprof/allocs")
	}
	r.name = sc.name
	r.rssKiB = vmHWM(g.cmd.Process.Pid)
	// Let the log pipe catch up before counting the lines of the run.
	time.Sleep(200 * time.Millisecond)
	r.logLines = g.lines.Load() - logged
	switch {
	case r.non2xx > 0:
		r.note = fmt.Sprintf("%d non-2xx answers", r.non2xx)
	case r.socketErr != "":
		r.note = "socket errors: " + r.socketErr
	}
	if r.requests > 0 {
		fmt.Printf("    %.0f requests/s, %d requests, %d access log lines\n", r.rps, r.requests, r.logLines)
	}
	return r, nil
}

// gateway is one running gateway process.
type gateway struct {
	cmd   *exec.Cmd
	url   string
	lines atomic.Int64 // lines it wrote to stdout: one per request, plus a few
	done  chan struct{}
}

func (b *bench) startGateway(ctx context.Context, extra ...string) (*gateway, error) {
	cmd := exec.CommandContext(ctx, b.gatewayBin)
	cmd.Env = append(os.Environ(),
		"REDIS_URL="+b.redisURL,
		"GATEWAY_TOKENS="+b.token,
		"HTTP_ADDR=127.0.0.1:0",
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
		"SHUTDOWN_DELAY=0s",
		"SHUTDOWN_TIMEOUT=5s",
	)
	cmd.Env = append(cmd.Env, b.o.envs...)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	// The access log goes through a pipe, as it would to a log collector: the
	// gateway pays for every line it writes.
	go func() {
		defer close(g.done)
		rd := bufio.NewReaderSize(out, 1<<16)
		for {
			line, err := rd.ReadSlice('\n')
			if len(line) > 0 && bytes.HasSuffix(line, []byte("\n")) {
				if g.lines.Add(1) < 50 && bytes.Contains(line, []byte(`"msg":"listening"`)) {
					var l struct{ Addr string }
					if json.Unmarshal(line, &l) == nil {
						addr <- l.Addr
					}
				}
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
	select {
	case a := <-addr:
		g.url = "http://" + a
	case <-g.done:
		stopProcess(cmd)
		return nil, errors.New("the gateway exited before listening")
	case <-time.After(10 * time.Second):
		stopProcess(cmd)
		return nil, errors.New("the gateway did not log its address within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(g.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, errors.New("the gateway was not ready within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	stopProcess(g.cmd)
	<-g.done
}

// stopProcess asks a process to stop, and kills it after 5 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// probe sends one request of the scenario, so a route that is not served is
// reported as such rather than measured as 404s.
func (b *bench) probe(ctx context.Context, base string, sc scenario) (int, error) {
	var body io.Reader
	if sc.body != "" {
		body = strings.NewReader(sc.body)
	}
	req, err := http.NewRequestWithContext(ctx, sc.method, base+sc.path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if sc.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// populate stores the keys and sessions the scenarios read, through a
// gateway, so the benchmark never needs to know how keys are named in Redis.
func (b *bench) populate(ctx context.Context) error {
	g, err := b.startGateway(ctx, "NEAR_CACHE=off", "CACHE_DEFAULT_TTL=86400", "SESSION_TTL=86400")
	if err != nil {
		return err
	}
	defer g.stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	put := func(path, body string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, g.url+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("PUT %s: status %d", path, resp.StatusCode)
		}
		return nil
	}
	if err := put("/cache/hot", getValue); err != nil {
		return err
	}
	paths := make(chan [2]string)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for p := range paths {
				if err := put(p[0], p[1]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var failed error
feed:
	for i := range b.o.keys + b.o.sessions {
		p := [2]string{"/cache/u" + strconv.Itoa(i), getValue}
		if i >= b.o.keys {
			p = [2]string{"/session/s" + strconv.Itoa(i-b.o.keys), sessionDoc}
		}
		select {
		case paths <- p:
		case failed = <-errs:
			break feed
		case <-ctx.Done():
			failed = ctx.Err()
			break feed
		}
	}
	close(paths)
	wg.Wait()
	close(errs)
	if failed == nil {
		failed = <-errs
	}
	return failed
}

// wrk runs wrk and parses its report.
func (b *bench) wrk(ctx context.Context, url, script string, d time.Duration, auth bool) (result, error) {
	args := []string{
		"-t" + strconv.Itoa(b.o.threads), "-c" + strconv.Itoa(b.o.connections),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency", "--timeout", "5s",
	}
	if auth {
		args = append(args, "-H", "Authorization: Bearer "+b.token)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	cmd.Env = append(os.Environ(), "BENCH_KEYS="+strconv.Itoa(b.o.keys), "BENCH_SESSIONS="+strconv.Itoa(b.o.sessions))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	if script != "" && strings.Contains(string(out), script+":") {
		return result{}, fmt.Errorf("wrk: error in %s:\n%s", filepath.Base(script), out)
	}
	return parseWrk(string(out))
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reP50     = regexp.MustCompile(`\s50%\s+([\d.]+)(us|ms|s)`)
	reP99     = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
	reTotal   = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErr = regexp.MustCompile(`Socket errors:\s+(.*)`)
)

func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.p50 = parseLatency(reP50.FindStringSubmatch(out))
	r.p99 = parseLatency(reP99.FindStringSubmatch(out))
	if m := reTotal.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		r.socketErr = strings.TrimSpace(m[1])
	}
	r.measured = true
	return r, nil
}

func parseLatency(m []string) time.Duration {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[m[2]]
	return time.Duration(v * unit)
}

func (b *bench) saveProfile(ctx context.Context, addr, scenario, kind, path string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "    profile %s: %v\n", kind, err)
		return
	}
	defer resp.Body.Close()
	name := strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(strings.ToLower(scenario))
	file := filepath.Join(b.o.profileDir, name+"."+kind+".pprof")
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "    profile %s: %v\n", kind, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		fmt.Printf("    saved %s\n", file)
	}
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

// processCPU is the CPU time a process has used, user and system, from
// /proc/<pid>/stat (in clock ticks of 10 ms on Linux).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, may hold spaces; fields count from after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func perRequest(d time.Duration, requests int64) time.Duration {
	if requests <= 0 {
		return 0
	}
	return d / time.Duration(requests)
}

// vmHWM is the peak resident set size of a process, in KiB.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func step(s string) { fmt.Printf("==> %s\n", s) }

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run bench from inside the redis-gateway module")
	}
	return filepath.Dir(mod), nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// writeScripts puts each scenario script, prefixed by common.lua, into dir:
// wrk takes one script per run.
func writeScripts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	common, err := scripts.ReadFile("wrk/common.lua")
	if err != nil {
		return err
	}
	entries, err := scripts.ReadDir("wrk")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "common.lua" {
			continue
		}
		s, err := scripts.ReadFile("wrk/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), append(append(slices.Clone(common), '\n'), s...), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func startRedis(ctx context.Context, dir string) (string, int, func(), error) {
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				once()
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		stopProcess(cmd)
		return "", 0, nil, errors.New("redis-server did not start within 10s")
	}
	return addr, cmd.Process.Pid, func() { stopProcess(cmd) }, nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomToken() string { return rand.Text() }
