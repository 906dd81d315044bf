-- Entra's first provisioning cycle, users: per user a lookup (GET /Users?filter=userName eq ...)
-- and, once it answered with an empty list, the create (POST /Users). One connection per wrk
-- thread, so a thread's responses come back in the order of its requests. Thread t provisions
-- users t, t + threads, t + 2 * threads, ... below BENCH_USERS, then stops; the harness watches
-- the database and interrupts wrk when every user is stored.
local prefix = os.getenv("BENCH_PREFIX") or "sync"
local users = tonumber(os.getenv("BENCH_USERS") or "1000")

local shared = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "entra_shared.lua")
local threads, headers = shared.threads, shared.headers
setup = shared.setup

local user = nil
local creating = false

local function name(i)
  return string.format("%s-%d@bench.test", prefix, i)
end

request = function()
  if user == nil then
    user = tid
  end
  if user >= users then
    wrk.thread:stop()
    return wrk.format("GET", wrk.path .. "/ServiceProviderConfig", headers)
  end
  local n = name(user)
  if not creating then
    return wrk.format("GET", wrk.path .. '/Users?filter=userName%20eq%20%22' .. n .. '%22', headers)
  end
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. n ..
    '","externalId":"ext-' .. user .. '","active":true,"displayName":"Sync User ' .. user ..
    '","emails":[{"value":"' .. n .. '","type":"work","primary":true}]}'
  return wrk.format("POST", wrk.path .. "/Users", headers, body)
end

response = function(status, headers, body)
  if user == nil or user >= users then
    return
  end
  if status == 429 or status == 503 then
    return  -- Entra retries a refusal (the server already held it back): the same request again
  end
  if not creating then
    if status == 200 and string.find(body, '"totalResults":0', 1, true) then
      creating = true
    else
      user = user + threads  -- already there (or refused): Entra would not create it
    end
  else
    creating = false
    user = user + threads
  end
end
