#!/usr/bin/env bash
# The test command: unit, property, integration and end-to-end tests, with the
# official emulators started here on free ports and stopped on exit, then the
# deploy-script tests. Leaves nothing running.
set -euo pipefail

PROJECT=${TEST_PROJECT:-datastore-sync-test}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logdir=${TEST_LOG_DIR:-"$root/target/test-logs"}

# shellcheck source=scripts/lib/emulators.sh
. "$root/scripts/lib/emulators.sh"
trap emulators_stop EXIT INT TERM

emulators_start "$PROJECT" "$logdir"
export GOOGLE_CLOUD_PROJECT=$PROJECT

cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast

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
