package store

import (
	"context"
	"strings"
	"testing"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, which Redis Cluster's spec quotes.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
}

// A lease and its id counter land on the slot of the cache key they guard,
// whatever braces the key or the namespace hold, as Redis itself computes it.
func TestCacheLeaseKeysShareTheSlot(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	rdb := srv.Client()
	ctx := context.Background()
	slot := func(key string) int64 {
		t.Helper()
		n, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
		}
		return n
	}
	for _, prefix := range []string{"", "orders:", "{tenant}:", "a}b:", "x{y}{"} {
		k := keys{prefix: prefix}
		for _, key := range []string{
			"user:42", "a{b}c", "{}x", "}x", "{{a}", "{a", "x}{y}", "%7B", "ключ", strings.Repeat("z", 1024),
		} {
			want := slot(k.cache(key))
			if got := int64(keySlot(k.cache(key))); got != want {
				t.Errorf("prefix %q key %q: keySlot = %d, Redis says %d", prefix, key, got, want)
			}
			if got := slot(k.cacheLease(key)); got != want {
				t.Errorf("prefix %q key %q: lease %q on slot %d, cache key on %d", prefix, key, k.cacheLease(key), got, want)
			}
			if got := slot(k.cacheLeaseSeq(key)); got != want {
				t.Errorf("prefix %q key %q: id counter on slot %d, cache key on %d", prefix, key, got, want)
			}
		}
	}
	for s, tag := range slotTags() {
		if tag == "" || strings.ContainsAny(tag, "{}") || keySlot(tag) != s {
			t.Fatalf("slot tag %d = %q", s, tag)
		}
	}
}

// A namespace with a "{" that does not open a tag within it would split the
// keys of a lease (or a lock) over slots: refused on a cluster, with the
// variable named.
func TestClusterRefusesAnOpenBraceInThePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{{"", true}, {"orders:", true}, {"{orders}:", true}, {"a}b", true}, {"a{", false}, {"{}x", false}, {"}{", false}} {
		err := checkClusterPrefix(tc.prefix)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "REDIS_KEY_PREFIX")) {
			t.Errorf("checkClusterPrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
	if _, err := New(Options{ClusterNodes: []string{"127.0.0.1:1"}, KeyPrefix: "a{"}); err == nil {
		t.Errorf("New with cluster nodes and prefix a{: no error")
	}
}
