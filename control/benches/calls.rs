//! Complete calls per second through the control thread over UDP on loopback: each call is
//! Add, Add, Modify, Modify, Subtract (with statistics), as the IMS-ALG sends them for the
//! seed's flow. A load generator keeps many calls in flight; the worker's side of the rings
//! is a double that answers each Release with the leg's final statistics.
//!
//! `cargo bench -p control --bench calls` (env IMSAGW_BENCH_INFLIGHT, IMSAGW_BENCH_SECS).
//! The control thread is pinned to core 1, the generator and the worker double to core 0.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use control::mg::{MgConfig, Realm};
use control::plane::ControlPlane;
use control::registration::RegistrationConfig;
use control::transaction::TransactionTimers;
use dataplane::contract::{rings, Command as Dp, Event, LegStats, ReleaseCause};
use h248::ast::*;
use h248::decode;

fn pin(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    AddT1,
    AddT2,
    ModifyT2,
    ModifyT1,
    Subtract,
}

struct Call {
    step: Step,
    ctx: u32,
    t1: String,
    t2: String,
    p1: u16,
    p2: u16,
}

fn request(tid: u32, c: &Call) -> String {
    let h = "!/3 [127.0.0.1]:2945\n";
    match c.step {
        Step::AddT1 => format!("{h}T={tid}{{C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=\"access\"}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}"),
        Step::AddT2 => format!("{h}T={tid}{{C={}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=\"core\"}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}", c.ctx),
        Step::ModifyT2 => format!("{h}T={tid}{{C={}{{MF={}{{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nc=IN IP4 198.18.2.20\nm=message {} TCP/MSRP *\na=setup:active\na=connection:new\n}},R{{\nv=0\nc=IN IP4 198.18.200.50\nm=message 2855 TCP/MSRP *\na=setup:passive\na=connection:new\n}}}}}},E=103{{tcpc/estfail}}}}}}}}", c.ctx, c.t2, c.p2),
        Step::ModifyT1 => format!("{h}T={tid}{{C={}{{MF={}{{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nc=IN IP4 198.18.1.10\nm=message {} TCP/MSRP *\na=setup:passive\na=connection:new\n}},R{{\nv=0\nc=IN IP4 198.18.100.7\nm=message 9 TCP/MSRP *\na=setup:active\na=connection:new\n}}}}}},E=104{{tcpc/est}}}}}}}}", c.ctx, c.t1, c.p1),
        Step::Subtract => format!("{h}T={tid}{{C={}{{S={}{{AT{{SA}}}},S={}{{AT{{SA}}}}}}}}", c.ctx, c.t1, c.t2),
    }
}

/// Context, termination and port of an Add reply.
fn added(a: &ActionReply) -> Option<(u32, String, u16)> {
    let ContextId::Id(ctx) = a.context else {
        return None;
    };
    let CommandReply::Amms {
        terminations,
        audit: Some(ds),
        ..
    } = a.replies.first()?
    else {
        return None;
    };
    let Descriptor::Media(ms) = ds.first()? else {
        return None;
    };
    let MediaParm::Streams(s) = ms.first()? else {
        return None;
    };
    let StreamParm::Local(g) = s.parms.first()? else {
        return None;
    };
    let (_, port, _, _) = g.first()?.media()?;
    Some((
        ctx,
        terminations[0].0.to_string(),
        port.value()?.parse().ok()?,
    ))
}

/// Runs the load for `secs` seconds after a warm-up; returns calls per second.
fn measure(inflight: usize, secs: f64) -> f64 {
    let alg = UdpSocket::bind("127.0.0.1:0").unwrap();
    let alg_addr = alg.local_addr().unwrap();
    let (control_end, worker_end) = rings(8192);
    let realms = vec![
        Realm {
            name: "access".into(),
            addresses: vec!["198.18.1.10".parse().unwrap()],
            first_port: 10000,
            last_port: 29999,
            policy: Default::default(),
        },
        Realm {
            name: "core".into(),
            addresses: vec!["198.18.2.20".parse().unwrap()],
            first_port: 30000,
            last_port: 49999,
            policy: Default::default(),
        },
    ];
    let reg = RegistrationConfig {
        mgcs: vec![control::registration::Mgc::udp(alg_addr)],
        mid: MId::Ip4 {
            addr: [127, 0, 0, 1],
            port: None,
        },
        profile: ("imsagw".into(), 1),
        max_version: 3,
        timers: TransactionTimers::default(),
    };
    let mut cp = ControlPlane::new(
        "127.0.0.1:0".parse().unwrap(),
        reg,
        MgConfig::new(realms),
        control_end,
    )
    .unwrap();
    let mg: SocketAddr = cp.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let control = {
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                pin(1);
                let start = Instant::now();
                cp.start(0);
                while !stop.load(Ordering::Relaxed) {
                    cp.poll(start.elapsed().as_millis() as u64, Duration::from_millis(1))
                        .unwrap();
                }
                cp.status()
            })
            .unwrap()
    };
    let worker = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            pin(0);
            while !stop.load(Ordering::Relaxed) {
                match worker_end.commands.pop() {
                    Some(Dp::Release { key }) => {
                        let mut ev = Event::Closed {
                            key,
                            cause: ReleaseCause::Released,
                            stats: LegStats::default(),
                        };
                        while let Err(e) = worker_end.events.push(ev) {
                            ev = e;
                            thread::yield_now();
                        }
                    }
                    Some(_) => {}
                    None => thread::sleep(Duration::from_micros(50)),
                }
            }
        })
    };

    pin(0);
    let mut buf = vec![0u8; 65536];
    // Registration.
    alg.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = alg.recv_from(&mut buf).unwrap();
    let sc = decode(&buf[..n]).unwrap();
    let MessageBody::Transactions(ts) = sc.body else {
        panic!()
    };
    let Transaction::Request(r) = &ts[0] else {
        panic!()
    };
    alg.send_to(
        format!(
            "!/3 [127.0.0.1]:2945\nP={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}",
            r.id
        )
        .as_bytes(),
        mg,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));

    alg.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut next_tid = 100u32;
    let mut by_tid: HashMap<u32, usize> = HashMap::new();
    let mut calls: Vec<Call> = Vec::new();
    let send = |c: &Call, next_tid: &mut u32, by_tid: &mut HashMap<u32, usize>, i: usize| {
        let tid = *next_tid;
        *next_tid += 1;
        by_tid.insert(tid, i);
        alg.send_to(request(tid, c).as_bytes(), mg).unwrap();
    };
    for i in 0..inflight {
        let c = Call {
            step: Step::AddT1,
            ctx: 0,
            t1: String::new(),
            t2: String::new(),
            p1: 0,
            p2: 0,
        };
        send(&c, &mut next_tid, &mut by_tid, i);
        calls.push(c);
    }
    let warm = Duration::from_secs(1);
    let started = Instant::now();
    let mut done = 0u64;
    let mut measured_from: Option<(Instant, u64)> = None;
    let mut errors = 0u64;
    loop {
        let el = started.elapsed();
        if measured_from.is_none() && el >= warm {
            measured_from = Some((Instant::now(), done));
        }
        if let Some((t, _)) = measured_from {
            if t.elapsed().as_secs_f64() >= secs {
                break;
            }
        }
        let Ok((n, _)) = alg.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = decode(&buf[..n]) else {
            errors += 1;
            continue;
        };
        let MessageBody::Transactions(ts) = m.body else {
            errors += 1;
            continue;
        };
        for t in ts {
            let Transaction::Reply(r) = t else { continue };
            let Some(i) = by_tid.remove(&r.id) else {
                continue;
            };
            let ReplyResult::Actions(a) = &r.result else {
                if errors == 0 {
                    eprintln!("first error: {:?} at {:?}", r.result, calls[i].step);
                }
                errors += 1;
                continue;
            };
            if let Some(e) = &a[0].error {
                if errors == 0 {
                    eprintln!("first error: {e:?} at {:?}", calls[i].step);
                }
                errors += 1;
            }
            let c = &mut calls[i];
            c.step = match c.step {
                Step::AddT1 => {
                    let (ctx, t, p) = added(&a[0]).expect("Add reply");
                    (c.ctx, c.t1, c.p1) = (ctx, t, p);
                    Step::AddT2
                }
                Step::AddT2 => {
                    let (_, t, p) = added(&a[0]).expect("Add reply");
                    (c.t2, c.p2) = (t, p);
                    Step::ModifyT2
                }
                Step::ModifyT2 => Step::ModifyT1,
                Step::ModifyT1 => Step::Subtract,
                Step::Subtract => {
                    done += 1;
                    Step::AddT1
                }
            };
            let c = &calls[i];
            send(c, &mut next_tid, &mut by_tid, i);
        }
    }
    let (t, d0) = measured_from.unwrap();
    let rate = (done - d0) as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let status = control.join().unwrap();
    worker.join().unwrap();
    assert_eq!(errors, 0, "H.248 errors during the run");
    assert!(
        status.contexts <= inflight,
        "contexts left: {}",
        status.contexts
    );
    rate
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let inflight: usize = std::env::var("IMSAGW_BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let secs: f64 = std::env::var("IMSAGW_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 5.0 });
    let reps = if quick { 1 } else { 3 };
    let mut rates = Vec::new();
    for _ in 0..reps {
        rates.push(measure(inflight, secs));
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "calls/s through the control thread (Add, Add, Modify, Modify, Subtract; {inflight} calls in flight): median {:.0}, min {:.0}, max {:.0} over {reps} runs of {secs} s",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}
