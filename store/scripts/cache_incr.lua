-- Increment a cache counter. A counter this call creates gets the default TTL,
-- so counters never pile up without expiry; an existing key keeps its TTL.
-- KEYS[1] cache key
-- ARGV[1] increment, ARGV[2] ttl in milliseconds for a new key
-- Returns the new value as Redis holds it, a string: Lua's numbers are
-- doubles, which lose the digits of an integer past 2^53.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('GET', KEYS[1])
