-- Read (and slide the expiry of) one of the BENCH_SESSIONS sessions the runner stored.
local sessions = tonumber(os.getenv("BENCH_SESSIONS") or "1000")

request = function()
  return wrk.format("GET", "/session/s" .. pick(sessions))
end
