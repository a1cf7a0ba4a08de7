# Shared by demo.sh, soak.sh, flood.sh and bench.sh (sourced): imsagw started in the
# background and read through its status socket. Expects BIN, WORK and a `fail` function.

# Starts `imsagw run "$@"` with its log in $AGW_LOG (default $WORK/imsagw.log) and waits
# until it runs; sets AGW_PID.
agw_start() {
  local log=${AGW_LOG:-$WORK/imsagw.log}
  "$BIN" run "$@" >"$log" 2>&1 &
  AGW_PID=$!
  for _ in $(seq 1 100); do
    grep -q "imsagw running" "$log" 2>/dev/null && return 0
    kill -0 "$AGW_PID" 2>/dev/null || fail "imsagw exited during start-up"
    sleep 0.1
  done
  fail "imsagw did not start"
}

# `imsagw status` as JSON, from the status socket in $WORK.
status() { "$BIN" status --status-socket "$WORK/imsagw.sock" --json; }

# $1: a Python expression over the JSON on standard input, bound to `v`.
field() { /usr/bin/python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }

# Stops imsagw (SIGTERM; log in $AGW_LOG) and fails unless it exits 0 with every mbuf back.
agw_stop_checked() {
  local rc=0
  kill -TERM "$AGW_PID"
  wait "$AGW_PID" || rc=$?
  AGW_PID=""
  [ "$rc" -eq 0 ] || fail "imsagw exited with $rc"
  grep -q "mbufs_in_use=0" "${AGW_LOG:-$WORK/imsagw.log}" || fail "mbufs not returned at exit"
}

# For an EXIT trap: imsagw stopped if it still runs (continued first, in case a benchmark
# had stopped it).
agw_cleanup() {
  if [ -n "${AGW_PID:-}" ] && kill -0 "$AGW_PID" 2>/dev/null; then
    kill -CONT "$AGW_PID" 2>/dev/null
    kill -TERM "$AGW_PID" 2>/dev/null
    wait "$AGW_PID" 2>/dev/null || echo "imsagw exited non-zero during cleanup"
  fi
}
