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

	//go:embed scripts/session_patch.lua
	sessionPatchSrc    string
	scriptSessionPatch = redis.NewScript(sessionPatchSrc)

	//go:embed scripts/ratelimit_fixed.lua
	rateLimitFixedSrc    string
	scriptRateLimitFixed = redis.NewScript(rateLimitFixedSrc)

	//go:embed scripts/ratelimit_sliding.lua
	rateLimitSlidingSrc    string
	scriptRateLimitSliding = redis.NewScript(rateLimitSlidingSrc)

	//go:embed scripts/ratelimit_gcra.lua
	rateLimitGCRASrc    string
	scriptRateLimitGCRA = redis.NewScript(rateLimitGCRASrc)

	//go:embed scripts/lock_acquire.lua
	lockAcquireSrc    string
	scriptLockAcquire = redis.NewScript(lockAcquireSrc)

	//go:embed scripts/lock_acquire_fair.lua
	lockAcquireFairSrc    string
	scriptLockAcquireFair = redis.NewScript(lockAcquireFairSrc)

	//go:embed scripts/lock_leave.lua
	lockLeaveSrc    string
	scriptLockLeave = redis.NewScript(lockLeaveSrc)

	//go:embed scripts/lock_refresh.lua
	lockRefreshSrc    string
	scriptLockRefresh = redis.NewScript(lockRefreshSrc)

	//go:embed scripts/lock_release.lua
	lockReleaseSrc    string
	scriptLockRelease = redis.NewScript(lockReleaseSrc)
)

// Cache leases (leasecache.go).
var (
	//go:embed scripts/cache_lease_get.lua
	cacheLeaseGetSrc    string
	scriptCacheLeaseGet = redis.NewScript(cacheLeaseGetSrc)

	//go:embed scripts/cache_delete.lua
	cacheDeleteSrc    string
	scriptCacheDelete = redis.NewScript(cacheDeleteSrc)

	//go:embed scripts/cache_lease_put.lua
	cacheLeasePutSrc    string
	scriptCacheLeasePut = redis.NewScript(cacheLeasePutSrc)
)
