-- Replace a session's document only if it is still the version the new one
-- was computed from (compare-and-swap), and restore the session's own TTL.
-- The merge itself runs in the gateway, where JSON numbers keep every digit.
-- KEYS[1] session key
-- ARGV[1] version the document was read at, ARGV[2] new document,
-- ARGV[3] new version
-- Returns {1} when written, {0, document, version} when another write came
-- first (the caller merges again on this newer document), {-1} when the
-- session is gone.
local cur = redis.call('HMGET', KEYS[1], 'doc', 'ttl', 'ver')
if not cur[1] then
  return {-1}
end
local ver = cur[3] or ''
if ver ~= ARGV[1] then
  return {0, cur[1], ver}
end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'ver', ARGV[3])
if cur[2] then
  redis.call('EXPIRE', KEYS[1], cur[2])
end
return {1}
