//! The worker on DPDK net_tap, with real kernel TCP peers: the tap is bridged to two network
//! namespaces, UE-X and UE-Y. T2 connects out to UE-Y (socat listening), UE-X (socat) connects
//! to T1, and 20 MB go through the proxied pair byte for byte; the mbuf pool returns to zero.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use dataplane::clock::{Clock, MonotonicClock};
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::{eal_args, iface_name, UeLan};
use smoltcp::wire::Ipv4Cidr;
use testbed::fill_pattern;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const BYTES: usize = 20 * 1024 * 1024;

/// Kills a child process if the test ends early, so no listener outlives it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.to_string())
            .output();
    }
}

#[test]
fn twenty_megabytes_through_a_proxied_pair_between_kernel_peers() {
    let tap = iface_name("imwk");
    let eal = Eal::init(eal_args(&[&format!("net_tap0,iface={tap}")])).expect("EAL on net_tap");
    let pool = Mempool::create(eal, &MempoolConfig::new("wk_pool", 8191)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_tap0").unwrap();
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), pool.clone()).unwrap();
    let port = dev.queue(0).unwrap();

    // UE-X and UE-Y as Linux hosts, bridged to the tap.
    let hosts = UeLan::new("imsagw", &tap).unwrap();
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
                rx_buffer: 256 * 1024,
                tx_buffer: 256 * 1024,
                ..WorkerConfig::default()
            };
            let mut w = Worker::new(port, cfg, worker_end, clock.now());
            while !stop.load(Ordering::Relaxed) {
                w.poll(clock.now());
            }
            // Let released legs finish before the port goes away.
            let end = StdInstant::now() + StdDuration::from_secs(5);
            while w.legs() > 0 && StdInstant::now() < end {
                w.poll(clock.now());
            }
            (w.legs(), w.counters())
        })
    };
    let next_event = |what: &str| -> Event {
        let end = StdInstant::now() + StdDuration::from_secs(20);
        loop {
            if let Some(e) = control.events.pop() {
                return e;
            }
            assert!(StdInstant::now() < end, "no event while waiting for {what}");
            thread::sleep(StdDuration::from_millis(2));
        }
    };

    let dir = std::env::temp_dir().join(format!("imsagw-wk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sent, received) = (dir.join("sent"), dir.join("received"));
    let mut data = vec![0u8; BYTES];
    fill_pattern(77, 0, &mut data);
    std::fs::write(&sent, &data).unwrap();

    // UE-Y: the TCP server the core leg connects to.
    let mut server = uey
        .command("socat")
        .args(["-u", "TCP-LISTEN:2855,bind=198.18.200.50,reuseaddr"])
        .arg(format!("CREATE:{}", received.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server_pid = server.id();
    let _reap = KillOnDrop(server_pid);
    thread::sleep(StdDuration::from_millis(300));

    let t1 = TerminationKey {
        context: 1,
        termination: 1,
    };
    let t2 = TerminationKey {
        context: 1,
        termination: 2,
    };
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
                remote: "198.18.200.50:2855".parse().unwrap(),
            },
            accept: Accept::Gate(Ipv4Addr::new(198, 18, 200, 50).into()),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
    ] {
        control.commands.push(c).unwrap();
    }
    let first = next_event("T2 established");
    assert!(
        matches!(first, Event::Established { key, .. } if key == t2),
        "{first:?}"
    );
    control
        .commands
        .push(Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(Ipv4Addr::new(198, 18, 100, 7).into()),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        })
        .unwrap();
    thread::sleep(StdDuration::from_millis(50));

    // UE-X: the client, connecting to T1 and sending the file.
    let client = uex
        .command("socat")
        .arg("-u")
        .arg(format!("FILE:{}", sent.display()))
        .arg("TCP:198.18.1.10:41000,bind=198.18.100.7")
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "client socat: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let end = StdInstant::now() + StdDuration::from_secs(60);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(StdInstant::now() < end, "server socat did not finish");
        thread::sleep(StdDuration::from_millis(20));
    };
    assert!(status.success(), "server socat failed");
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), BYTES, "bytes received by UE-Y");
    assert!(got == data, "received bytes differ from sent bytes");

    let mut events = Vec::new();
    let end = StdInstant::now() + StdDuration::from_secs(10);
    while events
        .iter()
        .filter(|e| matches!(e, Event::Closed { .. }))
        .count()
        < 2
    {
        if let Some(e) = control.events.pop() {
            events.push(e);
        }
        assert!(StdInstant::now() < end, "legs not closed: {events:?}");
        thread::sleep(StdDuration::from_millis(2));
    }
    for e in &events {
        if let Event::Closed { key, cause, stats } = e {
            assert_eq!(*cause, ReleaseCause::PeerClosed, "{key:?}");
            let moved = if *key == t1 {
                stats.octets_in
            } else {
                stats.octets_out
            };
            assert_eq!(moved, BYTES as u64, "{key:?} {stats:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (legs, counters) = worker.join().unwrap();
    assert_eq!(legs, 0, "legs left: {counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(dev);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}
