#!/usr/bin/python3
"""An 802.1Q trunk for the UE LAN, in user space (this machine's kernel has neither VLAN
interfaces nor VLAN filtering on bridges): frames imsagw sends on its trunk port with VLAN V go
untagged to the port of V; frames from the port of V go to imsagw tagged with V.

    vlan_switch.py TRUNK V=PORT [V=PORT ...] [--netns-file PATH]

Runs until one of its interfaces goes away, or until PATH (the LAN namespace's file under
/run/netns) does: `ip netns del` then ends it.
"""
import os
import select
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_AUXDATA = 8
SOL_PACKET = 263
TP_STATUS_VLAN_VALID = 1 << 4
PACKET_OUTGOING = 4


def open_port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((name, 0))
    s.setblocking(False)
    return s


def read(s):
    """One received frame and the VLAN the kernel took off it (None: untagged or still in
    the frame), or None for a frame this port sent."""
    data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
    if addr[2] == PACKET_OUTGOING:
        return None
    vid = None
    for level, kind, value in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= 20:
            status, _len, _snap, _mac, _net, tci = struct.unpack_from("IIIHHH", value)
            if status & TP_STATUS_VLAN_VALID:
                vid = tci & 0x0FFF
    return data, vid


def main():
    args = sys.argv[1:]
    netns_file = None
    if "--netns-file" in args:
        i = args.index("--netns-file")
        netns_file = args[i + 1]
        del args[i : i + 2]
    trunk_name, ports = args[0], {}
    for spec in args[1:]:
        vid, name = spec.split("=")
        ports[int(vid)] = open_port(name)
    trunk = open_port(trunk_name)
    vid_of = {p.fileno(): v for v, p in ports.items()}
    everything = [trunk] + list(ports.values())
    while True:
        ready, _, _ = select.select(everything, [], [], 1.0)
        if netns_file and not os.path.exists(netns_file):
            return 0
        for s in ready:
            try:
                got = read(s)
            except OSError:
                return 0
            if got is None:
                continue
            data, vid = got
            try:
                if s is trunk:
                    if vid is None and data[12:14] == b"\x81\x00":
                        vid = struct.unpack_from("!H", data, 14)[0] & 0x0FFF
                        data = data[:12] + data[16:]
                    if vid in ports:
                        ports[vid].send(data)
                else:
                    tag = struct.pack("!HH", 0x8100, vid_of[s.fileno()])
                    trunk.send(data[:12] + tag + data[12:])
            except OSError:
                # A full queue or a frame too long: dropped, as a switch would.
                pass


if __name__ == "__main__":
    sys.exit(main())
