-- Release a lock, only for the token that holds it, and tell the waiters.
-- KEYS[1] lock, a hash: token, fence, ttl
-- ARGV[1] token, ARGV[2] the channel on which gateways wait for the lock
-- Returns 1 when released, 0 when nobody holds the lock, -1 when another
-- token does.
local token = redis.call('HGET', KEYS[1], 'token')
if not token then
  return 0
end
if token ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '')
return 1
