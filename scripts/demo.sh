#!/usr/bin/env bash
# The whole recipe on one machine: the Pub/Sub and Datastore emulators, the
# three functions, the recipe's topology, its "Validation & Testing" flow, a
# change an application writes straight to Datastore (captured: the event
# Eventarc would send is built by syncctl, since no emulator emits one), and
# the result: the entities as the recipe's query prints them, the audit lines
# and the external-sync announcements. Stops everything it started, unless
# --keep-running is given (then it prints the exports for syncctl and waits).
set -euo pipefail

PROJECT=${PROJECT:-datastore-sync-demo}
PROFILE=debug
KEEP_RUNNING=0
for arg in "$@"; do
  case "$arg" in
    --keep-running) KEEP_RUNNING=1 ;;
    --release) PROFILE=release ;;
    -h|--help)
      echo "usage: scripts/demo.sh [--release] [--keep-running]"
      exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logdir="$root/target/demo-logs"
rm -rf "$logdir"
mkdir -p "$logdir"

# shellcheck source=scripts/lib/emulators.sh
. "$root/scripts/lib/emulators.sh"
# shellcheck source=scripts/lib/processes.sh
. "$root/scripts/lib/processes.sh"

cleanup() {
  processes_stop
  emulators_stop
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

step "Building (cargo build --bins, $PROFILE)"
build_flags=(--locked --bins -p sync-function -p audit-function -p capture-function -p syncctl)
[ "$PROFILE" = release ] && build_flags+=(--release)
cargo build "${build_flags[@]}"
bin="$root/target/$PROFILE"
started=$SECONDS

# The topology's names, from sync_core::wire::topology as deploy/lib.sh's
# variables: TOPIC, DLQ_TOPIC, DLQ_SUBSCRIPTION, EXTERNAL_SUBSCRIPTIONS, …
declare TOPIC DLQ_TOPIC DLQ_SUBSCRIPTION
declare -a EXTERNAL_SUBSCRIPTIONS
# shellcheck source=/dev/null
. <("$bin/syncctl" topology)

step "Starting the emulators"
emulators_start "$PROJECT" "$logdir"
export GOOGLE_CLOUD_PROJECT=$PROJECT

step "Starting the sync, audit and capture functions"
SYNC_PORT=$(free_port)
AUDIT_PORT=$(free_port)
CAPTURE_PORT=$(free_port)
# JSON lines: what Cloud Logging receives, and what syncctl lag reads.
PORT=$SYNC_PORT DEAD_LETTER_TOPIC=$DLQ_TOPIC LOG_FORMAT=json \
  "$bin/sync-function" >"$logdir/sync-function.log" 2>&1 &
SYNC_PID=$!
PIDS+=("$SYNC_PID")
PORT=$AUDIT_PORT LOG_FORMAT=text RUST_LOG=warn \
  "$bin/audit-function" >"$logdir/audit-function.log" 2>&1 &
AUDIT_PID=$!
PIDS+=("$AUDIT_PID")
# The capture function publishes the Product changes Eventarc delivers to it.
PORT=$CAPTURE_PORT EVENTS_TOPIC=$TOPIC DEAD_LETTER_TOPIC=$DLQ_TOPIC CAPTURE_KINDS=Product LOG_FORMAT=text \
  "$bin/capture-function" >"$logdir/capture-function.log" 2>&1 &
CAPTURE_PID=$!
PIDS+=("$CAPTURE_PID")
wait_healthz "$SYNC_PORT" "$SYNC_PID"
wait_healthz "$AUDIT_PORT" "$AUDIT_PID"
wait_healthz "$CAPTURE_PORT" "$CAPTURE_PID"
echo "sync function on :$SYNC_PORT, audit function on :$AUDIT_PORT, capture function on :$CAPTURE_PORT (logs in $logdir)"

syncctl() { "$bin/syncctl" "$@"; }

step "Creating the recipe's topology (steps 1, 2 and 8)"
syncctl setup --sync-endpoint "http://127.0.0.1:$SYNC_PORT/" \
  --audit-endpoint "http://127.0.0.1:$AUDIT_PORT/" --external-subscriptions

step "Validation & Testing, step 2: publish the create, then the update"
syncctl publish --topic "$TOPIC" --entity-id test-entity-001 --operation create \
  --name "Test Product" --description "Demo product for sync testing" --status active
syncctl publish --topic "$TOPIC" --entity-id test-entity-001 --operation update \
  --description "Updated product description"

step "Waiting until Datastore shows version 2"
deadline=$((SECONDS + 60))
until syncctl query --format json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
ok = any(r["key"] == "test-entity-001" and r["properties"].get("version") == 2 for r in rows)
sys.exit(0 if ok else 1)'; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "entity did not reach version 2 within 60 s; see $logdir" >&2
    exit 1
  fi
  sleep 0.2
done

step "Validation & Testing, step 4: the entities in Datastore"
syncctl query

step "A poison message (client data sets the reserved field 'version')"
syncctl publish --topic "$TOPIC" --entity-id test-entity-002 --operation create --data '{"version": 99}'
deadline=$((SECONDS + 30))
until [ "$(syncctl dlq list --subscription "$DLQ_SUBSCRIPTION" --format json --wait-secs 1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 1 ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the poison message did not reach the dead-letter subscription" >&2
    exit 1
  fi
done
syncctl dlq list --subscription "$DLQ_SUBSCRIPTION" --wait-secs 1

step "A delete of an entity never seen: a tombstone, nothing announced, a compliance entry"
syncctl publish --topic "$TOPIC" --entity-id test-entity-003 --operation delete

step "Change capture: an application writes a Product straight to Datastore"
# The application's namespace is its own; the sync function keeps the synced
# Product in the default namespace.
echo "No emulator emits Datastore's Eventarc events: syncctl capture-write writes the entity"
echo "in namespace shop-app as the application would, reads it back, and posts the event"
echo "Eventarc would send (google.cloud.datastore.entity.v1.written, protobuf) to the capture function."
syncctl --namespace shop-app capture-write --kind Product --entity-id lamp-42 \
  --data '{"name": "Desk lamp", "price": 19.5, "colour": "red", "tags": ["new"]}' \
  --deliver "http://127.0.0.1:$CAPTURE_PORT/"
deadline=$((SECONDS + 60))
until syncctl query --kind Product --format json 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if any(r["key"] == "lamp-42" for r in json.load(sys.stdin)) else 1)'; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the captured Product did not reach the synced store within 60 s; see $logdir" >&2
    exit 1
  fi
  sleep 0.2
done
echo "The synced store (the sync function's namespace), kind Product:"
syncctl query --kind Product

step "Audit trail (audit function's stdout, one JSON entry per line)"
deadline=$((SECONDS + 30))
until [ "$(grep -c '"component":"datastore-sync"' "$logdir/audit-function.log" || true)" -ge 6 ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "audit entries missing; see $logdir/audit-function.log" >&2
    exit 1
  fi
  sleep 0.2
done
grep '"component":"datastore-sync"' "$logdir/audit-function.log"

step "External-sync announcements"
# Create (the recipe's entity and the captured Product) and update: the delete
# was of an entity never seen, so it announced nothing.
for sub in "${EXTERNAL_SUBSCRIPTIONS[@]:0:2}"; do
  syncctl pull --subscription "$sub" --ack --wait-secs 3
done

step "Bootstrapping a new consumer: the current state announced again (syncctl resync, resync=true)"
syncctl resync --dry-run --quiet
syncctl resync --quiet
for sub in "${EXTERNAL_SUBSCRIPTIONS[@]:0:2}"; do
  syncctl pull --subscription "$sub" --ack --wait-secs 3
done

step "Deletes a consumer may have missed: the tombstones (syncctl resync --tombstones)"
syncctl resync --tombstones --quiet

step "Publish-to-apply lag of this run (syncctl lag over the sync function's JSON log)"
syncctl lag --log "$logdir/sync-function.log"

echo
echo "Done in $((SECONDS - started)) s after the build."

if [ "$KEEP_RUNNING" = 1 ]; then
  step "Still running. In another shell:"
  echo "export GOOGLE_CLOUD_PROJECT=$PROJECT"
  echo "export DATASTORE_EMULATOR_HOST=$DATASTORE_EMULATOR_HOST"
  echo "export PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST"
  echo "alias syncctl=$bin/syncctl"
  echo "Press Ctrl-C to stop everything."
  while true; do sleep 3600; done
fi
