-- Read a session and slide its expiry back to the session's own TTL.
-- KEYS[1] session key
-- Returns the document, or nil when the session is missing or expired.
local fields = redis.call('HMGET', KEYS[1], 'doc', 'ttl')
if not fields[1] then
  return false
end
if fields[2] then
  redis.call('EXPIRE', KEYS[1], fields[2])
end
return fields[1]
