package store

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// go-redis's own log lines go to the test that caused them, shown only when
// it fails.
func TestMain(m *testing.M) {
	redistest.LogClientToTests()
	os.Exit(m.Run())
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://:s3cret@host:6379/0", "redis://:xxxxx@host:6379/0"},
		{"rediss://user:s3cret@host:6380", "rediss://user:xxxxx@host:6380"},
		{"redis://host:6379", "redis://host:6379"},
		{"memory://", "memory://"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewRejectsBadURLsWithoutLeakingSecrets(t *testing.T) {
	for _, u := range []string{"http://:s3cret@host:1", "redis://:s3cret@host:notaport", "://s3cret"} {
		_, err := New(Options{URL: u})
		if err == nil {
			t.Errorf("New(%q) succeeded, want an error", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) error leaks the password: %v", u, err)
		}
	}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"missing key", redis.Nil, ErrNotFound},
		{"own sentinel", ErrPreconditionFailed, ErrPreconditionFailed},
		{"wrong type", proto("WRONGTYPE Operation against a key holding the wrong kind of value"), ErrWrongType},
		{"wrong type inside a script", proto("ERR Error running script: WRONGTYPE Operation"), ErrWrongType},
		{"not an integer", proto("ERR value is not an integer or out of range"), ErrNotInteger},
		{"overflow", proto("ERR increment or decrement would overflow"), ErrOverflow},
		{"read-only replica", proto("READONLY You can't write against a read only replica."), ErrUnavailable},
		{"loading", proto("LOADING Redis is loading the dataset in memory"), ErrUnavailable},
		{"refused", refused, ErrUnavailable},
		{"eof", io.EOF, ErrUnavailable},
		{"closed pool", redis.ErrClosed, ErrUnavailable},
		{"read timeout", timeout, ErrTimeout},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded},
		{"canceled", context.Canceled, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify("op", tt.err)
			if !errors.Is(got, tt.want) {
				t.Errorf("classify(%v) = %v, want it to wrap %v", tt.err, got, tt.want)
			}
			if !strings.HasPrefix(got.Error(), "op: ") {
				t.Errorf("classify(%v) = %q, want the operation named first", tt.err, got)
			}
		})
	}
	if got := classify("op", proto("ERR unknown command")); errors.Is(got, ErrUnavailable) || errors.Is(got, ErrNotFound) {
		t.Errorf("an unexpected server error was classified as %v", got)
	}
	if classify("op", nil) != nil {
		t.Errorf("classify(nil) != nil")
	}
}

// proto is a server error reply, as go-redis returns it.
type proto string

func (p proto) Error() string { return string(p) }
func (p proto) RedisError()   {}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// memory:// expires keys on the wall clock, so -dev behaves like Redis.
func TestMemoryExpiresInRealTime(t *testing.T) {
	s, err := New(Options{URL: "memory://"})
	if err != nil {
		t.Fatalf("New(memory://): %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.PutCache(ctx, "k", []byte("1"), time.Second, Condition{}); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := s.GetCache(ctx, "k")
		if errors.Is(err, ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("GetCache: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 1s TTL still exists after 3s on memory://")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPasswordFileIsReadPerConnection(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/pw"
	writeFile(t, path, "first\n")
	s, err := New(Options{URL: "redis://127.0.0.1:1", PasswordFile: path})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	if _, err := New(Options{URL: "redis://127.0.0.1:1", PasswordFile: dir + "/missing"}); err == nil {
		t.Errorf("New with a missing REDIS_PASSWORD_FILE succeeded, want an error at start-up")
	}
	// The provider reads the file each time a connection is made.
	opt := s.rdb.(*redis.Client).Options()
	for _, want := range []string{"first", "second"} {
		writeFile(t, path, want+"\n")
		_, got, err := opt.CredentialsProviderContext(context.Background())
		if err != nil || got != want {
			t.Errorf("credentials = %q, %v; want %q", got, err, want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func TestRateLimitKeysShareOneSlot(t *testing.T) {
	k := keys{prefix: "orders:"}
	for _, key := range []string{"api", "}x", "{", "a}b{c", "{x}", "%7D"} { // keys are never empty
		main, other := k.rateLimit(key, ""), k.rateLimit(key, ":prev")
		if slot(main) != slot(other) {
			t.Errorf("key %q: %q and %q hash to different slots", key, main, other)
		}
		if strings.Count(main, "{") != 1 || strings.Count(main, "}") != 1 {
			t.Errorf("key %q: %q has more than one brace pair", key, main)
		}
	}
	if a, b := k.rateLimit("}", ""), k.rateLimit("%7D", ""); a == b {
		t.Errorf("keys } and %%7D map to the same Redis key %q", a)
	}
	if got := k.rateLimit("api", ""); got != "orders:ratelimit:{api}" {
		t.Errorf("rateLimit(api) = %q, want orders:ratelimit:{api}", got)
	}
}

// slot is the part of a key Redis Cluster hashes: the first non-empty {tag}.
func slot(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestLockKeysShareOneSlot(t *testing.T) {
	k := keys{prefix: "orders:"}
	for _, name := range []string{"job", "}x", "{", "a}b{c", "%7D"} {
		lock, fence := k.lock(name, ""), k.lock(name, ":fence")
		if slot(lock) != slot(fence) || slot(lock) != tagEscaper.Replace(name) {
			t.Errorf("name %q: %q and %q do not share the tag of the name", name, lock, fence)
		}
	}
	if got := k.lock("job", ""); got != "orders:lock:{job}" {
		t.Errorf("lock(job) = %q, want orders:lock:{job}", got)
	}
}
