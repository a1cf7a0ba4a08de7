#!/usr/bin/env bash
# Floods at the AGW's access address while calls move data: does a call keep moving its
# bytes, how much throughput does it lose, and does the worker keep any state for the flood?
#
# imsagw runs on DPDK net_tap (worker on core 1) between kernel UEs in namespaces, as in the
# soak; an attacker namespace on the same LAN runs `imsagw-sim flood`:
#   syn      SYNs from random spoofed sources in 198.18.0.0/15 to random access ports
#            (the calls' listening ports among them), RATE a second;
#   connect  real kernel connection attempts from the attacker to random access ports;
#   garbage  the fuzzer's hostile IPv4/TCP packets (bad checksums, odd options, random flags,
#            802.1Q tags) to random access ports from random sources;
#   syn6, garbage6  the same at the access realm's IPv6 address, from sources in
#            2001:db8::/32 (IPv6 fragments and extension headers among the garbage).
# Each repetition runs `imsagw-sim load` (CALLS calls, BYTES each way, every byte checked)
# once without and once with each flood, interleaved. The load, its UE farms and the flood
# share core 0 with the control thread, so part of the loss is the attacker's own CPU.
# Checks (all modes): every load passes (every byte checked, statistics exact), the worker's
# legs never exceed 2 x CALLS during a flood (no per-flow state for unknown flows), the
# refusals are counted, mbufs return to idle and imsagw exits 0 with every mbuf back.
# Reports throughput with / without per kind (median of REPS) in target/flood-report.json.
# No throughput limit is checked (the numbers are a benchmark; see docs/robustness.md).
#
#   bash scripts/flood.sh           REPS=3, 8 calls of 16 MiB each way, 20 000 packets/s
#   bash scripts/flood.sh --quick   REPS=1, 4 calls of 2 MiB (the test command's version)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ue_hosts.sh
. scripts/lib/ue_hosts.sh
# shellcheck source=scripts/lib/agw.sh
. scripts/lib/agw.sh

if [ "${1:-}" = "--quick" ]; then
  REPS=${REPS:-1} CALLS=${CALLS:-4} BYTES=${BYTES:-2097152}
else
  REPS=${REPS:-3} CALLS=${CALLS:-8} BYTES=${BYTES:-16777216}
fi
RATE=${RATE:-20000}
KINDS=${KINDS:-syn connect garbage syn6 garbage6}
LAN=flood-lan
UEX=flood-x
UEY=flood-y
ATK=flood-z
ATK_IP=198.18.50.9
ATK_IP6=2001:db8:1:50::9
ACCESS_IP=198.18.1.10
ACCESS_IP6=2001:db8:1::10
IFACE=imflood0
OUT=target/flood-report.json
WORK=$(mktemp -d)
AGW_PID=""
FLOOD_PID=""
[ "$(id -u)" -eq 0 ] || { echo "flood.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

cleanup() {
  if [ -n "$FLOOD_PID" ] && kill -0 "$FLOOD_PID" 2>/dev/null; then kill "$FLOOD_PID"; fi
  agw_cleanup
  ue_hosts_delete
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$WORK/imsagw.log" >&2
  cp "$WORK/imsagw.log" /tmp/flood-imsagw.log
  if [ -f "$WORK/load.out" ]; then cp "$WORK/load.out" /tmp/flood-load.out; fi
  if [ -f "$WORK/flood.out" ]; then cp "$WORK/flood.out" /tmp/flood-flood.out; fi
  exit 1
}

bash scripts/setup.sh >/dev/null
cargo build --release -p imsagw -p sim
BIN=target/release/imsagw
SIM=target/release/imsagw-sim
ue_hosts_create
ue_hosts_add "$ATK" "$ATK_IP" vz
ue_hosts_attach6 "$ATK" "$ATK_IP6"

agw_start --mgc 127.0.0.1:2945 --status-socket "$WORK/imsagw.sock" \
  --worker-cores 1 --shared-control-core \
  --realm "access=$ACCESS_IP/15,$ACCESS_IP6/$UE_HOSTS_PREFIX6:40000-44999" --realm core=198.18.2.20/15:45000-49999 \
  -- -l 0 --no-huge --no-pci --no-shconf --no-telemetry -m 256 "--vdev=net_tap0,iface=$IFACE"
ue_hosts_bridge_tap "$IFACE"
WORKER_REFUSALS='sum(w["tcp_no_leg"] + w["gate_rejected"] + w["malformed_dropped"] + w["fragments_dropped"] + w["extension_dropped"] + w["vlan_dropped"] for w in v["workers"])'

round=0
# One load; prints its throughput in Mbit/s. $1: "none" or a flood kind.
run_load() {
  local kind=$1 mg_flag=() max_legs=0 legs refusals_before refusals_after
  [ "$round" -gt 0 ] && mg_flag=(--mg 127.0.0.1:2944)
  refusals_before=$(status | field "$WORKER_REFUSALS")
  if [ "$kind" != none ]; then
    local target=$ACCESS_IP avoid="$UEX_IP,$UEY_IP,$ATK_IP,198.18.2.20"
    if [ "${kind%6}" != "$kind" ]; then
      target=$ACCESS_IP6 avoid="$UE_HOSTS_UEX_IP6,$UE_HOSTS_UEY_IP6,$ATK_IP6"
    fi
    ip netns exec "$ATK" taskset -c 0 "$SIM" flood --kind "${kind%6}" --target "$target" \
      --ports 40000-44999 --avoid "$avoid" --rate "$RATE" \
      --seconds 600 --seed $((round + 1)) >"$WORK/flood.out" 2>&1 &
    FLOOD_PID=$!
    sleep 0.5
  fi
  taskset -c 0 "$SIM" load --listen 127.0.0.1:2945 --calls "$CALLS" --bytes "$BYTES" \
    --ue-x-netns "$UEX" --ue-y-netns "$UEY" --first-tid $((1000 + round * 10000)) \
    "${mg_flag[@]}" >"$WORK/load.out" 2>&1 &
  local load_pid=$!
  while kill -0 "$load_pid" 2>/dev/null; do
    legs=$(status | field 'sum(w["legs"] for w in v["workers"])')
    [ "$legs" -gt "$max_legs" ] && max_legs=$legs
    sleep 0.1
  done
  wait "$load_pid" || fail "round $round ($kind): $(tail -5 "$WORK/load.out")"
  if [ -n "$FLOOD_PID" ]; then
    kill "$FLOOD_PID"
    wait "$FLOOD_PID" 2>/dev/null || echo "the flood was stopped" >/dev/null
    FLOOD_PID=""
  fi
  grep -q "LOAD OK calls=$CALLS" "$WORK/load.out" || fail "round $round ($kind): $(tail -5 "$WORK/load.out")"
  [ "$max_legs" -le $((2 * CALLS)) ] || fail "round $round ($kind): $max_legs worker legs for $CALLS calls"
  refusals_after=$(status | field "$WORKER_REFUSALS")
  if [ "$kind" != none ] && [ "$refusals_after" -le "$refusals_before" ]; then
    fail "round $round ($kind): the flood reached nothing (worker refusals unchanged)"
  fi
  round=$((round + 1))
  echo "$kind $(sed -n 's/^LOAD DATA ms=[0-9.]* mbit_s=//p' "$WORK/load.out") $max_legs $((refusals_after - refusals_before))"
}

run_load none >/dev/null # warm-up
sleep 1
idle_mbufs=$(status | field 'v["mbufs_in_use"]')
: >"$WORK/results"
for rep in $(seq 1 "$REPS"); do
  for kind in $KINDS; do
    run_load none >>"$WORK/results"
    run_load "$kind" >>"$WORK/results"
    echo "rep $rep $kind: $(tail -2 "$WORK/results" | tr '\n' ' ')"
  done
done
for _ in $(seq 1 50); do
  [ "$(status | field 'v["terminations"] + sum(w["legs"] for w in v["workers"])')" -eq 0 ] && break
  sleep 0.1
done
sleep 1
s=$(status)
[ "$(echo "$s" | field 'v["contexts"]')" -eq 0 ] || fail "contexts left"
[ "$(echo "$s" | field 'sum(w["legs"] for w in v["workers"])')" -eq 0 ] || fail "legs left"
end_mbufs=$(echo "$s" | field 'v["mbufs_in_use"]')
[ "$end_mbufs" -le "$idle_mbufs" ] || fail "mbufs in use grew from $idle_mbufs to $end_mbufs"
agw_stop_checked

mkdir -p target
/usr/bin/python3 scripts/flood_report.py "$WORK/results" "$OUT" "$CALLS" "$BYTES" "$RATE" "$REPS"
echo "flood: PASS ($OUT)"
