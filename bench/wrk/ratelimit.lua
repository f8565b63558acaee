-- Count a call against one of 1,000 limiters whose limit is never reached.
request = function()
  return wrk.format("POST", "/ratelimit/r" .. pick(1000) .. "/incr?limit=1000000000&window=60")
end
