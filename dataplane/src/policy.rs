//! What a leg admits, polices and marks: the source filter (Iq `gm`), the policer at the
//! leg's point of entry (Iq `tman`, H.248.53) and the DiffServ code point of what it sends
//! (Iq `ds`). The control thread sends a [`LegPolicy`]; the worker keeps a [`Guard`] per leg
//! that has a filter or a policer, and checks each received frame against it in O(1) with
//! no allocation.
//!
//! Policing counts IP packet bytes (IP header and payload, no Ethernet header): H.248.53's
//! rates are of IP packets. Excess frames are dropped, never delayed (shaping is outside
//! H.248.53). A TCP segment without payload (a pure ACK, a SYN, a FIN or RST) is never
//! dropped by the policer, since dropping it would only stall the data the policer admitted;
//! its bytes are still taken from the buckets as far as they go.

use std::net::IpAddr;

/// Sources a leg takes frames from: an address or prefix, and a port or port range. `None`
/// admits any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceFilter {
    /// Address and prefix length (32 for IPv4, 128 for IPv6: one address).
    pub address: Option<(IpAddr, u8)>,
    /// First and last port, inclusive.
    pub ports: Option<(u16, u16)>,
}

impl SourceFilter {
    pub const ANY: SourceFilter = SourceFilter {
        address: None,
        ports: None,
    };

    pub fn is_any(&self) -> bool {
        self.address.is_none() && self.ports.is_none()
    }
}

/// A token bucket: `rate` bytes per second, holding at most `depth` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rate: u64,
    pub depth: u64,
}

/// Policing of what a leg's peer sends: the sustainable rate and burst (`tman/sdr`,
/// `tman/mbs`), and optionally the peak rate with its depth (`tman/pdr`, `tman/dvt`). A frame
/// passes only if both buckets hold its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Police {
    pub sustained: Bucket,
    pub peak: Option<Bucket>,
}

/// Everything the control thread sets on a leg besides its role and gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegPolicy {
    pub filter: SourceFilter,
    pub police: Option<Police>,
    /// DiffServ code point (0 to 63) of every IP packet the leg sends; 0 leaves the field 0.
    pub dscp: u8,
}

impl LegPolicy {
    /// Whether received frames need a [`Guard`].
    pub fn guards(&self) -> bool {
        !self.filter.is_any() || self.police.is_some()
    }
}

/// Tokens are kept in millionths of a byte, so that a refill is `rate * elapsed µs` with no
/// division.
const SCALE: u64 = 1_000_000;

/// One bucket's state: its rate (bytes/s) and depth (bytes), at most 2^32 - 1 each (H.248.53
/// rates are 32-bit), and its tokens (scaled).
#[derive(Debug, Clone, Copy, Default)]
struct BucketState {
    rate: u32,
    depth: u32,
    tokens: u64,
}

fn clamp32(v: u64) -> u32 {
    v.min(u32::MAX as u64) as u32
}

impl BucketState {
    fn new(b: Bucket) -> Self {
        let mut s = BucketState::default();
        s.update(b);
        s.tokens = s.depth();
        s
    }

    fn depth(&self) -> u64 {
        self.depth as u64 * SCALE
    }

    /// A new rate and depth; the tokens in hand stay (up to the new depth).
    fn update(&mut self, b: Bucket) {
        self.rate = clamp32(b.rate);
        self.depth = clamp32(b.depth);
        self.tokens = self.tokens.min(self.depth());
    }

    #[inline]
    fn refill(&mut self, elapsed_us: u64) {
        self.tokens = self
            .tokens
            .saturating_add((self.rate as u64).saturating_mul(elapsed_us))
            .min(self.depth());
    }
}

/// What a leg's guard says of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// From a source the filter does not admit.
    Filtered,
    /// Over the policed rate.
    Policed,
}

/// A leg's filter and policer as the worker runs them, kept within one cache line: it sits
/// in the leg record every frame to the leg reads.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Network as an IPv6 address (IPv4 as IPv4-mapped), high and low halves, and its prefix
    /// length over those 128 bits (0: any address). Two u64 rather than a u128 keep the
    /// record 8-aligned.
    net: [u64; 2],
    prefix: u8,
    /// Source ports admitted, inclusive (0-65535: any).
    ports: (u16, u16),
    /// Which buckets run.
    sustained_on: bool,
    peak_on: bool,
    /// When the buckets were last refilled, µs.
    last_us: i64,
    sustained: BucketState,
    peak: BucketState,
}

/// An address as 128 bits: IPv6 as it is, IPv4 as IPv4-mapped (::ffff:a.b.c.d), so one
/// prefix match serves both families and never matches across them.
#[inline]
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The top `prefix` bits of 128 (prefix at most 128).
#[inline]
fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - p.min(128) as u32),
    }
}

impl Guard {
    pub fn new(policy: &LegPolicy, now_us: i64) -> Guard {
        let mut g = Guard {
            net: [0; 2],
            prefix: 0,
            ports: (0, u16::MAX),
            sustained_on: false,
            peak_on: false,
            last_us: now_us,
            sustained: BucketState::default(),
            peak: BucketState::default(),
        };
        g.update(policy, now_us);
        g
    }

    /// Takes a new policy without losing the policer's state (a Modify mid-call).
    pub fn update(&mut self, policy: &LegPolicy, now_us: i64) {
        let (net, prefix) = match policy.filter.address {
            Some((a @ IpAddr::V4(_), p)) => (bits(a), 96 + p.min(32)),
            Some((a @ IpAddr::V6(_), p)) => (bits(a), p.min(128)),
            None => (0, 0),
        };
        let net = net & mask(prefix);
        self.net = [(net >> 64) as u64, net as u64];
        self.prefix = prefix;
        self.ports = policy.filter.ports.unwrap_or((0, u16::MAX));
        self.refill(now_us);
        let (sustained, peak) = match policy.police {
            Some(p) => (Some(p.sustained), p.peak),
            None => (None, None),
        };
        for (on, state, new) in [
            (&mut self.sustained_on, &mut self.sustained, sustained),
            (&mut self.peak_on, &mut self.peak, peak),
        ] {
            match (*on, new) {
                (_, None) => *on = false,
                (false, Some(b)) => {
                    *state = BucketState::new(b);
                    *on = true;
                }
                (true, Some(b)) => state.update(b),
            }
        }
    }

    #[inline]
    fn refill(&mut self, now_us: i64) {
        let elapsed = now_us.saturating_sub(self.last_us).max(0) as u64;
        self.last_us = self.last_us.max(now_us);
        if self.sustained_on {
            self.sustained.refill(elapsed);
        }
        if self.peak_on {
            self.peak.refill(elapsed);
        }
    }

    /// Whether the filter admits `src`.
    #[inline]
    pub fn admits(&self, src: (IpAddr, u16)) -> bool {
        let net = ((self.net[0] as u128) << 64) | self.net[1] as u128;
        (self.prefix == 0 || bits(src.0) & mask(self.prefix) == net)
            && (self.ports.0..=self.ports.1).contains(&src.1)
    }

    /// Filters, then polices, a frame of `ip_len` IP bytes from `src` at `now_us`. A frame
    /// that is not `droppable` (a TCP segment without payload) always passes the policer.
    #[inline]
    pub fn check(
        &mut self,
        src: (IpAddr, u16),
        ip_len: u16,
        droppable: bool,
        now_us: i64,
    ) -> Verdict {
        if !self.admits(src) {
            return Verdict::Filtered;
        }
        if !self.sustained_on {
            return Verdict::Pass;
        }
        self.refill(now_us);
        let cost = ip_len as u64 * SCALE;
        let fits = self.sustained.tokens >= cost && (!self.peak_on || self.peak.tokens >= cost);
        if !fits && droppable {
            return Verdict::Policed;
        }
        self.sustained.tokens = self.sustained.tokens.saturating_sub(cost);
        if self.peak_on {
            self.peak.tokens = self.peak.tokens.saturating_sub(cost);
        }
        Verdict::Pass
    }
}

/// Marks an Ethernet frame's IP packet with `dscp`, keeping the ECN bits: in IPv4's TOS
/// octet, fixing the header checksum incrementally (RFC 1624); in IPv6's traffic class
/// (bits 4-11 of the header, no checksum). Other frames are left alone.
#[inline]
pub fn mark_dscp(frame: &mut [u8], dscp: u8) {
    if frame.len() < 34 {
        return;
    }
    match (frame[12], frame[13], frame[14] >> 4) {
        (0x08, 0x00, 4) => {}
        (0x86, 0xdd, 6) if frame.len() >= 54 => {
            // Version (4 bits), traffic class (DSCP 6 bits, ECN 2 bits), flow label.
            let ip = &mut frame[14..];
            let ecn = (ip[1] >> 4) & 0x03;
            let class = (dscp << 2) | ecn;
            ip[0] = 0x60 | (class >> 4);
            ip[1] = (class << 4) | (ip[1] & 0x0f);
            return;
        }
        _ => return,
    }
    let ip = &mut frame[14..];
    let old = u16::from_be_bytes([ip[0], ip[1]]);
    ip[1] = (dscp << 2) | (ip[1] & 0x03);
    let new = u16::from_be_bytes([ip[0], ip[1]]);
    if old == new {
        return;
    }
    let check = u16::from_be_bytes([ip[10], ip[11]]);
    let mut sum = (!check) as u32 + (!old) as u32 + new as u32;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(a: &str, p: u16) -> (IpAddr, u16) {
        (a.parse().unwrap(), p)
    }

    #[test]
    fn a_guard_fits_a_cache_line() {
        assert!(std::mem::size_of::<Option<Guard>>() <= 64);
    }

    #[test]
    fn filters_by_prefix_and_port_range() {
        let g = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("198.18.100.0".parse().unwrap(), 24)),
                    ports: Some((5000, 5009)),
                },
                ..Default::default()
            },
            0,
        );
        assert!(g.admits(src("198.18.100.7", 5000)));
        assert!(g.admits(src("198.18.100.255", 5009)));
        assert!(!g.admits(src("198.18.101.7", 5000)));
        assert!(!g.admits(src("198.18.100.7", 5010)));
        assert!(!g.admits(src("198.18.100.7", 4999)));
        let one = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("198.18.100.7".parse().unwrap(), 32)),
                    ports: None,
                },
                ..Default::default()
            },
            0,
        );
        assert!(one.admits(src("198.18.100.7", 1)));
        assert!(!one.admits(src("198.18.100.8", 1)));
        let any = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("0.0.0.0".parse().unwrap(), 0)),
                    ports: None,
                },
                ..Default::default()
            },
            0,
        );
        assert!(any.admits(src("203.0.113.9", 9)));
    }

    fn policed(rate: u64, depth: u64, peak: Option<Bucket>) -> Guard {
        Guard::new(
            &LegPolicy {
                police: Some(Police {
                    sustained: Bucket { rate, depth },
                    peak,
                }),
                ..Default::default()
            },
            0,
        )
    }

    /// Offers `size`-byte frames every `gap_us` for `secs` seconds; returns the bytes passed.
    fn offer(g: &mut Guard, size: u16, gap_us: i64, secs: i64) -> u64 {
        let mut passed = 0;
        let mut t = 0;
        while t < secs * 1_000_000 {
            if g.check(src("198.18.100.7", 1), size, true, t) == Verdict::Pass {
                passed += size as u64;
            }
            t += gap_us;
        }
        passed
    }

    #[test]
    fn the_sustained_bucket_holds_a_sender_to_its_rate_plus_the_burst() {
        // 1000-byte frames at 4x the 12 500 B/s rate for 10 s: 125 000 B plus the 3000 B burst.
        let mut g = policed(12_500, 3_000, None);
        let passed = offer(&mut g, 1000, 20_000, 10);
        assert!((125_000..=128_000).contains(&passed), "{passed}");
        // Below the rate nothing is dropped.
        let mut g = policed(12_500, 3_000, None);
        assert_eq!(offer(&mut g, 1000, 100_000, 10), 100_000);
    }

    #[test]
    fn the_peak_bucket_limits_bursts_the_sustained_bucket_would_allow() {
        // A deep sustained bucket lets a 40 kB burst through; a peak bucket of 2000 B at
        // 20 kB/s does not.
        let mut burst = policed(10_000, 40_000, None);
        let mut t = 0;
        let mut passed = 0;
        for _ in 0..40 {
            if burst.check(src("198.18.100.7", 1), 1000, true, t) == Verdict::Pass {
                passed += 1;
            }
            t += 100;
        }
        assert_eq!(passed, 40);
        let mut peaked = policed(
            10_000,
            40_000,
            Some(Bucket {
                rate: 20_000,
                depth: 2_000,
            }),
        );
        let mut t = 0;
        let mut passed = 0;
        for _ in 0..40 {
            if peaked.check(src("198.18.100.7", 1), 1000, true, t) == Verdict::Pass {
                passed += 1;
            }
            t += 100;
        }
        assert_eq!(passed, 2);
    }

    #[test]
    fn segments_without_payload_pass_and_filtered_frames_are_not_charged() {
        let mut g = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("198.18.100.7".parse().unwrap(), 32)),
                    ports: None,
                },
                police: Some(Police {
                    sustained: Bucket {
                        rate: 1000,
                        depth: 1500,
                    },
                    peak: None,
                }),
                dscp: 0,
            },
            0,
        );
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1500, true, 0),
            Verdict::Pass
        );
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1500, true, 0),
            Verdict::Policed
        );
        assert_eq!(g.check(src("198.18.100.7", 1), 40, false, 0), Verdict::Pass);
        assert_eq!(
            g.check(src("198.18.100.8", 1), 40, false, 0),
            Verdict::Filtered
        );
        // A second later the bucket has 1000 bytes again (less nothing: the ACK found it
        // empty).
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1000, true, 1_000_000),
            Verdict::Pass
        );
    }

    #[test]
    fn an_update_keeps_the_tokens_in_hand() {
        let mut g = policed(1000, 10_000, None);
        for _ in 0..9 {
            assert_eq!(
                g.check(src("198.18.100.7", 1), 1000, true, 0),
                Verdict::Pass
            );
        }
        // 1000 bytes left; a faster rate does not refill the bucket at once.
        g.update(
            &LegPolicy {
                police: Some(Police {
                    sustained: Bucket {
                        rate: 1_000_000,
                        depth: 10_000,
                    },
                    peak: None,
                }),
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1000, true, 0),
            Verdict::Pass
        );
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1000, true, 0),
            Verdict::Policed
        );
        assert_eq!(
            g.check(src("198.18.100.7", 1), 1000, true, 1000),
            Verdict::Pass
        );
    }

    fn checksum(h: &[u8]) -> u16 {
        let mut s = 0u32;
        for c in h.chunks(2) {
            s += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn marking_rewrites_the_dscp_keeps_ecn_and_the_checksum_stays_valid() {
        let mut frame = vec![0u8; 54];
        frame[12] = 0x08;
        frame[14] = 0x45;
        frame[15] = 0x01; // ECN ECT(1)
        frame[16..18].copy_from_slice(&40u16.to_be_bytes());
        frame[22] = 64;
        frame[23] = 6;
        frame[26..30].copy_from_slice(&[198, 18, 1, 10]);
        frame[30..34].copy_from_slice(&[198, 18, 100, 7]);
        let c = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        for dscp in [46u8, 0, 63, 10] {
            mark_dscp(&mut frame, dscp);
            assert_eq!(frame[15] >> 2, dscp);
            assert_eq!(frame[15] & 3, 1);
            assert_eq!(checksum(&frame[14..34]), 0, "dscp {dscp}");
        }
        // ARP is left alone.
        let mut arp = frame.clone();
        arp[13] = 0x06;
        let before = arp.clone();
        mark_dscp(&mut arp, 46);
        assert_eq!(arp, before);
    }

    #[test]
    fn marking_an_ipv6_packet_sets_its_traffic_class_and_keeps_ecn_and_flow_label() {
        let mut frame = vec![0u8; 74];
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        // Version 6, traffic class 0x01 (ECT(1)), flow label 0xabcde.
        frame[14..18].copy_from_slice(&[0x60, 0x1a, 0xbc, 0xde]);
        let rest = frame[18..].to_vec();
        for dscp in [46u8, 0, 63, 10] {
            mark_dscp(&mut frame, dscp);
            let class = ((frame[14] & 0x0f) << 4) | (frame[15] >> 4);
            assert_eq!(frame[14] >> 4, 6);
            assert_eq!(class >> 2, dscp);
            assert_eq!(class & 3, 1, "ECN kept");
            assert_eq!(frame[15] & 0x0f, 0x0a, "flow label kept");
            assert_eq!(&frame[16..18], &[0xbc, 0xde]);
            assert_eq!(&frame[18..], &rest[..]);
        }
    }

    #[test]
    fn an_ipv6_filter_takes_its_prefix_and_never_an_ipv4_source() {
        let g = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("2001:db8:100::".parse().unwrap(), 48)),
                    ports: None,
                },
                ..Default::default()
            },
            0,
        );
        assert!(g.admits(src("2001:db8:100::7", 5000)));
        assert!(g.admits(src("2001:db8:100:ffff::1", 1)));
        assert!(!g.admits(src("2001:db8:101::7", 5000)));
        assert!(!g.admits(src("198.18.100.7", 5000)));
        // An IPv4 filter does not take IPv6 sources, not even IPv4-mapped ones' neighbours.
        let v4 = Guard::new(
            &LegPolicy {
                filter: SourceFilter {
                    address: Some(("0.0.0.0".parse().unwrap(), 0)),
                    ports: None,
                },
                ..Default::default()
            },
            0,
        );
        assert!(v4.admits(src("198.18.100.7", 1)));
        assert!(!v4.admits(src("2001:db8::1", 1)));
    }
}
