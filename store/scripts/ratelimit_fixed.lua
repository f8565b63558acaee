-- Fixed-window counter. The window starts with the first call and its expiry
-- is never pushed back by later calls. Redis's clock decides, so every gateway
-- replica sees the same window.
-- KEYS[1] counter key
-- ARGV[1] cost, ARGV[2] window in milliseconds, ARGV[3] "1" to count this call, "0" to peek
-- Returns {count, milliseconds until the window resets}. The count is the
-- string Redis holds: Lua's numbers are doubles, which lose the digits of an
-- integer past 2^53.
if ARGV[3] == '1' then
  redis.call('INCRBY', KEYS[1], ARGV[1])
end
local count = redis.call('GET', KEYS[1]) or '0'
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  if ARGV[3] == '1' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  ttl = tonumber(ARGV[2])
end
return {count, ttl}
