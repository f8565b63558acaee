-- Sliding-window counter: the current window's count plus the previous
-- window's, weighted by how much of it the sliding window still covers.
-- Windows are aligned to Redis's clock, so every gateway replica agrees on
-- them. Denied calls are not counted.
-- KEYS[1] state, a hash: start (ms) and len (ms) of the current window, cur
--         and prev (counts of the current and previous windows)
-- ARGV[1] limit, ARGV[2] window in milliseconds, ARGV[3] cost,
-- ARGV[4] "1" to count this call, "0" to peek
-- Returns {allowed (1/0), count, remaining, ms until everything counted has
-- aged out, ms until this call could pass (0 when allowed)}.
--
-- Every product below stays under 2^53 (the gateway bounds limit x window),
-- so this arithmetic on Lua's doubles is exact.
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local consume = ARGV[4] == '1'

local function floordiv(a, b)
  return math.floor(a / b)
end
local function ceildiv(a, b)
  local q = math.floor(a / b)
  if q * b < a then
    q = q + 1
  end
  return q
end
-- Numbers go to Redis as exact integer strings: Lua would format them with
-- 14 significant digits.
local function int(n)
  return string.format('%.0f', n)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floordiv(tonumber(t[2]), 1000)
local start = now - now % window
local elapsed = now - start

local cur, prev = 0, 0
local s = redis.call('HMGET', KEYS[1], 'start', 'len', 'cur', 'prev')
-- State kept for another window length is not comparable and is dropped.
if s[1] and tonumber(s[2]) == window then
  local stored = tonumber(s[1])
  if stored == start then
    cur, prev = tonumber(s[3]), tonumber(s[4])
  elseif stored == start - window then
    prev = tonumber(s[3])
  end
end

-- allowed <=> cur + cost + prev * (window - elapsed) / window <= limit,
-- compared without dividing.
local room = (limit - cur - cost) * window
local allowed = prev * (window - elapsed) <= room

if allowed and consume then
  cur = cur + cost
  redis.call('HSET', KEYS[1], 'start', int(start), 'len', int(window), 'cur', int(cur), 'prev', int(prev))
  redis.call('PEXPIRE', KEYS[1], int(window - elapsed + window))
end

local count = cur + ceildiv(prev * (window - elapsed), window)
local remaining = math.max(0, limit - count)

local reset = 0
if cur > 0 then
  reset = window - elapsed + window
elseif prev > 0 then
  reset = window - elapsed
end

local retry = 0
if not allowed then
  if cur + cost <= limit then
    -- The call fits once enough of the previous window has slid out.
    retry = window - elapsed - floordiv(room, prev)
  else
    -- Only the next window has room: this window's count then weighs in as
    -- the previous one.
    retry = window - elapsed + window - floordiv((limit - cost) * window, cur)
  end
end

return {allowed and 1 or 0, count, remaining, reset, retry}
