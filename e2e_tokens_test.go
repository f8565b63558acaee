package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

const (
	staySecret = "stays-valid-secret-00000001"
	oldSecret  = "rotated-out-secret-00000001"
	newSecret  = "rotated-in-secret-000000001"
)

func tokensJSON(entries ...string) string {
	var list []string
	for i := 0; i+1 < len(entries); i += 2 {
		list = append(list, fmt.Sprintf(`{"name": %q, "secret": %q, "routes": ["cache"]}`, entries[i], entries[i+1]))
	}
	return `{"tokens": [` + strings.Join(list, ", ") + `]}`
}

// replaceFile swaps path's contents in one step, as secret managers and
// editors do, so the gateway never reads half a file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func bearerStatus(client *http.Client, url, secret string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// tokenLoad sends requests with one secret until stopped, and remembers when
// each answer came.
type tokenLoad struct {
	mu      sync.Mutex
	answers []tokenAnswer
}

type tokenAnswer struct {
	at     time.Time
	status int
	err    error
}

func (l *tokenLoad) run(client *http.Client, url, secret string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; i < 20000; i++ { // bounded; stop ends it long before
		select {
		case <-stop:
			return
		default:
		}
		status, err := bearerStatus(client, url, secret)
		l.mu.Lock()
		l.answers = append(l.answers, tokenAnswer{at: time.Now(), status: status, err: err})
		l.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// TestE2ETokenRotationUnderLoad replaces the tokens file while clients use
// three tokens: one that stays, one rotated out and one rotated in.
func TestE2ETokenRotationUnderLoad(t *testing.T) {
	const window = 2 * time.Second
	path := filepath.Join(t.TempDir(), "tokens.json")
	replaceFile(t, path, tokensJSON("svc", staySecret, "svc-old", oldSecret))
	g := mustStartGateway(t, "memory://", "GATEWAY_TOKENS=", "GATEWAY_TOKENS_FILE="+path)
	url := g.URL + "/cache/k"
	g.Client.Transport = &http.Transport{MaxIdleConnsPerHost: 16}

	loads := map[string]*tokenLoad{staySecret: {}, oldSecret: {}, newSecret: {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for secret, l := range loads {
		n := 1
		if secret == staySecret {
			n = 4
		}
		for range n {
			wg.Add(1)
			go l.run(g.Client, url, secret, stop, &wg)
		}
	}
	time.Sleep(300 * time.Millisecond)
	replaceFile(t, path, tokensJSON("svc", staySecret, "svc-new", newSecret))
	rotated := time.Now()
	time.Sleep(window + 500*time.Millisecond)
	close(stop)
	wg.Wait()

	var stayed, stayFailed int
	for _, a := range loads[staySecret].answers {
		stayed++
		if a.err != nil || a.status != http.StatusNotFound {
			stayFailed++
			t.Errorf("the token that stayed valid: %s after the rotation: status %d, %v; want 404 (authorized, no such key)",
				a.at.Sub(rotated).Round(time.Millisecond), a.status, a.err)
		}
	}
	if stayed < 100 {
		t.Errorf("only %d requests with the token that stayed; the load did not run", stayed)
	}
	for _, c := range []struct {
		secret, name  string
		before, after int
	}{
		{oldSecret, "old", http.StatusNotFound, http.StatusUnauthorized},
		{newSecret, "new", http.StatusUnauthorized, http.StatusNotFound},
	} {
		switched := time.Time{} // the first answer of the new kind; none of the old kind may follow
		for _, a := range loads[c.secret].answers {
			switch {
			case a.err != nil:
				t.Errorf("the %s token: %v", c.name, a.err)
			case a.status == c.after && switched.IsZero():
				switched = a.at
			case a.status == c.before && !switched.IsZero():
				t.Errorf("the %s token answered %d %s after it had answered %d", c.name, a.status, a.at.Sub(switched), c.after)
			case a.status != c.before && a.status != c.after:
				t.Errorf("the %s token: status %d, want %d or %d", c.name, a.status, c.before, c.after)
			}
		}
		switch took := switched.Sub(rotated); {
		case switched.IsZero():
			t.Errorf("the %s token never answered %d after the rotation", c.name, c.after)
		case took > window:
			t.Errorf("the %s token answered %d %s after the rotation, want within %s", c.name, c.after, took.Round(time.Millisecond), window)
		default:
			t.Logf("the %s token answered %d %s after the rotation", c.name, c.after, took.Round(time.Millisecond))
		}
	}
	t.Logf("%d requests with the token that stayed, %d failed", stayed, stayFailed)
	if !strings.Contains(g.Stdout.String(), `"token":"svc"`) || strings.Contains(g.Stdout.String(), staySecret) {
		t.Errorf("the access log must name the token, never its secret")
	}
}

// A bad tokens file keeps the tokens in force, and SIGHUP re-reads the file
// at once. The signal goes to a gateway process of its own.
func TestE2ETokensFileBadAndSIGHUP(t *testing.T) {
	bin := buildGateway(t)
	path := filepath.Join(t.TempDir(), "tokens.json")
	replaceFile(t, path, tokensJSON("svc", staySecret))
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"REDIS_URL=memory://", "HTTP_ADDR=" + addr, "GATEWAY_TOKENS_FILE=" + path, "LOG_FORMAT=json", "SHUTDOWN_DELAY=0s"}
	var stdout, stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exited atomic.Bool
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); exited.Store(true); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + addr + "/cache/k"
	waitStatus := func(secret string, want int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, err := bearerStatus(client, url, secret)
			if err == nil && status == want {
				return
			}
			if exited.Load() || time.Now().After(deadline) {
				t.Fatalf("%s: status %d, %v; want %d\nstdout:\n%s\nstderr:\n%s", what, status, err, want, &stdout, &stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStatus(staySecret, http.StatusNotFound, "the gateway to start")

	replaceFile(t, path, `{"tokens": [{"name": "svc", "secret": "`) // cut short
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, line := range strings.Split(stdout.String(), "\n") {
				all := true
				for _, w := range want {
					all = all && strings.Contains(line, w)
				}
				if all {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line for %s (%q)\nstdout:\n%s", what, want, &stdout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("the refused file", `"msg":"tokens file refused; the previous tokens stay in force"`, `"trigger":"signal hangup"`)
	time.Sleep(700 * time.Millisecond) // past a poll, which must not change the verdict
	if status, err := bearerStatus(client, url, staySecret); err != nil || status != http.StatusNotFound {
		t.Errorf("after a bad tokens file: the token in force answered %d, %v; want 404", status, err)
	}

	replaceFile(t, path, tokensJSON("svc", staySecret, "svc-new", newSecret))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStatus(newSecret, http.StatusNotFound, "the new token after SIGHUP")
	waitLog("the SIGHUP", `"trigger":"signal hangup"`, `"file":"`+path+`"`, `"msg":"tokens`)
	if strings.Contains(stdout.String(), staySecret) || strings.Contains(stdout.String(), newSecret) {
		t.Errorf("a secret appears in the logs")
	}
}
