//! Scenario tests through UDP: an ALG (this test) drives the control plane with H.248 text on
//! loopback; the worker's side of the rings is a double that records the commands and answers
//! with the events a worker would send (established, cut through, closed with statistics).
//! The seed's flow (proxy mode: T2 connects out, T1 accepts) and merge mode (both accept).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use control::mg::{MgConfig, Realm};
use control::plane::ControlPlane;
use control::registration::RegistrationConfig;
use control::transaction::TransactionTimers;
use dataplane::contract::{
    rings, Command as Dp, Event, LegRole, LegStats, ReleaseCause, WorkerEnd,
};
use h248::ast::*;
use h248::decode;

struct Harness {
    alg: UdpSocket,
    mg: SocketAddr,
    mg_tcp: SocketAddr,
    commands: Arc<Mutex<Vec<Dp>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    hdr: String,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The worker double: every started leg is established at once; a joined pair with both
/// legs up is cut through; a release reports 1000/2000 octets.
fn worker_double(end: WorkerEnd, log: Arc<Mutex<Vec<Dp>>>, stop: Arc<AtomicBool>) {
    let mut started = Vec::new();
    let mut joined = Vec::new();
    let emit = |e: Event| {
        let mut e = e;
        while let Err(back) = end.events.push(e) {
            e = back;
            thread::yield_now();
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = end.commands.pop() else {
            thread::sleep(Duration::from_micros(200));
            continue;
        };
        log.lock().unwrap().push(c.clone());
        match c {
            Dp::Start { key, role, .. } => {
                let remote = match role {
                    LegRole::Active { remote } => remote,
                    LegRole::Passive => "203.0.113.7:5000".parse().unwrap(),
                };
                emit(Event::Established { key, remote });
                started.push(key);
            }
            Dp::Join { a, b } => joined.push((a, b)),
            Dp::Release { key } => emit(Event::Closed {
                key,
                cause: ReleaseCause::Released,
                stats: LegStats {
                    octets_in: 1000,
                    octets_out: 2000,
                    ..LegStats::default()
                },
            }),
            _ => {}
        }
        joined.retain(|(a, b)| {
            if started.contains(a) && started.contains(b) {
                emit(Event::CutThrough { a: *a, b: *b });
                false
            } else {
                true
            }
        });
    }
}

fn harness() -> Harness {
    let alg = UdpSocket::bind("127.0.0.1:0").unwrap();
    alg.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (control_end, worker_end) = rings(1024);
    let reg = RegistrationConfig {
        mgcs: vec![control::registration::Mgc::udp(alg.local_addr().unwrap())],
        mid: MId::Ip4 {
            addr: [127, 0, 0, 1],
            port: None,
        },
        profile: ("imsagw".into(), 1),
        max_version: 3,
        timers: TransactionTimers::default(),
    };
    let realms = vec![
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
    ];
    let mut cp = ControlPlane::new(
        "127.0.0.1:0".parse().unwrap(),
        reg,
        MgConfig::new(realms),
        control_end,
    )
    .unwrap();
    let mg = cp.local_addr().unwrap();
    let mg_tcp = cp.enable_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let commands = Arc::new(Mutex::new(Vec::new()));
    let control = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let start = Instant::now();
            cp.start(0);
            while !stop.load(Ordering::Relaxed) {
                cp.poll(start.elapsed().as_millis() as u64, Duration::from_millis(2))
                    .unwrap();
            }
        })
    };
    let worker = {
        let (stop, log) = (Arc::clone(&stop), Arc::clone(&commands));
        thread::spawn(move || worker_double(worker_end, log, stop))
    };
    let hdr = format!("!/3 [127.0.0.1]:{}", alg.local_addr().unwrap().port());
    let h = Harness {
        alg,
        mg,
        mg_tcp,
        commands,
        stop,
        threads: vec![control, worker],
        hdr,
    };
    // Registration.
    let sc = h.recv();
    let Transaction::Request(r) = &sc[0] else {
        panic!("{sc:?}")
    };
    h.send(&format!(
        "{} P={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}",
        h.hdr, r.id
    ));
    thread::sleep(Duration::from_millis(100));
    h
}

impl Harness {
    fn send(&self, text: &str) {
        self.alg.send_to(text.as_bytes(), self.mg).unwrap();
    }

    fn recv(&self) -> Vec<Transaction> {
        let mut buf = [0u8; 16384];
        let (n, _) = self.alg.recv_from(&mut buf).expect("a message from the MG");
        match decode(&buf[..n]).unwrap().body {
            MessageBody::Transactions(t) => t,
            other => panic!("{other:?}"),
        }
    }

    /// A request and its reply; Notifies on the way are answered and returned.
    fn call(&self, body: &str, tid: u32, notifies: &mut Vec<String>) -> Vec<ActionReply> {
        self.send(&format!("{} T={tid}{{{body}}}", self.hdr));
        loop {
            for t in self.recv() {
                match t {
                    Transaction::Reply(TransactionReply {
                        id,
                        result: ReplyResult::Actions(a),
                        ..
                    }) if id == tid => return a,
                    Transaction::Reply(r) if r.id == tid => panic!("{r:?}"),
                    Transaction::Request(r) => {
                        notifies.push(format!("{r:?}"));
                        let ContextId::Id(c) = r.actions[0].context else {
                            panic!()
                        };
                        let Command::Notify { terminations, .. } =
                            &r.actions[0].commands[0].command
                        else {
                            panic!()
                        };
                        self.send(&format!(
                            "{} P={}{{C={c}{{N={}}}}}",
                            self.hdr, r.id, terminations[0].0
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    fn await_notify(&self, notifies: &mut Vec<String>, what: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while !notifies.iter().any(|n| n.contains(what)) {
            assert!(Instant::now() < end, "no Notify with {what}: {notifies:?}");
            // An AuditValue on ROOT is a harmless request that lets Notifies arrive.
            self.call("C=-{AV=ROOT{AT{}}}", 9000 + notifies.len() as u32, notifies);
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn term_of(a: &[ActionReply]) -> (u32, String) {
    let ContextId::Id(c) = a[0].context else {
        panic!("{a:?}")
    };
    let Some(CommandReply::Amms { terminations, .. }) = a[0].replies.first() else {
        panic!("{a:?}")
    };
    (c, terminations[0].0.to_string())
}

const ADD_LOCAL: &str = "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}";

fn run_scenario(merge: bool) {
    let h = harness();
    let mut notifies = Vec::new();
    let a1 = h.call(
        &format!("C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=access}},{ADD_LOCAL}}}}}}}}}"),
        1,
        &mut notifies,
    );
    let (ctx, t1) = term_of(&a1);
    let a2 = h.call(
        &format!("C={ctx}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=core}},{ADD_LOCAL}}}}}}}}}"),
        2,
        &mut notifies,
    );
    let (_, t2) = term_of(&a2);
    // T2: proxy mode connects out to UE-Y (passive); merge mode waits for UE-Y (active).
    let (y_setup, y_port) = if merge {
        ("active", 9)
    } else {
        ("passive", 2855)
    };
    h.call(
        &format!("C={ctx}{{MF={t2}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 203.0.113.50\nm=message {y_port} TCP/MSRP *\na=setup:{y_setup}\n}}}}}}}}}}"),
        3,
        &mut notifies,
    );
    h.call(
        &format!("C={ctx}{{MF={t1}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 203.0.113.7\nm=message 9 TCP/MSRP *\na=setup:active\n}}}}}},E=104{{tcpc/est}}}}}}"),
        4,
        &mut notifies,
    );
    h.await_notify(&mut notifies, "\"est\"");
    let r = h.call(
        &format!("C={ctx}{{S={t1}{{AT{{SA}}}},S={t2}{{AT{{SA}}}}}}"),
        5,
        &mut notifies,
    );
    let text = format!("{r:?}");
    assert_eq!(
        text.matches("\"2000\"").count(),
        2,
        "nt/os from the worker: {text}"
    );
    assert_eq!(
        text.matches("\"1000\"").count(),
        2,
        "nt/or from the worker: {text}"
    );
    let cmds = h.commands.lock().unwrap().clone();
    let roles: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Dp::Start { role, .. } => Some(*role),
            _ => None,
        })
        .collect();
    if merge {
        assert_eq!(roles, vec![LegRole::Passive, LegRole::Passive], "{cmds:?}");
    } else {
        assert_eq!(
            roles,
            vec![
                LegRole::Active {
                    remote: "203.0.113.50:2855".parse().unwrap()
                },
                LegRole::Passive
            ],
            "{cmds:?}"
        );
    }
    assert!(cmds.iter().any(|c| matches!(c, Dp::Join { .. })));
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Dp::Release { .. }))
            .count(),
        2
    );
}

#[test]
fn seed_flow_through_udp_with_a_worker_double() {
    run_scenario(false);
}

#[test]
fn merge_mode_through_udp_with_a_worker_double() {
    run_scenario(true);
}

#[test]
fn an_mgc_on_tcp_gets_its_answers_on_the_connection() {
    use std::io::{Read, Write};
    let h = harness();
    let mut tcp = std::net::TcpStream::connect(h.mg_tcp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut framed = |text: &str| -> String {
        let mut out = Vec::new();
        control::transport::tpkt_frame(text.as_bytes(), &mut out).unwrap();
        tcp.write_all(&out).unwrap();
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 3, "TPKT version");
        let len = u16::from_be_bytes([head[2], head[3]]) as usize - 4;
        let mut body = vec![0u8; len];
        tcp.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    };
    let r = framed(&format!(
        "{} T=1{{C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=access}},{ADD_LOCAL}}}}}}}}}}}",
        h.hdr
    ));
    assert!(r.contains("P=1") && r.contains("tcp/access/"), "{r}");
    let term = r
        .split("A=")
        .nth(1)
        .unwrap()
        .split('{')
        .next()
        .unwrap()
        .to_string();
    let ctx = r
        .split("C=")
        .nth(1)
        .unwrap()
        .split('{')
        .next()
        .unwrap()
        .to_string();
    // The Subtract's reply waits for the worker's statistics and still comes back on TCP.
    let r = framed(&format!("{} T=2{{C={ctx}{{S={term}{{AT{{SA}}}}}}}}", h.hdr));
    assert!(r.contains("P=2") && r.contains("nt/os=2000"), "{r}");
}
