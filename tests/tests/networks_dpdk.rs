//! The access and the core network apart, on DPDK net_tap with kernel UEs: the UE LAN is split
//! into an access network (UE-X, on IPv6 here) and a core network (UE-Y, on IPv4). One worker
//! has a tap in each network (two ports, untagged); another has one tap that carries both
//! networks as 802.1Q VLANs (`ue_hosts.sh trunk`: a user-space switch tags and untags, the
//! kernel here having no 802.1Q). Through each, with OpenSSL as UE-X:
//! 1. `openssl s_client` over IPv6 -> T1 (TLS server, access) -> T2 (plain TCP, core, IPv4)
//!    -> socat in UE-Y: the file arrives byte for byte.
//! 2. A T.38 page over DTLS: `openssl s_client -dtls1_2` over IPv6 -> T3 (DTLS server) -> T4
//!    (plain UDP, IPv4) -> UE-Y, and UE-Y's datagrams back: each line one datagram, every one
//!    there once and in order.
//!
//! Neither worker drops a frame as another network's; the mbuf pool is back to zero at the end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use dataplane::clock::{Clock, MonotonicClock};
use dataplane::contract::*;
use dataplane::counters::WorkerCounters;
use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity, TlsConfig};
use dataplane::worker::{NetworkConfig, Worker, WorkerConfig, DTLS_1_2};
use dpdk::{DpdkPort, Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::{
    eal_args, iface_name, tap_vdevs, ue_certificate, NetNs, UeLan, ACCESS_VLAN, CORE_VLAN,
};
use smoltcp::wire::{Ipv4Cidr, Ipv6Cidr};

/// The AGW's access (IPv6) and core (IPv4) addresses: one pair per worker, both on the same
/// split LAN at once.
const ACCESS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11),
];
const CORE: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 2, 20), Ipv4Addr::new(198, 18, 2, 21)];
const UE_X6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0x100, 0, 0, 0, 7);
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

fn payload(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9;
    for i in 0..lines {
        out.extend_from_slice(format!("{i:08x} ").as_bytes());
        for _ in 0..12 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("{x:016x}").as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// UE-Y as a plain UDPTL peer: from 198.18.200.50:`port`, sends `lines` lines (one datagram
/// each, 20 ms apart, after `delay` seconds) to `to`, and prints every datagram it receives
/// within `listen` seconds, one per line.
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

fn lines(tag: &str, n: usize, fill: &str, base: usize, spread: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag} {i:04} {}\n", fill.repeat(base + i % spread)))
        .collect()
}

/// A worker on `ports` in its own thread until `stop`; returns its legs left and counters.
fn spawn_worker(
    ports: Vec<DpdkPort>,
    cfg: WorkerConfig,
    end: WorkerEnd,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(usize, WorkerCounters)> {
    thread::spawn(move || {
        let clock = MonotonicClock::new();
        let mut w = Worker::on_ports(ports, cfg, end, clock.now(), None);
        while !stop.load(Ordering::Relaxed) {
            w.poll(clock.now());
        }
        let end = StdInstant::now() + StdDuration::from_secs(5);
        while w.legs() > 0 && StdInstant::now() < end {
            w.poll(clock.now());
        }
        (w.legs(), w.counters())
    })
}

struct Ues<'a> {
    uex: &'a NetNs,
    uey: &'a NetNs,
    dir: std::path::PathBuf,
    crt: std::path::PathBuf,
    key: std::path::PathBuf,
    ue_fp: dataplane::tls::Fingerprint,
    agw: Identity,
}

/// Runs both cases through the worker behind `control` whose access address is `ACCESS6[i]`
/// and core address `CORE[i]`.
fn cases(i: usize, control: &ControlEnd, ues: &Ues) {
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
            assert!(StdInstant::now() < end, "worker {i}: no {what}: {events:?}");
            thread::sleep(StdDuration::from_millis(2));
        }
    };
    let key_of = |t| TerminationKey {
        context: 1,
        termination: t,
    };
    let (access, core) = (IpAddr::V6(ACCESS6[i]), IpAddr::V4(CORE[i]));
    let (ue_x, ue_y) = (IpAddr::V6(UE_X6), IpAddr::V4(UE_Y));
    let sa = SocketAddr::new;

    // 1. s_client over IPv6 -> T1 (TLS server) -> T2 (IPv4) -> socat in UE-Y.
    let data = payload(5_000);
    let sent = ues.dir.join(format!("sent{i}"));
    let received = ues.dir.join(format!("received{i}"));
    std::fs::write(&sent, &data).unwrap();
    let y_port = 2855 + i as u16;
    let mut server = Reap(
        ues.uey
            .command("socat")
            .args([
                "-u",
                &format!("TCP-LISTEN:{y_port},bind=198.18.200.50,reuseaddr"),
            ])
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
            local: sa(access, 41000),
        },
        Command::Reserve {
            key: t2,
            local: sa(core, 42000),
        },
        Command::Join { a: t1, b: t2 },
        Command::Start {
            key: t2,
            role: LegRole::Active {
                remote: sa(ue_y, y_port),
            },
            accept: Accept::Gate(ue_y),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
        Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(ue_x),
            timers: LegTimers::default(),
            tls: Some(TlsConfig::new(&ues.agw, None, vec![ues.ue_fp.clone()]).unwrap()),
            framing: Framing::Agnostic,
        },
    ] {
        control.commands.push(c).unwrap();
    }
    wait_event(
        "T2 established",
        &|e| matches!(e, Event::Established { key, .. } if *key == t2),
    );
    let client = ues
        .uex
        .command("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect [{}]:41000 -cert {} -key {} -quiet -no_ign_eof -nocommands < {}",
            ACCESS6[i],
            ues.crt.display(),
            ues.key.display(),
            sent.display()
        ))
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "worker {i}: s_client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let end = StdInstant::now() + StdDuration::from_secs(60);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            StdInstant::now() < end,
            "worker {i}: socat in UE-Y did not finish"
        );
        thread::sleep(StdDuration::from_millis(20));
    };
    assert!(status.success());
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), data.len(), "worker {i}: bytes received by UE-Y");
    assert!(got == data, "worker {i}: received bytes differ");
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

    // 2. s_client -dtls1_2 over IPv6 -> T3 (DTLS server) -> T4 (IPv4) -> UE-Y, and back.
    let timers = LegTimers {
        idle: None,
        ..LegTimers::default()
    };
    let (t3, t4) = (key_of(3), key_of(4));
    let (x_port, y_port) = (5004 + i as u16, 6004 + i as u16);
    for c in [
        Command::ReserveDatagram {
            key: t3,
            local: sa(access, 41001),
        },
        Command::ReserveDatagram {
            key: t4,
            local: sa(core, 42001),
        },
        Command::Join { a: t3, b: t4 },
        Command::StartDatagram {
            key: t4,
            remote: Some(sa(ue_y, y_port)),
            accept: Accept::Gate(ue_y),
            relatch: false,
            timers,
            dtls: None,
        },
        Command::StartDatagram {
            key: t3,
            remote: Some(sa(ue_x, x_port)),
            accept: Accept::Gate(ue_x),
            relatch: false,
            timers,
            dtls: Some(
                DtlsConfig::new(&ues.agw, false, vec![ues.ue_fp.clone()], Some("a")).unwrap(),
            ),
        },
    ] {
        control.commands.push(c).unwrap();
    }
    let (n_up, n_down) = (60, 60);
    let up = lines("UP", n_up, "u", 50, 150);
    let script = ues.dir.join(format!("up{i}.sh"));
    // Lines start after the handshake and leave 20 ms apart; stdin stays open long enough
    // for UE-Y's datagrams to come back.
    let mut sh = String::from("sleep 1.5\n");
    for l in &up {
        sh.push_str(&format!("printf '%s\\n' '{}'\nsleep 0.02\n", l.trim_end()));
    }
    sh.push_str("sleep 3\n");
    std::fs::write(&script, sh).unwrap();
    let peer = ues
        .uey
        .command("/usr/bin/python3")
        .args([
            "-c",
            PEER,
            &y_port.to_string(),
            &CORE[i].to_string(),
            "42001",
        ])
        .arg(n_down.to_string())
        .args(["DOWN", "2.0", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = ues
        .uex
        .command("sh")
        .arg("-c")
        .arg(format!(
            "sh {} | openssl s_client -dtls1_2 -connect [{}]:41001 -bind [{}]:{x_port} -cert {} -key {} -quiet -no_ign_eof",
            script.display(),
            ACCESS6[i],
            UE_X6,
            ues.crt.display(),
            ues.key.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let v = wait_event(
        "DTLS established on T3",
        &|e| matches!(e, Event::TlsEstablished { key, .. } if *key == t3),
    );
    assert_eq!(
        v,
        Event::TlsEstablished {
            key: t3,
            version: DTLS_1_2
        }
    );
    let client = wait_output(client, "s_client -dtls1_2");
    let peer = wait_output(peer, "UE-Y");
    assert!(
        client.status.success(),
        "worker {i}: s_client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        peer.status.success(),
        "{}",
        String::from_utf8_lossy(&peer.stderr)
    );
    assert_eq!(
        String::from_utf8(peer.stdout).unwrap(),
        up.concat(),
        "worker {i}: datagrams at UE-Y"
    );
    assert_eq!(
        String::from_utf8(client.stdout).unwrap(),
        lines("DOWN", n_down, "x", 40, 200).concat(),
        "worker {i}: datagrams at s_client"
    );
    for k in [t1, t2, t3, t4] {
        let _ = control.commands.push(Command::Release { key: k });
    }
}

#[test]
fn openssl_ues_over_ipv6_access_and_ipv4_core_on_two_ports_and_on_two_vlans() {
    let taps = [iface_name("imna"), iface_name("imnc"), iface_name("imnt")];
    let vdevs = tap_vdevs(&taps.iter().map(String::as_str).collect::<Vec<_>>());
    let vdevs: Vec<&str> = vdevs.iter().map(String::as_str).collect();
    let eal = Eal::init(eal_args(&vdevs)).expect("EAL on three taps");
    let pool = Mempool::create(eal, &MempoolConfig::new("networks_pool", 8191)).unwrap();
    let devs: Vec<EthDev> = (0..3)
        .map(|i| {
            let id = EthDev::port_by_name(eal, &format!("net_tap{i}")).unwrap();
            EthDev::start(eal, id, &EthDevConfig::default(), pool.clone()).unwrap()
        })
        .collect();

    // One LAN split in two networks: the first worker's taps one in each, the second
    // worker's tap a trunk of both.
    let hosts = UeLan::hosts("imsagw-n").unwrap();
    hosts.split().unwrap();
    hosts
        .bridge_tap_to(&taps[0], "br0", "02:00:00:00:00:fe")
        .unwrap();
    hosts
        .bridge_tap_to(&taps[1], "br1", "02:00:00:00:00:fd")
        .unwrap();
    hosts.trunk(&taps[2], "02:00:00:00:00:fc").unwrap();

    let access = |i: usize| vec![Ipv6Cidr::new(ACCESS6[i], 32).into()];
    let core = |i: usize| vec![Ipv4Cidr::new(CORE[i], 15).into()];
    let two_ports = WorkerConfig {
        addresses: access(0),
        networks: vec![NetworkConfig {
            port: 1,
            vlan: None,
            addresses: core(0),
            gateway: None,
            gateway_v6: None,
        }],
        ..WorkerConfig::default()
    };
    two_ports.check_networks(2).unwrap();
    let network = |vlan, addresses| NetworkConfig {
        port: 0,
        vlan: Some(vlan),
        addresses,
        gateway: None,
        gateway_v6: None,
    };
    let two_vlans = WorkerConfig {
        networks: vec![network(ACCESS_VLAN, access(1)), network(CORE_VLAN, core(1))],
        ..WorkerConfig::default()
    };
    two_vlans.check_networks(1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (c1, e1) = rings(256);
    let (c2, e2) = rings(256);
    let w1 = spawn_worker(
        vec![devs[0].queue(0).unwrap(), devs[1].queue(0).unwrap()],
        two_ports,
        e1,
        Arc::clone(&stop),
    );
    let w2 = spawn_worker(
        vec![devs[2].queue(0).unwrap()],
        two_vlans,
        e2,
        Arc::clone(&stop),
    );

    let dir = std::env::temp_dir().join(format!("imsagw-networks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = ue_certificate(&dir);
    let ue_fp = Identity::from_pem_files(&crt, &key)
        .unwrap()
        .fingerprint(HashAlg::Sha256);
    let ues = Ues {
        uex: &hosts.uex,
        uey: &hosts.uey,
        dir: dir.clone(),
        crt,
        key,
        ue_fp,
        agw: Identity::generate("agw.example").unwrap(),
    };
    cases(0, &c1, &ues);
    cases(1, &c2, &ues);

    stop.store(true, Ordering::Relaxed);
    for (i, w) in [w1, w2].into_iter().enumerate() {
        let (legs, c) = w.join().unwrap();
        assert_eq!(legs, 0, "worker {i}: legs left");
        assert_eq!(c.wrong_network_dropped, 0, "worker {i}");
        assert!(c.rx_frames > 100, "worker {i}: {c:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(devs);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}
