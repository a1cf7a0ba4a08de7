//! Resources running out on the control side, each answered with its H.248 error and
//! recovered from when the pressure goes: the command ring to the worker full (510), the
//! termination limit (510), a worker's leg table (510), the context limit (412); a worker's
//! refusal is counted. And an MGC that floods garbage and duplicates: garbage is dropped and
//! counted, duplicates get the cached reply and execute nothing twice.

use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Command as Dp, Event, Rejection, TerminationKey};
use h248::ast::*;

/// A worker's rings that can be made full.
#[derive(Default)]
struct Rings {
    full: bool,
    taken: Vec<Dp>,
}

impl DataPlane for Rings {
    fn room(&self, _worker: usize) -> usize {
        if self.full {
            0
        } else {
            usize::MAX
        }
    }
    fn submit(&mut self, _worker: usize, cmd: Dp) -> bool {
        if self.full {
            return false;
        }
        self.taken.push(cmd);
        true
    }
    fn next_event(&mut self) -> Option<(usize, Event)> {
        None
    }
}

fn alg() -> SocketAddr {
    "198.51.100.1:2944".parse().unwrap()
}

fn mg(max_contexts: usize, max_terminations: usize, per_worker: usize) -> Dispatcher<Mg<Rings>> {
    let cfg = MgConfig {
        realms: vec![Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            first_port: 41000,
            last_port: 41999,
            policy: Default::default(),
        }],
        max_contexts,
        max_terminations,
        max_legs_per_worker: per_worker,
        ..MgConfig::new(vec![])
    };
    Dispatcher::new(
        Mg::new(cfg, Rings::default()),
        ReplyCache::new(TransactionTimers::default(), 1000),
        MId::Ip4 {
            addr: [198, 51, 100, 2],
            port: Some(2944),
        },
        3,
        vec![alg().ip()],
    )
}

fn send(d: &mut Dispatcher<Mg<Rings>>, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    d.datagram(
        alg(),
        text.as_bytes(),
        0,
        |_, b| out.push(String::from_utf8(b.to_vec()).unwrap()),
        |_| {},
    );
    out
}

fn add(tid: u32, ctx: &str) -> String {
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C={ctx}{{A=${{M{{ST=1{{O{{MO=IN}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}")
}

fn code(reply: &str) -> Option<u16> {
    reply.split("ER=").nth(1).map(|s| s[..3].parse().unwrap())
}

fn subtract(tid: u32, ctx: u32) -> String {
    // An empty Audit: no statistics, so the reply does not wait for the worker.
    format!("!/3 [198.51.100.1]:2944 T={tid}{{C={ctx}{{S=*{{AT{{}}}}}}}}")
}

#[test]
fn a_full_command_ring_is_510_until_it_drains() {
    let mut d = mg(10, 10, 10);
    d.executor_mut().dataplane_mut().full = true;
    let r = send(&mut d, &add(1, "$"));
    assert_eq!(code(&r[0]), Some(510), "{r:?}");
    assert!(r[0].contains("data plane busy"), "{r:?}");
    assert_eq!(d.executor_mut().terminations(), 0, "nothing half-made");
    d.executor_mut().dataplane_mut().full = false;
    let r = send(&mut d, &add(2, "$"));
    assert_eq!(code(&r[0]), None, "{r:?}");
    assert_eq!(d.executor_mut().terminations(), 1);
}

#[test]
fn limits_are_answered_and_recovered_from() {
    // Two terminations in all; contexts limited to one.
    let mut d = mg(1, 2, 100);
    assert_eq!(code(&send(&mut d, &add(1, "$"))[0]), None);
    let r = send(&mut d, &add(2, "$"));
    assert_eq!(code(&r[0]), Some(412), "{r:?}");
    assert_eq!(code(&send(&mut d, &add(3, "1"))[0]), None);
    // A third termination is over the limit (and would need a second context too).
    let r = send(&mut d, &add(4, "1"));
    assert!(matches!(code(&r[0]), Some(510) | Some(434)), "{r:?}");
    let r = send(&mut d, &subtract(5, 1));
    assert_eq!(code(&r[0]), None, "{r:?}");
    assert_eq!(d.executor_mut().terminations(), 0);
    assert_eq!(code(&send(&mut d, &add(6, "$"))[0]), None);

    let mut d = mg(10, 100, 2);
    assert_eq!(code(&send(&mut d, &add(1, "$"))[0]), None);
    assert_eq!(code(&send(&mut d, &add(2, "1"))[0]), None);
    let r = send(&mut d, &add(3, "$"));
    assert_eq!(code(&r[0]), Some(510), "{r:?}");
    assert!(r[0].contains("leg table"), "{r:?}");
    send(&mut d, &subtract(4, 1));
    assert_eq!(code(&send(&mut d, &add(5, "$"))[0]), None);
}

/// A refusal for a termination the MG has is a fault and counted; one for a termination the
/// MG already forgot (a Release that reached a leg the peers had closed) is not.
#[test]
fn a_worker_refusal_is_counted() {
    let mut d = mg(10, 10, 10);
    assert_eq!(code(&send(&mut d, &add(1, "$"))[0]), None);
    let key = d
        .executor()
        .dataplane()
        .taken
        .iter()
        .find_map(|c| match c {
            Dp::Reserve { key, .. } => Some(*key),
            _ => None,
        })
        .unwrap();
    d.executor_mut().on_event(&Event::Rejected {
        key,
        reason: Rejection::LegTableFull,
    });
    assert_eq!(d.executor().worker_rejections(), 1);
    d.executor_mut().on_event(&Event::Rejected {
        key: TerminationKey {
            context: 99,
            termination: 1,
        },
        reason: Rejection::UnknownTermination,
    });
    assert_eq!(d.executor().worker_rejections(), 1);
}

#[test]
fn an_mgc_flooding_garbage_and_duplicates_changes_nothing() {
    let mut d = mg(10, 10, 10);
    let first = send(&mut d, &add(77, "$"));
    let mut junk = 0u64;
    for i in 0..20_000u32 {
        // Garbage of every kind: binary, text that is not H.248, truncated H.248.
        let g: Vec<u8> = match i % 3 {
            0 => (0..(i % 300)).map(|k| (k * 31 + i) as u8).collect(),
            1 => b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            _ => add(1000 + i, "$").as_bytes()[..(i as usize % 40) + 1].to_vec(),
        };
        let mut out = Vec::new();
        d.datagram(alg(), &g, 0, |_, b| out.push(b), |_| {});
        junk += 1;
        // Truncated H.248 may be answered with an error; nothing is executed.
        assert!(out.len() <= 1);
        if i % 20 == 0 {
            // The same request again: the same bytes, no second termination.
            assert_eq!(send(&mut d, &add(77, "$")), first);
        }
    }
    let c = d.counters();
    assert!(c.garbage + c.decode_errors >= junk / 2, "{c:?}");
    assert_eq!(d.executor_mut().terminations(), 1);
    let reserves = d
        .executor()
        .dataplane()
        .taken
        .iter()
        .filter(|c| matches!(c, Dp::Reserve { .. }))
        .count();
    assert_eq!(reserves, 1);
    // Service goes on.
    assert_eq!(code(&send(&mut d, &add(78, "1"))[0]), None);
}

#[test]
fn a_realm_of_two_addresses_holds_its_ports_twice_then_answers_510() {
    let mut d = mg(100, 100, 100);
    {
        let cfg = Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.10".parse().unwrap(), "192.0.2.11".parse().unwrap()],
            first_port: 41000,
            last_port: 41001,
            policy: Default::default(),
        };
        let mg_cfg = MgConfig {
            realms: vec![cfg],
            max_contexts: 100,
            max_terminations: 100,
            max_legs_per_worker: 100,
            ..MgConfig::new(vec![])
        };
        *d.executor_mut() = Mg::new(mg_cfg, Rings::default());
    }
    let mut seen = Vec::new();
    for tid in 1..=4 {
        let r = send(&mut d, &add(tid, "$"));
        assert_eq!(code(&r[0]), None, "{r:?}");
        let c = r[0]
            .split("c=IN IP4 ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string();
        let m = r[0]
            .split("m=message ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string();
        seen.push(format!("{c}:{m}"));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "192.0.2.10:41000",
            "192.0.2.10:41001",
            "192.0.2.11:41000",
            "192.0.2.11:41001"
        ]
    );
    let r = send(&mut d, &add(5, "$"));
    assert_eq!(code(&r[0]), Some(510), "{r:?}");
    assert!(r[0].contains("no local port left"), "{r:?}");
    assert_eq!(d.executor_mut().terminations(), 4, "nothing half-made");
    assert_eq!(d.executor_mut().contexts(), 4);
}

#[test]
fn one_worker_holds_a_hundred_thousand_calls_then_answers_510() {
    // 200 000 terminations on one worker: each realm has 4 addresses of 25 000 ports.
    const CALLS: u32 = 100_000;
    let realm = |name: &str, net: u8| Realm {
        name: name.into(),
        addresses: (0..4)
            .map(|i| std::net::Ipv4Addr::new(198, 18, net, 10 + i).into())
            .collect(),
        first_port: 20000,
        last_port: 44999,
        policy: Default::default(),
    };
    let cfg = MgConfig {
        realms: vec![realm("access", 1), realm("core", 2)],
        max_contexts: CALLS as usize + 1,
        max_terminations: 2 * CALLS as usize + 2,
        max_legs_per_worker: 2 * CALLS as usize,
        ..MgConfig::new(vec![])
    };
    let mut d = Dispatcher::new(
        Mg::new(cfg, Rings::default()),
        // Every reply is remembered for LONG-TIMER (the clock does not move here).
        ReplyCache::new(TransactionTimers::default(), 2 * CALLS as usize + 8),
        MId::Ip4 {
            addr: [198, 51, 100, 2],
            port: Some(2944),
        },
        3,
        vec![alg().ip()],
    );
    let add_in = |tid: u32, ctx: &str, realm: &str| {
        format!("!/3 [198.51.100.1]:2944 T={tid}{{C={ctx}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=\"{realm}\"}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}")
    };
    let mut tid = 1;
    for _ in 0..CALLS {
        let r = send(&mut d, &add_in(tid, "$", "access"));
        tid += 1;
        assert_eq!(code(&r[0]), None, "{r:?}");
        let ctx: u32 = r[0]
            .split("C=")
            .nth(1)
            .and_then(|s| s.split('{').next())
            .and_then(|s| s.trim().parse().ok())
            .expect("a context in the reply");
        let r = send(&mut d, &add_in(tid, &ctx.to_string(), "core"));
        tid += 1;
        assert_eq!(code(&r[0]), None, "{r:?}");
    }
    assert_eq!(d.executor_mut().terminations(), 2 * CALLS as usize);
    assert_eq!(d.executor_mut().contexts(), CALLS as usize);
    // The worker's leg table is full: a clear 510, and nothing half-made.
    let r = send(&mut d, &add_in(tid, "$", "access"));
    assert_eq!(code(&r[0]), Some(510), "{r:?}");
    assert!(r[0].contains("leg table"), "{r:?}");
    assert_eq!(d.executor_mut().terminations(), 2 * CALLS as usize);
}
