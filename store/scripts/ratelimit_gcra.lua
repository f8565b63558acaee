-- Generic cell rate algorithm: calls are admitted at a smooth rate of limit
-- per window, with up to burst of them at once. The state is the theoretical
-- arrival time (TAT): when the bucket would be empty again. Denied calls are
-- not counted.
--
-- Time is Redis's clock in milliseconds. The emission interval, window /
-- limit milliseconds, is rarely whole, so the arithmetic runs in units of
-- 1/limit ms, where it is: one call costs `window` units, the bucket holds
-- burst x window units. The TAT is kept as whole milliseconds plus a
-- remainder in those units, and everything stays an exact integer under 2^53
-- (the gateway bounds burst x window).
-- KEYS[1] state, a hash: tat (ms), frac (units past tat), lim (the limit the
--         units were counted in)
-- ARGV[1] limit, ARGV[2] window in milliseconds, ARGV[3] burst, ARGV[4] cost,
-- ARGV[5] "1" to count this call, "0" to peek
-- Returns {allowed (1/0), count, remaining, ms until the bucket is empty,
-- ms until this call could pass (0 when allowed)}.
local limit, window, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local consume = ARGV[5] == '1'

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
local function int(n)
  return string.format('%.0f', n)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floordiv(tonumber(t[2]), 1000)

-- backlog: units still in the bucket at now.
local backlog = 0
local s = redis.call('HMGET', KEYS[1], 'tat', 'frac', 'lim')
if s[1] then
  local tat, frac = tonumber(s[1]), tonumber(s[2])
  if tonumber(s[3]) ~= limit and frac > 0 then
    -- The remainder was counted for another limit: round up to the next
    -- millisecond rather than admit early.
    tat, frac = tat + 1, 0
  end
  if tat > now then
    backlog = (tat - now) * limit + frac
  elseif tat == now then
    backlog = frac
  end
end

local capacity = burst * window
local after = backlog + cost * window
local allowed = after <= capacity

if allowed and consume then
  backlog = after
  local ms = floordiv(backlog, limit)
  redis.call('HSET', KEYS[1], 'tat', int(now + ms), 'frac', int(backlog - ms * limit), 'lim', int(limit))
  redis.call('PEXPIRE', KEYS[1], int(ms + 1))
end

local remaining = math.max(0, floordiv(capacity - backlog, window))
local retry = 0
if not allowed then
  retry = ceildiv(after - capacity, limit)
end
return {allowed and 1 or 0, burst - remaining, remaining, ceildiv(backlog, limit), retry}
