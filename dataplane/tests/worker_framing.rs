//! MSRP- and BFCP-aware pairs in the worker on MemLink with loss and reordering: streams come
//! out byte for byte with exact counts in audits and final statistics; a peer that breaks
//! framing or a limit resets only its own pair, with the Violation event, while a pair
//! beside it keeps moving data; agnostic pairs parse nothing.

mod common;

use common::*;
use dataplane::contract::*;
use dataplane::framing::bfcp::BfcpViolation;
use dataplane::framing::msrp::{MsrpCounters, MsrpViolation};
use dataplane::framing::FramingLimits;
use dataplane::worker::WorkerConfig;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use testbed::framing_sample::{bfcp_stream, msrp_stream, rfc_4975_examples, MsrpShape};
use testbed::memlink::Faults;
use testbed::rng::SplitMix64;

const T3: TerminationKey = TerminationKey {
    context: 2,
    termination: 3,
};
const T4: TerminationKey = TerminationKey {
    context: 2,
    termination: 4,
};

/// One UE's side of a stream: writes `out` in random-sized pieces, keeps what arrives.
struct Ue {
    h: SocketHandle,
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    rng: SplitMix64,
}

impl Ue {
    fn new(h: SocketHandle, out: Vec<u8>, seed: u64) -> Self {
        Ue {
            h,
            out,
            sent: 0,
            got: Vec::new(),
            rng: SplitMix64::new(seed),
        }
    }

    fn pump(&mut self, b: &mut Bed) -> usize {
        let s = b.ue(self.h);
        let mut moved = 0;
        while self.sent < self.out.len() && s.can_send() {
            let want = 1 + self.rng.below(4000) as usize;
            let end = (self.sent + want).min(self.out.len());
            let n = s.send_slice(&self.out[self.sent..end]).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.sent += n;
            moved += n;
        }
        while s.can_recv() {
            let n = s
                .recv(|d| {
                    self.got.extend_from_slice(d);
                    (d.len(), d.len())
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            moved += n;
        }
        moved
    }

    fn done_sending(&self) -> bool {
        self.sent == self.out.len()
    }
}

fn stats_of(b: &Bed, key: TerminationKey) -> LegStats {
    b.events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Stats { key: k, stats } | Event::Closed { key: k, stats, .. } if *k == key => {
                Some(*stats)
            }
            _ => None,
        })
        .expect("statistics")
}

fn msrp(stats: &LegStats) -> (MsrpCounters, MsrpCounters) {
    match stats.app {
        AppStats::Msrp { received, sent } => (received, sent),
        other => panic!("not MSRP statistics: {other:?}"),
    }
}

#[test]
fn msrp_aware_pair_relays_100k_messages_byte_exact_with_exact_counts() {
    // The virtual clock runs the stream far faster than any real UE: no rate limit here.
    let mut limits = FramingLimits::default();
    limits.msrp.messages_per_second = 0;
    let mut b = bed_with(
        lossy(),
        41,
        WorkerConfig {
            framing: limits,
            ..WorkerConfig::default()
        },
    );
    let (x, y) = b.pair_of(T1, T2, 2855, 256 * 1024, Framing::Msrp);
    let up = msrp_stream(
        7,
        MsrpShape {
            messages: 100_000,
            max_body: 300,
            max_chunks: 3,
            binary: true,
            decoys: true,
        },
    );
    // UE-Y starts with RFC 4975's examples.
    let mut down = rfc_4975_examples();
    let more = msrp_stream(
        8,
        MsrpShape {
            messages: 20_000,
            max_body: 2000,
            max_chunks: 5,
            binary: false,
            decoys: true,
        },
    );
    down.bytes.extend_from_slice(&more.bytes);
    down.counters
        .add_delta(&more.counters, &MsrpCounters::default());
    let mut ux = Ue::new(x, up.bytes.clone(), 1);
    let mut uy = Ue::new(y, down.bytes.clone(), 2);
    let (up_len, down_len) = (up.bytes.len(), down.bytes.len());
    b.run(Duration::from_secs(600), |b| {
        let moved = ux.pump(b) + uy.pump(b);
        if uy.got.len() == up_len && ux.got.len() == down_len {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert!(ux.done_sending() && uy.done_sending());
    assert!(uy.got == up.bytes, "UE-Y got other bytes than UE-X sent");
    assert!(ux.got == down.bytes, "UE-X got other bytes than UE-Y sent");
    // An audit sees the counts of both directions on both terminations.
    b.send(Command::Audit { key: T1 });
    b.send(Command::Audit { key: T2 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.events
            .iter()
            .filter(|e| matches!(e, Event::Stats { .. }))
            .count()
            == 2
    });
    assert_eq!(msrp(&stats_of(&b, T1)), (up.counters, down.counters));
    assert_eq!(msrp(&stats_of(&b, T2)), (down.counters, up.counters));
    assert!(up.counters.chunks > 150_000, "{:?}", up.counters);
    assert!(
        up_len > 50_000_000 && down_len > 20_000_000,
        "{up_len} {down_len}"
    );
    assert!(!b.has(|e| matches!(e, Event::Violation { .. })));
    // Released, the final statistics carry the same counts.
    b.send(Command::Release { key: T1 });
    b.send(Command::Release { key: T2 });
    b.wait_for(Duration::from_secs(5), |b| {
        b.events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count()
            == 2
    });
    assert_eq!(msrp(&stats_of(&b, T1)), (up.counters, down.counters));
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
}

#[test]
fn agnostic_pair_parses_nothing() {
    let mut b = bed(Faults::default(), 3);
    let (x, y) = b.pair_of(T1, T2, 2855, 256 * 1024, Framing::Agnostic);
    let junk: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut ux = Ue::new(x, junk.clone(), 1);
    let mut uy = Ue::new(y, Vec::new(), 2);
    b.run(Duration::from_secs(60), |b| {
        let moved = ux.pump(b) + uy.pump(b);
        if uy.got.len() == junk.len() {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert!(uy.got == junk);
    b.send(Command::Audit { key: T1 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.has(|e| matches!(e, Event::Stats { .. }))
    });
    assert_eq!(stats_of(&b, T1).app, AppStats::None);
    assert_eq!(b.worker.counters().msrp_violations, 0);
}

/// Two aware pairs; the peer of T1 sends `bad` after some good traffic. Only pair T1/T2 is
/// reset, with `expected`; T3/T4 keeps moving its stream to the end.
/// `prefix` is a complete valid stream the offender sends before `bad`.
fn only_the_offending_pair_ends(
    framing: Framing,
    prefix: Vec<u8>,
    good: Vec<u8>,
    bad: Vec<u8>,
    expected: Violation,
) {
    let mut b = bed(lossy(), 5);
    let (x1, y1) = b.pair_of(T1, T2, 2855, 256 * 1024, framing);
    let (x2, y2) = b.pair_of(T3, T4, 2856, 256 * 1024, framing);
    let mut offender = prefix.clone();
    offender.extend_from_slice(&bad);
    let mut bad_x = Ue::new(x1, offender, 1);
    let mut bad_y = Ue::new(y1, Vec::new(), 2);
    let mut good_x = Ue::new(x2, good.clone(), 3);
    let mut good_y = Ue::new(y2, Vec::new(), 4);
    b.run(Duration::from_secs(120), |b| {
        let moved = bad_x.pump(b) + bad_y.pump(b) + good_x.pump(b) + good_y.pump(b);
        let reset = b.has(|e| matches!(e, Event::Closed { key, .. } if *key == T2));
        if good_y.got.len() == good.len() && reset {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert!(good_y.got == good, "the good pair's bytes");
    assert!(b.has(|e| matches!(e, Event::Violation { key, violation } if *key == T1 && *violation == expected)), "{:?}", b.events);
    assert!(b.has(
        |e| matches!(e, Event::Closed { key, cause: ReleaseCause::Violation, .. } if *key == T1)
    ));
    assert!(b.has(
        |e| matches!(e, Event::Closed { key, cause: ReleaseCause::PartnerGone, .. } if *key == T2)
    ));
    assert!(!b.has(|e| matches!(e, Event::Closed { key, .. } if *key == T3 || *key == T4)));
    // What UE-Y got is a prefix of what UE-X sent.
    assert_eq!(&bad_y.got[..], &bad_x.out[..bad_y.got.len()]);
    // Both UEs of the broken pair see their connections end (a lost RST is sent again when
    // the UE sends anything more, so each sends a probe).
    for h in [x1, y1] {
        let _ = b.ue(h).send_slice(b"?");
    }
    b.run(Duration::from_secs(10), |b| {
        let (sx, sy) = (b.ue(x1).state(), b.ue(y1).state());
        if sx == tcp::State::Closed && sy == tcp::State::Closed {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    let counters = b.worker.counters();
    assert_eq!(counters.msrp_violations + counters.bfcp_violations, 1);
    // The good pair closes normally afterwards, and every leg is freed.
    b.send(Command::Release { key: T3 });
    b.send(Command::Release { key: T4 });
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
}

fn msrp_good(seed: u64) -> Vec<u8> {
    msrp_stream(
        seed,
        MsrpShape {
            messages: 300,
            max_body: 1500,
            max_chunks: 3,
            binary: true,
            decoys: true,
        },
    )
    .bytes
}

const PATHS: &str = "To-Path: msrp://a.example:1/s;tcp\r\nFrom-Path: msrp://b.example:2/t;tcp\r\n";

#[test]
fn msrp_bad_end_line_resets_only_its_pair() {
    let bad = format!("MSRP abcd SEND\r\n{PATHS}Message-ID: m1234\r\nContent-Type: a/b\r\n\r\nhi\r\n-------abcd$junk\r\n");
    only_the_offending_pair_ends(
        Framing::Msrp,
        msrp_good(12),
        msrp_good(11),
        bad.into_bytes(),
        Violation::Msrp(MsrpViolation::BadEndLine),
    );
}

#[test]
fn msrp_oversize_header_resets_only_its_pair() {
    let bad = format!("MSRP abcd SEND\r\n{PATHS}X-Big: {}\r\n", "b".repeat(8000));
    only_the_offending_pair_ends(
        Framing::Msrp,
        msrp_good(12),
        msrp_good(11),
        bad.into_bytes(),
        Violation::Msrp(MsrpViolation::HeaderTooLarge),
    );
}

#[test]
fn msrp_chunk_flood_resets_only_its_pair() {
    // Tiny chunks far faster than 2000 a second of the worker's clock.
    let flood: String = (0..5000)
        .map(|i| format!("MSRP f{i:07} SEND\r\n{PATHS}Message-ID: flood{i}\r\nContent-Type: a/b\r\n\r\nx\r\n-------f{i:07}$\r\n"))
        .collect();
    only_the_offending_pair_ends(
        Framing::Msrp,
        msrp_good(12),
        msrp_good(11),
        flood.into_bytes(),
        Violation::Msrp(MsrpViolation::RateExceeded),
    );
}

#[test]
fn bfcp_bad_version_resets_only_its_pair() {
    let (prefix, good) = (bfcp_stream(30, 100).bytes, bfcp_stream(3, 400).bytes);
    let bad = vec![0x40, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1];
    only_the_offending_pair_ends(
        Framing::Bfcp,
        prefix,
        good,
        bad,
        Violation::Bfcp(BfcpViolation::BadVersion),
    );
}

#[test]
fn bfcp_truncated_length_resets_only_its_pair() {
    let (prefix, good) = (bfcp_stream(40, 100).bytes, bfcp_stream(4, 400).bytes);
    // One word of payload, but the attribute in it claims 12 octets.
    let bad = vec![0x20, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 2 << 1 | 1, 12, 0, 1];
    only_the_offending_pair_ends(
        Framing::Bfcp,
        prefix,
        good,
        bad,
        Violation::Bfcp(BfcpViolation::TruncatedLength),
    );
}
