#!/usr/bin/env bash
# Soak: calls set up, used and torn down at a steady rate for MINUTES (default 30) through a
# running imsagw on DPDK net_tap between kernel UEs in namespaces, rounds of `imsagw-sim load`
# (CALLS concurrent calls of BYTES each way per round). At the end, with every call gone:
# contexts, terminations and worker legs are 0, the mbuf pool is back to its idle level, and
# the process's resident memory is within SLACK_KIB of what it was after WARM_ROUNDS warm-up
# rounds (the allocator's high-water mark for CALLS concurrent calls takes a few rounds to be
# reached: with 50 calls RSS climbs ~27 MiB over the first 10 rounds, then stays flat). Prints the numbers; exits 0 only if all hold. `soak.sh 1` is the short version the
# test command runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ue_hosts.sh
. scripts/lib/ue_hosts.sh
# shellcheck source=scripts/lib/agw.sh
. scripts/lib/agw.sh

MINUTES=${1:-30}
CALLS=${CALLS:-5}
BYTES=${BYTES:-262144}
SLACK_KIB=${SLACK_KIB:-16384}
WARM_ROUNDS=${WARM_ROUNDS:-10}
LAN=soak-lan
UEX=soak-x
UEY=soak-y
IFACE=imsoak0
WORK=$(mktemp -d)
AGW_PID=""
[ "$(id -u)" -eq 0 ] || { echo "soak.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

cleanup() {
  agw_cleanup
  ue_hosts_delete
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$WORK/imsagw.log" >&2
  cp "$WORK/imsagw.log" /tmp/soak-imsagw.log
  "$BIN" status --status-socket "$WORK/imsagw.sock" >/tmp/soak-status.json 2>&1 || echo "no status" >&2
  if [ -f "$WORK/load.out" ]; then cp "$WORK/load.out" /tmp/soak-load.out; fi
  exit 1
}

bash scripts/setup.sh >/dev/null
# BIN_DIR: binaries built before (a long soak beside other work that rebuilds target/).
if [ -n "${BIN_DIR:-}" ]; then
  BIN=$BIN_DIR/imsagw
  SIM=$BIN_DIR/imsagw-sim
else
  cargo build --release -p imsagw -p sim
  BIN=target/release/imsagw
  SIM=target/release/imsagw-sim
fi
ue_hosts_create

# IMSAGW_ARGS: more flags for imsagw (the soak with a buffer pool too small for every leg at
# once: IMSAGW_ARGS="--buffer-pool 8").
# shellcheck disable=SC2086
agw_start --mgc 127.0.0.1:2945 --status-socket "$WORK/imsagw.sock" ${IMSAGW_ARGS:-} \
  --worker-cores 1 --shared-control-core \
  --realm access=198.18.1.10/15:40000-44999 --realm core=198.18.2.20/15:45000-49999 \
  -- -l 0 --no-huge --no-pci --no-shconf --no-telemetry -m 256 "--vdev=net_tap0,iface=$IFACE"
ue_hosts_bridge_tap "$IFACE"

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$AGW_PID/status"; }

round=0
calls=0
run_round() {
  local mg_flag=()
  [ "$round" -gt 0 ] && mg_flag=(--mg 127.0.0.1:2944)
  "$SIM" load --listen 127.0.0.1:2945 --calls "$CALLS" --bytes "$BYTES" \
    --ue-x-netns "$UEX" --ue-y-netns "$UEY" --first-tid $((1000 + round * 10000)) \
    "${mg_flag[@]}" >"$WORK/load.out" 2>&1 || fail "round $round: $(grep -v "^ *[0-9]*:\|^ *at " "$WORK/load.out" | tail -8)"
  grep -q "LOAD OK calls=$CALLS" "$WORK/load.out" || fail "round $round: $(grep -v "^ *[0-9]*:\|^ *at " "$WORK/load.out" | tail -8)"
  round=$((round + 1))
  calls=$((calls + CALLS))
}

# Idle (every termination gone) before sampling: the worker drains released legs for up
# to 2 s.
settle() {
  for _ in $(seq 1 50); do
    [ "$(status | field 'v["terminations"] + sum(w["legs"] for w in v["workers"])')" -eq 0 ] && return
    sleep 0.1
  done
  fail "terminations or legs left: $(status)"
}

if [ -n "${SOAK_CAPTURE:-}" ]; then
  # Headers of every frame, for looking into a failure.
  "$BIN" capture --status-socket "$WORK/imsagw.sock" --all --snaplen 128 --packets 5000000 \
    --bytes 4000000000 --seconds 600 --out "$SOAK_CAPTURE" >/dev/null 2>&1 &
  sleep 0.3
fi
for _ in $(seq 1 "$WARM_ROUNDS"); do run_round; done
settle
sleep 1
warm_rss=$(rss_kib)
warm_mbufs=$(status | field 'v["mbufs_in_use"]')
echo "after $WARM_ROUNDS warm-up rounds: RSS ${warm_rss} KiB, mbufs in use ${warm_mbufs}"
end=$(($(date +%s) + MINUTES * 60))
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  run_round
  if [ $((round % 10)) -eq 0 ]; then
    echo "round $round, $calls calls, RSS $(rss_kib) KiB, $(( $(date +%s) - start )) s"
  fi
done
settle
sleep 1
s=$(status)
end_rss=$(rss_kib)
end_mbufs=$(echo "$s" | field 'v["mbufs_in_use"]')
contexts=$(echo "$s" | field 'v["contexts"]')
legs=$(echo "$s" | field 'sum(w["legs"] for w in v["workers"])')
elapsed=$(( $(date +%s) - start ))
echo "soak: $round rounds, $calls calls ($CALLS at a time, $BYTES bytes each way) in ${elapsed} s"
echo "  contexts $contexts, legs $legs, mbufs in use $end_mbufs (idle after warm-up: $warm_mbufs)"
echo "  RSS ${end_rss} KiB (after warm-up: ${warm_rss} KiB, growth $((end_rss - warm_rss)) KiB, allowed ${SLACK_KIB})"
echo "  socket-buffer pool: $(echo "$s" | field '"lent %d of %d at most, %d loans made, %d refused for want of a buffer" % (sum(w["buffers_lent"] for w in v["workers"]), sum(w["buffers_lendable"] for w in v["workers"]), sum(w["buffer_lends"] for w in v["workers"]), sum(w["buffer_lends_refused"] for w in v["workers"]))')"
[ "$contexts" -eq 0 ] && [ "$legs" -eq 0 ] || fail "state left"
[ "$end_mbufs" -le "$warm_mbufs" ] || fail "mbufs in use grew from $warm_mbufs to $end_mbufs"
[ $((end_rss - warm_rss)) -le "$SLACK_KIB" ] || fail "RSS grew by $((end_rss - warm_rss)) KiB"
agw_stop_checked
echo "soak: PASS"
