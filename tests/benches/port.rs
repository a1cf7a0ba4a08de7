//! Packet I/O costs: DPDK burst rx + free on net_null, the same through the smoltcp adapter,
//! and a TCP transfer between two smoltcp stacks over MemLink (the adapter's cost per byte).
//!
//! DPDK needs root; without it (or without the vdev) the DPDK group is skipped with a note.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::clock::{Clock, VirtualClock};
use dataplane::device::SmolDevice;
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use port::{Burst, Port, BURST};
use smoltcp::phy::{Device, RxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Cidr};
use testbed::memlink::{MemLink, MemLinkConfig, MemPort};
use testbed::{Host, PatternChecker, PatternSender};

fn dpdk(c: &mut Criterion) {
    let args = Eal::no_nic_args(&["net_null0"]);
    let eal = match Eal::init(args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipping DPDK benchmarks: {e}");
            return;
        }
    };
    let pool = Mempool::create(eal, &MempoolConfig::new("bench_pool", 4095)).unwrap();
    let id = EthDev::port_by_name(eal, "net_null0").unwrap();
    let dev = EthDev::start(eal, id, &EthDevConfig::default(), pool.clone()).unwrap();
    let mut q = dev.queue(0).unwrap();
    let baseline = pool.in_use();

    let mut g = c.benchmark_group("net_null");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("rx_burst32+free", |b| {
        b.iter(|| {
            let mut burst = Burst::new();
            black_box(q.rx_burst(&mut burst));
        })
    });
    g.finish();
    // Through the smoltcp adapter: each frame is handed to smoltcp's RxToken and freed.
    let mut device = SmolDevice::new(q);
    let now = smoltcp::time::Instant::from_millis(0);
    let mut g = c.benchmark_group("net_null");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("smol_device_receive32", |b| {
        b.iter(|| {
            for _ in 0..BURST {
                let (rx, _tx) = device.receive(now).expect("net_null always has frames");
                black_box(rx.consume(|f| f.len()));
            }
        })
    });
    g.finish();
    drop(device);
    assert_eq!(pool.in_use(), baseline, "benchmark leaked mbufs");
}

fn memlink_tcp(c: &mut Criterion) {
    const BYTES: u64 = 4 * 1024 * 1024;
    let mut g = c.benchmark_group("memlink_tcp");
    g.throughput(Throughput::Bytes(BYTES));
    g.sample_size(20);
    g.bench_function("transfer_4MiB_one_way", |b| {
        b.iter_batched(
            || {
                let clock = VirtualClock::new();
                let (pa, pb) = MemLink::pair(MemLinkConfig::default(), clock.clone());
                let now = clock.now();
                let ip_b = Ipv4Address::new(198, 18, 0, 2);
                let mut a: Host<MemPort> =
                    Host::new(pa, Ipv4Cidr::new(Ipv4Address::new(198, 18, 0, 1), 24), now);
                let mut b: Host<MemPort> = Host::new(pb, Ipv4Cidr::new(ip_b, 24), now);
                let ha = a.add_tcp(256 * 1024, 256 * 1024);
                let hb = b.add_tcp(256 * 1024, 256 * 1024);
                b.tcp(hb).listen(5000).unwrap();
                a.sockets
                    .get_mut::<tcp::Socket>(ha)
                    .connect(a.iface.context(), (IpAddress::Ipv4(ip_b), 5000), 49152)
                    .unwrap();
                (clock, a, b, ha, hb)
            },
            |(clock, mut a, mut b, ha, hb)| {
                let mut tx = PatternSender::new(1, BYTES);
                let mut rx = PatternChecker::new(1);
                while rx.received < BYTES {
                    let now = clock.now();
                    a.poll(now);
                    b.poll(now);
                    tx.pump(a.tcp(ha));
                    rx.pump(b.tcp(hb));
                    clock.advance(Duration::from_micros(10));
                }
                assert_eq!(rx.first_mismatch, None);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, dpdk, memlink_tcp);
criterion_main!(benches);
