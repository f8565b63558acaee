// Command bench measures the gateway against the fastest Go HTTP server this
// machine runs: it starts its own redis-server, the gateway and a ceiling
// server on loopback, drives each with wrk and prints one table.
//
//	go run ./bench [-duration 10s] [-runs 3] [-only get] [-profile dir]
//
// Besides the single redis-server it starts a Redis Cluster of three
// primaries for the cluster scenarios, webdis (where installed) as a peer on
// the same Redis, and a fan-out scenario of many SSE subscribers on one
// channel. wrk (the Debian package wrk) and redis-server must be on PATH;
// bench/run installs them, and webdis, when they are missing.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

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
	subscribers int
	publishRate int
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
	flag.StringVar(&only, "only", "", "run only the scenarios whose name matches this regular expression, "+
		"and those they are compared with (\"fan-out\" names the fan-out scenario)")
	flag.IntVar(&o.subscribers, "subscribers", 10_000, "SSE streams of the fan-out scenario (0 = no fan-out scenario)")
	flag.IntVar(&o.publishRate, "publish-rate", 10, "messages a second the fan-out scenario publishes, for -duration")
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
	if o.runs < 1 || o.duration < time.Second || o.keys < 1 || o.sessions < 1 || o.subscribers < 0 || o.publishRate < 1 {
		fatalf("-runs, -keys, -sessions and -publish-rate must be at least 1, -subscribers at least 0 and -duration at least 1s")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchmark(ctx, o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func benchmark(ctx context.Context, o options) error {
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
	redisAddr, err := freeAddr()
	if err != nil {
		return err
	}
	redis, err := startRedis(ctx, redisAddr, filepath.Join(tmp, "redis"))
	if err != nil {
		return err
	}
	defer redis.stop()

	b := &bench{o: o, tmp: tmp, gatewayBin: gatewayBin, ceilingBin: ceilingBin, scriptDir: scriptDir,
		redis: redis, token: rand.Text()}
	selected := o.selected()
	if slices.ContainsFunc(selected, func(sc scenario) bool { return sc.server == onCluster }) {
		step("starting a Redis Cluster of three primaries")
		if b.cluster, err = startCluster(ctx, tmp); err != nil {
			return err
		}
		defer func() {
			for _, n := range b.cluster {
				n.stop()
			}
		}()
	}
	if slices.ContainsFunc(selected, func(sc scenario) bool { return sc.server == onWebdis }) {
		if _, err := exec.LookPath("webdis"); err != nil {
			b.webdisMissing = true
			step("webdis not found on PATH: no peer column (bench/run installs it)")
		}
	}
	if o.fanout() {
		raiseFileLimit(o.subscribers)
	}
	if len(selected) > 0 {
		step(fmt.Sprintf("storing %d keys and %d sessions through the gateway", o.keys, o.sessions))
		if err := b.populate(ctx, false); err != nil {
			return err
		}
		if b.cluster != nil {
			step("storing the hot key through a gateway on the cluster")
			if err := b.populate(ctx, true); err != nil {
				return err
			}
		}
	}

	var runs []run
	for i := 1; i <= o.runs; i++ {
		r, err := b.runOnce(ctx, i)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		fmt.Printf("\n## Run %d of %d (load average now %s)\n\n", i, o.runs, loadavg())
		printRun(os.Stdout, r, o)
	}
	if o.runs > 1 {
		fmt.Printf("\n## Median of %d runs (spread: lowest–highest)\n\n", o.runs)
		printMedians(os.Stdout, runs, o)
	}
	fmt.Printf("\n## Targets (median of %d run(s))\n\n", o.runs)
	printTargets(os.Stdout, runs, o)
	return nil
}

// raiseFileLimit lifts the soft limit on open files to the hard one, for the
// bench's own subscriber connections and, inherited, for the gateway's.
func raiseFileLimit(subscribers int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	lim.Cur = lim.Max
	// An explicit Setrlimit also stops os/exec from giving children the
	// limit the process started with.
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if need := uint64(subscribers) + 1000; lim.Cur < need {
		step(fmt.Sprintf("open files are limited to %d (ulimit -n): %d subscribers need about %d in the bench "+
			"and as many in the gateway", lim.Cur, subscribers, need))
	}
}

type bench struct {
	o          options
	tmp        string
	gatewayBin string
	ceilingBin string
	scriptDir  string
	redis      *redisServer
	cluster    []*redisServer // nil unless a cluster scenario runs
	token      string
	// webdisMissing: webdis is not installed, and its rows say so.
	webdisMissing bool
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
