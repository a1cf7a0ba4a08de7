//! Neighbours: our own announcements of the local addresses (gratuitous ARP for IPv4;
//! duplicate address detection, then unsolicited advertisements for IPv6), our own requests
//! for a leg's next hop (ARP request, neighbour solicitation), and the watch for another host
//! claiming one of our IPv6 addresses. smoltcp answers the neighbours' requests and keeps
//! the caches.

use std::net::IpAddr;

use smoltcp::phy::{ChecksumCapabilities, Device, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv6Address, Ipv6Packet,
    Ipv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use super::network::on_net;
use super::Worker;
use port::Port;

/// The solicited-node multicast address of `a` (RFC 4291 2.7.1): ff02::1:ffXX:XXXX.
fn solicited_node(a: Ipv6Address) -> Ipv6Address {
    let o = a.octets();
    Ipv6Address::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address IPv6 multicast `a` goes to (RFC 2464 7): 33:33 and its last 32 bits.
fn multicast_mac(a: Ipv6Address) -> EthernetAddress {
    let o = a.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

const ALL_NODES: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl<P: Port> Worker<P> {
    /// Round `round` of the announcements after start: IPv4 addresses get a gratuitous ARP
    /// every round; IPv6 addresses a duplicate address detection probe first (RFC 4862 5.4),
    /// then an unsolicited neighbour advertisement (override) in every later round.
    pub(super) fn announce(&mut self, net: u8, round: u32) {
        for i in 0..self.nets[net as usize].addresses.len() {
            let sent = match self.nets[net as usize].addresses[i] {
                IpCidr::Ipv4(c) => self.arp_request(net, c.address(), c.address()),
                IpCidr::Ipv6(c) if round == 0 => self.solicit(net, None, c.address()),
                IpCidr::Ipv6(c) => self.advertise(net, c.address()),
            };
            if !sent {
                return;
            }
        }
    }

    /// Broadcasts an ARP request from `source` for `target`; false if the port had no room.
    fn arp_request(&mut self, net: u8, source: Ipv4Address, target: Ipv4Address) -> bool {
        let (_, device) = on_net(&mut self.nets, &mut self.devices, net);
        let mac = EthernetAddress(device.port().mac());
        let Some(tx) = device.transmit(Instant::ZERO) else {
            return false;
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: source,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        tx.consume(14 + arp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            frame.set_src_addr(mac);
            frame.set_dst_addr(EthernetAddress::BROADCAST);
            frame.set_ethertype(EthernetProtocol::Arp);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
        true
    }

    /// Sends an ICMPv6 neighbour-discovery message from `src` to `dst` (Ethernet `to`), hop
    /// limit 255 as RFC 4861 requires; false if the port had no room.
    fn send_ndisc(
        &mut self,
        net: u8,
        src: Ipv6Address,
        dst: Ipv6Address,
        to: EthernetAddress,
        ndisc: NdiscRepr,
    ) -> bool {
        let (_, device) = on_net(&mut self.nets, &mut self.devices, net);
        let mac = EthernetAddress(device.port().mac());
        let Some(tx) = device.transmit(Instant::ZERO) else {
            return false;
        };
        let icmp = Icmpv6Repr::Ndisc(ndisc);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            hop_limit: 255,
            payload_len: icmp.buffer_len(),
        };
        tx.consume(14 + ip.buffer_len() + icmp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            frame.set_src_addr(mac);
            frame.set_dst_addr(to);
            frame.set_ethertype(EthernetProtocol::Ipv6);
            let mut packet = Ipv6Packet::new_unchecked(frame.payload_mut());
            ip.emit(&mut packet);
            icmp.emit(
                &src,
                &dst,
                &mut Icmpv6Packet::new_unchecked(packet.payload_mut()),
                &ChecksumCapabilities::default(),
            );
        });
        true
    }

    /// A neighbour solicitation for `target` to its solicited-node group, from `source`
    /// with our link-layer address, or from the unspecified address without it (a duplicate
    /// address detection probe).
    fn solicit(&mut self, net: u8, source: Option<Ipv6Address>, target: Ipv6Address) -> bool {
        let mac = self.mac_of(net);
        let group = solicited_node(target);
        let ndisc = NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: source.map(|_| RawHardwareAddress::from(mac)),
        };
        let src = source.unwrap_or(Ipv6Address::UNSPECIFIED);
        self.send_ndisc(net, src, group, multicast_mac(group), ndisc)
    }

    /// An unsolicited neighbour advertisement of `addr` to all nodes, overriding what their
    /// caches hold (a restart, a new NIC, a fail-over).
    fn advertise(&mut self, net: u8, addr: Ipv6Address) -> bool {
        let mac = self.mac_of(net);
        let ndisc = NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::OVERRIDE,
            target_addr: addr,
            lladdr: Some(RawHardwareAddress::from(mac)),
        };
        self.send_ndisc(net, addr, ALL_NODES, multicast_mac(ALL_NODES), ndisc)
    }

    /// The MAC address of network `net`'s port.
    fn mac_of(&self, net: u8) -> EthernetAddress {
        EthernetAddress(self.devices[self.nets[net as usize].port].port().mac())
    }

    /// Asks for the link-layer address of the next hop towards `remote` now, with our own
    /// ARP request or neighbour solicitation: smoltcp asks once per second per interface and
    /// only once something waits, so a leg's first datagrams could wait a second (and a
    /// burst overflow its queue) behind another leg's resolution. The answer fills smoltcp's
    /// cache like any answer to us.
    pub(super) fn resolve(&mut self, net: u8, remote: IpAddr) {
        let remote = IpAddress::from(remote);
        let n = &self.nets[net as usize];
        let gateway = match remote {
            IpAddress::Ipv4(_) => n.gateway.map(IpAddress::Ipv4),
            IpAddress::Ipv6(_) => n.gateway_v6.map(IpAddress::Ipv6),
        };
        let on_link = |a: &IpAddress| n.addresses.iter().find(|c| c.contains_addr(a));
        let (source, target) = match (on_link(&remote), gateway) {
            (Some(c), _) => (c.address(), remote),
            (None, Some(gw)) => match on_link(&gw) {
                Some(c) => (c.address(), gw),
                None => return,
            },
            (None, None) => return,
        };
        match (source, target) {
            (IpAddress::Ipv4(s), IpAddress::Ipv4(t)) => {
                self.arp_request(net, s, t);
            }
            (IpAddress::Ipv6(s), IpAddress::Ipv6(t)) => {
                self.solicit(net, Some(s), t);
            }
            _ => {}
        }
    }

    /// Looks at a neighbour-discovery frame for another host claiming one of our IPv6
    /// addresses: its advertisement of it, or its own duplicate address detection probe for
    /// it (from the unspecified address). Counted, and logged once per address.
    pub(super) fn check_claim(&mut self, net: u8, frame: &[u8]) {
        let Some(target) = claimed(frame, self.mac_of(net).0) else {
            return;
        };
        let n = &mut self.nets[net as usize];
        let Some(i) = n
            .addresses
            .iter()
            .position(|c| c.address() == IpAddress::Ipv6(target))
        else {
            return;
        };
        self.counters.duplicate_addresses += 1;
        let bit = 1u64 << (i % 64);
        if n.claims_reported & bit == 0 {
            n.claims_reported |= bit;
            let from = EthernetAddress::from_bytes(&frame[6..12]);
            tracing::error!(
                address = %target,
                claimed_by = %from,
                "another host on the link claims one of our IPv6 addresses"
            );
        }
    }
}

/// The target of a neighbour advertisement, or of a duplicate address detection probe, that
/// a host other than `ours` sent; None for anything else.
fn claimed(frame: &[u8], ours: [u8; 6]) -> Option<Ipv6Address> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.src_addr() == EthernetAddress(ours) || eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let repr = Ipv6Repr::parse(&ip).ok()?;
    if repr.next_header != IpProtocol::Icmpv6 {
        return None;
    }
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    match Icmpv6Repr::parse(
        &repr.src_addr,
        &repr.dst_addr,
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .ok()?
    {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { target_addr, .. }) => Some(target_addr),
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. })
            if repr.src_addr.is_unspecified() =>
        {
            Some(target_addr)
        }
        _ => None,
    }
}
