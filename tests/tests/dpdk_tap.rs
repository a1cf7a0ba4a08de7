//! DPDK on net_tap, with the tap interface moved into a network namespace as a real Linux
//! host: the kernel pings the smoltcp interface, and a kernel TCP client (socat) sends 10 MB
//! to the echo service and gets the same 10 MB back, compared byte for byte.

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use dataplane::clock::{Clock, MonotonicClock};
use dataplane::echo::{EchoConfig, EchoService};
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::{eal_args, iface_name, NetNs};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use testbed::fill_pattern;

const BYTES: usize = 10 * 1024 * 1024;

#[test]
fn kernel_pings_and_echoes_ten_megabytes_through_net_tap() {
    let iface = iface_name("imtap");
    let eal = Eal::init(eal_args(&[&format!("net_tap0,iface={iface}")])).expect("EAL on net_tap");
    let pool = Mempool::create(eal, &MempoolConfig::new("tap_pool", 8191)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_tap0").unwrap();
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), pool.clone()).unwrap();
    let port = dev.queue(0).unwrap();

    let ns = NetNs::new("imsagw-tap").unwrap();
    ns.adopt(&iface, "198.18.0.1/24").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let clock = MonotonicClock::new();
            let cfg = EchoConfig {
                address: Ipv4Cidr::new(Ipv4Address::new(198, 18, 0, 2), 24),
                gateway: None,
                tcp_port: 7,
                listeners: 2,
                buffer_bytes: 256 * 1024,
            };
            let mut echo = EchoService::new(port, &cfg, clock.now());
            while !stop.load(Ordering::Relaxed) {
                echo.poll(clock.now());
            }
            (echo.stats(), echo.device_stats())
        })
    };

    ns.exec("ping", &["-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"])
        .expect("the kernel pings the smoltcp interface");

    let mut payload = vec![0u8; BYTES];
    fill_pattern(9, 0, &mut payload);
    let mut child = ns
        .command("socat")
        .args(["-t", "10", "-T", "60", "-", "TCP:198.18.0.2:7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        stdin.write_all(&payload).unwrap();
        payload
    });
    let out = child.wait_with_output().unwrap();
    let payload = writer.join().unwrap();

    stop.store(true, Ordering::Relaxed);
    let (stats, device) = worker.join().unwrap();
    assert!(
        out.status.success(),
        "socat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), BYTES, "echoed length");
    assert!(out.stdout == payload, "echoed bytes differ");
    assert_eq!(stats.bytes_echoed, BYTES as u64);
    assert!(stats.connections >= 1);
    assert_eq!(device.tx_no_buffer, 0, "{device:?}");

    // The queue went back with the echo service; the port still holds its rx ring.
    drop(dev);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}
