//! Hostile frames for the data-plane fuzzer: Ethernet/IPv4/TCP and Ethernet/IPv6/TCP built to
//! the edge of valid and beyond (truncated headers, wrong lengths and checksums, fragments,
//! IPv6 extension headers, odd and malformed TCP options, zero windows, random flags,
//! sequence numbers and overlapping payloads), aimed at given flows or anywhere, reproducible
//! from a seed. A flow's family (its destination's) decides the IP version.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rng::SplitMix64;

/// A TCP flow as the frames name it: from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
}

/// What a generated frame may do to the flow it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// Anything at all: valid checksums, any flags, any sequence numbers (the flow may be
    /// reset or fed junk, as TCP allows to whoever knows its four-tuple and guesses well).
    Anything,
    /// Only frames a correct stack must drop before they touch the connection: bad IPv4 or
    /// TCP checksums, truncated or inconsistent headers, fragments, a wrong IP version.
    Droppable,
}

pub struct HostileFrames {
    rng: SplitMix64,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        let mut i = 0;
        while i + 1 < c.len() {
            sum += u16::from_be_bytes([c[i], c[i + 1]]) as u32;
            i += 2;
        }
        if i < c.len() {
            sum += (c[i] as u32) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl HostileFrames {
    pub fn new(seed: u64, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Self {
        HostileFrames {
            rng: SplitMix64::new(seed),
            src_mac,
            dst_mac,
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.below(from.len() as u64) as usize]
    }

    /// TCP options: valid ones, zero-length and overlong ones, junk.
    fn options(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        for _ in 0..self.rng.below(6) {
            match self.rng.below(8) {
                0 => o.extend_from_slice(&[2, 4, 0x05, 0xb4]),
                1 => o.extend_from_slice(&[3, 3, self.rng.below(20) as u8]),
                2 => o.extend_from_slice(&[4, 2]),
                3 => {
                    o.extend_from_slice(&[8, 10]);
                    o.extend_from_slice(&self.rng.next_u64().to_be_bytes()[..8]);
                }
                4 => o.extend_from_slice(&[5, 2 + 8 * self.rng.below(5) as u8]),
                5 => o.extend_from_slice(&[self.rng.below(256) as u8, 0]),
                6 => o.extend_from_slice(&[self.rng.below(256) as u8, 40]),
                _ => o.push(1),
            }
        }
        o.truncate(40);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    /// A random unicast source of `dst`'s family.
    fn source_like(&mut self, dst: IpAddr) -> IpAddr {
        match dst {
            IpAddr::V4(_) => Ipv4Addr::from(self.rng.next_u64() as u32 | 0x0100_0000).into(),
            IpAddr::V6(_) => {
                let hi = (self.rng.next_u64() as u128) << 64 | self.rng.next_u64() as u128;
                // 2000::/3, global unicast.
                Ipv6Addr::from((hi >> 3) | 0x2000 << 112).into()
            }
        }
    }

    /// A well-formed SYN (a connection request) for `flow`, or from a random source and port
    /// to a random port of `dst_ip`.
    pub fn syn(&mut self, flow: Option<Flow>, dst_ip: impl Into<IpAddr>) -> Vec<u8> {
        let dst_ip = dst_ip.into();
        let flow = match flow {
            Some(f) => f,
            None => Flow {
                src: (
                    self.source_like(dst_ip),
                    1024 + (self.rng.next_u64() % 60000) as u16,
                ),
                dst: (dst_ip, self.rng.next_u64() as u16),
            },
        };
        let mut tcp = vec![0u8; 24];
        tcp[0..2].copy_from_slice(&flow.src.1.to_be_bytes());
        tcp[2..4].copy_from_slice(&flow.dst.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&(self.rng.next_u64() as u32).to_be_bytes());
        tcp[12] = 6 << 4;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        tcp[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        self.finish(flow, tcp, 0)
    }

    /// Ethernet and IPv4 or IPv6 (the flow's family) around a TCP segment, checksums right.
    fn finish(&mut self, flow: Flow, tcp: Vec<u8>, ip_id: u16) -> Vec<u8> {
        match (flow.src.0, flow.dst.0) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => self.finish6(src, dst, tcp),
            (IpAddr::V4(src), IpAddr::V4(dst)) => self.finish4(src, dst, tcp, ip_id),
            _ => panic!("a flow's ends are of one family: {flow:?}"),
        }
    }

    fn finish6(&mut self, src: Ipv6Addr, dst: Ipv6Addr, mut tcp: Vec<u8>) -> Vec<u8> {
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
        ip[6] = 6;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.octets());
        ip[24..40].copy_from_slice(&dst.octets());
        let pseudo = [
            &ip[8..40],
            &(tcp.len() as u32).to_be_bytes()[..],
            &[0u8, 0, 0, 6][..],
        ]
        .concat();
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut frame = Vec::with_capacity(54 + tcp.len());
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        frame.extend_from_slice(&[0x86, 0xdd]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame
    }

    fn finish4(&mut self, src: Ipv4Addr, dst: Ipv4Addr, mut tcp: Vec<u8>, ip_id: u16) -> Vec<u8> {
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let pseudo = [
            &ip[12..20],
            &[0u8, 6][..],
            &(tcp.len() as u16).to_be_bytes()[..],
        ]
        .concat();
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frame = Vec::with_capacity(34 + tcp.len());
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame
    }

    /// One frame for `flow` (or for a random flow to `dst_ip` when `flow` is None).
    pub fn frame(&mut self, flow: Option<Flow>, dst_ip: impl Into<IpAddr>, aim: Aim) -> Vec<u8> {
        let dst_ip = dst_ip.into();
        let flow = match flow {
            Some(f) => f,
            None => Flow {
                src: (self.source_like(dst_ip), self.rng.next_u64() as u16),
                dst: (dst_ip, self.rng.next_u64() as u16),
            },
        };
        // Not even IPv4 now and then.
        if aim == Aim::Anything && self.rng.chance(0.02) {
            let mut f = vec![0u8; self.rng.below(100) as usize];
            self.rng.fill(&mut f);
            return f;
        }
        // Now and then a good frame behind 802.1Q tags: one of a VLAN the port may not
        // carry, stacked ones (QinQ), a service tag, VLAN 4095, or a tag cut short.
        if aim == Aim::Anything && self.rng.chance(0.03) {
            let mut f = self.frame(Some(flow), dst_ip, Aim::Anything);
            if f.len() >= 14 {
                let tags = 1 + self.rng.below(2) as usize;
                for _ in 0..tags {
                    let tpid: [u8; 2] = if self.rng.chance(0.2) {
                        [0x88, 0xa8]
                    } else {
                        [0x81, 0x00]
                    };
                    let tci = self.pick(&[1u16, 10, 20, 4094, 4095, 0]) | 0x2000;
                    let t = tci.to_be_bytes();
                    f.splice(12..12, [tpid[0], tpid[1], t[0], t[1]]);
                }
                if self.rng.chance(0.1) {
                    f.truncate(12 + 4 * tags);
                }
            }
            return f;
        }
        let options = if self.rng.chance(0.5) {
            self.options()
        } else {
            Vec::new()
        };
        let mut payload = vec![0u8; self.pick(&[0usize, 0, 1, 7, 100, 536, 1400])];
        self.rng.fill(&mut payload);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&flow.src.1.to_be_bytes());
        tcp[2..4].copy_from_slice(&flow.dst.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&(self.rng.next_u64() as u32).to_be_bytes());
        tcp[8..12].copy_from_slice(&(self.rng.next_u64() as u32).to_be_bytes());
        let offset_words = (5 + options.len() / 4) as u8;
        tcp[12] = offset_words << 4;
        // Flags: SYN, ACK, RST, FIN, PSH, URG in random mixes, some classic ones.
        tcp[13] = self.pick(&[
            0x02, 0x10, 0x04, 0x14, 0x11, 0x18, 0x12, 0x03, 0x29, 0x3f, 0x00, 0xff,
        ]);
        let window: u16 = if self.rng.chance(0.3) {
            0
        } else {
            self.rng.next_u64() as u16
        };
        tcp[14..16].copy_from_slice(&window.to_be_bytes());
        tcp[18..20].copy_from_slice(&(self.rng.next_u64() as u16).to_be_bytes());
        tcp.extend_from_slice(&options);
        tcp.extend_from_slice(&payload);
        let ip_id = self.rng.next_u64() as u16;
        let mut frame = self.finish(flow, tcp, ip_id);
        let breakage = match aim {
            Aim::Anything => self.rng.below(12),
            // Always one of the breakages a stack must drop.
            Aim::Droppable => 1 + self.rng.below(6),
        };
        if flow.dst.0.is_ipv6() {
            self.break6(&mut frame, breakage);
            return frame;
        }
        match breakage {
            1 => frame[14 + 10] ^= 0x5a,      // IPv4 checksum
            2 => frame[14 + 20 + 16] ^= 0xa5, // TCP checksum
            3 => {
                // Truncated inside the TCP header (lengths no longer add up).
                let cut = 14 + 20 + self.rng.below(20) as usize;
                frame.truncate(cut);
            }
            4 => {
                // IHL below 5 or beyond the frame; total length beyond the frame.
                frame[14] = 0x40 | self.rng.below(5) as u8;
            }
            5 => {
                let bad = (frame.len() as u16).wrapping_add(1 + self.rng.below(1000) as u16);
                frame[16..18].copy_from_slice(&bad.to_be_bytes());
            }
            6 => {
                // A fragment (more fragments, or an offset).
                frame[14 + 6] = 0x20;
                frame[14 + 7] = self.rng.below(255) as u8;
            }
            7 => {
                // Data offset pointing past the segment.
                frame[14 + 20 + 12] = 0xf0;
            }
            _ => {}
        }
        frame
    }

    /// The IPv6 frame's counterparts of [`HostileFrames::frame`]'s breakages (1 to 6 are
    /// ones a stack must drop); 8: a destination-options header before TCP.
    fn break6(&mut self, frame: &mut Vec<u8>, breakage: u64) {
        const IP: usize = 14;
        const TCP: usize = IP + 40;
        match breakage {
            // No header checksum in IPv6: a wrong version instead.
            1 => frame[IP] = 0x40 | (frame[IP] & 0x0f),
            2 => frame[TCP + 16] ^= 0xa5,
            3 => {
                let cut = TCP + self.rng.below(20) as usize;
                frame.truncate(cut);
            }
            4 => {
                // A payload length that leaves no room for the TCP header.
                let short = self.rng.below(20) as u16;
                frame[IP + 4..IP + 6].copy_from_slice(&short.to_be_bytes());
            }
            5 => {
                let bad =
                    ((frame.len() - TCP) as u16).wrapping_add(1 + self.rng.below(1000) as u16);
                frame[IP + 4..IP + 6].copy_from_slice(&bad.to_be_bytes());
            }
            6 | 8 => {
                // A fragment header (6), or destination options (8), before the segment.
                let (next, ext) = if breakage == 6 {
                    let id = self.rng.next_u64() as u32;
                    let off = (self.rng.below(200) as u16) << 3 | 1;
                    let mut h = vec![6, 0];
                    h.extend_from_slice(&off.to_be_bytes());
                    h.extend_from_slice(&id.to_be_bytes());
                    (44, h)
                } else {
                    (60, vec![6, 0, 1, 4, 0, 0, 0, 0])
                };
                frame[IP + 6] = next;
                let len = u16::from_be_bytes([frame[IP + 4], frame[IP + 5]]) + 8;
                frame[IP + 4..IP + 6].copy_from_slice(&len.to_be_bytes());
                frame.splice(TCP..TCP, ext);
            }
            7 => frame[TCP + 12] = 0xf0,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_frame_has_valid_checksums() {
        let mut h = HostileFrames::new(1, [2; 6], [4; 6]);
        let mut good = 0;
        for _ in 0..2000 {
            let f = h.frame(None, Ipv4Addr::new(198, 18, 1, 10), Aim::Anything);
            if f.len() < 54 || f[12..14] != [8, 0] {
                continue;
            }
            let ip = &f[14..34];
            if checksum(&[ip]) == 0 {
                good += 1;
            }
        }
        assert!(good > 1000, "{good}");
        // Droppable frames are never both well-formed and correctly summed.
        for _ in 0..2000 {
            let f = h.frame(None, Ipv4Addr::new(198, 18, 1, 10), Aim::Droppable);
            let intact = f.len() >= 54
                && f[14] == 0x45
                && checksum(&[&f[14..34]]) == 0
                && u16::from_be_bytes([f[16], f[17]]) as usize == f.len() - 14
                && f[20] == 0
                && f[21] == 0;
            if intact {
                let tcp = &f[34..];
                let pseudo = [
                    &f[26..34],
                    &[0u8, 6][..],
                    &(tcp.len() as u16).to_be_bytes()[..],
                ]
                .concat();
                assert_ne!(
                    checksum(&[&pseudo, tcp]),
                    0,
                    "a droppable frame with valid sums"
                );
            }
        }
    }

    /// The IPv6 checksum of the TCP segment of an intact IPv6 frame (0: valid).
    fn tcp6_sum(f: &[u8]) -> u16 {
        let tcp = &f[54..];
        let pseudo = [
            &f[22..54],
            &(tcp.len() as u32).to_be_bytes()[..],
            &[0u8, 0, 0, 6][..],
        ]
        .concat();
        checksum(&[&pseudo, tcp])
    }

    #[test]
    fn ipv6_frames_are_summed_right_and_droppable_ones_never_reach_a_leg_intact() {
        use dataplane::demux::{classify, FrameClass};
        let agw: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let mut h = HostileFrames::new(2, [2; 6], [4; 6]);
        let (mut good, mut ext) = (0, 0);
        for _ in 0..2000 {
            let f = h.frame(None, agw, Aim::Anything);
            match classify(&f) {
                FrameClass::Tcp { dst, .. } => {
                    assert_eq!(dst.0, IpAddr::V6(agw));
                    if tcp6_sum(&f) == 0 {
                        good += 1;
                    }
                }
                FrameClass::Extension => ext += 1,
                _ => {}
            }
        }
        // A third are left intact (breakages 0 and 9 to 11 of 12).
        assert!(good > 500 && ext > 50, "{good} {ext}");
        for _ in 0..2000 {
            let f = h.frame(None, agw, Aim::Droppable);
            if let FrameClass::Tcp { .. } = classify(&f) {
                assert_ne!(tcp6_sum(&f), 0, "a droppable IPv6 frame with a valid sum");
            }
        }
        // A SYN to the address is a connection request.
        assert!(matches!(
            classify(&h.syn(None, agw)),
            FrameClass::Tcp { syn_only: true, .. }
        ));
    }
}
