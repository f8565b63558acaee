-- Read a cache value, or, on a miss, grant the caller the lease to fill it
-- unless someone holds a lease that has not ended. One step, so exactly one
-- of many callers that miss at once gets the lease.
-- KEYS[1] cache key
-- KEYS[2] lease, a hash: token, until (Redis time in ms the lease ends)
-- KEYS[3] lease id counter of the slot; never expires, so ids only grow
-- ARGV[1] lease in milliseconds, ARGV[2] random part of the token
-- Returns {1, value} on a hit; {0, token, 1 when an earlier lease had ended
-- unfilled else 0} when granted; {2, ms the current lease has left} when
-- another caller holds it.
local v = redis.call('GET', KEYS[1])
if v then
  return {1, v}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[2], 'token', 'until')
local expired = 0
if cur[1] then
  local left = (tonumber(cur[2]) or 0) - now
  if left > 0 then
    return {2, left}
  end
  expired = 1
end
local id = redis.call('INCR', KEYS[3])
local token = string.format('%.0f', id) .. '.' .. ARGV[2]
local ms = tonumber(ARGV[1])
redis.call('HSET', KEYS[2], 'token', token, 'until', string.format('%.0f', now + ms))
-- Kept past its end, so that a late fill is still taken while nobody else
-- was granted the key, and the next grant can count the expiry.
redis.call('PEXPIRE', KEYS[2], 2 * ms)
return {0, token, expired}
