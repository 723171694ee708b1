# Shell helpers of scripts/sidebyside/ (sourced, not run): the clock and time budget, the log
# line, and starting / waiting for / stopping a server. Needs curl on PATH.
# shellcheck shell=bash

SIDE_T0=${SIDE_T0:-$(date +%s)}   # the budget counts from here (run_lease.sh exports it)

stamp() { echo "[$(( $(date +%s) - SIDE_T0 ))s] $*"; }

# left BUDGET: seconds left of BUDGET (counted from SIDE_T0).
left() { echo $(( $1 - ($(date +%s) - SIDE_T0) )); }

# fits EST BUDGET: whether EST more seconds still fit in BUDGET; says so when not.
fits() {
  if [ "$1" -le "$(left "$2")" ]; then return 0; fi
  stamp "skipped: needs ~$1 s, $(left "$2") s left of the ${2} s budget"
  return 1
}

# wait_health PORT PID LOG SECONDS: until GET /health is 200; gives up (1) when the server exits
# or after SECONDS, printing the end of its LOG.
wait_health() {
  local port=$1 pid=$2 log=$3 end=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      stamp "server (pid $pid) exited before /health was 200; its log ends:"; tail -n 30 "$log"
      return 1
    fi
    sleep 0.5
  done
  stamp "server on port $port: /health not 200 after $4 s; its log ends:"; tail -n 30 "$log"
  return 1
}

# stop_server PID: SIGTERM to the server, SIGKILL after 30 s; its child processes (vLLM's engine
# core) are looked up first and get SIGKILL too if they outlive it. (No setsid: what a device
# call leaves running in its own session would outlive the call and hold the GPU.)
stop_server() {
  local pid=$1 kids _
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" | tr '\n' ' ')
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  # shellcheck disable=SC2086 # the ids are words
  kill -KILL "$pid" $kids 2>/dev/null
  wait "$pid" 2>/dev/null
  stamp "server (pid $pid) stopped"
}
