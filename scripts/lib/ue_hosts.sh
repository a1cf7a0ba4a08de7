# Shared by demo.sh and soak.sh (sourced): the UE hosts as network namespaces, UE-X and
# UE-Y bridged in a LAN namespace, and imsagw's net_tap interface joined to the bridge.
# Expects LAN, UEX, UEY, UEX_IP, UEY_IP.

ue_hosts_create() {
  local ns pair ip veth
  ue_hosts_delete
  for ns in "$UEX" "$UEY" "$LAN"; do
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
  done
  ip netns exec "$LAN" ip link add br0 type bridge
  for pair in "$UEX:$UEX_IP:vx" "$UEY:$UEY_IP:vy"; do
    IFS=: read -r ns ip veth <<<"$pair"
    ip netns exec "$LAN" ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip netns exec "$LAN" ip link set "$veth" master br0
    ip netns exec "$LAN" ip link set "$veth" up
    ip netns exec "$ns" ip addr add "$ip/15" dev eth0
    ip netns exec "$ns" ip link set eth0 up
  done
  ip netns exec "$LAN" ip link set br0 up
}

# $1: imsagw's tap interface (in the root namespace once imsagw has started).
ue_hosts_bridge_tap() {
  # net_tap gives the kernel side the DPDK port's MAC; on a bridge it needs one of its own.
  ip link set "$1" netns "$LAN"
  ip netns exec "$LAN" ip link set dev "$1" address 02:00:00:00:00:fe
  ip netns exec "$LAN" ip link set "$1" master br0
  ip netns exec "$LAN" ip link set "$1" up
}

# $1 namespace, $2 address, $3 name of its veth on the bridge: one more host on the LAN
# (an attacker, another relay); deleted by ue_hosts_delete.
UE_HOSTS_EXTRA=()
ue_hosts_add() {
  local ns=$1 ip=$2 veth=$3
  [ -e "/run/netns/$ns" ] && ip netns del "$ns"
  UE_HOSTS_EXTRA+=("$ns")
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$LAN" ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip netns exec "$LAN" ip link set "$veth" master br0
  ip netns exec "$LAN" ip link set "$veth" up
  ip netns exec "$ns" ip addr add "$ip/15" dev eth0
  ip netns exec "$ns" ip link set eth0 up
}

# Deletes the namespaces that exist (a run before may have left them, or not made them).
ue_hosts_delete() {
  local ns
  for ns in "$UEX" "$UEY" "$LAN" "${UE_HOSTS_EXTRA[@]}"; do
    if [ -e "/run/netns/$ns" ]; then
      ip netns del "$ns"
    fi
  done
}
