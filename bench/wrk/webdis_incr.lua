-- webdis: INCR one of 1,000 counters, as ratelimit.lua counts one of 1,000 limiters.
request = function()
  return wrk.format("GET", "/INCR/bench:webdis:r" .. pick(1000))
end
