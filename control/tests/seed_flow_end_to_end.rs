//! The seed's flow end to end without DPDK: an IMS-ALG over UDP registers the MG and drives
//! Add T1, Add T2, Modify T2 (connect out to UE-Y), Modify T1 (accept UE-X) through the
//! control plane; the worker on a MemLink connects and cuts through; smoltcp UEs move 1 MB
//! each way byte-exact (a byte pattern, so the terminations are agnostic `TCP`); Subtract
//! releases both legs. The same with UE-X on IPv6 in the access network (the access realm is
//! dual-stack; the Add's Local asks for `c=IN IP6 $`) and UE-Y on IPv4 in the core.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use control::mg::{MgConfig, Realm};
use control::plane::ControlPlane;
use control::registration::RegistrationConfig;
use control::transaction::TransactionTimers;
use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::{rings, LegTimers};
use dataplane::worker::{Worker, WorkerConfig};
use h248::ast::*;
use h248::decode;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr, Ipv6Cidr};
use testbed::memlink::{MemLink, MemLinkConfig, MemPort};
use testbed::{Host, PatternChecker, PatternSender};

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
const AGW_ACCESS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 0x10);
const UE_X6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0x100, 0, 0, 0, 0x7);
const BYTES: u64 = 1_000_000;

struct World {
    cp: ControlPlane,
    worker: Worker<MemPort>,
    host: Host<MemPort>,
    clock: VirtualClock,
    alg: UdpSocket,
    mg_addr: SocketAddr,
    start: StdInstant,
}

impl World {
    fn step(&mut self) {
        let now_ms = self.start.elapsed().as_millis() as u64;
        self.cp.poll(now_ms, StdDuration::from_micros(200)).unwrap();
        let v = self.clock.now();
        let busy = self.worker.poll(v);
        let before = self.host.device.stats();
        self.host.poll(v);
        if !busy && self.host.device.stats() == before {
            self.clock.advance(Duration::from_millis(1));
        }
    }

    /// The next H.248 message from the MG, answering a ServiceChange on the way.
    fn recv(&mut self) -> Message {
        let end = StdInstant::now() + StdDuration::from_secs(20);
        let mut buf = [0u8; 8192];
        loop {
            assert!(StdInstant::now() < end, "no H.248 message from the MG");
            self.step();
            if let Ok((n, _)) = self.alg.recv_from(&mut buf) {
                return decode(&buf[..n])
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf[..n])));
            }
        }
    }

    /// Sends a request and returns the action replies of its answer; Notify requests from
    /// the MG on the way are answered.
    fn call(&mut self, text: &str) -> Vec<ActionReply> {
        self.alg.send_to(text.as_bytes(), self.mg_addr).unwrap();
        loop {
            let m = self.recv();
            let MessageBody::Transactions(ts) = m.body else {
                panic!()
            };
            match &ts[0] {
                Transaction::Reply(TransactionReply {
                    result: ReplyResult::Actions(a),
                    ..
                }) => return a.clone(),
                Transaction::Request(r) => {
                    let ctx = match r.actions[0].context {
                        ContextId::Id(c) => c.to_string(),
                        _ => "-".to_string(),
                    };
                    let port = self.alg.local_addr().unwrap().port();
                    let answer = match &r.actions[0].commands[0].command {
                        Command::Notify { terminations, .. } => format!(
                            "!/3 [127.0.0.1]:{port} P={}{{C={ctx}{{N={}}}}}",
                            r.id, terminations[0].0
                        ),
                        // A ServiceChange (a slow machine let the inactivity timer run out):
                        // answered like the MGC would.
                        Command::ServiceChange { .. } => format!(
                            "!/3 [127.0.0.1]:{port} P={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}",
                            r.id
                        ),
                        _ => panic!("{r:?}"),
                    };
                    self.alg.send_to(answer.as_bytes(), self.mg_addr).unwrap();
                }
                other => panic!("{other:?} for {text}"),
            }
        }
    }
}

/// The termination an Add created and its Local's (`c=` address type, address, port).
fn local_port(a: &ActionReply) -> (String, u16) {
    let (t, _, _, port) = local_of(a);
    (t, port)
}

fn local_of(a: &ActionReply) -> (String, String, String, u16) {
    let Some(CommandReply::Amms {
        terminations,
        audit: Some(ds),
        ..
    }) = a.replies.first()
    else {
        panic!("{a:?}")
    };
    let Descriptor::Media(ms) = &ds[0] else {
        panic!()
    };
    let MediaParm::Streams(s) = &ms[0] else {
        panic!()
    };
    let StreamParm::Local(g) = &s.parms[0] else {
        panic!()
    };
    let session = g.first().unwrap();
    let (_, port, _, _) = session.media().unwrap();
    let (kind, addr) = session.connection().unwrap();
    (
        terminations[0].0.to_string(),
        kind.to_string(),
        addr.value().unwrap().to_string(),
        port.value().unwrap().parse().unwrap(),
    )
}

fn world(timers: TransactionTimers) -> World {
    let alg = UdpSocket::bind("127.0.0.1:0").unwrap();
    alg.set_nonblocking(true).unwrap();
    let alg_addr = alg.local_addr().unwrap();
    let (control_end, worker_end) = rings(1024);
    let reg = RegistrationConfig {
        mgcs: vec![control::registration::Mgc::udp(alg_addr)],
        mid: MId::Ip4 {
            addr: [127, 0, 0, 1],
            port: None,
        },
        profile: ("imsagw".into(), 1),
        max_version: 3,
        timers,
    };
    let mg = MgConfig {
        realms: vec![
            Realm {
                name: "access".into(),
                addresses: vec![AGW_ACCESS.into(), AGW_ACCESS6.into()],
                first_port: 41000,
                last_port: 41999,
                policy: Default::default(),
            },
            Realm {
                name: "core".into(),
                addresses: vec![AGW_CORE.into()],
                first_port: 42000,
                last_port: 42999,
                policy: Default::default(),
            },
        ],
        max_contexts: 100,
        max_terminations: 200,
        timers: LegTimers::default(),
        ..MgConfig::new(vec![])
    };
    let cp = ControlPlane::new("127.0.0.1:0".parse().unwrap(), reg, mg, control_end).unwrap();
    let mg_addr = cp.local_addr().unwrap();
    let clock = VirtualClock::new();
    let (pa, pb) = MemLink::pair(MemLinkConfig::default(), clock.clone());
    let cfg = WorkerConfig {
        addresses: vec![
            Ipv4Cidr::new(AGW_ACCESS, 15).into(),
            Ipv4Cidr::new(AGW_CORE, 15).into(),
            IpCidr::Ipv6(Ipv6Cidr::new(AGW_ACCESS6, 48)),
        ],
        ..WorkerConfig::default()
    };
    let worker = Worker::new(pa, cfg, worker_end, clock.now());
    let mut host = Host::new(pb, Ipv4Cidr::new(UE_X, 15), clock.now());
    host.iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)));
        let _ = a.push(IpCidr::Ipv6(Ipv6Cidr::new(UE_X6, 48)));
    });
    World {
        cp,
        worker,
        host,
        clock,
        alg,
        mg_addr,
        start: StdInstant::now(),
    }
}

/// The MG's ServiceChange, answered by the ALG.
fn register(w: &mut World) {
    let alg_addr = w.alg.local_addr().unwrap();
    let mg_addr = w.mg_addr;
    w.cp.start(0);
    let sc = w.recv();
    let MessageBody::Transactions(ts) = &sc.body else {
        panic!()
    };
    let Transaction::Request(r) = &ts[0] else {
        panic!("{sc:?}")
    };
    let answer = format!(
        "!/3 [127.0.0.1]:{} P={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}",
        alg_addr.port(),
        r.id
    );
    w.alg.send_to(answer.as_bytes(), mg_addr).unwrap();
    while !w.cp.is_registered() {
        w.step();
    }
}

struct Call {
    hdr: String,
    ctx: u32,
    t1: String,
    t2: String,
    x: SocketHandle,
    y: SocketHandle,
}

/// Steps 2-22 of Annex y: Add T1 and T2, Modify T2 (connect out to UE-Y), Modify T1
/// (accept UE-X), UE-X connects.
fn establish(w: &mut World) -> Call {
    establish_with(w, IpAddr::V4(UE_X))
}

/// [`establish`] with UE-X at `ue_x` (IPv4 or IPv6): T1's Local asks for that family.
fn establish_with(w: &mut World, ue_x: IpAddr) -> Call {
    let family = if ue_x.is_ipv4() { "IP4" } else { "IP6" };
    let alg_addr = w.alg.local_addr().unwrap();
    let hdr = format!("!/3 [127.0.0.1]:{}", alg_addr.port());
    // Steps 2-7: the two terminations.
    let a1 = w.call(&format!("{hdr} T=10{{C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=access}},L{{v=0\nc=IN {family} $\nm=message $ TCP *\n}}}}}}}}}}}}"));
    let ContextId::Id(ctx) = a1[0].context else {
        panic!("{a1:?}")
    };
    let (t1, kind, access, p1) = local_of(&a1[0]);
    // The MG took T1's address from the access realm's addresses of the family asked for.
    let access: IpAddr = access.parse().unwrap();
    assert_eq!(kind, family);
    assert_eq!(
        access,
        if ue_x.is_ipv4() {
            IpAddr::V4(AGW_ACCESS)
        } else {
            IpAddr::V6(AGW_ACCESS6)
        }
    );
    let a2 = w.call(&format!("{hdr} T=11{{C={ctx}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=core}},L{{v=0\nc=IN IP4 $\nm=message $ TCP *\n}}}}}}}}}}}}"));
    let (t2, _p2) = local_port(&a2[0]);
    // Steps 12-17: UE-Y is the TCP server; T2 connects out.
    let y = w.host.add_tcp(64 * 1024, 64 * 1024);
    w.host
        .tcp(y)
        .listen(IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(UE_Y)),
            port: 2855,
        })
        .unwrap();
    let r = w.call(&format!("{hdr} T=12{{C={ctx}{{MF={t2}{{M{{ST=1{{O{{MO=SR}},L{{v=0\nm=message $ TCP *\na=setup:active\n}},R{{v=0\nc=IN IP4 {UE_Y}\nm=message 2855 TCP *\na=setup:passive\n}}}}}}}}}}}}"));
    assert!(r[0].error.is_none(), "{r:?}");
    let end = StdInstant::now() + StdDuration::from_secs(20);
    while w.host.tcp(y).state() != tcp::State::Established {
        assert!(StdInstant::now() < end, "T2 did not connect to UE-Y");
        w.step();
    }
    // Steps 18-22: T1 accepts UE-X.
    let r = w.call(&format!("{hdr} T=13{{C={ctx}{{MF={t1}{{M{{ST=1{{O{{MO=SR}},L{{v=0\nm=message $ TCP *\na=setup:passive\n}},R{{v=0\nc=IN {family} {ue_x}\nm=message 9 TCP *\na=setup:active\n}}}}}}}}}}}}"));
    assert!(r[0].error.is_none(), "{r:?}");
    for _ in 0..20 {
        w.step();
    }
    let x = w.host.add_tcp(64 * 1024, 64 * 1024);
    let cx = w.host.iface.context();
    w.host
        .sockets
        .get_mut::<tcp::Socket>(x)
        .connect(
            cx,
            IpEndpoint::new(access.into(), p1),
            IpListenEndpoint {
                addr: Some(ue_x.into()),
                port: 5000,
            },
        )
        .unwrap();
    Call {
        hdr,
        ctx,
        t1,
        t2,
        x,
        y,
    }
}

/// Both UEs' byte streams, checked.
struct Streams {
    sx: PatternSender,
    sy: PatternSender,
    rx: PatternChecker,
    ry: PatternChecker,
}

impl Streams {
    fn new() -> Self {
        Streams {
            sx: PatternSender::new(1, BYTES),
            sy: PatternSender::new(2, BYTES),
            rx: PatternChecker::new(2),
            ry: PatternChecker::new(1),
        }
    }

    /// Moves data until each UE received `upto` bytes.
    fn pump(&mut self, w: &mut World, c: &Call, upto: u64, mut each: impl FnMut(&mut World)) {
        let end = StdInstant::now() + StdDuration::from_secs(60);
        while self.rx.received < upto || self.ry.received < upto {
            assert!(
                StdInstant::now() < end,
                "data did not get through: {} {}",
                self.rx.received,
                self.ry.received
            );
            w.step();
            each(w);
            let s = w.host.tcp(c.x);
            self.sx.pump(s);
            self.rx.pump(s);
            let s = w.host.tcp(c.y);
            self.sy.pump(s);
            self.ry.pump(s);
        }
        assert_eq!(
            (self.rx.first_mismatch, self.ry.first_mismatch),
            (None, None)
        );
    }
}

#[test]
fn seed_flow_from_h248_text_to_bytes_through_the_worker() {
    seed_flow(IpAddr::V4(UE_X));
}

#[test]
fn seed_flow_with_ue_x_on_ipv6_and_ue_y_on_ipv4() {
    seed_flow(IpAddr::V6(UE_X6));
}

fn seed_flow(ue_x: IpAddr) {
    let mut w = world(TransactionTimers::default());
    register(&mut w);
    let c = establish_with(&mut w, ue_x);
    let (hdr, ctx, t1, t2) = (c.hdr.clone(), c.ctx, c.t1.clone(), c.t2.clone());
    // Steps 23-25: cut-through and data.
    let mut streams = Streams::new();
    streams.pump(&mut w, &c, BYTES, |_| {});
    // Release.
    for _ in 0..50 {
        w.step();
    }
    let r = w.call(&format!(
        "{hdr} T=14{{C={ctx}{{S={t1}{{AT{{SA}}}},S={t2}{{AT{{SA}}}}}}}}"
    ));
    assert_eq!(r[0].replies.len(), 2, "{r:?}");
    // The final statistics: every payload byte each way.
    let text = format!("{r:?}");
    assert!(text.matches(&format!("\"{BYTES}\"")).count() >= 4, "{text}");
    assert!(
        w.cp.status().dataplane_events >= 3,
        "the control plane saw the worker's events"
    );
    assert_eq!(w.cp.mg().terminations(), 0);
}

/// Everything the MG sent to the (silent) ALG since the last call.
fn drain_alg(w: &mut World) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok((n, _)) = w.alg.recv_from(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[test]
fn the_mgc_goes_silent_and_comes_back_while_the_call_keeps_flowing() {
    let timers = TransactionTimers {
        long_timer: StdDuration::from_secs(2),
        provisional: StdDuration::from_millis(500),
        initial_retransmit: StdDuration::from_millis(100),
        max_retransmit: StdDuration::from_millis(400),
        t_max: StdDuration::from_millis(1500),
        ..TransactionTimers::default()
    };
    let mut w = world(timers);
    register(&mut w);
    let c = establish(&mut w);
    // The ALG arms the inactivity timer: 300 ms (mit in 10 ms units).
    let r = w.call(&format!(
        "{} T=20{{C=-{{MF=ROOT{{E=9{{it/ito{{mit=30}}}}}}}}}}",
        c.hdr
    ));
    assert!(r[0].error.is_none(), "{r:?}");
    let mut streams = Streams::new();
    streams.pump(&mut w, &c, BYTES / 4, |_| {});

    // The ALG goes silent. The MG notices (it/ito Notify unanswered until T-MAX), comes
    // back with ServiceChange Disconnected, and retries; the call's data keeps moving.
    let mut seen = Vec::new();
    let mut disconnected = 0;
    streams.pump(&mut w, &c, BYTES / 2, |w| {
        for m in drain_alg(w) {
            if m.contains("MT=DC") {
                disconnected += 1;
            }
            seen.push(m);
        }
    });
    let end = StdInstant::now() + StdDuration::from_secs(30);
    while disconnected == 0 {
        assert!(StdInstant::now() < end, "no Disconnected: {seen:?}");
        w.step();
        for m in drain_alg(&mut w) {
            if m.contains("MT=DC") {
                disconnected += 1;
            }
            seen.push(m);
        }
    }
    assert!(
        seen.iter().any(|m| m.contains("it/ito")),
        "the MG reported the inactivity first: {seen:?}"
    );
    assert!(!w.cp.is_registered());
    // The ALG is back (restarted: its transaction numbers start over) and answers the next
    // ServiceChange.
    let end = StdInstant::now() + StdDuration::from_secs(30);
    let tid = loop {
        assert!(StdInstant::now() < end, "no new ServiceChange");
        w.step();
        let sc = drain_alg(&mut w).into_iter().find(|m| m.contains("MT=DC"));
        if let Some(m) = sc {
            let tid = m
                .split("T=")
                .nth(1)
                .and_then(|t| t.split('{').next())
                .unwrap()
                .trim()
                .to_string();
            break tid;
        }
    };
    let answer = format!("{} P={tid}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}", c.hdr);
    w.alg.send_to(answer.as_bytes(), w.mg_addr).unwrap();
    while !w.cp.is_registered() {
        w.step();
    }
    // The rest of the call answers whatever the MG sends (its inactivity Notifies).
    let hdr = c.hdr.clone();
    streams.pump(&mut w, &c, BYTES, |w| {
        for m in drain_alg(w) {
            if let Some(tid) = m.split("T=").nth(1).and_then(|t| t.split('{').next()) {
                let tid = tid.trim();
                let answer = if m.contains("SC=") || m.contains("ServiceChange") {
                    format!("{hdr} P={tid}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}")
                } else {
                    format!("{hdr} P={tid}{{C=-{{N=ROOT}}}}")
                };
                w.alg.send_to(answer.as_bytes(), w.mg_addr).unwrap();
            }
        }
    });
    // T=10 was the first Add; after the restart it is a new transaction, not a duplicate.
    let r = w.call(&format!(
        "{} T=10{{C={}{{S={}{{AT{{SA}}}},S={}{{AT{{SA}}}}}}}}",
        c.hdr, c.ctx, c.t1, c.t2
    ));
    assert!(r[0].error.is_none(), "{r:?}");
    assert_eq!(r[0].replies.len(), 2, "{r:?}");
    assert_eq!(w.cp.mg().terminations(), 0);
}
