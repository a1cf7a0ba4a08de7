# The UE LAN, the one fixture every test and script with kernel UEs uses: UE-X and UE-Y as
# network namespaces with a veth each into a bridge in a LAN namespace, and imsagw's DPDK tap
# joined to that bridge. Shell scripts source it (demo, soak, flood, bench); the Rust
# integration tests run it as a program (tests/src/lib.rs `UeLan`):
#
#   bash scripts/lib/ue_hosts.sh create LAN UEX UEY    prints `uex=ADDR/15 uey=ADDR/15
#                                                      uex6=ADDR/32 uey6=ADDR/32`
#   bash scripts/lib/ue_hosts.sh bridge-tap LAN IFACE [BRIDGE [MAC]]
#   bash scripts/lib/ue_hosts.sh split LAN           UE-X on the access bridge, UE-Y on the core's
#   bash scripts/lib/ue_hosts.sh trunk LAN IFACE [MAC [UEX UEY]]   IFACE carries both as VLANs
#   bash scripts/lib/ue_hosts.sh bridge-veth LAN IFACE   a veth IFACE for imsagw's AF_XDP port
#   bash scripts/lib/ue_hosts.sh add LAN NS ADDRESS VETH   one more host on the LAN
#   bash scripts/lib/ue_hosts.sh delete NS...
#
# Sourced, it expects LAN, UEX, UEY (namespace names) and takes UEX_IP and UEY_IP (defaults
# below) from the environment.

# The UEs' addresses: both in 198.18.0.0/15 (RFC 2544 benchmarking space), as are the
# realms' addresses the scripts give imsagw (access 198.18.1.10, core 198.18.2.20).
UE_HOSTS_UEX_IP=198.18.100.7
UE_HOSTS_UEY_IP=198.18.200.50
UE_HOSTS_PREFIX=15
# Their IPv6 addresses (documentation prefix 2001:db8::/32, one link as the /15 is): UE-X in
# the access network beside the access realm's 2001:db8:1::10, UE-Y in the core beside
# 2001:db8:2::20. Every UE is dual-stack; the call decides which family it uses.
UE_HOSTS_UEX_IP6=2001:db8:1:100::7
UE_HOSTS_UEY_IP6=2001:db8:2:200::50
UE_HOSTS_PREFIX6=32
# net_tap gives the kernel side of the tap the DPDK port's MAC; on a bridge it needs one of
# its own, or the bridge keeps every frame for that MAC to itself.
UE_HOSTS_TAP_MAC=02:00:00:00:00:fe
# Split LAN: UE-X in the access network (bridge br0), UE-Y in the core network (br1). imsagw's
# ports join one network each (two ports), or one port carries both as a trunk: VLAN 10 the
# access network, VLAN 20 the core. This machine's kernel has no 802.1Q (no VLAN interfaces,
# no VLAN filtering on bridges), so a small user-space switch (vlan_switch.py) tags and
# untags between the trunk and the two bridges.
UE_HOSTS_ACCESS_VLAN=10
UE_HOSTS_CORE_VLAN=20
UE_HOSTS_SWITCH=$(dirname "${BASH_SOURCE[0]}")/vlan_switch.py

: "${UEX_IP:=$UE_HOSTS_UEX_IP}"
: "${UEY_IP:=$UE_HOSTS_UEY_IP}"

# $1 host namespace, $2 its IPv6 address: added without duplicate address detection (the
# address is usable at once; nothing else on the LAN has it).
ue_hosts_attach6() {
  ip netns exec "$1" ip -6 addr add "$2/$UE_HOSTS_PREFIX6" dev eth0 nodad
}

# $1 LAN namespace, $2 host namespace, $3 its address, $4 the name of its veth on the bridge.
ue_hosts_attach() {
  local lan=$1 ns=$2 ip=$3 veth=$4
  ip netns exec "$lan" ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip netns exec "$lan" ip link set "$veth" master br0
  ip netns exec "$lan" ip link set "$veth" up
  ip netns exec "$ns" ip addr add "$ip/$UE_HOSTS_PREFIX" dev eth0
  ip netns exec "$ns" ip link set eth0 up
}

ue_hosts_new_ns() {
  [ -e "/run/netns/$1" ] && ip netns del "$1"
  ip netns add "$1"
  ip netns exec "$1" ip link set lo up
}

ue_hosts_create() {
  local ns
  ue_hosts_delete
  for ns in "$UEX" "$UEY" "$LAN"; do
    ue_hosts_new_ns "$ns"
  done
  # No MLD snooping: imsagw does not report its solicited-node groups, so a snooping bridge
  # could keep neighbour solicitations for its IPv6 addresses from it.
  ip netns exec "$LAN" ip link add br0 type bridge mcast_snooping 0
  ue_hosts_attach "$LAN" "$UEX" "$UEX_IP" vx
  ue_hosts_attach "$LAN" "$UEY" "$UEY_IP" vy
  ue_hosts_attach6 "$UEX" "$UE_HOSTS_UEX_IP6"
  ue_hosts_attach6 "$UEY" "$UE_HOSTS_UEY_IP6"
  ip netns exec "$LAN" ip link set br0 up
}

# $1: imsagw's tap interface (in the root namespace once imsagw has started); $2 the bridge
# (br0, or br1 on a split LAN); $3 the kernel side's MAC when several taps share a LAN.
ue_hosts_bridge_tap() {
  ip link set "$1" netns "$LAN"
  ip netns exec "$LAN" ip link set dev "$1" address "${3:-$UE_HOSTS_TAP_MAC}"
  ip netns exec "$LAN" ip link set "$1" master "${2:-br0}"
  ip netns exec "$LAN" ip link set "$1" up
}

# Splits the LAN into the access network (br0, UE-X) and the core network (br1, UE-Y).
ue_hosts_split() {
  ip netns exec "$LAN" ip link add br1 type bridge mcast_snooping 0
  ip netns exec "$LAN" ip link set vy nomaster
  ip netns exec "$LAN" ip link set vy master br1
  ip netns exec "$LAN" ip link set br1 up
}

# $1: imsagw's tap, as a trunk of both networks of a split LAN ($2: the kernel side's MAC):
# the switch joins each bridge through a veth and relays between them and the tap. A packet
# socket reads frames as their sender wrote them, so the UEs send complete checksums (no
# transmit checksum offload on their veths), as on the AF_XDP path.
ue_hosts_trunk() {
  local tap=$1 vid br ns
  for ns in "$UEX" "$UEY" "${UE_HOSTS_EXTRA[@]}"; do
    [ -n "$ns" ] && ue_hosts_no_offloads "$ns" eth0
  done
  ip link set "$tap" netns "$LAN"
  ip netns exec "$LAN" ip link set dev "$tap" address "${2:-$UE_HOSTS_TAP_MAC}"
  ip netns exec "$LAN" ip link set "$tap" up
  for vid in $UE_HOSTS_ACCESS_VLAN:br0 $UE_HOSTS_CORE_VLAN:br1; do
    br=${vid#*:}
    vid=${vid%%:*}
    ip netns exec "$LAN" ip link add "t$vid" type veth peer name "t${vid}s"
    ip netns exec "$LAN" ip link set "t$vid" master "$br"
    ip netns exec "$LAN" ip link set "t$vid" up
    ip netns exec "$LAN" ip link set "t${vid}s" up
  done
  ip netns exec "$LAN" /usr/bin/python3 "$UE_HOSTS_SWITCH" "$tap" \
    "$UE_HOSTS_ACCESS_VLAN=t${UE_HOSTS_ACCESS_VLAN}s" "$UE_HOSTS_CORE_VLAN=t${UE_HOSTS_CORE_VLAN}s" \
    --netns-file "/run/netns/$LAN" </dev/null >/dev/null 2>&1 &
  disown
}

# The frames an AF_XDP socket gets from a veth are what the peer wrote: with transmit
# checksum offload on, a UE's TCP and UDP checksums are left for a NIC that never computes
# them. Every veth on the AF_XDP path sends complete checksums (and no GSO/TSO super-frames).
ue_hosts_no_offloads() {
  local ns=$1 dev=$2
  if [ -n "$ns" ]; then
    ip netns exec "$ns" ethtool -K "$dev" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
  else
    ethtool -K "$dev" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
  fi
}

# $1: the veth imsagw's AF_XDP port takes (made here, in the root namespace); its peer joins
# the LAN's bridge (with a MAC of its own: a tap may be on the same bridge).
ue_hosts_bridge_veth() {
  local dev=$1 peer=${1}b ns
  [ -e "/sys/class/net/$dev" ] && ip link del "$dev"
  ip link add "$dev" type veth peer name "$peer" netns "$LAN"
  ip netns exec "$LAN" ip link set "$peer" master br0
  ip netns exec "$LAN" ip link set "$peer" up
  ue_hosts_no_offloads "$LAN" "$peer"
  ue_hosts_no_offloads "" "$dev"
  for ns in "$UEX" "$UEY" "${UE_HOSTS_EXTRA[@]}"; do
    [ -n "$ns" ] && ue_hosts_no_offloads "$ns" eth0
  done
  ip link set "$dev" up
}

# $1 namespace, $2 address, $3 name of its veth on the bridge: one more host on the LAN
# (an attacker, another relay); deleted by ue_hosts_delete.
UE_HOSTS_EXTRA=()
ue_hosts_add() {
  UE_HOSTS_EXTRA+=("$1")
  ue_hosts_new_ns "$1"
  ue_hosts_attach "$LAN" "$1" "$2" "$3"
}

# Deletes the namespaces that exist (a run before may have left them, or not made them).
ue_hosts_delete() {
  local ns
  for ns in "$UEX" "$UEY" "$LAN" "${UE_HOSTS_EXTRA[@]}"; do
    if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
      ip netns del "$ns"
    fi
  done
}

# Run as a program (not sourced): the subcommands above.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cmd=${1:-}
  shift || true
  case $cmd in
    create)
      LAN=$1 UEX=$2 UEY=$3
      ue_hosts_create
      echo "uex=$UEX_IP/$UE_HOSTS_PREFIX uey=$UEY_IP/$UE_HOSTS_PREFIX uex6=$UE_HOSTS_UEX_IP6/$UE_HOSTS_PREFIX6 uey6=$UE_HOSTS_UEY_IP6/$UE_HOSTS_PREFIX6"
      ;;
    bridge-tap)
      LAN=$1
      ue_hosts_bridge_tap "$2" "${3:-}" "${4:-}"
      ;;
    trunk)
      LAN=$1 UEX=${4:-} UEY=${5:-}
      ue_hosts_trunk "$2" "${3:-}"
      ;;
    split)
      LAN=$1
      ue_hosts_split
      ;;
    bridge-veth)
      LAN=$1 UEX=${3:-} UEY=${4:-}
      ue_hosts_bridge_veth "$2"
      ;;
    add)
      LAN=$1
      ue_hosts_new_ns "$2"
      ue_hosts_attach "$LAN" "$2" "$3" "$4"
      ;;
    delete)
      for ns in "$@"; do
        if [ -e "/run/netns/$ns" ]; then ip netns del "$ns"; fi
      done
      ;;
    *)
      echo "usage: ue_hosts.sh create LAN UEX UEY | bridge-tap LAN IFACE [BRIDGE [MAC]] | split LAN | trunk LAN IFACE [MAC [UEX UEY]] | bridge-veth LAN IFACE [UEX UEY] | add LAN NS ADDRESS VETH | delete NS..." >&2
      exit 2
      ;;
  esac
fi
