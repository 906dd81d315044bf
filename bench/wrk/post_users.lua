-- POST /Users with a unique, realistic user per request (Entra/Okta-shaped body).
local prefix = os.getenv("BENCH_PREFIX") or "u"
local counter = 0
local thread_count = 0
local token = os.getenv("BENCH_TOKEN") or ""

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

request = function()
  counter = counter + 1
  local name = string.format("%s-%d-%d@bench.test", prefix, tid, counter)
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","active":true,"externalId":"' .. name .. '","displayName":"Bench User","name":{"givenName":"Bench","familyName":"User"},' ..
    '"emails":[{"value":"' .. name .. '","type":"work","primary":true}]}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/scim+json", ["Authorization"] = "Bearer " .. token}, body)
end
