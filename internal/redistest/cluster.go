package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three primaries with one replica each, on
// free loopback ports, torn down when the test ends.
type Cluster struct {
	t     tb
	Nodes []*Server // the first three are the primaries it was created with
	TLS   *TLS
}

// ClusterOptions shape a Cluster. The zero value is a plain-text cluster
// with a node timeout of one second.
type ClusterOptions struct {
	NodeTimeout time.Duration // cluster-node-timeout
	TLS         *TLS          // every node, the cluster bus and replication speak only TLS
	// NodeTLS[i], when set, is node i's own TLS in place of TLS, such as a
	// certificate for another name.
	NodeTLS []*TLS
}

// StartCluster starts six nodes, joins them with redis-cli --cluster create
// and waits until every node reports cluster_state:ok and every replica is in
// sync. It takes about two seconds.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	LogClient(t)
	Binary(t)
	binary(t, "redis-cli")
	return startCluster(t, opts)
}

func startCluster(t tb, opts ClusterOptions) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli: %v", err)
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = time.Second
	}
	c := &Cluster{t: t, TLS: opts.TLS}
	for i := range 6 {
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
			// A bus port of its own: port+10000 may be taken, or past 65535.
			"--cluster-port", strconv.Itoa(freePort(t)),
			// Replicas sync at once instead of after the default 5 s.
			"--repl-diskless-sync-delay", "0",
		}
		if opts.TLS != nil {
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes")
		}
		cfg := opts.TLS
		if i < len(opts.NodeTLS) && opts.NodeTLS[i] != nil {
			cfg = opts.NodeTLS[i]
		}
		c.Nodes = append(c.Nodes, start(t, cfg, args...))
	}

	create := append(c.cliArgs(), "--cluster", "create")
	for _, n := range c.Nodes {
		create = append(create, n.Addr())
	}
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(10 * time.Second)
	return c
}

// cliArgs are the redis-cli flags that reach the nodes.
func (c *Cluster) cliArgs() []string {
	if c.TLS == nil {
		return nil
	}
	args := []string{"--tls", "--cacert", c.TLS.CA.File}
	if c.TLS.Client.CertFile != "" {
		args = append(args, "--cert", c.TLS.Client.CertFile, "--key", c.TLS.Client.KeyFile)
	}
	return args
}

// Addrs are host:port of every node that runs.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		if n.cmd != nil {
			addrs = append(addrs, n.Addr())
		}
	}
	return addrs
}

// Client returns a cluster client to inspect the cluster directly; it is
// closed when the test that started the cluster ends.
func (c *Cluster) Client() *redis.ClusterClient {
	return c.ClientFor(c.t)
}

// ClientFor is Client closed when t ends, for a cluster t borrowed.
func (c *Cluster) ClientFor(t tb) *redis.ClusterClient {
	opts := &redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true}
	if c.TLS != nil {
		opts.TLSConfig = c.TLS.CA.ClientConfig(c.TLS.Client, c.TLS.Name)
	}
	cc := redis.NewClusterClient(opts)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Stop ends every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// WaitHealthy waits until every running node reports cluster_state:ok, sees
// every slot served, and has its replica in sync, or fails the test.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var why string
	for {
		if why = c.unhealthy(); why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy after %v: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) unhealthy() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	primaries := 0
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		info, err := n.client().ClusterInfo(ctx).Result()
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return n.Addr() + ": " + firstLines(info, 3)
		}
		repl, err := n.client().Info(ctx, "replication").Result()
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		switch {
		case strings.Contains(repl, "role:master"):
			primaries++
			if !strings.Contains(repl, "connected_slaves:1") || !strings.Contains(repl, ",state=online,") {
				return n.Addr() + ": primary without a replica in sync"
			}
		case !strings.Contains(repl, "master_link_status:up"):
			return n.Addr() + ": replica not in sync"
		}
	}
	if primaries != 3 {
		return strconv.Itoa(primaries) + " primaries, want 3"
	}
	return ""
}

// Role is "master" or "slave", as node n says.
func (c *Cluster) Role(t testing.TB, n *Server) string {
	t.Helper()
	repl, err := n.client().Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication on %s: %v", n.Addr(), err)
	}
	return roleIn(repl)
}

// Failover promotes replica, primary's replica, with CLUSTER FAILOVER and
// waits until replica is a primary and primary its replica. Redis abandons
// a manual failover that has not completed within 5 s, as on a loaded
// machine where the replica is slow to catch up or to collect the votes;
// the failover is then asked for again, until a minute has passed.
func (c *Cluster) Failover(t testing.TB, primary, replica *Server) error {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		if c.Role(t, replica) != "master" {
			if err := replica.client().ClusterFailover(ctx).Err(); err != nil {
				return fmt.Errorf("CLUSTER FAILOVER on %s: %w", replica.Addr(), err)
			}
		}
		// Longer than Redis gives a manual failover, so a failover is
		// asked for again only once Redis has given the last one up.
		for retry := time.Now().Add(10 * time.Second); time.Now().Before(retry); time.Sleep(10 * time.Millisecond) {
			if c.Role(t, replica) == "master" && c.Role(t, primary) == "slave" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not take over from %s within a minute of CLUSTER FAILOVER", replica.Addr(), primary.Addr())
		}
	}
}

// roleIn reads the role from INFO replication.
func roleIn(repl string) string {
	for _, line := range strings.Split(repl, "\n") {
		if r, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return r
		}
	}
	return ""
}

// PrimaryOf returns the node serving key's slot, as the first running node
// sees it, and that node's replica (nil when it has none).
func (c *Cluster) PrimaryOf(t testing.TB, key string) (primary, replica *Server) {
	t.Helper()
	ctx := context.Background()
	byAddr := map[string]*Server{}
	for _, n := range c.Nodes {
		byAddr[n.Addr()] = n
	}
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		slot, err := n.client().ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		nodes, err := n.client().ClusterNodes(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER NODES: %v", err)
		}
		// <id> <ip:port@bus> <flags> <primary id> <ping> <pong> <epoch> <link> <slots>...
		var lines [][]string
		for _, l := range strings.Split(strings.TrimSpace(nodes), "\n") {
			lines = append(lines, strings.Fields(l))
		}
		addr := func(f []string) string { return strings.Split(f[1], "@")[0] }
		for _, f := range lines {
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, _ := strings.Cut(r, "-")
				from, err1 := strconv.ParseInt(lo, 10, 64)
				to, err2 := strconv.ParseInt(hi, 10, 64)
				if hi == "" {
					to, err2 = from, nil
				}
				if err1 != nil || err2 != nil || slot < from || slot > to {
					continue
				}
				primary = byAddr[addr(f)]
				// The primary itself knows its replica for sure; other nodes
				// learn of it by gossip.
				repl, err := primary.client().Info(ctx, "replication").Result()
				if err != nil {
					t.Fatalf("INFO replication on %s: %v", primary.Addr(), err)
				}
				for _, line := range strings.Split(repl, "\n") {
					if !strings.HasPrefix(line, "slave0:") {
						continue
					}
					for _, kv := range strings.Split(strings.TrimPrefix(line, "slave0:"), ",") {
						if port, ok := strings.CutPrefix(kv, "port="); ok {
							replica = byAddr["127.0.0.1:"+strings.TrimSpace(port)]
						}
					}
				}
				return primary, replica
			}
		}
		break
	}
	t.Fatalf("no node serves the slot of %q", key)
	return nil, nil
}

// client is a plain client to this one node, kept for the test's life.
func (s *Server) client() *redis.Client {
	if s.direct == nil {
		s.direct = s.Client()
	}
	return s.direct
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " ")
}

// binary finds a Redis program, or skips (fails under RequireEnv) without it.
func binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s not found and %s=1: %v", name, RequireEnv, err)
		}
		t.Skipf("%s not found (install it, or set %s=1 to make this a failure): %v", name, RequireEnv, err)
	}
	return bin
}

// ID is node n's cluster node id.
func (c *Cluster) ID(t testing.TB, n *Server) string {
	t.Helper()
	id, err := n.client().ClusterMyID(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLUSTER MYID on %s: %v", n.Addr(), err)
	}
	return id
}

// MoveSlot migrates slot and its keys from primary from to primary to, the
// way resharding does: the slot is marked migrating and importing, its keys
// move a few at a time with MIGRATE, pausing between batches so clients meet
// ASK redirects, and then every primary is told the slot's new owner.
func (c *Cluster) MoveSlot(t testing.TB, slot int, from, to *Server, pause time.Duration) {
	t.Helper()
	ctx := context.Background()
	fromID, toID := c.ID(t, from), c.ID(t, to)
	must := func(n *Server, args ...any) {
		t.Helper()
		if err := n.client().Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", args, n.Addr(), err)
		}
	}
	must(to, "cluster", "setslot", slot, "importing", fromID)
	must(from, "cluster", "setslot", slot, "migrating", toID)
	for {
		keys, err := from.client().ClusterGetKeysInSlot(ctx, slot, 5).Result()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", "127.0.0.1", to.Port, "", 0, 5000}
		if c.TLS != nil {
			t.Fatalf("MoveSlot does not migrate over TLS")
		}
		args = append(args, "keys")
		for _, k := range keys {
			args = append(args, k)
		}
		must(from, args...)
		time.Sleep(pause)
	}
	// The new owner first, then the old one, then everyone else.
	must(to, "cluster", "setslot", slot, "node", toID)
	must(from, "cluster", "setslot", slot, "node", toID)
	for _, n := range c.Nodes {
		if n != to && n != from && n.cmd != nil && c.Role(t, n) == "master" {
			must(n, "cluster", "setslot", slot, "node", toID)
		}
	}
}
