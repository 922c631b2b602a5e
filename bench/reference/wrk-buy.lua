-- wrk script for bench/compare.sh, scenario (b): each request buys 1 unit as a random
-- user id (1..1,000,000), as in the seed's reference benchmark. done() adds the figures
-- that `wrk --latency` does not print (p99.9) in a machine-readable form.
-- usage: wrk -t1 -c64 -d10s --latency -s wrk-buy.lua http://127.0.0.1:18088/buy
--
-- With WRK_SEQUENTIAL=1 (scenario (d), not from the seed) request n asks for "?n=<n>", n = 0, 1,
-- 2, ..., so that every request is a new buyer's first purchase with the token compare.sh seeded
-- for that buyer; use one wrk thread (-t1) then, as each thread counts from 0.
math.randomseed(os.time())
local random = math.random
local n = -1
if os.getenv("WRK_SEQUENTIAL") == "1" then
  request = function()
    n = n + 1
    return wrk.format("GET", wrk.path .. "?n=" .. n)
  end
else
  request = function()
    return wrk.format("GET", wrk.path .. "?uid=" .. random(1, 1000000))
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d"
    .. " err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
