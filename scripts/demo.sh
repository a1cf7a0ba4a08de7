#!/usr/bin/env bash
# The main job. The reference call flow of the seed document (Annex y) is not built yet;
# until it is, this demo brings up the data plane for real: imsagw on a DPDK net_tap port,
# a Linux host in network namespace ue-x on the other side of the tap, ARP and ping to the
# smoltcp interface, and 10 MB through imsagw's TCP echo service, compared byte for byte.
# It cleans up after itself (also on Ctrl-C) and exits 0 only if everything matched.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=ue-x
IFACE=imsagw0
AGW_IP=198.18.0.2
UE_IP=198.18.0.1
WORK=$(mktemp -d)
AGW_PID=""

cleanup() {
  if [ -n "$AGW_PID" ] && kill -0 "$AGW_PID" 2>/dev/null; then
    kill -TERM "$AGW_PID" 2>/dev/null || true
    wait "$AGW_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; echo "--- imsagw log:" >&2; cat "$WORK/imsagw.log" >&2 || true; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "demo.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

step "1. Install system packages if missing and build imsagw (release)"
bash scripts/setup.sh
cargo build --release -p control --bin imsagw
BIN=target/release/imsagw

step "2. Create the UE host: network namespace $NS"
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

step "3. Start imsagw echo on DPDK net_tap0 (iface $IFACE), smoltcp at $AGW_IP"
"$BIN" echo --address "$AGW_IP/24" --tcp-port 7 >"$WORK/imsagw.log" 2>&1 &
AGW_PID=$!
for _ in $(seq 1 100); do
  grep -q "echo service ready" "$WORK/imsagw.log" 2>/dev/null && break
  kill -0 "$AGW_PID" 2>/dev/null || fail "imsagw exited during start-up"
  sleep 0.1
done
grep -q "echo service ready" "$WORK/imsagw.log" || fail "imsagw did not become ready"
grep "echo service ready" "$WORK/imsagw.log"

step "4. Move the tap into $NS as the UE's interface, address $UE_IP"
ip link set "$IFACE" netns "$NS"
ip netns exec "$NS" ip addr add "$UE_IP/24" dev "$IFACE"
ip netns exec "$NS" ip link set "$IFACE" up

step "5. The UE's kernel resolves and pings imsagw"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$AGW_IP" || fail "ping"

step "6. The UE sends 10 MB over kernel TCP; imsagw echoes it back"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$WORK/sent"
ip netns exec "$NS" socat -t 10 -T 60 - "TCP:$AGW_IP:7" <"$WORK/sent" >"$WORK/received" || fail "socat"
sent=$(sha256sum <"$WORK/sent" | cut -d' ' -f1)
received=$(sha256sum <"$WORK/received" | cut -d' ' -f1)
echo "sent     $(stat -c %s "$WORK/sent") bytes sha256 $sent"
echo "received $(stat -c %s "$WORK/received") bytes sha256 $received"
[ "$sent" = "$received" ] || fail "echoed bytes differ"

step "7. Stop imsagw (SIGTERM): it must exit 0 with every mbuf back in the pool"
kill -TERM "$AGW_PID"
status=0
wait "$AGW_PID" || status=$?
AGW_PID=""
grep "echo service stopped" "$WORK/imsagw.log" || true
[ "$status" -eq 0 ] || fail "imsagw exited with $status"
grep -q "mbufs_in_use=0" "$WORK/imsagw.log" || fail "mbufs not returned"

echo
echo "demo: PASS (interim data-plane bring-up; the Annex y call flow is not implemented yet)"
