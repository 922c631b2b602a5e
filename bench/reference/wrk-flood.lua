-- wrk script for bench/edge.sh, flood scenarios (g) and (h): the same GET from one client
-- address (wrk's), as fast as wrk sends it. response() counts the answers per status, so the
-- 429s (shed) are counted exactly instead of read off "Non-2xx or 3xx responses" (measured:
-- the counter costs wrk ~4 % of its rate, inside the run-to-run noise). done() prints the counts
-- and the latency figures that `wrk --latency` does not print (p99.9) as one machine-readable line.
-- Any -t works: each thread counts in its own Lua state, done() adds them up (thread:get).
-- usage: wrk -t1 -c64 -d10s --latency -s wrk-flood.lua http://127.0.0.1:18180/api/activities
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

counts = {}   -- global: done() reads each thread's copy with thread:get("counts")
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, s2xx, s429, parts = {}, 0, 0, {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts") or {}) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do
    if status >= 200 and status < 300 then s2xx = s2xx + n end
    if status == 429 then s429 = s429 + n end
    table.insert(parts, status .. ":" .. n)
  end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d"
    .. " err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d s2xx=%d s429=%d statuses=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    s2xx, s429, table.concat(parts, ";")))
end
