//! The MG model for T.38 fax (TS 23.334 e2ae with RFC 7345): `udptl` towards the core and
//! `UDP/TLS/UDPTL` towards the UE become datagram legs; our fingerprint and the ALG's
//! `a=tls-id` in Local, the UE pinned and the DTLS role taken from its `a=setup`, a new
//! Remote or tls-id starting the leg again, and the DTLS failure and media inactivity events
//! as Notify.

use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::iq::IqEvent;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Accept, Command as Dp, Event, LegStats, ReleaseCause};
use dataplane::tls::{HashAlg, Identity, TlsFailure};
use h248::ast::*;

#[derive(Default)]
struct Recorder(Vec<Dp>);

impl DataPlane for Recorder {
    fn room(&self, _worker: usize) -> usize {
        usize::MAX
    }
    fn submit(&mut self, _worker: usize, cmd: Dp) -> bool {
        self.0.push(cmd);
        true
    }
    fn next_event(&mut self) -> Option<(usize, dataplane::contract::Event)> {
        None
    }
}

fn alg() -> SocketAddr {
    "198.51.100.1:2944".parse().unwrap()
}

fn mg(tls: Option<Identity>) -> Dispatcher<Mg<Recorder>> {
    let mut cfg = MgConfig::new(vec![
        Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            first_port: 41000,
            last_port: 41999,
            policy: Default::default(),
        },
        Realm {
            name: "core".into(),
            addresses: vec!["192.0.2.20".parse().unwrap()],
            first_port: 42000,
            last_port: 42999,
            policy: Default::default(),
        },
    ]);
    cfg.tls = tls;
    Dispatcher::new(
        Mg::new(cfg, Recorder::default()),
        ReplyCache::new(TransactionTimers::default(), 1000),
        MId::Ip4 {
            addr: [198, 51, 100, 2],
            port: Some(2944),
        },
        3,
        vec![alg().ip()],
    )
}

fn send(d: &mut Dispatcher<Mg<Recorder>>, text: &str) -> String {
    let mut out = Vec::new();
    d.datagram(
        alg(),
        text.as_bytes(),
        0,
        |_, b| out.push(String::from_utf8(b.to_vec()).unwrap()),
        |_| {},
    );
    assert_eq!(out.len(), 1, "one answer for {text}");
    out.remove(0)
}

/// T2 towards the core: plain UDPTL, the core's address known from the offer.
fn add_core(tid: u32) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=${{A=${{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}},R{{\nv=0\nc=IN IP4 203.0.113.50\nm=image 30000 udptl t38\n}}}}}},E=201{{adid/ipstop}}}}}}}}")
}

/// T1 towards the UE: DTLS, with the fingerprint request and the failure event armed.
fn add_access(tid: u32) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=1{{A=${{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nc=IN IP4 $\nm=image $ UDP/TLS/UDPTL t38\na=setup:actpass\na=tls-id:agwTlsId0001\n}}}}}},E=202{{tlsc/estfail,adid/ipstop}}}}}}}}")
}

/// The UE's answer in Remote.
fn answer(tid: u32, term: &str, setup: &str, port: u16, tls_id: &str, fps: &str) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=1{{MF={term}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 203.0.113.7\nm=image {port} UDP/TLS/UDPTL t38\na=setup:{setup}\na=tls-id:{tls_id}\n{fps}}}}}}}}}}}}}")
}

fn starts(d: &Dispatcher<Mg<Recorder>>) -> Vec<Dp> {
    d.executor()
        .dataplane()
        .0
        .iter()
        .filter(|c| matches!(c, Dp::StartDatagram { .. }))
        .cloned()
        .collect()
}

#[test]
fn fax_terminations_are_datagram_legs_with_dtls_towards_the_ue() {
    let agw = Identity::generate("agw").unwrap();
    let ue = Identity::generate("ue").unwrap();
    let mut d = mg(Some(agw.clone()));
    let r = send(&mut d, &add_core(1));
    assert!(!r.contains("ER="), "{r}");
    assert!(r.contains("m=image 42") && r.contains(" udptl t38"), "{r}");
    assert!(r.contains("udptl/core/1"), "{r}");
    // The core leg starts at once: its peer is known, gated to it, no DTLS.
    let s = starts(&d);
    assert_eq!(s.len(), 1);
    let Dp::StartDatagram {
        remote,
        accept,
        dtls,
        timers,
        ..
    } = &s[0]
    else {
        unreachable!()
    };
    assert_eq!(remote.unwrap().to_string(), "203.0.113.50:30000");
    assert_eq!(*accept, Accept::Gate("203.0.113.50".parse().unwrap()));
    assert!(dtls.is_none());
    assert!(timers.idle.is_some());

    let r = send(&mut d, &add_access(2));
    assert!(!r.contains("ER="), "{r}");
    let ours = agw.fingerprint(HashAlg::Sha256).to_string();
    let port: u16 = r[r.find("m=image ").expect(&r) + 8..][..5].parse().unwrap();
    assert!((41000..=41999).contains(&port), "{r}");
    assert!(
        r.contains(&format!("m=image {port} UDP/TLS/UDPTL t38")),
        "{r}"
    );
    assert!(r.contains(&format!("a=fingerprint:{ours}")), "{r}");
    assert!(r.contains("a=tls-id:agwTlsId0001"), "{r}");
    assert!(d
        .executor()
        .dataplane()
        .0
        .iter()
        .any(|c| matches!(c, Dp::ReserveDatagram { local, .. } if local.port() == port)));
    // No Remote yet: not started.
    assert_eq!(starts(&d).len(), 1);

    // The UE answers active: the AGW is the DTLS server, the UE pinned.
    let fp = format!("a=fingerprint:{}\n", ue.fingerprint(HashAlg::Sha256));
    let r = send(
        &mut d,
        &answer(3, "udptl/access/2", "active", 5004, "ueTlsIdAAAA", &fp),
    );
    assert!(!r.contains("ER="), "{r}");
    assert!(r.contains("a=setup:passive"), "{r}");
    let s = starts(&d);
    assert_eq!(s.len(), 2);
    let Dp::StartDatagram {
        remote,
        accept,
        dtls: Some(cfg),
        ..
    } = &s[1]
    else {
        panic!("{:?}", s[1])
    };
    assert_eq!(remote.unwrap().to_string(), "203.0.113.7:5004");
    assert_eq!(*accept, Accept::Gate("203.0.113.7".parse().unwrap()));
    assert!(!cfg.client);
    assert_eq!(&cfg.fingerprints[..], &[ue.fingerprint(HashAlg::Sha256)]);
    let first_association = cfg.association.clone();

    // The same answer again (a retransmitted or repeated Modify): nothing new.
    send(
        &mut d,
        &answer(4, "udptl/access/2", "active", 5004, "ueTlsIdAAAA", &fp),
    );
    assert_eq!(starts(&d).len(), 2);
    // A new port: the leg sends there, same association.
    send(
        &mut d,
        &answer(5, "udptl/access/2", "active", 5006, "ueTlsIdAAAA", &fp),
    );
    let s = starts(&d);
    assert_eq!(s.len(), 3);
    let Dp::StartDatagram {
        remote,
        dtls: Some(cfg),
        ..
    } = &s[2]
    else {
        unreachable!()
    };
    assert_eq!(remote.unwrap().port(), 5006);
    assert_eq!(cfg.association, first_association);
    // A new tls-id: a new association.
    send(
        &mut d,
        &answer(6, "udptl/access/2", "active", 5006, "ueTlsIdBBBB", &fp),
    );
    let s = starts(&d);
    assert_eq!(s.len(), 4);
    let Dp::StartDatagram {
        dtls: Some(cfg), ..
    } = &s[3]
    else {
        unreachable!()
    };
    assert_ne!(cfg.association, first_association);
    // The UE passive: the AGW is the client.
    send(
        &mut d,
        &answer(7, "udptl/access/2", "passive", 5006, "ueTlsIdCCCC", &fp),
    );
    let s = starts(&d);
    let Dp::StartDatagram {
        dtls: Some(cfg), ..
    } = s.last().unwrap()
    else {
        unreachable!()
    };
    assert!(cfg.client);
}

#[test]
fn dtls_needs_a_certificate_and_the_ues_fingerprint() {
    let mut d = mg(None);
    assert!(send(&mut d, &add_access(1).replace("C=1", "C=$")).contains("ER=501"));
    let mut d = mg(Some(Identity::generate("agw").unwrap()));
    send(&mut d, &add_core(1));
    send(&mut d, &add_access(2));
    let r = send(
        &mut d,
        &answer(3, "udptl/access/2", "active", 5004, "x", ""),
    );
    assert!(r.contains("ER=449"), "{r}");
    let r = send(
        &mut d,
        &answer(
            4,
            "udptl/access/2",
            "active",
            5004,
            "x",
            "a=fingerprint:sha-256 00:11\n",
        ),
    );
    assert!(r.contains("ER=449"), "{r}");
}

#[test]
fn dtls_failure_and_inactivity_become_the_armed_notify() {
    let ue = Identity::generate("ue").unwrap();
    let mut d = mg(Some(Identity::generate("agw").unwrap()));
    send(&mut d, &add_core(1));
    send(&mut d, &add_access(2));
    let fp = format!("a=fingerprint:{}\n", ue.fingerprint(HashAlg::Sha256));
    send(
        &mut d,
        &answer(3, "udptl/access/2", "active", 5004, "ueTlsIdAAAA", &fp),
    );
    let keys: Vec<_> = d
        .executor()
        .dataplane()
        .0
        .iter()
        .filter_map(|c| match c {
            Dp::ReserveDatagram { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    let (core, access) = (keys[0], keys[1]);
    d.executor_mut().on_event(&Event::TlsFailed {
        key: access,
        failure: TlsFailure::Timeout,
    });
    d.executor_mut().on_event(&Event::Closed {
        key: core,
        cause: ReleaseCause::IdleTimeout,
        stats: LegStats::default(),
    });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 2, "{n:?}");
    assert_eq!(n[0].event, IqEvent::TlsFailure);
    assert_eq!(n[0].request_id, 202);
    assert_eq!(
        n[0].parameter_texts(),
        vec![("cause".into(), "timeout".to_string())]
    );
    assert_eq!(n[1].event, IqEvent::MediaInactivity);
    assert_eq!(n[1].request_id, 201);
}
