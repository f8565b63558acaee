-- Take a lock in arrival order: like lock_acquire.lua, but only for the
-- first live ticket of the lock's queue. A waiter's ticket joins the queue on
-- its first attempt and is kept alive by every attempt after it; a ticket
-- whose waiter stopped trying (a crashed gateway) is dropped when its lease
-- runs out.
-- KEYS[1] lock, a hash: token, fence, ttl
-- KEYS[2] fence counter
-- KEYS[3] queue, a sorted set: ticket -> arrival number
-- KEYS[4] ticket leases, a sorted set: ticket -> expiry in ms
-- ARGV[1] token, ARGV[2] ttl in milliseconds, ARGV[3] ticket, ARGV[4] ticket
-- lease in milliseconds
-- Returns {1, fence, now} when taken, {0, the holder's remaining ms, now}
-- when held, {0, 0, now} when free but another ticket is first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, d in ipairs(dead) do
  redis.call('ZREM', KEYS[3], d)
  redis.call('ZREM', KEYS[4], d)
end
if not redis.call('ZSCORE', KEYS[3], ARGV[3]) then
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local n = 1
  if last[2] then
    n = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[3], n, ARGV[3])
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[3])
-- An abandoned queue goes away by itself.
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1]), now}
end
if redis.call('ZRANGE', KEYS[3], 0, 0)[1] ~= ARGV[3] then
  return {0, 0, now}
end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
local fence = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fence', string.format('%.0f', fence), 'ttl', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, fence, now}
