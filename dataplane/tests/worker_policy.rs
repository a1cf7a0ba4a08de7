//! A leg's source filter, policer and DSCP (Iq `gm`, `tman`, `ds`) in the worker, on MemLink
//! with the virtual clock: a filtered source's SYN gets no answer while the admitted UE
//! connects (and latches); every frame a marked leg sends carries its DSCP and the other
//! leg's none; UDPTL sent at 4x the policed rate is held to it; a policed TCP sender gets
//! every byte through at the rate; a Modify of the policy mid-transfer loses nothing.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use dataplane::contract::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint};
use testbed::memlink::Faults;
use testbed::{PatternChecker, PatternSender};

fn only(ip: Ipv4Addr) -> SourceFilter {
    SourceFilter {
        address: Some((ip.into(), 32)),
        ports: None,
    }
}

fn police(rate: u64, depth: u64) -> Option<Police> {
    Some(Police {
        sustained: Bucket { rate, depth },
        peak: None,
    })
}

/// (outbound, source IP, DSCP) of the IPv4 frames captured so far.
fn drain(b: &mut Bed, into: &mut Vec<(bool, Ipv4Addr, u8)>) {
    let r = b.control.capture.clone();
    while let Some(f) = r.full.pop() {
        let d = f.bytes();
        if d.len() >= 34 && d[12..14] == [0x08, 0x00] {
            into.push((
                f.outbound,
                Ipv4Addr::new(d[26], d[27], d[28], d[29]),
                d[15] >> 2,
            ));
        }
        let _ = r.free.push(f);
    }
}

#[test]
fn a_filtered_source_gets_no_answer_and_the_admitted_ue_latches_with_its_frames_marked() {
    let mut b = bed(Faults::default(), 0x5A);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 41000),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 42000),
    });
    // T1 latches (any source could connect) but its filter admits UE-X only, and marks EF.
    b.send(Command::SetPolicy {
        key: T1,
        policy: LegPolicy {
            filter: only(UE_X),
            police: None,
            dscp: 46,
        },
    });
    let y = b.ue_listen(UE_Y, 2855, 64 * 1024);
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 2855),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Join { a: T1, b: T2 });
    b.run_for(Duration::from_millis(5));
    capture(&mut b, 64);
    let mut frames = Vec::new();

    // Another host on the UE side: its SYNs (and retransmissions) are dropped unanswered.
    let intruder = b.ue_connect(sa(NAT, 6000), sa(AGW_ACCESS, 41000), 4096);
    b.run_for(Duration::from_secs(3));
    drain(&mut b, &mut frames);
    assert_eq!(b.ue(intruder).state(), tcp::State::SynSent);
    assert!(
        !frames
            .iter()
            .any(|(out, src, _)| *out && *src == AGW_ACCESS),
        "the filtered source got an answer: {frames:?}"
    );
    assert!(
        b.worker.counters().filter_dropped >= 2,
        "SYN and a retransmission"
    );
    assert!(!b.has(|e| matches!(e, Event::Latched { .. })));
    // Its RST is dropped as well.
    b.ue(intruder).abort();
    b.run_for(Duration::from_millis(10));
    let dropped = b.worker.counters().filter_dropped;

    // UE-X connects, is latched, and data moves both ways.
    let x = b.ue_connect(sa(UE_X, 5000), sa(AGW_ACCESS, 41000), 64 * 1024);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::CutThrough { .. }))
    });
    let bytes = 200_000;
    let (mut tx_x, mut tx_y) = (PatternSender::new(1, bytes), PatternSender::new(2, bytes));
    let (mut rx_x, mut rx_y) = (PatternChecker::new(2), PatternChecker::new(1));
    b.run(Duration::from_secs(60), |b| {
        let mut moved = 0;
        for (h, tx, rx) in [(x, &mut tx_x, &mut rx_x), (y, &mut tx_y, &mut rx_y)] {
            let s = b.ue(h);
            moved += tx.pump(s) + rx.pump(s);
        }
        drain(b, &mut frames);
        if rx_x.received == bytes && rx_y.received == bytes {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!((rx_x.first_mismatch, rx_y.first_mismatch), (None, None));
    drain(&mut b, &mut frames);
    // Every frame T1 sent is marked EF, every frame T2 sent is not.
    let from = |ip: Ipv4Addr| -> Vec<u8> {
        frames
            .iter()
            .filter(|(out, src, _)| *out && *src == ip)
            .map(|f| f.2)
            .collect()
    };
    let (t1, t2) = (from(AGW_ACCESS), from(AGW_CORE));
    assert!(t1.len() > 50 && t2.len() > 50, "{} {}", t1.len(), t2.len());
    assert!(t1.iter().all(|d| *d == 46), "{t1:?}");
    assert!(t2.iter().all(|d| *d == 0), "{t2:?}");
    // The UE's frames were admitted: nothing more was dropped.
    assert_eq!(b.worker.counters().filter_dropped, dropped);
    b.send(Command::Audit { key: T1 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.has(|e| matches!(e, Event::Stats { key, .. } if *key == T1))
    });
    let stats = b.events.iter().rev().find_map(|e| match e {
        Event::Stats { key, stats } if *key == T1 => Some(*stats),
        _ => None,
    });
    assert_eq!(stats.unwrap().filtered, dropped);
}

fn udp_socket(b: &mut Bed, at: SocketAddr) -> SocketHandle {
    let buf =
        || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1024], vec![0; 1024 * 1024]);
    let mut s = udp::Socket::new(buf(), buf());
    s.bind(IpEndpoint::from(at)).unwrap();
    b.host.sockets.add(s)
}

#[test]
fn udptl_at_four_times_the_policed_rate_is_held_to_it() {
    let mut b = bed(Faults::default(), 0x5B);
    let (sdr, mbs) = (12_500u64, 3_000u64);
    for (key, local, remote) in [
        (T1, sa(AGW_ACCESS, 41000), sa(UE_X, 5004)),
        (T2, sa(AGW_CORE, 42000), sa(UE_Y, 6004)),
    ] {
        b.send(Command::ReserveDatagram { key, local });
        if key == T1 {
            b.send(Command::SetPolicy {
                key,
                policy: LegPolicy {
                    police: police(sdr, mbs),
                    ..Default::default()
                },
            });
        }
        b.send(Command::StartDatagram {
            key,
            remote: Some(remote),
            accept: Accept::Gate(remote.ip()),
            relatch: false,
            timers: timers(),
            dtls: None,
        });
    }
    b.send(Command::Join { a: T1, b: T2 });
    let ux = udp_socket(&mut b, sa(UE_X, 5004));
    let uy = udp_socket(&mut b, sa(UE_Y, 6004));
    b.run_for(Duration::from_millis(10));
    // 1000-byte datagrams (1028 IP bytes) every 5.14 ms: 4x the rate, for 10 s.
    let payload = vec![0x5au8; 1000];
    let gap = Duration::from_micros(1028 * 1_000_000 / (4 * sdr));
    let start = b.now();
    let mut next = start;
    let (mut sent, mut got) = (0u64, 0u64);
    b.run(Duration::from_secs(20), |b| {
        let now = b.now();
        let mut busy = false;
        while next <= now && now < start + Duration::from_secs(10) {
            let s = b.host.sockets.get_mut::<udp::Socket>(ux);
            s.send_slice(
                &payload,
                IpEndpoint::new(IpAddress::Ipv4(AGW_ACCESS), 41000),
            )
            .unwrap();
            sent += 1;
            next += gap;
            busy = true;
        }
        let s = b.host.sockets.get_mut::<udp::Socket>(uy);
        while s.recv().is_ok() {
            got += 1;
            busy = true;
        }
        if now >= start + Duration::from_secs(11) {
            Progress::Done
        } else if busy {
            Progress::Busy
        } else {
            // Wake up for the next send.
            b.clock
                .advance_to(next.min(now + Duration::from_millis(1)).max(now));
            Progress::Idle
        }
    });
    // The bucket lets through its depth and then the rate: (3000 + 10 s x 12 500) B.
    let expected = (mbs + 10 * sdr) as f64 / 1028.0;
    assert!(sent > 380, "{sent}");
    assert!(
        (got as f64 - expected).abs() <= expected * 0.05,
        "{got} datagrams through, {expected:.1} expected, {sent} sent"
    );
    let dropped = b.worker.counters().police_dropped;
    assert_eq!(
        dropped,
        sent - got,
        "every datagram is delivered or counted"
    );
    b.send(Command::Audit { key: T1 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.has(|e| matches!(e, Event::Stats { key, .. } if *key == T1))
    });
    let stats = b
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Stats { key, stats } if *key == T1 => Some(*stats),
            _ => None,
        })
        .unwrap();
    assert_eq!(stats.policed, dropped);
}

#[test]
fn a_policed_tcp_sender_gets_every_byte_through_at_the_rate_and_a_modify_loses_nothing() {
    let mut b = bed(Faults::default(), 0x5C);
    let (x, y) = b.proxied_pair(41000, 256 * 1024);
    let (sdr, mbs) = (200_000u64, 20_000u64);
    b.send(Command::SetPolicy {
        key: T1,
        policy: LegPolicy {
            police: police(sdr, mbs),
            ..Default::default()
        },
    });
    b.run_for(Duration::from_millis(1));
    let bytes = 2_000_000u64;
    let mut tx = PatternSender::new(1, bytes);
    let mut rx = PatternChecker::new(1);
    let start = b.now();
    let mut modified = false;
    b.run(Duration::from_secs(120), |b| {
        let moved = tx.pump(b.ue(x)) + rx.pump(b.ue(y));
        if !modified && rx.received >= bytes / 2 {
            // Twice the rate from halfway: the bytes in flight are not disturbed.
            b.send(Command::SetPolicy {
                key: T1,
                policy: LegPolicy {
                    police: police(2 * sdr, mbs),
                    ..Default::default()
                },
            });
            modified = true;
        }
        if rx.received == bytes {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(rx.first_mismatch, None);
    let secs = (b.now() - start).total_micros() as f64 / 1e6;
    // 1 MB at 200 kB/s, then 1 MB at 400 kB/s, less the burst: at least 7.4 s. A policer
    // drops (H.248.53 does not shape), and a sender with a window larger than the bucket
    // loses segments and backs off: the smoltcp UE on this zero-delay link gets about a
    // third of the rate. Held to the rate, never above it, and never stalled.
    let floor = (bytes / 2 - mbs) as f64 / sdr as f64 + (bytes / 2) as f64 / (2 * sdr) as f64;
    assert!(
        secs >= floor * 0.95,
        "{secs:.2} s for {bytes} B, floor {floor:.2}"
    );
    assert!(
        secs <= floor * 6.0,
        "{secs:.2} s for {bytes} B, floor {floor:.2}"
    );
    assert!(b.worker.counters().police_dropped > 0);
}
