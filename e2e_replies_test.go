package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// Issue 10, finding 3: one 10 MB value read five times in one pipeline made
// a 300 MB response, took the gateway from 23 MB to 1.4 GB and ran 13 s past
// a 5 s REQUEST_TIMEOUT. With MAX_REPLY_BYTES at its 16 MiB default, the
// real gateway process answers 413 within the deadline, and its peak
// resident memory stays under 256 MiB.
func TestE2EBoundedReplies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the gateway's peak memory")
	}
	const requestTimeout = 5 * time.Second
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	if err := rdb.SetRange(ctx, "orders:z", 10_000_000, "x").Err(); err != nil {
		t.Fatal(err)
	}
	bin := buildGateway(t)
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{
		"REDIS_URL=" + srv.URL(),
		"HTTP_ADDR=" + addr,
		"GATEWAY_TOKENS=" + testToken,
		"REQUEST_TIMEOUT=" + requestTimeout.String(),
		"MAX_BODY_BYTES=1048576",
		"SHUTDOWN_DELAY=0s",
		"LOG_FORMAT=json",
	}
	var stdout, stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	probe := &http.Client{Timeout: 2 * time.Second}
	readyBy := time.Now().Add(20 * time.Second)
	for {
		resp, err := probe.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(readyBy) {
			t.Fatalf("GET /readyz did not answer 200 within 20s\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := peakRSS(t, cmd.Process.Pid)

	body := `[` + strings.TrimSuffix(strings.Repeat(`["GET","orders:z"],`, 5), ",") + `]`
	req, err := http.NewRequest(http.MethodPost, base+"/redis/pipeline", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Upstash-Encoding", "base64")
	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /redis/pipeline: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("5 x 10 MB pipeline: %d in %v; peak RSS %.1f MiB before, %.1f MiB after", resp.StatusCode, elapsed.Round(time.Millisecond),
		float64(before)/(1<<20), float64(peak)/(1<<20))

	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(got), "MAX_REPLY_BYTES (16777216 bytes)") {
		t.Errorf("POST /redis/pipeline of 5 x GET of 10 MB: %d %.200s; want 413 naming MAX_REPLY_BYTES", resp.StatusCode, got)
	}
	if elapsed > requestTimeout+time.Second {
		t.Errorf("the request took %v, want at most REQUEST_TIMEOUT + 1s = %v", elapsed, requestTimeout+time.Second)
	}
	if peak > 256<<20 {
		t.Errorf("the gateway's peak RSS reached %.1f MiB, want under 256 MiB", float64(peak)/(1<<20))
	}
	// The gateway still serves the command API, the value within limits.
	req, _ = http.NewRequest(http.MethodPost, base+"/redis", strings.NewReader(`["STRLEN","orders:z"]`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != `{"result":10000001}` {
		t.Errorf("STRLEN after the refusal: %d %s", resp.StatusCode, got)
	}
}

// peakRSS reads a process's peak resident set size (VmHWM) from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
