# shellcheck shell=bash
# Start and stop the official Pub/Sub and Datastore emulators on free loopback
# ports. Source this file, call `emulators_start PROJECT LOGDIR`, and make sure
# `emulators_stop` runs on exit (the caller's trap). Exports
# DATASTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST for everything started after.

EMULATOR_PGIDS=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http_ok HOST SECONDS: poll GET http://HOST/ until it answers Ok.
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

# emulator_start NAME LOGFILE ARGS...: start one emulator in its own process group.
emulator_start() {
  local name=$1 log=$2
  shift 2
  setsid gcloud beta emulators "$@" >"$log" 2>&1 < /dev/null &
  EMULATOR_PGIDS+=("$!")
  echo "started $name emulator (pgid $!), log $log" >&2
}

emulators_start() {
  local project=$1 logdir=$2 ds_port ps_port
  mkdir -p "$logdir"
  ds_port=$(free_port)
  ps_port=$(free_port)
  emulator_start datastore "$logdir/datastore-emulator.log" datastore start --no-store-on-disk --consistency=1.0 \
    "--host-port=127.0.0.1:$ds_port" "--project=$project"
  emulator_start pubsub "$logdir/pubsub-emulator.log" pubsub start "--host-port=127.0.0.1:$ps_port" "--project=$project"
  export DATASTORE_EMULATOR_HOST="127.0.0.1:$ds_port"
  export PUBSUB_EMULATOR_HOST="127.0.0.1:$ps_port"
  wait_http_ok "$DATASTORE_EMULATOR_HOST" 90
  wait_http_ok "$PUBSUB_EMULATOR_HOST" 90
  echo "emulators ready: DATASTORE_EMULATOR_HOST=$DATASTORE_EMULATOR_HOST PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST" >&2
}

emulators_stop() {
  local pgid
  for pgid in "${EMULATOR_PGIDS[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  for pgid in "${EMULATOR_PGIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  EMULATOR_PGIDS=()
}
