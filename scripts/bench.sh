#!/usr/bin/env bash
# Benchmarks, all on loopback: builds in release mode, then measures
#   1. the core's cost per event (criterion),
#   2. the HTTP layer alone (sync-bench serve-memory: the sync function's
#      router on in-memory ports; wrk, concurrency 1/16/64),
#   3. the Datastore emulator's own limit (sync-bench limit: the store's
#      transaction per event, nothing else),
#   4. end to end through the real push path (syncctl load → Pub/Sub emulator
#      push → sync function → Datastore emulator), as a share of 3,
#   5. cold start, 6. memory and binary sizes,
#   7. how cost grows with payload size and with concurrent requests per entity,
#   8. the direct path against the previous commit's release binary, side by
#      side in one run: CPU, throughput and latency per event at 16 requests
#      over 200 entities (updates with some creates and deletes) and at 64
#      over 10 hot entities, also with 20 and 50 ms added to every Datastore
#      request, RPCs and bytes per event counted on the wire, memory after
#      20,000 entities, the first event after ready; and the cost per million
#      events they imply, beside the recipe's,
#   9. memory under a burst (burst): the memory test's 80 pushes at once
#      (tests/tests/memory.rs) on these release builds, each function at its
#      deployed memory: peak RSS, and what one delivery holds per body byte,
# prints one table and the targets met or not, and writes
# target/bench/results.json. Each figure is the median of several runs. Stops everything it started (emulators included).
# See BENCHMARKS.md for what each figure means.
set -euo pipefail

PROJECT=${PROJECT:-datastore-sync-bench}
QUICK=0
OUT=""
ONLY=""
RUNS=${RUNS:-3}   # runs per case (the median is quoted)
HTTP_SECS=2       # per wrk run, HTTP layer alone
GROWTH_SECS=2     # per wrk run, item 7
LIMIT_SECS=1      # measured seconds per emulator-limit run (after 0.3 s warm-up)
E2E_EVENTS=${E2E_EVENTS:-10000} # events per end-to-end run
PACED_EVENTS=500  # events per paced end-to-end run (latency below capacity)
PACED_RATE=100    # events/s of the paced runs
PROBE_EVENTS=100  # messages for the push-concurrency probe
COLD_RUNS=10      # starts per function for cold start
CORE_SECS=2       # criterion measurement time per benchmark
WRK_THREADS=${WRK_THREADS:-1}
CONCURRENCIES=(1 16 64)
E2E_ENTITIES=(1000 10)
PAYLOADS=(1024 10240 102400)
PER_ENTITY=(1 2 4 8)
GROWTH_CONCURRENCY=16 # payload cases
PER_ENTITY_TOTAL=8    # per-entity cases: 8 requests in flight over 8/k entities
MANY_ENTITIES=20000   # distinct entities of the memory case (item 6)
MANY_SECS=10          # wrk seconds of the memory case (it stops at fewer entities if slower)
E2E_TIMEOUT=300       # seconds an end-to-end run may take before it counts as failed
DIRECT_SECS=5         # per wrk run, item 8
COUNT_SECS=5          # per counting run through the RPC proxy, item 8
DIRECT_CASES=("16 200 --mix" "64 10") # item 8: concurrency, entities, pieces options
DIRECT_DELAYS=(0 20 50) # item 8: ms added to every Datastore request, 64 requests over 10 entities
DIRECT_ENTITIES=20000 # item 8: distinct entities before memory is read
FIRST_RUNS=5          # item 8: starts measuring the first event after ready
BASELINE=${BASELINE:-HEAD~1} # item 8: the revision to compare against
ITEMS="core,http,cold,push,limit,e2e,growth,size,direct,burst"

usage() {
  cat <<EOF
usage: scripts/bench.sh [--quick] [--only ITEMS] [--out FILE] [--baseline REV]
  --quick         one run per case, shorter runs, 2,000 events end to end (a smoke run)
  --only ITEMS    comma-separated subset of: $ITEMS
  --out FILE      where to write the JSON results (default target/bench/results.json)
  --baseline REV  the git revision item 8 compares against (default HEAD~1)
Environment: PROJECT (emulator project id), WRK_THREADS (wrk -t, default 1),
  RUNS (runs per case, default 3), E2E_EVENTS (events per end-to-end run, default 10000),
  BASELINE (as --baseline).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a file}; shift ;;
    --baseline) BASELINE=${2:?--baseline needs a revision}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  RUNS=1 HTTP_SECS=2 GROWTH_SECS=1 LIMIT_SECS=1 E2E_EVENTS=2000 PACED_EVENTS=200 COLD_RUNS=5 CORE_SECS=1
  MANY_SECS=3 DIRECT_SECS=3 COUNT_SECS=3 FIRST_RUNS=3
fi
for item in ${ONLY//,/ }; do
  case ",$ITEMS," in
    *",$item,"*) ;;
    *) echo "unknown item in --only: $item (known: $ITEMS)" >&2; exit 2 ;;
  esac
done
# want ITEM: whether ITEM is measured in this run.
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
benchdir="$root/target/bench"
logdir="$benchdir/logs"
raw="$benchdir/raw.jsonl"
OUT=${OUT:-"$benchdir/results.json"}
rm -rf "$logdir"
mkdir -p "$logdir"
: >"$raw"

# shellcheck source=scripts/lib/emulators.sh disable=SC1091
. "$root/scripts/lib/emulators.sh"
# shellcheck source=scripts/lib/processes.sh disable=SC1091
. "$root/scripts/lib/processes.sh"

cleanup() {
  processes_stop
  emulators_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*" >&2; }
FAILED=()
# measure DESCRIPTION CMD...: runs CMD and appends its stdout (result lines)
# to the raw file; a failure is reported at the end instead of stopping the run.
measure() {
  local what=$1
  shift
  if ! "$@" >>"$raw"; then
    echo "FAILED: $what" >&2
    FAILED+=("$what")
  fi
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# start_sync LOG PORT [ENV...] CMD...: starts a server (the release sync
# function, or the bench's in-memory one) with ENV on PORT; sets FN_PID and
# FN_PORT once /healthz answers.
start_sync() {
  local log=$1
  FN_PORT=$2
  shift 2
  env PORT="$FN_PORT" "$@" >"$log" 2>&1 &
  FN_PID=$!
  PIDS+=("$FN_PID")
  wait_healthz "$FN_PORT" "$FN_PID"
}

ensure_wrk() {
  command -v wrk >/dev/null && return 0
  step "Installing wrk (Debian package)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y wrk >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null; }
  command -v wrk >/dev/null
}

# wrk_run ITEM CASE RUN PIECES CONNS SECS PORT: one wrk run with push.lua,
# its output on stdout (and in wrk.log). Run 0 is a warm-up (output dropped).
wrk_run() {
  local item=$1 case=$2 run=$3 pieces=$4 conns=$5 secs=$6 port=$7
  local threads=$WRK_THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  # Each run starts 5 minutes of event time after the previous one, so the
  # entities of a case only ever see newer events.
  local env_vars=(BENCH_PIECES="$pieces" BENCH_THREADS="$threads"
    BENCH_OFFSET_US=$((run * 300000000)) BENCH_RUN="$item-$case-r$run")
  local args=(-t "$threads" -c "$conns" -d "${secs}s" --timeout 30s -s "$root/scripts/bench/push.lua"
    "http://127.0.0.1:$port/")
  if [ "$run" = 0 ]; then
    env "${env_vars[@]}" wrk "${args[@]}" >"$logdir/wrk-warmup.log" 2>&1
    return
  fi
  env "${env_vars[@]}" wrk "${args[@]}" 2>&1 | tee -a "$logdir/wrk.log"
}

# wrk_push ITEM CASE RUN PIECES CONNS SECS PORT FIELDS...: one wrk run
# (wrk_run); records requests/s and latency.
wrk_push() {
  local item=$1 case=$2 run=$3
  if [ "$run" = 0 ]; then
    wrk_run "$@"
    return
  fi
  wrk_run "${@:1:7}" |
    "$bin/sync-bench" wrk-record --item "$item" --case "$case" --run "$run" "${@:8}"
}

# check_push PORT: one push body with curl; the function must answer 204.
check_push() {
  local sample="$logdir/sample-body.json" code
  "$bin/sync-bench" pieces --out "$benchdir/pieces-check.lua" --entity-prefix check --entities 1 \
    --project "$PROJECT" --print-sample >"$sample"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    --data-binary "@$sample" "http://127.0.0.1:$1/")
  if [ "$code" != 204 ]; then
    echo "a push body got HTTP $code instead of 204 (see $logdir)" >&2
    return 1
  fi
}

bench_core() {
  step "1. Core: cargo bench -p sync-core --bench pipeline"
  if ! cargo bench --locked -p sync-core --bench pipeline -- \
    --warm-up-time 1 --measurement-time "$CORE_SECS" >"$logdir/criterion.log" 2>&1; then
    echo "cargo bench failed; see $logdir/criterion.log" >&2
    FAILED+=("core")
    return
  fi
  local name
  for name in parse_validate_merge parse_validate_merge_with_stored_round_trip; do
    measure "core $name" "$bin/sync-bench" criterion --item core --case "$name" \
      --dir "$root/target/criterion" --name "$name"
  done
}

bench_http() {
  step "2. HTTP layer alone: sync-bench serve-memory, wrk, concurrency ${CONCURRENCIES[*]}"
  local c run pieces
  start_sync "$logdir/sync-memory.log" "$(free_port)" GOOGLE_CLOUD_PROJECT="$PROJECT" \
    "$bin/sync-bench" serve-memory
  check_push "$FN_PORT"
  for c in "${CONCURRENCIES[@]}"; do
    pieces="$benchdir/pieces-http-c$c.lua"
    "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "http-c$c" --entities 1000 --project "$PROJECT"
    wrk_push http "c=$c" 0 "$pieces" "$c" 1 "$FN_PORT"
    for run in $(seq 1 "$RUNS"); do
      measure "http c=$c run $run" wrk_push http "c=$c" "$run" "$pieces" "$c" "$HTTP_SECS" "$FN_PORT" \
        --field "concurrency=$c"
    done
  done
  stop_pid "$FN_PID"
  # One JSON line per event makes this log hundreds of MB: keep a sample.
  head -n 1000 "$logdir/sync-memory.log" >"$logdir/sync-memory.head.log"
  rm -f "$logdir/sync-memory.log"
}

bench_cold() {
  step "5. Cold start: spawn → first 200 on /healthz, $COLD_RUNS starts each (gcp backend on the emulators)"
  measure "cold start sync" "$bin/sync-bench" cold-start --case sync-function --bin "$bin/sync-function" \
    --runs "$COLD_RUNS" --env LOG_FORMAT=json --env DEAD_LETTER_TOPIC=sync-dead-letters
  measure "cold start audit" "$bin/sync-bench" cold-start --case audit-function --bin "$bin/audit-function" \
    --runs "$COLD_RUNS" --env LOG_FORMAT=json
}

PUSH_C=2
bench_push() {
  step "4a. How many pushes the Pub/Sub emulator keeps in flight per subscription (probe)"
  # A slow endpoint (25 ms per answer) behind the two push subscriptions of a
  # separate topology: the most requests it holds at once per path is the
  # concurrency the end-to-end path runs at, whatever the function could take.
  local port probe_pid
  port=$(free_port)
  "$bin/sync-bench" push-probe --item push --case "per subscription" --port "$port" \
    --expect $((2 * PROBE_EVENTS)) >"$logdir/probe.json" &
  probe_pid=$!
  PIDS+=("$probe_pid")
  # Ready once it accepts connections (a bare connect is not counted).
  local deadline=$((SECONDS + 10))
  until (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; do
    if ! kill -0 "$probe_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "push probe on port $port did not start" >&2
      return 1
    fi
    sleep 0.05
  done
  "$bin/syncctl" setup --suffix probe --sync-endpoint "http://127.0.0.1:$port/sync" \
    --audit-endpoint "http://127.0.0.1:$port/audit" >"$logdir/setup-probe.log"
  "$bin/syncctl" load --topic data-sync-events-probe --events "$PROBE_EVENTS" --entities 10 \
    --entity-prefix probe --quiet >"$logdir/load-probe.log"
  if wait "$probe_pid"; then
    cat "$logdir/probe.json" >>"$raw"
    PUSH_C=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["max_in_flight"]))' \
      <"$logdir/probe.json")
  else
    echo "FAILED: push probe (assuming 2 pushes in flight)" >&2
    FAILED+=("push probe")
  fi
  stop_pid "$probe_pid"
  echo "the emulator keeps $PUSH_C pushes in flight per subscription" >&2
}

bench_limit() {
  step "3. The Datastore emulator's limit: the store's transaction (begin + lookup + commit) per event"
  local limit_c=("${CONCURRENCIES[@]}") e c run
  case " ${limit_c[*]} " in
    *" $PUSH_C "*) ;;
    *) mapfile -t limit_c < <(printf '%s\n' "${limit_c[@]}" "$PUSH_C" | sort -n) ;;
  esac
  "$bin/sync-bench" limit --item warmup --case limit --entities 1000 --concurrency 16 \
    --namespace bench_warmup --warmup-s 0 --duration-s 3 >"$logdir/limit-warmup.json" ||
    { echo "the emulator-limit client failed" >&2; FAILED+=("limit warm-up"); }
  for e in "${E2E_ENTITIES[@]}"; do
    for c in "${limit_c[@]}"; do
      for run in $(seq 1 "$RUNS"); do
        measure "limit entities=$e c=$c run $run" "$bin/sync-bench" limit --item limit \
          --case "entities=$e c=$c" --run "$run" --entities "$e" --concurrency "$c" \
          --namespace "bench_limit_e$e" --entity-prefix "limit-e$e" --seed "$run" \
          --warmup-s 0.3 --duration-s "$LIMIT_SECS"
      done
    done
  done
}

# e2e_run ITEM CASE RUN EVENTS ENTITIES PREFIX RECORD RATE: one end-to-end
# run with a fresh sync function on the push subscription's port; RATE 0
# publishes as fast as syncctl load can.
e2e_run() {
  local item=$1 case=$2 run=$3 events=$4 entities=$5 prefix=$6 record=$7 rate=$8
  local log="$logdir/e2e-$prefix.log" idle start_ms load_pid rc=0
  start_sync "$log" "$SYNC_PORT" DEAD_LETTER_TOPIC=sync-dead-letters LOG_FORMAT=json "$bin/sync-function"
  sleep 1
  idle=$(rss_kib "$FN_PID")
  start_ms=$(date +%s%3N)
  "$bin/syncctl" load --events "$events" --entities "$entities" --entity-prefix "$prefix" \
    --seed "$run" --rate "$rate" --quiet >"$logdir/load-$prefix.log" 2>&1 &
  load_pid=$!
  PIDS+=("$load_pid")
  local follow=("$bin/sync-bench" e2e-follow --item "$item" --case "$case" --run "$run"
    --log "$log" --expect "$events" --start-ms "$start_ms" --pid "$FN_PID"
    --rss-idle-kib "$idle" --timeout-s "$E2E_TIMEOUT" --field "entities=$entities"
    --cpu "sync=pid:$FN_PID" --cpu "audit=pid:$AUDIT_PID"
    --cpu "datastore_emulator=pgid:${EMULATOR_PGIDS[0]}" --cpu "pubsub_emulator=pgid:${EMULATOR_PGIDS[1]}")
  if [ "$record" = 1 ]; then
    measure "$item $case run $run" "${follow[@]}"
  else
    "${follow[@]}" >"$logdir/e2e-warmup.json" || rc=1
  fi
  stop_pid "$load_pid"
  stop_pid "$FN_PID"
  return "$rc"
}

# setup_topology: the audit function and the recipe's topology (syncctl
# setup, pushing to $SYNC_PORT), once.
TOPOLOGY=0
setup_topology() {
  [ "$TOPOLOGY" = 1 ] && return 0
  step "Topology (syncctl setup) and the audit function"
  local audit_port
  audit_port=$(free_port)
  PORT=$audit_port LOG_FORMAT=json "$bin/audit-function" >"$logdir/audit-function.log" 2>&1 &
  AUDIT_PID=$!
  PIDS+=("$AUDIT_PID")
  wait_healthz "$audit_port" "$AUDIT_PID"
  SYNC_PORT=$(free_port)
  "$bin/syncctl" setup --sync-endpoint "http://127.0.0.1:$SYNC_PORT/" \
    --audit-endpoint "http://127.0.0.1:$audit_port/" >"$logdir/setup.log"
  TOPOLOGY=1
}

bench_e2e() {
  local e run
  setup_topology
  step "4. End to end: syncctl load → push → sync function → Datastore ($E2E_EVENTS events)"
  # Warm-up: the first pushes to a new subscription are slow, the JVMs need JIT.
  e2e_run e2e warmup 0 500 100 e2e-warmup 0 0 ||
    { echo "end-to-end warm-up failed; see $logdir" >&2; FAILED+=("e2e warm-up"); }
  for e in "${E2E_ENTITIES[@]}"; do
    for run in $(seq 1 "$RUNS"); do
      e2e_run e2e "entities=$e" "$run" "$E2E_EVENTS" "$e" "e2e-e$e-r$run" 1 0
    done
  done
  for run in $(seq 1 "$RUNS"); do
    e2e_run e2e_paced "$PACED_RATE/s, entities=1000" "$run" "$PACED_EVENTS" 1000 "e2e-paced-r$run" 1 \
      "$PACED_RATE"
  done
}

bench_growth() {
  local p k run pieces requests hwm
  setup_topology # the announcement topics
  step "7. Growth: payload size and concurrent requests per entity (gcp backend, direct pushes)"
  start_sync "$logdir/sync-growth.log" "$(free_port)" DEAD_LETTER_TOPIC=sync-dead-letters \
    LOG_FORMAT=json DATASTORE_NAMESPACE=bench_growth "$bin/sync-function"
  check_push "$FN_PORT"
  # Per-entity cases first: the 100 KiB payloads fill the Datastore
  # emulator's heap, and its pauses would spill into whatever follows.
  for k in "${PER_ENTITY[@]}"; do
    pieces="$benchdir/pieces-growth-k$k.lua"
    "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "grow-k$k" \
      --entities $((PER_ENTITY_TOTAL / k)) --project "$PROJECT"
    wrk_push growth "$k per entity" 0 "$pieces" "$PER_ENTITY_TOTAL" 1 "$FN_PORT"
    for run in $(seq 1 "$RUNS"); do
      measure "growth $k per entity run $run" wrk_push growth "$k per entity" "$run" "$pieces" \
        "$PER_ENTITY_TOTAL" "$GROWTH_SECS" "$FN_PORT" --field "per_entity=$k" \
        --field "concurrency=$PER_ENTITY_TOTAL"
    done
  done
  # Many distinct entities, each announced once (creates): memory must stay
  # flat however many entities an instance has seen. Before the payload cases,
  # whose 100 KiB entities slow the Datastore emulator down for a while.
  pieces="$benchdir/pieces-growth-many.lua"
  "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "grow-many" \
    --entities "$MANY_ENTITIES" --project "$PROJECT"
  measure "growth many entities" wrk_push growth "$MANY_ENTITIES entities, each once" 1 "$pieces" \
    "$GROWTH_CONCURRENCY" "$MANY_SECS" "$FN_PORT" --field "concurrency=$GROWTH_CONCURRENCY"
  requests=$(tail -n 1 "$logdir/wrk.log" |
    python3 -c 'import json, sys; print(int(json.load(sys.stdin)["requests"]))' 2>/dev/null || echo 0)
  [ "$requests" -gt "$MANY_ENTITIES" ] && requests=$MANY_ENTITIES
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$FN_PID/status")
  measure "memory after many entities" "$bin/sync-bench" record --item memory \
    --case "sync-function after $requests new entities" --field "rss_kib=$(rss_kib "$FN_PID")" \
    --field "hwm_kib=$hwm" --field "distinct_entities=$requests"
  for p in "${PAYLOADS[@]}"; do
    pieces="$benchdir/pieces-growth-p$p.lua"
    "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "grow-p$p" --entities 1000 \
      --payload-bytes "$p" --project "$PROJECT"
    wrk_push growth "payload $((p / 1024)) KiB" 0 "$pieces" "$GROWTH_CONCURRENCY" 1 "$FN_PORT"
    for run in $(seq 1 "$RUNS"); do
      measure "growth payload $p run $run" wrk_push growth "payload $((p / 1024)) KiB" "$run" \
        "$pieces" "$GROWTH_CONCURRENCY" "$GROWTH_SECS" "$FN_PORT" --field "payload_bytes=$p" \
        --field "concurrency=$GROWTH_CONCURRENCY"
    done
  done
  # Memory after announcing to this many distinct ordering keys (entities).
  local entities=$((${#PAYLOADS[@]} * 1000 + 1 + requests))
  for k in "${PER_ENTITY[@]}"; do
    entities=$((entities + PER_ENTITY_TOTAL / k))
  done
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$FN_PID/status")
  measure "memory after growth" "$bin/sync-bench" record --item memory \
    --case "sync-function after item 7" --field "rss_kib=$(rss_kib "$FN_PID")" \
    --field "hwm_kib=$hwm" --field "distinct_entities=$entities"
  stop_pid "$FN_PID"
}

# bench_gc: each emulator JVM's pauses over the whole run.
bench_gc() {
  local name pgid pid i=0
  for name in datastore pubsub; do
    pgid=${EMULATOR_PGIDS[$i]}
    i=$((i + 1))
    for pid in $(pgrep -g "$pgid" -x java || true); do
      [ -f "$logdir/gc-$pid.log" ] || continue
      mv "$logdir/gc-$pid.log" "$logdir/gc-$name-emulator.log"
      measure "gc $name" "$bin/sync-bench" gc --item gc --case "$name emulator" \
        --log "$logdir/gc-$name-emulator.log"
    done
  done
  rm -f "$logdir"/gc-[0-9]*.log # short-lived JVMs of gcloud itself
}

bench_size() {
  step "6. Release binary sizes"
  local b
  for b in sync-function audit-function syncctl; do
    measure "size $b" "$bin/sync-bench" record --item size --case "$b" \
      --field "bytes=$(stat -c %s "$bin/$b")"
  done
}

# build_baseline: the sync function of $BASELINE, built from that revision's
# own tree into this target directory (so the dependencies both share are
# built once) and copied out before this tree's build overwrites
# target/release; sets BASE_BIN and BASE_REV.
# Item 9: the memory test's bursts on the release builds; its result lines
# ("item":"burst") go to the raw results as they are.
bench_burst() {
  step "Memory under a burst (tests/tests/memory.rs, release builds)"
  local out="$logdir/burst.out"
  if ! SYNC_BIN_DIR="$bin" cargo test --workspace --locked --test memory -- --test-threads=1 --nocapture \
    >"$out" 2>&1; then
    echo "FAILED: burst (see $out)" >&2
    FAILED+=("burst")
  fi
  grep -o '{"case".*"item":"burst".*}' "$out" | tee -a "$raw" >&2 || true
}

build_baseline() {
  local rev src
  rev=$(git -C "$root" rev-parse --verify --quiet "$BASELINE^{commit}") ||
    { echo "--baseline $BASELINE is not a commit of this repository" >&2; return 1; }
  BASE_REV=$(git -C "$root" rev-parse --short "$rev")
  step "Building the baseline $BASE_REV ($BASELINE) in release mode"
  src="$benchdir/baseline-src"
  rm -rf "$src"
  mkdir -p "$src" "$benchdir/baseline"
  git -C "$root" archive "$rev" | tar -x -C "$src"
  (cd "$src" && export CARGO_TARGET_DIR="$root/target" && clean_members &&
    cargo build --release --locked --bin sync-function)
  cp "$root/target/release/sync-function" "$benchdir/baseline/sync-function"
  BASE_BIN="$benchdir/baseline/sync-function"
  rm -rf "$src"
  clean_members
}

# clean_members: release artifacts of the workspace's own packages go. Both
# trees' members have the same names and relative paths, and cargo tells
# stale from fresh by mtime (an archive's files carry the commit's time), so
# without this either build could take the other's artifacts for its own.
clean_members() {
  local specs
  mapfile -t specs < <(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; [print("-p", p["name"], sep="\n") for p in json.load(sys.stdin)["packages"]]')
  cargo clean --release --locked -q "${specs[@]}"
}

# direct_bin WHICH: the binary of old or new.
direct_bin() { if [ "$1" = old ]; then echo "$BASE_BIN"; else echo "$bin/sync-function"; fi; }

DIRECT_ENV=(DEAD_LETTER_TOPIC=sync-dead-letters LOG_FORMAT=json DATASTORE_NAMESPACE=bench_direct
  SYNC_DEBUG_ENDPOINTS=true)

# direct_start WHICH LOG [ENV...]: starts old or new; sets DPORT_<WHICH> and DPID_<WHICH>.
direct_start() {
  local which=$1 log=$2
  shift 2
  start_sync "$log" "$(free_port)" "${DIRECT_ENV[@]}" "$@" "$(direct_bin "$which")"
  printf -v "DPORT_$which" '%s' "$FN_PORT"
  printf -v "DPID_$which" '%s' "$FN_PID"
}

# direct_wrk WHICH ITEM CASE RUN PIECES CONNS SECS [PROXY_PORT]: one wrk run
# against old or new; records the sync process's CPU over it, its log bytes,
# new's own counters and, with PROXY_PORT, the calls and bytes counted on
# the wire, all per event.
direct_wrk() {
  local which=$1 item=$2 case=$3 run=$4 pieces=$5 conns=$6 secs=$7 proxy=${8:-}
  local port_var="DPORT_$which" pid_var="DPID_$which"
  local port=${!port_var} pid=${!pid_var} log="$logdir/direct-$which.log"
  local out="$logdir/direct-wrk.out" t0 t1 l0 l1 extra=()
  if [ "$run" = 0 ]; then
    wrk_run "$item" "$case" 0 "$pieces" "$conns" 1 "$port"
    return
  fi
  # The baseline may predate the counters: then it has none.
  local counted=0
  curl -fsS "http://127.0.0.1:$port/debug/counters" >"$logdir/fn-before.json" 2>/dev/null && counted=1
  [ -n "$proxy" ] && curl -fsS "http://127.0.0.1:$proxy/" >"$logdir/wire-before.json"
  t0=$("$bin/sync-bench" cpu-ticks --pid "$pid")
  l0=$(stat -c %s "$log")
  wrk_run "$item" "$case" "$run" "$pieces" "$conns" "$secs" "$port" >"$out"
  t1=$("$bin/sync-bench" cpu-ticks --pid "$pid")
  l1=$(stat -c %s "$log")
  if [ "$counted" = 1 ]; then
    curl -fsS "http://127.0.0.1:$port/debug/counters" >"$logdir/fn-after.json"
    extra+=(--delta "fn=$logdir/fn-before.json=$logdir/fn-after.json")
  fi
  if [ -n "$proxy" ]; then
    curl -fsS "http://127.0.0.1:$proxy/" >"$logdir/wire-after.json"
    extra+=(--delta "wire=$logdir/wire-before.json=$logdir/wire-after.json")
  fi
  "$bin/sync-bench" wrk-record --item "$item" --case "$case" --run "$run" \
    --field "concurrency=$conns" --cpu-ticks $((t1 - t0)) --per-event "log_bytes=$((l1 - l0))" \
    "${extra[@]}" <"$out"
}

# direct_turns CASE CONNS ENTITIES [PIECES-OPTION]: a warm-up, then RUNS
# runs of old and new taking turns, each on entities of its own: wrk closes
# its connections with requests in flight when its time is up, and a binary
# whose apply is dropped with them can leave transactions open, whose locks
# would slow the next run on the same entities.
direct_turns() {
  local case=$1 c=$2 e=$3 mix=${4:-} run which order tag
  tag=${case//[^0-9a-z]/}
  for run in $(seq 0 "$RUNS"); do
    for which in old new; do
      # shellcheck disable=SC2086 # $mix: an option or nothing
      "$bin/sync-bench" pieces --out "$benchdir/pieces-direct-$which-$tag-r$run.lua" \
        --entity-prefix "d-$which-$tag-r$run" --entities "$e" --project "$PROJECT" $mix
    done
  done
  for which in old new; do
    direct_wrk "$which" direct "$which: $case" 0 "$benchdir/pieces-direct-$which-$tag-r0.lua" "$c" 1
  done
  for run in $(seq 1 "$RUNS"); do
    # Alternate which goes first, so a drift of the host favours neither.
    order="old new"
    [ $((run % 2)) = 0 ] && order="new old"
    for which in $order; do
      measure "direct $which $case run $run" direct_wrk "$which" direct "$which: $case" \
        "$run" "$benchdir/pieces-direct-$which-$tag-r$run.lua" "$c" "$DIRECT_SECS"
    done
  done
}

# direct_median CASE METRIC: the median of METRIC over the direct runs so far.
direct_median() {
  python3 - "$raw" "$1" "$2" <<'PY'
import json, statistics, sys
raw, case, metric = sys.argv[1:]
values = [r[metric] for r in map(json.loads, open(raw)) if r.get("item") == "direct"
          and r.get("case") == case and metric in r]
print(statistics.median(values) if values else 0)
PY
}

bench_direct() {
  local which c e mix run pieces order proxy_port routes=() spec secs rate requests delay
  setup_topology # the announcement topics
  build_baseline_done || return 1
  step "8. Direct path, old ($BASE_REV) against new: wrk → sync function → Datastore emulator"
  "$bin/sync-bench" pieces --out "$benchdir/pieces-size.lua" --entity-prefix d-size --entities 1 \
    --project "$PROJECT" --print-sample >"$logdir/direct-sample.json"
  measure "direct event size" "$bin/sync-bench" record --item direct_sizes --case event \
    --field "bytes=$(python3 -c 'import base64, json, sys; print(len(base64.b64decode(json.load(sys.stdin)["message"]["data"])))' <"$logdir/direct-sample.json")"
  # The recipe's log lines for this event (Step 4's f-strings), with newlines.
  local recipe_log
  recipe_log=$(python3 - "$logdir/direct-sample.json" <<'PY'
import base64, datetime, json, sys
ev = json.loads(base64.b64decode(json.load(open(sys.argv[1]))["message"]["data"]))
at = datetime.datetime.fromisoformat(ev["timestamp"]).replace(tzinfo=datetime.timezone.utc)
entity = dict(ev["data"], last_modified=at, sync_status="synced", version=2)
done = {"success": True, "data": entity, "conflict_resolved": False}
update = [f"Processing sync event: {ev}", f"Published external sync event for {ev['entity_id']}",
          f"Sync operation completed: {done}"]
delete = [f"Processing sync event: {dict(ev, operation='delete')}",
          f"Sync operation completed: {({'success': True, 'operation': 'delete'})}"]
size = lambda lines: sum(len(line.encode()) + 1 for line in lines)
print(f"--field update_bytes={size(update)} --field delete_bytes={size(delete)}")
PY
  )
  # shellcheck disable=SC2086 # two --field options
  measure "recipe log size" "$bin/sync-bench" record --item direct_sizes --case recipe_log $recipe_log
  # First, while the emulators hold little: after the runs below (and item
  # 7's large payloads) the Datastore emulator's heap grows to gigabytes and
  # its pauses stall every call, the relayed ones worst.
  step "8. Counting RPCs and bytes on the wire (a loopback proxy in front of each emulator)"
  proxy_port=$(free_port)
  for which in old new; do
    printf -v "DSPORT_$which" '%s' "$(free_port)"
    printf -v "PSPORT_$which" '%s' "$(free_port)"
    local ds_var="DSPORT_$which" ps_var="PSPORT_$which"
    routes+=(--route "${which}_datastore=${!ds_var}=$DATASTORE_EMULATOR_HOST"
      --route "${which}_pubsub=${!ps_var}=$PUBSUB_EMULATOR_HOST")
  done
  "$bin/sync-bench" rpc-proxy "${routes[@]}" --control-port "$proxy_port" \
    >"$logdir/rpc-proxy.log" 2>&1 &
  local proxy_pid=$!
  PIDS+=("$proxy_pid")
  local deadline=$((SECONDS + 10))
  until curl -fsS "http://127.0.0.1:$proxy_port/" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "the RPC proxy did not start" >&2; return 1; }
    sleep 0.05
  done
  for which in old new; do
    local ds_var="DSPORT_$which" ps_var="PSPORT_$which"
    direct_start "$which" "$logdir/direct-$which.log" \
      "DATASTORE_EMULATOR_HOST=127.0.0.1:${!ds_var}" "PUBSUB_EMULATOR_HOST=127.0.0.1:${!ps_var}"
  done
  for spec in "${DIRECT_CASES[@]}"; do
    read -r c e mix <<<"$spec"
    for which in old new; do
      pieces="$benchdir/pieces-direct-$which-c$c-count.lua"
      # shellcheck disable=SC2086 # $mix: an option or nothing
      "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "d-$which-c$c-count" \
        --entities "$e" --project "$PROJECT" $mix
      direct_wrk "$which" direct_rpc "$which: c=$c, $e entities" 0 "$pieces" "$c" 1
      measure "direct rpc $which c=$c" direct_wrk "$which" direct_rpc "$which: c=$c, $e entities" \
        $((RUNS + 1)) "$pieces" "$c" "$COUNT_SECS" "$proxy_port"
    done
  done
  for which in old new; do
    local pid_var="DPID_$which"
    stop_pid "${!pid_var}"
  done
  stop_pid "$proxy_pid"

  step "8. Throughput, latency and CPU, old and new taking turns"
  for which in old new; do
    direct_start "$which" "$logdir/direct-$which.log"
  done
  for spec in "${DIRECT_CASES[@]}"; do
    read -r c e mix <<<"$spec"
    direct_turns "c=$c, $e entities" "$c" "$e" "$mix"
  done
  # Memory after this many distinct entities, each created once: long
  # enough a run at the rate measured above, plus a quarter.
  for which in old new; do
    read -r c e _ <<<"${DIRECT_CASES[0]}"
    rate=$(direct_median "$which: c=$c, $e entities" events_per_s)
    secs=$(python3 -c "import sys; r=float(sys.argv[1]); print(min(180, max(5, int($DIRECT_ENTITIES / r * 1.25) + 1)) if r > 0 else 60)" "$rate")
    pieces="$benchdir/pieces-direct-$which-many.lua"
    "$bin/sync-bench" pieces --out "$pieces" --entity-prefix "d-$which-many" \
      --entities "$DIRECT_ENTITIES" --project "$PROJECT"
    local pid_var="DPID_$which" port_var="DPORT_$which"
    wrk_run direct_memory "$which" 1 "$pieces" 16 "$secs" "${!port_var}" >"$logdir/direct-many.out"
    requests=$(grep '^{' "$logdir/direct-many.out" | tail -n 1 |
      python3 -c 'import json, sys; print(int(json.load(sys.stdin)["requests"]))' 2>/dev/null || echo 0)
    [ "$requests" -gt "$DIRECT_ENTITIES" ] && requests=$DIRECT_ENTITIES
    measure "direct memory $which" "$bin/sync-bench" record --item direct_memory --case "$which" \
      --field "rss_kib=$(rss_kib "${!pid_var}")" \
      --field "hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${!pid_var}/status")" \
      --field "distinct_entities=$requests"
  done
  for which in old new; do
    local pid_var="DPID_$which"
    stop_pid "${!pid_var}"
  done

  step "8. The first event after /healthz first answers 200, against the steady state"
  for which in old new; do
    measure "first event $which" "$bin/sync-bench" first-event --item first_event --case "$which" \
      --bin "$(direct_bin "$which")" --runs "$FIRST_RUNS" --entity-prefix "first-$which" \
      --project "$PROJECT" --env DEAD_LETTER_TOPIC=sync-dead-letters --env LOG_FORMAT=json \
      --env DATASTORE_NAMESPACE=bench_direct
  done

  # A relay holding every Datastore request DELAY ms stands in for
  # production's round trips; both binaries go through it.
  for delay in "${DIRECT_DELAYS[@]}"; do
    step "8. Hot keys with $delay ms added to every Datastore request"
    local dport cport dpid
    dport=$(free_port)
    cport=$(free_port)
    "$bin/sync-bench" rpc-proxy --route "datastore=$dport=$DATASTORE_EMULATOR_HOST" \
      --control-port "$cport" --delay-ms "$delay" >"$logdir/delay-proxy.log" 2>&1 &
    dpid=$!
    PIDS+=("$dpid")
    deadline=$((SECONDS + 10))
    until curl -fsS "http://127.0.0.1:$cport/" >/dev/null 2>&1; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "the delaying relay did not start" >&2; return 1; }
      sleep 0.05
    done
    for which in old new; do
      direct_start "$which" "$logdir/direct-$which.log" "DATASTORE_EMULATOR_HOST=127.0.0.1:$dport"
    done
    direct_turns "c=64, 10 entities, +$delay ms" 64 10
    for which in old new; do
      local pid_var="DPID_$which"
      stop_pid "${!pid_var}"
    done
    stop_pid "$dpid"
  done
}

started=$SECONDS
{ want http || want growth || want direct; } && ensure_wrk

BASE_BIN=""
BASE_REV=""
BASELINE_BUILT=0
if want direct; then
  if build_baseline; then
    BASELINE_BUILT=1
  else
    echo "FAILED: building the baseline $BASELINE (item 8 is skipped)" >&2
    FAILED+=("baseline build")
  fi
fi
build_baseline_done() { [ "$BASELINE_BUILT" = 1 ]; }

step "Building (cargo build --release --locked --bins)"
cargo build --release --locked --bins
bin="$root/target/release"
build_s=$((SECONDS - started))

# Without the emulators first (nothing else competes for the CPU), then with.
want core && bench_core
want http && bench_http
if want cold || want push || want limit || want e2e || want growth || want direct || want burst; then
  step "Starting the emulators"
  # GC logs show the JVMs' pauses (a stall of every call to an emulator).
  JAVA_TOOL_OPTIONS="-Xlog:gc:file=$logdir/gc-%p.log" emulators_start "$PROJECT" "$logdir"
  export GOOGLE_CLOUD_PROJECT=$PROJECT
  want cold && bench_cold
  want push && bench_push
  want limit && bench_limit
  want e2e && bench_e2e
  # Item 8 before item 7, whose 100 KiB payloads swell the Datastore emulator.
  if want direct && ! bench_direct; then
    echo "FAILED: item 8 (see $logdir)" >&2
    FAILED+=("direct")
  fi
  want growth && bench_growth
  want burst && bench_burst
  bench_gc
fi
want size && bench_size

cleanup
total_s=$((SECONDS - started))
step "Report"
"$bin/sync-bench" report --raw "$raw" --out "$OUT" --push-concurrency "$PUSH_C" \
  --meta "quick=$QUICK" --meta "only=${ONLY:-all}" --meta "runs=$RUNS" \
  --meta "total_s=$total_s" --meta "build_s=$build_s" --meta "baseline=${BASE_REV:-none}" \
  --meta "wrk=$(wrk -v 2>&1 | head -n 1)" --meta "wrk_threads=$WRK_THREADS" \
  --meta "gcloud=$(gcloud version 2>/dev/null | head -n 1)" | tee "$benchdir/table.md"
echo "Took $total_s s in all ($build_s s building); logs in $logdir"
if [ "${#FAILED[@]}" -gt 0 ]; then
  printf 'Failed measurements:\n' >&2
  printf '  %s\n' "${FAILED[@]}" >&2
  exit 1
fi
