-- GET /cache/u<i> with i uniform over the BENCH_KEYS keys the runner stored.
local keys = tonumber(os.getenv("BENCH_KEYS") or "100000")

request = function()
  return wrk.format("GET", "/cache/u" .. pick(keys))
end
