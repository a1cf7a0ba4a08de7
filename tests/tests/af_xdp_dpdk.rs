//! imsagw on an AF_XDP port: `imsagw run --af-xdp IFACE` on a veth whose peer is on the UE
//! LAN's bridge, relaying calls set up over H.248 by `imsagw-sim load` between kernel TCP UEs
//! in network namespaces, plain (both ways at once) and with TLS on the access leg (one way,
//! then the other), every byte checked, the pool back to its baseline at the end, and no frame
//! dropped by the kernel before the worker's receive ring; and a pool the AF_XDP UMEM would not
//! cover refused. Needs root.
//!
//! The test command moves 20 MB each way per call; `IMSAGW_AFXDP_BYTES` and
//! `IMSAGW_AFXDP_RUNS` make it the long run (1 GB each way, five runs in a row).

use std::process::Command;
use std::sync::Arc;

use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig, PortSockets};
use imsagw_tests::hosts::*;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `imsagw-sim load` through imsagw: `calls` calls moving `bytes` each way (over TLS one way,
/// in the direction `mode` says); returns its output.
#[allow(clippy::too_many_arguments)]
fn load(
    alg_port: u16,
    mg: Option<&str>,
    tid: u64,
    calls: u32,
    bytes: u64,
    mode: &[&str],
    uex: &str,
    uey: &str,
) -> String {
    let mut c = Command::new(imsagw_tests::bin("imsagw-sim"));
    c.args(["load", "--listen", &format!("127.0.0.1:{alg_port}")])
        .args(["--calls", &calls.to_string(), "--bytes", &bytes.to_string()])
        .args(["--ue-x-netns", uex, "--ue-y-netns", uey])
        .args(["--first-tid", &tid.to_string()]);
    if let Some(mg) = mg {
        c.args(["--mg", mg]);
    }
    c.args(mode);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains(&format!("LOAD OK calls={calls}")),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn calls_relay_every_byte_over_an_af_xdp_port_plain_and_with_tls() {
    let id = std::process::id() % 100_000;
    let hosts = imsagw_tests::UeLan::hosts("ax").unwrap();
    let iface = format!("imax{id}");
    hosts.bridge_veth(&iface).unwrap();
    let (uex, uey) = (hosts.uex.name.clone(), hosts.uey.name.clone());
    let dir = std::env::temp_dir().join(format!("imsagw-ax-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let alg_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (agw, lines, seen) = start_imsagw_af_xdp(
        &iface,
        &format!("127.0.0.1:{alg_port}"),
        &dir.join("status.sock"),
        &[],
    );
    let mg = seen
        .iter()
        .find_map(|l| l.split("bind=").nth(1))
        .map(|b| b.split_whitespace().next().unwrap().to_string())
        .expect("imsagw's bind address in its log");
    assert!(
        seen.iter().any(|l| l.contains("devices=[\"net_af_xdp0\"]")),
        "{seen:?}"
    );
    // One worker on AF_XDP: an idle worker sleeps on its port's socket, not on a timer.
    assert!(
        seen.iter()
            .any(|l| l.contains("wake=\"port\"") && l.contains("port_sockets=1")),
        "{seen:?}"
    );
    let bytes = env_u64("IMSAGW_AFXDP_BYTES", 20_000_000);
    let runs = env_u64("IMSAGW_AFXDP_RUNS", 1);
    let mut tid = 1000;
    for run in 0..runs {
        // Plain both ways; TLS from UE-X (imsagw decrypts) and to UE-X (imsagw encrypts).
        for mode in [&[][..], &["--tls-access"], &["--tls-access", "--reverse"]] {
            let first = run == 0 && mode.is_empty();
            // Eight plain calls both ways keep the receive ring as full as the bench's bulk
            // run, where a ring of 512 lost one frame in seven.
            let calls = if mode.is_empty() { 8 } else { 2 };
            let out = load(
                alg_port,
                (!first).then_some(mg.as_str()),
                tid,
                calls,
                bytes,
                mode,
                &uex,
                &uey,
            );
            tid += 10_000;
            let rate = out
                .lines()
                .find(|l| l.starts_with("LOAD DATA"))
                .unwrap_or_default()
                .to_string();
            println!("AF_XDP run {} {mode:?}: {rate}", run + 1);
        }
    }
    // Every frame sent to the port reached the worker: the TCP windows of the legs bound
    // what is in flight towards it below the receive ring.
    let v = imsagw_tests::status_json(&dir.join("status.sock"));
    let kernel_drops = v["ports"][0]["kernel_rx_dropped"]
        .as_u64()
        .unwrap_or_else(|| panic!("an AF_XDP port reports the kernel's drops: {v}"));
    assert_eq!(
        kernel_drops, 0,
        "frames dropped before the worker's receive ring"
    );
    // On a kernel interface the worker naps when idle (by default, waking on a frame), and
    // the relays above still carried every byte.
    let naps = v["workers"][0]["naps"].as_u64().unwrap_or(0);
    assert!(naps > 0, "an idle worker on an AF_XDP port naps: {v}");
    stop_imsagw(agw, lines, seen);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_pool_the_umem_would_not_cover_is_refused() {
    let id = std::process::id() % 100_000;
    let iface = format!("imau{id}");
    let peer = format!("{iface}b");
    sh(&[
        "ip", "link", "add", &iface, "type", "veth", "peer", "name", &peer,
    ]);
    sh(&["ip", "link", "set", &iface, "up"]);
    sh(&["ip", "link", "set", &peer, "up"]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _del = Del(iface.clone());
    let vdev = format!("net_af_xdp0,iface={iface},start_queue=0,queue_count=1");
    let eal = Eal::init(imsagw_tests::eal_args(&[vdev.as_str()])).unwrap();
    let port = EthDev::port_by_name(eal, "net_af_xdp0").unwrap();
    // A default pool under --no-huge keeps each mbuf within a 4 KiB page: its mbufs are not
    // back to back.
    let unpacked = Mempool::create(eal, &MempoolConfig::new("ax_unpacked", 4095)).unwrap();
    let (span, packed) = unpacked.packed_span();
    assert!(span > packed, "{span} {packed}");
    let e = EthDev::start(eal, port, &EthDevConfig::default(), Arc::clone(&unpacked)).unwrap_err();
    assert!(e.to_string().contains("UMEM"), "{e}");
    assert_eq!(unpacked.in_use(), 0);
    // The packed pool is accepted, and the port runs.
    let pool = Mempool::create(
        eal,
        &MempoolConfig::for_device("ax_packed", 4095, "net_af_xdp0"),
    )
    .unwrap();
    let (span, packed) = pool.packed_span();
    assert!(span <= packed, "{span} {packed}");
    let dev = EthDev::start(eal, port, &EthDevConfig::default(), Arc::clone(&pool)).unwrap();
    let held = dev.held_by_driver();
    assert!(held > 0, "the fill ring takes mbufs");
    // The queue's kernel socket, told apart as the queue was set up: the one AF_XDP socket
    // of the process.
    let all = PortSockets::of_this_process().unwrap();
    assert_eq!(dev.queue_sockets(0).len(), 1, "{all:?}");
    assert_eq!(
        format!("{all:?}"),
        format!("PortSockets {{ fds: {:?} }}", dev.queue_sockets(0))
    );
    assert!(dev.queue_sockets(1).is_empty(), "no second queue");
    drop(dev);
    assert_eq!(
        pool.in_use(),
        held,
        "nothing but the fill ring's mbufs is out"
    );
}
