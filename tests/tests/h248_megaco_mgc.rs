//! imsagw against a real MGC, Erlang/OTP megaco, over UDP on loopback: it registers
//! (ServiceChange Restart 901, answered with version 3), and then serves the MGC's Add,
//! Add with an unsupported medium, and Subtract through the dispatcher and the MG model.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::dispatch::{Dispatcher, FromPeer};
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::registration::{Action, Registration, RegistrationConfig};
use control::transaction::{ReplyCache, TransactionTimers};
use control::transport::UdpTransport;
use dataplane::contract::{Command as Dp, Event, LegStats, LegTimers, ReleaseCause};
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

struct Run {
    lines: Vec<String>,
    exit_ok: bool,
    registered: Option<(SocketAddr, u8)>,
    commands: Vec<Dp>,
}

/// Starts the Erlang MGC (tests/erl/iq_mgc.erl) with `scenario`, registers with it and serves
/// it until it exits.
fn against(scenario: &str) -> Run {
    let module = "iq_mgc";
    let dir = std::env::temp_dir().join(format!("imsagw-mgc-{scenario}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("erl/{module}.erl"));
    let ok = Command::new("erlc")
        .arg("-o")
        .arg(&dir)
        .arg(&src)
        .status()
        .expect("erlc (apt-get install erlang-dev)");
    assert!(ok.success());
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut mgc: Child = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&dir)
        .args(["-run", module, "run", &port.to_string(), scenario])
        .stdout(Stdio::piped())
        .spawn()
        .expect("erl");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = mgc.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "READY");

    let mgc_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut transport = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mid = MId::Ip4 {
        addr: [127, 0, 0, 1],
        port: Some(transport.local_addr().unwrap().port()),
    };
    let cfg = MgConfig {
        realms: vec![Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            first_port: 41000,
            last_port: 41999,
            policy: Default::default(),
        }],
        max_contexts: 10,
        max_terminations: 20,
        timers: LegTimers::default(),
        ..MgConfig::new(vec![])
    };
    let mut dispatcher = Dispatcher::new(
        Mg::new(cfg, Recorder::default()),
        ReplyCache::new(TransactionTimers::default(), 1000),
        mid.clone(),
        3,
        vec![mgc_addr.ip()],
    );
    dispatcher.set_registered(false);
    let mut reg = Registration::new(
        RegistrationConfig {
            mgcs: vec![control::registration::Mgc::udp(mgc_addr)],
            mid,
            profile: ("imsagw".into(), 1),
            max_version: 3,
            timers: TransactionTimers::default(),
        },
        1,
    );
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut outbox = Vec::new();
    let mut registered = None;
    let mut lines = Vec::new();
    let mut answered = 0;
    reg.start(now(), &mut |a| outbox.push(a));
    let exit_ok = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "MGC run did not finish; lines {lines:?}, state {:?}",
            reg.state()
        );
        for a in outbox.drain(..) {
            match a {
                Action::Send { to, bytes } => transport.send_to(to.addr, &bytes),
                Action::Registered { mgc, version } => {
                    registered = Some((mgc.addr, version));
                    dispatcher.set_registered(true);
                }
                Action::AllMgcsFailed => panic!("the MGC did not answer"),
            }
        }
        let mut from_peer = Vec::new();
        transport
            .poll(&mut dispatcher, now(), Duration::from_millis(10), |f| {
                from_peer.push(f)
            })
            .unwrap();
        for f in from_peer {
            match f {
                FromPeer::Reply(r) => {
                    reg.reply(&r, now(), &mut |a| outbox.push(a));
                }
                FromPeer::Pending(tid) => reg.pending(tid, now()),
            }
        }
        // The worker's side: every Release is answered with the leg's final statistics,
        // and the Subtract replies waiting for them go out.
        dispatcher.executor_mut().set_now(now());
        let released: Vec<_> = dispatcher.executor_mut().dataplane_mut().0[answered..]
            .iter()
            .filter_map(|c| match c {
                Dp::Release { key } => Some(*key),
                _ => None,
            })
            .collect();
        answered = dispatcher.executor_mut().dataplane_mut().0.len();
        for key in released {
            dispatcher.executor_mut().on_event(&Event::Closed {
                key,
                cause: ReleaseCause::Released,
                stats: LegStats::default(),
            });
        }
        for (peer, tid, version, result) in dispatcher.executor_mut().completed() {
            dispatcher.complete(peer, tid, version, result, now(), |to, b| {
                transport.send_to(to, &b)
            });
        }
        reg.poll(now(), &mut |a| outbox.push(a));
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if let Some(status) = mgc.try_wait().unwrap() {
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                lines.push(l);
            }
            break status.success();
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        lines,
        exit_ok,
        registered,
        commands: std::mem::take(&mut dispatcher.executor_mut().dataplane_mut().0),
    }
}

#[test]
fn imsagw_registers_with_an_erlang_megaco_mgc() {
    let run = against("register");
    assert!(run.exit_ok, "{:?}", run.lines);
    assert_eq!(run.registered.map(|(_, v)| v), Some(3));
    // What megaco decoded from our ServiceChange.
    let seen = &run.lines[0];
    assert!(seen.starts_with("SC method=restart"), "{seen}");
    assert!(seen.contains("version=3"), "{seen}");
    assert!(seen.ends_with("profile=imsagw/1"), "{seen}");
    let reason: Vec<String> = "901 Cold Boot".bytes().map(|b| b.to_string()).collect();
    assert!(
        seen.contains(&format!("reason=[[{}]]", reason.join(","))),
        "{seen}"
    );
}

#[test]
fn an_erlang_megaco_mgc_adds_and_subtracts_terminations() {
    let run = against("calls");
    assert!(run.exit_ok, "{:?}", run.lines);
    assert!(
        run.lines
            .iter()
            .any(|l| l.starts_with("OK add ctx=1 tid=tcp/access/1")),
        "{:?}",
        run.lines
    );
    assert!(
        run.lines.iter().any(|l| l == "OK bad-media error=515"),
        "{:?}",
        run.lines
    );
    for want in [
        "OK add-t2 tid=tcp/access/2",
        "OK modify-t2 active",
        "OK retransmit",
    ] {
        assert!(
            run.lines.iter().any(|l| l.starts_with(want)),
            "{want}: {:?}",
            run.lines
        );
    }
    assert_eq!(
        run.lines.iter().filter(|l| *l == "OK subtract").count(),
        2,
        "{:?}",
        run.lines
    );
    // T2 connects out to the Remote the MGC gave.
    assert!(run.commands.iter().any(|c| matches!(c,
        Dp::Start { role: dataplane::contract::LegRole::Active { remote }, .. }
            if remote.to_string() == "203.0.113.50:2855")));
    let reserves = run
        .commands
        .iter()
        .filter(|c| matches!(c, Dp::Reserve { .. }))
        .count();
    let releases = run
        .commands
        .iter()
        .filter(|c| matches!(c, Dp::Release { .. }))
        .count();
    // T1, T2 and the retransmitted Add once: the duplicate had no second effect.
    assert_eq!((reserves, releases), (3, 2), "{:?}", run.commands);
}

#[test]
fn an_erlang_megaco_mgc_sets_and_audits_the_iq_packages() {
    let run = against("packages");
    assert!(run.exit_ok, "{:?}", run.lines);
    let line = |prefix: &str| -> String {
        run.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line: {:?}", run.lines))
            .clone()
    };
    let packages = line("PACKAGES ");
    for p in ["gm", "tman", "tmanr", "ds", "ipra", "ipdc", "ipnapt"] {
        assert!(
            packages["PACKAGES ".len()..].split(',').any(|x| x == p),
            "{p} not in {packages}"
        );
    }
    // megaco decodes the echo of every property as sent (its decoder lowercases bare
    // values: H.248 tokens are case-insensitive).
    assert_eq!(
        line("ADD ").to_ascii_uppercase(),
        "ADD gm/saf=ON gm/sam=198.18.100.0/24 gm/spf=ON gm/spr=5000-5009 tman/pol=ON \
         tman/sdr=12500 tman/mbs=3000 tman/pdr=25000 tman/dvt=100000 ds/dscp=2E"
            .to_ascii_uppercase()
    );
    // A Modify changes what it carries and keeps the rest.
    assert_eq!(
        line("MODIFY ").to_ascii_uppercase(),
        "MODIFY gm/saf=ON gm/sam=198.18.100.0/24 gm/spf=ON gm/spr=5000-5009 tman/pol=ON \
         tman/sdr=25000 tman/mbs=3000 tman/pdr=25000 tman/dvt=100000 ds/dscp=1A"
            .to_ascii_uppercase()
    );
    let audit = line("AUDIT ").to_ascii_lowercase();
    assert!(
        audit.contains("tman/sdr=25000") && audit.contains("ds/dscp=1a"),
        "{audit}"
    );
    assert!(
        audit.contains("tmanr/dp") && audit.contains("gmst/dp"),
        "{audit}"
    );
    let refused = line("REFUSED ");
    assert!(
        refused.starts_with("REFUSED 449 ") && refused.contains("tman/sdr"),
        "{refused}"
    );
    let root = line("ROOT ");
    assert!(
        root.contains("ipra/ar") && root.contains("access"),
        "{root}"
    );
    // The data plane got the filter, the policer and the DSCP before the leg's start, and
    // the Modify's new rate and code point.
    let policies: Vec<_> = run
        .commands
        .iter()
        .filter_map(|c| match c {
            Dp::SetPolicy { policy, .. } => Some(*policy),
            _ => None,
        })
        .collect();
    assert_eq!(policies.len(), 2, "{:?}", run.commands);
    assert_eq!(policies[0].dscp, 0x2e);
    assert_eq!(
        policies[0].filter.address,
        Some(("198.18.100.0".parse().unwrap(), 24))
    );
    assert_eq!(policies[0].filter.ports, Some((5000, 5009)));
    let police = policies[0].police.unwrap();
    assert_eq!(
        (police.sustained.rate, police.sustained.depth),
        (12500, 3000)
    );
    // 25 000 B/s for 100 ms: 2500 B of peak depth.
    assert_eq!(police.peak.map(|p| (p.rate, p.depth)), Some((25000, 2500)));
    assert_eq!(policies[1].dscp, 0x1a);
    assert_eq!(policies[1].police.unwrap().sustained.rate, 25000);
}
