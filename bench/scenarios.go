package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// getValue is what the GET scenarios read: 50 bytes of JSON, the size of the
// ceiling's answer, so both servers send bodies of the same length.
const getValue = `{"ok":true,"value":"gateway-gateway-gateway-gate"}`

// sessionDoc is the document of every benchmark session.
const sessionDoc = `{"user_id":9007199254740993,"roles":["reader"]}`

// server is what a scenario measures.
type server int

const (
	onSingle  server = iota // the gateway on the single redis-server
	onCluster               // the gateway on the three-primary cluster
	onWebdis                // the peer webdis, on the single redis-server
)

// scenario is one row of the table.
type scenario struct {
	name      string
	server    server
	method    string // of the probe request, which checks the route first
	path      string // wrk's URL path; a script may override it
	script    string // file in wrk/, or "" for a plain GET of path
	body      string // of the probe request
	nearCache bool
	optional  bool // a 404 means "not served by this build", not a failure

	// wantCeiling is the target for the ratio to the ceiling (0: none).
	wantCeiling float64
	// vs names the scenario measured just before this one that it is
	// compared with: this one's requests/s over vs's, or for a peer vs's over
	// this one's, so the ratio always reads as the gateway's. Choosing this
	// scenario with -only measures vs too.
	vs     string
	wantVs float64 // target for that ratio (0: none)
}

var scenarios = []scenario{
	{name: "GET hot key", method: "GET", path: "/cache/hot", nearCache: true, wantCeiling: 0.80},
	{name: "GET hot key, cluster", server: onCluster, method: "GET", path: "/cache/hot", nearCache: true,
		vs: "GET hot key", wantVs: 0.85},
	{name: "GET 100k keys", method: "GET", path: "/cache/u0", script: "get_uniform.lua", nearCache: true},
	{name: "PUT 200 B", method: "PUT", path: "/cache/p0", script: "put.lua", nearCache: true,
		body: `{"probe":true}`, wantCeiling: 0.50},
	{name: "PUT 200 B, cluster", server: onCluster, method: "PUT", path: "/cache/p0", script: "put.lua", nearCache: true,
		body: `{"probe":true}`, vs: "PUT 200 B", wantVs: 0.85},
	{name: "webdis: SET 200 B", server: onWebdis, method: "PUT", path: "/SET/bench:webdis:p0", script: "webdis_set.lua",
		body: `{"probe":true}`, vs: "PUT 200 B"},
	{name: "rate-limit incr", method: "POST", path: "/ratelimit/r0/incr?limit=1000000000&window=60", script: "ratelimit.lua",
		nearCache: true, wantCeiling: 0.50},
	{name: "rate-limit incr, cluster", server: onCluster, method: "POST", path: "/ratelimit/r0/incr?limit=1000000000&window=60",
		script: "ratelimit.lua", nearCache: true, vs: "rate-limit incr", wantVs: 0.85},
	{name: "webdis: INCR", server: onWebdis, method: "GET", path: "/INCR/bench:webdis:r0", script: "webdis_incr.lua",
		vs: "rate-limit incr"},
	{name: "GET session (sliding)", method: "GET", path: "/session/s0", script: "session.lua", nearCache: true},
	{name: "pipeline 10 cmds", method: "POST", path: "/redis/pipeline", script: "pipeline.lua", nearCache: true,
		body: `[["PING"]]`, optional: true},
	{name: "GET hot key, near-cache off", method: "GET", path: "/cache/hot"},
	{name: "/redis GET, one command", method: "GET", path: "/redis/get/" + commandKey, optional: true,
		vs: "GET hot key, near-cache off", wantVs: 0.90},
	{name: "webdis: GET a key", server: onWebdis, method: "GET", path: "/GET/" + webdisKey,
		vs: "GET hot key, near-cache off"},
	{name: "GET 100k keys, near-cache off", method: "GET", path: "/cache/u0", script: "get_uniform.lua"},
}

// The keys the command API and webdis read: each stores its own, through its
// own interface, so the bench never needs to know how the cache names keys
// in Redis.
const (
	commandKey = "bench:command:hot"
	webdisKey  = "bench:webdis:hot"
)

// selected is the scenarios -only chooses, with the ones they are compared
// with, in the order of the table.
func (o options) selected() []scenario {
	want := map[string]bool{}
	for _, sc := range scenarios {
		if o.only == nil || o.only.MatchString(sc.name) {
			want[sc.name] = true
			if sc.vs != "" {
				want[sc.vs] = true
			}
		}
	}
	var out []scenario
	for _, sc := range scenarios {
		if want[sc.name] {
			out = append(out, sc)
		}
	}
	return out
}

// runOnce measures every scenario between two runs of the ceiling server, so
// each ratio compares runs seconds apart: the ratio of a scenario is to the
// mean of the ceiling runs just before and just after it.
func (b *bench) runOnce(ctx context.Context, n int) (run, error) {
	selected := b.o.selected()
	var rows []result
	if len(selected) > 0 {
		step(fmt.Sprintf("run %d: ceiling", n))
		last, err := b.measureCeiling(ctx)
		if err != nil {
			return run{}, err
		}
		ceilings := []result{last}
		for _, sc := range selected {
			step(fmt.Sprintf("run %d: %s", n, sc.name))
			r, err := b.measure(ctx, sc)
			if err != nil {
				return run{}, fmt.Errorf("%s: %w", sc.name, err)
			}
			if !r.measured {
				rows = append(rows, r)
				continue
			}
			step(fmt.Sprintf("run %d: ceiling", n))
			next, err := b.measureCeiling(ctx)
			if err != nil {
				return run{}, err
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
			name:     ceilingName,
			rps:      median(rps),
			p50:      time.Duration(median(p50)),
			p99:      time.Duration(median(p99)),
			cpu:      time.Duration(median(cpu)),
			ratio:    1,
			measured: true,
			note:     fmt.Sprintf("median of %d runs, %.0f–%.0f", len(ceilings), slices.Min(rps), slices.Max(rps)),
		}
		rows = append([]result{ceiling}, rows...)
	}
	out := run{rows: rows}
	if b.o.fanout() {
		step(fmt.Sprintf("run %d: %s", n, fanoutName))
		f, err := b.measureFanout(ctx)
		if err != nil {
			return run{}, fmt.Errorf("%s: %w", fanoutName, err)
		}
		out.fanout = &f
	}
	return out, nil
}

const ceilingName = "ceiling (net/http, fixed 50 B)"

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

// measure starts the scenario's server afresh, so its peak RSS is this
// scenario's, checks the route with one request, and drives it with wrk.
func (b *bench) measure(ctx context.Context, sc scenario) (result, error) {
	if sc.server == onWebdis {
		if b.webdisMissing {
			return result{name: sc.name, note: "n/a (webdis not installed)"}, nil
		}
		cmd, url, err := b.startWebdis(ctx)
		if err != nil {
			return result{}, err
		}
		defer stopProcess(cmd)
		// Its own copy of the value the GET scenarios read.
		if status, err := b.probe(ctx, url, scenario{method: "PUT", path: "/SET/" + webdisKey, body: getValue}); err != nil || status != http.StatusOK {
			return result{}, fmt.Errorf("storing %s through webdis: status %d, %v", webdisKey, status, err)
		}
		return b.drive(ctx, sc, cmd.Process.Pid, url, "", false, nil)
	}

	env := []string{"NEAR_CACHE=on"}
	if !sc.nearCache {
		env = []string{"NEAR_CACHE=off"}
	}
	pprofAddr := ""
	if b.o.profileDir != "" {
		var err error
		if pprofAddr, err = freeAddr(); err != nil {
			return result{}, err
		}
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	g, err := b.startGateway(ctx, sc.server == onCluster, env...)
	if err != nil {
		return result{}, err
	}
	defer g.stop()
	r, err := b.drive(ctx, sc, g.cmd.Process.Pid, g.url, pprofAddr, true, &g.lines)
	if err != nil || !r.measured {
		return r, err
	}
	if r.requests > 0 {
		fmt.Printf("    %.0f requests/s, %d requests, %d access log lines\n", r.rps, r.requests, r.logLines)
	}
	return r, nil
}

// drive runs wrk against the server with pid at url, after a probe and a
// warm-up, and notes what the server and Redis spent, and how many lines
// the server wrote meanwhile when it counts them in lines.
func (b *bench) drive(ctx context.Context, sc scenario, pid int, url, pprofAddr string, auth bool, lines *atomic.Int64) (result, error) {
	status, err := b.probe(ctx, url, sc)
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
		if _, err := b.wrk(ctx, url+path, script, b.o.warmup, auth); err != nil {
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
	var logged int64
	if lines != nil {
		logged = lines.Load()
	}
	redisPids := b.redisPids(sc.server == onCluster)
	cpu, redisCPU := processCPU(pid), processCPU(redisPids...)
	r, err := b.wrk(ctx, url+path, script, b.o.duration, auth)
	if err != nil {
		return result{}, err
	}
	if lines != nil {
		// Let the log pipe catch up before counting the lines of the run.
		time.Sleep(200 * time.Millisecond)
		r.logLines = lines.Load() - logged
	}
	r.cpu = perRequest(processCPU(pid)-cpu, r.requests)
	r.redisCPU = perRequest(processCPU(redisPids...)-redisCPU, r.requests)
	profiled.Wait()
	if pprofAddr != "" {
		b.saveProfile(ctx, pprofAddr, sc.name, "allocs", "/debug/pprof/allocs")
	}
	r.name = sc.name
	r.rssKiB = vmHWM(pid)
	switch {
	case r.non2xx > 0:
		r.note = fmt.Sprintf("%d non-2xx answers", r.non2xx)
	case r.socketErr != "":
		r.note = "socket errors: " + r.socketErr
	}
	return r, nil
}

// redisPids are the redis-servers a scenario uses: the single one, or every
// node of the cluster.
func (b *bench) redisPids(cluster bool) []int {
	if !cluster {
		return []int{b.redis.pid()}
	}
	var pids []int
	for _, n := range b.cluster {
		pids = append(pids, n.pid())
	}
	return pids
}

// probe sends one request of the scenario, so a route that is not served is
// reported as such rather than measured as 404s.
func (b *bench) probe(ctx context.Context, base string, sc scenario) (int, error) {
	return b.send(ctx, http.DefaultClient, sc.method, base+sc.path, strings.NewReader(sc.body))
}

// populate stores the keys and sessions the scenarios read, through a
// gateway, so the benchmark never needs to know how keys are named in Redis.
// On the cluster, only the hot key is stored: the cluster scenarios read no
// other.
func (b *bench) populate(ctx context.Context, cluster bool) error {
	g, err := b.startGateway(ctx, cluster, "NEAR_CACHE=off", "CACHE_DEFAULT_TTL=86400", "SESSION_TTL=86400")
	if err != nil {
		return err
	}
	defer g.stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	put := func(path, body string) error {
		status, err := b.send(ctx, client, http.MethodPut, g.url+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		if status >= 300 {
			return fmt.Errorf("PUT %s: status %d", path, status)
		}
		return nil
	}
	if err := put("/cache/hot", getValue); err != nil || cluster {
		return err
	}
	if err := b.storeCommandKey(ctx, client, g.url); err != nil {
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

// storeCommandKey stores the value the command API scenario reads, through
// the command API; a build without it is told by that scenario's probe.
func (b *bench) storeCommandKey(ctx context.Context, client *http.Client, base string) error {
	body, _ := json.Marshal([]string{"SET", commandKey, getValue})
	status, err := b.send(ctx, client, http.MethodPost, base+"/redis", bytes.NewReader(body))
	if err != nil {
		return err
	}
	if status >= 300 && status != http.StatusNotFound {
		return fmt.Errorf("POST /redis SET: status %d", status)
	}
	return nil
}

// send sends a JSON body with the bench's token and returns the answer's
// status, its body read and dropped.
func (b *bench) send(ctx context.Context, client *http.Client, method, url string, body io.Reader) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
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
	name := strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "", "/", "", ":", "").Replace(strings.ToLower(scenario))
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
