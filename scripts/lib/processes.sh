# shellcheck shell=bash
# Background processes a script starts and must stop: append each PID to PIDS,
# call `processes_stop` from the exit trap. Also `stop_pid` for one of them and
# `wait_healthz` for a function's readiness.

PIDS=()

# processes_stop: SIGTERM every process in PIDS, wait for each, forget them.
processes_stop() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# stop_pid PID: SIGTERM, wait, and forget it.
stop_pid() {
  local pid=$1 p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

# wait_healthz PORT [PID]: poll http://127.0.0.1:PORT/healthz for 30 s; fail
# early if PID is given and the process has exited.
wait_healthz() {
  local port=$1 pid=${2:-} deadline=$((SECONDS + 30))
  until curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid (port $port) exited" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "function on port $port did not become healthy" >&2
      return 1
    fi
    sleep 0.05
  done
}
