//! The worker carries the seed's flow (T2 connects out, T1 accepts, cut-through) and the
//! other TCP modes, moving data byte-exact through faults.

mod common;

use common::*;
use dataplane::contract::*;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use testbed::memlink::Faults;

/// A socket-buffer pool that lends 2 full-size buffers where the pair wants 4: the legs that
/// find it empty keep their guaranteed windows.
fn short_pool() -> dataplane::worker::WorkerConfig {
    dataplane::worker::WorkerConfig {
        lendable_buffers: 2,
        ..dataplane::worker::WorkerConfig::default()
    }
}

#[test]
fn seed_flow_proxy_mode_moves_100_mb_each_way_through_loss_and_reordering() {
    let mut b = bed(lossy(), 0xA1);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 41000),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 42000),
    });
    let y = b.ue_listen(UE_Y, 2855, 256 * 1024);
    // Steps 12-17: T2 connects out to UE-Y, the TCP server.
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
    b.send(Command::Join { a: T1, b: T2 });
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::Established { key, .. } if *key == T2))
    });
    // Steps 18-22: T1 waits for UE-X.
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Gate(UE_X.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.run_for(Duration::from_millis(5));
    let x = b.ue_connect(sa(UE_X, 5000), sa(AGW_ACCESS, 41000), 256 * 1024);
    // Step 23: cut-through.
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::CutThrough { .. }))
    });
    assert!(b.has(|e| *e
        == Event::Established {
            key: T1,
            remote: sa(UE_X, 5000)
        }));
    assert!(b.has(|e| *e
        == Event::Established {
            key: T2,
            remote: sa(UE_Y, 2855)
        }));
    assert!(
        !b.has(|e| matches!(e, Event::Latched { .. })),
        "gated legs do not latch"
    );
    transfer(&mut b, x, y, 100 * MB);
    let st = b.worker.port().egress_stats();
    assert!(
        st.dropped > 1000 && st.reordered > 1000,
        "faults were injected: {st:?}"
    );
    finish(&mut b);
    drop(b.worker);
    drop(b.host);
    assert_eq!(b.pool.in_use(), 0);
}

#[test]
fn merge_mode_both_legs_passive() {
    let mut b = bed_with(lossy(), 0xB2, short_pool());
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 41002),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 42002),
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Start {
        key: T2,
        role: LegRole::Passive,
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Join { a: T1, b: T2 });
    b.run_for(Duration::from_millis(2));
    let x = b.ue_connect(sa(UE_X, 6000), sa(AGW_ACCESS, 41002), 128 * 1024);
    let y = b.ue_connect(sa(UE_Y, 6001), sa(AGW_CORE, 42002), 128 * 1024);
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::CutThrough { .. }))
    });
    assert!(b.has(|e| *e
        == Event::Latched {
            key: T1,
            remote: sa(UE_X, 6000)
        }));
    transfer(&mut b, x, y, 100 * MB);
    let c = b.worker.counters();
    assert!(c.buffer_lends_refused > 0 && c.buffers_lent <= 2, "{c:?}");
    finish(&mut b);
}

#[test]
fn active_active_mode_both_legs_connect_out() {
    let mut b = bed_with(lossy(), 0xC3, short_pool());
    let x = b.ue_listen(UE_X, 7000, 128 * 1024);
    let y = b.ue_listen(UE_Y, 7001, 128 * 1024);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 41004),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 42004),
    });
    b.send(Command::Join { a: T1, b: T2 });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Active {
            remote: sa(UE_X, 7000),
        },
        accept: Accept::Gate(UE_X.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 7001),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::CutThrough { .. }))
    });
    transfer(&mut b, x, y, 100 * MB);
    let c = b.worker.counters();
    assert!(c.buffer_lends_refused > 0 && c.buffers_lent <= 2, "{c:?}");
    finish(&mut b);
}

#[test]
fn nothing_is_forwarded_before_both_legs_are_up() {
    let mut b = bed(Faults::default(), 0xD4);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 41006),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 42006),
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
    b.run_for(Duration::from_millis(2));
    let x = b.ue_connect(sa(UE_X, 6100), sa(AGW_ACCESS, 41006), 64 * 1024);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Established { key, .. } if *key == T1))
    });
    // UE-X sends while T2 has no connection: the bytes wait in T1's receive buffer.
    b.ue(x)
        .send_slice(b"hello before the core leg exists")
        .unwrap();
    b.run_for(Duration::from_millis(50));
    b.send(Command::Audit { key: T1 });
    b.run_for(Duration::from_millis(2));
    assert!(
        b.has(|e| matches!(e, Event::Stats { key, stats } if *key == T1 && stats.octets_in == 0))
    );
    // Now the core side comes up and the bytes flow.
    let y = b.ue_listen(UE_Y, 6200, 64 * 1024);
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 6200),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    let mut got = Vec::new();
    b.run(Duration::from_secs(5), |b| {
        let mut buf = [0u8; 64];
        let s = b.ue(y);
        let n = if s.can_recv() {
            s.recv_slice(&mut buf).unwrap()
        } else {
            0
        };
        got.extend_from_slice(&buf[..n]);
        if got.len() >= 32 {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(&got[..], b"hello before the core leg exists");
    assert_eq!(b.ue(x).state(), tcp::State::Established);
}

#[test]
fn one_pair_costs_its_buffers_plus_a_little() {
    let b = bed(Faults::default(), 1);
    let buffers = b.worker.pair_buffer_bytes();
    let total = b.worker.pair_memory_bytes();
    eprintln!("pair memory: {total} bytes ({buffers} of socket buffers)");
    assert_eq!(buffers, 2 * (1460 + 768));
    assert_eq!(b.worker.busy_pair_buffer_bytes(), 4 * 64 * 1024);
    assert!(total > buffers && total < buffers + 4096, "{total}");
    assert!(total <= 8192, "an idle call within 8 KiB: {total}");
}
