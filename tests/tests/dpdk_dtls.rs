//! T.38 over DTLS at the access edge on DPDK net_tap, with OpenSSL as the UE (self-signed
//! certificate, its fingerprint pinned as if from Remote) and a plain UDP peer in UE-Y:
//! 1. `openssl s_client -dtls1_2` (UE-X, DTLS client) -> T1 (DTLS server) -> T2 (plain UDP)
//!    -> UE-Y, and UE-Y's datagrams back through T2 -> T1 -> s_client: each line one
//!    datagram, every one there once and in order.
//! 2. T1 as DTLS client -> `openssl s_server -dtls1_2` (UE-X) asking for the AGW's
//!    certificate; UE-Y's datagrams arrive at s_server.
//!
//! The mbuf pool is back to zero at the end.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use dataplane::clock::{Clock, MonotonicClock};
use dataplane::contract::*;
use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity};
use dataplane::worker::{Worker, WorkerConfig, DTLS_1_2};
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::{eal_args, iface_name, ue_certificate, UeLan};
use smoltcp::wire::Ipv4Cidr;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);

struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's output once it ends; killed (and the test failed) after 60 s.
fn wait_output(c: Child, what: &str) -> std::process::Output {
    let pid = c.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(c.wait_with_output());
    });
    match rx.recv_timeout(StdDuration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("{what} did not finish");
        }
    }
}

/// UE-Y as a plain UDPTL peer: from 198.18.200.50:`port`, sends `lines` lines (one datagram
/// each, 20 ms apart, after `delay_s`) to `to`, and prints every datagram it receives
/// within `listen_s` seconds, one per line.
const PEER: &str = r#"
import socket, sys, time
port, to_ip, to_port, lines, tag, delay, listen = sys.argv[1:8]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.200.50", int(port)))
s.settimeout(0.01)
got = []
start = time.time()
sent = 0
next_send = start + float(delay)
while time.time() - start < float(listen):
    if sent < int(lines) and time.time() >= next_send:
        s.sendto(("%s %04d %s\n" % (tag, sent, "x" * (40 + sent % 200))).encode(), (to_ip, int(to_port)))
        sent += 1
        next_send += 0.02
    try:
        d, a = s.recvfrom(4096)
        got.append(d)
    except socket.timeout:
        pass
sys.stdout.write("".join(g.decode() for g in got))
"#;

/// The lines the UE-X side sends, one per datagram, 20 ms apart after `delay` seconds.
fn ue_lines(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag} {i:04} {}\n", "u".repeat(50 + i % 150)))
        .collect()
}

fn peer_lines(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag} {i:04} {}\n", "x".repeat(40 + i % 200)))
        .collect()
}

#[test]
fn openssl_dtls_ues_through_udptl_legs_over_net_tap() {
    let tap = iface_name("imdt");
    let eal = Eal::init(eal_args(&[&format!("net_tap0,iface={tap}")])).expect("EAL on net_tap");
    let pool = Mempool::create(eal, &MempoolConfig::new("dtls_pool", 4095)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_tap0").unwrap();
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), pool.clone()).unwrap();
    let port = dev.queue(0).unwrap();
    let hosts = UeLan::new("imsagw-d", &tap).unwrap();
    let (uex, uey) = (&hosts.uex, &hosts.uey);

    let (control, worker_end) = rings(256);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let clock = MonotonicClock::new();
            let cfg = WorkerConfig {
                addresses: vec![
                    Ipv4Cidr::new(AGW_ACCESS, 15).into(),
                    Ipv4Cidr::new(AGW_CORE, 15).into(),
                ],
                ..WorkerConfig::default()
            };
            let mut w = Worker::new(port, cfg, worker_end, clock.now());
            while !stop.load(Ordering::Relaxed) {
                w.poll(clock.now());
            }
            let end = StdInstant::now() + StdDuration::from_secs(5);
            while w.legs() > 0 && StdInstant::now() < end {
                w.poll(clock.now());
            }
            (w.legs(), w.counters())
        })
    };
    let mut events = Vec::new();
    let mut wait_event = |what: &str, f: &dyn Fn(&Event) -> bool| -> Event {
        let end = StdInstant::now() + StdDuration::from_secs(20);
        loop {
            while let Some(e) = control.events.pop() {
                events.push(e);
            }
            if let Some(e) = events.iter().find(|e| f(e)) {
                return e.clone();
            }
            assert!(StdInstant::now() < end, "no {what}: {events:?}");
            thread::sleep(StdDuration::from_millis(2));
        }
    };

    let dir = std::env::temp_dir().join(format!("imsagw-dtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = ue_certificate(&dir);
    let ue_fp = Identity::from_pem_files(&crt, &key)
        .unwrap()
        .fingerprint(HashAlg::Sha256);
    let agw = Identity::generate("agw.example").unwrap();
    let key_of = |t| TerminationKey {
        context: 1,
        termination: t,
    };
    let timers = LegTimers {
        idle: None,
        ..LegTimers::default()
    };

    // 1. s_client (DTLS client) -> T1 (DTLS server) -> T2 -> UE-Y, and back.
    let (t1, t2) = (key_of(1), key_of(2));
    for c in [
        Command::ReserveDatagram {
            key: t1,
            local: SocketAddrV4::new(AGW_ACCESS, 41000).into(),
        },
        Command::ReserveDatagram {
            key: t2,
            local: SocketAddrV4::new(AGW_CORE, 42000).into(),
        },
        Command::Join { a: t1, b: t2 },
        Command::StartDatagram {
            key: t2,
            remote: Some(SocketAddrV4::new(UE_Y, 6004).into()),
            accept: Accept::Gate(UE_Y.into()),
            relatch: false,
            timers,
            dtls: None,
        },
        Command::StartDatagram {
            key: t1,
            remote: Some(SocketAddrV4::new(UE_X, 5004).into()),
            accept: Accept::Gate(UE_X.into()),
            relatch: false,
            timers,
            dtls: Some(DtlsConfig::new(&agw, false, vec![ue_fp.clone()], Some("a")).unwrap()),
        },
    ] {
        control.commands.push(c).unwrap();
    }
    let (n_up, n_down) = (60, 60);
    let up = ue_lines("UP", n_up);
    let script = dir.join("up.sh");
    // Lines start after the handshake and leave 20 ms apart; stdin stays open long enough
    // for UE-Y's datagrams to come back.
    let mut sh = String::from("sleep 1.5\n");
    for l in &up {
        sh.push_str(&format!("printf '%s\\n' '{}'\nsleep 0.02\n", l.trim_end()));
    }
    sh.push_str("sleep 3\n");
    std::fs::write(&script, sh).unwrap();
    let peer = uey
        .command("/usr/bin/python3")
        .args(["-c", PEER, "6004", "198.18.2.20", "42000"])
        .arg(n_down.to_string())
        .args(["DOWN", "2.0", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = uex
        .command("sh")
        .arg("-c")
        .arg(format!(
            "sh {} | openssl s_client -dtls1_2 -connect 198.18.1.10:41000 -bind 198.18.100.7:5004 -cert {} -key {} -quiet -no_ign_eof",
            script.display(),
            crt.display(),
            key.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let v = wait_event(
        "DTLS established on T1",
        &|e| matches!(e, Event::TlsEstablished { key, .. } if *key == t1),
    );
    assert_eq!(
        v,
        Event::TlsEstablished {
            key: t1,
            version: DTLS_1_2
        }
    );
    let client = wait_output(client, "s_client");
    let peer = wait_output(peer, "UE-Y");
    assert!(
        client.status.success(),
        "s_client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        peer.status.success(),
        "{}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let at_core = String::from_utf8(peer.stdout).unwrap();
    assert_eq!(at_core, up.concat(), "datagrams at UE-Y");
    let at_ue = String::from_utf8(client.stdout).unwrap();
    assert_eq!(
        at_ue,
        peer_lines("DOWN", n_down).concat(),
        "datagrams at s_client"
    );
    // s_client's close_notify at its end closes T1.
    wait_event(
        "T1 closed by the UE",
        &|e| matches!(e, Event::Closed { key, cause: ReleaseCause::PeerClosed, .. } if *key == t1),
    );

    // 2. T3 as DTLS client -> s_server in UE-X; UE-Y sends through T4 -> T3.
    let got = dir.join("got2");
    let mut s_server = Reap(
        uex.command("sh")
            .arg("-c")
            .arg(format!(
                "sleep 8 | openssl s_server -dtls1_2 -accept 198.18.100.7:4433 -cert {} -key {} -verify 1 -quiet -naccept 1",
                crt.display(),
                key.display()
            ))
            .stdout(std::fs::File::create(&got).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    thread::sleep(StdDuration::from_millis(500));
    let (t3, t4) = (key_of(3), key_of(4));
    for c in [
        Command::ReserveDatagram {
            key: t3,
            local: SocketAddrV4::new(AGW_ACCESS, 41002).into(),
        },
        Command::ReserveDatagram {
            key: t4,
            local: SocketAddrV4::new(AGW_CORE, 42002).into(),
        },
        Command::Join { a: t3, b: t4 },
        Command::StartDatagram {
            key: t4,
            remote: Some(SocketAddrV4::new(UE_Y, 6006).into()),
            accept: Accept::Gate(UE_Y.into()),
            relatch: false,
            timers,
            dtls: None,
        },
        Command::StartDatagram {
            key: t3,
            remote: Some(SocketAddrV4::new(UE_X, 4433).into()),
            accept: Accept::Gate(UE_X.into()),
            relatch: false,
            timers,
            dtls: Some(DtlsConfig::new(&agw, true, vec![ue_fp], None).unwrap()),
        },
    ] {
        control.commands.push(c).unwrap();
    }
    wait_event(
        "DTLS established on T3",
        &|e| matches!(e, Event::TlsEstablished { key, .. } if *key == t3),
    );
    let peer = uey
        .command("/usr/bin/python3")
        .args([
            "-c",
            PEER,
            "6006",
            "198.18.2.20",
            "42002",
            "40",
            "SRV",
            "0.2",
            "2.5",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let peer = wait_output(peer, "UE-Y");
    assert!(peer.status.success());
    thread::sleep(StdDuration::from_millis(300));
    let printed = std::fs::read_to_string(&got).unwrap();
    assert_eq!(
        printed,
        peer_lines("SRV", 40).concat(),
        "datagrams at s_server"
    );
    let _ = s_server.0.kill();

    for k in [t1, t2, t3, t4] {
        let _ = control.commands.push(Command::Release { key: k });
    }
    stop.store(true, Ordering::Relaxed);
    let (legs, counters) = worker.join().unwrap();
    assert_eq!(legs, 0, "legs left");
    assert_eq!(counters.udp_dropped, 0, "{counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(dev);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}
