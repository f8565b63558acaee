package access

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Tokens holds the gateway's current token set, and swaps in a new one when
// the tokens file changes. A file that cannot be read or parsed keeps the
// previous set: a half-written file never locks everyone out.
type Tokens struct {
	env    []string
	file   string
	logger *slog.Logger
	cur    atomic.Pointer[Set]

	mu      sync.Mutex // one reload at a time
	applied [sha256.Size]byte
	refused string // why the last refused contents were refused, so each is logged once
}

// NewTokens builds the token set from the GATEWAY_TOKENS secrets and data,
// the contents of the tokens file at path as read at start-up (path "" and
// data nil for none). Reload and Watch read the file again when asked; a
// change since data was read is applied by the first of them.
func NewTokens(env []string, path string, data []byte, logger *slog.Logger) (*Tokens, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{env: env, file: path, logger: logger}
	set, err := NewSet(env, data)
	if err != nil {
		return nil, err
	}
	t.cur.Store(set)
	t.applied = sha256.Sum256(data)
	return t, nil
}

// Current is the token set in force.
func (t *Tokens) Current() *Set { return t.cur.Load() }

// Reload re-reads the tokens file and swaps in its tokens when its contents
// changed. trigger says what asked, for the log. It returns whether the set
// changed, and the reason a changed file was refused.
func (t *Tokens) Reload(trigger string) (bool, error) {
	if t.file == "" {
		return false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	data, err := os.ReadFile(t.file)
	if err != nil {
		return false, t.refuse(trigger, fmt.Errorf("read %s: %w", t.file, err))
	}
	sum := sha256.Sum256(data)
	if sum == t.applied {
		t.refused = ""
		if trigger != "poll" {
			t.logger.Info("tokens file unchanged", "trigger", trigger, "file", t.file)
		}
		return false, nil
	}
	set, err := NewSet(t.env, data)
	if err != nil {
		return false, t.refuse(trigger, fmt.Errorf("%s: %w", t.file, err))
	}
	t.cur.Store(set)
	t.applied, t.refused = sum, ""
	level := slog.LevelInfo
	if set.Len() == 0 {
		level = slog.LevelWarn // valid, and nobody gets in: say so
	}
	t.logger.Log(context.Background(), level, "tokens reloaded", "trigger", trigger, "file", t.file,
		"tokens", set.Len(), "names", set.Names())
	return true, nil
}

func (t *Tokens) refuse(trigger string, err error) error {
	if err.Error() != t.refused || trigger != "poll" {
		t.logger.Error("tokens file refused; the previous tokens stay in force", "trigger", trigger, "error", err.Error())
	}
	t.refused = err.Error()
	return err
}

// Watch re-reads the tokens file every interval, and whenever signals
// delivers (SIGHUP), until ctx ends. Polling the contents needs no file
// notification API and sees every way a file is replaced, including the
// symlink swap of a Kubernetes secret volume, which inotify watches on the
// file itself miss.
func (t *Tokens) Watch(ctx context.Context, every time.Duration, signals <-chan os.Signal) {
	var tick <-chan time.Time
	if t.file != "" {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			_, _ = t.Reload("poll")
		case sig := <-signals:
			if t.file == "" {
				t.logger.Info("no GATEWAY_TOKENS_FILE to re-read", "trigger", "signal "+sig.String())
				continue
			}
			_, _ = t.Reload("signal " + sig.String())
		}
	}
}
