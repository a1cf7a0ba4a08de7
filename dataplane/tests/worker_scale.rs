//! Ten thousand concurrent proxied pairs on one worker, each moving its own checked pattern
//! both ways, over a MemLink to a farm of UE connections; the pairs' legs take every
//! combination of IPv4 and IPv6 in turn (v4-v4, v6-v4, v4-v6, v6-v6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dataplane::clock::Clock;
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::time::Duration;
use smoltcp::wire::{IpCidr, Ipv4Cidr, Ipv6Cidr};
use testbed::calls::plain_call;
use testbed::memlink::MemLinkConfig;
use testbed::rig::WorkerRig;
use testbed::Farm;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
const AGW_ACCESS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 0x10);
const AGW_CORE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 0x20);
const UE_X6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0x100, 0, 0, 0, 0x7);
const UE_Y6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0x200, 0, 0, 0, 0x50);

/// Pair `i`'s (AGW access, AGW core, UE-X, UE-Y) addresses: the access side on IPv6 for odd
/// pairs, the core side for pairs 2 and 3 of every 4.
fn addresses(i: u32) -> (IpAddr, IpAddr, IpAddr, IpAddr) {
    let (access, ue_x): (IpAddr, IpAddr) = match i % 2 {
        0 => (AGW_ACCESS.into(), UE_X.into()),
        _ => (AGW_ACCESS6.into(), UE_X6.into()),
    };
    let (core, ue_y): (IpAddr, IpAddr) = match i % 4 {
        0 | 1 => (AGW_CORE.into(), UE_Y.into()),
        _ => (AGW_CORE6.into(), UE_Y6.into()),
    };
    (access, core, ue_x, ue_y)
}

#[test]
fn ten_thousand_pairs_each_move_their_own_checked_bytes() {
    const PAIRS: u32 = 10_000;
    let bytes = |i: u32| 1000 + (i as u64 * 37) % 7000;
    let link = MemLinkConfig {
        pool_buffers: 65536,
        queue_frames: 8192,
        ..MemLinkConfig::default()
    };
    let cfg = WorkerConfig {
        rx_buffer: 4096,
        tx_buffer: 4096,
        // Far fewer full-size buffers than 20 000 legs could want at once.
        lendable_buffers: 256,
        ..WorkerConfig::default()
    };
    let WorkerRig {
        clock,
        mut worker,
        mut farm,
        control,
        pool,
    } = WorkerRig::new(
        link,
        1 << 17,
        cfg,
        &[
            IpCidr::Ipv4(Ipv4Cidr::new(AGW_ACCESS, 15)),
            IpCidr::Ipv4(Ipv4Cidr::new(AGW_CORE, 15)),
            IpCidr::Ipv6(Ipv6Cidr::new(AGW_ACCESS6, 32)),
            IpCidr::Ipv6(Ipv6Cidr::new(AGW_CORE6, 32)),
        ],
        &[
            IpCidr::Ipv4(Ipv4Cidr::new(UE_X, 15)),
            IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)),
            IpCidr::Ipv6(Ipv6Cidr::new(UE_X6, 32)),
            IpCidr::Ipv6(Ipv6Cidr::new(UE_Y6, 32)),
        ],
    );

    let mut ys = Vec::new();
    for i in 0..PAIRS {
        let port = 10_000 + i as u16;
        let (access, core, ue_x, ue_y) = addresses(i);
        ys.push(farm.listen(
            (ue_y, port),
            4096,
            2 * i as u64 + 1,
            bytes(i),
            2 * i as u64,
            bytes(i),
        ));
        for c in plain_call(
            i,
            SocketAddr::new(access, port),
            SocketAddr::new(core, port),
            ue_x,
            SocketAddr::new(ue_y, port),
        ) {
            control.commands.push(c).unwrap();
        }
    }
    let mut events = Vec::new();
    let step = |worker: &mut Worker<_>, farm: &mut Farm<_>, events: &mut Vec<Event>| {
        let now = clock.now();
        let mut busy = worker.poll(now);
        busy |= farm.poll(now);
        while let Some(e) = control.events.pop() {
            events.push(e);
        }
        if !busy {
            clock.advance(Duration::from_millis(1));
        }
    };
    while worker.legs() < 2 * PAIRS as usize || !control.commands.is_empty() {
        step(&mut worker, &mut farm, &mut events);
    }
    let mut xs = Vec::new();
    for i in 0..PAIRS {
        let port = 10_000 + i as u16;
        let (access, _, ue_x, _) = addresses(i);
        xs.push(farm.connect(
            (ue_x, port),
            (access, port),
            4096,
            2 * i as u64,
            bytes(i),
            2 * i as u64 + 1,
            bytes(i),
        ));
    }
    let limit = clock.now() + Duration::from_secs(120);
    let closed = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count()
    };
    while closed(&events) < 2 * PAIRS as usize {
        assert!(
            clock.now() < limit,
            "closed {} of {} legs",
            closed(&events),
            2 * PAIRS
        );
        step(&mut worker, &mut farm, &mut events);
    }
    for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
        for id in [*x, *y] {
            let c = farm.conn(id);
            assert_eq!(c.rx.received, bytes(i as u32), "pair {i}");
            assert_eq!(c.rx.first_mismatch, None, "pair {i}");
        }
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::CutThrough { .. }))
            .count(),
        PAIRS as usize
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Rejected { .. } | Event::ConnectFailed { .. })));
    let c = worker.counters();
    assert_eq!(
        (c.gate_rejected, c.events_dropped, c.malformed_dropped),
        (0, 0, 0)
    );
    assert!(c.buffer_lends_refused > 0, "the pool was short: {c:?}");
    while worker.legs() > 0 {
        step(&mut worker, &mut farm, &mut events);
    }
    assert_eq!(worker.counters().buffers_lent, 0);
    drop((worker, farm));
    assert_eq!(pool.in_use(), 0);
}
