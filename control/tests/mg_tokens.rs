//! An operator-set token table (`[h248.tokens]`) renames the Iq elements everywhere the MG
//! uses them: the LocalControl properties and events it decodes, the Notify it sends, the
//! packages AuditCapabilities lists, and the statistics of Subtract and AuditValue. The
//! default names are then unknown to it.

use std::collections::HashMap;
use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::iq::{IqEvent, Tokens};
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{
    AppStats, Command as Dp, ConnectFailure, Event, LegStats, TerminationKey,
};
use dataplane::framing::MsrpCounters;
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
    fn next_event(&mut self) -> Option<(usize, Event)> {
        None
    }
}

fn alg() -> SocketAddr {
    "198.51.100.1:2944".parse().unwrap()
}

fn table() -> Tokens {
    let t: HashMap<String, String> = [
        ("realm", "ipdcx/rlm"),
        ("latch", "napt/lt"),
        ("tcp_established", "tcpbe/conest"),
        ("tcp_failure", "tcpbe/confail"),
        ("tcp_released", "tcpbe/conrel"),
        ("tls_established", "tlsb/up"),
        ("tls_failure", "tlsb/fail"),
        ("heartbeat", "hb/beat"),
        ("media_inactivity", "adidx/stop"),
        ("inactivity", "itx/to"),
        ("inactivity_max_parameter", "maxt"),
        ("inactivity_unit_ms", "1000"),
        ("cause_parameter", "why"),
        ("msrp_statistics", "msrpx"),
        ("bfcp_statistics", "bfcpx"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Tokens::with(&t).unwrap()
}

fn mg() -> Dispatcher<Mg<Recorder>> {
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
    cfg.tokens = table();
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
    out.remove(0)
}

fn add(tid: u32, lc: &str, events: &str) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C=${{A=${{M{{ST=1{{O{{MO=SR{lc}}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}},R{{\nv=0\nc=IN IP4 203.0.113.50\nm=message 2855 TCP/MSRP *\na=setup:passive\n}}}}}}{events}}}}}}}")
}

fn key(d: &Dispatcher<Mg<Recorder>>, n: usize) -> TerminationKey {
    d.executor()
        .dataplane()
        .0
        .iter()
        .filter_map(|c| match c {
            Dp::Reserve { key, .. } => Some(*key),
            _ => None,
        })
        .nth(n)
        .unwrap()
}

#[test]
fn a_token_table_renames_what_the_mg_decodes_notifies_lists_and_counts() {
    let mut d = mg();
    // Decoded requests: the renamed realm property and events; the default names are not
    // ours any more.
    let r = send(
        &mut d,
        &add(
            1,
            ",ipdcx/rlm=core",
            ",E=7{tcpbe/conest,tcpbe/confail,hb/beat}",
        ),
    );
    assert!(!r.contains("ER="), "{r}");
    assert!(r.contains("c=IN IP4 192.0.2.20"), "the core realm: {r}");
    let r = send(&mut d, &add(2, ",ipdc/realm=core", ""));
    assert!(r.contains("ER=445"), "{r}");
    let r = send(&mut d, &add(3, "", ",E=8{tcpc/est}"));
    assert!(r.contains("ER=445"), "{r}");
    let r = send(&mut d, &add(4, "", ",E=9{tcpbe/nosuch}"));
    assert!(r.contains("ER=451"), "{r}");

    // Notify: the renamed events and cause parameter.
    let k = key(&d, 0);
    d.executor_mut().on_event(&Event::ConnectFailed {
        key: k,
        failure: ConnectFailure::Refused,
    });
    d.executor_mut().on_event(&Event::CutThrough { a: k, b: k });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].event, IqEvent::TcpFailure);
    assert_eq!(
        (n[0].name.package.as_str(), n[0].name.item.as_str()),
        ("tcpbe", "confail")
    );
    assert_eq!(
        n[0].parameter_texts(),
        vec![("why".into(), "refused".to_string())]
    );
    assert_eq!(
        (n[1].name.package.as_str(), n[1].name.item.as_str()),
        ("tcpbe", "conest")
    );

    // AuditCapabilities lists the packages of the table.
    let r = send(&mut d, "!/3 [198.51.100.1]:2944 T=10{C=-{AC=ROOT{AT{PG}}}}");
    for p in ["ipdcx", "napt", "tcpbe", "tlsb", "hb", "adidx", "itx"] {
        assert!(r.contains(&format!("{p}-1")), "{p} in {r}");
    }
    for p in ["ipdc-", "tcpc-", "hangterm-", "it-1"] {
        assert!(!r.contains(p), "{p} not in {r}");
    }

    // Statistics of an MSRP-aware termination under the renamed package.
    let received = MsrpCounters {
        chunks: 3,
        ..MsrpCounters::default()
    };
    d.executor_mut().on_event(&Event::Stats {
        key: k,
        stats: LegStats {
            app: AppStats::Msrp {
                received,
                sent: MsrpCounters::default(),
            },
            ..LegStats::default()
        },
    });
    let r = send(&mut d, "!/3 [198.51.100.1]:2944 T=11{C=1{AV=*{AT{SA}}}}");
    assert!(r.contains("msrpx/chkr=3"), "{r}");
    assert!(!r.contains("msrpst"), "{r}");

    // The inactivity timer on ROOT: the renamed event, parameter and unit.
    let r = send(
        &mut d,
        "!/3 [198.51.100.1]:2944 T=12{C=-{MF=ROOT{E=5{itx/to{maxt=3}}}}}",
    );
    assert!(!r.contains("ER="), "{r}");
    assert_eq!(d.executor().inactivity(), Some((5, 3000)));
    let r = send(
        &mut d,
        "!/3 [198.51.100.1]:2944 T=13{C=-{MF=ROOT{E=6{it/ito{mit=3}}}}}",
    );
    assert!(r.contains("ER=451"), "{r}");
    assert_eq!(d.executor().inactivity(), Some((5, 3000)), "unchanged");
    let n = d.executor().inactivity_notification(5);
    assert_eq!(
        (n.name.package.as_str(), n.name.item.as_str()),
        ("itx", "to")
    );
}
