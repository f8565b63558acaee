// Package series caches the children of Prometheus metric vectors by their
// label values, for the hot paths that count every request or command:
// WithLabelValues hashes the values and takes the vector's lock on each call.
package series

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Cache maps label values to the metric children made for them. Reads take
// no lock: the map is replaced, never changed, and the label values must be
// bounded (methods, route patterns, statuses, token names, command labels),
// so it settles after a few calls of each kind.
type Cache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serializes the writers
}

// Get returns the child for k, made by newV the first time k is asked for.
func (c *Cache[K, V]) Get(k K, newV func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if m := c.m.Load(); m != nil {
		old = *m
	}
	if v, ok := old[k]; ok {
		return v
	}
	next := maps.Clone(old)
	if next == nil {
		next = map[K]V{}
	}
	v := newV(k)
	next[k] = v
	c.m.Store(&next)
	return v
}
