package store

import "strings"

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
