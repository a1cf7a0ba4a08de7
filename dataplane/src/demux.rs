//! Ingress classification: just enough of Ethernet, IPv4 and TCP to find the leg a frame
//! belongs to (by our local address), and the flat table that maps local (ip, port) to a leg.

use std::net::Ipv4Addr;

/// What the worker needs to know about a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// A TCP segment to `dst`; `syn_only` is a connection request (SYN without ACK),
    /// `payload` whether it carries data, `ip_len` the IP packet's length.
    Tcp {
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        syn_only: bool,
        payload: bool,
        ip_len: u16,
    },
    Udp {
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        ip_len: u16,
    },
    /// ARP: handled by the interface, and may unblock legs waiting for a neighbour.
    Arp,
    /// An IPv4 fragment: later fragments carry no ports, so fragments are dropped before the
    /// demux rather than reassembled into the wrong place.
    Fragment,
    /// Anything else the interface may answer (ICMP echo, IPv6 ND) or drop.
    Other,
    /// Too short or inconsistent to classify.
    Malformed,
}

const ETH_HDR: usize = 14;

/// Classifies an Ethernet frame without copying or validating checksums (smoltcp does that).
pub fn classify(frame: &[u8]) -> FrameClass {
    if frame.len() < ETH_HDR {
        return FrameClass::Malformed;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0806 => return FrameClass::Arp,
        0x0800 => {}
        _ => return FrameClass::Other,
    }
    let ip = &frame[ETH_HDR..];
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
    let proto = ip[9];
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = &ip[ihl..total];
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
    ips: Vec<(Ipv4Addr, Box<[u32]>)>,
}

const FREE: u32 = u32::MAX;

impl PortTable {
    pub fn new() -> Self {
        PortTable { ips: Vec::new() }
    }

    /// Adds a local address the worker answers for.
    pub fn add_ip(&mut self, ip: Ipv4Addr) {
        if !self.ips.iter().any(|(a, _)| *a == ip) {
            self.ips.push((ip, vec![FREE; 65536].into_boxed_slice()));
        }
    }

    pub fn serves(&self, ip: Ipv4Addr) -> bool {
        self.ips.iter().any(|(a, _)| *a == ip)
    }

    #[inline]
    pub fn get(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        for (a, ports) in &self.ips {
            if *a == ip {
                let v = ports[port as usize];
                return (v != FREE).then_some(v);
            }
        }
        None
    }

    /// Binds a free (ip, port); false if the address is not local or the port is taken.
    pub fn bind(&mut self, ip: Ipv4Addr, port: u16, leg: u32) -> bool {
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

    pub fn unbind(&mut self, ip: Ipv4Addr, port: u16) {
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
                src: (Ipv4Addr::new(203, 0, 113, 7), 5000),
                dst: (Ipv4Addr::new(192, 0, 2, 10), 41000),
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

    #[test]
    fn port_table_binds_each_port_once() {
        let mut t = PortTable::new();
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        t.add_ip(ip);
        assert!(t.bind(ip, 41000, 7));
        assert!(!t.bind(ip, 41000, 8));
        assert!(!t.bind(Ipv4Addr::new(192, 0, 2, 11), 41000, 8));
        assert_eq!(t.get(ip, 41000), Some(7));
        t.unbind(ip, 41000);
        assert_eq!(t.get(ip, 41000), None);
    }
}
