-- Delete a cache value and withdraw its lease, in one step: a fill under a
-- lease granted before the DELETE must never land after it. Waiters on the
-- lease are told, so one of them takes the next.
-- KEYS[1] cache key, KEYS[2] lease
-- ARGV[1] the lease's channel (keys.cacheLeaseChanged)
-- Returns the number of values deleted, 0 or 1.
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PUBLISH', ARGV[1], '')
end
return redis.call('DEL', KEYS[1])
