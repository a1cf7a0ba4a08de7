//! T.38 fax on MemLink: UDPTL relayed between a DTLS leg towards the UE (RFC 7345) and a
//! plain UDP leg towards the core, with dimpl UEs on the virtual clock. A fax page both ways
//! with loss during the handshake; the AGW as DTLS client; the failures (wrong fingerprint,
//! handshake timeout, garbage, wrong sources) each ending or touching only its own leg; a new
//! `a=tls-id` starting a new association; latching and the idle timeout.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use dataplane::contract::*;
use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity, TlsFailure};
use dataplane::worker::DTLS_1_2;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::IpEndpoint;
use testbed::memlink::Faults;
use testbed::{udptl_packets, DtlsPeer};

const UE_PORT: u16 = 5004;
const CORE_PORT: u16 = 6004;

fn ep(a: SocketAddr) -> IpEndpoint {
    IpEndpoint::from(a)
}

fn udp_socket(b: &mut Bed, at: SocketAddr) -> SocketHandle {
    let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 512], vec![0; 512 * 1024]);
    let mut s = udp::Socket::new(buf(), buf());
    s.bind(ep(at)).unwrap();
    b.host.sockets.add(s)
}

/// One datagram from a host socket.
fn send_from(b: &mut Bed, from: SocketHandle, data: &[u8], to: SocketAddr) {
    b.host
        .sockets
        .get_mut::<udp::Socket>(from)
        .send_slice(data, ep(to))
        .unwrap();
}

fn recv_all(b: &mut Bed, h: SocketHandle, into: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let s = b.host.sockets.get_mut::<udp::Socket>(h);
    while let Ok((d, meta)) = s.recv() {
        into.push((d.to_vec(), SocketAddr::from(meta.endpoint)));
    }
}

fn pump(ue: &mut DtlsPeer, b: &mut Bed) -> bool {
    let now = b.now();
    ue.pump(&mut b.host.sockets, now)
}

/// Starts (or updates) a UDP leg with no idle timer.
fn start_leg(
    b: &mut Bed,
    key: TerminationKey,
    remote: Option<SocketAddr>,
    accept: Accept,
    relatch: bool,
    dtls: Option<DtlsConfig>,
) {
    b.send(Command::StartDatagram {
        key,
        remote,
        accept,
        relatch,
        timers: no_idle(),
        dtls,
    });
}

fn no_idle() -> LegTimers {
    LegTimers {
        idle: None,
        handshake: Duration::from_secs(20),
        ..LegTimers::default()
    }
}

/// One fax call: T1 towards the UE (DTLS), T2 towards the core (plain UDPTL), each on its
/// own port of context `ctx`.
struct Call {
    t1: TerminationKey,
    t2: TerminationKey,
    access: SocketAddr,
    core: SocketAddr,
    ue: SocketAddr,
    far: SocketAddr,
}

impl Call {
    fn new(ctx: u32, port: u16) -> Call {
        Call {
            t1: TerminationKey {
                context: ctx,
                termination: 1,
            },
            t2: TerminationKey {
                context: ctx,
                termination: 2,
            },
            access: sa(AGW_ACCESS, port),
            core: sa(AGW_CORE, port + 2),
            ue: sa(UE_X, UE_PORT + ctx as u16 * 10),
            far: sa(UE_Y, CORE_PORT + ctx as u16 * 10),
        }
    }

    /// A call with UE-X (and T1) on IPv6, the core side on IPv4 (a bed from `bed_dual`).
    fn v6_to_v4(ctx: u32, port: u16) -> Call {
        Call {
            access: sa(AGW_ACCESS6, port),
            ue: sa(UE_X6, UE_PORT + ctx as u16 * 10),
            ..Call::new(ctx, port)
        }
    }

    /// Reserves both legs, starts them (T1 with `dtls`, accepting `accept`), joins them.
    fn start(&self, b: &mut Bed, dtls: Option<DtlsConfig>, accept: Accept, timers: LegTimers) {
        b.send(Command::ReserveDatagram {
            key: self.t1,
            local: self.access,
        });
        b.send(Command::ReserveDatagram {
            key: self.t2,
            local: self.core,
        });
        b.send(Command::StartDatagram {
            key: self.t2,
            remote: Some(self.far),
            accept: Accept::Gate(self.far.ip()),
            relatch: false,
            timers,
            dtls: None,
        });
        b.send(Command::StartDatagram {
            key: self.t1,
            remote: Some(self.ue),
            accept,
            relatch: false,
            timers,
            dtls,
        });
        b.send(Command::Join {
            a: self.t1,
            b: self.t2,
        });
    }
}

struct Ues {
    agw: Identity,
    ue: Identity,
}

fn identities() -> Ues {
    Ues {
        agw: Identity::generate("agw.example").unwrap(),
        ue: Identity::generate("ue.example").unwrap(),
    }
}

/// The UE's DTLS client (the UE's `a=setup:active`) and the AGW's server config pinning it.
fn ue_client(b: &mut Bed, ids: &Ues, call: &Call) -> (DtlsPeer, DtlsConfig) {
    let h = udp_socket(b, call.ue);
    let peer = DtlsPeer::new(
        (**ids.ue.dtls_certificate().unwrap()).clone(),
        true,
        h,
        ep(call.access),
        b.now(),
    );
    let cfg = DtlsConfig::new(
        &ids.agw,
        false,
        vec![ids.ue.fingerprint(HashAlg::Sha256)],
        Some("t38-1"),
    )
    .unwrap();
    (peer, cfg)
}

fn run_until(
    b: &mut Bed,
    ue: &mut DtlsPeer,
    limit: Duration,
    done: impl Fn(&Bed, &DtlsPeer) -> bool,
) {
    let end = b.now() + limit;
    loop {
        let mut busy = b.step();
        busy |= pump(ue, b);
        if done(b, ue) {
            return;
        }
        assert!(
            b.now() < end,
            "not done after {limit}; UE {:?}, events {:?}",
            ue.error,
            b.events
        );
        if !busy {
            b.idle();
        }
    }
}

fn stats_of(b: &Bed, key: TerminationKey) -> Option<LegStats> {
    b.events.iter().rev().find_map(|e| match e {
        Event::Closed { key: k, stats, .. } if *k == key => Some(*stats),
        _ => None,
    })
}

/// Sends a fax page both ways through a connected call and checks every datagram arrives
/// once, intact and in order.
fn fax_both_ways(b: &mut Bed, ue: &mut DtlsPeer, call: &Call, far: SocketHandle, count: u16) {
    let up = udptl_packets(1, count, |s| 50 + (s as usize * 37) % 80);
    let down = udptl_packets(2, count, |s| 50 + (s as usize * 53) % 80);
    assert!(up.iter().all(|p| (50..=400).contains(&p.len())));
    let mut at_far = Vec::new();
    let before = ue.received.len();
    let mut sent = 0;
    let end = b.now() + Duration::from_secs(60);
    // A page at ~100 packets/s each way, as a fax gateway sends it.
    while at_far.len() < up.len() || ue.received.len() - before < down.len() {
        if sent < up.len() {
            assert!(ue.send(&mut b.host.sockets, &up[sent]));
            let s = b.host.sockets.get_mut::<udp::Socket>(far);
            s.send_slice(&down[sent], ep(call.core)).unwrap();
            sent += 1;
        }
        let until = b.now() + Duration::from_millis(10);
        while b.now() < until {
            let busy = b.step() | pump(ue, b);
            recv_all(b, far, &mut at_far);
            if !busy {
                b.idle();
            }
        }
        assert!(
            b.now() < end,
            "fax not through: {} / {} up, {} / {} down; {:?}; UE {:?}",
            at_far.len(),
            up.len(),
            ue.received.len() - before,
            down.len(),
            b.worker.counters(),
            ue.error
        );
    }
    for (i, (d, from)) in at_far.iter().enumerate() {
        assert_eq!(d, &up[i], "datagram {i} towards the core");
        assert_eq!(*from, call.core);
    }
    assert_eq!(at_far.len(), up.len());
    assert_eq!(&ue.received[before..], &down[..]);
    // Nothing more arrives later (no duplicates).
    b.run_for(Duration::from_millis(200));
    pump(ue, b);
    recv_all(b, far, &mut at_far);
    assert_eq!(at_far.len(), up.len());
    assert_eq!(ue.received.len() - before, down.len());
}

#[test]
fn fax_page_both_ways_through_dtls_with_loss_in_the_handshake() {
    fax_page(bed(Faults::default(), 9), Call::new(1, 40000));
}

/// The same page with DTLS over IPv6 towards UE-X, the core leg on IPv4.
#[test]
fn fax_page_through_dtls_over_ipv6_to_an_ipv4_core_leg() {
    fax_page(
        bed_dual(Faults::default(), 10, Default::default()),
        Call::v6_to_v4(1, 40000),
    );
}

fn fax_page(mut b: Bed, call: Call) {
    let baseline = b.pool.in_use();
    let ids = identities();
    let (mut ue, cfg) = ue_client(&mut b, &ids, &call);
    let far = udp_socket(&mut b, call.far);
    // 5 % of the frames each way are lost while the handshake runs.
    let lossy = Faults {
        drop: 0.05,
        ..Faults::default()
    };
    b.worker.port().set_egress_faults(lossy.clone());
    b.host.device.port().set_egress_faults(lossy);
    call.start(&mut b, Some(cfg), Accept::Gate(call.ue.ip()), no_idle());
    run_until(&mut b, &mut ue, Duration::from_secs(30), |b, ue| {
        ue.connected
            && b.has(|e| matches!(e, Event::TlsEstablished { version, .. } if *version == DTLS_1_2))
    });
    let lost = b.worker.port().egress_stats().dropped + b.host.device.port().egress_stats().dropped;
    b.worker.port().set_egress_faults(Faults::default());
    b.host.device.port().set_egress_faults(Faults::default());
    // The UE saw the AGW's certificate, the one whose fingerprint goes in Local.
    assert!(ids
        .agw
        .fingerprint(HashAlg::Sha256)
        .matches(ue.peer_cert.as_deref().unwrap()));
    fax_both_ways(&mut b, &mut ue, &call, far, 300);
    assert!(b.has(|e| matches!(e, Event::CutThrough { .. })));
    let c = b.worker.counters();
    assert_eq!(c.datagrams_relayed, 600);
    assert_eq!(c.udp_dropped, 0);
    eprintln!("frames lost in the handshake: {lost}");

    b.send(Command::Release { key: call.t1 });
    b.send(Command::Release { key: call.t2 });
    b.run_for(Duration::from_millis(50));
    pump(&mut ue, &mut b);
    let s1 = stats_of(&b, call.t1).expect("T1 closed");
    let s2 = stats_of(&b, call.t2).expect("T2 closed");
    assert_eq!(s1.octets_in, s2.octets_out);
    assert_eq!(s2.octets_in, s1.octets_out);
    assert!(s1.established_at_ms.is_some());
    assert_eq!(b.worker.legs(), 0);
    // The release sent close_notify: the UE's dimpl reads it as the end.
    assert!(ue.dtls.is_closed() || ue.dtls.is_closing(), "{:?}", ue.dtls);
    b.run_for(Duration::from_millis(20));
    assert_eq!(b.pool.in_use(), baseline, "frame buffers back");
}

#[test]
fn agw_is_the_dtls_client_when_the_ue_is_passive() {
    let mut b = bed(Faults::default(), 3);
    let ids = identities();
    let call = Call::new(2, 40010);
    let h = udp_socket(&mut b, call.ue);
    let mut ue = DtlsPeer::new(
        (**ids.ue.dtls_certificate().unwrap()).clone(),
        false,
        h,
        ep(call.access),
        b.now(),
    );
    let far = udp_socket(&mut b, call.far);
    let cfg = DtlsConfig::new(
        &ids.agw,
        true,
        vec![ids.ue.fingerprint(HashAlg::Sha256)],
        None,
    )
    .unwrap();
    call.start(&mut b, Some(cfg), Accept::Gate(UE_X.into()), no_idle());
    run_until(&mut b, &mut ue, Duration::from_secs(10), |_, ue| {
        ue.connected
    });
    fax_both_ways(&mut b, &mut ue, &call, far, 100);
}

#[test]
fn wrong_fingerprint_fails_only_its_leg() {
    let mut b = bed(Faults::default(), 4);
    let ids = identities();
    let good = Call::new(3, 40020);
    let bad = Call::new(4, 40030);
    let (mut ue_good, cfg_good) = ue_client(&mut b, &ids, &good);
    let far = udp_socket(&mut b, good.far);
    good.start(&mut b, Some(cfg_good), Accept::Gate(UE_X.into()), no_idle());
    run_until(&mut b, &mut ue_good, Duration::from_secs(10), |_, ue| {
        ue.connected
    });

    // The bad UE presents a certificate other than the one its SDP announced.
    let impostor = Identity::generate("impostor").unwrap();
    let h = udp_socket(&mut b, bad.ue);
    let mut ue_bad = DtlsPeer::new(
        (**impostor.dtls_certificate().unwrap()).clone(),
        true,
        h,
        ep(bad.access),
        b.now(),
    );
    let cfg_bad = DtlsConfig::new(
        &ids.agw,
        false,
        vec![ids.ue.fingerprint(HashAlg::Sha256)],
        None,
    )
    .unwrap();
    bad.start(&mut b, Some(cfg_bad), Accept::Gate(UE_X.into()), no_idle());
    let key = bad.t1;
    let end = b.now() + Duration::from_secs(10);
    while !b.has(|e| matches!(e, Event::TlsFailed { key: k, .. } if *k == key)) {
        let busy = b.step() | pump(&mut ue_bad, &mut b) | pump(&mut ue_good, &mut b);
        if !busy {
            b.idle();
        }
        assert!(b.now() < end, "{:?}", b.events);
    }
    assert!(b.has(|e| *e
        == Event::TlsFailed {
            key,
            failure: TlsFailure::Fingerprint
        }));
    assert!(b.has(
        |e| matches!(e, Event::Closed { key: k, cause: ReleaseCause::TlsFailed, .. } if *k == key)
    ));
    assert!(!ue_bad.connected);
    // The good call is untouched.
    fax_both_ways(&mut b, &mut ue_good, &good, far, 50);
    // The failed leg is gone, its partner stays until the ALG releases it.
    assert_eq!(b.worker.legs(), 3);
}

#[test]
fn handshake_timeout_is_reported() {
    let mut b = bed(Faults::default(), 5);
    let ids = identities();
    let call = Call::new(5, 40040);
    let cfg = DtlsConfig::new(
        &ids.agw,
        true,
        vec![ids.ue.fingerprint(HashAlg::Sha256)],
        None,
    )
    .unwrap();
    // The AGW is the client; the UE never answers (no socket there: ICMP only).
    let timers = LegTimers {
        handshake: Duration::from_secs(5),
        ..no_idle()
    };
    call.start(&mut b, Some(cfg), Accept::Gate(UE_X.into()), timers);
    let start = b.now();
    b.wait_for(Duration::from_secs(10), |b| {
        b.has(|e| matches!(e, Event::TlsFailed { .. }))
    });
    assert!(b.has(|e| *e
        == Event::TlsFailed {
            key: call.t1,
            failure: TlsFailure::Timeout
        }));
    let took = b.now() - start;
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_millis(5100),
        "{took}"
    );
    // The ClientHello was retransmitted on the worker's clock before giving up.
    let sent = b.worker.port().egress_stats().sent;
    assert!(sent >= 3, "{sent} frames");
}

#[test]
fn garbage_before_and_after_the_handshake_is_dropped() {
    let mut b = bed(Faults::default(), 6);
    let ids = identities();
    let call = Call::new(6, 40050);
    let (mut ue, cfg) = ue_client(&mut b, &ids, &call);
    let far = udp_socket(&mut b, call.far);
    call.start(&mut b, Some(cfg), Accept::Gate(UE_X.into()), no_idle());
    b.run_for(Duration::from_millis(5));
    // From the UE's own address and port: not DTLS, a fake handshake record, a record of
    // an epoch that does not exist.
    let garbage: Vec<Vec<u8>> = vec![
        b"RTP? no".to_vec(),
        vec![
            0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5,
        ],
        vec![0x17, 0xfe, 0xfd, 0, 7, 0, 0, 0, 0, 0, 9, 0, 3, 1, 2, 3],
        vec![0; 1400],
    ];
    let ue_handle = ue.handle;
    let send_garbage = |b: &mut Bed| {
        let s = b.host.sockets.get_mut::<udp::Socket>(ue_handle);
        for g in &garbage {
            s.send_slice(g, ep(call.access)).unwrap();
        }
    };
    send_garbage(&mut b);
    run_until(&mut b, &mut ue, Duration::from_secs(10), |_, ue| {
        ue.connected
    });
    send_garbage(&mut b);
    b.run_for(Duration::from_millis(20));
    let mut at_far = Vec::new();
    recv_all(&mut b, far, &mut at_far);
    assert!(at_far.is_empty(), "garbage relayed: {at_far:?}");
    assert!(!b.has(|e| matches!(e, Event::TlsFailed { .. } | Event::Closed { .. })));
    fax_both_ways(&mut b, &mut ue, &call, far, 50);
}

#[test]
fn gate_drops_other_sources_and_latching_follows_the_first() {
    let mut b = bed(Faults::default(), 7);
    // Plain UDPTL both sides: T1 latches (UE behind NAT, Remote unknown), T2 gated.
    let call = Call::new(7, 40060);
    b.send(Command::ReserveDatagram {
        key: call.t1,
        local: call.access,
    });
    b.send(Command::ReserveDatagram {
        key: call.t2,
        local: call.core,
    });
    start_leg(
        &mut b,
        call.t2,
        Some(call.far),
        Accept::Gate(call.far.ip()),
        false,
        None,
    );
    start_leg(&mut b, call.t1, None, Accept::Latch, false, None);
    b.send(Command::Join {
        a: call.t1,
        b: call.t2,
    });
    let nat = udp_socket(&mut b, sa(NAT, 7777));
    let intruder = udp_socket(&mut b, sa(NAT, 8888));
    let far = udp_socket(&mut b, call.far);
    let far_spoof = udp_socket(&mut b, sa(UE_X, 9999));
    b.run_for(Duration::from_millis(5));
    // The core side before anything latched: nowhere to send it. (The waits cover the
    // host's one ARP request per second.)
    send_from(&mut b, far, b"early", call.core);
    b.run_for(Duration::from_millis(1100));
    send_from(&mut b, nat, b"first", call.access);
    b.run_for(Duration::from_millis(1100));
    send_from(&mut b, intruder, b"second source", call.access);
    send_from(&mut b, far_spoof, b"not the core", call.core);
    send_from(&mut b, far, b"reply", call.core);
    b.run_for(Duration::from_millis(1100));
    assert!(
        b.has(|e| *e
            == Event::Latched {
                key: call.t1,
                remote: sa(NAT, 7777)
            }),
        "{:?} {:?}",
        b.events,
        b.worker.counters()
    );
    let mut got = Vec::new();
    recv_all(&mut b, far, &mut got);
    assert_eq!(
        got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
        vec![b"first".to_vec()]
    );
    let mut back = Vec::new();
    recv_all(&mut b, nat, &mut back);
    assert_eq!(
        back.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
        vec![b"reply".to_vec()]
    );
    let mut none = Vec::new();
    recv_all(&mut b, intruder, &mut none);
    assert!(none.is_empty());
    let c = b.worker.counters();
    assert_eq!(c.udp_gate_dropped, 2, "{c:?}");
    assert_eq!(c.udp_dropped, 1, "{c:?}");

    // With relatching, a new source (NAT rebinding) takes over.
    start_leg(&mut b, call.t1, None, Accept::Latch, true, None);
    send_from(&mut b, intruder, b"rebound", call.access);
    b.run_for(Duration::from_millis(5));
    send_from(&mut b, far, b"to the new one", call.core);
    b.run_for(Duration::from_millis(5));
    recv_all(&mut b, intruder, &mut none);
    assert_eq!(
        none.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
        vec![b"to the new one".to_vec()]
    );
}

#[test]
fn idle_legs_end_and_report() {
    let mut b = bed(Faults::default(), 8);
    let call = Call::new(8, 40070);
    let timers = LegTimers {
        idle: Some(Duration::from_secs(3)),
        ..no_idle()
    };
    call.start(&mut b, None, Accept::Gate(UE_X.into()), timers);
    let ue = udp_socket(&mut b, call.ue);
    b.run_for(Duration::from_secs(2));
    send_from(&mut b, ue, b"page", call.access);
    b.run_for(Duration::from_secs(2));
    // T2 heard nothing itself but carried the datagram: both were active 2 s ago.
    assert!(!b.has(|e| matches!(e, Event::Closed { .. })));
    b.run_for(Duration::from_millis(3100));
    for key in [call.t1, call.t2] {
        assert!(b.has(|e| matches!(e, Event::Closed { key: k, cause: ReleaseCause::IdleTimeout, .. } if *k == key)));
    }
    assert_eq!(b.worker.legs(), 0);
}

#[test]
fn a_new_tls_id_is_a_new_association() {
    let mut b = bed(Faults::default(), 10);
    let ids = identities();
    let call = Call::new(9, 40080);
    let (mut ue, cfg) = ue_client(&mut b, &ids, &call);
    let far = udp_socket(&mut b, call.far);
    call.start(
        &mut b,
        Some(cfg.clone()),
        Accept::Gate(UE_X.into()),
        no_idle(),
    );
    run_until(&mut b, &mut ue, Duration::from_secs(10), |_, ue| {
        ue.connected
    });
    fax_both_ways(&mut b, &mut ue, &call, far, 20);
    // The same tls-id again (a re-INVITE keeping the association): nothing restarts.
    start_leg(
        &mut b,
        call.t1,
        Some(call.ue),
        Accept::Gate(UE_X.into()),
        false,
        Some(cfg.clone()),
    );
    b.run_for(Duration::from_millis(10));
    fax_both_ways(&mut b, &mut ue, &call, far, 20);
    let established = |b: &Bed| {
        b.events
            .iter()
            .filter(|e| matches!(e, Event::TlsEstablished { .. }))
            .count()
    };
    assert_eq!(established(&b), 1);
    // A new tls-id: the UE starts a new handshake (same port, new client).
    let next = DtlsConfig::new(
        &ids.agw,
        false,
        vec![ids.ue.fingerprint(HashAlg::Sha256)],
        Some("t38-2"),
    )
    .unwrap();
    start_leg(
        &mut b,
        call.t1,
        Some(call.ue),
        Accept::Gate(UE_X.into()),
        false,
        Some(next),
    );
    b.run_for(Duration::from_millis(5));
    let mut ue2 = DtlsPeer::new(
        (**ids.ue.dtls_certificate().unwrap()).clone(),
        true,
        ue.handle,
        ep(call.access),
        b.now(),
    );
    run_until(&mut b, &mut ue2, Duration::from_secs(10), |_, ue| {
        ue.connected
    });
    assert_eq!(established(&b), 2);
    fax_both_ways(&mut b, &mut ue2, &call, far, 20);
}

#[test]
fn udp_and_tcp_legs_do_not_mix() {
    let mut b = bed(Faults::default(), 11);
    let t1 = TerminationKey {
        context: 20,
        termination: 1,
    };
    let t2 = TerminationKey {
        context: 20,
        termination: 2,
    };
    b.send(Command::ReserveDatagram {
        key: t1,
        local: sa(AGW_ACCESS, 41000),
    });
    b.send(Command::Reserve {
        key: t2,
        local: sa(AGW_CORE, 41000),
    });
    b.send(Command::Join { a: t1, b: t2 });
    start_leg(&mut b, t2, None, Accept::Latch, false, None);
    b.send(Command::ReserveDatagram {
        key: TerminationKey {
            context: 21,
            termination: 1,
        },
        local: sa(AGW_ACCESS, 41000),
    });
    b.run_for(Duration::from_millis(5));
    assert!(b.has(|e| *e
        == Event::Rejected {
            key: t2,
            reason: Rejection::NotStarted
        }));
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(
                e,
                Event::Rejected {
                    reason: Rejection::NotStarted,
                    ..
                }
            ))
            .count(),
        2
    );
    assert!(b.has(|e| matches!(
        e,
        Event::Rejected {
            reason: Rejection::AddressInUse,
            ..
        }
    )));
    // A TCP SYN to the UDP leg's port is refused like any port without a TCP leg.
    let ue = b.ue_connect(sa(UE_X, 1234), sa(AGW_ACCESS, 41000), 4096);
    b.run_for(Duration::from_millis(50));
    assert_eq!(b.ue(ue).state(), smoltcp::socket::tcp::State::Closed);
    let _ = Ipv4Addr::UNSPECIFIED;
}

/// Random datagrams (and DTLS-looking ones: every content type, both versions, epochs 0 and
/// 1, random sequence numbers and lengths), spoofed from the UE's own address and port so
/// the gate lets them through, interleaved with a fax page; then a second, complete
/// ClientHello from that address. The association survives all of it and nothing but the
/// page is relayed.
#[test]
fn random_and_dtls_shaped_datagrams_from_the_ues_address_do_not_hurt_the_association() {
    use testbed::rng::SplitMix64;
    let mut b = bed(Faults::default(), 12);
    let ids = identities();
    let call = Call::new(12, 40090);
    let (mut ue, cfg) = ue_client(&mut b, &ids, &call);
    let far = udp_socket(&mut b, call.far);
    call.start(&mut b, Some(cfg), Accept::Gate(UE_X.into()), no_idle());
    run_until(&mut b, &mut ue, Duration::from_secs(10), |_, ue| {
        ue.connected
    });
    let mut rng = SplitMix64::new(0xfa7);
    let hostile = |rng: &mut SplitMix64| -> Vec<u8> {
        let len = (rng.next_u64() % 1400) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if rng.next_u64().is_multiple_of(2) && d.len() >= 13 {
            d[0] = 20 + (rng.next_u64() % 6) as u8;
            d[1] = 0xfe;
            d[2] = if rng.next_u64().is_multiple_of(2) {
                0xfd
            } else {
                0xff
            };
            d[3] = 0;
            d[4] = (rng.next_u64() % 2) as u8;
            let body = if rng.next_u64().is_multiple_of(2) {
                (d.len() - 13) as u16
            } else {
                rng.next_u64() as u16
            };
            d[11..13].copy_from_slice(&body.to_be_bytes());
        }
        d
    };
    let up = udptl_packets(5, 100, |s| 50 + (s as usize * 37) % 80);
    let mut at_far = Vec::new();
    for p in &up {
        for _ in 0..100 {
            let g = hostile(&mut rng);
            let _ = b
                .host
                .sockets
                .get_mut::<udp::Socket>(ue.handle)
                .send_slice(&g, ep(call.access));
        }
        assert!(ue.send(&mut b.host.sockets, p));
        let until = b.now() + Duration::from_millis(10);
        while b.now() < until {
            let busy = b.step() | pump(&mut ue, &mut b);
            recv_all(&mut b, far, &mut at_far);
            if !busy {
                b.idle();
            }
        }
    }
    b.run_for(Duration::from_millis(100));
    recv_all(&mut b, far, &mut at_far);
    let got: Vec<Vec<u8>> = at_far.into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, up, "only the page is relayed, whole and in order");
    assert!(!b.has(|e| matches!(e, Event::TlsFailed { .. } | Event::Closed { .. })));

    // A complete new ClientHello from the UE's address to the established association.
    let mut intruder = DtlsPeer::new(
        (**Identity::generate("intruder")
            .unwrap()
            .dtls_certificate()
            .unwrap())
        .clone(),
        true,
        ue.handle,
        ep(call.access),
        b.now(),
    );
    for _ in 0..50 {
        let now = b.now();
        intruder.pump(&mut b.host.sockets, now);
        b.step();
        b.idle();
    }
    assert!(!intruder.connected);
    // The UE's own peer may have read the AGW's answers to the intruder; it keeps going.
    fax_both_ways(&mut b, &mut ue, &call, far, 20);
    assert!(
        !b.has(|e| matches!(e, Event::TlsFailed { .. } | Event::Closed { .. })),
        "{:?}",
        b.events
    );
}

#[test]
fn a_gated_leg_keeps_sending_to_its_remote_port() {
    let mut b = bed(Faults::default(), 13);
    let call = Call::new(13, 40100);
    call.start(&mut b, None, Accept::Gate(UE_X.into()), no_idle());
    let ue = udp_socket(&mut b, call.ue);
    let other_port = udp_socket(&mut b, sa(UE_X, 7070));
    let far = udp_socket(&mut b, call.far);
    b.run_for(Duration::from_millis(5));
    // From the gated address but another port: taken (the gate is by address) ...
    send_from(&mut b, other_port, b"from another port", call.access);
    b.run_for(Duration::from_millis(1100));
    send_from(&mut b, far, b"answer", call.core);
    b.run_for(Duration::from_millis(1100));
    let mut got = Vec::new();
    recv_all(&mut b, far, &mut got);
    assert_eq!(got.len(), 1);
    // ... but the answer goes to the Remote port, and nothing latched.
    let mut at_remote = Vec::new();
    recv_all(&mut b, ue, &mut at_remote);
    assert_eq!(
        at_remote.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
        vec![b"answer".to_vec()]
    );
    let mut at_other = Vec::new();
    recv_all(&mut b, other_port, &mut at_other);
    assert!(at_other.is_empty());
    assert!(!b.has(|e| matches!(e, Event::Latched { .. })));
}
