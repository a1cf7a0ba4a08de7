//! The worker's edges: half-close, resets from either side, an active open nobody answers,
//! the gate, latching behind NAT, a slow receiver, release and idle timeout.

mod common;

use common::*;
use dataplane::contract::*;
use dataplane::worker::WorkerConfig;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use testbed::memlink::Faults;

fn up(b: &mut Bed, port: u16) -> (SocketHandle, SocketHandle) {
    b.proxied_pair(port, 64 * 1024)
}

fn read_all(b: &mut Bed, h: SocketHandle, into: &mut Vec<u8>) -> usize {
    let s = b.ue(h);
    let mut n = 0;
    while s.can_recv() {
        let mut buf = [0u8; 4096];
        let k = s.recv_slice(&mut buf).unwrap();
        into.extend_from_slice(&buf[..k]);
        n += k;
        if k == 0 {
            break;
        }
    }
    n
}

/// A third termination, for the tests that set up a leg beside the first pair.
const T3: TerminationKey = TerminationKey {
    context: 2,
    termination: 3,
};

/// Waits for leg `key` to report its connection established, and for UE socket `ue` to be.
fn wait_established(b: &mut Bed, key: TerminationKey, ue: SocketHandle) {
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::Established { key: k, .. } if *k == key))
    });
    assert_eq!(b.ue(ue).state(), tcp::State::Established);
}

/// Starts reserved leg `key` as a passive plain leg gated to UE-X.
fn start_gated(b: &mut Bed, key: TerminationKey) {
    b.send(Command::Start {
        key,
        role: LegRole::Passive,
        accept: Accept::Gate(UE_X.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
}

fn closed(b: &Bed, key: TerminationKey) -> Option<ReleaseCause> {
    b.events.iter().find_map(|e| match e {
        Event::Closed { key: k, cause, .. } if *k == key => Some(*cause),
        _ => None,
    })
}

#[test]
fn half_close_passes_the_fin_and_the_other_direction_keeps_flowing() {
    let mut b = bed(Faults::default(), 1);
    let (x, y) = up(&mut b, 43000);
    b.ue(x).send_slice(b"last words from X").unwrap();
    b.ue(x).close(); // X is done sending but still reads
    let mut at_y = Vec::new();
    b.run(Duration::from_secs(5), |b| {
        read_all(b, y, &mut at_y);
        if !b.ue(y).may_recv() {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    assert_eq!(at_y, b"last words from X");
    assert_eq!(b.ue(y).state(), tcp::State::CloseWait, "Y saw the FIN");
    // Y answers after the half-close; X still receives.
    b.ue(y).send_slice(b"reply after half-close").unwrap();
    let mut at_x = Vec::new();
    b.run(Duration::from_secs(5), |b| {
        read_all(b, x, &mut at_x);
        if at_x.len() == 22 {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    assert_eq!(at_x, b"reply after half-close");
    b.ue(y).close();
    b.wait_for(Duration::from_secs(5), |b| {
        closed(b, T1).is_some() && closed(b, T2).is_some()
    });
    assert_eq!(closed(&b, T1), Some(ReleaseCause::PeerClosed));
    assert_eq!(closed(&b, T2), Some(ReleaseCause::PeerClosed));
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
}

#[test]
fn a_reset_from_the_access_side_resets_the_core_side() {
    let mut b = bed(Faults::default(), 2);
    let (x, y) = up(&mut b, 43100);
    b.ue(x).abort();
    b.wait_for(Duration::from_secs(5), |b| {
        closed(b, T1).is_some()
            && b.host.sockets.get::<tcp::Socket>(y).state() == tcp::State::Closed
    });
    assert_eq!(closed(&b, T1), Some(ReleaseCause::PeerReset));
    b.wait_for(Duration::from_secs(5), |b| closed(b, T2).is_some());
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
}

#[test]
fn a_reset_from_the_core_side_resets_the_access_side() {
    let mut b = bed(Faults::default(), 3);
    let (x, y) = up(&mut b, 43200);
    b.ue(y).abort();
    b.wait_for(Duration::from_secs(5), |b| {
        closed(b, T2).is_some()
            && b.host.sockets.get::<tcp::Socket>(x).state() == tcp::State::Closed
    });
    assert_eq!(closed(&b, T2), Some(ReleaseCause::PeerReset));
}

#[test]
fn an_active_open_to_a_closed_port_is_refused() {
    let mut b = bed(Faults::default(), 4);
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 43300),
    });
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 9),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::ConnectFailed { .. }))
    });
    assert!(b.has(|e| *e
        == Event::ConnectFailed {
            key: T2,
            failure: ConnectFailure::Refused
        }));
}

#[test]
fn an_active_open_nobody_answers_times_out() {
    let mut b = bed(Faults::default(), 5);
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 43400),
    });
    let nobody = std::net::Ipv4Addr::new(198, 18, 250, 250);
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(nobody, 2855),
        },
        accept: Accept::Gate(nobody.into()),
        timers: LegTimers {
            connect: Duration::from_secs(3),
            idle: None,
            ..LegTimers::default()
        },
        tls: None,
        framing: Framing::Agnostic,
    });
    let start = b.now();
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::ConnectFailed { .. }))
    });
    assert!(b.has(|e| *e
        == Event::ConnectFailed {
            key: T2,
            failure: ConnectFailure::Timeout
        }));
    let took = b.now() - start;
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3100),
        "{took}"
    );
    // The leg is back to reserved and can be started again.
    let y = b.ue_listen(UE_Y, 2856, 4096);
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 2856),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Established { key, .. } if *key == T2))
    });
    assert_eq!(b.ue(y).state(), tcp::State::Established);
}

#[test]
fn the_gate_refuses_a_wrong_source_and_accepts_the_right_one() {
    let mut b = bed(Faults::default(), 6);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 43500),
    });
    start_gated(&mut b, T1);
    b.run_for(Duration::from_millis(2));
    let intruder = b.ue_connect(sa(NAT, 40000), sa(AGW_ACCESS, 43500), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(intruder).state() == tcp::State::Closed
    });
    assert!(b.worker.counters().gate_rejected >= 1);
    assert!(!b.has(|e| matches!(e, Event::Established { .. })));
    let x = b.ue_connect(sa(UE_X, 40001), sa(AGW_ACCESS, 43500), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Established { .. }))
    });
    assert_eq!(b.ue(x).state(), tcp::State::Established);
    // A passive leg takes exactly one connection: a second one is refused.
    let second = b.ue_connect(sa(UE_X, 40002), sa(AGW_ACCESS, 43500), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(second).state() == tcp::State::Closed
    });
}

#[test]
fn latching_accepts_a_natted_source_and_reports_it() {
    let mut b = bed(Faults::default(), 7);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 43600),
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.run_for(Duration::from_millis(2));
    b.ue_connect(sa(NAT, 61234), sa(AGW_ACCESS, 43600), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Latched { .. }))
    });
    assert!(b.has(|e| *e
        == Event::Latched {
            key: T1,
            remote: sa(NAT, 61234)
        }));
}

#[test]
fn a_slow_receiver_closes_the_window_instead_of_growing_memory() {
    let buf = 32 * 1024;
    let cfg = WorkerConfig {
        rx_buffer: buf,
        tx_buffer: buf,
        ..WorkerConfig::default()
    };
    let mut b = bed_with(Faults::default(), 8, cfg);
    let (x, y) = up(&mut b, 43700);
    // UE-Y stops reading; UE-X sends as fast as it can for a while.
    let payload = vec![0x5a; 8192];
    let mut accepted = 0usize;
    let start = b.now();
    b.run(Duration::from_secs(10), |b| {
        let n = b.ue(x).send_slice(&payload).unwrap_or(0);
        accepted += n;
        if b.now() - start > Duration::from_secs(2) {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    // What left UE-X is held by: T1's receive buffer, T2's send buffer, UE-Y's receive buffer
    // (64 KiB), and what is in UE-X's own send buffer (64 KiB). Nothing else grows.
    let bound = buf + buf + 64 * 1024 + 64 * 1024;
    assert!(
        accepted <= bound,
        "UE-X got {accepted} bytes accepted, bound {bound}"
    );
    assert!(accepted >= buf, "data did flow first ({accepted})");
    assert!(b.pool.in_use() < 256, "frames held: {}", b.pool.in_use());
    // UE-Y reads again and gets every byte.
    let mut got = Vec::new();
    let sent_total = accepted;
    b.run(Duration::from_secs(30), |b| {
        let n = read_all(b, y, &mut got);
        if got.len() == sent_total {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert!(got.iter().all(|c| *c == 0x5a));
}

#[test]
fn release_reports_statistics_and_frees_the_ports() {
    let mut b = bed(Faults::default(), 9);
    let (x, y) = up(&mut b, 43800);
    b.ue(x).send_slice(&[1u8; 1000]).unwrap();
    b.ue(y).send_slice(&[2u8; 300]).unwrap();
    let mut sink = Vec::new();
    b.run(Duration::from_secs(5), |b| {
        read_all(b, y, &mut sink);
        read_all(b, x, &mut sink);
        if sink.len() == 1300 {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    b.send(Command::Release { key: T1 });
    b.send(Command::Release { key: T2 });
    b.wait_for(Duration::from_secs(5), |b| {
        closed(b, T1).is_some() && closed(b, T2).is_some()
    });
    let stats = |key| {
        b.events.iter().find_map(|e| match e {
            Event::Closed {
                key: k,
                cause: ReleaseCause::Released,
                stats,
            } if *k == key => Some(*stats),
            _ => None,
        })
    };
    let (s1, s2) = (stats(T1).unwrap(), stats(T2).unwrap());
    assert_eq!((s1.octets_in, s1.octets_out), (1000, 300));
    assert_eq!((s2.octets_in, s2.octets_out), (300, 1000));
    assert_eq!(s1.remote, Some(sa(UE_X, 43800)));
    assert!(s1.packets_in > 0 && s1.packets_out > 0);
    b.wait_for(Duration::from_secs(10), |b| b.worker.legs() == 0);
    // The same ports can be reserved again.
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 43800),
    });
    b.run_for(Duration::from_millis(2));
    assert!(
        !b.has(|e| matches!(e, Event::Rejected { .. })),
        "{:?}",
        b.events
    );
    // And an unknown key is answered, not ignored.
    b.send(Command::Release {
        key: TerminationKey {
            context: 9,
            termination: 9,
        },
    });
    b.run_for(Duration::from_millis(2));
    assert!(b.has(|e| matches!(
        e,
        Event::Rejected {
            reason: Rejection::UnknownTermination,
            ..
        }
    )));
}

#[test]
fn an_idle_pair_is_released_after_its_idle_timer() {
    let mut b = bed(Faults::default(), 10);
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 43900),
    });
    b.send(Command::Reserve {
        key: T2,
        local: sa(AGW_CORE, 43900),
    });
    let y = b.ue_listen(UE_Y, 43900, 4096);
    let idle = LegTimers {
        connect: Duration::from_secs(5),
        idle: Some(Duration::from_secs(30)),
        ..LegTimers::default()
    };
    b.send(Command::Start {
        key: T2,
        role: LegRole::Active {
            remote: sa(UE_Y, 43900),
        },
        accept: Accept::Gate(UE_Y.into()),
        timers: idle,
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: idle,
        tls: None,
        framing: Framing::Agnostic,
    });
    b.send(Command::Join { a: T1, b: T2 });
    b.run_for(Duration::from_millis(5));
    let x = b.ue_connect(sa(UE_X, 43901), sa(AGW_ACCESS, 43900), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::CutThrough { .. }))
    });
    let t0 = b.now();
    b.wait_for(Duration::from_secs(40), |b| {
        closed(b, T1).is_some() || closed(b, T2).is_some()
    });
    assert!(b.now() - t0 >= Duration::from_secs(30));
    assert!(b.has(|e| matches!(
        e,
        Event::Closed {
            cause: ReleaseCause::IdleTimeout,
            ..
        }
    )));
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(x).state() == tcp::State::Closed
            && b.host.sockets.get::<tcp::Socket>(y).state() == tcp::State::Closed
    });
}

#[test]
fn a_segment_to_a_port_no_leg_owns_gets_a_reset() {
    let mut b = bed(Faults::default(), 11);
    let probe = b.ue_connect(sa(UE_X, 45000), sa(AGW_ACCESS, 45001), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(probe).state() == tcp::State::Closed
    });
    assert!(b.worker.counters().tcp_no_leg >= 1);
    // A reserved leg that has not been started refuses too.
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS, 45002),
    });
    b.run_for(Duration::from_millis(2));
    let early = b.ue_connect(sa(UE_X, 45003), sa(AGW_ACCESS, 45002), 4096);
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(early).state() == tcp::State::Closed
    });
    assert!(!b.has(|e| matches!(e, Event::Established { .. })));
}

#[test]
fn the_last_octets_wait_for_a_slow_receiver_after_both_ends_closed() {
    // UE-X sends more than T1 can pass on while UE-Y is not reading, and closes; then UE-Y
    // closes too. T1's connection with UE-X completes its close (UE-Y's FIN, forwarded, is
    // acknowledged) while UE-X's last octets still wait in T1 for T2's send buffer: they must
    // still reach UE-Y, then the FIN.
    let cfg = WorkerConfig {
        rx_buffer: 32 * 1024,
        tx_buffer: 32 * 1024,
        ..WorkerConfig::default()
    };
    let mut b = bed_with(Faults::default(), 31, cfg);
    let (x, y) = up(&mut b, 43800);
    // Fits UE-Y's receive buffer, T2's send buffer and T1's receive buffer, not fewer.
    let total = 110_000usize;
    let payload: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    b.run(Duration::from_secs(30), |b| {
        let s = b.ue(x);
        let mut n = 0;
        if sent < total {
            n = s.send_slice(&payload[sent..]).unwrap_or(0);
            sent += n;
            if sent == total {
                s.close();
            }
        }
        if sent == total && b.ue(x).state() == tcp::State::FinWait2 {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    b.ue(y).send_slice(b"bye").unwrap();
    b.ue(y).close();
    let mut got_x = Vec::new();
    b.run(Duration::from_secs(30), |b| {
        let n = read_all(b, x, &mut got_x);
        if matches!(b.ue(x).state(), tcp::State::TimeWait | tcp::State::Closed) {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(got_x, b"bye");
    b.run_for(Duration::from_millis(100));
    // Now UE-Y reads: everything, then the end.
    let mut got = Vec::new();
    b.run(Duration::from_secs(30), |b| {
        let n = read_all(b, y, &mut got);
        if !b.ue(y).may_recv() {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(got.len(), total, "octets lost before the FIN");
    assert!(got == payload);
}

/// A command the control thread pushed before a packet arrived is executed before that
/// packet. A worker descheduled for a while finds both waiting in its next poll; had it read
/// the port first, the UE's SYN would meet a leg still `Reserved` and be refused (found by
/// the soak on a loaded machine: a connection refused right after the Modify was answered).
#[test]
fn commands_queued_before_a_packet_are_executed_before_it() {
    let mut b = bed(Faults::default(), 41);
    // A first pair, so both sides know each other's MAC and the next SYN goes out at once.
    up(&mut b, 7000);
    b.send(Command::Reserve {
        key: T3,
        local: sa(AGW_ACCESS, 7001),
    });
    b.run_for(Duration::from_millis(2));
    // The worker does not poll from here: the Start is queued, then the SYN arrives.
    start_gated(&mut b, T3);
    let x = b.ue_connect(sa(UE_X, 7001), sa(AGW_ACCESS, 7001), 4096);
    let now = b.now();
    b.host.poll(now);
    while let Some(t) = b.worker.port().next_arrival() {
        if t <= b.now() {
            break;
        }
        b.clock.advance(t - b.now());
    }
    assert!(
        b.worker.port().next_arrival().is_some(),
        "the SYN is waiting"
    );
    let refused = b.worker.counters().gate_rejected;
    b.worker.poll(b.now());
    assert_eq!(b.worker.counters().gate_rejected, refused, "SYN refused");
    wait_established(&mut b, T3, x);
}

/// While the control thread does not read the worker's events (its ring full, then the
/// worker's own queue), the worker stops taking commands; a SYN for a leg whose Start waits
/// among them is dropped unanswered, not refused, and connects once the commands are taken
/// (thousands of calls released at once, new ones set up meanwhile).
#[test]
fn a_syn_for_a_start_held_behind_backed_up_events_is_not_refused() {
    let mut b = bed(Faults::default(), 43);
    // A first pair, so both sides know each other's MAC and the SYN goes out at once.
    up(&mut b, 7000);
    let unknown = TerminationKey {
        context: 99,
        termination: 99,
    };
    // Each Audit of an unknown termination is answered by an event nobody reads here.
    for _ in 0..3 {
        for _ in 0..1000 {
            b.send(Command::Audit { key: unknown });
        }
        let now = b.now();
        b.worker.poll(now);
    }
    assert!(
        !b.control.commands.is_empty(),
        "the worker stopped taking commands"
    );
    b.send(Command::Reserve {
        key: T3,
        local: sa(AGW_ACCESS, 7001),
    });
    start_gated(&mut b, T3);
    let x = b.ue_connect(sa(UE_X, 7001), sa(AGW_ACCESS, 7001), 4096);
    let (no_leg, refused) = (
        b.worker.counters().tcp_no_leg,
        b.worker.counters().gate_rejected,
    );
    for _ in 0..50 {
        let now = b.now();
        b.host.poll(now);
        b.worker.poll(now);
        b.clock.advance(Duration::from_millis(1));
    }
    assert_eq!(
        b.worker.counters().tcp_no_leg,
        no_leg,
        "SYN answered by RST"
    );
    assert_eq!(b.worker.counters().gate_rejected, refused, "SYN refused");
    assert_eq!(b.ue(x).state(), tcp::State::SynSent);
    assert!(b.worker.counters().held_for_commands > 0, "the SYN came");
    // The control thread reads events again (each step drains them): the commands are
    // taken, and the SYN sent again connects.
    wait_established(&mut b, T3, x);
}
