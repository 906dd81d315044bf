-- GET one path again and again, with an Authorization header and/or a Cookie from the environment
-- (the admin API's and the console's pages).
local path = os.getenv("BENCH_PATH") or "/"
local headers = {}
if (os.getenv("BENCH_AUTH") or "") ~= "" then headers["Authorization"] = os.getenv("BENCH_AUTH") end
if (os.getenv("BENCH_COOKIE") or "") ~= "" then headers["Cookie"] = os.getenv("BENCH_COOKIE") end

request = function()
  return wrk.format("GET", path, headers, nil)
end
