//! What MSRP and BFCP awareness cost: one pair relays the same MSRP or BFCP stream agnostic
//! and aware, interleaved; only the worker's poll time is measured (the UE host on the
//! other end of the MemLink is not), on a virtual clock. The framer alone on the stream in
//! memory is the floor of the parsing cost.
//!
//! Streams: `chat` (text messages of up to 300 octets, one chunk each, with responses and
//! reports), `file` (binary messages of up to 64 KiB in up to 16 chunks) and `bfcp` (random
//! primitives with random attributes; an eighth of the MSRP streams' size).
//! `IMSAGW_BENCH_MB` sets the stream size (default 64); `IMSAGW_BENCH_STREAMS` the streams to
//! run (a comma-separated subset of `chat,file,bfcp`; default all).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant as Wall;

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::framing::bfcp::{BfcpFramer, BfcpLimits};
use dataplane::framing::msrp::{MsrpFramer, MsrpLimits};
use dataplane::framing::FramingLimits;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::iface::SocketHandle;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr};
use testbed::framing_sample::{bfcp_stream, msrp_stream, MsrpShape};
use testbed::memlink::{MemLink, MemLinkConfig};
use testbed::Host;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
const BUF: usize = 256 * 1024;

/// Relays `stream` from UE-X to UE-Y through one pair; returns ns of worker poll time.
fn relay(stream: &[u8], framing: Framing) -> u128 {
    let clock = VirtualClock::new();
    let link = MemLinkConfig {
        pool_buffers: 1 << 16,
        queue_frames: 1 << 14,
        ..MemLinkConfig::default()
    };
    let (pa, pb) = MemLink::pair(link, clock.clone());
    let (control, worker_end) = rings(1024);
    let mut limits = FramingLimits::default();
    limits.msrp.messages_per_second = 0;
    limits.bfcp.frames_per_second = 0;
    let cfg = WorkerConfig {
        addresses: vec![
            Ipv4Cidr::new(AGW_ACCESS, 15).into(),
            Ipv4Cidr::new(AGW_CORE, 15).into(),
        ],
        rx_buffer: BUF,
        tx_buffer: BUF,
        framing: limits,
        ..WorkerConfig::default()
    };
    let mut worker = Worker::new(pa, cfg, worker_end, clock.now());
    let mut host = Host::new(pb, Ipv4Cidr::new(UE_X, 15), clock.now());
    host.iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)));
    });
    let t1 = TerminationKey {
        context: 1,
        termination: 1,
    };
    let t2 = TerminationKey {
        context: 1,
        termination: 2,
    };
    let y = host.add_tcp(BUF, BUF);
    host.tcp(y)
        .listen(IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(UE_Y)),
            port: 2855,
        })
        .unwrap();
    for c in [
        Command::Reserve {
            key: t1,
            local: SocketAddrV4::new(AGW_ACCESS, 2855).into(),
        },
        Command::Reserve {
            key: t2,
            local: SocketAddrV4::new(AGW_CORE, 2855).into(),
        },
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
            tls: None,
            framing,
        },
        Command::Join { a: t1, b: t2 },
    ] {
        control.commands.push(c).unwrap();
    }
    let mut x: Option<SocketHandle> = None;
    let (mut sent, mut got) = (0usize, 0usize);
    let mut worker_ns = 0u128;
    let mut rounds = 0u64;
    while got < stream.len() {
        let now = clock.now();
        let t = Wall::now();
        let busy = worker.poll(now);
        worker_ns += t.elapsed().as_nanos();
        host.poll(now);
        while let Some(e) = control.events.pop() {
            if let Event::Violation { .. } = e {
                panic!("{e:?}");
            }
        }
        rounds += 1;
        if x.is_none() && rounds > 20 {
            let h = host.add_tcp(BUF, BUF);
            let cx = host.iface.context();
            host.sockets
                .get_mut::<smoltcp::socket::tcp::Socket>(h)
                .connect(
                    cx,
                    IpEndpoint::new(IpAddress::Ipv4(AGW_ACCESS), 2855),
                    IpListenEndpoint {
                        addr: Some(IpAddress::Ipv4(UE_X)),
                        port: 2855,
                    },
                )
                .unwrap();
            x = Some(h);
        }
        let mut moved = false;
        if let Some(h) = x {
            let s = host.tcp(h);
            if sent < stream.len() && s.can_send() {
                let n = s.send_slice(&stream[sent..]).unwrap_or(0);
                sent += n;
                moved |= n > 0;
            }
        }
        let s = host.tcp(y);
        while s.can_recv() {
            let n = s.recv(|d| (d.len(), d.len())).unwrap_or(0);
            got += n;
            moved |= n > 0;
        }
        if !busy && !moved {
            clock.advance(Duration::from_micros(100));
        }
    }
    worker_ns
}

/// One stream relayed agnostic and aware, interleaved, with the framer alone as the floor;
/// prints its row.
fn compare(name: &str, bytes: &[u8], framing: Framing, framer_alone: impl Fn(&[u8])) {
    let reps = 5;
    let (mut agnostic, mut aware) = (Vec::new(), Vec::new());
    let mut floor = f64::MAX;
    for _ in 0..reps {
        agnostic.push(relay(bytes, Framing::Agnostic));
        aware.push(relay(bytes, framing));
        let t = Wall::now();
        framer_alone(bytes);
        floor = floor.min(t.elapsed().as_nanos() as f64);
    }
    let gbps = |ns: u128| bytes.len() as f64 * 8.0 / ns as f64;
    let (a_best, a_worst) = (
        *agnostic.iter().min().unwrap(),
        *agnostic.iter().max().unwrap(),
    );
    let (m_best, m_worst) = (*aware.iter().min().unwrap(), *aware.iter().max().unwrap());
    // The median of the per-repetition ratios: neighbours share the machine's state.
    let mut ratios: Vec<f64> = aware
        .iter()
        .zip(&agnostic)
        .map(|(m, a)| *m as f64 / *a as f64)
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "| {name} | {:.0} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:+.1} % | {:.2} | {:.2} |",
        bytes.len() as f64 / 1e6,
        gbps(a_best),
        gbps(a_worst),
        gbps(m_best),
        gbps(m_worst),
        (m_best as f64 / a_best as f64 - 1.0) * 100.0,
        1.0 / ratios[ratios.len() / 2],
        bytes.len() as f64 / floor,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: usize = std::env::var("IMSAGW_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let streams = std::env::var("IMSAGW_BENCH_STREAMS").unwrap_or_default();
    let wanted = |name: &str| streams.is_empty() || streams.split(',').any(|s| s == name);
    println!("# MSRP- and BFCP-aware against agnostic relay, one pair, worker time only (best of 5 interleaved runs; worst in brackets)");
    println!("| stream | MB | agnostic Gbit/s | aware Gbit/s | cost of awareness | aware/agnostic throughput (median of pairs) | framer alone GB/s |");
    println!("|---|---|---|---|---|---|---|");
    for (name, shape) in [
        (
            "chat",
            MsrpShape {
                messages: 0,
                max_body: 300,
                max_chunks: 1,
                binary: false,
                decoys: false,
            },
        ),
        (
            "file",
            MsrpShape {
                messages: 0,
                max_body: 64 * 1024,
                max_chunks: 16,
                binary: true,
                decoys: false,
            },
        ),
    ] {
        if !wanted(name) {
            continue;
        }
        // Enough messages for about `mb` megabytes.
        let probe = msrp_stream(
            1,
            MsrpShape {
                messages: 200,
                ..shape
            },
        );
        let messages = (mb * 1_000_000 * 200 / probe.bytes.len()).max(1);
        let sample = msrp_stream(1, MsrpShape { messages, ..shape });
        compare(name, &sample.bytes, Framing::Msrp, |bytes| {
            let mut f = MsrpFramer::new(
                MsrpLimits {
                    messages_per_second: 0,
                    ..MsrpLimits::default()
                },
                0,
            );
            for piece in bytes.chunks(16 * 1024) {
                f.feed(piece, 0).unwrap();
            }
            assert_eq!(*f.counters(), sample.counters);
        });
    }
    // BFCP frames are small (a common header and a few attributes): the worst case.
    if !wanted("bfcp") {
        return;
    }
    let probe = bfcp_stream(1, 1000);
    let frames = (mb * 1_000_000 * 1000 / probe.bytes.len() / 8).max(1);
    let sample = bfcp_stream(1, frames);
    compare("bfcp", &sample.bytes, Framing::Bfcp, |bytes| {
        let mut f = BfcpFramer::new(
            BfcpLimits {
                frames_per_second: 0,
                ..BfcpLimits::default()
            },
            0,
        );
        for piece in bytes.chunks(16 * 1024) {
            f.feed(piece, 0).unwrap();
        }
        assert_eq!(*f.counters(), sample.counters);
    });
}
