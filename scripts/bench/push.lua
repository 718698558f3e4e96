-- wrk script: POSTs Pub/Sub push bodies to the sync function, every request a
-- new event (new message id, entities in turn, growing timestamps). The
-- base64 parts come from `sync-bench pieces` (see crates/sync-bench/src/pieces.rs
-- for why concatenating them is valid base64); this script only concatenates.
--
-- Environment:
--   BENCH_PIECES     the Lua file `sync-bench pieces` wrote (required)
--   BENCH_THREADS    wrk's -t value (default 1)
--   BENCH_OFFSET_US  microseconds after the pieces' base time for request 0
--   BENCH_RUN        text prefixed to message ids (unique per run)
-- At the end it prints one JSON line: requests, duration, errors, latency.

local next_id = 0
function setup(thread)
  thread:set("thread_index", next_id)
  next_id = next_id + 1
end

local P, tables, tid, nthreads, offset, run, n, entities
local headers = { ["Content-Type"] = "application/json" }

local function split(t)
  local out = {}
  for i = 0, t.count - 1 do
    out[i + 1] = string.sub(t.all, i * t.width + 1, (i + 1) * t.width)
  end
  return out
end

function init(args)
  P = dofile(assert(os.getenv("BENCH_PIECES"), "BENCH_PIECES is not set"))
  tables = { A = split(P.A), B = split(P.B), C = split(P.C), D = split(P.D) }
  entities = P.entities or P.A.count
  tid = tonumber(thread_index or 0)
  nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  offset = tonumber(os.getenv("BENCH_OFFSET_US") or "0")
  run = os.getenv("BENCH_RUN") or "run"
  n = 0
end

-- The A block of request k (0 update, 1 create, 2 delete); pieces.rs's
-- `operation` computes the same.
local function operation(k)
  if (P.mix or 0) == 0 then return 0 end
  local round = math.floor(k / entities)
  if round == 0 then return 1 end
  local r = (round - 1) % P.mix
  if r == P.mix / 2 - 1 then return 2 elseif r == P.mix / 2 then return 1 end
  return 0
end

function request()
  local k = n * nthreads + tid
  n = n + 1
  local us = offset + k
  local minute = math.floor(us / 60000000)
  local rem = us - minute * 60000000
  local c = math.floor(rem / 1000)
  local u = rem - c * 1000
  local ts = tables.B[minute + 1] .. tables.C[c + 1] .. tables.D[u + 1]
  local data = tables.A[operation(k) * entities + (k % entities) + 1] .. ts .. P.F .. ts .. P.E
  local body = P.env_pre .. data .. P.env_mid .. run .. "-" .. string.format("%d", k) .. P.env_post
  return wrk.format("POST", "/", headers, body)
end

-- No response() callback: defining one makes wrk hand every response to Lua.
-- wrk counts statuses >= 400 in summary.errors.status.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"latency_p50_us":%d,"latency_p99_us":%d,"latency_mean_us":%.1f,"latency_max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
