//! Ingress classification: just enough of Ethernet, IPv4, IPv6 and TCP to find the leg a frame
//! belongs to (by our local address), and the flat table that maps local (ip, port) to a leg.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the worker needs to know about a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// A TCP segment to `dst`; `syn_only` is a connection request (SYN without ACK),
    /// `payload` whether it carries data, `ip_len` the IP packet's length.
    Tcp {
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        syn_only: bool,
        payload: bool,
        ip_len: u16,
    },
    Udp {
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        ip_len: u16,
    },
    /// ICMPv6 Packet Too Big or ICMP Fragmentation Needed quoting a TCP segment we sent from
    /// `local` to `remote`: the path to `remote` takes at most `mtu` octets.
    TooBig {
        local: (IpAddr, u16),
        remote: (IpAddr, u16),
        mtu: u32,
    },
    /// ARP: handled by the interface, and may unblock legs waiting for a neighbour.
    Arp,
    /// IPv6 neighbour discovery: handled by the interface, and may unblock legs like ARP.
    Neighbour,
    /// An IPv4 fragment or an IPv6 packet with a fragment header: later fragments carry no
    /// ports, so fragments are dropped before the demux rather than reassembled into the
    /// wrong place.
    Fragment,
    /// TCP or UDP behind IPv6 extension headers (hop-by-hop, routing, destination options):
    /// media peers do not send them, and a routing header would make another host the
    /// packet's real destination, so they are dropped and counted.
    Extension,
    /// Anything else the interface may answer (ICMP echo, ICMPv6) or drop.
    Other,
    /// Too short or inconsistent to classify.
    Malformed,
}

const IPV6_HDR: usize = 40;

/// Classifies an Ethernet frame without copying or validating checksums (smoltcp does that).
pub fn classify(frame: &[u8]) -> FrameClass {
    classify_at(frame, 12)
}

/// Classifies a frame whose EtherType is at `ethertype` (12, or 16 behind a VLAN tag).
#[inline(always)]
pub fn classify_at(frame: &[u8], ethertype: usize) -> FrameClass {
    if frame.len() < ethertype + 2 {
        return FrameClass::Malformed;
    }
    let l3 = &frame[ethertype + 2..];
    match u16::from_be_bytes([frame[ethertype], frame[ethertype + 1]]) {
        0x0806 => FrameClass::Arp,
        0x0800 => classify_ipv4(l3),
        0x86dd => classify_ipv6(l3),
        _ => FrameClass::Other,
    }
}

#[inline]
fn classify_ipv4(ip: &[u8]) -> FrameClass {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return FrameClass::Malformed;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ihl < 20 || total < ihl || ip.len() < total {
        return FrameClass::Malformed;
    }
    let flags_frag = u16::from_be_bytes([ip[6], ip[7]]);
    if flags_frag & 0x3fff != 0 {
        // More-fragments set or a non-zero offset.
        return FrameClass::Fragment;
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let l4 = &ip[ihl..total];
    // Destination unreachable, fragmentation needed (type 3, code 4, RFC 1191).
    if ip[9] == 1 && l4.len() >= 8 && l4[0] == 3 && l4[1] == 4 {
        return too_big_v4(l4);
    }
    transport(ip[9], src, dst, l4, total)
}

/// The TCP segment an ICMP error quotes: its IP header (`quoted`, from its first octet) and at
/// least the ports of its TCP header; None for anything else.
#[inline]
fn quoted_tcp(quoted: &[u8]) -> Option<((IpAddr, u16), (IpAddr, u16))> {
    let (src, dst, l4) = match quoted.first()? >> 4 {
        4 => {
            let ihl = ((quoted[0] & 0x0f) as usize) * 4;
            if ihl < 20 || quoted.len() < ihl + 4 || quoted[9] != 6 {
                return None;
            }
            let a = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    quoted[o],
                    quoted[o + 1],
                    quoted[o + 2],
                    quoted[o + 3],
                ))
            };
            (a(12), a(16), &quoted[ihl..])
        }
        6 => {
            if quoted.len() < IPV6_HDR + 4 || quoted[6] != 6 {
                return None;
            }
            (
                IpAddr::V6(Ipv6Addr::from(octets16(&quoted[8..24]))),
                IpAddr::V6(Ipv6Addr::from(octets16(&quoted[24..40]))),
                &quoted[IPV6_HDR..],
            )
        }
        _ => return None,
    };
    let port = |o: usize| u16::from_be_bytes([l4[o], l4[o + 1]]);
    Some(((src, port(0)), (dst, port(2))))
}

#[cold]
fn too_big_v6(icmp: &[u8]) -> FrameClass {
    let mtu = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
    match quoted_tcp(&icmp[8..]) {
        Some((local, remote)) if local.0.is_ipv6() => FrameClass::TooBig { local, remote, mtu },
        _ => FrameClass::Other,
    }
}

#[cold]
fn too_big_v4(icmp: &[u8]) -> FrameClass {
    let mtu = u16::from_be_bytes([icmp[6], icmp[7]]) as u32;
    match quoted_tcp(&icmp[8..]) {
        Some((local, remote)) if local.0.is_ipv4() => FrameClass::TooBig { local, remote, mtu },
        _ => FrameClass::Other,
    }
}

#[inline]
fn classify_ipv6(ip: &[u8]) -> FrameClass {
    if ip.len() < IPV6_HDR || ip[0] >> 4 != 6 {
        return FrameClass::Malformed;
    }
    let total = IPV6_HDR + u16::from_be_bytes([ip[4], ip[5]]) as usize;
    if ip.len() < total || total > u16::MAX as usize {
        return FrameClass::Malformed;
    }
    let mut next = ip[6];
    let mut at = IPV6_HDR;
    let mut extended = false;
    // The extension headers are walked only to find a fragment header or the transport.
    loop {
        match next {
            // Hop-by-hop, routing, destination options: next header, then length in 8
            // octets beyond the first 8.
            0 | 43 | 60 => {
                if total < at + 8 {
                    return FrameClass::Malformed;
                }
                next = ip[at];
                at += (ip[at + 1] as usize + 1) * 8;
                if at > total {
                    return FrameClass::Malformed;
                }
                extended = true;
            }
            44 => return FrameClass::Fragment,
            _ => break,
        }
    }
    let src = IpAddr::V6(Ipv6Addr::from(octets16(&ip[8..24])));
    let dst = IpAddr::V6(Ipv6Addr::from(octets16(&ip[24..40])));
    match next {
        6 | 17 if extended => FrameClass::Extension,
        // Router and neighbour solicitations and advertisements, redirects.
        58 if !extended && total > at && (133..=137).contains(&ip[at]) => FrameClass::Neighbour,
        // Packet Too Big: type 2, code 0, the MTU, then as much of our packet as fits.
        58 if !extended && total >= at + 8 && ip[at] == 2 => too_big_v6(&ip[at..total]),
        _ => transport(next, src, dst, &ip[at..total], total),
    }
}

#[inline]
fn octets16(b: &[u8]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o.copy_from_slice(b);
    o
}

#[inline]
fn transport(proto: u8, src_ip: IpAddr, dst_ip: IpAddr, l4: &[u8], total: usize) -> FrameClass {
    match proto {
        6 if l4.len() >= 20 => {
            let flags = l4[13];
            FrameClass::Tcp {
                src: (src_ip, u16::from_be_bytes([l4[0], l4[1]])),
                dst: (dst_ip, u16::from_be_bytes([l4[2], l4[3]])),
                syn_only: flags & 0x12 == 0x02,
                payload: l4.len() > ((l4[12] >> 4) as usize) * 4,
                ip_len: total as u16,
            }
        }
        17 if l4.len() >= 8 => FrameClass::Udp {
            src: (src_ip, u16::from_be_bytes([l4[0], l4[1]])),
            dst: (dst_ip, u16::from_be_bytes([l4[2], l4[3]])),
            ip_len: total as u16,
        },
        6 | 17 => FrameClass::Malformed,
        _ => FrameClass::Other,
    }
}

/// Local (ip, port) -> leg index, as one 64 Ki-entry array per local IP: a lookup is a short
/// scan of the (few) local addresses and one indexed load.
pub struct PortTable {
    ips: Vec<(IpAddr, Box<[u32]>)>,
}

const FREE: u32 = u32::MAX;

impl PortTable {
    pub fn new() -> Self {
        PortTable { ips: Vec::new() }
    }

    /// Adds a local address the worker answers for.
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.iter().any(|(a, _)| *a == ip) {
            self.ips.push((ip, vec![FREE; 65536].into_boxed_slice()));
        }
    }

    pub fn serves(&self, ip: IpAddr) -> bool {
        self.ips.iter().any(|(a, _)| *a == ip)
    }

    /// The index of local address `ip` (what a leg keeps instead of the address).
    pub fn index_of(&self, ip: IpAddr) -> Option<u8> {
        self.ips
            .iter()
            .position(|(a, _)| *a == ip)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The local address at `index`.
    pub fn ip(&self, index: u8) -> IpAddr {
        self.ips[index as usize].0
    }

    /// Where (ip, port)'s entry is, for [`Self::at`]: the address's index and the port.
    /// The entry's line is asked for, so a burst's lookups can overlap their misses.
    #[inline]
    pub fn slot(&self, ip: IpAddr, port: u16) -> Option<(u8, u16)> {
        let i = self.ips.iter().position(|(a, _)| *a == ip)?;
        prefetch::value(&self.ips[i].1[port as usize]);
        Some((u8::try_from(i).ok()?, port))
    }

    /// The leg bound at a slot found by [`Self::slot`].
    #[inline]
    pub fn at(&self, (ip, port): (u8, u16)) -> Option<u32> {
        let v = self.ips[ip as usize].1[port as usize];
        (v != FREE).then_some(v)
    }

    #[inline]
    pub fn get(&self, ip: IpAddr, port: u16) -> Option<u32> {
        for (a, ports) in &self.ips {
            if *a == ip {
                let v = ports[port as usize];
                return (v != FREE).then_some(v);
            }
        }
        None
    }

    /// Binds a free (ip, port); false if the address is not local or the port is taken.
    pub fn bind(&mut self, ip: IpAddr, port: u16, leg: u32) -> bool {
        for (a, ports) in &mut self.ips {
            if *a == ip {
                if ports[port as usize] != FREE {
                    return false;
                }
                ports[port as usize] = leg;
                return true;
            }
        }
        false
    }

    pub fn unbind(&mut self, ip: IpAddr, port: u16) {
        for (a, ports) in &mut self.ips {
            if *a == ip {
                ports[port as usize] = FREE;
            }
        }
    }
}

impl Default for PortTable {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(flags: u8, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&[203, 0, 113, 7]);
        f[30..34].copy_from_slice(&[192, 0, 2, 10]);
        f[34..36].copy_from_slice(&5000u16.to_be_bytes());
        f[36..38].copy_from_slice(&41000u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        f
    }

    #[test]
    fn classifies_tcp_syn_fragments_and_garbage() {
        let c = classify(&tcp_frame(0x02, 0x4000));
        assert_eq!(
            c,
            FrameClass::Tcp {
                src: (Ipv4Addr::new(203, 0, 113, 7).into(), 5000),
                dst: (Ipv4Addr::new(192, 0, 2, 10).into(), 41000),
                syn_only: true,
                payload: false,
                ip_len: 40,
            }
        );
        let mut data = tcp_frame(0x18, 0);
        data.extend_from_slice(b"0123456789");
        data[16..18].copy_from_slice(&50u16.to_be_bytes());
        assert!(matches!(
            classify(&data),
            FrameClass::Tcp {
                payload: true,
                ip_len: 50,
                ..
            }
        ));
        assert!(matches!(
            classify(&tcp_frame(0x12, 0)),
            FrameClass::Tcp {
                syn_only: false,
                ..
            }
        ));
        assert_eq!(classify(&tcp_frame(0x10, 0x2000)), FrameClass::Fragment);
        assert_eq!(classify(&tcp_frame(0x10, 0x0010)), FrameClass::Fragment);
        let mut short = tcp_frame(0x10, 0);
        short.truncate(40);
        assert_eq!(classify(&short), FrameClass::Malformed);
        assert_eq!(classify(&[0u8; 5]), FrameClass::Malformed);
    }

    /// An Ethernet/IPv6 frame with `next` headers (extension headers of 8 octets each, the
    /// last one's next header 6) and a 20-octet TCP header with `payload` octets after it.
    fn tcp6_frame(exts: &[u8], payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        let len = exts.len() * 8 + 20 + payload;
        f[18..20].copy_from_slice(&(len as u16).to_be_bytes());
        f[20] = exts.first().copied().unwrap_or(6);
        f[22..38].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        f[38..54].copy_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().unwrap().octets());
        for i in 0..exts.len() {
            f.extend_from_slice(&[exts.get(i + 1).copied().unwrap_or(6), 0, 0, 0, 0, 0, 0, 0]);
        }
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&41000u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        f.extend_from_slice(&tcp);
        f.extend(std::iter::repeat_n(0xab, payload));
        f
    }

    #[test]
    fn classifies_ipv6_tcp_extension_headers_fragments_and_neighbour_discovery() {
        let src: IpAddr = "2001:db8::7".parse().unwrap();
        let dst: IpAddr = "2001:db8::10".parse().unwrap();
        assert_eq!(
            classify(&tcp6_frame(&[], 0)),
            FrameClass::Tcp {
                src: (src, 5000),
                dst: (dst, 41000),
                syn_only: true,
                payload: false,
                ip_len: 60,
            }
        );
        assert!(matches!(
            classify(&tcp6_frame(&[], 10)),
            FrameClass::Tcp {
                payload: true,
                ip_len: 70,
                ..
            }
        ));
        assert_eq!(classify(&tcp6_frame(&[60], 0)), FrameClass::Extension);
        assert_eq!(
            classify(&tcp6_frame(&[0, 43, 60], 0)),
            FrameClass::Extension
        );
        assert_eq!(classify(&tcp6_frame(&[44], 0)), FrameClass::Fragment);
        assert_eq!(classify(&tcp6_frame(&[0, 44], 0)), FrameClass::Fragment);
        // A payload length beyond the frame, a truncated extension header, another version.
        let mut long = tcp6_frame(&[], 0);
        long[18..20].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(classify(&long), FrameClass::Malformed);
        let mut cut = tcp6_frame(&[60], 0);
        cut[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(classify(&cut), FrameClass::Malformed);
        let mut v5 = tcp6_frame(&[], 0);
        v5[14] = 0x50;
        assert_eq!(classify(&v5), FrameClass::Malformed);
        // ICMPv6: neighbour discovery (type 135) apart from the rest (echo request, 128).
        let mut icmp = tcp6_frame(&[], 0);
        icmp[20] = 58;
        icmp[54] = 135;
        assert_eq!(classify(&icmp), FrameClass::Neighbour);
        icmp[54] = 128;
        assert_eq!(classify(&icmp), FrameClass::Other);
    }

    #[test]
    fn port_table_binds_each_port_once() {
        let mut t = PortTable::new();
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        t.add_ip(ip.into());
        assert!(t.bind(ip.into(), 41000, 7));
        assert!(!t.bind(ip.into(), 41000, 8));
        assert!(!t.bind(Ipv4Addr::new(192, 0, 2, 11).into(), 41000, 8));
        assert_eq!(t.get(ip.into(), 41000), Some(7));
        t.unbind(ip.into(), 41000);
        assert_eq!(t.get(ip.into(), 41000), None);
    }
}
