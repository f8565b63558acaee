package access

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/logtest"
)

func tokensFile(name, secret string) string {
	return `{"tokens": [{"name": "` + name + `", "secret": "` + secret + `"}]}`
}

func write(t *testing.T, path, content string) {
	t.Helper()
	// Replace, as editors and secret managers do, so a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func names(tk *Tokens) string { return strings.Join(tk.Current().Names(), ",") }

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	write(t, path, tokensFile("old", secretA))
	logs := &logtest.Buffer{}
	tk, err := NewTokens([]string{"env-secret"}, path, read(t, path), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	if got := names(tk); got != "GATEWAY_TOKENS#1,old" {
		t.Fatalf("names = %s", got)
	}

	if changed, err := tk.Reload("poll"); changed || err != nil {
		t.Errorf("Reload of an unchanged file = %v, %v; want false, nil", changed, err)
	}

	write(t, path, `{"tokens": [{"name": "new", "secret": "`+secretB+`"`) // cut short
	for range 3 {
		if changed, err := tk.Reload("poll"); changed || err == nil {
			t.Errorf("Reload of a bad file = %v, %v; want false and an error", changed, err)
		}
	}
	if got := names(tk); got != "GATEWAY_TOKENS#1,old" {
		t.Errorf("after a bad file: names = %s, want the previous tokens", got)
	}
	if tk.Current().Lookup(secretA) == nil {
		t.Errorf("after a bad file: the previous token is refused")
	}
	if n := strings.Count(logs.String(), "tokens file refused"); n != 1 {
		t.Errorf("a bad file polled 3 times was logged %d times, want once:\n%s", n, logs)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Reload("poll"); err == nil || tk.Current().Lookup(secretA) == nil {
		t.Errorf("a deleted file: err = %v; the previous tokens must stay", err)
	}

	write(t, path, `{"tokens": [{"name": "old", "secret": "`+secretA+`"}, {"name": "new", "secret": "`+sha(secretB)+`"}]}`)
	if changed, err := tk.Reload("poll"); !changed || err != nil {
		t.Fatalf("Reload of a good file = %v, %v; want true, nil", changed, err)
	}
	if got := names(tk); got != "GATEWAY_TOKENS#1,old,new" {
		t.Errorf("after the rotation: names = %s", got)
	}
	if tk.Current().Lookup(secretB) == nil || tk.Current().Lookup("env-secret") == nil {
		t.Errorf("after the rotation: the new token or the GATEWAY_TOKENS one is refused")
	}
	if strings.Contains(logs.String(), secretA) || strings.Contains(logs.String(), secretB) {
		t.Errorf("a secret appears in the logs:\n%s", logs)
	}
}

// Watch polls the file, and re-reads it at once on a signal.
func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	write(t, path, tokensFile("first", secretA))
	logs := &logtest.Buffer{}
	tk, err := NewTokens(nil, path, read(t, path), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Polling so slow it never fires: only the signal can reload.
	signals := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { tk.Watch(ctx, time.Hour, signals); close(done) }()
	write(t, path, tokensFile("second", secretB))
	signals <- syscall.SIGHUP
	waitFor(t, "the signal to reload the tokens", func() bool { return names(tk) == "second" })
	if !strings.Contains(logs.String(), `"trigger":"signal hangup"`) {
		t.Errorf("the reload does not say a signal asked for it:\n%s", logs)
	}
	cancel()
	<-done

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go tk.Watch(ctx, 10*time.Millisecond, nil)
	write(t, path, tokensFile("third", secretA))
	waitFor(t, "polling to reload the tokens", func() bool { return names(tk) == "third" })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
