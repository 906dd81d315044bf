-- POST /internal/v1/logins for each seeded member once per request, in order per thread.
local prefix = os.getenv("BENCH_PREFIX") or "seed"
local org = os.getenv("BENCH_ORG") or ""
local token = os.getenv("BENCH_TOKEN") or ""
local size = tonumber(os.getenv("BENCH_SIZE") or "1000")
local counter = 0
local thread_count = 0
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

request = function()
  local i = (counter * threads + tid) % size
  counter = counter + 1
  local body = '{"org":"' .. org .. '","email":"' .. string.format("%s-%d@bench.test", prefix, i) .. '","method":"password"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
