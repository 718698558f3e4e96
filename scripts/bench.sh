#!/usr/bin/env bash
# usage: scripts/bench.sh [--quick] [--only PARTS] [--baseline REV]
#   --quick         one run per case, shorter runs (a smoke run)
#   --only PARTS    a comma-separated subset of core,http,e2e,direct,burst
#   --baseline REV  what the direct path compares against (default HEAD~1)
#   environment: RUNS (runs per case, default 3), BASELINE (as --baseline)
# Benchmarks on loopback, of release builds: docs/benchmarks.md says what each
# part measures and how, BENCHMARKS.md holds the latest figures. Writes
# target/bench/results.jsonl (a line per run) and target/bench/summary.md.
set -euo pipefail

RUNS=${RUNS:-3}              # measured runs per case; the summary quotes medians
BASELINE=${BASELINE:-HEAD~1} # what the direct path compares against
PROJECT=datastore-sync-bench
PARTS=core,http,e2e,direct,burst
HTTP_SECS=2      # per wrk run, HTTP layer alone
DIRECT_SECS=5    # per wrk run, direct path
E2E_EVENTS=10000 # events per end-to-end run
MANY=20000       # entities created before the direct path's RSS is read
MANY_SECS=30     # wrk seconds for them (fewer are created on a slow host)
FIRST_RUNS=5     # starts per binary, first event after ready
DELAYS=(0 20 50) # ms added to every Datastore request, hot keys
ONLY=""

usage() { sed -n '2,6s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUNS=1 DIRECT_SECS=2 E2E_EVENTS=2000 MANY=5000 MANY_SECS=10 FIRST_RUNS=2 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --baseline) BASELINE=${2:?--baseline needs a revision}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for part in ${ONLY//,/ }; do
  [[ ",$PARTS," == *",$part,"* ]] || { echo "unknown part: $part (known: $PARTS)" >&2; exit 2; }
done
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
benchdir="$root/target/bench" logdir="$root/target/bench/logs" raw="$root/target/bench/results.jsonl"
rm -rf "$logdir" && mkdir -p "$logdir" && : >"$raw"
# shellcheck source=scripts/lib/emulators.sh disable=SC1091
. "$root/scripts/lib/emulators.sh"
# shellcheck source=scripts/lib/processes.sh disable=SC1091
. "$root/scripts/lib/processes.sh"
trap 'processes_stop; emulators_stop' EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*" >&2; }
FAILED=()
# measure WHAT CMD...: CMD's result lines go to the results; a failure is
# reported at the end and the run goes on.
measure() {
  "${@:2}" >>"$raw" || { echo "FAILED: $1" >&2; FAILED+=("$1"); }
}

# start_sync LOG PORT [ENV...] CMD...: starts a server with ENV on PORT; sets
# FN_PID once /healthz answers.
start_sync() {
  local log=$1 port=$2
  shift 2
  env PORT="$port" "$@" >"$log" 2>&1 &
  FN_PID=$!
  PIDS+=("$FN_PID")
  wait_healthz "$port" "$FN_PID"
}

# start_relay CONTROL_PORT DELAY_MS ROUTE...: sets RELAY_PID once it answers.
start_relay() {
  local control=$1 delay=$2
  shift 2
  start_sync "$logdir/relay-$control.log" "$control" "$bin/sync-bench" relay --delay-ms "$delay" "${@/#/--route=}"
  RELAY_PID=$FN_PID
}

bench_core() {
  step "Core per event: cargo bench --bench pipeline (sync-core)"
  cargo bench --workspace --locked --bench pipeline -- --warm-up-time 1 --measurement-time 2 \
    >"$logdir/criterion.log" 2>&1 || { FAILED+=("core"); return; }
  python3 - "$root/target/criterion" >>"$raw" <<'PY'
import json, sys
for name in ("parse_validate_merge", "parse_validate_merge_with_stored_round_trip"):
    est = json.load(open(f"{sys.argv[1]}/{name}/new/estimates.json"))
    print(json.dumps({"item": "core", "case": name, "us_per_event": est["median"]["point_estimate"] / 1000}))
PY
}

bench_http() {
  step "HTTP layer alone: sync-bench serve-memory under wrk"
  local c port
  port=$(free_port)
  start_sync "$logdir/serve-memory.log" "$port" GOOGLE_CLOUD_PROJECT="$PROJECT" "$bin/sync-bench" serve-memory
  for c in 1 16 64; do
    measure "http c=$c" "$bin/sync-bench" wrk --item http_layer --case "c=$c" --target "memory=$port,$FN_PID" \
      --connections "$c" --entities 1000 --secs "$HTTP_SECS" --max-rate 60000 --runs "$RUNS"
  done
  stop_pid "$FN_PID"
  rm -f "$logdir/serve-memory.log" # a line per event: hundreds of MB
}

# setup_topology: the audit function and the recipe's topology, pushing to
# $SYNC_PORT (once).
setup_topology() {
  [ -n "${SYNC_PORT:-}" ] && return 0
  local audit_port
  audit_port=$(free_port) SYNC_PORT=$(free_port)
  start_sync "$logdir/audit-function.log" "$audit_port" LOG_FORMAT=json "$bin/audit-function"
  AUDIT_PID=$FN_PID
  "$bin/syncctl" setup --sync-endpoint "http://127.0.0.1:$SYNC_PORT/" \
    --audit-endpoint "http://127.0.0.1:$audit_port/" >"$logdir/setup.log"
}

bench_e2e() {
  step "End to end: syncctl load → push → sync function → Datastore ($E2E_EVENTS events)"
  setup_topology
  local run events log start_ms load_pid follow
  # Run 0 is a warm-up of 500 events: a new subscription's first pushes are
  # slow, and the emulators' JVMs need their JIT.
  for run in $(seq 0 "$RUNS"); do
    events=$E2E_EVENTS log="$logdir/e2e-r$run.log"
    [ "$run" = 0 ] && events=500
    start_sync "$log" "$SYNC_PORT" DEAD_LETTER_TOPIC=sync-dead-letters LOG_FORMAT=json "$bin/sync-function"
    start_ms=$(date +%s%3N)
    "$bin/syncctl" load --events "$events" --entities 1000 --entity-prefix "e2e-r$run" --seed "$run" \
      --quiet >"$logdir/load-r$run.log" 2>&1 &
    load_pid=$!
    PIDS+=("$load_pid")
    follow=("$bin/sync-bench" follow --case "$E2E_EVENTS events, 1000 entities" --run "$run"
      --log "$log" --expect "$events" --start-ms "$start_ms" --pid "$FN_PID"
      --cpu "sync=pid:$FN_PID" --cpu "audit=pid:$AUDIT_PID"
      --cpu "datastore_emulator=pgid:${EMULATOR_PGIDS[0]}" --cpu "pubsub_emulator=pgid:${EMULATOR_PGIDS[1]}")
    if [ "$run" = 0 ]; then
      "${follow[@]}" >/dev/null || FAILED+=("e2e warm-up")
    else
      measure "e2e run $run" "${follow[@]}"
    fi
    stop_pid "$load_pid"
    stop_pid "$FN_PID"
  done
}

# build_baseline: $BASELINE's sync function, built from its own tree into this
# target directory (shared dependencies are built once); sets BASE_BIN and
# BASE_REV. Both trees' own packages have the same names and paths, and cargo
# tells stale from fresh by mtime, so they are cleaned before and after.
build_baseline() {
  local rev src="$benchdir/baseline-src" members
  rev=$(git rev-parse --verify --quiet "$BASELINE^{commit}") || { echo "no commit $BASELINE" >&2; return 1; }
  BASE_REV=$(git rev-parse --short "$rev")
  step "Building the baseline $BASE_REV ($BASELINE) in release mode"
  mapfile -t members < <(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; [print("-p", p["name"], sep="\n") for p in json.load(sys.stdin)["packages"]]')
  rm -rf "$src"
  mkdir -p "$src" "$benchdir/baseline"
  git archive "$rev" | tar -x -C "$src"
  cargo clean --release --locked -q "${members[@]}"
  (cd "$src" && CARGO_TARGET_DIR="$root/target" cargo build --release --locked --bin sync-function)
  cp "$root/target/release/sync-function" "$benchdir/baseline/sync-function"
  BASE_BIN="$benchdir/baseline/sync-function"
  rm -rf "$src"
  cargo clean --release --locked -q "${members[@]}"
}

DIRECT_ENV=(DEAD_LETTER_TOPIC=sync-dead-letters LOG_FORMAT=json DATASTORE_NAMESPACE=bench_direct)
# direct_case ITEM CASE ARGS...: old and new, each publishing through its
# route of the counting relay (with EXTRA_ENV), under sync-bench wrk in turn.
direct_case() {
  local which port exe ps targets=() pids=()
  for which in old new; do
    port=$(free_port) exe=$BASE_BIN ps=$PS_OLD
    [ "$which" = new ] && exe=$bin/sync-function ps=$PS_NEW
    start_sync "$logdir/direct-$which.log" "$port" "${DIRECT_ENV[@]}" SYNC_DEBUG_ENDPOINTS=true \
      "PUBSUB_EMULATOR_HOST=127.0.0.1:$ps" "${EXTRA_ENV[@]}" "$exe"
    targets+=(--target "$which=$port,$FN_PID,$logdir/direct-$which.log") pids+=("$FN_PID")
  done
  measure "$1 $2" "$bin/sync-bench" wrk "${targets[@]}" --item "$1" --case "$2" --publish-relay "$PS_CONTROL" "${@:3}"
  for which in "${pids[@]}"; do stop_pid "$which"; done
}

bench_direct() {
  setup_topology # the announcement topics
  step "Direct path against the baseline $BASE_REV: wrk → old and new in turn → Datastore emulator"
  local delay ds_port control
  PS_OLD=$(free_port) PS_NEW=$(free_port) PS_CONTROL=$(free_port) EXTRA_ENV=()
  start_relay "$PS_CONTROL" 0 "old=$PS_OLD=$PUBSUB_EMULATOR_HOST" "new=$PS_NEW=$PUBSUB_EMULATOR_HOST"
  direct_case direct "c=16, 200 entities, mix" --connections 16 --entities 200 --mix --secs "$DIRECT_SECS" \
    --runs "$RUNS"
  for delay in "${DELAYS[@]}"; do
    step "Hot keys, $delay ms added to every Datastore request by a relay"
    ds_port=$(free_port) control=$(free_port)
    start_relay "$control" "$delay" "datastore=$ds_port=$DATASTORE_EMULATOR_HOST"
    EXTRA_ENV=("DATASTORE_EMULATOR_HOST=127.0.0.1:$ds_port")
    direct_case direct "c=64, 10 entities, +$delay ms" --connections 64 --entities 10 --secs "$DIRECT_SECS" \
      --runs "$RUNS"
    stop_pid "$RELAY_PID"
  done
  step "RSS after $MANY entities, each created once"
  EXTRA_ENV=()
  direct_case memory "after $MANY entities" --connections 16 --entities "$MANY" --secs "$MANY_SECS" \
    --max-rate 5000 --runs 1 --no-warmup
  step "The first event after /healthz turns 200"
  measure "first event" "$bin/sync-bench" first-event --bin "old=$BASE_BIN" --bin "new=$bin/sync-function" \
    --runs "$FIRST_RUNS" "${DIRECT_ENV[@]/#/--env=}"
}

bench_burst() {
  step "Memory under a burst (tests/tests/memory.rs, release builds)"
  local out="$logdir/burst.out"
  SYNC_BIN_DIR="$bin" cargo test --workspace --locked --test integration -- memory:: --test-threads=1 --nocapture \
    >"$out" 2>&1 || { echo "FAILED: burst (see $out)" >&2; FAILED+=("burst"); }
  grep -o '{"case".*"item":"burst".*}' "$out" >>"$raw" || true
}

started=$SECONDS
{ want http || want direct; } && ! command -v wrk >/dev/null && { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
BASE_REV=none
if want direct && ! build_baseline; then
  echo "FAILED: building the baseline $BASELINE (the direct path is skipped)" >&2
  FAILED+=("baseline build")
  ONLY=${ONLY:-$PARTS} ONLY=${ONLY//direct/}
fi
step "Building (cargo build --release --locked --bins)"
cargo build --release --locked --bins
bin="$root/target/release"

want core && bench_core
want http && bench_http
if want e2e || want direct || want burst; then
  step "Starting the emulators"
  emulators_start "$PROJECT" "$logdir"
  export GOOGLE_CLOUD_PROJECT=$PROJECT
  want e2e && bench_e2e
  want direct && { bench_direct || FAILED+=("direct"); }
  want burst && bench_burst
fi
processes_stop
emulators_stop

step "Summary ($((SECONDS - started)) s; logs in $logdir)"
{
  echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (modified)')," \
    "baseline $BASE_REV, RUNS=$RUNS, $(nproc) cores, $(wrk -v 2>&1 | head -n 1)"
  echo
  "$bin/sync-bench" summary --raw "$raw" --baseline "$BASE_REV"
} | tee "$benchdir/summary.md"
[ "${#FAILED[@]}" -eq 0 ] || { printf 'Failed: %s\n' "${FAILED[@]}" >&2; exit 1; }
