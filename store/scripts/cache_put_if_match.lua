-- Replace a cache value only when its current digest is one the client named
-- (If-Match with entity tags). The digest is SHA-1 of the stored bytes, the
-- same function store.Digest uses, so the check needs no extra round trip.
-- KEYS[1] cache key
-- ARGV[1] new value, ARGV[2] ttl in milliseconds, ARGV[3..n] accepted digests
-- Returns 1 when replaced, 0 when no digest matched or the key is missing.
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local digest = redis.sha1hex(current)
for i = 3, #ARGV do
  if ARGV[i] == digest then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
  end
end
return 0
