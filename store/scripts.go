package store

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// Every script names each key it touches in KEYS, so it runs on Redis Cluster.
var (
	//go:embed scripts/cache_put.lua
	cachePutSrc    string
	scriptCachePut = redis.NewScript(cachePutSrc)

	//go:embed scripts/cache_put_if_match.lua
	cachePutIfMatchSrc    string
	scriptCachePutIfMatch = redis.NewScript(cachePutIfMatchSrc)

	//go:embed scripts/cache_incr.lua
	cacheIncrSrc    string
	scriptCacheIncr = redis.NewScript(cacheIncrSrc)

	//go:embed scripts/session_put.lua
	sessionPutSrc    string
	scriptSessionPut = redis.NewScript(sessionPutSrc)

	//go:embed scripts/session_get.lua
	sessionGetSrc    string
	scriptSessionGet = redis.NewScript(sessionGetSrc)

	//go:embed scripts/ratelimit_fixed.lua
	rateLimitFixedSrc    string
	scriptRateLimitFixed = redis.NewScript(rateLimitFixedSrc)
)
