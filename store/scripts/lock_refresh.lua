-- Extend a lock, only for the token that holds it.
-- KEYS[1] lock, a hash: token, fence, ttl
-- ARGV[1] token, ARGV[2] new ttl in milliseconds, or "" for the lock's own
-- Returns {1, fence (the string the hash holds), ttl in ms, Redis's time in ms} when extended, {0} when
-- nobody holds the lock, {-1} when another token does.
local h = redis.call('HMGET', KEYS[1], 'token', 'fence', 'ttl')
if not h[1] then
  return {0}
end
if h[1] ~= ARGV[1] then
  return {-1}
end
local ttl = h[3]
if ARGV[2] ~= '' then
  ttl = ARGV[2]
  redis.call('HSET', KEYS[1], 'ttl', ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
local t = redis.call('TIME')
return {1, h[2], tonumber(ttl), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
