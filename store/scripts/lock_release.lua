-- Release a lock, only for the token that holds it.
-- KEYS[1] lock, a hash: token, fence, ttl
-- ARGV[1] token
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
return 1
