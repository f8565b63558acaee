package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// A Redis password rotated while the gateway runs: the new password is made
// valid next to the old one, REDIS_PASSWORD_FILE is updated, the old one is
// retired and the gateway's connections are cut. The gateway reconnects with
// the new password, read from the file, without a restart.
func TestPasswordFileRotation(t *testing.T) {
	tests := []struct {
		name     string
		username string // the gateway's ACL user; "" is default
		// setup makes "old" the gateway's password; both adds "new" next to
		// it; retire leaves only "new".
		setup, both, retire [][]any
	}{
		{
			name:     "ACL SETUSER",
			username: "gateway",
			setup:    [][]any{{"ACL", "SETUSER", "gateway", "on", ">old-password", "~*", "&*", "+@all"}},
			both:     [][]any{{"ACL", "SETUSER", "gateway", ">new-password"}},
			retire:   [][]any{{"ACL", "SETUSER", "gateway", "<old-password"}},
		},
		{
			// requirepass holds one password: switching it keeps the
			// connections already authenticated, and no others.
			name:   "CONFIG SET requirepass",
			setup:  [][]any{{"CONFIG", "SET", "requirepass", "old-password"}},
			retire: [][]any{{"CONFIG", "SET", "requirepass", "new-password"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			bootstrap := srv.Client()
			if err := bootstrap.Do(ctx, "ACL", "SETUSER", "admin", "on", ">admin-password", "~*", "&*", "+@all").Err(); err != nil {
				t.Fatal(err)
			}
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "admin", Password: "admin-password", DisableIdentity: true})
			defer admin.Close()
			run := func(cmds [][]any) {
				t.Helper()
				for _, c := range cmds {
					if err := admin.Do(ctx, c...).Err(); err != nil {
						t.Fatalf("%v: %v", c, err)
					}
				}
			}
			run(tt.setup)

			path := filepath.Join(t.TempDir(), "password")
			writeFile(t, path, "old-password\n")
			s, err := New(Options{URL: srv.URL(), Username: tt.username, PasswordFile: path, PoolSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			works := func(when string) {
				t.Helper()
				if _, err := s.PutCache(ctx, "k", []byte(`"`+when+`"`), time.Minute, Condition{}); err != nil {
					t.Fatalf("%s: PutCache: %v", when, err)
				}
				if v, err := s.GetCache(ctx, "k"); err != nil || string(v) != `"`+when+`"` {
					t.Fatalf("%s: GetCache = %s, %v", when, v, err)
				}
			}
			cut := func() {
				t.Helper()
				user := tt.username
				if user == "" {
					user = "default"
				}
				if err := admin.Do(ctx, "CLIENT", "KILL", "USER", user).Err(); err != nil {
					t.Fatalf("CLIENT KILL USER %s: %v", user, err)
				}
			}
			works("with the old password")

			run(tt.both)
			writeFile(t, path, "new-password\n")
			works("the file updated, both passwords valid")
			run(tt.retire)
			works("the old password retired, connections still open")
			cut()
			// New connections, each reading the file. A PING first: a
			// pooled connection that was cut can fail the command sent on
			// it, and only reads are retried for sure.
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("PING after the connections were cut: %v", err)
			}
			works("after the connections were cut")

			writeFile(t, path, "wrong-password\n")
			cut()
			if _, err := s.GetCache(ctx, "k"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("with a wrong password in the file: err = %v, want ErrUnavailable", err)
			}
			writeFile(t, path, "new-password\n")
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("PING once the file is right again: %v", err)
			}
			works("once the file is right again")
		})
	}
}
