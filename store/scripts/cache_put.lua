-- Store a cache value, and say whether it replaced one, in one step. Used
-- where SET ... GET cannot do it: the key holds another type, or Redis is
-- older than 6.2.
-- KEYS[1] cache key
-- ARGV[1] value, ARGV[2] ttl in milliseconds
-- Returns 1 when a value was replaced, 0 when the key was created.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return existed
