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

func startRedis(ctx context.Context, dir string) (string, int, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", 0, nil, err
	}
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
