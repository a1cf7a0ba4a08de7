//! Erlang/OTP megaco as an MGC over TCP (TPKT, H.248.1 D.2) against the control plane:
//! imsagw opens the connection, registers on it, serves 1 000 calls (Add T1, Add T2 into its
//! context) and the `Context = * { Subtract = * }` an ALG sends after its own restart, all on
//! that one connection; afterwards the MG holds no context, termination or port.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::mg::{MgConfig, Realm};
use control::plane::ControlPlane;
use control::registration::{Mgc, RegistrationConfig};
use control::transaction::TransactionTimers;
use dataplane::contract::rings;
use h248::ast::MId;

const CALLS: u32 = 1000;

#[test]
fn a_megaco_mgc_over_tcp_sets_up_1000_calls_and_clears_them_with_one_subtract() {
    let dir = std::env::temp_dir().join(format!("imsagw-mgc-tcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("erl/iq_mgc.erl");
    assert!(Command::new("erlc")
        .arg("-o")
        .arg(&dir)
        .arg(&src)
        .status()
        .expect("erlc (apt-get install erlang-dev)")
        .success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut mgc = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&dir)
        .args(["-run", "iq_mgc", "run", &port.to_string(), "bulk", "tcp"])
        .arg(CALLS.to_string())
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
    let mut mg = MgConfig::new(vec![
        Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            first_port: 40000,
            last_port: 41999,
            policy: Default::default(),
        },
        Realm {
            name: "core".into(),
            addresses: vec!["192.0.2.20".parse().unwrap()],
            first_port: 42000,
            last_port: 43999,
            policy: Default::default(),
        },
    ]);
    mg.max_contexts = 2 * CALLS as usize;
    mg.max_terminations = 4 * CALLS as usize;
    // No worker drains the ring here: it holds every command of the run.
    let (control_end, _worker_end) = rings(1 << 16);
    let mut cp = ControlPlane::with_reply_cache(
        "127.0.0.1:0".parse().unwrap(),
        RegistrationConfig {
            mgcs: vec![Mgc::tcp(mgc_addr)],
            mid: MId::Ip4 {
                addr: [127, 0, 0, 1],
                port: Some(2944),
            },
            profile: ("imsagw".into(), 1),
            max_version: 3,
            timers: TransactionTimers::default(),
        },
        mg,
        vec![control_end],
        1 << 16,
    )
    .unwrap();
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    cp.start(now());
    let mut lines = Vec::new();
    let exit = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the MGC did not finish: {lines:?}, {:?}",
            cp.status().registration
        );
        cp.poll(now(), Duration::from_millis(1)).unwrap();
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if let Some(status) = mgc.try_wait().unwrap() {
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                lines.push(l);
            }
            break status;
        }
    };
    assert!(exit.success(), "{lines:?}");
    assert!(
        lines.contains(&format!("OK calls {CALLS} contexts {CALLS}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("OK clearall {}", 2 * CALLS)),
        "{lines:?}"
    );
    let s = cp.status();
    assert!(s.registration.contains("tcp://"), "{}", s.registration);
    assert_eq!((s.contexts, s.terminations), (0, 0));
    assert!(
        s.port_pools.iter().all(|p| p.in_use == 0),
        "{:?}",
        s.port_pools
    );
    let _ = std::fs::remove_dir_all(&dir);
}
