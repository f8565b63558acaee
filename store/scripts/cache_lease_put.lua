-- Fill a cache key under a lease: only while the lease is the key's current
-- one (no DELETE since it was granted, which removes it, and no later lease)
-- and the key is still empty (no plain PUT since, whose value is there). The
-- lease is used up either way. The waiters are told of a fill.
-- KEYS[1] cache key, KEYS[2] lease
-- ARGV[1] token, ARGV[2] value, ARGV[3] ttl in milliseconds,
-- ARGV[4] the lease's channel (keys.cacheLeaseChanged)
-- Returns 1 when stored, 0 when the lease was lost.
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], '')
return 1
