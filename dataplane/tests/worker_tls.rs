//! TLS at the access edge on MemLink: rustls UEs as TLS client and as TLS server, TLS 1.2 and
//! 1.3, through TLS <-> TCP and TLS <-> TLS pairs, byte-exact with loss; and the failures
//! (wrong fingerprint, no client certificate, garbage instead of a ClientHello, handshake
//! timeout), each ending only its own leg while a good pair beside it keeps moving data.

mod common;

use std::sync::Arc;

use common::*;
use dataplane::contract::*;
use dataplane::tls::{Fingerprint, HashAlg, Identity, TlsConfig, TlsFailure, TlsSession};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use testbed::memlink::Faults;
use testbed::{PatternChecker, PatternSender};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One end of a byte stream as the UE's application sees it: plain TCP or TLS over it.
struct UeEnd {
    tls: Option<TlsSession>,
    send: PatternSender,
    check: PatternChecker,
}

impl UeEnd {
    fn plain(out: u64, total: u64, inp: u64) -> Self {
        UeEnd {
            tls: None,
            send: PatternSender::new(out, total),
            check: PatternChecker::new(inp),
        }
    }

    fn tls(cfg: &TlsConfig, out: u64, total: u64, inp: u64) -> Self {
        UeEnd {
            tls: Some(TlsSession::new(cfg).unwrap()),
            ..Self::plain(out, total, inp)
        }
    }

    /// Moves what it can both ways; returns whether anything moved.
    fn pump(&mut self, s: &mut tcp::Socket<'static>) -> bool {
        let Some(tls) = self.tls.as_mut() else {
            let a = self.send.pump(s);
            let b = self.check.pump(s);
            return a + b > 0;
        };
        if !s.is_active() {
            return false;
        }
        let mut moved = false;
        if s.state() == tcp::State::Established || s.state() == tcp::State::CloseWait {
            moved |= self.check.pump_tls(tls, s).expect("UE's TLS") > 0;
            tls.receive(s).expect("UE's TLS");
            moved |= self.send.pump_tls(tls, s) > 0;
            moved |= tls.transmit(s) > 0;
        }
        moved
    }

    fn done(&self, total: u64) -> bool {
        self.send.sent == self.send.total && self.check.received == total
    }
}

fn ue_identity() -> Identity {
    Identity::generate("ue.example").unwrap()
}

/// The AGW's TLS for a leg, and the UE's matching config.
struct Keys {
    agw: Identity,
    ue: Identity,
}

impl Keys {
    fn new() -> Self {
        Keys {
            agw: Identity::generate("agw.example").unwrap(),
            ue: ue_identity(),
        }
    }

    fn agw_server(&self) -> TlsConfig {
        TlsConfig::new(&self.agw, None, vec![self.ue.fingerprint(HashAlg::Sha256)]).unwrap()
    }

    fn agw_client(&self, ue: impl Into<std::net::IpAddr>) -> TlsConfig {
        TlsConfig::new(
            &self.agw,
            Some(ue.into()),
            vec![self.ue.fingerprint(HashAlg::Sha384)],
        )
        .unwrap()
    }

    fn ue_client(&self, v12: bool) -> TlsConfig {
        self.ue_client_of(AGW_ACCESS.into(), v12)
    }

    /// The UE's client config towards the AGW's access address `agw`.
    fn ue_client_of(&self, agw: std::net::IpAddr, v12: bool) -> TlsConfig {
        ue_config(
            &self.ue,
            Some(agw),
            self.agw.fingerprint(HashAlg::Sha256),
            v12,
        )
    }

    fn ue_server(&self, v12: bool) -> TlsConfig {
        ue_config(&self.ue, None, self.agw.fingerprint(HashAlg::Sha1), v12)
    }
}

/// A UE's TLS: pinned to the AGW's fingerprint; TLS 1.2 only when asked.
fn ue_config(
    id: &Identity,
    server: Option<std::net::IpAddr>,
    agw: Fingerprint,
    v12: bool,
) -> TlsConfig {
    let versions: &[&rustls::SupportedProtocolVersion] = if v12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    TlsConfig::with_versions(id, server, vec![agw], versions).unwrap()
}

const PORT: u16 = 41000;

/// Sets up the pair: T1 towards UE-X (TLS per `t1_tls`, role per `x_connects`), T2 towards
/// UE-Y (TLS per `t2_tls`, AGW connects). Returns the UE sockets.
fn pair(
    b: &mut Bed,
    port: u16,
    t1: TerminationKey,
    t2: TerminationKey,
    x_connects: bool,
    t1_tls: Option<TlsConfig>,
    t2_tls: Option<TlsConfig>,
) -> (SocketHandle, SocketHandle) {
    pair_at(b, V4_V4, port, t1, t2, x_connects, t1_tls, t2_tls)
}

/// [`pair`] on the addresses `at`.
#[allow(clippy::too_many_arguments)]
fn pair_at(
    b: &mut Bed,
    at: PairAddrs,
    port: u16,
    t1: TerminationKey,
    t2: TerminationKey,
    x_connects: bool,
    t1_tls: Option<TlsConfig>,
    t2_tls: Option<TlsConfig>,
) -> (SocketHandle, SocketHandle) {
    let buf = 64 * 1024;
    b.send(Command::Reserve {
        key: t1,
        local: sa(at.access, port),
    });
    b.send(Command::Reserve {
        key: t2,
        local: sa(at.core, port),
    });
    let y = b.ue_listen(at.ue_y, port, buf);
    b.send(Command::Start {
        key: t2,
        role: LegRole::Active {
            remote: sa(at.ue_y, port),
        },
        accept: Accept::Gate(at.ue_y),
        timers: timers(),
        tls: t2_tls,
        framing: Framing::Agnostic,
    });
    let x = if x_connects {
        b.send(Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(at.ue_x),
            timers: timers(),
            tls: t1_tls,
            framing: Framing::Agnostic,
        });
        b.send(Command::Join { a: t1, b: t2 });
        b.run_for(Duration::from_millis(5));
        b.ue_connect(sa(at.ue_x, port), sa(at.access, port), buf)
    } else {
        let x = b.ue_listen(at.ue_x, port, buf);
        b.send(Command::Start {
            key: t1,
            role: LegRole::Active {
                remote: sa(at.ue_x, port),
            },
            accept: Accept::Gate(at.ue_x),
            timers: timers(),
            tls: t1_tls,
            framing: Framing::Agnostic,
        });
        b.send(Command::Join { a: t1, b: t2 });
        x
    };
    (x, y)
}

fn lossy() -> Faults {
    Faults {
        drop: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_millis(2),
        ..Faults::default()
    }
}

/// Runs both UE ends until each has sent and received `total` bytes.
fn exchange(b: &mut Bed, x: &mut (SocketHandle, UeEnd), y: &mut (SocketHandle, UeEnd), total: u64) {
    b.run(Duration::from_secs(600), |b| {
        let mx = x.1.pump(b.ue(x.0));
        let my = y.1.pump(b.ue(y.0));
        if x.1.done(total) && y.1.done(total) {
            Progress::Done
        } else if mx || my {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(x.1.check.first_mismatch, None);
    assert_eq!(y.1.check.first_mismatch, None);
}

fn tls_version(b: &Bed, key: TerminationKey) -> u16 {
    b.events
        .iter()
        .find_map(|e| match e {
            Event::TlsEstablished { key: k, version } if *k == key => Some(*version),
            _ => None,
        })
        .expect("TLS established")
}

fn run_case(ue_is_client: bool, v12: bool, tls_both: bool, total: u64, seed: u64) {
    let keys = Keys::new();
    let y_keys = Keys::new();
    let mut b = bed(lossy(), seed);
    let agw_t1 = if ue_is_client {
        keys.agw_server()
    } else {
        keys.agw_client(UE_X)
    };
    let agw_t2 = tls_both.then(|| y_keys.agw_client(UE_Y));
    let (x, y) = pair(&mut b, PORT, T1, T2, ue_is_client, Some(agw_t1), agw_t2);
    let ue_x_cfg = if ue_is_client {
        keys.ue_client(v12)
    } else {
        keys.ue_server(v12)
    };
    let mut ex = (x, UeEnd::tls(&ue_x_cfg, 1, total, 2));
    let mut ey = if tls_both {
        (y, UeEnd::tls(&y_keys.ue_server(v12), 2, total, 1))
    } else {
        (y, UeEnd::plain(2, total, 1))
    };
    exchange(&mut b, &mut ex, &mut ey, total);
    let want = if v12 { 0x0303 } else { 0x0304 };
    assert_eq!(tls_version(&b, T1), want);
    if tls_both {
        assert_eq!(tls_version(&b, T2), want);
    }
    assert!(b.has(|e| matches!(e, Event::CutThrough { .. })));
    // Statistics count payload (plaintext), not TLS records.
    b.send(Command::Audit { key: T1 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.has(|e| matches!(e, Event::Stats { key, .. } if *key == T1))
    });
    let stats = b
        .events
        .iter()
        .find_map(|e| match e {
            Event::Stats { key, stats } if *key == T1 => Some(*stats),
            _ => None,
        })
        .unwrap();
    assert_eq!((stats.octets_in, stats.octets_out), (total, total));
}

const BIG: u64 = 50 * 1000 * 1000;

#[test]
fn tls13_ue_client_to_plain_tcp_50_mb_each_way_with_loss() {
    run_case(true, false, false, BIG, 11);
}

#[test]
fn tls12_ue_server_to_plain_tcp_with_loss() {
    run_case(false, true, false, 5 * 1000 * 1000, 12);
}

#[test]
fn tls13_to_tls13_50_mb_each_way_with_loss() {
    run_case(true, false, true, BIG, 13);
}

/// Issue acceptance: UE-X on IPv6 in the access network with TLS towards it, UE-Y on IPv4
/// in the core network, 100 MB each way through 1 % loss and reordering.
#[test]
fn tls13_ipv6_ue_to_ipv4_plain_tcp_100_mb_each_way_with_loss() {
    let total = 100 * 1000 * 1000;
    let keys = Keys::new();
    let mut b = bed_dual(lossy(), 16, dataplane::worker::WorkerConfig::default());
    let (x, y) = pair_at(
        &mut b,
        V6_V4,
        PORT,
        T1,
        T2,
        true,
        Some(keys.agw_server()),
        None,
    );
    let mut ex = (
        x,
        UeEnd::tls(&keys.ue_client_of(AGW_ACCESS6.into(), false), 1, total, 2),
    );
    let mut ey = (y, UeEnd::plain(2, total, 1));
    exchange(&mut b, &mut ex, &mut ey, total);
    assert_eq!(tls_version(&b, T1), 0x0304);
    assert!(b.has(|e| matches!(e, Event::Established { key, remote } if *key == T1 && remote.ip() == std::net::IpAddr::from(UE_X6))));
    assert!(b.has(|e| matches!(e, Event::Established { key, remote } if *key == T2 && remote.ip() == std::net::IpAddr::from(UE_Y))));
    let st = b.worker.port().egress_stats();
    assert!(
        st.dropped > 100 && st.reordered > 100,
        "faults were injected: {st:?}"
    );
}

#[test]
fn tls12_ue_client_and_tls12_to_tls12() {
    run_case(true, true, false, 2 * 1000 * 1000, 14);
    run_case(false, true, true, 2 * 1000 * 1000, 15);
}

#[test]
fn close_notify_becomes_fin_and_fin_becomes_close_notify() {
    let keys = Keys::new();
    let mut b = bed(Faults::default(), 21);
    let (x, y) = pair(&mut b, PORT, T1, T2, true, Some(keys.agw_server()), None);
    let mut ex = (x, UeEnd::tls(&keys.ue_client(false), 1, 10_000, 2));
    let mut ey = (y, UeEnd::plain(2, 10_000, 1));
    exchange(&mut b, &mut ex, &mut ey, 10_000);
    // UE-X closes TLS: UE-Y sees FIN after every byte.
    ex.1.tls.as_mut().unwrap().close();
    b.run(Duration::from_secs(10), |b| {
        ex.1.tls.as_mut().unwrap().transmit(b.ue(ex.0));
        ey.1.pump(b.ue(ey.0));
        if !b.ue(ey.0).may_recv() {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    // UE-Y closes TCP: UE-X gets close_notify.
    b.ue(ey.0).close();
    b.run(Duration::from_secs(10), |b| {
        let s = b.ue(ex.0);
        let tls = ex.1.tls.as_mut().unwrap();
        let _ = tls.receive(s);
        if tls.peer_done() {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
}

/// A good proxied pair on another port that must keep moving data while a bad one fails.
struct Bystander {
    x: SocketHandle,
    y: SocketHandle,
    sx: PatternSender,
    sy: PatternSender,
    rx: PatternChecker,
    ry: PatternChecker,
}

const G1: TerminationKey = TerminationKey {
    context: 9,
    termination: 91,
};
const G2: TerminationKey = TerminationKey {
    context: 9,
    termination: 92,
};

impl Bystander {
    fn new(b: &mut Bed) -> Self {
        let (x, y) = pair(b, 42000, G1, G2, true, None, None);
        Bystander {
            x,
            y,
            sx: PatternSender::new(7, u64::MAX),
            sy: PatternSender::new(8, u64::MAX),
            rx: PatternChecker::new(8),
            ry: PatternChecker::new(7),
        }
    }

    /// Moves what it can; whether anything moved.
    fn pump(&mut self, b: &mut Bed) -> bool {
        let s = b.ue(self.x);
        let mut n = self.sx.pump(s) + self.rx.pump(s);
        let s = b.ue(self.y);
        n += self.sy.pump(s) + self.ry.pump(s);
        n > 0
    }

    fn check(&self, before: (u64, u64)) {
        assert!(
            self.rx.received > before.0 && self.ry.received > before.1,
            "bystander stalled"
        );
        assert_eq!(
            (self.rx.first_mismatch, self.ry.first_mismatch),
            (None, None)
        );
    }
}

/// Runs a failing TLS leg next to a bystander until the failure is reported; checks the
/// failure, the alert or reset towards the UE, and that the bystander kept going.
fn failing_case(
    seed: u64,
    agw_tls: impl FnOnce(&Keys) -> TlsConfig,
    mut ue: impl FnMut(&mut tcp::Socket<'static>, &mut Option<TlsSession>) -> bool,
    ue_tls: Option<TlsConfig>,
    want: TlsFailure,
) -> Vec<u8> {
    let keys = Keys::new();
    // A paced link: the bystander's traffic takes virtual time, so timers run.
    let paced = Faults {
        rate_bytes_per_sec: Some(20_000_000),
        ..Faults::default()
    };
    let mut b = bed(paced, seed);
    let mut g = Bystander::new(&mut b);
    b.run(Duration::from_secs(5), |b| {
        let moved = g.pump(b);
        if g.rx.received > 100_000 {
            Progress::Done
        } else if moved {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    let before = (g.rx.received, g.ry.received);
    let (x, _y) = pair(&mut b, PORT, T1, T2, true, Some(agw_tls(&keys)), None);
    let mut session = ue_tls.map(|c| TlsSession::new(&c).unwrap());
    let mut from_agw = Vec::new();
    b.run(Duration::from_secs(30), |b| {
        // The bystander is served but does not keep the clock from moving.
        g.pump(b);
        let s = b.ue(x);
        ue(s, &mut session);
        if session.is_none() {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.recv_slice(&mut buf) {
                if n == 0 {
                    break;
                }
                from_agw.extend_from_slice(&buf[..n]);
            }
        }
        if b.has(|e| matches!(e, Event::TlsFailed { .. })) {
            Progress::Done
        } else {
            Progress::Idle
        }
    });
    let failure = b
        .events
        .iter()
        .find_map(|e| match e {
            Event::TlsFailed { key, failure } if *key == T1 => Some(*failure),
            _ => None,
        })
        .unwrap();
    assert_eq!(failure, want);
    b.wait_for(Duration::from_secs(5), |b| {
        b.has(|e| matches!(e, Event::Closed { key, cause: ReleaseCause::TlsFailed, .. } if *key == T1))
    });
    // What the AGW sent before its FIN (an alert, for a raw UE).
    if session.is_none() {
        b.run(Duration::from_secs(5), |b| {
            let s = b.ue(x);
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.recv_slice(&mut buf) {
                if n == 0 {
                    break;
                }
                from_agw.extend_from_slice(&buf[..n]);
            }
            if s.may_recv() {
                Progress::Idle
            } else {
                Progress::Done
            }
        });
    }
    // The leg is gone; the bystander is untouched and still moving.
    let mid = (g.rx.received, g.ry.received);
    b.run(Duration::from_secs(5), |b| {
        let moved = g.pump(b);
        if g.rx.received > mid.0 + 100_000 && g.ry.received > mid.1 + 100_000 {
            Progress::Done
        } else if moved {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    g.check(before);
    assert!(!b.has(|e| matches!(e, Event::Closed { key, .. } if *key == G1 || *key == G2)));
    from_agw
}

fn drive(s: &mut tcp::Socket<'static>, tls: &mut Option<TlsSession>) -> bool {
    if let Some(t) = tls.as_mut() {
        if s.state() == tcp::State::Established || s.state() == tcp::State::CloseWait {
            let _ = t.receive(s);
            t.transmit(s);
        }
    }
    true
}

#[test]
fn a_certificate_that_does_not_match_the_fingerprint_is_refused() {
    let other = ue_identity();
    let agw = Identity::generate("agw.example").unwrap();
    let agw2 = agw.clone();
    failing_case(
        31,
        // The AGW pins a fingerprint of a certificate the UE does not have.
        move |_| TlsConfig::new(&agw, None, vec![other.fingerprint(HashAlg::Sha256)]).unwrap(),
        drive,
        Some(ue_config(
            &ue_identity(),
            Some(AGW_ACCESS.into()),
            agw2.fingerprint(HashAlg::Sha256),
            false,
        )),
        TlsFailure::Fingerprint,
    );
}

#[test]
fn a_ue_without_a_certificate_is_refused() {
    let agw = Identity::generate("agw.example").unwrap();
    let ue = ue_identity();
    let ue_fp = ue.fingerprint(HashAlg::Sha256);
    let no_cert = {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(dataplane::tls::Pinned::new(vec![
            agw.fingerprint(HashAlg::Sha256)
        ])))
        .with_no_client_auth();
        TlsConfig::Client(Arc::new(cfg), AGW_ACCESS.into())
    };
    let agw2 = agw.clone();
    failing_case(
        32,
        move |_| TlsConfig::new(&agw2, None, vec![ue_fp]).unwrap(),
        drive,
        Some(no_cert),
        TlsFailure::NoCertificate,
    );
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert() {
    let mut sent = false;
    let from_agw = failing_case(
        33,
        |k| k.agw_server(),
        |s, _| {
            if !sent && s.may_send() {
                sent = true;
                s.send_slice(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
                    .unwrap();
            }
            true
        },
        None,
        TlsFailure::Protocol,
    );
    // A TLS alert record (content type 21) came back before the FIN.
    assert_eq!(from_agw.first(), Some(&21), "{from_agw:?}");
}

#[test]
fn a_silent_ue_runs_into_the_handshake_timer() {
    failing_case(
        34,
        |k| k.agw_server(),
        |_, _| true,
        None,
        TlsFailure::Timeout,
    );
}

#[test]
fn end_to_end_tls_passes_through_plain_legs_untouched() {
    // The ALG asked for plain TCP on both legs: the UEs' own TLS session crosses the AGW.
    let x_id = ue_identity();
    let y_id = ue_identity();
    let x_cfg = ue_config(
        &x_id,
        Some(UE_Y.into()),
        y_id.fingerprint(HashAlg::Sha256),
        false,
    );
    let y_cfg = ue_config(&y_id, None, x_id.fingerprint(HashAlg::Sha256), false);
    let mut b = bed(lossy(), 41);
    let (x, y) = pair(&mut b, PORT, T1, T2, true, None, None);
    let total = 3 * 1000 * 1000;
    let mut ex = (x, UeEnd::tls(&x_cfg, 1, total, 2));
    let mut ey = (y, UeEnd::tls(&y_cfg, 2, total, 1));
    exchange(&mut b, &mut ex, &mut ey, total);
    assert!(
        !b.has(|e| matches!(e, Event::TlsEstablished { .. })),
        "the AGW took no part in TLS"
    );
    // The AGW relayed the TLS records: more bytes than the payload, the same count each way
    // as the UEs' sockets saw.
    b.send(Command::Audit { key: T1 });
    b.wait_for(Duration::from_secs(1), |b| {
        b.has(|e| matches!(e, Event::Stats { key, .. } if *key == T1))
    });
    let stats = b
        .events
        .iter()
        .find_map(|e| match e {
            Event::Stats { key, stats } if *key == T1 => Some(*stats),
            _ => None,
        })
        .unwrap();
    assert!(
        stats.octets_in > total && stats.octets_out > total,
        "{stats:?}"
    );
}

#[test]
fn idle_calls_with_tls_on_one_leg_hold_at_most_24_kib_of_worker_heap_each() {
    const CALLS: u16 = 40;
    let keys = Keys::new();
    let mut b = bed(Faults::default(), 77);
    let mut ends = Vec::new();
    for i in 0..CALLS {
        let t1 = TerminationKey {
            context: 100 + i as u32,
            termination: 1,
        };
        let t2 = TerminationKey {
            context: 100 + i as u32,
            termination: 2,
        };
        let (x, y) = pair(
            &mut b,
            43000 + i,
            t1,
            t2,
            true,
            Some(keys.agw_server()),
            None,
        );
        let s = 10 + 2 * i as u64;
        ends.push((
            (x, UeEnd::tls(&keys.ue_client(false), s, 400, s + 1)),
            (y, UeEnd::plain(s + 1, 400, s)),
        ));
    }
    // A chat message each way on every call, then silence.
    b.run(Duration::from_secs(60), |b| {
        let mut moved = false;
        let mut done = true;
        for (x, y) in ends.iter_mut() {
            moved |= x.1.pump(b.ue(x.0));
            moved |= y.1.pump(b.ue(y.0));
            done &= x.1.done(400) && y.1.done(400);
        }
        if done {
            Progress::Done
        } else if moved {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    b.run_for(Duration::from_secs(2));
    let c = b.worker.counters();
    assert_eq!(
        c.buffers_lent, 0,
        "idle TLS legs give their loans back: {c:?}"
    );
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(e, Event::TlsEstablished { .. }))
            .count(),
        CALLS as usize
    );
    // What the worker holds is what dropping it frees (config shared with the control side,
    // the UEs' sessions and the link's frame buffers are not its own), less what an empty
    // worker frees.
    let freed = |worker: dataplane::worker::Worker<testbed::memlink::MemPort>| {
        -allocations(true, || {
            let before = alloc_count::watched_net_bytes();
            drop(worker);
            alloc_count::watched_net_bytes() - before
        })
        .0
    };
    let empty = bed(Faults::default(), 78);
    let fixed = freed(empty.worker);
    let held = freed(b.worker);
    let per_call = (held - fixed) as f64 / CALLS as f64;
    eprintln!(
        "worker heap per idle call with TLS on one leg: {per_call:.0} B ({} loans made and returned)",
        c.buffer_lends
    );
    assert!(
        per_call <= 24.0 * 1024.0,
        "{per_call:.0} B per idle TLS call"
    );
}
