//! Floods and bad peers never hurt the pairs that behave: a SYN flood from random sources to
//! open and unused ports and a connection flood at a gated listening leg leave the worker
//! with no state for the unknown flows (no leg, no allocation), are answered with RSTs, and
//! a good pair beside them keeps moving checked bytes; stuck and slow peers (a UE that
//! connects and sends nothing, a TLS UE that sends nothing, one that sends its ClientHello a
//! byte a second) are ended by their timers, while a good pair finishes its transfer; and a
//! buffer pool far too small for the windows in flight loses frames that TCP sends again, so
//! nothing is lost and every buffer comes back.

mod common;

use common::*;
use dataplane::contract::*;
use dataplane::tls::{HashAlg, Identity, TlsConfig, TlsFailure};
use port::Port;
use smoltcp::iface::SocketHandle;
use smoltcp::time::Duration;
use testbed::hostile::{Flow, HostileFrames};
use testbed::memlink::Faults;
use testbed::rng::SplitMix64;
use testbed::{PatternChecker, PatternSender};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(context: u32, termination: u32) -> TerminationKey {
    TerminationKey {
        context,
        termination,
    }
}

/// A good pair's checked streams, both ways.
struct Good {
    x: SocketHandle,
    y: SocketHandle,
    sx: PatternSender,
    sy: PatternSender,
    rx: PatternChecker,
    ry: PatternChecker,
}

impl Good {
    fn new(b: &mut Bed, bytes: u64) -> Good {
        let (x, y) = b.pair_of(key(1, 1), key(1, 2), 2855, 64 * 1024, Framing::Agnostic);
        Good {
            x,
            y,
            sx: PatternSender::new(1, bytes),
            sy: PatternSender::new(2, bytes),
            rx: PatternChecker::new(2),
            ry: PatternChecker::new(1),
        }
    }

    fn pump(&mut self, b: &mut Bed) -> usize {
        let s = b.ue(self.x);
        let mut n = self.sx.pump(s) + self.rx.pump(s);
        let s = b.ue(self.y);
        n += self.sy.pump(s) + self.ry.pump(s);
        n
    }

    fn received(&self) -> u64 {
        self.rx.received + self.ry.received
    }

    fn check(&self) {
        assert_eq!(self.rx.first_mismatch, None);
        assert_eq!(self.ry.first_mismatch, None);
    }
}

#[test]
fn syn_and_connection_floods_leave_no_state_and_the_good_pair_moves() {
    // The good pair's socket buffers exist before the flood: only the flood is watched.
    let cfg = dataplane::worker::WorkerConfig {
        prefill_buffers: 2,
        ..dataplane::worker::WorkerConfig::default()
    };
    let mut b = bed_with(Faults::default(), 21, cfg);
    let mut good = Good::new(&mut b, 40_000_000);
    // A leg waiting for its UE behind a gate (UE-X's address only).
    let waiting = key(2, 3);
    b.send(Command::Reserve {
        key: waiting,
        local: sa(AGW_ACCESS, 3000),
    });
    b.send(Command::Start {
        key: waiting,
        role: LegRole::Passive,
        accept: Accept::Gate(UE_X.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    // Warm up: the good pair moves data, every buffer the flood will touch exists.
    b.run(Duration::from_secs(5), |b| {
        if good.pump(b) > 0 && good.received() > 2_000_000 {
            Progress::Done
        } else {
            Progress::Busy
        }
    });
    let legs = b.worker.legs();
    let before = b.worker.counters();
    let mut h = HostileFrames::new(3, b.host.device.port().mac(), b.worker.port().mac());
    let mut rng = SplitMix64::new(4);
    let mut flood = Vec::with_capacity(32);
    let mut sent = 0;
    let mut worker_allocs = 0;
    let mut rounds = 0u64;
    while sent < 300_000 {
        flood.clear();
        for _ in 0..32 {
            let f = match rng.below(4) {
                // Random sources to random ports of both addresses.
                0 => h.syn(None, AGW_ACCESS),
                1 => h.syn(None, AGW_CORE),
                // Random sources at the gated listening leg and at the established legs.
                2 => {
                    let port = [3000u16, 2855][rng.below(2) as usize];
                    let src = (
                        std::net::Ipv4Addr::from(rng.next_u64() as u32 | 0x0100_0000).into(),
                        1024 + rng.below(60000) as u16,
                    );
                    h.syn(
                        Some(Flow {
                            src,
                            dst: (AGW_ACCESS.into(), port),
                        }),
                        AGW_ACCESS,
                    )
                }
                // A connection flood from the gate's own address: the first one the leg
                // accepts is a real UE's; the others are refused.
                _ => {
                    let src = (UE_X.into(), 20000 + rng.below(20000) as u16);
                    h.syn(
                        Some(Flow {
                            src,
                            dst: (AGW_ACCESS.into(), 3001),
                        }),
                        AGW_ACCESS,
                    )
                }
            };
            flood.push(f);
        }
        sent += inject(&mut b, &flood);
        good.pump(&mut b);
        // Only the worker's own poll is watched.
        let now = b.now();
        worker_allocs += allocations(true, || b.worker.poll(now)).1;
        b.step();
        rounds += 1;
        if rounds.is_multiple_of(16) {
            b.idle();
        }
    }
    let after = b.worker.counters();
    let refused =
        (after.tcp_no_leg - before.tcp_no_leg) + (after.gate_rejected - before.gate_rejected);
    eprintln!(
        "{sent} SYNs: no leg {} gate {} allocations in the worker {worker_allocs}; good pair received {}",
        after.tcp_no_leg - before.tcp_no_leg,
        after.gate_rejected - before.gate_rejected,
        good.received()
    );
    assert_eq!(b.worker.legs(), legs, "no leg for an unknown flow");
    assert_eq!(worker_allocs, 0, "the worker allocated for the flood");
    assert!(after.gate_rejected > before.gate_rejected);
    assert!(refused as usize >= sent / 2, "{refused} of {sent}");
    // (RSTs go only to sources the worker can reach: a spoofed off-link source gets nothing,
    // so the flood is not reflected.)
    // The good pair is untouched and finishes.
    let total = 80_000_000;
    b.run(Duration::from_secs(120), |b| {
        let n = good.pump(b);
        if good.received() == total {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    good.check();
    assert!(!b.has(|e| matches!(e, Event::Closed { .. })));
    // The gated leg still waits for its UE and accepts it.
    let x = b.ue_connect(sa(UE_X, 3000), sa(AGW_ACCESS, 3000), 8192);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Established { key, .. } if *key == waiting))
    });
    let _ = x;
}

#[test]
fn stuck_and_slow_peers_end_on_their_timers_beside_a_good_pair() {
    let mut b = bed(Faults::default(), 22);
    let mut good = Good::new(&mut b, 30_000_000);
    let agw = Identity::generate("agw.example").unwrap();
    let ue = Identity::generate("ue.example").unwrap();
    let tls = TlsConfig::new(&agw, None, vec![ue.fingerprint(HashAlg::Sha256)]).unwrap();
    let idle = key(3, 5);
    let tls_silent = key(4, 7);
    let tls_trickle = key(5, 9);
    for (k, port, tls, idle_timer) in [
        (idle, 3100u16, None, Some(Duration::from_secs(5))),
        (tls_silent, 3101, Some(tls.clone()), None),
        (tls_trickle, 3102, Some(tls.clone()), None),
    ] {
        b.send(Command::Reserve {
            key: k,
            local: sa(AGW_ACCESS, port),
        });
        b.send(Command::Start {
            key: k,
            role: LegRole::Passive,
            accept: Accept::Latch,
            timers: LegTimers {
                idle: idle_timer,
                handshake: Duration::from_secs(10),
                ..timers()
            },
            tls,
            framing: Framing::Agnostic,
        });
    }
    b.run_for(Duration::from_millis(5));
    let socks: Vec<_> = [3100u16, 3101, 3102]
        .iter()
        .map(|&p| b.ue_connect(sa(UE_X, p), sa(AGW_ACCESS, p), 8192))
        .collect();
    // A ClientHello-sized record header and body, one byte a second.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03,
    ];
    hello.resize(300, 0x42);
    let mut trickled = 0;
    let mut next_byte = b.now() + Duration::from_secs(1);
    let start = b.now();
    b.run(Duration::from_secs(60), |b| {
        let mut n = good.pump(b);
        if b.now() >= next_byte && trickled < hello.len() {
            n += b
                .ue(socks[2])
                .send_slice(&hello[trickled..trickled + 1])
                .unwrap_or(0);
            trickled += 1;
            next_byte = b.now() + Duration::from_secs(1);
        }
        let ended = [idle, tls_silent, tls_trickle]
            .iter()
            .all(|k| b.has(|e| matches!(e, Event::Closed { key, .. } if key == k)));
        if ended && good.received() == 60_000_000 {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    good.check();
    let elapsed = b.now() - start;
    let cause = |k: TerminationKey| {
        b.events.iter().find_map(|e| match e {
            Event::Closed { key, cause, .. } if *key == k => Some(*cause),
            _ => None,
        })
    };
    assert_eq!(cause(idle), Some(ReleaseCause::IdleTimeout));
    assert_eq!(cause(tls_silent), Some(ReleaseCause::TlsFailed));
    assert_eq!(cause(tls_trickle), Some(ReleaseCause::TlsFailed));
    for k in [tls_silent, tls_trickle] {
        assert!(b.has(
            |e| matches!(e, Event::TlsFailed { key, failure: TlsFailure::Timeout } if *key == k)
        ));
    }
    // The trickle was cut at the handshake timer, not after the whole record.
    assert!(trickled <= 12, "{trickled} bytes trickled");
    assert!(elapsed < Duration::from_secs(30), "{elapsed}");
    let good_keys = [key(1, 1), key(1, 2)];
    assert!(!b.has(|e| matches!(e, Event::Closed { key: k, .. } if good_keys.contains(k))));
    // Nothing is held: release the good pair and every leg and buffer comes back.
    b.send(Command::Release { key: key(1, 1) });
    b.send(Command::Release { key: key(1, 2) });
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
    for s in socks.into_iter().chain([good.x, good.y]) {
        b.ue(s).abort();
    }
    b.run_for(Duration::from_secs(1));
    b.wait_for(Duration::from_secs(10), |b| b.pool.in_use() == 0);
}

#[test]
fn a_nearly_empty_buffer_pool_slows_but_loses_nothing_and_recovers() {
    // 40 frame buffers for both ends of the link: far fewer than the windows in flight.
    let cfg = dataplane::worker::WorkerConfig {
        rx_buffer: 64 * 1024,
        tx_buffer: 64 * 1024,
        ..dataplane::worker::WorkerConfig::default()
    };
    // A 5 ms path keeps whole windows in flight, which the pool cannot hold.
    let path = Faults {
        delay: Duration::from_millis(5),
        ..Faults::default()
    };
    let mut b = bed_with_pool(path, 23, cfg, 40);
    let mut good = Good::new(&mut b, 5_000_000);
    b.run(Duration::from_secs(300), |b| {
        let n = good.pump(b);
        if good.received() == 10_000_000 {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    good.check();
    let lost = b.worker.device_stats().tx_no_buffer;
    eprintln!("frames the worker could not build for want of a buffer: {lost}");
    assert!(lost > 0, "the pool was never short");
    assert!(!b.has(|e| matches!(e, Event::Closed { .. })));
    b.send(Command::Release { key: key(1, 1) });
    b.send(Command::Release { key: key(1, 2) });
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
    b.ue(good.x).abort();
    b.ue(good.y).abort();
    b.run_for(Duration::from_secs(1));
    b.wait_for(Duration::from_secs(10), |b| b.pool.in_use() == 0);
}
