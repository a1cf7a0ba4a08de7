//! Socket buffers on demand: a leg starts with its small guaranteed buffers, borrows full-size
//! ones from the worker's pool while data flows and gives them back once drained and idle;
//! idle calls stay within 8 KiB of worker heap each; a pool far too small for all legs slows
//! them (back-pressure) and loses nothing; and no loan outlives its leg.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use dataplane::clock::Clock;
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::time::Duration;
use smoltcp::wire::Ipv4Cidr;
use testbed::calls::plain_call;
use testbed::memlink::{Faults, MemLinkConfig, MemPort};
use testbed::rig::WorkerRig;
use testbed::{Farm, PatternChecker, PatternSender};

#[global_allocator]
static GLOBAL: Counting = Counting;

const FARM_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const FARM_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);

/// Moves `bytes` each way through a proxied pair, checked.
fn transfer_both_ways(
    b: &mut Bed,
    x: smoltcp::iface::SocketHandle,
    y: smoltcp::iface::SocketHandle,
    bytes: u64,
    seed: u64,
) {
    transfer(b, x, y, (bytes, bytes), seed);
}

/// Moves `x_to_y` octets from UE-X to UE-Y and `y_to_x` back at once through a proxied pair,
/// checked.
fn transfer(
    b: &mut Bed,
    x: smoltcp::iface::SocketHandle,
    y: smoltcp::iface::SocketHandle,
    (x_to_y, y_to_x): (u64, u64),
    seed: u64,
) {
    let mut tx_x = PatternSender::new(seed, x_to_y);
    let mut tx_y = PatternSender::new(seed + 1, y_to_x);
    let mut rx_x = PatternChecker::new(seed + 1);
    let mut rx_y = PatternChecker::new(seed);
    b.run(Duration::from_secs(600), |b| {
        let mut n = 0;
        for (h, tx, rx) in [(x, &mut tx_x, &mut rx_x), (y, &mut tx_y, &mut rx_y)] {
            let s = b.ue(h);
            n += tx.pump(s) + rx.pump(s);
        }
        if rx_x.received == y_to_x && rx_y.received == x_to_y {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!((rx_x.received, rx_y.received), (y_to_x, x_to_y));
    assert_eq!((rx_x.first_mismatch, rx_y.first_mismatch), (None, None));
}

#[test]
fn a_busy_pair_borrows_full_buffers_and_gives_them_back_when_idle() {
    let mut b = bed(Faults::default(), 31);
    let (x, y) = b.proxied_pair(45000, 256 * 1024);
    let start = b.worker.counters();
    assert_eq!(
        start.buffers_lent, 0,
        "legs start with their guaranteed buffers"
    );
    transfer_both_ways(&mut b, x, y, 4_000_000, 1);
    let busy = b.worker.counters();
    assert!(busy.buffer_lends >= 2, "a transfer borrows: {busy:?}");
    assert!(busy.buffers_lent >= 2, "{busy:?}");
    // Drained and idle: everything goes back.
    b.run_for(Duration::from_secs(2));
    let idle = b.worker.counters();
    assert_eq!(idle.buffers_lent, 0, "{idle:?}");
    assert_eq!(idle.buffers_returned, idle.buffer_lends);
    // The pair still works, and borrows again for the next transfer.
    transfer_both_ways(&mut b, x, y, 2_000_000, 7);
    assert!(b.worker.counters().buffer_lends > idle.buffer_lends);
    // A chat-sized message each way needs no loan.
    b.run_for(Duration::from_secs(2));
    let before = b.worker.counters();
    transfer_both_ways(&mut b, x, y, 600, 11);
    assert_eq!(b.worker.counters().buffer_lends, before.buffer_lends);
    // A segment of half the guaranteed window (1 460) borrows: a Linux sender sends no more
    // than that behind such a window and would split every longer message. Each direction
    // borrows its two buffers together, the receiving leg's receive buffer and the
    // delivering leg's send buffer (768 octets, which would take the message in two flights).
    b.run_for(Duration::from_secs(2));
    let before = b.worker.counters();
    transfer_both_ways(&mut b, x, y, 730, 13);
    let after = b.worker.counters();
    assert_eq!(after.buffer_lends - before.buffer_lends, 4, "{after:?}");
}

/// A pool of two: the first direction to fill its window borrows both of its buffers, the
/// other none (a loan of one of its two alone would speed nothing up). Once the first
/// direction has been idle for a while its loans come back although the same two legs still
/// carry the other direction, which then borrows them.
#[test]
fn a_direction_borrows_its_two_buffers_together_and_returns_them_when_it_idles() {
    let cfg = WorkerConfig {
        lendable_buffers: 2,
        ..WorkerConfig::default()
    };
    // A millisecond each way: the second direction crawls on its guaranteed windows for the
    // half second the first direction's loans take to come back.
    let faults = Faults {
        delay: Duration::from_millis(1),
        ..Faults::default()
    };
    let mut b = bed_with(faults, 37, cfg);
    let (x, y) = b.proxied_pair(45010, 256 * 1024);
    transfer(&mut b, x, y, (2_000_000, 0), 21);
    let first = b.worker.counters();
    assert_eq!(
        (first.buffer_lends, first.buffers_lent),
        (2, 2),
        "{first:?}"
    );
    // UE-Y now sends, UE-X nothing: the legs stay busy, the first direction's loans go back,
    // the second's come.
    transfer(&mut b, x, y, (0, 4_000_000), 23);
    let second = b.worker.counters();
    assert_eq!(second.buffer_lends, 4, "{second:?}");
    assert_eq!(second.buffers_returned, 2, "{second:?}");
    assert!(second.buffer_lends_refused > 0, "{second:?}");
    b.run_for(Duration::from_secs(2));
    let idle = b.worker.counters();
    assert_eq!(
        (idle.buffers_lent, idle.buffers_returned),
        (0, 4),
        "{idle:?}"
    );
}

#[test]
fn a_pool_far_too_small_slows_the_legs_and_loses_nothing() {
    let faults = Faults {
        drop: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_micros(300),
        delay: Duration::from_millis(1),
        ..Faults::default()
    };
    // Eight pairs want 32 full buffers; the pool lends 3.
    let cfg = WorkerConfig {
        lendable_buffers: 3,
        ..WorkerConfig::default()
    };
    let mut b = bed_with(faults, 41, cfg);
    let pairs: Vec<_> = (0..8)
        .map(|i| {
            let (x, y) = b.pair_of(
                TerminationKey {
                    context: 10 + i,
                    termination: 1,
                },
                TerminationKey {
                    context: 10 + i,
                    termination: 2,
                },
                46000 + i as u16,
                128 * 1024,
                Framing::Agnostic,
            );
            (
                x,
                y,
                PatternSender::new(100 + 2 * i as u64, 1_500_000),
                PatternSender::new(101 + 2 * i as u64, 1_500_000),
                PatternChecker::new(101 + 2 * i as u64),
                PatternChecker::new(100 + 2 * i as u64),
            )
        })
        .collect();
    let mut pairs = pairs;
    let mut most_lent = 0;
    b.run(Duration::from_secs(900), |b| {
        let mut n = 0;
        let mut done = true;
        for (x, y, sx, sy, rx, ry) in pairs.iter_mut() {
            let s = b.ue(*x);
            n += sx.pump(s) + rx.pump(s);
            let s = b.ue(*y);
            n += sy.pump(s) + ry.pump(s);
            done &= rx.received == 1_500_000 && ry.received == 1_500_000;
        }
        most_lent = most_lent.max(b.worker.counters().buffers_lent);
        if done {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    for (_, _, _, _, rx, ry) in &pairs {
        assert_eq!((rx.received, ry.received), (1_500_000, 1_500_000));
        assert_eq!((rx.first_mismatch, ry.first_mismatch), (None, None));
    }
    let c = b.worker.counters();
    eprintln!("pool of 3 for 8 pairs: {c:?}");
    assert!(most_lent <= 3, "never beyond the limit: {most_lent}");
    assert!(c.buffer_lends_refused > 0, "the pool was short: {c:?}");
    assert!(!b.has(|e| matches!(e, Event::Closed { .. })));
    // Releasing legs mid-loan gives their buffers back.
    for i in 0..8 {
        for t in [1, 2] {
            b.send(Command::Release {
                key: TerminationKey {
                    context: 10 + i,
                    termination: t,
                },
            });
        }
    }
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
    assert_eq!(b.worker.counters().buffers_lent, 0);
}

#[test]
fn idle_plain_calls_hold_at_most_8_kib_of_worker_heap_each() {
    const CALLS: u32 = 2000;
    const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
    const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
    let link = MemLinkConfig {
        pool_buffers: 32768,
        queue_frames: 8192,
        ..MemLinkConfig::default()
    };
    // The worker's fixed heap (its scratch buffers, the pool's lists) is made here, not per
    // call.
    let WorkerRig {
        clock,
        mut worker,
        mut farm,
        control,
        pool,
    } = WorkerRig::new(
        link,
        1 << 15,
        WorkerConfig::default(),
        &[Ipv4Cidr::new(AGW_ACCESS, 15), Ipv4Cidr::new(AGW_CORE, 15)],
        &[Ipv4Cidr::new(FARM_X, 15), Ipv4Cidr::new(FARM_Y, 15)],
    );
    // Frame buffers belong to the link (a DPDK mempool is made whole at start).
    pool.fill();
    farm.auto_close = false;
    let start = alloc_count::watched_net_bytes();
    // A chat message each way: 400 bytes.
    let mut ys = Vec::new();
    for i in 0..CALLS {
        let port = 20_000 + i as u16;
        ys.push(farm.listen(
            (FARM_Y, port),
            4096,
            2 * i as u64 + 1,
            400,
            2 * i as u64,
            400,
        ));
        for c in plain_call(
            i,
            SocketAddrV4::new(AGW_ACCESS, port),
            SocketAddrV4::new(AGW_CORE, port),
            FARM_X,
            SocketAddrV4::new(FARM_Y, port),
        ) {
            control.commands.push(c).unwrap();
        }
    }
    let step = |worker: &mut Worker<MemPort>, farm: &mut Farm<MemPort>| {
        let now = clock.now();
        let (mut busy, _) = allocations(true, || worker.poll(now));
        busy |= farm.poll(now);
        while control.events.pop().is_some() {}
        if !busy {
            clock.advance(Duration::from_millis(1));
        }
    };
    while worker.legs() < 2 * CALLS as usize || !control.commands.is_empty() {
        step(&mut worker, &mut farm);
    }
    let mut xs = Vec::new();
    for i in 0..CALLS {
        let port = 20_000 + i as u16;
        xs.push(farm.connect(
            (FARM_X, port),
            (AGW_ACCESS, port),
            4096,
            2 * i as u64,
            400,
            2 * i as u64 + 1,
            400,
        ));
    }
    let limit = clock.now() + Duration::from_secs(120);
    while !xs.iter().chain(&ys).all(|&id| farm.conn(id).done()) {
        assert!(clock.now() < limit, "the chat messages arrive");
        step(&mut worker, &mut farm);
    }
    // Idle: every loan comes back.
    let idle_from = clock.now();
    while clock.now() < idle_from + Duration::from_secs(2) {
        step(&mut worker, &mut farm);
    }
    let c = worker.counters();
    assert_eq!(c.buffers_lent, 0, "{c:?}");
    assert_eq!(worker.legs(), 2 * CALLS as usize);
    for &id in xs.iter().chain(&ys) {
        assert_eq!(farm.state(id), smoltcp::socket::tcp::State::Established);
    }
    let per_call = (alloc_count::watched_net_bytes() - start) as f64 / CALLS as f64;
    eprintln!(
        "worker heap per idle established plain call: {per_call:.0} B ({} loans made and returned)",
        c.buffer_lends
    );
    assert!(per_call <= 8192.0, "{per_call:.0} B per idle call");
}
