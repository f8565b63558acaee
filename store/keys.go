package store

// The key spaces of the gateway. Only this file joins a prefix to a key, so a
// handler can never write outside its own space.
const (
	spaceCache     = "cache:"
	spaceSession   = "session:"
	spaceRateLimit = "ratelimit:"
)

// keys builds Redis keys under the optional global namespace.
type keys struct {
	prefix string // REDIS_KEY_PREFIX, such as "orders:"; may be empty
}

func (k keys) cache(key string) string     { return k.prefix + spaceCache + key }
func (k keys) session(id string) string    { return k.prefix + spaceSession + id }
func (k keys) rateLimit(key string) string { return k.prefix + spaceRateLimit + key }
