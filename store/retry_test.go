package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// The retry policy, with a forwarder that delivers a request to Redis and
// then cuts the connection before the reply: the command ran, and the
// gateway cannot know. A read is retried and succeeds; a write is not sent a
// second time, so nothing is counted or decided twice.
func TestRetryPolicy(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()

	tests := []struct {
		name    string
		op      func(s *Store) error
		wantErr bool
		check   func(t *testing.T)
	}{
		{
			name: "read is retried",
			op: func(s *Store) error {
				_, err := s.GetCache(ctx, "r")
				return err
			},
			wantErr: false,
		},
		{
			name: "incr runs once",
			op: func(s *Store) error {
				_, err := s.IncrCache(ctx, "n", 1, time.Minute)
				return err
			},
			wantErr: true,
			check: func(t *testing.T) {
				if got := rdb.Get(ctx, "cache:n").Val(); got != "1" {
					t.Errorf("cache:n = %q after one cut incr, want 1: the increment must run exactly once", got)
				}
			},
		},
		{
			name: "rate-limit decision runs once",
			op: func(s *Store) error {
				_, err := s.CountFixed(ctx, "rl", 1, time.Minute)
				return err
			},
			wantErr: true,
			check: func(t *testing.T) {
				if got := rdb.Get(ctx, "ratelimit:{rl}").Val(); got != "1" {
					t.Errorf("ratelimit:{rl} = %q after one cut call, want 1: the call must be counted exactly once", got)
				}
			},
		},
		{
			name: "command API read is retried",
			op: func(s *Store) error {
				_, err := s.Command(ctx, Policy{}, []string{"GET", "cache:r"})
				return err
			},
			wantErr: false,
		},
		{
			name: "command API INCR runs once",
			op: func(s *Store) error {
				_, err := s.Command(ctx, Policy{}, []string{"INCR", "api"})
				return err
			},
			wantErr: true,
			check: func(t *testing.T) {
				if got := rdb.Get(ctx, "api").Val(); got != "1" {
					t.Errorf("api = %q after one cut INCR through the command API, want 1", got)
				}
			},
		},
		{
			name: "command API read pipeline is retried",
			op: func(s *Store) error {
				_, err := s.Pipeline(ctx, Policy{}, [][]string{{"GET", "cache:r"}, {"STRLEN", "cache:r"}})
				return err
			},
			wantErr: false,
		},
		{
			name: "command API pipeline with a write runs once",
			op: func(s *Store) error {
				res, err := s.Pipeline(ctx, Policy{}, [][]string{{"GET", "cache:r"}, {"INCR", "api-pipe"}})
				if err == nil {
					err = res[1].Err
				}
				return err
			},
			wantErr: true,
			check: func(t *testing.T) {
				if got := rdb.Get(ctx, "api-pipe").Val(); got != "1" {
					t.Errorf("api-pipe = %q after one cut pipeline with INCR through the command API, want 1", got)
				}
			},
		},
		{
			name: "create-only put is not retried into a 412",
			op: func(s *Store) error {
				_, err := s.PutCache(ctx, "c", []byte(`1`), time.Minute, Condition{IfAbsent: true})
				return err
			},
			wantErr: true,
		},
	}
	rdb.Set(ctx, "cache:r", `"v"`, 0)
	// Scripts loaded, so the cut request is one that runs.
	for _, sc := range []*redis.Script{scriptCacheIncr, scriptRateLimitFixed} {
		if err := sc.Load(ctx, rdb).Err(); err != nil {
			t.Fatalf("SCRIPT LOAD: %v", err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := redistest.Forward(t, srv.Addr())
			s, err := New(Options{URL: "redis://" + f.Addr(), MaxRetries: 3})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil { // a connection in the pool
				t.Fatalf("Ping: %v", err)
			}
			if _, err := s.Command(ctx, Policy{}, []string{"PING"}); err != nil { // one for the command API too
				t.Fatalf("Command(PING): %v", err)
			}
			f.CutNextReply()
			err = tt.op(s)
			switch {
			case tt.wantErr && !errors.Is(err, ErrUnavailable):
				t.Errorf("error = %v, want ErrUnavailable: the reply was lost", err)
			case !tt.wantErr && err != nil:
				t.Errorf("error = %v, want the retry to succeed", err)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

// A write the server refused without running it, as a demoted primary does
// with READONLY, is sent again, and lands once the endpoint points at the new
// primary.
func TestWriteRetriedWhenRefusedUnrun(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", primary.URL()[len("redis://127.0.0.1:"):])
	f := redistest.Forward(t, replica.Addr())
	s, err := New(Options{URL: "redis://" + f.Addr(), MaxRetries: 5, MinRetryBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	go func() {
		time.Sleep(60 * time.Millisecond)
		f.To(primary.Addr())
	}()
	if _, err := s.IncrCache(ctx, "n", 1, time.Minute); err != nil {
		t.Fatalf("IncrCache through a replica, then the primary: %v", err)
	}
	if got := primary.Client().Get(ctx, "cache:n").Val(); got != "1" {
		t.Errorf("cache:n on the primary = %q, want 1", got)
	}
}
