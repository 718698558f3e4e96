# shellcheck shell=bash
# Start and stop the official Pub/Sub and Datastore emulators on free loopback
# ports. Source this file, call `emulators_start PROJECT LOGDIR`, and make sure
# `emulators_stop` runs on exit (the caller's trap). Exports
# DATASTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST for everything started after.
#
# `firestore_emulator_launch PROJECT LOGDIR`, later `firestore_emulator_wait`,
# also starts the Firestore emulator in Datastore mode (production's pessimistic
# locking) and sets FIRESTORE_DATASTORE_HOST (not exported: a caller points
# DATASTORE_EMULATOR_HOST at it for the commands meant to use it).
#
# `emulator_stop NAME` stops one of them early (`datastore`, `pubsub`,
# `firestore`); `pubsub_emulator_start PROJECT LOGDIR` starts a fresh Pub/Sub
# emulator and exports PUBSUB_EMULATOR_HOST.

EMULATOR_PGIDS=()
declare -gA EMULATOR_PGID_BY_NAME=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http_ok HOST SECONDS: poll GET http://HOST/ until it answers Ok (all
# three emulators do once their API is served).
wait_http_ok() {
  local host=$1 deadline=$((SECONDS + $2))
  until [ "$(curl -s --max-time 2 "http://$host/" 2>/dev/null)" = "Ok" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "emulator on $host not ready after $2 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

# emulator_start NAME LOGFILE GCLOUD-ARGS...: start one emulator in its own
# process group (gcloud, its launcher script and the JVM all in it).
emulator_start() {
  local name=$1 log=$2
  shift 2
  setsid gcloud "$@" >"$log" 2>&1 < /dev/null &
  EMULATOR_PGIDS+=("$!")
  EMULATOR_PGID_BY_NAME[$name]=$!
  echo "started $name emulator (pgid $!), log $log" >&2
}

# stop_group PGID: SIGTERM the process group, SIGKILL what is left after 5 s.
stop_group() {
  local pgid=$1
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# emulator_stop NAME: stop the emulator started under NAME (if any).
emulator_stop() {
  local name=$1 pgid kept=() p
  pgid=${EMULATOR_PGID_BY_NAME[$name]:-}
  [ -n "$pgid" ] || return 0
  stop_group "$pgid"
  unset "EMULATOR_PGID_BY_NAME[$name]"
  for p in "${EMULATOR_PGIDS[@]}"; do
    [ "$p" = "$pgid" ] || kept+=("$p")
  done
  EMULATOR_PGIDS=("${kept[@]}")
}

# pubsub_emulator_launch PROJECT LOGDIR: a Pub/Sub emulator on a free port,
# exported as PUBSUB_EMULATOR_HOST, without waiting for it (replaces a running
# one's name; stop that first with `emulator_stop pubsub`).
pubsub_emulator_launch() {
  local project=$1 logdir=$2 port
  mkdir -p "$logdir"
  port=$(free_port)
  emulator_start pubsub "$logdir/pubsub-emulator-$port.log" beta emulators pubsub start \
    "--host-port=127.0.0.1:$port" "--project=$project"
  export PUBSUB_EMULATOR_HOST="127.0.0.1:$port"
}

# pubsub_emulator_start PROJECT LOGDIR: launch one and wait until it is ready.
pubsub_emulator_start() {
  pubsub_emulator_launch "$@"
  wait_http_ok "$PUBSUB_EMULATOR_HOST" 90
  echo "Pub/Sub emulator ready: PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST" >&2
}

emulators_start() {
  local project=$1 logdir=$2 ds_port
  mkdir -p "$logdir"
  ds_port=$(free_port)
  emulator_start datastore "$logdir/datastore-emulator.log" beta emulators datastore start --no-store-on-disk \
    --consistency=1.0 "--host-port=127.0.0.1:$ds_port" "--project=$project"
  export DATASTORE_EMULATOR_HOST="127.0.0.1:$ds_port"
  pubsub_emulator_launch "$project" "$logdir"
  wait_http_ok "$DATASTORE_EMULATOR_HOST" 90
  wait_http_ok "$PUBSUB_EMULATOR_HOST" 90
  echo "emulators ready: DATASTORE_EMULATOR_HOST=$DATASTORE_EMULATOR_HOST PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST" >&2
}

# firestore_emulator_launch PROJECT LOGDIR: start the Firestore emulator in
# Datastore mode on a free port (in memory; `--project` is gcloud's global flag,
# the emulator serves any project) and set FIRESTORE_DATASTORE_HOST, without
# waiting, so it can come up while something else runs.
firestore_emulator_launch() {
  local project=$1 logdir=$2 port
  mkdir -p "$logdir"
  port=$(free_port)
  emulator_start firestore "$logdir/firestore-emulator.log" emulators firestore start \
    --database-mode=datastore-mode "--host-port=127.0.0.1:$port" "--project=$project"
  FIRESTORE_DATASTORE_HOST="127.0.0.1:$port"
}

# firestore_emulator_wait: poll the launched Firestore emulator until it is ready.
firestore_emulator_wait() {
  wait_http_ok "$FIRESTORE_DATASTORE_HOST" 90
  echo "Firestore emulator (Datastore mode) ready: FIRESTORE_DATASTORE_HOST=$FIRESTORE_DATASTORE_HOST" >&2
}

emulators_stop() {
  local pgid
  for pgid in "${EMULATOR_PGIDS[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  for pgid in "${EMULATOR_PGIDS[@]}"; do
    stop_group "$pgid"
  done
  EMULATOR_PGIDS=()
  EMULATOR_PGID_BY_NAME=()
}
