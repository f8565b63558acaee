package store

import (
	"context"
	"errors"
	"testing"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// Redis down at start-up: the table is read once Redis is back.
func TestCommandTableRedisDownThenUp(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	srv.Stop()
	if err := s.LoadCommandInfo(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LoadCommandInfo with Redis down: err = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	table, err := s.commandTable(ctx)
	if err != nil || !table.Lookup([]string{"GET", "k"}).Known {
		t.Errorf("the table once Redis is back: %v", err)
	}
}

// A Redis whose COMMAND is renamed away describes nothing.
func TestCommandTableWithoutCommand(t *testing.T) {
	srv := redistest.Start(t, "--rename-command", "COMMAND", "")
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.LoadCommandInfo(context.Background()); !errors.Is(err, commandapi.ErrNoCommandInfo) {
		t.Errorf("LoadCommandInfo: err = %v, want ErrNoCommandInfo", err)
	}
}

// COMMAND's reply (about 90 KB on Redis 7.0) is not a client's reply: the
// table loads whatever MAX_REPLY_BYTES is.
func TestCommandTableUnderASmallReplyBudget(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), MaxReplyBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.LoadCommandInfo(context.Background()); err != nil {
		t.Errorf("LoadCommandInfo with MAX_REPLY_BYTES 4096: %v", err)
	}
}
