package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// gateway is one running gateway process.
type gateway struct {
	cmd   *exec.Cmd
	url   string
	lines atomic.Int64 // lines it wrote to stdout: one per request, plus a few
	done  chan struct{}
}

// startGateway starts a gateway on the single redis-server, or with
// cluster on the cluster's nodes.
func (b *bench) startGateway(ctx context.Context, cluster bool, extra ...string) (*gateway, error) {
	target := "REDIS_URL=redis://" + b.redis.addr
	if cluster {
		var addrs []string
		for _, n := range b.cluster {
			addrs = append(addrs, n.addr)
		}
		target = "REDIS_CLUSTER_NODES=" + strings.Join(addrs, ",")
	}
	cmd := exec.CommandContext(ctx, b.gatewayBin)
	// Whatever Redis the caller's environment names, the gateway uses the
	// bench's own.
	cmd.Env = append(environWithout("REDIS_URL", "REDIS_CLUSTER_NODES"),
		target,
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

// environWithout is os.Environ less the variables named.
func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			env = append(env, kv)
		}
	}
	return env
}

// startWebdis starts webdis, the peer, on the single redis-server.
func (b *bench) startWebdis(ctx context.Context) (*exec.Cmd, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	host, port, _ := net.SplitHostPort(addr)
	rhost, rport, _ := net.SplitHostPort(b.redis.addr)
	conf, err := json.Marshal(map[string]any{
		"redis_host": rhost, "redis_port": atoi(rport), "http_host": host, "http_port": atoi(port),
		// As many workers as the gateway has CPUs (GOMAXPROCS).
		"threads": runtime.NumCPU(), "daemonize": false, "database": 0,
		"verbosity": 1, "logfile": filepath.Join(b.tmp, "webdis.log"),
	})
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(b.tmp, "webdis.json")
	if err := os.WriteFile(file, conf, 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, "webdis", file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/PING")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, url, nil
			}
		}
		if time.Now().After(deadline) {
			stopProcess(cmd)
			return nil, "", errors.New("webdis did not answer /PING within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
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

// processCPU is the CPU time processes have used, user and system, from
// /proc/<pid>/stat (in clock ticks of 10 ms on Linux).
func processCPU(pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name, field 2, may hold spaces; fields count from after it.
		_, rest, ok := strings.Cut(string(b), ") ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
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

// redisServer is one redis-server the bench started.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
}

func (r *redisServer) pid() int { return r.cmd.Process.Pid }
func (r *redisServer) stop()    { stopProcess(r.cmd) }

// startRedis starts a redis-server on addr with its files in dir.
func startRedis(ctx context.Context, addr, dir string, args ...string) (*redisServer, error) {
	_, port, _ := net.SplitHostPort(addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args = append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, args...)
	cmd := exec.CommandContext(ctx, "redis-server", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
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
		return nil, errors.New("redis-server did not start within 10s")
	}
	return &redisServer{addr: addr, cmd: cmd}, nil
}

// startCluster starts a Redis Cluster of three primaries without replicas:
// each node takes a third of the slots, and the first one meets the others.
// Every node's cluster bus listens on its port + 10000, so CLUSTER MEET needs
// no bus port and any Redis with cluster support forms it.
func startCluster(ctx context.Context, dir string) ([]*redisServer, error) {
	var nodes []*redisServer
	stopAll := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	ranges := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	for i, r := range ranges {
		addr, err := freeAddrWithBus()
		if err != nil {
			stopAll()
			return nil, err
		}
		n, err := startRedis(ctx, addr, filepath.Join(dir, fmt.Sprintf("cluster-%d", i)),
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("cluster node %d: %w", i, err)
		}
		nodes = append(nodes, n)
		slots := []string{"CLUSTER", "ADDSLOTS"}
		for s := r[0]; s <= r[1]; s++ {
			slots = append(slots, strconv.Itoa(s))
		}
		if _, err := redisDo(n.addr, slots...); err != nil {
			stopAll()
			return nil, fmt.Errorf("CLUSTER ADDSLOTS on %s: %w", n.addr, err)
		}
	}
	for _, n := range nodes[1:] {
		host, port, _ := net.SplitHostPort(n.addr)
		if _, err := redisDo(nodes[0].addr, "CLUSTER", "MEET", host, port); err != nil {
			stopAll()
			return nil, fmt.Errorf("CLUSTER MEET %s: %w", n.addr, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		why := ""
		for _, n := range nodes {
			info, err := redisDo(n.addr, "CLUSTER", "INFO")
			switch {
			case err != nil:
				why = n.addr + ": " + err.Error()
			case infoField(info, "cluster_state") != "ok" || infoField(info, "cluster_known_nodes") != "3":
				why = fmt.Sprintf("%s: cluster_state %s, %s nodes known", n.addr,
					infoField(info, "cluster_state"), infoField(info, "cluster_known_nodes"))
			}
		}
		if why == "" {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			stopAll()
			return nil, fmt.Errorf("the cluster was not ready within 30s: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddrWithBus is freeAddr for a cluster node, whose bus takes port + 10000.
func freeAddrWithBus() (string, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		ln.Close()
		if err == nil {
			bus.Close()
			return fmt.Sprintf("127.0.0.1:%d", port), nil
		}
	}
	return "", errors.New("no free port whose port + 10000 is free too")
}

// freeAddr returns a loopback address with a port free right now. It returns
// its error rather than exiting, so the caller still stops the processes it
// started.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
