-- Take a lock when nobody holds it, with the next fencing token. The fence
-- counter never expires and is never reset, so fences only grow, across
-- expiries and releases.
-- KEYS[1] lock, a hash: token, fence, ttl (ms, restored by a refresh)
-- KEYS[2] fence counter
-- ARGV[1] token, ARGV[2] ttl in milliseconds
-- Returns {1, fence (a string), Redis's time in ms} when taken, {0, the holder's
-- remaining ms, Redis's time in ms} when held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1]), now}
end
redis.call('INCR', KEYS[2])
-- As the string Redis holds: a Lua number would round a fence past 2^53.
local fence = redis.call('GET', KEYS[2])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fence', fence, 'ttl', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, fence, now}
