//! The seed's flow (Annex y steps 2-20) as the IMS-ALG sends it in H.248 text, through the
//! dispatcher into the MG model, with the data-plane side played by a double that records
//! the commands. Also merge mode, retransmission and the error codes.

use std::net::SocketAddr;
use std::net::SocketAddrV4;

use control::dispatch::Dispatcher;
use control::iq::IqEvent;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{
    Accept, AppStats, Command as Dp, Event, Framing, Gate, LegRole, LegStats, LegTimers,
    ReleaseCause, Violation,
};
use dataplane::framing::{BfcpCounters, MsrpCounters, MsrpViolation};
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

fn mg() -> Dispatcher<Mg<Recorder>> {
    let cfg = MgConfig {
        realms: vec![
            Realm {
                name: "access".into(),
                addresses: vec![
                    "192.0.2.10".parse().unwrap(),
                    "2001:db8:1::10".parse().unwrap(),
                ],
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
        ],
        max_contexts: 10,
        max_terminations: 20,
        timers: LegTimers::default(),
        ..MgConfig::new(vec![])
    };
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

fn add(tid: u32, ctx: &str, realm: &str) -> String {
    format!("MEGACO/3 [198.51.100.1]:2944\nTransaction = {tid} {{ Context = {ctx} {{ Add = $ {{ Media {{ Stream = 1 {{ LocalControl {{ Mode = Inactive, ipdc/realm = \"{realm}\" }}, Local {{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}} }} }} }} }} }}")
}

fn modify(
    tid: u32,
    ctx: u32,
    term: &str,
    local_setup: &str,
    remote: &str,
    remote_port: u16,
    remote_setup: &str,
) -> String {
    format!("MEGACO/3 [198.51.100.1]:2944\nTransaction = {tid} {{ Context = {ctx} {{ Modify = {term} {{ Media {{ Stream = 1 {{ LocalControl {{ Mode = SendReceive }}, Local {{\nv=0\nm=message $ TCP/MSRP *\na=setup:{local_setup}\na=connection:new\n}}, Remote {{\nv=0\nc=IN IP4 {remote}\nm=message {remote_port} TCP/MSRP *\na=setup:{remote_setup}\na=connection:new\na=path:msrp://{remote}:{remote_port}/kjh3ds;tcp\n}} }} }} }} }} }}")
}

/// The context and termination of an Add reply.
fn added(reply: &str) -> (u32, String) {
    let m = h248::decode(reply.as_bytes()).unwrap();
    let MessageBody::Transactions(ts) = m.body else {
        panic!("{reply}")
    };
    let Transaction::Reply(TransactionReply {
        result: ReplyResult::Actions(a),
        ..
    }) = &ts[0]
    else {
        panic!("{reply}")
    };
    let ContextId::Id(c) = a[0].context else {
        panic!("{reply}")
    };
    let Some(CommandReply::Amms { terminations, .. }) = a[0].replies.first() else {
        panic!("{reply}")
    };
    (c, terminations[0].0.to_string())
}

/// The port of the `m=` line of a reply's Local.
fn local_port(reply: &str) -> u16 {
    let m = reply
        .find("m=message ")
        .or_else(|| reply.find("m=image "))
        .expect(reply);
    reply[m..]
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect(reply)
}

#[test]
fn seed_steps_2_to_20_drive_the_data_plane_like_the_annex_says() {
    let mut d = mg();
    // Steps 2-4: Add T1 with a choose context; the reply carries the chosen address and port.
    let r1 = send(&mut d, &add(1, "$", "access"));
    let p1 = local_port(&r1);
    assert!((41000..=41999).contains(&p1), "{r1}");
    assert_eq!(r1, format!("!/3 [198.51.100.2]:2944\nP=1{{C=1{{A=tcp/access/1{{M{{ST=1{{L{{v=0\r\nc=IN IP4 192.0.2.10\r\nm=message {p1} TCP/MSRP *\r\n}}}}}}}}}}}}"));
    let (ctx, t1) = added(&r1);
    // Steps 5-7: T2 into the same context, in the core realm.
    let r2 = send(&mut d, &add(2, &ctx.to_string(), "core"));
    let p2 = local_port(&r2);
    assert!((42000..=42999).contains(&p2), "{r2}");
    assert!(
        r2.contains(&format!("c=IN IP4 192.0.2.20\r\nm=message {p2} TCP/MSRP *")),
        "{r2}"
    );
    let (_, t2) = added(&r2);
    // Steps 12-15: UE-Y is the TCP server: T2 connects out.
    let r = send(
        &mut d,
        &modify(3, ctx, &t2, "active", "203.0.113.50", 2855, "passive"),
    );
    assert!(r.contains("a=setup:active"), "{r}");
    // Steps 18-20: T1 waits for UE-X.
    let r = send(
        &mut d,
        &modify(4, ctx, &t1, "passive", "203.0.113.7", 9, "active"),
    );
    assert!(r.contains("a=setup:passive"), "{r}");

    let cmds = &d.executor_mut().dataplane_mut().0;
    let reserves: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Dp::Reserve { key, local } => Some((*key, *local)),
            _ => None,
        })
        .collect();
    assert_eq!(reserves.len(), 2);
    assert_eq!(
        reserves[0].1,
        (SocketAddrV4::new("192.0.2.10".parse().unwrap(), p1)).into()
    );
    assert_eq!(
        reserves[1].1,
        (SocketAddrV4::new("192.0.2.20".parse().unwrap(), p2)).into()
    );
    let (k1, k2) = (reserves[0].0, reserves[1].0);
    assert!(
        cmds.contains(&Dp::Join { a: k1, b: k2 }),
        "both legs of the context are joined"
    );
    assert!(cmds.contains(&Dp::Start {
        key: k2,
        role: LegRole::Active {
            remote: "203.0.113.50:2855".parse().unwrap()
        },
        accept: Accept::Gate("203.0.113.50".parse().unwrap()),
        timers: LegTimers::default(),
        tls: None,
        framing: Framing::Msrp,
    }));
    assert!(cmds.contains(&Dp::Start {
        key: k1,
        role: LegRole::Passive,
        accept: Accept::Gate("203.0.113.7".parse().unwrap()),
        timers: LegTimers::default(),
        tls: None,
        framing: Framing::Msrp,
    }));
    // TCP/MSRP reserved without CEMA: the pair is MSRP-aware.
    // Mode: Inactive at Add (gate closed), SendReceive at Modify (gate open).
    assert_eq!(
        cmds.iter()
            .filter(
                |c| matches!(c, Dp::SetGate { key, gate } if *key == k1 && *gate == Gate::CLOSED)
            )
            .count(),
        1
    );
    assert!(cmds.contains(&Dp::SetGate {
        key: k1,
        gate: Gate::OPEN
    }));
    // T2's Start comes before T1's, as in the seed.
    let pos = |k| {
        cmds.iter()
            .position(|c| matches!(c, Dp::Start { key, .. } if *key == k))
            .unwrap()
    };
    assert!(pos(k2) < pos(k1));

    // Release: Subtract both with statistics. The reply waits for the worker's final count;
    // the ALG's retransmission meanwhile gets Pending and no second Release.
    let subtract =
        format!("!/3 [198.51.100.1]:2944 T=5{{C={ctx}{{S={t1}{{AT{{SA}}}},S={t2}{{AT{{SA}}}}}}}}");
    let mut out = Vec::new();
    d.datagram(alg(), subtract.as_bytes(), 0, |_, b| out.push(b), |_| {});
    assert!(out.is_empty(), "no reply before the statistics are in");
    assert!(d
        .executor_mut()
        .dataplane_mut()
        .0
        .contains(&Dp::Release { key: k1 }));
    assert!(d
        .executor_mut()
        .dataplane_mut()
        .0
        .contains(&Dp::Release { key: k2 }));
    assert_eq!(
        (d.executor_mut().contexts(), d.executor_mut().terminations()),
        (0, 0)
    );
    d.datagram(alg(), subtract.as_bytes(), 1, |_, b| out.push(b), |_| {});
    let pending = String::from_utf8(out.remove(0).to_vec()).unwrap();
    assert!(pending.contains("PN=5"), "{pending}");
    let releases = d
        .executor()
        .dataplane()
        .0
        .iter()
        .filter(|c| matches!(c, Dp::Release { .. }))
        .count();
    assert_eq!(releases, 2);
    for (key, n) in [(k1, 1000), (k2, 2000)] {
        d.executor_mut().on_event(&Event::Closed {
            key,
            cause: ReleaseCause::Released,
            stats: LegStats {
                octets_in: n,
                octets_out: n + 1,
                ..LegStats::default()
            },
        });
    }
    let done = d.executor_mut().completed();
    assert_eq!(done.len(), 1);
    let (peer, tid, version, result) = done.into_iter().next().unwrap();
    d.complete(peer, tid, version, result, 2, |_, b| out.push(b));
    let r = String::from_utf8(out.remove(0).to_vec()).unwrap();
    assert!(
        r.contains(&format!("S={t1}{{SA{{nt/os=1001,nt/or=1000,nt/dur=0}}}}")),
        "{r}"
    );
    assert!(
        r.contains(&format!("S={t2}{{SA{{nt/os=2001,nt/or=2000,nt/dur=0}}}}")),
        "{r}"
    );
    // Later retransmissions get the same reply from the cache.
    d.datagram(alg(), subtract.as_bytes(), 3, |_, b| out.push(b), |_| {});
    assert_eq!(String::from_utf8(out.remove(0).to_vec()).unwrap(), r);
}

/// A leg whose peer closed before the Subtract gets no second report from the worker when
/// it is released (its statistics were final when it closed): the Subtract is answered at
/// once, not after the statistics wait, and the duration ends when the leg closed.
#[test]
fn subtract_of_a_leg_already_closed_does_not_wait_for_statistics() {
    let mut d = mg();
    let (ctx, t1) = added(&send(&mut d, &add(1, "$", "access")));
    let (_, t2) = added(&send(&mut d, &add(2, &ctx.to_string(), "core")));
    send(
        &mut d,
        &modify(3, ctx, &t2, "active", "203.0.113.50", 2855, "passive"),
    );
    send(
        &mut d,
        &modify(4, ctx, &t1, "passive", "203.0.113.7", 9, "active"),
    );
    let keys: Vec<_> = d
        .executor()
        .dataplane()
        .0
        .iter()
        .filter_map(|c| match c {
            Dp::Reserve { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    let (k1, k2) = (keys[0], keys[1]);
    d.executor_mut().set_now(1_000);
    for (key, remote) in [(k1, "203.0.113.7:50000"), (k2, "203.0.113.50:2855")] {
        d.executor_mut().on_event(&Event::Established {
            key,
            remote: remote.parse().unwrap(),
        });
    }
    d.executor_mut().set_now(4_000);
    for (key, cause) in [
        (k1, ReleaseCause::PeerClosed),
        (k2, ReleaseCause::PartnerGone),
    ] {
        d.executor_mut().on_event(&Event::Closed {
            key,
            cause,
            stats: LegStats {
                octets_in: 7,
                octets_out: 9,
                ..LegStats::default()
            },
        });
    }
    d.executor_mut().set_now(9_000);
    let subtract =
        format!("!/3 [198.51.100.1]:2944 T=5{{C={ctx}{{S={t1}{{AT{{SA}}}},S={t2}{{AT{{SA}}}}}}}}");
    let mut out = Vec::new();
    d.datagram(
        alg(),
        subtract.as_bytes(),
        9_000,
        |_, b| out.push(b),
        |_| {},
    );
    // The clock has not moved: nothing waited for the statistics deadline.
    let done = d.executor_mut().completed();
    assert_eq!(done.len(), 1, "answered without waiting");
    let (peer, tid, version, result) = done.into_iter().next().unwrap();
    d.complete(peer, tid, version, result, 9_000, |_, b| out.push(b));
    let r = String::from_utf8(out.pop().unwrap().to_vec()).unwrap();
    assert!(
        r.contains(&format!("S={t1}{{SA{{nt/os=9,nt/or=7,nt/dur=3000}}}}")),
        "{r}"
    );
}

#[test]
fn merge_mode_both_peers_connect_in() {
    let mut d = mg();
    let (ctx, t1) = added(&send(&mut d, &add(1, "$", "access")));
    let (_, t2) = added(&send(&mut d, &add(2, &ctx.to_string(), "core")));
    send(
        &mut d,
        &modify(3, ctx, &t1, "passive", "203.0.113.7", 9, "active"),
    );
    send(
        &mut d,
        &modify(4, ctx, &t2, "passive", "203.0.113.50", 9, "active"),
    );
    let starts: Vec<_> = d
        .executor()
        .dataplane()
        .0
        .iter()
        .filter(|c| {
            matches!(
                c,
                Dp::Start {
                    role: LegRole::Passive,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(starts.len(), 2);
}

#[test]
fn a_retransmitted_add_creates_one_termination() {
    let mut d = mg();
    let a = send(&mut d, &add(1, "$", "access"));
    let b = send(&mut d, &add(1, "$", "access"));
    assert_eq!(a, b);
    assert_eq!(d.executor_mut().terminations(), 1);
    assert_eq!(
        d.executor()
            .dataplane()
            .0
            .iter()
            .filter(|c| matches!(c, Dp::Reserve { .. }))
            .count(),
        1
    );
}

#[test]
fn errors_carry_the_h248_codes() {
    let mut d = mg();
    let (ctx, t1) = added(&send(&mut d, &add(1, "$", "access")));
    let code = |r: &str| {
        r.split("ER=")
            .nth(1)
            .map(|s| s[..3].to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        code(&send(
            &mut d,
            &modify(
                2,
                ctx,
                "tcp/access/99",
                "passive",
                "203.0.113.7",
                9,
                "active"
            )
        )),
        "430"
    );
    assert_eq!(
        code(&send(
            &mut d,
            &modify(3, 77, &t1, "passive", "203.0.113.7", 9, "active")
        )),
        "411"
    );
    let (ctx2, _) = added(&send(&mut d, &add(4, "$", "access")));
    assert_eq!(
        code(&send(
            &mut d,
            &modify(5, ctx2, &t1, "passive", "203.0.113.7", 9, "active")
        )),
        "435"
    );
    assert_eq!(code(&send(&mut d, &add(6, "$", "nowhere"))), "449");
    let tls = add(7, "$", "access").replace("TCP/MSRP", "TCP/TLS/MSRP");
    assert_eq!(code(&send(&mut d, &tls)), "501");
    let rtp = add(8, "$", "access").replace("message $ TCP/MSRP *", "audio $ RTP/AVP 0");
    assert_eq!(code(&send(&mut d, &rtp)), "515");
    send(&mut d, &add(9, &ctx.to_string(), "core"));
    assert_eq!(
        code(&send(&mut d, &add(10, &ctx.to_string(), "core"))),
        "434"
    );
    let odd = add(11, "$", "access").replace("ipdc/realm = \"access\"", "xyz/abc = 1");
    assert_eq!(code(&send(&mut d, &odd)), "445");
    // Each command is counted with its result, for metrics.
    let counted: Vec<_> = d.executor().commands().collect();
    assert!(
        counted.iter().any(|&(c, r, _)| c == "add" && r == 0),
        "{counted:?}"
    );
    assert!(counted.contains(&("add", 515, 1)), "{counted:?}");
    assert!(
        counted
            .iter()
            .any(|&(c, r, n)| c == "modify" && r == 430 && n == 1),
        "{counted:?}"
    );
    assert!(
        counted.iter().any(|&(c, r, _)| c == "modify" && r == 411),
        "{counted:?}"
    );
}

#[test]
fn an_ipv6_local_takes_an_ipv6_address_and_families_do_not_mix() {
    let mut d = mg();
    let code = |r: &str| {
        r.split("ER=")
            .nth(1)
            .map(|s| s[..3].to_string())
            .unwrap_or_default()
    };
    let add6 = |tid: u32, realm: &str| add(tid, "$", realm).replace("c=IN IP4 $", "c=IN IP6 $");
    let reply = send(&mut d, &add6(1, "access"));
    assert!(reply.contains("c=IN IP6 2001:db8:1::10"), "{reply}");
    let (ctx, t1) = added(&reply);
    let port = local_port(&reply);
    let want: SocketAddr = format!("[2001:db8:1::10]:{port}").parse().unwrap();
    assert!(
        d.executor()
            .dataplane()
            .0
            .iter()
            .any(|c| matches!(c, Dp::Reserve { local, .. } if *local == want)),
        "the worker reserves the IPv6 address"
    );
    let sent = d.executor().dataplane().0.len();
    let terms = d.executor().terminations();

    // A realm without IPv6, a c= of another type, an address not of its type: 449, and
    // nothing is reserved.
    assert_eq!(code(&send(&mut d, &add6(2, "core"))), "449");
    let atm = add(3, "$", "access").replace("c=IN IP4 $", "c=ATM NSAP $");
    assert_eq!(code(&send(&mut d, &atm)), "449");
    let mixed = modify(4, ctx, &t1, "passive", "203.0.113.7", 9, "active")
        .replace("c=IN IP4 203.0.113.7", "c=IN IP6 203.0.113.7");
    assert_eq!(code(&send(&mut d, &mixed)), "449");
    // An IPv4 Remote for an IPv6 termination: 449, and the leg is not started.
    let v4_remote = modify(5, ctx, &t1, "passive", "203.0.113.7", 9, "active");
    assert_eq!(code(&send(&mut d, &v4_remote)), "449");
    assert_eq!(
        d.executor().dataplane().0.len(),
        sent,
        "no command was sent"
    );
    assert_eq!(d.executor().terminations(), terms);

    // An IPv6 Remote: the leg is started, gated on the UE's IPv6 address.
    let v6_remote = modify(6, ctx, &t1, "passive", "2001:db8:1:100::7", 9, "active")
        .replace("c=IN IP4", "c=IN IP6");
    let reply = send(&mut d, &v6_remote);
    assert_eq!(code(&reply), "", "{reply}");
    let ue: std::net::IpAddr = "2001:db8:1:100::7".parse().unwrap();
    assert!(
        d.executor().dataplane().0.iter().any(|c| matches!(
            c,
            Dp::Start { role: LegRole::Passive, accept: Accept::Gate(ip), .. } if *ip == ue
        )),
        "{:?}",
        d.executor().dataplane().0
    );
}

/// The key the MG gave the n-th termination it reserved.
fn reserved(d: &Dispatcher<Mg<Recorder>>, n: usize) -> dataplane::contract::TerminationKey {
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
fn armed_events_become_notifications_and_others_do_not() {
    let mut d = mg();
    let (ctx, t1) = added(&send(&mut d, &add(1, "$", "access")));
    let (_, t2) = added(&send(&mut d, &add(2, &ctx.to_string(), "core")));
    let (k1, k2) = (reserved(&d, 0), reserved(&d, 1));
    // Step 24's event armed on T1 only; T2 arms the failure and release events.
    let arm = |tid: u32, term: &str, rid: u32, events: &str| {
        format!("!/3 [198.51.100.1]:2944 T={tid}{{C={ctx}{{MF={term}{{E={rid}{{{events}}}}}}}}}")
    };
    let r = send(&mut d, &arm(3, &t1, 104, "tcpc/est"));
    assert!(!r.contains("ER="), "{r}");
    let r = send(&mut d, &arm(4, &t2, 103, "tcpc/estfail,tcpc/rel"));
    assert!(!r.contains("ER="), "{r}");
    let r = send(&mut d, &arm(5, &t2, 105, "tcpc/nosuch"));
    assert!(r.contains("ER=451"), "{r}");
    let r = send(&mut d, &arm(6, &t2, 105, "nopkg/ev"));
    assert!(r.contains("ER=445"), "{r}");

    d.executor_mut()
        .on_event(&Event::CutThrough { a: k2, b: k1 });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        (n[0].context, n[0].termination.as_str(), n[0].request_id),
        (ContextId::Id(ctx), t1.as_str(), 104)
    );
    assert_eq!(n[0].event, IqEvent::TcpEstablished);

    d.executor_mut().on_event(&Event::Closed {
        key: k2,
        cause: ReleaseCause::PeerReset,
        stats: LegStats::default(),
    });
    d.executor_mut().on_event(&Event::Closed {
        key: k1,
        cause: ReleaseCause::PartnerGone,
        stats: LegStats::default(),
    });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1, "only T2 armed the release: {n:?}");
    assert_eq!(n[0].event, IqEvent::TcpReleased);
    assert_eq!(
        n[0].parameter_texts(),
        vec![("cause".into(), "reset".to_string())]
    );

    // A bare Events disarms.
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=7{{C={ctx}{{MF={t2}{{E}}}}}}"),
    );
    assert!(!r.contains("ER="), "{r}");
    d.executor_mut().on_event(&Event::ConnectFailed {
        key: k2,
        failure: dataplane::contract::ConnectFailure::Timeout,
    });
    assert_eq!(d.executor_mut().notifications().count(), 0);
}

#[test]
fn an_armed_heartbeat_beats_at_its_interval() {
    let mut d = mg();
    let (ctx, t1) = added(&send(&mut d, &add(1, "$", "access")));
    d.executor_mut().set_now(1_000);
    send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=2{{C={ctx}{{MF={t1}{{E=101{{hangterm/thb}}}}}}}}"),
    );
    d.executor_mut().set_now(60_999);
    assert_eq!(d.executor_mut().notifications().count(), 0);
    d.executor_mut().set_now(61_000);
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].event, n[0].request_id), (IqEvent::Heartbeat, 101));
    d.executor_mut().set_now(61_500);
    assert_eq!(d.executor_mut().notifications().count(), 0);
    d.executor_mut().set_now(121_000);
    assert_eq!(d.executor_mut().notifications().count(), 1);
}

#[test]
fn the_inactivity_timer_is_armed_on_root_only() {
    let mut d = mg();
    let r = send(
        &mut d,
        "!/3 [198.51.100.1]:2944 T=1{C=-{MF=ROOT{E=7{it/ito{mit=500}}}}}",
    );
    assert!(!r.contains("ER="), "{r}");
    assert_eq!(d.executor_mut().inactivity(), Some((7, 5000)));
    let r = send(
        &mut d,
        "!/3 [198.51.100.1]:2944 T=2{C=-{MF=ROOT{E=8{it/ito}}}}",
    );
    assert!(r.contains("ER=457"), "mit is required: {r}");
    let r = send(
        &mut d,
        "!/3 [198.51.100.1]:2944 T=3{C=-{MF=ROOT{E=8{tcpc/est}}}}",
    );
    assert!(r.contains("ER=451"), "{r}");
    let r = send(&mut d, "!/3 [198.51.100.1]:2944 T=4{C=-{MF=ROOT{E}}}");
    assert!(!r.contains("ER="), "{r}");
    assert_eq!(d.executor_mut().inactivity(), None);
}

#[test]
fn wildcards_move_and_audit_capabilities() {
    let mut d = mg();
    let (c1, t1) = added(&send(&mut d, &add(1, "$", "access")));
    let (_, t2) = added(&send(&mut d, &add(2, &c1.to_string(), "core")));
    let (c2, t3) = added(&send(&mut d, &add(3, "$", "access")));
    // Modify with a wildcard: every termination of context 1, one reply each.
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=4{{C={c1}{{MF=tcp/*{{M{{ST=1{{O{{MO=SO}}}}}}}}}}}}"),
    );
    assert!(
        r.contains(&format!("MF={t1}")) && r.contains(&format!("MF={t2}")),
        "{r}"
    );
    assert!(!r.contains(&t3), "{r}");
    // AuditValue with a wildcard across one realm's names.
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=5{{C={c1}{{AV=tcp/core/*{{AT{{M}}}}}}}}"),
    );
    assert!(r.contains(&t2) && !r.contains(&format!("AV={t1}")), "{r}");
    let r = send(
        &mut d,
        &format!(
            "!/3 [198.51.100.1]:2944 T=6{{C={c1}{{MF=nothing/*{{M{{ST=1{{O{{MO=SO}}}}}}}}}}}}"
        ),
    );
    assert!(r.contains("ER=431"), "{r}");
    // Move T2 from context 1 into context 2: split from T1, joined with T3; context 1 keeps T1.
    let k2 = reserved(&d, 1);
    let k3 = reserved(&d, 2);
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=7{{C={c2}{{MV={t2}{{M{{ST=1{{O{{MO=SR}}}}}}}}}}}}"),
    );
    assert!(r.contains(&format!("MV={t2}")), "{r}");
    let cmds = &d.executor_mut().dataplane_mut().0;
    assert!(cmds.contains(&Dp::Split { key: k2 }));
    assert!(cmds.contains(&Dp::Join { a: k3, b: k2 }));
    // Context 2 is full now.
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=8{{C={c2}{{MV={t1}{{}}}}}}"),
    );
    assert!(r.contains("ER=434"), "{r}");
    // Subtract with a wildcard in context 2 releases both there.
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=9{{C={c2}{{S=tcp/*{{AT{{}}}}}}}}"),
    );
    assert!(
        r.contains(&format!("S={t2}")) && r.contains(&format!("S={t3}")),
        "{r}"
    );
    assert_eq!(d.executor_mut().terminations(), 1);
    // AuditCapabilities lists the packages.
    let r = send(&mut d, "!/3 [198.51.100.1]:2944 T=10{C=-{AC=ROOT{AT{PG}}}}");
    assert!(r.contains("nt-1") && r.contains("ipdc-1"), "{r}");
}

/// The framing each Start asks for, in order.
fn framings(d: &Dispatcher<Mg<Recorder>>) -> Vec<Framing> {
    d.executor()
        .dataplane()
        .0
        .iter()
        .filter_map(|c| match c {
            Dp::Start { framing, .. } => Some(*framing),
            _ => None,
        })
        .collect()
}

fn call_with(d: &mut Dispatcher<Mg<Recorder>>, tid: u32, proto: &str, extra: &str) -> u32 {
    let add = |tid: u32, ctx: &str, realm: &str| {
        format!("MEGACO/3 [198.51.100.1]:2944\nTransaction = {tid} {{ Context = {ctx} {{ Add = $ {{ Media {{ Stream = 1 {{ LocalControl {{ Mode = SendReceive, ipdc/realm = \"{realm}\" }}, Local {{\nv=0\nc=IN IP4 $\nm=message $ {proto} *\n}} }} }} }} }} }}")
    };
    let (ctx, t1) = added(&send(d, &add(tid, "$", "access")));
    let r = send(
        d,
        &format!("MEGACO/3 [198.51.100.1]:2944\nTransaction = {} {{ Context = {ctx} {{ Modify = {t1} {{ Media {{ Stream = 1 {{ Remote {{\nv=0\nc=IN IP4 203.0.113.7\nm=message 9 {proto} *\na=setup:active\n{extra}}} }} }} }} }} }}", tid + 1),
    );
    assert!(!r.contains("ER="), "{r}");
    ctx
}

#[test]
fn framing_follows_the_transport_and_cema() {
    let mut d = mg();
    call_with(&mut d, 1, "TCP/MSRP", "");
    call_with(&mut d, 3, "TCP/MSRP", "a=msrp-cema\n");
    call_with(&mut d, 5, "TCP/BFCP", "");
    call_with(&mut d, 7, "TCP", "");
    assert_eq!(
        framings(&d),
        vec![
            Framing::Msrp,
            Framing::Agnostic,
            Framing::Bfcp,
            Framing::Agnostic
        ]
    );
}

#[test]
fn violations_notify_and_statistics_reach_audit_subtract_and_status() {
    let mut d = mg();
    let ctx = call_with(&mut d, 1, "TCP/MSRP", "");
    let k1 = reserved(&d, 0);
    let t1 = "tcp/access/1";
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=10{{C={ctx}{{MF={t1}{{E=7{{tcpc/rel}}}}}}}}"),
    );
    assert!(!r.contains("ER="), "{r}");
    // The worker reports counts in an audit answer.
    let received = MsrpCounters {
        chunks: 12,
        messages: 10,
        aborted: 1,
        reports: 3,
        body_octets: 4567,
        responses_2xx: 9,
        responses_4xx: 2,
        ..MsrpCounters::default()
    };
    let sent = MsrpCounters {
        chunks: 4,
        messages: 4,
        responses_5xx: 1,
        ..MsrpCounters::default()
    };
    d.executor_mut().on_event(&Event::Stats {
        key: k1,
        stats: LegStats {
            app: AppStats::Msrp { received, sent },
            ..LegStats::default()
        },
    });
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=11{{C={ctx}{{AV={t1}{{AT{{SA}}}}}}}}"),
    );
    for item in [
        "msrpst/chkr=12",
        "msrpst/msgr=10",
        "msrpst/abtr=1",
        "msrpst/rptr=3",
        "msrpst/bodyr=4567",
        "msrpst/r2xxr=9",
        "msrpst/r4xxr=2",
        "msrpst/chks=4",
        "msrpst/r5xxs=1",
    ] {
        assert!(r.contains(item), "{item} in {r}");
    }
    // The peer breaks framing: the Violation, then the Closed with its cause.
    let violation = Violation::Msrp(MsrpViolation::BadEndLine);
    d.executor_mut()
        .on_event(&Event::Violation { key: k1, violation });
    d.executor_mut().on_event(&Event::Closed {
        key: k1,
        cause: ReleaseCause::Violation,
        stats: LegStats {
            app: AppStats::Msrp { received, sent },
            ..LegStats::default()
        },
    });
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].event, IqEvent::TcpReleased);
    assert_eq!(
        n[0].parameter_texts(),
        vec![
            ("cause".into(), "violation".to_string()),
            ("viol".into(), "msrp-endline".to_string())
        ]
    );
    let totals = d.executor_mut().app_totals();
    assert_eq!(
        (
            totals.msrp_violations,
            totals.msrp_chunks,
            totals.msrp_terminations
        ),
        (1, 12, 1)
    );
    // BFCP statistics list the primitives seen.
    let ctx2 = call_with(&mut d, 20, "TCP/BFCP", "");
    let k2 = reserved(&d, 1);
    let mut primitives = [0; 18];
    primitives[0] = 5;
    primitives[10] = 1;
    let b = BfcpCounters {
        frames: 6,
        octets: 120,
        primitives,
    };
    d.executor_mut().on_event(&Event::Stats {
        key: k2,
        stats: LegStats {
            app: AppStats::Bfcp {
                received: b,
                sent: BfcpCounters::default(),
            },
            ..LegStats::default()
        },
    });
    let r = send(
        &mut d,
        &format!("!/3 [198.51.100.1]:2944 T=30{{C={ctx2}{{AV=tcp/access/2{{AT{{SA}}}}}}}}"),
    );
    for item in [
        "bfcpst/frmr=6",
        "bfcpst/octr=120",
        "bfcpst/p1r=5",
        "bfcpst/p11r=1",
        "bfcpst/frms=0",
    ] {
        assert!(r.contains(item), "{item} in {r}");
    }
    assert!(!r.contains("bfcpst/p2r"), "{r}");
    // Subtract answers with the worker's final counts.
    let subtract =
        format!("!/3 [198.51.100.1]:2944 T=31{{C={ctx2}{{S=tcp/access/2{{AT{{SA}}}}}}}}");
    let mut out = Vec::new();
    d.datagram(alg(), subtract.as_bytes(), 0, |_, b| out.push(b), |_| {});
    assert!(out.is_empty());
    primitives[1] = 2;
    d.executor_mut().on_event(&Event::Closed {
        key: k2,
        cause: ReleaseCause::Released,
        stats: LegStats {
            app: AppStats::Bfcp {
                received: BfcpCounters {
                    frames: 8,
                    octets: 150,
                    primitives,
                },
                sent: BfcpCounters::default(),
            },
            ..LegStats::default()
        },
    });
    let (peer, tid, version, result) = d.executor_mut().completed().into_iter().next().unwrap();
    d.complete(peer, tid, version, result, 1, |_, b| out.push(b));
    let r = String::from_utf8(out.remove(0).to_vec()).unwrap();
    for item in ["bfcpst/frmr=8", "bfcpst/p2r=2", "bfcpst/p1r=5"] {
        assert!(r.contains(item), "{item} in {r}");
    }
    assert_eq!(d.executor_mut().app_totals().bfcp_frames, 8);
}
