-- PUT a 200-byte JSON document to one of 10,000 keys.
local body = '{"id":123456789,"name":"benchmark document","tags":["alpha","beta","gamma"],' ..
  '"active":true,"score":98.6,"note":"the payload of the PUT scenario is two hundred bytes of JSON","pad":"xxxxxxxxxxxxxxxxxx"}'
assert(#body == 200, "PUT body is " .. #body .. " bytes, want 200")

request = function()
  return wrk.format("PUT", "/cache/p" .. pick(10000), json_headers(), body)
end
