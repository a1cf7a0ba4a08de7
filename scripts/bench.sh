#!/usr/bin/env bash
# The performance report: imsagw against HAProxy 2.6 and against the floor, from one run.
# Writes target/bench-report/{results.json,report.md,*.png}.
#
#   bash scripts/bench.sh           the full run (REPS=5 interleaved repetitions; < 40 min)
#   bash scripts/bench.sh --quick   one pair of each, short benches (< 3 min; the test
#                                   command runs it and checks the report is produced)
#   bash scripts/bench.sh --e2e     the end-to-end part alone (WORKLOADS="hold bulk ..." to
#                                   choose its workloads; default all of them; SIDES="xdp
#                                   haproxy" its relays; CAPTURE=1 / TRACE=1 a capture / a
#                                   scheduler trace of each recorded run, for diagnosis)
#
# Method (docs/performance.md, "How the numbers are taken"):
# - end to end: imsagw on a DPDK AF_XDP port (a veth whose peer is on the bridge), imsagw on
#   DPDK net_tap (each with its worker on core 1) and HAProxy 2.6 (`mode tcp`, one thread,
#   pinned to core 1 with taskset) each relay between kernel UEs in namespaces on one bridge; HAProxy
#   sits behind its own veth (MTU 1500; GRO/GSO/TSO off on every veth of the bench, so no
#   side gets 64 KiB segments). The load (imsagw-sim load and its UE farms) runs on core 0.
#   Runs are interleaved AF_XDP/net_tap/HAProxy; only the side under test runs, the others
#   are stopped (SIGSTOP) so no polling worker takes its core. CPU is every core's busy time
#   (wall time less idle and steal, from /proc/stat; kernel threads and a busy-polling worker
#   both paid for) over the data phase, in total and less the load generator's own process
#   time. A run with more than 5 % steal time is dropped and counted. MSRP chat and BFCP
#   through imsagw relayed aware against the same streams relayed agnostic (msrp-aware,
#   msrp-agnostic, bfcp-aware, bfcp-agnostic: AF_XDP side only) is what awareness costs end
#   to end.
# - floors: openssl speed (AES-128-GCM, X25519, ECDSA P-256) and rustls in-process with the
#   AGW's configuration (cargo bench --bench tls); dimpl in-process for DTLS (cargo bench
#   --bench dtls); memcpy for the plain relay.
# - in-process (worker on MemLink, worker time only): cost per packet against concurrent legs
#   (cargo bench --bench worker), TLS relay and handshakes against rustls alone, H.248 calls/s
#   (cargo bench -p control --bench calls), memory per established pair, memory of idle calls
#   held by one worker (cargo bench --bench idle).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ue_hosts.sh
. scripts/lib/ue_hosts.sh
# shellcheck source=scripts/lib/agw.sh
. scripts/lib/agw.sh

QUICK=0 E2E_ONLY=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  --e2e) E2E_ONLY=1 ;;
esac
# HOLD_CONNS: calls held at once by the memory run (fewer if HAProxy's file-descriptor limit
# allows fewer).
if [ "$QUICK" -eq 1 ]; then
  REPS=${REPS:-1} CALLS=${CALLS:-4} BYTES=${BYTES:-2097152} ECHO_SECS=${ECHO_SECS:-1} CONNS=${CONNS:-50}
  HOLD_CONNS=${HOLD_CONNS:-50} HOLD_SECS=${HOLD_SECS:-2} LEGS=${LEGS:-10,1000}
else
  REPS=${REPS:-5} CALLS=${CALLS:-8} BYTES=${BYTES:-33554432} ECHO_SECS=${ECHO_SECS:-30} CONNS=${CONNS:-1000}
  HOLD_CONNS=${HOLD_CONNS:-10000} HOLD_SECS=${HOLD_SECS:-10} LEGS=${LEGS:-10,100,1000,10000,100000}
fi
MAX_STEAL=${MAX_STEAL:-0.05}
OUT=target/bench-report
LAN=bench-lan
UEX=bench-x
UEY=bench-y
HAP=bench-h
AGW_IP=198.18.1.10
HAP_IP=198.18.1.11
TAP_IP=198.18.1.12
IFACE=imbench0
XDP_IFACE=imbench1
WORK=$(mktemp -d)
AGW_PID=""
XDP_PID=""
TAP_PID=""
HAP_PID=""
[ "$(id -u)" -eq 0 ] || { echo "bench.sh needs root (DPDK tap device, network namespaces)"; exit 1; }

cleanup() {
  if [ -n "$HAP_PID" ]; then kill "$HAP_PID" 2>/dev/null || echo "HAProxy already gone"; fi
  AGW_PID=$XDP_PID agw_cleanup
  AGW_PID=$TAP_PID agw_cleanup
  ue_hosts_delete
  ip link del "$XDP_IFACE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/imsagw*.log "$WORK"/haproxy.log; do
    if [ -f "$f" ]; then echo "-- $f" >&2; tail -20 "$f" >&2; fi
  done
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
# IMSAGW_BIN: another imsagw binary under test (an earlier build, against the same HAProxy).
BIN=${IMSAGW_BIN:-target/release/imsagw}
SIM=target/release/imsagw-sim

# --e2e: the end-to-end part alone.
if [ "$E2E_ONLY" -eq 0 ]; then
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
  # The heap on transparent huge pages, as the packaged systemd unit starts imsagw (leg state of
  # 100 000 legs on 4 KiB pages costs a TLB miss per cold leg line besides the cache miss).
  env "${quick_env[@]}" GLIBC_TUNABLES=glibc.malloc.hugetlb=1 IMSAGW_BENCH_LEGS="$LEGS" taskset -c 1 cargo bench -q -p dataplane --bench worker 2>/dev/null | tee "$WORK/worker.txt"
  /usr/bin/python3 scripts/bench_rows.py worker "$WORK/worker.txt" >>"$RESULTS"

  mem=$(sed -n 's/^memory per idle established pair (guaranteed socket buffers + leg records): \([0-9]*\) B/\1/p' "$WORK/worker.txt")
  row "memory per established call" "worker heap per idle call, computed (two legs: guaranteed socket buffers + leg records and sockets)" "bytes" "imsagw" "$mem"

  echo "== in-process: idle calls held by one worker, plain and with TLS on the access leg (10 000 and 100 000; quick: 2 000 plain, 500 TLS)"
  env "${quick_env[@]}" cargo bench -q -p dataplane --bench idle 2>/dev/null | tee "$WORK/idle.txt"
  while read -r n heap rss; do
    row "memory per idle call (in process, $n calls)" "worker heap per idle established plain call, measured" "bytes" "imsagw" "$heap"
    row "memory per idle call (in process, $n calls)" "process RSS growth per idle call less the in-process UE farm's heap" "bytes" "imsagw" "$rss"
  done < <(sed -n 's/^idle calls \([0-9]*\): worker heap per call \([0-9]*\) B, RSS per call less farm \(-\?[0-9]*\) B.*/\1 \2 \3/p' "$WORK/idle.txt")
  while read -r n heap rss; do
    row "memory per idle TLS call (in process, $n calls)" "worker heap per idle established call with TLS on the access leg, measured" "bytes" "imsagw" "$heap"
    row "memory per idle TLS call (in process, $n calls)" "process RSS growth per idle TLS call less the in-process UE farm's heap (its TLS sessions included)" "bytes" "imsagw" "$rss"
  done < <(sed -n 's/^idle TLS calls \([0-9]*\): worker heap per call \([0-9]*\) B, RSS per call less farm \(-\?[0-9]*\) B.*/\1 \2 \3/p' "$WORK/idle.txt")

  echo "== in-process: memory over many calls through one worker (1 000 000; quick: 100 000)"
  env "${quick_env[@]}" taskset -c 1 cargo bench -q -p dataplane --bench churn 2>/dev/null | tee "$WORK/churn.txt"
  calls=$(sed -n 's/^# memory over \([0-9]*\) calls.*/\1/p' "$WORK/churn.txt")
  rss_spread=$(sed -n 's/^over the last half: live heap spread [0-9.]* %, RSS spread \([0-9.]*\) %/\1/p' "$WORK/churn.txt")
  heap_spread=$(sed -n 's/^over the last half: live heap spread \([0-9.]*\) %.*/\1/p' "$WORK/churn.txt")
  row "memory over $calls calls (in process)" "RSS spread over the last half of the run, (max - min) / mean" "%" "imsagw" "$rss_spread"
  row "memory over $calls calls (in process)" "live heap spread over the last half of the run, (max - min) / mean" "%" "imsagw" "$heap_spread"

  echo "== in-process: memcpy floor"
  memcpy=$(/usr/bin/python3 scripts/bench_rows.py memcpy)
  row "TCP -> TCP relay (in-process)" "payload throughput per core, 1 pair" "Gbit/s" "memcpy 64 MiB" "$memcpy"

  echo "== H.248 calls per second through the control thread"
  secs_env=(IMSAGW_BENCH_SECS=3)
  [ "$QUICK" -eq 1 ] && secs_env=(IMSAGW_BENCH_SECS=0.5)
  env "${secs_env[@]}" cargo bench -q -p control --bench calls 2>/dev/null | tee "$WORK/calls.txt"
  calls=$(sed -n 's/.*median \([0-9]*\),.*/\1/p' "$WORK/calls.txt")
  row "H.248 calls/s" "Add, Add, Modify, Modify, Subtract; 64 in flight" "calls/s" "imsagw" "$calls"
fi

echo "== end to end: imsagw (DPDK AF_XDP and net_tap) and HAProxy 2.6 between kernel UEs"
# A held call is two sockets in HAProxy (one in each UE farm): HAProxy's frontends bind only the
# ports their workloads use, and the memory run holds as many calls as HAProxy's descriptors
# allow, at most HOLD_CONNS.
ulimit -n "$(ulimit -Hn)"
P_TCP=$((CALLS > 10 ? CALLS : 10))
P_TLS=$((CALLS > CONNS ? CALLS : CONNS))
HAP_MAXCONN=$((($(ulimit -n) - P_TCP - P_TLS - CALLS - 1 - 64) / 2))
if [ "$HOLD_CONNS" -gt "$HAP_MAXCONN" ]; then
  echo "held calls: $HAP_MAXCONN, not $HOLD_CONNS (HAProxy's file-descriptor limit, $(ulimit -n), allows no more)"
  HOLD_CONNS=$HAP_MAXCONN
fi
ue_hosts_create
# imsagw's AF_XDP veth before HAProxy's host joins, so only the UEs' veths lose their
# checksum offloads (an AF_XDP socket gets frames as their sender wrote them); HAProxy keeps
# its own.
ue_hosts_bridge_veth "$XDP_IFACE"
ue_hosts_add "$HAP" "$HAP_IP" vh
# UE-Y takes the memory run's calls on one listener, all at once.
ip netns exec "$UEY" sysctl -qw net.core.somaxconn=16384 net.ipv4.tcp_max_syn_backlog=16384
for ns in "$UEX" "$UEY" "$HAP"; do
  ip netns exec "$ns" ip link set eth0 mtu 1500
  ip netns exec "$ns" ethtool -K eth0 gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are in $ns"
done
# UE_RPS=1, for diagnosis: the UEs' receive side (their TCP, waking their readers) runs on
# core 0 with them (RPS) instead of inside the relay's transmit on core 1, as if the UEs were
# other machines. Both relays are then bound by the load generator's core.
if [ "${UE_RPS:-0}" = 1 ]; then
  for ns in "$UEX" "$UEY"; do
    ip netns exec "$ns" sh -c 'echo 1 > /sys/class/net/eth0/queues/rx-0/rps_cpus'
  done
fi
for v in vx vy vh; do
  ip netns exec "$LAN" ethtool -K "$v" gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are on $v"
done
# One certificate for both relays (ECDSA P-256; the key exchange is X25519 on both).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=agw.example -keyout "$WORK/agw.key" -out "$WORK/agw.crt" 2>/dev/null
cat "$WORK/agw.crt" "$WORK/agw.key" >"$WORK/agw.pem"
AGW_FP="sha-256 $(openssl x509 -in "$WORK/agw.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
cat >"$WORK/haproxy.cfg" <<EOC
global
  nbthread 1
  maxconn $HAP_MAXCONN
  ssl-default-bind-curves X25519
  log stdout format raw local0 info
defaults
  mode tcp
  log global
  option tcplog
  timeout connect 5s
  timeout client 60s
  timeout server 60s
# The client's destination port - N: call i on the frontend's first port + i goes to UE-Y's
# 3000 + i.
frontend tcp_tcp
  bind $HAP_IP:40000-$((40000 + P_TCP - 1))
  default_backend plain
frontend tls_tcp
  bind $HAP_IP:41000-$((41000 + P_TLS - 1)) ssl crt $WORK/agw.pem
  default_backend plain41
frontend tls_tls
  bind $HAP_IP:42000-$((42000 + CALLS - 1)) ssl crt $WORK/agw.pem
  default_backend tls42
# The memory runs' held calls: every call on one port, to UE-Y's one port.
frontend hold
  bind $HAP_IP:50000
  default_backend plain50
frontend hold_tls
  bind $HAP_IP:51000 ssl crt $WORK/agw.pem
  default_backend plain50
backend plain
  server uey $UEY_IP:-37000
backend plain50
  server uey $UEY_IP:3000
backend plain41
  server uey $UEY_IP:-38000
backend tls42
  server uey $UEY_IP:-39000 ssl verify none crt $WORK/agw.pem
EOC
# HAProxy 2.6 ignores `cpu-map 1/1 1` with one thread (started this way, its affinity stays
# every core, and the scheduler ran it on core 0 next to the UEs): taskset pins it, and the
# bench checks it took.
taskset -c 1 ip netns exec "$HAP" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAP_PID=$!

# Two imsagw, each with its worker on core 1 and its own addresses on the LAN: one on an
# AF_XDP port (the veth above), one on net_tap. Only the side under test runs; the others
# are stopped (SIGSTOP) so no polling worker takes its core.
AGW_LOG=$WORK/imsagw-tap.log agw_start --bind 127.0.0.1:2956 --mgc 127.0.0.1:2957 \
  --status-socket "$WORK/imsagw-tap.sock" --tls-cert "$WORK/agw.crt" --tls-key "$WORK/agw.key" \
  --worker-cores 1 --shared-control-core \
  --realm access=$TAP_IP/15:40000-54999 --realm core=198.18.2.22/15:40000-54999 \
  -- -l 0 --no-huge --no-pci --no-shconf --no-telemetry -m 256 "--vdev=net_tap0,iface=$IFACE"
TAP_PID=$AGW_PID
ue_hosts_bridge_tap "$IFACE"
ip netns exec "$LAN" ethtool -K "$IFACE" gro off gso off tso off >/dev/null 2>&1 || echo "ethtool: offloads left as they are on $IFACE"
agw_start --bind 127.0.0.1:2954 --mgc 127.0.0.1:2955 --status-socket "$WORK/imsagw.sock" \
  --tls-cert "$WORK/agw.crt" --tls-key "$WORK/agw.key" \
  --worker-cores 1 --shared-control-core --control-core 0 --af-xdp "$XDP_IFACE" \
  --msrp-messages-per-second 0 --bfcp-frames-per-second 0 \
  --realm access=$AGW_IP/15:40000-54999 --realm core=198.18.2.20/15:40000-54999
XDP_PID=$AGW_PID
kill -0 "$HAP_PID" 2>/dev/null || fail "HAProxy did not start: $(cat "$WORK/haproxy.log")"
hap_cpus=$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$HAP_PID/status")
[ "$hap_cpus" = 1 ] || fail "HAProxy runs on cores $hap_cpus, not core 1"

# Wall time (ns), then every core's steal, idle + iowait, and the number of cores. Busy time
# is wall time times cores less idle and steal: /proc/stat's busy fields are sampled by the
# tick and miss most of a thread that sleeps tens of microseconds at a time (a napping
# worker); idle time is measured (tests/sim/src/cpu.rs has the numbers).
cpu_jiffies() {
  echo "$(date +%s%N) $(awk '/^cpu / {s=$9; i=$5+$6} /^cpu[0-9]/ {n++} END {print s, i, n}' /proc/stat)"
}
HZ=$(getconf CLK_TCK)
[ "$HZ" = 100 ] || fail "clock ticks of $HZ/s: the load's CPU accounting takes 100"
# Kernel memory a relay's sockets take, in KiB: slab (socket, inode, file and TCP objects) and
# the TCP buffer pages (tcp_memory_allocated, one figure for every namespace). Both count the
# UEs' sockets as well, which carry the same load on every side.
kernel_tcp_kib() { awk '/^TCP:/ {print $NF * 4}' /proc/net/sockstat; }
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
# Per side: its name in the report, bytes per held call of the relay's RSS growth and the
# kernel's.
declare -A hold_name hold_rss hold_kernel
HOLD_TITLE=""
round=(0 0)
dropped=0
RECORD=0
# $1 side (xdp | tap | haproxy), $2 workload; appends rows unless steal was high.
run() {
  local side=$1 workload=$2 args=() c0 c1 name pid
  # Aware against agnostic is imsagw's own comparison: on its AF_XDP side only.
  case $workload in msrp-* | bfcp-*) [ "$side" = xdp ] || return 0 ;; esac
  for p in "$XDP_PID" "$TAP_PID"; do kill -STOP "$p"; done
  case $side in
    xdp | tap)
      local i=0 mgc=2955 mg=2954
      name=imsagw
      pid=$XDP_PID
      if [ "$side" = tap ]; then
        i=1 mgc=2957 mg=2956 name="imsagw (net_tap)" pid=$TAP_PID
      fi
      kill -CONT "$pid"
      # Transaction ids never reused by a later run: the memory run's ~10 000 calls take some
      # 60 000, and a reused id inside the MG's reply-retention time is, by H.248, a
      # retransmission answered from the cache (the old call's ports: connections refused).
      args=(--listen "127.0.0.1:$mgc" --first-tid $((1000 + round[i] * 1000000)))
      [ "${round[i]}" -gt 0 ] && args+=(--mg "127.0.0.1:$mg")
      round[i]=$((round[i] + 1))
      ;;
    haproxy)
      name="HAProxy 2.6"
      pid=$HAP_PID
      local first=40000
      case $workload in tls-*) first=41000 ;; tlstls-*) first=42000 ;; hold) first=50000 ;; hold-tls) first=51000 ;; esac
      args=(--proxy "$HAP_IP:$first" --relay-fingerprint "$AGW_FP")
      ;;
  esac
  case $workload in
    bulk) args+=(--calls "$CALLS" --bytes "$BYTES") ;;
    # 1 KiB echoes, one at a time per connection at 1 000/s: one connection, then ten.
    echo1k) args+=(--calls 1 --echo --echo-count $((ECHO_SECS * 1000)) --echo-rate 1000 --echo-size 1024) ;;
    echo10k) args+=(--calls 10 --echo --echo-count $((ECHO_SECS * 1000)) --echo-rate 1000 --echo-size 1024) ;;
    tls-bulk) args+=(--tls-access --calls "$CALLS" --bytes "$BYTES") ;;
    tlstls-bulk) args+=(--tls-access --tls-core --calls "$CALLS" --bytes "$BYTES") ;;
    # MSRP chat or BFCP both ways, relayed aware (TCP/MSRP or TCP/BFCP terminations; the
    # rate limits off: imsagw starts with --msrp-messages-per-second 0
    # --bfcp-frames-per-second 0) or agnostic (TCP); the agnostic runs are the aware rows'
    # baseline.
    msrp-aware | bfcp-aware) args+=(--calls "$CALLS" --bytes "$BYTES" --app "${workload%-aware}") ;;
    msrp-agnostic | bfcp-agnostic)
      args+=(--calls "$CALLS" --bytes "$BYTES" --app "${workload%-agnostic}" --agnostic)
      name="imsagw, agnostic"
      ;;
    # New TLS connections: one per call, handshake + one 100-byte echo, all at once.
    tls-conns) args+=(--tls-access --calls "$CONNS" --echo --echo-count 1 --echo-size 100) ;;
    # Calls held for HOLD_SECS (one 100-byte echo a second each, as idle chat) while the
    # relay's resident memory and the kernel's are sampled.
    # hold-tls: the same with TLS between UE-X and the relay.
    hold | hold-tls)
      [ "$workload" = hold-tls ] && args+=(--tls-access)
      args+=(--calls "$HOLD_CONNS" --one-port --echo --echo-count "$HOLD_SECS" --echo-rate 1 --echo-size 100)
      ;;
  esac
  local rss0 rss_max rss km0=0 km_max=0 km tcp0=0 tcp_max=0 tcp
  rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  rss_max=$rss0
  local memory=0
  case $workload in hold | hold-tls) memory=1 ;; esac
  if [ "$memory" -eq 1 ]; then
    tcp0=$(kernel_tcp_kib)
    tcp_max=$tcp0
    km0=$(($(slab_kib) + tcp0))
    km_max=$km0
  fi
  # CAPTURE=1: the run's TCP headers on the UEs' bridge ports; TRACE=1: 0.3 s of scheduler,
  # softirq and network events on every core, two seconds in (where a wake-up comes from and
  # how long it takes to land). Both into $OUT, for diagnosis; they cost CPU, so not for the
  # report's numbers.
  local cap_pid=""
  if [ "${CAPTURE:-0}" = 1 ] && [ "$RECORD" = 1 ]; then
    ip netns exec "$LAN" dumpcap -q -i vy -i vx -s 128 -f tcp \
      -w "$OUT/capture-$side-$workload-$$-$SECONDS.pcapng" >/dev/null 2>&1 &
    cap_pid=$!
    sleep 1
  fi
  if [ "${TRACE:-0}" = 1 ] && [ "$RECORD" = 1 ]; then
    (
      sleep 2
      perf record -q -a -o "$OUT/trace-$side-$workload-$$-$SECONDS.data" \
        -e sched:sched_waking,sched:sched_wakeup,sched:sched_switch,power:cpu_idle \
        -e irq:softirq_entry,irq:softirq_exit,irq:softirq_raise,net:net_dev_xmit,net:netif_rx \
        -e irq_vectors:reschedule_entry,irq_vectors:call_function_single_entry \
        -e syscalls:sys_enter_sendto,syscalls:sys_exit_sendto -- sleep 0.3 >/dev/null 2>&1
    ) &
  fi
  c0=$(cpu_jiffies)
  taskset -c 0 /usr/bin/python3 scripts/lib/rusage.py "$WORK/load.cpu" \
    "$SIM" load "${args[@]}" --ue-x-netns "$UEX" --ue-y-netns "$UEY" >"$WORK/load.out" 2>&1 &
  local load_pid=$!
  while kill -0 "$load_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    if [ "$memory" -eq 1 ]; then
      tcp=$(kernel_tcp_kib)
      [ "$tcp" -gt "$tcp_max" ] && tcp_max=$tcp
      km=$(($(slab_kib) + tcp))
      [ "$km" -gt "$km_max" ] && km_max=$km
    fi
    sleep 0.05
  done
  wait "$load_pid" || fail "$side $workload run"
  if [ -n "$cap_pid" ]; then
    sleep 0.5
    kill -INT "$cap_pid"
    # dumpcap's status after the interrupt is not the run's; the run was checked above.
    wait "$cap_pid" || true
  fi
  c1=$(cpu_jiffies)
  for p in "$XDP_PID" "$TAP_PID"; do kill -CONT "$p"; done
  # Every core's busy time during the run, and the same less the load generator's own.
  local frac cpu load_cpu
  frac=$(echo "$c0 $c1" | awk -v hz="$HZ" '{w=($5-$1)/1e9*hz*$8; print (w>0 ? ($6-$2)/w : 0)}')
  cpu=$(echo "$c0 $c1" | awk -v hz="$HZ" '{b=($5-$1)/1e9*hz*$8-($7-$3)-($6-$2); print (b>0 ? b : 0)/hz}')
  load_cpu=$(cat "$WORK/load.cpu")
  if awk -v f="$frac" -v m="$MAX_STEAL" 'BEGIN{exit !(f>m)}'; then
    dropped=$((dropped + 1))
    echo "  dropped: $side $workload, steal $frac"
    return
  fi
  # The data phase alone (from UE-X's first connection to the last checked byte), which the
  # load measures itself: the rows charge a relay for moving data, not for the H.248 call
  # set-up before it (imsagw's alone: HAProxy has none) nor the farms' start.
  local phase_cpu phase_load
  phase_cpu=$(sed -n 's/^LOAD CPU busy_ticks=\([0-9]*\) .*/\1/p' "$WORK/load.out")
  phase_load=$(sed -n 's/^LOAD CPU .* load_ticks=\([0-9]*\).*/\1/p' "$WORK/load.out")
  [ -n "$phase_cpu" ] && [ -n "$phase_load" ] || fail "$side $workload: no LOAD CPU line"
  phase_cpu=$(awk -v t="$phase_cpu" -v hz="$HZ" 'BEGIN{print t / hz}')
  phase_load=$(awk -v t="$phase_load" -v hz="$HZ" 'BEGIN{print t / hz}')
  echo "  $side $workload: $(grep -E '^(LOAD DATA|LOAD CPU|LATENCY)' "$WORK/load.out" | tr '\n' ' ') cpu_s=$cpu load_cpu_s=$load_cpu phase_cpu_s=$phase_cpu phase_load_s=$phase_load"
  [ "$RECORD" -eq 1 ] || return 0
  local mbit ms gb
  mbit=$(sed -n 's/^LOAD DATA ms=[0-9.]* mbit_s=//p' "$WORK/load.out")
  ms=$(sed -n 's/^LOAD DATA ms=\([0-9.]*\) .*/\1/p' "$WORK/load.out")
  gb=$(awk -v m="$mbit" -v t="$ms" 'BEGIN{print m * t / 8e6}')
  # $1 workload title, $2 its metric: throughput, then CPU per GB relayed.
  relay_rows() {
    row "$1" "$2" "Mbit/s" "$name" "$mbit"
    row "$1" "CPU per GB relayed, every core (wall time less idle and steal)" "CPU s/GB" "$name" \
      "$(awk -v c="$phase_cpu" -v g="$gb" 'BEGIN{printf "%.3f", c / g}')"
    row "$1" "CPU per GB relayed, every core less the load generator's process time" "CPU s/GB" "$name" \
      "$(awk -v c="$phase_cpu" -v l="$phase_load" -v g="$gb" 'BEGIN{printf "%.3f", (c - l) / g}')"
  }
  case $workload in
    bulk) relay_rows "TCP -> TCP relay (end to end)" "$CALLS connections, payload both ways" ;;
    tls-bulk) relay_rows "TLS -> TCP relay (end to end)" "$CALLS connections, payload one way" ;;
    tlstls-bulk) relay_rows "TLS -> TLS relay (end to end)" "$CALLS connections, payload one way" ;;
    msrp-*) relay_rows "MSRP chat relay, aware against agnostic (end to end)" "$CALLS connections, MSRP both ways" ;;
    bfcp-*) relay_rows "BFCP relay, aware against agnostic (end to end)" "$CALLS connections, BFCP both ways" ;;
    hold | hold-tls)
      local per_rss=$(((rss_max - rss0) * 1024 / HOLD_CONNS)) per_kernel=$(((km_max - km0) * 1024 / HOLD_CONNS))
      row "$HOLD_TITLE" "relay process RSS, peak growth per call" "bytes" "$name" "$per_rss"
      row "$HOLD_TITLE" "kernel slab + TCP buffer pages, every namespace (the UEs' sockets too, the same on every side), peak growth per call" "bytes" "$name" "$per_kernel"
      row "$HOLD_TITLE" "of which TCP buffer pages (sockstat mem), peak growth per call" "bytes" "$name" "$(((tcp_max - tcp0) * 1024 / HOLD_CONNS))"
      hold_name[$side]=$name
      hold_rss[$side]=$per_rss
      hold_kernel[$side]=$per_kernel
      ;;
    tls-conns)
      row "new TLS connections (end to end)" "$CONNS at once: TCP + TLS 1.3 handshake + one 100-byte echo" "conns/s" "$name" \
        "$(awk -v n="$CONNS" -v ms="$ms" 'BEGIN{printf "%.0f", n*1000/ms}')"
      row "new TLS connections (end to end)" "CPU per connection, every core" "CPU ms/conn" "$name" \
        "$(awk -v c="$phase_cpu" -v n="$CONNS" 'BEGIN{printf "%.3f", c * 1000 / n}')"
      row "new TLS connections (end to end)" "CPU per connection, every core less the load generator's process time" "CPU ms/conn" "$name" \
        "$(awk -v c="$phase_cpu" -v l="$phase_load" -v n="$CONNS" 'BEGIN{printf "%.3f", (c - l) * 1000 / n}')"
      # The whole run as well: for imsagw it holds each call's H.248 set-up and release.
      row "new TLS connections (end to end)" "CPU per connection, every core, whole run (imsagw: the H.248 call set-up and release too; the farms' start)" "CPU ms/conn" "$name" \
        "$(awk -v c="$cpu" -v n="$CONNS" 'BEGIN{printf "%.3f", c * 1000 / n}')"
      ;;
    echo1k | echo10k)
      local lat rate=1000 p
      [ "$workload" = echo10k ] && rate=10000
      lat=$(grep '^LATENCY' "$WORK/load.out")
      for p in p50 p99 p999; do
        row "1 KiB echo latency (end to end)" "$p at $rate/s ($ECHO_SECS s)" "us" "$name" \
          "$(echo "$lat" | sed -n "s/.* ${p}_us=\([0-9.]*\).*/\1/p")"
      done
      # What waiting costs: a relay that naps or sleeps between messages against one that polls.
      row "1 KiB echo latency (end to end)" "CPU per 1 000 echoes at $rate/s, every core" "CPU ms" "$name" \
        "$(echo "$lat" | awk -v c="$phase_cpu" '{for (i = 1; i <= NF; i++) if ($i ~ /^echoes=/) {split($i, e, "="); printf "%.1f", c * 1e6 / e[2]}}')"
      ;;
  esac
}
SIDES=${SIDES:-xdp tap haproxy}
for side in $SIDES; do run "$side" bulk; done # warm-up (registration, ARP, allocator), not recorded
RECORD=1
for rep in $(seq 1 "$REPS"); do
  echo " repetition $rep"
  ws=""
  for w in ${WORKLOADS:-hold bulk echo1k echo10k tls-bulk tlstls-bulk tls-conns msrp-agnostic msrp-aware bfcp-agnostic bfcp-aware}; do
    # Memory once per run, before any run has held more connections than the warm-up's: a
    # second memory run would find the first one's high water (WORKLOADS=hold-tls in a run of
    # its own measures held calls with TLS).
    case $w in
      hold | hold-tls)
        [ "$rep" -gt 1 ] && continue
        if [ -n "$HOLD_TITLE" ]; then
          echo "skipped: $w (one memory workload per run: $HOLD_TITLE)"
          continue
        fi
        HOLD_TITLE="memory per held call (end to end, $HOLD_CONNS held)"
        [ "$w" = hold-tls ] && HOLD_TITLE="memory per held call with TLS towards UE-X (end to end, $HOLD_CONNS held)"
        ;;
    esac
    ws="$ws $w"
  done
  for w in $ws; do
    for side in $SIDES; do run "$side" "$w"; done
  done
done
row "bench" "runs dropped for steal time > $MAX_STEAL" "runs" "imsagw" "$dropped"
# A relay's own memory per held call: its RSS, and the kernel memory the same load took beyond
# what it took through imsagw on AF_XDP (whose calls hold no kernel socket: that side's kernel
# growth is the UEs' own).
if [ -n "${hold_kernel[xdp]:-}" ]; then
  for side in "${!hold_rss[@]}"; do
    row "$HOLD_TITLE" "the relay's own: process RSS + kernel memory beyond the same load's through imsagw on AF_XDP" "bytes" "${hold_name[$side]}" \
      "$((hold_rss[$side] + hold_kernel[$side] - hold_kernel[xdp]))"
  done
fi

# PROFILE=1: where core 1 spends its time in one bulk run of each relay (perf's cpu-clock
# sampling: this VM has no hardware counters), written to $OUT/profile-{imsagw,haproxy}.txt.
if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
  RECORD=0
  for side in xdp haproxy; do
    for w in bulk tls-bulk; do
      # Every imsagw stopped before sampling starts (run continues the side under test), so
      # an idle polling worker is not sampled in another side's profile.
      for p in "$XDP_PID" "$TAP_PID"; do kill -STOP "$p"; done
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

AGW_PID=$XDP_PID agw_stop_checked
AGW_PID=$TAP_PID AGW_LOG=$WORK/imsagw-tap.log agw_stop_checked

echo "== report"
/usr/bin/python3 scripts/bench_report.py "$RESULTS" "$OUT" "$([ "$QUICK" -eq 1 ] && echo quick || echo full)"
for f in results.json report.md cost_per_packet.png throughput.png; do
  [ -s "$OUT/$f" ] || fail "$OUT/$f not written"
done
echo "bench: report in $OUT/report.md"
