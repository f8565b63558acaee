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
