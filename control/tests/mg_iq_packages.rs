//! The Iq profile's `gm`, `tman`, `ds` and `ipra` packages at the MG: what an Add or Modify
//! carrying them sends the worker (the filter, policer and DSCP before the leg starts), the
//! realm's defaults and bounds, all-or-nothing on a bad value, the echo in replies and
//! AuditValue, the drop statistics, ROOT's available realms and their Notify, and local
//! ports nobody can predict.

use std::collections::HashSet;
use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::iq::{IqEvent, RealmPolicy};
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Command as Dp, Event, LegPolicy, LegStats, TerminationKey};
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

fn realm(name: &str, address: &str, first: u16, last: u16, policy: RealmPolicy) -> Realm {
    Realm {
        name: name.into(),
        addresses: vec![address.parse().unwrap()],
        first_port: first,
        last_port: last,
        policy,
    }
}

fn mg_with(core: RealmPolicy) -> Dispatcher<Mg<Recorder>> {
    let mut cfg = MgConfig::new(vec![
        realm("access", "192.0.2.10", 40000, 49999, RealmPolicy::default()),
        realm("core", "192.0.2.20", 50000, 50999, core),
    ]);
    cfg.max_terminations = 5000;
    cfg.max_contexts = 5000;
    Dispatcher::new(
        Mg::new(cfg, Recorder::default()),
        ReplyCache::new(TransactionTimers::default(), 10_000),
        MId::Ip4 {
            addr: [198, 51, 100, 2],
            port: Some(2944),
        },
        3,
        vec![alg().ip()],
    )
}

fn mg() -> Dispatcher<Mg<Recorder>> {
    mg_with(RealmPolicy::default())
}

/// Sends one transaction; returns the reply's text.
fn send(d: &mut Dispatcher<Mg<Recorder>>, tid: u32, body: &str) -> String {
    let mut out = Vec::new();
    let text = format!("!/3 [198.51.100.1]:2944 T={tid}{{{body}}}");
    d.datagram(alg(), text.as_bytes(), 0, |_, b| out.push(b), |_| {});
    String::from_utf8(out.remove(0).to_vec()).unwrap()
}

fn add_tcp(realm: &str, props: &str) -> String {
    format!("C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm={realm}{props}}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}")
}

fn add_udp(realm: &str, props: &str) -> String {
    format!("C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm={realm}{props}}},L{{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}}}}}}}}}}")
}

/// The context, termination and port of an Add's reply.
fn added(reply: &str) -> (u32, String, u16) {
    let c = reply.split("C=").nth(1).unwrap();
    let ctx: u32 = c[..c.find('{').unwrap()].parse().expect(reply);
    let a = reply.split("A=").nth(1).unwrap();
    let name = a[..a.find('{').unwrap()].to_string();
    let m = reply.find("\nm=").expect(reply) + 1;
    let port = reply[m..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .expect(reply);
    (ctx, name, port)
}

fn policies(d: &Dispatcher<Mg<Recorder>>) -> Vec<(TerminationKey, LegPolicy)> {
    d.executor()
        .dataplane()
        .0
        .iter()
        .filter_map(|c| match c {
            Dp::SetPolicy { key, policy } => Some((*key, *policy)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_add_sends_the_filter_policer_and_dscp_before_the_leg_starts_and_a_modify_changes_them() {
    let mut d = mg();
    let r = send(
        &mut d,
        1,
        &add_udp(
            "access",
            ",gm/saf=ON,gm/sam=198.18.100.0/24,gm/spf=ON,tman/pol=ON,tman/sdr=12500,tman/mbs=3000,ds/dscp=2E",
        ),
    );
    assert!(!r.contains("ER="), "{r}");
    // The reply echoes what is in effect.
    for p in [
        "gm/saf=ON",
        "gm/sam=198.18.100.0/24",
        "gm/spf=ON",
        "tman/pol=ON",
        "tman/sdr=12500",
        "tman/mbs=3000",
        "ds/dscp=2E",
    ] {
        assert!(r.contains(p), "{p} in {r}");
    }
    let (ctx, t1, _) = added(&r);
    // No Remote yet: the port filter (spf without spr) admits nothing until there is one.
    let p = policies(&d);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1.filter.ports, Some((0, 0)));
    // The Remote gives the port; the policy follows and precedes the start.
    let r = send(
        &mut d,
        2,
        &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 198.18.100.7\nm=image 5004 udptl t38\n}}}}}}}}}}"),
    );
    assert!(!r.contains("ER="), "{r}");
    let cmds = &d.executor().dataplane().0;
    let set = cmds
        .iter()
        .rposition(|c| matches!(c, Dp::SetPolicy { .. }))
        .unwrap();
    let start = cmds
        .iter()
        .position(|c| matches!(c, Dp::StartDatagram { .. }))
        .unwrap();
    assert!(set < start, "{cmds:?}");
    let lp = policies(&d).last().unwrap().1;
    assert_eq!(
        lp.filter.address,
        Some(("198.18.100.0".parse().unwrap(), 24))
    );
    assert_eq!(lp.filter.ports, Some((5004, 5004)));
    assert_eq!(lp.dscp, 46);
    // A Modify that changes the DSCP only: one SetPolicy, the rest kept.
    let before = policies(&d).len();
    let r = send(
        &mut d,
        3,
        &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{ds/dscp=1A}}}}}}}}}}"),
    );
    assert!(
        r.contains("ds/dscp=1A") && r.contains("tman/sdr=12500"),
        "{r}"
    );
    let p = policies(&d);
    assert_eq!(p.len(), before + 1);
    assert_eq!(p.last().unwrap().1, LegPolicy { dscp: 26, ..lp });
    // The same again sends nothing.
    send(
        &mut d,
        4,
        &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{ds/dscp=1A}}}}}}}}}}"),
    );
    assert_eq!(policies(&d).len(), before + 1);
    // AuditValue shows them.
    let r = send(&mut d, 5, &format!("C={ctx}{{AV={t1}{{AT{{M,SA}}}}}}"));
    assert!(
        r.contains("gm/sam=198.18.100.0/24") && r.contains("ds/dscp=1A"),
        "{r}"
    );
}

#[test]
fn a_bad_value_is_refused_naming_the_property_and_leaves_nothing() {
    let mut d = mg();
    let r = send(&mut d, 1, &add_tcp("access", ""));
    let (ctx, t1, _) = added(&r);
    let sent = d.executor().dataplane().0.len();
    for (tid, props, code, name) in [
        (2, "tman/sdr=0", "449", "tman/sdr"),
        (3, "gm/sam=300.1.1.1", "449", "gm/sam"),
        (4, "ds/dscp=7F", "449", "ds/dscp"),
        (5, "gm/esas=ON", "501", "gm/esas"),
        (6, "tman/pol=ON", "449", "tman/pol"),
        (7, "tman/frob=1", "445", "tman/frob"),
        // A filter of the other family than the termination's address (IPv4 here).
        (8, "gm/sam=\"2001:db8:1::/48\"", "449", "gm/sam"),
    ] {
        let r = send(
            &mut d,
            tid,
            &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{{props}}}}}}}}}}}"),
        );
        assert!(r.contains(&format!("ER={code}")), "{props}: {r}");
        assert!(r.contains(name), "{props}: {r}");
        // And as an Add: refused before anything is taken.
        let r = send(&mut d, 100 + tid, &add_tcp("access", &format!(",{props}")));
        assert!(r.contains(&format!("ER={code}")), "{props}: {r}");
    }
    assert_eq!(
        d.executor().dataplane().0.len(),
        sent,
        "a refused command sent nothing"
    );
    assert_eq!(d.executor().terminations(), 1);
    assert_eq!(d.executor().pools()[0].in_use, 1);
    // spf without spr on a TCP leg whose peer connects: its source port is its own.
    let r = send(
        &mut d,
        20,
        &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{gm/spf=ON}},R{{\nv=0\nc=IN IP4 198.18.100.7\nm=message 9 TCP/MSRP *\na=setup:active\n}}}}}}}}}}"),
    );
    assert!(r.contains("ER=449") && r.contains("gm/spf"), "{r}");
    assert_eq!(d.executor().dataplane().0.len(), sent);
}

#[test]
fn the_realm_gives_the_defaults_and_bounds() {
    let core = RealmPolicy {
        dscp: 46,
        police: Some((100_000, 10_000)),
        sdr_range: (1000, 200_000),
        mbs_range: (1500, 20_000),
    };
    let mut d = mg_with(core);
    // Nothing asked: the realm's DSCP and policer, echoed only in AuditValue.
    let r = send(&mut d, 1, &add_tcp("core", ""));
    assert!(!r.contains("ds/dscp"), "{r}");
    let (ctx, t, _) = added(&r);
    let lp = policies(&d)[0].1;
    assert_eq!(lp.dscp, 46);
    assert_eq!(lp.police.unwrap().sustained.rate, 100_000);
    let r = send(&mut d, 2, &format!("C={ctx}{{AV={t}{{AT{{M}}}}}}"));
    assert!(
        r.contains("ds/dscp=2E") && r.contains("tman/sdr=100000"),
        "{r}"
    );
    // Policing off on request; a rate inside the bounds; one outside is refused.
    let r = send(&mut d, 3, &add_tcp("core", ",tman/pol=OFF"));
    assert!(!r.contains("ER="), "{r}");
    assert_eq!(policies(&d).last().unwrap().1.police, None);
    let r = send(&mut d, 4, &add_tcp("core", ",tman/sdr=150000"));
    assert!(!r.contains("ER="), "{r}");
    let r = send(&mut d, 5, &add_tcp("core", ",tman/sdr=250000"));
    assert!(r.contains("ER=449") && r.contains("tman/sdr"), "{r}");
    // The access realm has none: no SetPolicy at all for a plain call.
    let before = policies(&d).len();
    send(&mut d, 6, &add_tcp("access", ""));
    assert_eq!(policies(&d).len(), before);
}

#[test]
fn drop_statistics_are_reported_for_policed_and_filtered_terminations() {
    let mut d = mg();
    let r = send(
        &mut d,
        1,
        &add_tcp(
            "access",
            ",gm/saf=ON,gm/sam=198.18.100.7,tman/pol=ON,tman/sdr=12500,tman/mbs=3000",
        ),
    );
    let (ctx, t1, _) = added(&r);
    let r = send(&mut d, 2, &add_tcp("access", ""));
    let (_, t2, _) = added(&r);
    let key = policies(&d)[0].0;
    d.executor_mut().on_event(&Event::Stats {
        key,
        stats: LegStats {
            policed: 17,
            filtered: 5,
            ..Default::default()
        },
    });
    let r = send(&mut d, 3, &format!("C={ctx}{{AV={t1}{{AT{{M,SA}}}}}}"));
    assert!(r.contains("tmanr/dp=17") && r.contains("gmst/dp=5"), "{r}");
    // A termination without them does not report them.
    let r = send(&mut d, 4, &format!("C=-{{AV={t2}{{AT{{M,SA}}}}}}"));
    assert!(!r.contains("tmanr/dp") && !r.contains("gmst/dp"), "{r}");
}

#[test]
fn root_lists_the_available_realms_and_a_change_is_notified_when_armed() {
    let mut d = mg();
    let r = send(&mut d, 1, "C=-{AV=ROOT{AT{M}}}");
    assert!(r.contains("ipra/ar=[access,core]"), "{r}");
    // An empty Audit asks for nothing.
    let r = send(&mut d, 2, "C=-{AV=ROOT{AT{}}}");
    assert!(!r.contains("ipra"), "{r}");
    // Not armed: a change is not notified.
    d.executor_mut().set_realm_available(1, false);
    assert_eq!(d.executor_mut().notifications().count(), 0);
    d.executor_mut().set_realm_available(1, true);
    let r = send(&mut d, 3, "C=-{MF=ROOT{E=77{ipra/arc}}}");
    assert!(!r.contains("ER="), "{r}");
    d.executor_mut().set_realm_available(1, false);
    d.executor_mut().set_realm_available(1, false);
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(n.len(), 1, "one change, one Notify: {n:?}");
    assert_eq!(n[0].event, IqEvent::RealmAvailability);
    assert_eq!(n[0].request_id, 77);
    assert_eq!(n[0].termination, "ROOT");
    assert_eq!(
        n[0].parameters,
        vec![("ar".into(), ParmValue::List(vec![Value::bare("access")]))]
    );
    d.executor_mut().set_realm_available(0, false);
    let n: Vec<_> = d.executor_mut().notifications().collect();
    assert_eq!(
        n[0].parameters,
        vec![("ar".into(), ParmValue::Equal(Value::quoted("")))]
    );
    let r = send(&mut d, 4, "C=-{AV=ROOT{AT{M}}}");
    assert!(r.contains("ipra/ar=\"\""), "{r}");
    // Arming the inactivity timer alone disarms the realm event (one Events descriptor).
    send(&mut d, 5, "C=-{MF=ROOT{E=78{it/ito{mit=100}}}}");
    d.executor_mut().set_realm_available(0, true);
    assert_eq!(d.executor_mut().notifications().count(), 0);
}

/// 1 000 consecutive Adds: the ports follow no pattern a test can find, and ports released
/// are not handed out again at once.
#[test]
fn local_ports_cannot_be_predicted_from_the_ones_before() {
    let mut d = mg();
    let mut ports = Vec::new();
    let mut terms = Vec::new();
    for tid in 0..1000 {
        let r = send(&mut d, tid + 1, &add_tcp("access", ""));
        let (ctx, t, port) = added(&r);
        ports.push(port);
        terms.push((ctx, t));
    }
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 1000);
    assert!(ports.iter().all(|p| (40000..=49999).contains(p)));
    // Predictors an attacker would try, from the ports seen so far: the next port, the last
    // step again, the smallest port not yet used. Each guesses right about 1 in 10 000 by
    // chance; allow 1 % of 999 guesses.
    let hits = |guess: &dyn Fn(usize) -> u16| (1..1000).filter(|&i| guess(i) == ports[i]).count();
    let next = hits(&|i| ports[i - 1].wrapping_add(1));
    let stride = hits(&|i| {
        if i < 2 {
            0
        } else {
            (2 * ports[i - 1] as i32 - ports[i - 2] as i32) as u16
        }
    });
    let lowest_free = hits(&|i| {
        let used: HashSet<u16> = ports[..i].iter().copied().collect();
        (40000..=49999).find(|p| !used.contains(p)).unwrap()
    });
    assert!(
        next < 10 && stride < 10 && lowest_free < 10,
        "{next} {stride} {lowest_free}"
    );
    // Neither increasing nor decreasing: about half the steps go up.
    let ups = ports.windows(2).filter(|w| w[1] > w[0]).count();
    assert!((400..=600).contains(&ups), "{ups} of 999 steps go up");
    // Release 100, add 100: none of the released ports comes back.
    let mut released = HashSet::new();
    for (i, (ctx, t)) in terms.iter().take(100).enumerate() {
        // Without statistics: the reply does not wait for the worker's final count.
        let r = send(
            &mut d,
            2000 + i as u32,
            &format!("C={ctx}{{S={t}{{AT{{}}}}}}"),
        );
        assert!(!r.contains("ER="), "{r}");
        released.insert(ports[i]);
    }
    for i in 0..100 {
        let r = send(&mut d, 3000 + i, &add_tcp("access", ""));
        let (_, _, port) = added(&r);
        assert!(
            !released.contains(&port),
            "port {port} handed out again at once"
        );
    }
}
