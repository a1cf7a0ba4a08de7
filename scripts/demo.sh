#!/usr/bin/env bash
# The main job: the reference call flow of TR 29.828 Annex y (steps 1 to 25), run for real.
# imsagw runs on a DPDK net_tap port (no NIC, no hugepages); the tap is bridged to two network
# namespaces whose Linux kernels are the UEs: UE-X (TCP client, access side) and UE-Y (TCP
# server, core side). imsagw-sim plays the IMS-ALG over H.248 text on UDP (loopback), prints
# every numbered step with its H.248 message, and has the UEs exchange MSRP SEND requests and
# 200 responses through the AGW, checking every byte and the Subtract statistics. It runs the
# flow twice: with plain TCP on both legs, then with TLS towards UE-X (the seed's clause y.3:
# fingerprints exchanged in the H.248 descriptors), then once more with the IMS-ALG going
# away mid-call and coming back (imsagw re-registers, the call's bytes keep flowing).
# Each run also scrapes imsagw's Prometheus metrics (parsed as OpenMetrics, counters checked
# against what the UEs did) and, in the plain TCP run, captures UE-X's frames (T1's) with `imsagw
# capture` and checks with tshark that the MSRP bytes in the pcapng are those UE-X sent.
# Then a T.38 fax call (TS 23.334 e2ae, RFC 7345): UDPTL between UE-Y and T2, UDPTL over
# DTLS 1.2 between UE-X and T1 (fingerprints and a=tls-id in the H.248 descriptors), a fax
# page of UDPTL packets with redundancy each way, every packet checked.
# Last, the flow with UE-X on IPv6 in the access network and UE-Y on IPv4 in the core, TLS
# towards UE-X: the LAN is split into an access and a core network, imsagw's port carries both
# as 802.1Q VLANs (a realm on each network), the access realm is dual-stack, T1's Local asks for
# `c=IN IP6 $`, and imsagw interworks the two IP versions between T1 and T2.
# `demo.sh --tcp`, `--tls`, `--restart`, `--fax` or `--ipv6` runs one.
# It cleans up after itself (also on Ctrl-C) and exits 0 only if everything matched.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ue_hosts.sh
. scripts/lib/ue_hosts.sh
# shellcheck source=scripts/lib/agw.sh
. scripts/lib/agw.sh

LAN=agw-lan
UEX=ue-x
UEY=ue-y
IFACE=imsagw0
MESSAGES=${MESSAGES:-300}
WORK=$(mktemp -d)
AGW_PID=""
CAP_PID=""
T1CAP_PID=""
METRICS=127.0.0.1:9464

cleanup() {
  if [ -n "$CAP_PID" ]; then
    kill -INT "$CAP_PID" 2>/dev/null || true
  fi
  # A capture client still waiting (a failed run): it ends with imsagw anyway.
  if [ -n "$T1CAP_PID" ] && kill -0 "$T1CAP_PID" 2>/dev/null; then
    kill "$T1CAP_PID"
  fi
  if [ -n "$AGW_PID" ] && kill -0 "$AGW_PID" 2>/dev/null; then
    kill -TERM "$AGW_PID" 2>/dev/null || true
    wait "$AGW_PID" 2>/dev/null || true
  fi
  ue_hosts_delete
  [ -n "${KEEP_WORK:-}" ] && echo "work files kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

section() { printf '\n#### %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  echo "--- imsagw log:" >&2; cat "$WORK/imsagw.log" >&2 || true
  echo "--- imsagw status:" >&2; "$BIN" status --status-socket "$WORK/imsagw.sock" >&2 || true
  exit 1
}
BIN=target/release/imsagw

[ "$(id -u)" -eq 0 ] || { echo "demo.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

section "Install system packages if missing and build imsagw and imsagw-sim (release)"
bash scripts/setup.sh
cargo build --release -p imsagw -p sim
SIM=target/release/imsagw-sim

section "Create the UE hosts: namespaces $UEX ($UEX_IP) and $UEY ($UEY_IP), bridged in $LAN"
ue_hosts_create

# One run of the flow: start imsagw, bridge its tap, play the ALG, check, stop imsagw.
# $1: tcp, tls or restart.
flow() {
  local variant=$1 sim_flags="" agw_flags="" ue_x=$UEX_IP
  local access=198.18.1.10/15:40000-44999 core=198.18.2.20/15:45000-49999
  [ "$variant" = tls ] && sim_flags="--tls"
  [ "$variant" = fax ] && sim_flags="--fax"
  if [ "$variant" = ipv6 ]; then
    # UE-X on IPv6 in the access network, UE-Y on IPv4 in the core network, TLS towards
    # UE-X: the LAN is split into two networks, which imsagw's one port carries as two
    # 802.1Q VLANs, each realm on its network. (The last run: the LAN stays split.)
    sim_flags="--tls"
    ue_x=$UE_HOSTS_UEX_IP6
    access=198.18.1.10/15,2001:db8:1::10/$UE_HOSTS_PREFIX6:40000-44999@access
    core=$core@core
    agw_flags="--network access=,vlan=$UE_HOSTS_ACCESS_VLAN --network core=,vlan=$UE_HOSTS_CORE_VLAN"
  fi
  if [ "$variant" = restart ]; then
    # The IMS-ALG goes away mid-call and comes back; short H.248 timers so imsagw notices
    # within seconds.
    sim_flags="--mgc-restart"
    agw_flags="--t-max-ms 1500 --registration-retry-ms 500"
  fi
  : >"$WORK/imsagw.log"
  section "[$variant] Start imsagw: control thread on core 0, one worker on core 1, DPDK net_tap0 (iface $IFACE)"
  # shellcheck disable=SC2086
  agw_start --mgc 127.0.0.1:2945 --status-socket "$WORK/imsagw.sock" --metrics "$METRICS" $agw_flags ${IMSAGW_ARGS:-} \
    --realm "access=$access" --realm "core=$core"
  grep -E "imsagw running|TLS identity" "$WORK/imsagw.log"
  if [ "$variant" = ipv6 ]; then
    ue_hosts_split
    ue_hosts_trunk "$IFACE"
  else
    ue_hosts_bridge_tap "$IFACE"
  fi

  section "[$variant] The IMS-ALG (imsagw-sim alg) drives the Annex y flow (H.248 on loopback captured by tshark)"
  dumpcap -q -i lo -f "udp port 2944 or udp port 2945" -w "$WORK/h248-$variant.pcapng" >/dev/null 2>&1 &
  CAP_PID=$!
  sleep 1
  if [ "$variant" = tcp ]; then
    # T1's port is drawn at random when the ALG adds it; UE-X's frames are T1's.
    "$BIN" capture --status-socket "$WORK/imsagw.sock" --host "$UEX_IP" --out "$WORK/t1.pcapng" \
      --packets 100000 --seconds 120 >"$WORK/capture.out" 2>&1 &
    T1CAP_PID=$!
    sleep 0.3
    grep -q capturing "$WORK/capture.out" || fail "capture did not start: $(cat "$WORK/capture.out")"
  fi
  # shellcheck disable=SC2086
  "$SIM" alg --listen 127.0.0.1:2945 --ue-x "$ue_x" --ue-y "$UEY_IP:2855" \
    --ue-x-netns "$UEX" --ue-y-netns "$UEY" --messages "$MESSAGES" $sim_flags \
    | tee "$WORK/alg-$variant.out" || fail "call flow ($variant)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "call flow ($variant)"
  sleep 0.5
  kill -INT "$CAP_PID"; wait "$CAP_PID" || true
  CAP_PID=""
  x_out=$(grep -o 'UE-X: SUMMARY.*' "$WORK/alg-$variant.out" | grep -o 'bytes_out=[0-9]*' | cut -d= -f2)
  x_in=$(grep -o 'UE-X: SUMMARY.*' "$WORK/alg-$variant.out" | grep -o 'bytes_in=[0-9]*' | cut -d= -f2)
  [ -n "$x_out" ] && [ -n "$x_in" ] || fail "no UE-X summary"

  if [ "$variant" = tcp ]; then
    section "[$variant] imsagw capture of T1 (UE-X's frames): tshark reads it, and UE-X's MSRP bytes are in it"
    "$BIN" capture --status-socket "$WORK/imsagw.sock" --stop
    wait "$T1CAP_PID" || fail "capture: $(cat "$WORK/capture.out")"
    T1CAP_PID=""
    cat "$WORK/capture.out"
    tshark -r "$WORK/t1.pcapng" -q -z io,stat,0 2>/dev/null | grep -E 'Frames|Interval|<>' | head -4
    # UE-X -> T1, the TCP stream's client side, reassembled by tshark.
    tshark -r "$WORK/t1.pcapng" -q -z "follow,tcp,raw,0" 2>/dev/null \
      | /usr/bin/python3 scripts/follow_raw.py "$WORK/t1-from-ue-x.bin" "$WORK/t1-to-ue-x.bin"
    got=$(stat -c %s "$WORK/t1-from-ue-x.bin")
    # awk counts without failing on zero (a zero count fails the check below).
    sends=$(awk '/^MSRP [a-z0-9]* SEND\r$/ {n++} END {print n+0}' "$WORK/t1-from-ue-x.bin")
    echo "captured from UE-X: $got bytes (UE-X sent $x_out), $sends MSRP SEND requests"
    [ "$got" -eq "$x_out" ] || fail "the capture holds $got bytes from UE-X, UE-X sent $x_out"
    [ "$sends" -eq "$MESSAGES" ] || fail "the capture holds $sends SEND requests, not $MESSAGES"
  fi

  section "[$variant] Prometheus metrics (http://$METRICS/metrics): valid OpenMetrics, counters match the call"
  curl -sf "http://$METRICS/metrics" >"$WORK/metrics-$variant.txt" || fail "metrics scrape"
  grep -E '^imsagw_(h248_commands_total|worker_relayed_octets_total|msrp_chunks_total|registered|tls_handshakes_total\{outcome="established"\})' "$WORK/metrics-$variant.txt"
  chunks=$((2 * MESSAGES))
  [ "$variant" = fax ] && chunks=0
  /usr/bin/python3 scripts/check_metrics.py "$WORK/metrics-$variant.txt" "$variant" "$((x_out + x_in))" "$chunks" \
    || fail "metrics do not match the call"

  section "[$variant] tshark decodes every H.248 message of the flow without malformed-packet errors"
  decode=(tshark -r "$WORK/h248-$variant.pcapng" -d udp.port==2945,megaco -d udp.port==2944,megaco)
  messages=$("${decode[@]}" -Y megaco 2>/dev/null | wc -l)
  malformed=$("${decode[@]}" -Y "_ws.malformed || _ws.expert.severity == error" 2>/dev/null | wc -l)
  "${decode[@]}" -Y megaco -T fields -e frame.number -e udp.srcport -e megaco.transid -e megaco.command 2>/dev/null | head -30
  echo "H.248 messages: $messages, malformed: $malformed"
  [ "$messages" -ge 12 ] || fail "tshark saw only $messages H.248 messages"
  [ "$malformed" -eq 0 ] || fail "tshark found $malformed malformed H.248 messages"

  section "[$variant] imsagw status (read from the running process)"
  "$BIN" status --status-socket "$WORK/imsagw.sock" || fail "status"
  "$BIN" status --status-socket "$WORK/imsagw.sock" --json | grep -q '"contexts":0' || fail "contexts left"

  section "[$variant] Stop imsagw (SIGTERM): ServiceChange Forced, exit 0 with every mbuf back in the pool"
  kill -TERM "$AGW_PID"
  local status=0
  wait "$AGW_PID" || status=$?
  AGW_PID=""
  grep -E "stopping|stopped" "$WORK/imsagw.log" | tail -2 || true
  [ "$status" -eq 0 ] || fail "imsagw exited with $status"
  grep -q "mbufs_in_use=0" "$WORK/imsagw.log" || fail "mbufs not returned"
}

case "${1:-all}" in
  --tcp|tcp) flow tcp ;;
  --tls|tls) flow tls ;;
  --restart|restart) flow restart ;;
  --fax|fax) flow fax ;;
  --ipv6|ipv6) flow ipv6 ;;
  all) flow tcp; flow tls; flow restart; flow fax; flow ipv6 ;;
  *) echo "usage: demo.sh [--tcp|--tls|--restart|--fax|--ipv6]  (default: all five)"; exit 2 ;;
esac

echo
echo "demo: PASS"
