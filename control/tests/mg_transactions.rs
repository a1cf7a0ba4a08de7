//! What happens around a failing command (H.248.1 8.2.2): the commands before it keep their
//! effect, it changes nothing, and nothing after it in the transaction runs — unless it was
//! optional (`O-`), when its reply carries the error and the next command runs. A wildcard
//! command changes every termination it matches or none. `Context = * { Subtract = * }`
//! returns statistics only when asked, refuses (533) to return more than a message holds,
//! and `W-` answers with one wildcarded reply.

use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Command as Dp, Event};
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

fn mg() -> Dispatcher<Mg<Recorder>> {
    let cfg = MgConfig::new(vec![Realm {
        name: "access".into(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        first_port: 41000,
        last_port: 41999,
        policy: Default::default(),
    }]);
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

fn send(d: &mut Dispatcher<Mg<Recorder>>, tid: u32, body: &str) -> ReplyResult {
    let mut out = Vec::new();
    let text = format!("!/3 [198.51.100.1]:2944 T={tid}{{{body}}}");
    d.datagram(alg(), text.as_bytes(), 0, |_, b| out.push(b), |_| {});
    let m = h248::decode(&out.remove(0)).unwrap();
    let MessageBody::Transactions(mut ts) = m.body else {
        panic!()
    };
    let Transaction::Reply(r) = ts.remove(0) else {
        panic!()
    };
    r.result
}

const OK: &str = "A=${M{ST=1{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}";
const OK_UDP: &str = "A=${M{ST=1{L{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}}}}";
/// Fails with 515 (an RTP medium).
const BAD: &str = "A=${M{ST=1{L{\nv=0\nc=IN IP4 $\nm=audio $ RTP/AVP 0\n}}}}";

fn actions(r: ReplyResult) -> Vec<ActionReply> {
    match r {
        ReplyResult::Actions(a) => a,
        ReplyResult::Error(e) => panic!("transaction error {e:?}"),
    }
}

fn commands(d: &Dispatcher<Mg<Recorder>>) -> usize {
    d.executor().dataplane().0.len()
}

#[test]
fn a_failing_command_ends_the_transaction_and_changes_nothing() {
    let mut d = mg();
    let a = actions(send(
        &mut d,
        1,
        &format!("C=${{{OK}}},C=${{{OK},{BAD},{OK}}},C=${{{OK}}}"),
    ));
    // The first action ran; the second's first Add ran, its second failed, its third did
    // not run; the third action did not run and has no reply.
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].error.is_none() && a[0].replies.len() == 1);
    assert_eq!(a[1].replies.len(), 1);
    assert_eq!(a[1].error.as_ref().map(|e| e.code), Some(515));
    assert_eq!(d.executor().terminations(), 2);
    assert_eq!(d.executor().contexts(), 2);
    // Counted: two Adds ok, one 515; the ones that did not run are not counted.
    let counted: Vec<_> = d.executor().commands().collect();
    assert_eq!(counted, vec![("add", 0, 2), ("add", 515, 1)]);
}

#[test]
fn an_optional_failing_command_is_answered_with_its_error_and_the_next_one_runs() {
    let mut d = mg();
    let a = actions(send(&mut d, 1, &format!("C=${{O-{BAD},{OK}}}")));
    assert_eq!(a.len(), 1);
    assert!(a[0].error.is_none(), "{a:?}");
    assert_eq!(a[0].replies.len(), 2);
    let CommandReply::Amms { audit, .. } = &a[0].replies[0] else {
        panic!()
    };
    assert!(
        matches!(audit.as_deref(), Some([Descriptor::Error(e)]) if e.code == 515),
        "{audit:?}"
    );
    assert_eq!(d.executor().terminations(), 1);
}

#[test]
fn a_wildcard_modify_changes_every_match_or_none() {
    let mut d = mg();
    let a = actions(send(&mut d, 1, &format!("C=${{{OK},{OK}}}")));
    let ContextId::Id(ctx) = a[0].context else {
        panic!()
    };
    let remote = |ip: &str| {
        format!("R{{\nv=0\nc=IN IP4 {ip}\nm=message 2855 TCP/MSRP *\na=setup:passive\n}}")
    };
    // tcp/access/2 connects out (its peer is fixed from then on); tcp/access/1 waits.
    let a = actions(send(
        &mut d,
        2,
        &format!(
            "C={ctx}{{MF=tcp/access/2{{M{{ST=1{{{}}}}}}}}}",
            remote("203.0.113.50")
        ),
    ));
    assert!(a[0].error.is_none(), "{a:?}");
    // A new peer for both: tcp/access/1 could take it, tcp/access/2 cannot (501), so
    // neither does.
    let before = commands(&d);
    let a = actions(send(
        &mut d,
        3,
        &format!(
            "C={ctx}{{MF=*{{M{{ST=1{{O{{MO=SR}},{}}}}}}}}}",
            remote("203.0.113.60")
        ),
    ));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(501), "{a:?}");
    assert!(a[0].replies.is_empty());
    assert_eq!(commands(&d), before, "nothing sent for either");
    // tcp/access/1 is as it was: it takes that peer on its own.
    let a = actions(send(
        &mut d,
        4,
        &format!(
            "C={ctx}{{MF=tcp/access/1{{M{{ST=1{{O{{MO=SR}},{}}}}}}}}}",
            remote("203.0.113.60")
        ),
    ));
    assert!(a[0].error.is_none(), "{a:?}");
    let starts: Vec<_> = d.executor().dataplane().0[before..]
        .iter()
        .filter(|c| matches!(c, Dp::Start { .. } | Dp::SetGate { .. }))
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
}

#[test]
fn subtract_of_every_context_returns_statistics_only_when_asked_and_when_they_fit() {
    let mut d = mg();
    for t in 0..35 {
        actions(send(&mut d, 1 + t, &format!("C=${{{OK},{OK}}}")));
    }
    assert_eq!(d.executor().terminations(), 70);
    // Asked for the statistics of 70: more than a message holds, nothing released.
    let before = commands(&d);
    let a = actions(send(&mut d, 100, "C=*{S=*{AT{SA}}}"));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(533), "{a:?}");
    assert_eq!(d.executor().terminations(), 70);
    assert_eq!(commands(&d), before);
    // All contexts without Audit: no statistics, every termination released, answered now.
    let a = actions(send(&mut d, 101, "C=*{S=*}"));
    assert!(a[0].error.is_none(), "{a:?}");
    assert_eq!(a[0].replies.len(), 70);
    assert!(a[0].replies.iter().all(|r| matches!(
        r,
        CommandReply::Amms {
            kind: AmmsKind::Subtract,
            audit: None,
            ..
        }
    )));
    assert_eq!(
        (d.executor().terminations(), d.executor().contexts()),
        (0, 0)
    );
    assert!(d.executor().pools().iter().all(|p| p.in_use == 0));
    // Nothing left to match.
    let a = actions(send(&mut d, 102, "C=*{S=*}"));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(431));

    // W-: one wildcarded reply.
    for t in 0..3 {
        actions(send(&mut d, 200 + t, &format!("C=${{{OK},{OK}}}")));
    }
    let a = actions(send(&mut d, 300, "C=*{W-S=*}"));
    assert_eq!(a[0].replies.len(), 1, "{a:?}");
    let CommandReply::Amms {
        terminations,
        audit,
        ..
    } = &a[0].replies[0]
    else {
        panic!()
    };
    assert_eq!((terminations[0].0.as_str(), audit), ("*", &None));
    assert_eq!(d.executor().terminations(), 0);
}

#[test]
fn a_tcp_and_a_udp_termination_are_not_put_in_one_context() {
    let mut d = mg();
    let a = actions(send(&mut d, 1, &format!("C=${{{OK},{OK_UDP}}}")));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(501), "{a:?}");
    let reserves = d
        .executor()
        .dataplane()
        .0
        .iter()
        .filter(|c| matches!(c, Dp::Reserve { .. } | Dp::ReserveDatagram { .. }))
        .count();
    assert_eq!((d.executor().terminations(), reserves), (1, 1));
}
