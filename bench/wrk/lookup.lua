-- GET /Users?filter=<attr> eq "<random seeded value>": Entra's lookup before every create.
local attr = os.getenv("BENCH_ATTR") or "userName"
local size = tonumber(os.getenv("BENCH_SIZE") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "seed"
local token = os.getenv("BENCH_TOKEN") or ""
local base = os.getenv("BENCH_PATH") or "/Users"

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

request = function()
  local i = math.random(0, size - 1)
  local value = string.format("%s-%d@bench.test", prefix, i)
  if attr == "externalId" then value = string.format("ext-%s-%d", prefix, i) end
  local filter = attr .. '%20eq%20%22' .. value .. '%22'
  return wrk.format("GET", base .. "?filter=" .. filter, {["Authorization"] = "Bearer " .. token}, nil)
end
