-- What the Entra-shaped scripts share: the bearer token's headers, the wrk thread count, and a
-- setup() that numbers wrk's threads 0, 1, ... (each script reads its own number as `tid`).
local shared = {}
local token = os.getenv("BENCH_TOKEN") or ""
shared.threads = tonumber(os.getenv("BENCH_THREADS") or "1")
shared.headers = {["Content-Type"] = "application/scim+json", ["Authorization"] = "Bearer " .. token}
local thread_count = 0

function shared.setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

return shared
