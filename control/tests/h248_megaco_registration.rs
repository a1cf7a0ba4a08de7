//! Registration with a real MGC: Erlang/OTP megaco (tests/erl/iq_mgc_register.erl) listens
//! on loopback, imsagw sends ServiceChange Restart 901 over UDP from its H.248 socket, megaco
//! decodes it and answers with version 3, and imsagw is registered.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::dispatch::{Dispatcher, Executor, FromPeer};
use control::h248::ast::*;
use control::registration::{Action, Registration, RegistrationConfig, State};
use control::transaction::{ReplyCache, TransactionTimers};
use control::transport::UdpTransport;

/// Until registered, every request from the MGC is refused (H.248.1 11.4).
struct NotYet;

impl Executor for NotYet {
    fn execute(&mut self, _: SocketAddr, _: u8, _: &TransactionRequest) -> ReplyResult {
        ReplyResult::Error(ErrorDescriptor {
            code: 505,
            text: Some("not registered yet".into()),
        })
    }
}

#[test]
fn imsagw_registers_with_an_erlang_megaco_mgc() {
    let dir = std::env::temp_dir().join(format!("imsagw-mgc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/erl/iq_mgc_register.erl");
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
    let mut mgc = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&dir)
        .args(["-run", "iq_mgc_register", "run", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("erl");
    let mut lines = BufReader::new(mgc.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert_eq!(ready, "READY");

    let mgc_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut transport = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let local = transport.local_addr().unwrap();
    let mid = MId::Ip4 {
        addr: [127, 0, 0, 1],
        port: Some(local.port()),
    };
    let mut dispatcher = Dispatcher::new(
        NotYet,
        ReplyCache::new(TransactionTimers::default(), 1000),
        mid.clone(),
        3,
        vec![mgc_addr.ip()],
    );
    let mut reg = Registration::new(
        RegistrationConfig {
            mgcs: vec![mgc_addr],
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
    reg.start(now(), &mut |a| outbox.push(a));
    let mut registered = None;
    while registered.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not registered; state {:?}",
            reg.state()
        );
        for a in outbox.drain(..) {
            match a {
                Action::Send { to, bytes } => transport.send_to(to, &bytes),
                Action::Registered { mgc, version } => registered = Some((mgc, version)),
                Action::AllMgcsFailed => panic!("the MGC did not answer"),
            }
        }
        let mut replies = Vec::new();
        transport
            .poll(&mut dispatcher, now(), Duration::from_millis(20), |f| {
                replies.push(f)
            })
            .unwrap();
        for f in replies {
            match f {
                FromPeer::Reply(r) => {
                    reg.reply(&r, now(), &mut |a| outbox.push(a));
                }
                FromPeer::Pending(tid) => reg.pending(tid, now()),
            }
        }
        reg.poll(now(), &mut |a| outbox.push(a));
    }
    assert_eq!(registered, Some((mgc_addr, 3)));
    assert_eq!(
        reg.state(),
        &State::Registered {
            mgc: mgc_addr,
            version: 3
        }
    );
    // What megaco decoded from our ServiceChange.
    let seen = lines.next().unwrap().unwrap();
    assert!(seen.starts_with("SC method=restart"), "{seen}");
    assert!(seen.contains("version=3"), "{seen}");
    assert!(seen.ends_with("profile=imsagw/1"), "{seen}");
    // The reason is printed as the character codes of "901 Cold Boot".
    let reason: Vec<String> = "901 Cold Boot".bytes().map(|b| b.to_string()).collect();
    assert!(
        seen.contains(&format!("reason=[[{}]]", reason.join(","))),
        "{seen}"
    );
    assert!(mgc.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
