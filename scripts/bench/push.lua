-- wrk script (one thread): POSTs the push bodies in BENCH_BODIES (one per
-- line, written by sync-bench: crates/sync-bench/src/bodies.rs) in turn,
-- then prints one JSON line. Past the last body it starts again; sync-bench
-- refuses such a run (its events would be duplicates).

local bodies, k
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local file = assert(os.getenv("BENCH_BODIES"), "BENCH_BODIES is not set")
  bodies, k = {}, 0
  for line in io.lines(file) do
    bodies[#bodies + 1] = line
  end
end

function request()
  k = k + 1
  return wrk.format("POST", "/", headers, bodies[(k - 1) % #bodies + 1])
end

-- No response() callback: wrk would hand every response to Lua. Statuses
-- >= 400 are in summary.errors.status.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
