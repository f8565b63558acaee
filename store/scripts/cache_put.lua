-- Store a cache value and say whether it replaced one, in one command, so the
-- write can share an auto-pipelined batch with other requests' commands. Used
-- when SET ... GET cannot: the key holds another type, or Redis is older than
-- 6.2.
-- KEYS[1] cache key
-- ARGV[1] value, ARGV[2] ttl in milliseconds (0 = no expiry)
-- Returns 1 when a value was replaced, 0 when the key was created.
local existed = redis.call('EXISTS', KEYS[1])
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return existed
