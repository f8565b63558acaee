package store

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// The key spaces of the gateway. Only this file joins a prefix to a key, so a
// handler can never write outside its own space.
const (
	spaceCache     = "cache:"
	spaceSession   = "session:"
	spaceRateLimit = "ratelimit:"
	spaceLock      = "lock:"
)

// keys builds Redis keys under the optional global namespace.
type keys struct {
	prefix string // REDIS_KEY_PREFIX, such as "orders:"; may be empty
}

// cache and session keys are exactly the space plus the user's key, so other
// Redis clients find them where they expect.
func (k keys) cache(key string) string  { return k.prefix + spaceCache + key }
func (k keys) session(id string) string { return k.prefix + spaceSession + id }

// rateLimit names a limiter's keys. All of them carry the user key as one hash
// tag, so a limiter's keys share a cluster slot and one script can touch them
// all; suffix tells them apart ("" for the main key).
func (k keys) rateLimit(key, suffix string) string {
	return k.prefix + spaceRateLimit + hashTag(key) + suffix
}

// lock names a lock's keys: the lock itself (""), its fence counter
// (":fence"), and the queue of fair waiters (":queue", ":tickets"), on one
// hash tag so one script can touch them all.
func (k keys) lock(name, suffix string) string {
	return k.prefix + spaceLock + hashTag(name) + suffix
}

// Notification channels: the gateway publishes on them when a key changes in
// a way that requests waiting on this or another gateway care about, and one
// subscriber connection per gateway listens (hub.go). A channel is named
// after its key, so it carries the key's hash tag and would land on the
// key's shard under sharded pub/sub too. Pub/sub channels are not keys: the
// names cannot collide with data.

// lockReleased is the channel on which a lock's release is announced.
func (k keys) lockReleased(name string) string { return k.lock(name, ":released") }

// tagEscaper keeps a user key from ending its hash tag early: a key such as
// "}x" would otherwise give the empty tag "{}", which Redis ignores, and the
// keys of one limiter could land on different slots.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// hashTag wraps key in braces, escaped so the tag is exactly the key.
func hashTag(key string) string {
	return "{" + tagEscaper.Replace(key) + "}"
}

// The keys of cache leases (leasecache.go). A lease must share the cluster
// slot of the cache key it guards, so one script can read the value and
// grant the lease; the cache key carries no hash tag (other clients find it
// under its plain name), so the lease key is given a tag that Redis hashes
// to the cache key's slot instead.
const (
	spaceCacheLease    = "cache-lease:"
	spaceCacheLeaseSeq = "cache-lease-seq:"
)

// cacheLease names the lease of a cache key: a hash of the current token
// and the time it ends.
func (k keys) cacheLease(key string) string {
	return k.prefix + spaceCacheLease + "{" + slotTag(keySlot(k.cache(key))) + "}" + key
}

// cacheLeaseSeq names the counter lease ids are drawn from: one per cluster
// slot, never expiring, so ids only grow for every key of the slot, across
// expiries, and the counters are at most 16384 keys however many keys are
// leased.
func (k keys) cacheLeaseSeq(key string) string {
	return k.prefix + spaceCacheLeaseSeq + "{" + slotTag(keySlot(k.cache(key))) + "}"
}

// cacheLeaseChanged is the channel on which a fill of a leased key, or the
// withdrawal of its lease, is announced (see the notification channels
// above): named after the lease, so on the key's slot.
func (k keys) cacheLeaseChanged(key string) string { return k.cacheLease(key) + ":changed" }

// clusterSlots is the number of hash slots of Redis Cluster.
const clusterSlots = 16384

// keySlot is the cluster slot of a key: CRC16 of its hash tag (the part
// between the first "{" and the next "}", when not empty), else of the
// whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % clusterSlots
}

// crc16 is the CRC-16/XMODEM that Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for each slot, a short string that hashes to it: found
// once, by counting up in base 36 until every slot has one (about 170,000
// tries, a few milliseconds).
var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	var tags [clusterSlots]string
	left := clusterSlots
	for n := uint64(0); left > 0; n++ {
		t := strconv.FormatUint(n, 36)
		if s := crc16(t) % clusterSlots; tags[s] == "" {
			tags[s] = t
			left--
		}
	}
	return &tags
})

// slotTag is a hash tag that lands on slot.
func slotTag(slot int) string { return slotTags()[slot] }

// checkClusterPrefix refuses a namespace whose "{" does not open a hash tag
// closed within it: such a brace would pair with a "}" of the keys built
// after it, and keys that must share a cluster slot (a cache key and its
// lease, the keys of a lock or a rate limiter) would not.
func checkClusterPrefix(prefix string) error {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return nil
	}
	if j := strings.IndexByte(prefix[i+1:], '}'); j > 0 {
		return nil
	}
	return fmt.Errorf("REDIS_KEY_PREFIX %q: on a cluster a \"{\" must open a non-empty hash tag that the prefix closes, "+
		"such as {orders}:, or be left out: keys that one script touches must share a slot", prefix)
}
