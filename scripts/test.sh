#!/usr/bin/env bash
# The test command: the Dockerfile's stages replayed without a container
# engine; unit, property, integration and end-to-end tests, with the official
# emulators started here on free ports and stopped on exit; then the
# deploy-script tests. Leaves nothing running. Installs the pinned tools first.
#
# usage: scripts/test.sh [--full]
#   --full   the load-sized cases at full size (SYNC_TESTS_FULL=1: a 2,000-entity
#            resync, 64 writers on one key) instead of a size that shows the
#            same behaviour in less time
#
# Two passes over the integration tests (one executable, tests/tests/main.rs):
#   1. the whole workspace, Datastore API served by the Datastore emulator
#      (optimistic concurrency);
#   2. the tests whose outcome can depend on how Datastore locks (FIRESTORE_TESTS
#      below), again, with the Datastore API served by the Firestore emulator
#      in Datastore mode (pessimistic locking, as production).
# Each pass has its own Pub/Sub emulator (names would not collide anyway: every
# test names its topics, subscriptions and namespaces with pid, time, counter).
# Both passes run even if the first fails; the command fails if either does.
set -euo pipefail

case "${1:-}" in
  --full) export SYNC_TESTS_FULL=1 ;;
  "") ;;
  *) sed -n '7,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac

PROJECT=${TEST_PROJECT:-datastore-sync-test}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logdir=${TEST_LOG_DIR:-"$root/target/test-logs"}

# Pass 2 (Firestore emulator, pessimistic locks) runs only the tests whose
# outcome can depend on how Datastore locks, aborts or answers transactions:
# the store itself (contention, group commit, retries, outages, the stored
# layout, Datastore's limits, which the two emulators enforce differently),
# readiness and RPC counts (the transaction probe and begin-in-lookup), and
# the end-to-end runs with concurrent writers, outages or kills. The rest
# (Pub/Sub, delivery forms, logging, trace, schema, memory, deploy) asserts
# nothing that depends on which emulator answers. Test-name prefixes:
FIRESTORE_TESTS=(
  datastore::
  limits::
  readiness::
  rpc_counts::
  e2e::shuffled_events_with_duplicates_converge_to_the_cores_merge
  e2e::two_instances_contending_on_hot_entities_converge
  e2e::datastore_outage_of_ten_seconds_loses_nothing
  e2e::sync_function_killed_mid_stream_loses_nothing
  resync::resync_racing_live_updates
)

# The pinned tools (cargo-chef for the image check), before any test starts;
# a no-op when they are there already (as under .ci/run, which installs them first).
"$root/scripts/tools.sh"

# The image's builder stage, for both functions, with the replay's self-test
# (a member added without touching the Dockerfile still builds). It needs no
# emulator, so it runs before they start.
bash "$root/scripts/check-image.sh" --self-test

# shellcheck source=scripts/lib/emulators.sh
. "$root/scripts/lib/emulators.sh"
trap emulators_stop EXIT INT TERM

# The Firestore emulator comes up while the others start and the build runs.
firestore_emulator_launch "$PROJECT" "$logdir"
emulators_start "$PROJECT" "$logdir"
export GOOGLE_CLOUD_PROJECT=$PROJECT

cargo build --workspace --bins --locked

# Compile every test first, so each pass's time is its tests alone, and note
# the integration executable. Pass 2 runs it as it is: a second `cargo test`
# selecting only some tests resolves features differently and rebuilds half
# the dependency graph.
suites_json="$logdir/test-executables.json"
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$suites_json"
integration=$(python3 - "$suites_json" "$root/tests/Cargo.toml" <<'PY'
import json, sys
path, manifest = sys.argv[1], sys.argv[2]
for line in open(path):
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["kind"] == ["test"] and m["manifest_path"] == manifest):
        print(m["executable"])
PY
)
[ -x "$integration" ] || { echo "the integration test executable of tests/ was not built" >&2; exit 1; }

# run_on_firestore: the lock-dependent tests on the Firestore emulator, from
# tests/ (cargo runs them there).
run_on_firestore() {
  (cd "$root/tests" &&
    DATASTORE_EMULATOR_FLAVOUR=firestore DATASTORE_EMULATOR_HOST=$FIRESTORE_DATASTORE_HOST \
      "$integration" "${FIRESTORE_TESTS[@]}")
}

summary=()
failed=0
# run_pass LABEL COMMAND...: run one pass, record its time and result.
run_pass() {
  local label=$1 start=$SECONDS rc=0
  shift
  echo "=== pass: $label ===" >&2
  "$@" || rc=$?
  local result=ok
  [ "$rc" -eq 0 ] || { result="FAILED (exit $rc)"; failed=1; }
  summary+=("$(printf '%-72s %4d s  %s' "$label" $((SECONDS - start)) "$result")")
}

run_pass "1/2 workspace on the Datastore emulator ($DATASTORE_EMULATOR_HOST)" \
  env DATASTORE_EMULATOR_FLAVOUR=datastore cargo test --workspace --locked --no-fail-fast

# Pass 2 gets a fresh Pub/Sub emulator: pass 1 leaves hundreds of topics and
# push subscriptions behind, some still pushing to functions that are gone
# (the end-to-end suite took up to twice as long on emulators a run had
# already used). Pass 1's Datastore emulator is not needed any more either.
emulator_stop pubsub
emulator_stop datastore
pubsub_emulator_start "$PROJECT" "$logdir"
firestore_emulator_wait
run_pass "2/2 lock-dependent tests on the Firestore emulator, Datastore mode ($FIRESTORE_DATASTORE_HOST)" \
  run_on_firestore

printf '%s\n' "=== test passes ===" "${summary[@]}" >&2
[ "$failed" -eq 0 ] || exit 1

# The release container is distroless/cc: the binaries may need nothing more
# than glibc and libgcc. Linking is the same in debug, so check the test build.
bins=()
for b in sync-function audit-function capture-function; do
  [ -x "target/debug/$b" ] && bins+=("target/debug/$b")
done
if [ "${#bins[@]}" -gt 0 ] && [ -x deploy/tests/check_binary_libs.sh ]; then
  bash deploy/tests/check_binary_libs.sh "${bins[@]}"
fi

if [ -f deploy/tests/run.sh ]; then
  bash deploy/tests/run.sh
fi
