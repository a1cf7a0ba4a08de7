//! The MG model for TLS towards the UE (TR 29.828 y.3): our fingerprint in the Local of the
//! reply, the UE pinned by the fingerprints in Remote, the TLS role from the TCP role, a new
//! certificate used from the next termination on, and TLS failures as Notify.

use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::iq::IqEvent;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Command as Dp, Event};
use dataplane::tls::{HashAlg, Identity, TlsConfig, TlsFailure};
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
    let mut cfg = MgConfig::new(vec![Realm {
        name: "access".into(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        first_port: 41000,
        last_port: 41999,
        policy: Default::default(),
    }]);
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

fn add(tid: u32) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=${{A=${{M{{ST=1{{O{{MO=IN}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\n}}}}}}}}}}}}")
}

fn modify(tid: u32, term: &str, local_setup: &str, remote_setup: &str, fps: &str) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=1{{MF={term}{{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nm=message $ TCP/TLS/MSRP *\na=setup:{local_setup}\n}},R{{\nv=0\nc=IN IP4 203.0.113.7\nm=message 9000 TCP/TLS/MSRP *\na=setup:{remote_setup}\n{fps}}}}}}},E=104{{tlsc/estfail}}}}}}}}")
}

fn started_tls(d: &Dispatcher<Mg<Recorder>>) -> Option<TlsConfig> {
    d.executor()
        .dataplane()
        .0
        .iter()
        .rev()
        .find_map(|c| match c {
            Dp::Start { tls, .. } => Some(tls.clone()),
            _ => None,
        })?
}

#[test]
fn without_a_certificate_tls_terminations_are_refused() {
    let mut d = mg(None);
    assert!(send(&mut d, &add(1)).contains("ER=501"));
}

#[test]
fn our_fingerprint_goes_out_and_the_ues_is_pinned() {
    let agw = Identity::generate("agw").unwrap();
    let ue = Identity::generate("ue").unwrap();
    let mut d = mg(Some(agw.clone()));
    let r = send(&mut d, &add(1));
    let ours = agw.fingerprint(HashAlg::Sha256).to_string();
    assert!(r.contains(&format!("a=fingerprint:{ours}")), "{r}");
    // UE-X connects (active): the AGW is the TLS server.
    let fp = format!(
        "a=fingerprint:{}\na=fingerprint:{}\n",
        ue.fingerprint(HashAlg::Sha1),
        ue.fingerprint(HashAlg::Sha512)
    );
    let r = send(&mut d, &modify(2, "tcp/access/1", "passive", "active", &fp));
    assert!(!r.contains("ER="), "{r}");
    assert!(r.contains(&format!("a=fingerprint:{ours}")), "{r}");
    assert!(matches!(started_tls(&d), Some(TlsConfig::Server(_))));

    // No fingerprint in Remote: no TLS session can be pinned.
    let r = send(&mut d, &add(3));
    assert!(!r.contains("ER="), "{r}");
    let r = send(
        &mut d,
        &modify(4, "tcp/access/2", "active", "passive", "").replace("C=1", "C=2"),
    );
    assert!(r.contains("ER=449"), "{r}");
    // A malformed fingerprint is refused too.
    let r = send(
        &mut d,
        &modify(
            5,
            "tcp/access/2",
            "active",
            "passive",
            "a=fingerprint:sha-256 00:11\n",
        )
        .replace("C=1", "C=2"),
    );
    assert!(r.contains("ER=449"), "{r}");
    // The AGW connects (UE passive): the AGW is the TLS client.
    let fp = format!("a=fingerprint:{}\n", ue.fingerprint(HashAlg::Sha256));
    let r = send(
        &mut d,
        &modify(6, "tcp/access/2", "active", "passive", &fp).replace("C=1", "C=2"),
    );
    assert!(!r.contains("ER="), "{r}");
    assert!(
        matches!(started_tls(&d), Some(TlsConfig::Client(_, ip)) if ip.to_string() == "203.0.113.7")
    );
}

#[test]
fn a_new_certificate_is_used_from_the_next_termination_on() {
    let a = Identity::generate("agw").unwrap();
    let b = Identity::generate("agw").unwrap();
    let mut d = mg(Some(a.clone()));
    let r = send(&mut d, &add(1));
    assert!(r.contains(&a.fingerprint(HashAlg::Sha256).to_string()));
    d.executor_mut().set_identity(Some(b.clone()));
    let r = send(&mut d, &add(2));
    assert!(
        r.contains(&b.fingerprint(HashAlg::Sha256).to_string()),
        "{r}"
    );
    assert!(!r.contains(&a.fingerprint(HashAlg::Sha256).to_string()));
}

#[test]
fn a_tls_failure_becomes_the_armed_notify() {
    let agw = Identity::generate("agw").unwrap();
    let ue = Identity::generate("ue").unwrap();
    let mut d = mg(Some(agw));
    send(&mut d, &add(1));
    let fp = format!("a=fingerprint:{}\n", ue.fingerprint(HashAlg::Sha256));
    send(&mut d, &modify(2, "tcp/access/1", "passive", "active", &fp));
    let key = d
        .executor()
        .dataplane()
        .0
        .iter()
        .find_map(|c| match c {
            Dp::Reserve { key, .. } => Some(*key),
            _ => None,
        })
        .unwrap();
    d.executor_mut().on_event(&Event::TlsFailed {
        key,
        failure: TlsFailure::Fingerprint,
    });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].event, IqEvent::TlsFailure);
    assert_eq!(n[0].request_id, 104);
    assert_eq!(
        n[0].parameter_texts(),
        vec![("cause".into(), "fingerprint".to_string())]
    );
}
