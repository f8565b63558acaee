package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// keysPerPrimary finds, for each primary of c, a cache key it serves.
func keysPerPrimary(t *testing.T, c *redistest.Cluster) map[*redistest.Server]string {
	t.Helper()
	found := map[*redistest.Server]string{}
	for i := 0; len(found) < 3 && i < 1000; i++ {
		k := "k" + strconv.Itoa(i)
		p, _ := c.PrimaryOf(t, keys{}.cache(k))
		if _, ok := found[p]; !ok {
			found[p] = k
		}
	}
	if len(found) < 3 {
		t.Fatalf("found keys on %d primaries, want 3", len(found))
	}
	return found
}

// Every node the gateway discovers is held to the same certificate check as
// the node it was given, although nodes announce themselves by IP address:
// one primary whose certificate names another host is refused, by name.
func TestClusterTLSChecksEveryNode(t *testing.T) {
	ca := redistest.NewCA(t)
	good := &redistest.TLS{CA: ca, Server: ca.Issue("localhost"), Name: "localhost"}
	bad := &redistest.TLS{CA: ca, Server: ca.Issue("evil.example.com"), Name: "evil.example.com"}
	c := redistest.StartCluster(t, redistest.ClusterOptions{TLS: good, NodeTLS: []*redistest.TLS{1: bad}})
	if r := c.Role(t, c.Nodes[1]); r != "master" {
		t.Fatalf("node 1 is a %s, want a primary", r)
	}
	port := strconv.Itoa(c.Nodes[0].Port)

	tests := []struct {
		name string
		seed string
		tls  TLSOptions
	}{
		{"seed by name", "localhost:" + port, TLSOptions{Enabled: true, CAFile: ca.File}},
		{"seed by IP with a server name", "127.0.0.1:" + port, TLSOptions{Enabled: true, CAFile: ca.File, ServerName: "localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{ClusterNodes: []string{tt.seed}, TLS: tt.tls, DialTimeout: time.Second})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v, want ready while two primaries answer", err)
			}
			for primary, k := range keysPerPrimary(t, c) {
				_, err := s.PutCache(ctx, k, []byte(`1`), time.Minute, Condition{})
				if primary != c.Nodes[1] {
					if err != nil {
						t.Errorf("PutCache(%s) on %s: %v", k, primary.Addr(), err)
					}
					continue
				}
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "TLS") ||
					!strings.Contains(err.Error(), "name mismatch") || !strings.Contains(err.Error(), `"localhost"`) {
					t.Errorf("PutCache(%s) on the primary with a certificate for another name = %v, want a TLS name mismatch", k, err)
				}
			}
		})
	}

	t.Run("seed by IP without a name", func(t *testing.T) {
		s, err := New(Options{ClusterNodes: []string{"127.0.0.1:" + port}, TLS: TLSOptions{Enabled: true, CAFile: ca.File}})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer s.Close()
		err = s.Ping(context.Background())
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "name mismatch") {
			t.Errorf("Ping = %v, want a TLS name mismatch", err)
		}
	})
}

func TestClusterSettings(t *testing.T) {
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{URL: "redis://a:1", ClusterNodes: []string{"b:1"}}, "both set"},
		{Options{ClusterNodes: []string{"no-port"}}, "REDIS_CLUSTER_NODES"},
		{Options{ClusterNodes: []string{"b:1"}, TLS: TLSOptions{CAFile: "/ca.pem"}}, "TLS is off"},
	} {
		_, err := New(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error saying %q", tt.opts, err, tt.want)
		}
	}
}

// go-redis keeps a cluster client's Addrs option as its list of nodes and
// appends the nodes it discovers to it. Every cluster client of a Store
// must own its list: clients sharing one array wrote into it under locks of
// their own, a data race as soon as two loaded the slot map at once.
func TestClusterClientsOwnTheirNodeLists(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	nodes := make([]string, 1, 16) // room for go-redis to append in place
	nodes[0] = c.Addrs()[0]
	s, err := New(Options{ClusterNodes: nodes, NearCache: &NearCacheOptions{MaxEntries: 10, MaxBytes: 1 << 10, MaxStaleness: time.Second}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	clients := map[string]*redis.ClusterClient{}
	for name, u := range map[string]redis.UniversalClient{"main": s.rdb, "command API": s.cmdAPI, "auto-pipeliner": s.apClient} {
		cc, ok := u.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("%s client is %T, want a cluster client", name, u)
		}
		cc.ReloadState(ctx)
		if err := cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
			t.Fatalf("%s: ping every node: %v", name, err)
		}
		clients[name] = cc
	}
	if got := nodes[:cap(nodes)][1:]; slices.ContainsFunc(got, func(a string) bool { return a != "" }) {
		t.Errorf("REDIS_CLUSTER_NODES's array was written to: %q", got)
	}
	seen := map[*string]string{}
	for name, cc := range clients {
		addrs := cc.Options().Addrs
		first := &addrs[:1][0]
		if other, ok := seen[first]; ok {
			t.Errorf("the %s and %s clients share one list of nodes", name, other)
		}
		seen[first] = name
	}
}
