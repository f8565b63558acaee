-- Shared by the scenario scripts: one random stream per wrk thread, seeded
-- apart so the two threads do not ask for the same keys in the same order.
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end

function pick(n)
  return math.random(0, n - 1)
end

-- Headers for a JSON body: wrk.format replaces wrk.headers (the -H ones, with
-- the bearer token) when given its own, so they are copied in.
local json

function json_headers()
  if json == nil then
    json = {}
    for k, v in pairs(wrk.headers) do
      json[k] = v
    end
    json["Content-Type"] = "application/json"
  end
  return json
end
