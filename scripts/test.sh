#!/usr/bin/env bash
# The test command: the Dockerfile's stages replayed without a container
# engine; unit, property, integration and end-to-end tests, with the official
# emulators started here on free ports and stopped on exit; then the
# deploy-script tests. Leaves nothing running. Installs the pinned tools first.
#
# Two passes over the Datastore-backed suites:
#   1. the whole workspace, Datastore API served by the Datastore emulator
#      (optimistic concurrency);
#   2. every integration suite of tests/ except the Pub/Sub-only ones, again,
#      with the Datastore API served by the Firestore emulator in Datastore
#      mode (pessimistic locking, as production).
# Each pass has its own Pub/Sub emulator (names would not collide anyway: every
# test names its topics, subscriptions and namespaces with pid, time, counter).
# Both passes run even if the first fails; the command fails if either does.
set -euo pipefail

PROJECT=${TEST_PROJECT:-datastore-sync-test}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logdir=${TEST_LOG_DIR:-"$root/target/test-logs"}

# Suites of tests/tests/ not repeated in pass 2: those that never touch
# Datastore (pubsub), and the memory bursts, whose figures do not depend on
# which emulator answers and which take minutes in a debug build.
firestore_skip=(pubsub memory)

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
# the executable of each integration suite in tests/. Pass 2 runs those
# executables as they are: a second `cargo test` selecting only those suites
# resolves features differently and rebuilds half the dependency graph (and
# the next run's pass 1 rebuilds it back).
suites_json="$logdir/test-executables.json"
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$suites_json"
firestore_suites=()
firestore_names=()
while read -r suite exe; do
  [[ " ${firestore_skip[*]} " == *" $suite "* ]] && continue
  firestore_suites+=("$exe")
  firestore_names+=("$suite")
done < <(python3 - "$suites_json" "$root/tests/Cargo.toml" <<'PY'
import json, sys
path, manifest = sys.argv[1], sys.argv[2]
for line in open(path):
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["kind"] == ["test"] and m["manifest_path"] == manifest):
        print(m["target"]["name"], m["executable"])
PY
)
[ "${#firestore_suites[@]}" -gt 0 ] || { echo "no integration suites found in tests/" >&2; exit 1; }

# run_on_firestore EXECUTABLE...: each suite from tests/ (cargo runs them
# there) against the Firestore emulator, all of them even when one fails;
# fails if any did.
run_on_firestore() {
  local exe rc=0
  for exe in "$@"; do
    (cd "$root/tests" &&
      DATASTORE_EMULATOR_FLAVOUR=firestore DATASTORE_EMULATOR_HOST=$FIRESTORE_DATASTORE_HOST "$exe") || rc=1
  done
  return "$rc"
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
run_pass "2/2 tests/ (${firestore_names[*]}) on the Firestore emulator, Datastore mode ($FIRESTORE_DATASTORE_HOST)" \
  run_on_firestore "${firestore_suites[@]}"

printf '%s\n' "=== test passes ===" "${summary[@]}" >&2
[ "$failed" -eq 0 ] || exit 1

# The release container is distroless/cc: the binaries may need nothing more
# than glibc and libgcc. Linking is the same in debug, so check the test build.
bins=()
for b in sync-function audit-function; do
  [ -x "target/debug/$b" ] && bins+=("target/debug/$b")
done
if [ "${#bins[@]}" -gt 0 ] && [ -x deploy/tests/check_binary_libs.sh ]; then
  bash deploy/tests/check_binary_libs.sh "${bins[@]}"
fi

if [ -f deploy/tests/run.sh ]; then
  bash deploy/tests/run.sh
fi
