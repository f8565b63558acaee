-- Write a whole session: its document and the TTL it keeps for every later
-- read. A session is a hash so the TTL travels with the document. Every
-- write sets a fresh version, which a PATCH checks before it writes.
-- KEYS[1] session key
-- ARGV[1] document, ARGV[2] ttl in seconds, ARGV[3] "create" to refuse an
-- existing id, ARGV[4] version
-- Returns 1 when an existing session was replaced, 0 when created, -1 when
-- "create" found the id taken.
local existed = redis.call('EXISTS', KEYS[1])
if existed == 1 and ARGV[3] == 'create' then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'ttl', ARGV[2], 'ver', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return existed
