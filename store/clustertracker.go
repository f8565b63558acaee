package store

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTracker runs the near-cache on Redis Cluster: a tracker for each
// primary, whose reader reads the keys of that primary's slots. Redis tracks
// keys per node, and no node knows what another one tracked: a replica that
// a failover promotes reports nothing of the keys read on its old primary,
// and a slot that moved is written on its new primary. So the cache
// serves only while every primary has its tracker up, and empties when any
// tracker or reader may have missed a message, and when the slot map changes
// (checked every trackerPing). A key migrating between primaries is covered
// meanwhile: MIGRATE deletes it on the old primary, which reports that, and
// a read the old primary redirects (ASK, MOVED) is answered by the main
// client and not kept.
type clusterTracker struct {
	cc     *redis.ClusterClient // routes the reads, as it routes the batched commands
	cache  *nearCache
	prefix string
	logger *slog.Logger

	mu     sync.Mutex
	nodes  map[string]*nodeTracker // by the address cc gives each primary
	layout string                  // the slot map last seen: ranges and their primaries' ids
}

// nodeTracker is the tracker of one primary, running until cancel.
type nodeTracker struct {
	t      *tracker
	cancel context.CancelFunc
	done   chan struct{}
}

func newClusterTracker(cc *redis.ClusterClient, cache *nearCache, prefix string, logger *slog.Logger) *clusterTracker {
	return &clusterTracker{cc: cc, cache: cache, prefix: prefix, logger: logger, nodes: map[string]*nodeTracker{}}
}

// readerFor is the reader of the primary that serves key, as the cluster
// client sees the slot map; nil while that primary has no tracker up.
func (ct *clusterTracker) readerFor(ctx context.Context, key string) *reader {
	node, err := ct.cc.MasterForKey(ctx, key)
	if err != nil {
		return nil
	}
	ct.mu.Lock()
	n := ct.nodes[node.Options().Addr]
	ct.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.t.current()
}

// run follows the slot map until ctx ends, keeping a tracker on each
// primary.
func (ct *clusterTracker) run(ctx context.Context) {
	defer ct.stopAll()
	tick := time.NewTicker(trackerPing)
	defer tick.Stop()
	for {
		ct.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check reads the slot map and the primaries, and when either changed,
// empties the cache and starts and stops trackers to match.
func (ct *clusterTracker) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*trackerPing)
	defer cancel()
	slots, err := ct.cc.ClusterSlots(ctx).Result()
	if err != nil {
		return // a node gone: its tracker notices, and the next check sees the new map
	}
	layout := slotLayout(slots)
	primaries := map[string]*redis.Options{}
	var mu sync.Mutex
	err = ct.cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		primaries[c.Options().Addr] = c.Options()
		return nil
	})
	if err != nil {
		return
	}

	ct.mu.Lock()
	changed := layout != ct.layout
	if changed && ct.layout != "" {
		ct.logger.Info("near-cache emptied: the cluster's slot map changed")
		// The cluster client learns of the change on its next MOVED; the
		// reads routed meanwhile to a primary that lost the slot are
		// redirected and not kept, but the sooner the better.
		ct.cc.ReloadState(ctx)
	}
	ct.layout = layout
	var gone []*nodeTracker
	for addr, n := range ct.nodes {
		if primaries[addr] == nil {
			gone = append(gone, n)
			delete(ct.nodes, addr)
			changed = true
		}
	}
	for addr, opts := range primaries {
		if ct.nodes[addr] == nil {
			ct.nodes[addr] = ct.start(opts)
			changed = true
		}
	}
	if changed {
		ct.cache.stop()
	}
	ct.settle()
	ct.mu.Unlock()
	for _, n := range gone {
		n.stop()
	}
}

// start runs a tracker on the primary of opts, until it is stopped.
func (ct *clusterTracker) start(opts *redis.Options) *nodeTracker {
	t := newTracker(opts, ct.cache, ct.prefix, ct.logger)
	t.up = func() {
		ct.mu.Lock()
		defer ct.mu.Unlock()
		ct.settle()
	}
	t.down = func() {
		ct.mu.Lock()
		defer ct.mu.Unlock()
		ct.cache.stop()
		ct.settle()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &nodeTracker{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		t.run(ctx)
	}()
	return n
}

// settle serves when every primary has its tracker up, and stops serving
// (emptying the cache) when one has not. Called with ct.mu held.
func (ct *clusterTracker) settle() {
	if len(ct.nodes) == 0 {
		ct.cache.stop()
		return
	}
	for _, n := range ct.nodes {
		if !n.t.live.Load() {
			ct.cache.stop()
			return
		}
	}
	if !ct.cache.serving() {
		ct.cache.start()
		ct.logger.Info("near-cache serving", "primaries", len(ct.nodes), "prefix", ct.prefix)
	}
}

func (n *nodeTracker) stop() {
	n.cancel()
	_ = n.t.close()
	<-n.done
}

func (ct *clusterTracker) stopAll() {
	ct.mu.Lock()
	nodes := ct.nodes
	ct.nodes = map[string]*nodeTracker{}
	ct.mu.Unlock()
	for _, n := range nodes {
		n.stop()
	}
	ct.cache.stop()
}

// slotLayout describes a slot map: each range and the id of its primary, in
// slot order, so that two nodes' answers compare equal when they agree.
func slotLayout(slots []redis.ClusterSlot) string {
	slices.SortFunc(slots, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
	var b strings.Builder
	for _, s := range slots {
		b.WriteString(strconv.Itoa(s.Start))
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(s.End))
		b.WriteByte(' ')
		if len(s.Nodes) > 0 {
			id := s.Nodes[0].ID
			if id == "" {
				id = s.Nodes[0].Addr
			}
			b.WriteString(id)
		}
		b.WriteByte(';')
	}
	return b.String()
}
