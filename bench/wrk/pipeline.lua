-- Ten commands in one POST /redis/pipeline.
local body = '[["SET","bench:pipe:1","v"],["GET","bench:pipe:1"],["INCR","bench:pipe:n"],' ..
  '["GET","bench:pipe:2"],["SET","bench:pipe:2","w"],["EXISTS","bench:pipe:1"],' ..
  '["STRLEN","bench:pipe:1"],["GET","bench:pipe:n"],["DEL","bench:pipe:3"],["PING"]]'

request = function()
  return wrk.format("POST", "/redis/pipeline", json_headers(), body)
end
