package redistest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Shared lends fixtures to the tests of one test binary, one test at a time:
// a cluster takes about two seconds to start, and dozens of route tests need
// one. Its fixtures outlive the tests that use them; the binary's TestMain
// calls Close once the tests are done.
type Shared struct {
	lent     sync.Mutex // held by the test that has the cluster, until it ends
	mu       sync.Mutex
	cleanups []func()
	cluster  *Cluster
}

// Cluster lends t a healthy plain-text cluster with no data, starting one
// when there is none or the last one was stopped. t has it to itself until
// it ends (tests running in parallel wait their turn), and must give it back
// unchanged but for its data, or stop it.
func (s *Shared) Cluster(t testing.TB) *Cluster {
	t.Helper()
	LogClient(t)
	Binary(t)
	binary(t, "redis-cli")
	s.lent.Lock()
	t.Cleanup(s.lent.Unlock)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cluster; c != nil && (c.stopped() || c.unhealthy() != "") {
		c.Stop()
		s.cluster = nil
	}
	if s.cluster == nil {
		c, err := s.start()
		if err != nil {
			t.Fatalf("start a shared cluster: %v", err)
		}
		s.cluster = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range s.cluster.Nodes {
		if s.cluster.roleOf(n) == "master" {
			if err := n.client().FlushAll(ctx).Err(); err != nil {
				t.Fatalf("FLUSHALL on %s: %v", n.Addr(), err)
			}
		}
	}
	return s.cluster
}

// start runs startCluster with s standing in for the test, turning its
// failures into an error.
func (s *Shared) start() (c *Cluster, err error) {
	defer func() {
		if r := recover(); r != nil {
			if msg, ok := r.(sharedFatal); ok {
				err = fmt.Errorf("%s", string(msg))
				return
			}
			panic(r)
		}
	}()
	return startCluster(s, ClusterOptions{}), nil
}

// Close stops every shared fixture and removes its files.
func (s *Shared) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	s.cluster = nil
}

type sharedFatal string

// Shared stands in for a test while it starts fixtures.
func (s *Shared) Helper() {}

func (s *Shared) Fatalf(format string, args ...any) { panic(sharedFatal(fmt.Sprintf(format, args...))) }

func (s *Shared) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

func (s *Shared) TempDir() string {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		s.Fatalf("temporary directory: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (c *Cluster) stopped() bool {
	for _, n := range c.Nodes {
		if n.cmd == nil {
			return true
		}
	}
	return false
}

// roleOf is Role for callers with no test at hand: "" when the node does
// not answer.
func (c *Cluster) roleOf(n *Server) string {
	repl, err := n.client().Info(context.Background(), "replication").Result()
	if err != nil {
		return ""
	}
	return roleIn(repl)
}
