-- webdis: SET one of 10,000 keys to the 200 bytes of put.lua, sent as the
-- body of a PUT (webdis takes a PUT's body as the command's last argument).
local body = '{"id":123456789,"name":"benchmark document","tags":["alpha","beta","gamma"],' ..
  '"active":true,"score":98.6,"note":"the payload of the PUT scenario is two hundred bytes of JSON","pad":"xxxxxxxxxxxxxxxxxx"}'
assert(#body == 200, "SET body is " .. #body .. " bytes, want 200")

request = function()
  return wrk.format("PUT", "/SET/bench:webdis:p" .. pick(10000), nil, body)
end
