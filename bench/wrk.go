package main

import (
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed wrk/*.lua
var scripts embed.FS

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
