#!/usr/bin/env bash
# The performance report: imsagw against HAProxy 2.6 and against the floor, from one run.
# Writes target/bench-report/{results.json,report.md,*.png}.
#
#   bash scripts/bench.sh           the full run (REPS=5 interleaved A/B pairs; < 20 min)
#   bash scripts/bench.sh --quick   one pair of each, short benches (< 3 min; the test
#                                   command runs it and checks the report is produced)
#
# Method (docs/performance.md, "How the numbers are taken"):
# - end to end: imsagw on DPDK net_tap (worker on core 1) and HAProxy 2.6 (`mode tcp`, one
#   thread, cpu-map to core 1) each relay between kernel UEs in namespaces on one bridge;
#   HAProxy sits behind its own veth (MTU 1500; GRO/GSO/TSO off on every veth of the bench,
#   so neither side gets 64 KiB segments). The load (imsagw-sim load and its UE farms) runs
#   on core 0. Runs are interleaved imsagw/HAProxy; while HAProxy runs, imsagw is stopped
#   (SIGSTOP) so its polling worker does not take HAProxy's core. A run with more than 5 %
#   steal time is dropped and counted.
# - floors: openssl speed (AES-128-GCM, X25519, ECDSA P-256) and rustls in-process with the
#   AGW's configuration (cargo bench --bench tls); dimpl in-process for DTLS (cargo bench
#   --bench dtls); memcpy for the plain relay.
# - in-process (worker on MemLink, worker time only): cost per packet against concurrent legs
#   (cargo bench --bench worker), TLS relay and handshakes against rustls alone, H.248 calls/s
#   (cargo bench -p control --bench calls), memory per established pair.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ue_hosts.sh
. scripts/lib/ue_hosts.sh
# shellcheck source=scripts/lib/agw.sh
. scripts/lib/agw.sh

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ "$QUICK" -eq 1 ]; then
  REPS=${REPS:-1} CALLS=${CALLS:-4} BYTES=${BYTES:-2097152} ECHOES=${ECHOES:-300} CONNS=${CONNS:-50}
  LEGS=${LEGS:-10,1000}
else
  REPS=${REPS:-5} CALLS=${CALLS:-8} BYTES=${BYTES:-33554432} ECHOES=${ECHOES:-3000} CONNS=${CONNS:-400}
  LEGS=${LEGS:-10,100,1000,10000,100000}
fi
ECHO_RATE=${ECHO_RATE:-1000}
MAX_STEAL=${MAX_STEAL:-0.05}
OUT=target/bench-report
LAN=bench-lan
UEX=bench-x
UEY=bench-y
HAP=bench-h
AGW_IP=198.18.1.10
HAP_IP=198.18.1.11
IFACE=imbench0
WORK=$(mktemp -d)
AGW_PID=""
HAP_PID=""
[ "$(id -u)" -eq 0 ] || { echo "bench.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

cleanup() {
  if [ -n "$HAP_PID" ]; then kill "$HAP_PID" 2>/dev/null || echo "HAProxy already gone"; fi
  agw_cleanup
  ue_hosts_delete
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  if [ -f "$WORK/imsagw.log" ]; then tail -20 "$WORK/imsagw.log" >&2; fi
  if [ -f "$WORK/load.out" ]; then grep -v "^ *[0-9]*:\|^ *at \|^$\|Stack backtrace" "$WORK/load.out" | tail -12 >&2; fi
  exit 1
}

bash scripts/setup.sh >/dev/null
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/results.json "$OUT"/report.md "$OUT"/profile-*.txt
RESULTS=$WORK/results.tsv
: >"$RESULTS"
# workload, metric, unit, side (imsagw | baseline name | floor name), value
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

echo "== build"
cargo build --release -p imsagw -p sim
BIN=target/release/imsagw
SIM=target/release/imsagw-sim

echo "== floors: openssl speed"
secs=3
[ "$QUICK" -eq 1 ] && secs=1
aes=$(openssl speed -seconds "$secs" -evp aes-128-gcm 2>/dev/null | awk '/^AES-128-GCM/ {print $NF}' | tr -d k)
row "crypto floor" "AES-128-GCM 16 KiB blocks" "Gbit/s" "openssl speed" "$(awk -v k="$aes" 'BEGIN{printf "%.2f", k*1000*8/1e9}')"
x25519=$(openssl speed -seconds "$secs" ecdhx25519 2>/dev/null | awk '/253 bits ecdh \(X25519\)/ {print $(NF)}')
row "crypto floor" "X25519 key exchanges/s" "ops/s" "openssl speed" "$x25519"
ecdsa=$(openssl speed -seconds "$secs" ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1)}')
row "crypto floor" "ECDSA P-256 signatures/s" "ops/s" "openssl speed" "$ecdsa"

echo "== in-process: TLS handshakes and relay against rustls alone (worker time only)"
quick_env=()
[ "$QUICK" -eq 1 ] && quick_env=(IMSAGW_BENCH_QUICK=1)
env "${quick_env[@]}" taskset -c 1 cargo bench -q -p dataplane --bench tls 2>/dev/null | tee "$WORK/tls.txt"
/usr/bin/python3 scripts/bench_rows.py tls "$WORK/tls.txt" >>"$RESULTS"

echo "== in-process: DTLS handshakes and relayed datagrams against dimpl alone (worker time only)"
env "${quick_env[@]}" taskset -c 1 cargo bench -q -p dataplane --bench dtls 2>/dev/null | tee "$WORK/dtls.txt"
/usr/bin/python3 scripts/bench_rows.py dtls "$WORK/dtls.txt" >>"$RESULTS"

echo "== in-process: worker cost per packet against concurrent legs; relay; memory per pair"
env "${quick_env[@]}" IMSAGW_BENCH_LEGS="$LEGS" taskset -c 1 cargo bench -q -p dataplane --bench worker 2>/dev/null | tee "$WORK/worker.txt"
/usr/bin/python3 scripts/bench_rows.py worker "$WORK/worker.txt" >>"$RESULTS"

mem=$(sed -n 's/^memory per established pair at 64 KiB socket buffers (the default): \([0-9]*\) B/\1/p' "$WORK/worker.txt")
row "memory per established call" "worker heap per call (two legs: 64 KiB socket buffers each way + leg records)" "bytes" "imsagw" "$mem"

echo "== in-process: memcpy floor"
memcpy=$(/usr/bin/python3 scripts/bench_rows.py memcpy)
row "TCP -> TCP relay (in-process)" "payload throughput per core, 1 pair" "Gbit/s" "memcpy 64 MiB" "$memcpy"

echo "== H.248 calls per second through the control thread"
secs_env=(IMSAGW_BENCH_SECS=3)
[ "$QUICK" -eq 1 ] && secs_env=(IMSAGW_BENCH_SECS=0.5)
env "${secs_env[@]}" cargo bench -q -p control --bench calls 2>/dev/null | tee "$WORK/calls.txt"
calls=$(sed -n 's/.*median \([0-9]*\),.*/\1/p' "$WORK/calls.txt")
row "H.248 calls/s" "Add, Add, Modify, Modify, Subtract; 64 in flight" "calls/s" "imsagw" "$calls"

echo "== end to end: imsagw (DPDK net_tap) and HAProxy 2.6 between kernel UEs"
ue_hosts_create
ue_hosts_add "$HAP" "$HAP_IP" vh
for ns in "$UEX" "$UEY" "$HAP"; do
  ip netns exec "$ns" ip link set eth0 mtu 1500
  ip netns exec "$ns" ethtool -K eth0 gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are in $ns"
done
for v in vx vy vh; do
  ip netns exec "$LAN" ethtool -K "$v" gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are on $v"
done
# One certificate for both relays (ECDSA P-256; the key exchange is X25519 on both).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=agw.example -keyout "$WORK/agw.key" -out "$WORK/agw.crt" 2>/dev/null
cat "$WORK/agw.crt" "$WORK/agw.key" >"$WORK/agw.pem"
AGW_FP="sha-256 $(openssl x509 -in "$WORK/agw.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  cpu-map 1/1 1
  maxconn 4000
  ssl-default-bind-curves X25519
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
# The client's destination port - N: call i on the frontend's first port + i goes to UE-Y's
# 3000 + i.
frontend tcp_tcp
  bind $HAP_IP:40000-40999
  default_backend plain
frontend tls_tcp
  bind $HAP_IP:41000-41999 ssl crt $WORK/agw.pem
  default_backend plain41
frontend tls_tls
  bind $HAP_IP:42000-42999 ssl crt $WORK/agw.pem
  default_backend tls42
backend plain
  server uey $UEY_IP:-37000
backend plain41
  server uey $UEY_IP:-38000
backend tls42
  server uey $UEY_IP:-39000 ssl verify none crt $WORK/agw.pem
EOF
ip netns exec "$HAP" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAP_PID=$!

agw_start --bind 127.0.0.1:2954 --mgc 127.0.0.1:2955 --status-socket "$WORK/imsagw.sock" \
  --tls-cert "$WORK/agw.crt" --tls-key "$WORK/agw.key" \
  --worker-cores 1 --shared-control-core \
  --realm access=$AGW_IP/15:40000-44999 --realm core=198.18.2.20/15:45000-49999 \
  -- -l 0 --no-huge --no-pci --no-shconf --no-telemetry -m 256 "--vdev=net_tap0,iface=$IFACE"
ue_hosts_bridge_tap "$IFACE"
ip netns exec "$LAN" ethtool -K "$IFACE" gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are on $IFACE"
kill -0 "$HAP_PID" 2>/dev/null || fail "HAProxy did not start: $(cat "$WORK/haproxy.log")"

steal() { awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
round=0
dropped=0
RECORD=0
# $1 side (imsagw | haproxy), $2 workload (bulk | echo); appends rows unless steal was high.
run() {
  local side=$1 workload=$2 args=() s0 s1
  if [ "$side" = imsagw ]; then
    kill -CONT "$AGW_PID"
    args=(--listen 127.0.0.1:2955 --first-tid $((1000 + round * 10000)))
    [ "$round" -gt 0 ] && args+=(--mg 127.0.0.1:2954)
    round=$((round + 1))
  else
    kill -STOP "$AGW_PID"
    local first=40000
    case $workload in tls-*) first=41000 ;; tlstls-*) first=42000 ;; esac
    args=(--proxy "$HAP_IP:$first" --relay-fingerprint "$AGW_FP")
  fi
  case $workload in
    bulk) args+=(--calls "$CALLS" --bytes "$BYTES") ;;
    echo) args+=(--calls 1 --echo --echo-count "$ECHOES" --echo-rate "$ECHO_RATE" --echo-size 1024) ;;
    tls-bulk) args+=(--tls-access --calls "$CALLS" --bytes "$BYTES") ;;
    tlstls-bulk) args+=(--tls-access --tls-core --calls "$CALLS" --bytes "$BYTES") ;;
    # New TLS connections: one per call, handshake + one 100-byte echo, all at once.
    tls-conns) args+=(--tls-access --calls "$CONNS" --echo --echo-count 1 --echo-size 100) ;;
    # Connections held for 2 s (20 echoes of 100 bytes at 10/s each) while the relay's
    # resident memory is sampled.
    hold) args+=(--calls "$CONNS" --echo --echo-count 20 --echo-rate 10 --echo-size 100) ;;
  esac
  local pid=$AGW_PID rss0 rss_max rss km0=0 km_max=0 km
  [ "$side" = haproxy ] && pid=$HAP_PID
  rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  rss_max=$rss0
  # HAProxy's socket buffers are the kernel's, not in its RSS: the TCP memory (pages) of its
  # namespace counts too. imsagw has no kernel sockets on the media path.
  kernel_tcp_pages() { ip netns exec "$HAP" awk '/^TCP:/ {print $NF}' /proc/net/sockstat; }
  if [ "$side" = haproxy ] && [ "$workload" = hold ]; then
    km0=$(kernel_tcp_pages)
    km_max=$km0
  fi
  s0=$(steal)
  taskset -c 0 "$SIM" load "${args[@]}" --ue-x-netns "$UEX" --ue-y-netns "$UEY" \
    >"$WORK/load.out" 2>&1 &
  local load_pid=$!
  while kill -0 "$load_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    if [ "$side" = haproxy ] && [ "$workload" = hold ]; then
      km=$(kernel_tcp_pages)
      [ "$km" -gt "$km_max" ] && km_max=$km
    fi
    sleep 0.05
  done
  wait "$load_pid" || fail "$side $workload run"
  s1=$(steal)
  kill -CONT "$AGW_PID"
  local frac
  frac=$(echo "$s0 $s1" | awk '{d=$4-$2; print (d>0 ? ($3-$1)/d : 0)}')
  if awk -v f="$frac" -v m="$MAX_STEAL" 'BEGIN{exit !(f>m)}'; then
    dropped=$((dropped + 1))
    echo "  dropped: $side $workload, steal $frac"
    return
  fi
  [ "$RECORD" -eq 1 ] || return 0
  local name=imsagw
  [ "$side" = haproxy ] && name="HAProxy 2.6"
  local mbit ms
  mbit=$(sed -n 's/^LOAD DATA ms=[0-9.]* mbit_s=//p' "$WORK/load.out")
  ms=$(sed -n 's/^LOAD DATA ms=\([0-9.]*\) .*/\1/p' "$WORK/load.out")
  if [ "$workload" = bulk ]; then
    row "TCP -> TCP relay (end to end)" "$CALLS connections, payload both ways" "Mbit/s" "$name" "$mbit"
  elif [ "$workload" = tls-bulk ]; then
    row "TLS -> TCP relay (end to end)" "$CALLS connections, payload one way" "Mbit/s" "$name" "$mbit"
  elif [ "$workload" = tlstls-bulk ]; then
    row "TLS -> TLS relay (end to end)" "$CALLS connections, payload one way" "Mbit/s" "$name" "$mbit"
  elif [ "$workload" = hold ]; then
    row "memory per established call (end to end)" "peak growth per connection held: process RSS + kernel TCP memory ($CONNS held, first such run after a warm-up of $CALLS)" "bytes" "$name" \
      "$(( ((rss_max - rss0) * 1024 + (km_max - km0) * 4096) / CONNS ))"
  elif [ "$workload" = tls-conns ]; then
    row "new TLS connections (end to end)" "$CONNS at once: TCP + TLS 1.3 handshake + one 100-byte echo" "conns/s" "$name" \
      "$(awk -v n="$CONNS" -v ms="$ms" 'BEGIN{printf "%.0f", n*1000/ms}')"
  else
    local lat
    lat=$(grep '^LATENCY' "$WORK/load.out")
    row "1 KiB echo latency (end to end)" "p50 at $ECHO_RATE/s" "us" "$name" "$(echo "$lat" | sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p')"
    row "1 KiB echo latency (end to end)" "p99 at $ECHO_RATE/s" "us" "$name" "$(echo "$lat" | sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p')"
  fi
  echo "  $side $workload: $(grep -E '^(LOAD DATA|LATENCY)' "$WORK/load.out" | tr '\n' ' ')"
}
run imsagw bulk # warm-up (registration, ARP, allocator), not recorded
run haproxy bulk
RECORD=1
for rep in $(seq 1 "$REPS"); do
  echo " repetition $rep"
  ws="bulk echo tls-bulk tlstls-bulk tls-conns"
  # Memory once, before any run has held more connections than the warm-up's.
  [ "$rep" -eq 1 ] && ws="hold $ws"
  for w in $ws; do
    run imsagw "$w"
    run haproxy "$w"
  done
done
row "bench" "runs dropped for steal time > $MAX_STEAL" "runs" "imsagw" "$dropped"

# PROFILE=1: where core 1 spends its time in one bulk run of each relay (perf's cpu-clock
# sampling: this VM has no hardware counters), written to $OUT/profile-{imsagw,haproxy}.txt.
if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
  RECORD=0
  for side in imsagw haproxy; do
    for w in bulk tls-bulk; do
      perf record -q -e cpu-clock -F 2000 -g -C 1 -o "$WORK/perf.data" -- sleep 600 >/dev/null 2>&1 &
      perf_pid=$!
      sleep 0.5
      run "$side" "$w"
      kill -INT "$perf_pid"
      wait "$perf_pid" || echo "perf record ended"
      {
        echo "# core 1 during one $side $w run: by program and library, then by symbol"
        perf report -q -i "$WORK/perf.data" --no-children --sort comm,dso --percent-limit 1 \
          --stdio -g none 2>/dev/null
        echo
        perf report -q -i "$WORK/perf.data" --no-children --sort dso,sym --percent-limit 1.5 \
          --stdio -g none 2>/dev/null
      } >"$OUT/profile-$side-$w.txt" || echo "perf report failed"
    done
  done
fi

agw_stop_checked

echo "== report"
/usr/bin/python3 scripts/bench_report.py "$RESULTS" "$OUT" "$([ "$QUICK" -eq 1 ] && echo quick || echo full)"
for f in results.json report.md cost_per_packet.png throughput.png; do
  [ -s "$OUT/$f" ] || fail "$OUT/$f not written"
done
echo "bench: report in $OUT/report.md"
