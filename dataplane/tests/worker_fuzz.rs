//! The data-plane fuzzer: hostile frames (truncated and inconsistent headers, bad checksums,
//! fragments, odd and malformed TCP options, zero windows, random flags and sequence numbers,
//! overlapping payloads, garbage, IPv6 extension headers, 802.1Q tags of VLANs the port does
//! not carry, stacked and cut short) driven into a worker on MemLink
//! while two good pairs (one on IPv4, one on IPv6) move checked byte streams both ways and two
//! sacrificial pairs (likewise) take everything. No panic; the
//! good pairs never see a wrong byte or an end and keep moving; every leg and buffer is
//! returned at the end.
//!
//! `IMSAGW_FUZZ_PACKETS` sets the number of hostile frames (default 1 000 000; the issue's
//! 10 000 000 run: `IMSAGW_FUZZ_PACKETS=10000000 cargo test --release -p dataplane --test
//! worker_fuzz`).

mod common;

use common::*;
use dataplane::contract::*;
use port::Port;
use smoltcp::time::Duration;
use testbed::hostile::{Aim, Flow, HostileFrames};
use testbed::memlink::Faults;
use testbed::rng::SplitMix64;
use testbed::{PatternChecker, PatternSender};

fn key(context: u32, termination: u32) -> TerminationKey {
    TerminationKey {
        context,
        termination,
    }
}

#[test]
fn hostile_frames_hurt_no_good_pair() {
    let packets: u64 = std::env::var("IMSAGW_FUZZ_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut b = bed_dual(Faults::default(), 77, Default::default());
    // The second pair of each kind is on IPv6.
    let family = [V4_V4, V6_V6];
    let good = [
        (key(1, 1), key(1, 2), 2855u16),
        (key(2, 3), key(2, 4), 2856),
    ];
    let victims = [
        (key(3, 5), key(3, 6), 2857u16),
        (key(4, 7), key(4, 8), 2858),
    ];
    let mut streams = Vec::new();
    for (i, &(a, c, port)) in good.iter().enumerate() {
        let (x, y) = b.pair_at(family[i], a, c, port, 64 * 1024, Framing::Agnostic);
        let s = 10 * i as u64;
        streams.push((
            x,
            y,
            PatternSender::new(s + 1, u64::MAX / 4),
            PatternSender::new(s + 2, u64::MAX / 4),
            PatternChecker::new(s + 2),
            PatternChecker::new(s + 1),
        ));
    }
    let mut victim_socks = Vec::new();
    for (i, &(a, c, port)) in victims.iter().enumerate() {
        victim_socks.push(b.pair_at(family[i], a, c, port, 16 * 1024, Framing::Agnostic));
    }
    let flows = |i: usize, port: u16| {
        let at = family[i];
        [
            Flow {
                src: (at.ue_x, port),
                dst: (at.access, port),
            },
            Flow {
                src: (at.ue_y, port),
                dst: (at.core, port),
            },
        ]
    };
    let mut hostile = HostileFrames::new(99, b.host.device.port().mac(), b.worker.port().mac());
    let mut rng = SplitMix64::new(5);
    let mut injected = 0u64;
    let mut frames = Vec::with_capacity(64);
    let before = b.worker.counters();
    let mut rounds = 0u64;
    while injected < packets {
        frames.clear();
        for _ in 0..32 {
            let r = rng.below(8);
            let f = match r {
                // Good flows: only what must be dropped before it touches them.
                0 | 1 => {
                    let i = rng.below(2) as usize;
                    let fl = flows(i, good[i].2)[rng.below(2) as usize];
                    hostile.frame(Some(fl), fl.dst.0, Aim::Droppable)
                }
                // Sacrificial flows: anything.
                2 | 3 => {
                    let i = rng.below(2) as usize;
                    let fl = flows(i, victims[i].2)[rng.below(2) as usize];
                    hostile.frame(Some(fl), fl.dst.0, Aim::Anything)
                }
                // Random flows at the AGW's addresses (open and unused ports).
                _ => {
                    let ip: std::net::IpAddr = match rng.below(4) {
                        0 => AGW_ACCESS.into(),
                        1 => AGW_CORE.into(),
                        2 => AGW_ACCESS6.into(),
                        _ => AGW_CORE6.into(),
                    };
                    hostile.frame(None, ip, Aim::Anything)
                }
            };
            frames.push(f);
        }
        injected += inject(&mut b, &frames) as u64;
        for (x, y, sx, sy, rx, ry) in streams.iter_mut() {
            let s = b.ue(*x);
            sx.pump(s);
            rx.pump(s);
            let s = b.ue(*y);
            sy.pump(s);
            ry.pump(s);
        }
        if !b.step() {
            b.idle();
        }
        rounds += 1;
        if rounds.is_multiple_of(64) {
            b.idle();
        }
    }
    let after = b.worker.counters();
    eprintln!(
        "{injected} hostile frames; worker: malformed {} fragments {} IPv6 extensions {} VLAN tags {} no leg {} gate {}; good streams {:?}",
        after.malformed_dropped - before.malformed_dropped,
        after.fragments_dropped - before.fragments_dropped,
        after.extension_dropped - before.extension_dropped,
        after.vlan_dropped - before.vlan_dropped,
        after.tcp_no_leg - before.tcp_no_leg,
        after.gate_rejected - before.gate_rejected,
        streams.iter().map(|s| (s.4.received, s.5.received)).collect::<Vec<_>>()
    );
    // The good pairs: every byte right, still up, and still moving after the storm.
    let moved: Vec<u64> = streams
        .iter()
        .map(|s| s.4.received + s.5.received)
        .collect();
    b.run(Duration::from_secs(30), |b| {
        let mut busy = 0;
        for (x, y, sx, sy, rx, ry) in streams.iter_mut() {
            let s = b.ue(*x);
            busy += sx.pump(s) + rx.pump(s);
            let s = b.ue(*y);
            busy += sy.pump(s) + ry.pump(s);
        }
        let grown = streams
            .iter()
            .zip(&moved)
            .all(|(s, m)| s.4.received + s.5.received > m + 1_000_000);
        if grown {
            Progress::Done
        } else if busy > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    for s in &streams {
        assert_eq!(s.4.first_mismatch, None);
        assert_eq!(s.5.first_mismatch, None);
        assert!(s.4.received > 1_000_000 && s.5.received > 1_000_000);
    }
    for &(a, c, _) in &good {
        assert!(
            !b.has(|e| matches!(e, Event::Closed { key, .. } if *key == a || *key == c)),
            "a good leg ended: {:?}",
            b.events
                .iter()
                .filter(|e| matches!(e, Event::Closed { .. }))
                .collect::<Vec<_>>()
        );
    }
    assert!(after.malformed_dropped > before.malformed_dropped);
    assert!(after.extension_dropped > before.extension_dropped);
    assert!(after.vlan_dropped > before.vlan_dropped);
    assert!(after.tcp_no_leg > before.tcp_no_leg);
    // Release everything: every leg is freed and every buffer is back.
    for &(a, c, _) in good.iter().chain(&victims) {
        b.send(Command::Release { key: a });
        b.send(Command::Release { key: c });
    }
    b.wait_for(Duration::from_secs(60), |b| b.worker.legs() == 0);
    for (x, y) in streams
        .iter()
        .map(|s| (s.0, s.1))
        .chain(victim_socks.iter().copied())
    {
        b.ue(x).abort();
        b.ue(y).abort();
    }
    b.run_for(Duration::from_secs(1));
    b.wait_for(Duration::from_secs(10), |b| b.pool.in_use() == 0);
}
