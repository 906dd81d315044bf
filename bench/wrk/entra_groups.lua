-- Entra's first provisioning cycle, groups: create a group (POST /Groups), then add its members
-- with PATCHes of up to 100 members each, as Entra batches them. The members are the ids in
-- BENCH_IDS_FILE (one per line), BENCH_GROUP_SIZE per group, in order. One connection per
-- thread; thread t fills groups t, t + threads, ...; the harness interrupts wrk when done.
local size = tonumber(os.getenv("BENCH_GROUP_SIZE") or "1000")
local path = os.getenv("BENCH_IDS_FILE")

local shared = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "entra_shared.lua")
local threads, headers = shared.threads, shared.headers
setup = shared.setup

local ids = nil
local group = nil
local group_id = nil
local next_member = 0

local function load()
  ids = {}
  for line in io.lines(path) do
    ids[#ids + 1] = line
  end
  group = tid
end

request = function()
  if ids == nil then
    load()
  end
  local first = group * size
  if first >= #ids then
    wrk.thread:stop()
    return wrk.format("GET", wrk.path .. "/ServiceProviderConfig", headers)
  end
  if group_id == nil then
    return wrk.format("POST", wrk.path .. "/Groups", headers,
      '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"sync-group-' .. group .. '"}')
  end
  local values = {}
  local last = math.min(first + size, #ids, first + next_member + 100)
  for i = first + next_member + 1, last do
    values[#values + 1] = '{"value":"' .. ids[i] .. '"}'
  end
  return wrk.format("PATCH", wrk.path .. "/Groups/" .. group_id, headers,
    '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[' ..
    table.concat(values, ",") .. ']}]}')
end

response = function(status, headers, body)
  if ids == nil or group * size >= #ids then
    return
  end
  if status == 429 or status == 503 then
    return  -- Entra retries a refusal (the server already held it back): the same request again
  end
  if group_id == nil then
    group_id = string.match(body, '"id":%s*"([^"]+)"')
    if group_id == nil then
      group = group + threads  -- the create failed (counted by wrk): next group
    end
    return
  end
  next_member = next_member + 100
  if next_member >= size or group * size + next_member >= #ids then
    group, group_id, next_member = group + threads, nil, 0
  end
end
