//! TLS at the access edge on DPDK net_tap with OpenSSL as the UE (self-signed certificate,
//! its fingerprint pinned as if from Remote):
//! 1. `openssl s_client` (UE-X, TLS client) -> T1 (TLS server) -> T2 (plain TCP) -> socat in
//!    UE-Y: the file arrives byte for byte, close_notify becomes FIN.
//! 2. T1 as TLS client -> `openssl s_server` (UE-X) asking for the AGW's certificate; socat in
//!    UE-Y sends a file through T2 -> T1, s_server prints it: byte for byte.
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
use dataplane::tls::{HashAlg, Identity, TlsConfig};
use dataplane::worker::{Worker, WorkerConfig};
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

fn wait_child(c: &mut Child, what: &str) -> std::process::ExitStatus {
    let end = StdInstant::now() + StdDuration::from_secs(60);
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(StdInstant::now() < end, "{what} did not finish");
        thread::sleep(StdDuration::from_millis(20));
    }
}

/// Text lines (never starting with a letter s_client would take as a command).
fn payload(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u64 = 0x1234_5678;
    for i in 0..lines {
        out.extend_from_slice(format!("{i:08x} ").as_bytes());
        for _ in 0..12 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("{:016x}", x).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn openssl_ues_through_tls_legs_over_net_tap() {
    let tap = iface_name("imtl");
    let eal = Eal::init(eal_args(&[&format!("net_tap0,iface={tap}")])).expect("EAL on net_tap");
    let pool = Mempool::create(eal, &MempoolConfig::new("tls_pool", 8191)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_tap0").unwrap();
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), pool.clone()).unwrap();
    let port = dev.queue(0).unwrap();

    // UE-X and UE-Y as Linux hosts, bridged to the tap.
    let hosts = UeLan::new("imsagw-t", &tap).unwrap();
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
                rx_buffer: 128 * 1024,
                tx_buffer: 128 * 1024,
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
            w.legs()
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

    let dir = std::env::temp_dir().join(format!("imsagw-tls-{}", std::process::id()));
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

    // 1. s_client -> T1 (TLS server) -> T2 -> socat.
    let data = payload(20_000);
    let sent = dir.join("sent");
    let received = dir.join("received");
    std::fs::write(&sent, &data).unwrap();
    let mut server = Reap(
        uey.command("socat")
            .args(["-u", "TCP-LISTEN:2855,bind=198.18.200.50,reuseaddr"])
            .arg(format!("CREATE:{}", received.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    thread::sleep(StdDuration::from_millis(300));
    let (t1, t2) = (key_of(1), key_of(2));
    for c in [
        Command::Reserve {
            key: t1,
            local: SocketAddrV4::new(AGW_ACCESS, 41000).into(),
        },
        Command::Reserve {
            key: t2,
            local: SocketAddrV4::new(AGW_CORE, 42000).into(),
        },
        Command::Join { a: t1, b: t2 },
        Command::Start {
            key: t2,
            role: LegRole::Active {
                remote: SocketAddrV4::new(UE_Y, 2855).into(),
            },
            accept: Accept::Gate(UE_Y.into()),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
        Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(UE_X.into()),
            timers: LegTimers::default(),
            tls: Some(TlsConfig::new(&agw, None, vec![ue_fp.clone()]).unwrap()),
            framing: Framing::Agnostic,
        },
    ] {
        control.commands.push(c).unwrap();
    }
    wait_event(
        "T2 established",
        &|e| matches!(e, Event::Established { key, .. } if *key == t2),
    );
    let client = uex
        .command("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 198.18.1.10:41000 -cert {} -key {} -quiet -no_ign_eof -nocommands < {}",
            crt.display(),
            key.display(),
            sent.display()
        ))
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "s_client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let status = wait_child(&mut server.0, "socat in UE-Y");
    assert!(status.success());
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), data.len(), "bytes received by UE-Y");
    assert!(got == data, "received bytes differ");
    let v = wait_event(
        "TLS established on T1",
        &|e| matches!(e, Event::TlsEstablished { key, .. } if *key == t1),
    );
    assert!(
        matches!(
            v,
            Event::TlsEstablished {
                version: 0x0304,
                ..
            }
        ),
        "{v:?}"
    );
    wait_event(
        "T2 closed",
        &|e| matches!(e, Event::Closed { key, .. } if *key == t2),
    );

    // 2. T1 as TLS client -> s_server in UE-X; socat in UE-Y sends through T2.
    let data2 = payload(10_000);
    let sent2 = dir.join("sent2");
    std::fs::write(&sent2, &data2).unwrap();
    let got2 = dir.join("got2");
    // s_server ends a connection when its standard input ends: keep it open.
    let mut s_server = Reap(
        uex.command("openssl")
            .args(["s_server", "-accept", "198.18.100.7:4433", "-cert"])
            .arg(&crt)
            .arg("-key")
            .arg(&key)
            .args(["-verify", "1", "-quiet", "-naccept", "1"])
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&got2).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    thread::sleep(StdDuration::from_millis(500));
    let (t3, t4) = (key_of(3), key_of(4));
    for c in [
        Command::Reserve {
            key: t3,
            local: SocketAddrV4::new(AGW_ACCESS, 41001).into(),
        },
        Command::Reserve {
            key: t4,
            local: SocketAddrV4::new(AGW_CORE, 42001).into(),
        },
        Command::Join { a: t3, b: t4 },
        Command::Start {
            key: t3,
            role: LegRole::Active {
                remote: SocketAddrV4::new(UE_X, 4433).into(),
            },
            accept: Accept::Gate(UE_X.into()),
            timers: LegTimers::default(),
            tls: Some(TlsConfig::new(&agw, Some(UE_X.into()), vec![ue_fp]).unwrap()),
            framing: Framing::Agnostic,
        },
        Command::Start {
            key: t4,
            role: LegRole::Passive,
            accept: Accept::Gate(UE_Y.into()),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
    ] {
        control.commands.push(c).unwrap();
    }
    wait_event(
        "TLS established on T3",
        &|e| matches!(e, Event::TlsEstablished { key, .. } if *key == t3),
    );
    let client = uey
        .command("socat")
        .arg("-u")
        .arg(format!("FILE:{}", sent2.display()))
        .arg("TCP:198.18.2.20:42001,bind=198.18.200.50")
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let status = wait_child(&mut s_server.0, "s_server in UE-X");
    assert!(status.success(), "s_server: {status}");
    let got = std::fs::read(&got2).unwrap();
    assert_eq!(got.len(), data2.len(), "bytes s_server printed");
    assert!(got == data2, "s_server's bytes differ");

    for k in [t1, t2, t3, t4] {
        let _ = control.commands.push(Command::Release { key: k });
    }
    stop.store(true, Ordering::Relaxed);
    let legs = worker.join().unwrap();
    assert_eq!(legs, 0, "legs left");
    let _ = std::fs::remove_dir_all(&dir);
    drop(dev);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}
