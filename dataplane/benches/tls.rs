//! TLS at the access edge against its floor, in one run on one core:
//! - full handshakes per second (server side: the AGW is the TLS server, asks for the UE's
//!   certificate and pins it; ECDSA P-256, X25519, TLS 1.3): the worker's poll time per
//!   handshake, UEs connecting 32 at a time over MemLink, against the server side of rustls
//!   alone in-process with the same configuration (the floor);
//! - relay throughput TLS -> TCP and TLS -> TLS: the worker's poll time per byte against
//!   rustls's own decrypt (and encrypt) of the same records in-process.
//!
//! Only the worker's time is counted, not the simulated UEs'. `cargo bench -p dataplane --bench
//! tls`; env IMSAGW_BENCH_QUICK=1 for a short run.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration as Wall, Instant as WallInstant};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::tls::{HashAlg, Identity, TlsConfig, TlsSession};
use dataplane::worker::{Worker, WorkerConfig};
use rustls::pki_types::ServerName;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr};
use testbed::memlink::{MemLink, MemLinkConfig, MemPort};
use testbed::Host;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);

struct Rig {
    clock: VirtualClock,
    worker: Worker<MemPort>,
    host: Host<MemPort>,
    control: ControlEnd,
    worker_time: Wall,
    next_key: u32,
    next_port: u16,
}

impl Rig {
    fn new() -> Rig {
        let clock = VirtualClock::new();
        let link = MemLinkConfig {
            pool_buffers: 1 << 16,
            queue_frames: 1 << 14,
            ..MemLinkConfig::default()
        };
        let (pa, pb) = MemLink::pair(link, clock.clone());
        let (control, worker_end) = rings(4096);
        let cfg = WorkerConfig {
            addresses: vec![
                Ipv4Cidr::new(AGW_ACCESS, 15).into(),
                Ipv4Cidr::new(AGW_CORE, 15).into(),
            ],
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            ..WorkerConfig::default()
        };
        let worker = Worker::new(pa, cfg, worker_end, clock.now());
        let mut host = Host::new(pb, Ipv4Cidr::new(UE_X, 15), clock.now());
        host.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)));
        });
        Rig {
            clock,
            worker,
            host,
            control,
            worker_time: Wall::ZERO,
            next_key: 1,
            next_port: 10000,
        }
    }

    fn step(&mut self) -> bool {
        let now = self.clock.now();
        let t = WallInstant::now();
        let mut busy = self.worker.poll(now);
        self.worker_time += t.elapsed();
        let before = self.host.device.stats();
        self.host.poll(now);
        busy |= self.host.device.stats() != before;
        busy
    }

    fn idle(&mut self) {
        let now = self.clock.now();
        let mut next = now + Duration::from_millis(1);
        for t in [
            self.host.device.port().next_arrival(),
            self.worker.port().next_arrival(),
            self.host.poll_at(now),
        ]
        .into_iter()
        .flatten()
        {
            if t > now {
                next = next.min(t);
            }
        }
        self.clock
            .advance_to(next.max(now + Duration::from_micros(1)));
    }

    fn key(&mut self) -> TerminationKey {
        self.next_key += 1;
        TerminationKey {
            context: self.next_key,
            termination: self.next_key,
        }
    }

    fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    fn send(&mut self, c: Command) {
        self.control.commands.push(c).expect("ring room");
    }

    fn connect(&mut self, to: SocketAddrV4, from_port: u16) -> SocketHandle {
        let h = self.host.add_tcp(256 * 1024, 256 * 1024);
        let cx = self.host.iface.context();
        self.host
            .sockets
            .get_mut::<tcp::Socket>(h)
            .connect(
                cx,
                IpEndpoint::from(to),
                IpListenEndpoint {
                    addr: Some(IpAddress::Ipv4(UE_X)),
                    port: from_port,
                },
            )
            .unwrap();
        h
    }
}

fn drive(tls: &mut TlsSession, s: &mut tcp::Socket<'static>) -> bool {
    if !matches!(s.state(), tcp::State::Established | tcp::State::CloseWait) {
        return false;
    }
    let a = tls.receive(s).expect("UE TLS");
    let b = tls.transmit(s);
    a + b > 0
}

/// Worker time per TLS server handshake: `batches` of 32 UEs connecting at once.
fn worker_handshakes(agw: &TlsConfig, ue: &TlsConfig, batches: usize) -> f64 {
    let mut rig = Rig::new();
    let mut done = 0usize;
    let mut time = Wall::ZERO;
    for _ in 0..batches {
        let mut ues = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..32 {
            let (k, p) = (rig.key(), rig.port());
            rig.send(Command::Reserve {
                key: k,
                local: SocketAddrV4::new(AGW_ACCESS, p).into(),
            });
            rig.send(Command::Start {
                key: k,
                role: LegRole::Passive,
                accept: Accept::Latch,
                timers: LegTimers::default(),
                tls: Some(agw.clone()),
                framing: Framing::Agnostic,
            });
            keys.push(k);
            ues.push(p);
        }
        rig.step();
        let mut sessions: Vec<(SocketHandle, TlsSession)> = ues
            .iter()
            .map(|&p| {
                (
                    rig.connect(SocketAddrV4::new(AGW_ACCESS, p), p),
                    TlsSession::new(ue).unwrap(),
                )
            })
            .collect();
        let before = rig.worker_time;
        let mut established = 0;
        let mut rounds = 0;
        while established < 32 {
            rounds += 1;
            assert!(rounds < 1_000_000, "handshakes did not finish");
            let mut busy = rig.step();
            for (h, s) in sessions.iter_mut() {
                busy |= drive(s, rig.host.tcp(*h));
            }
            while let Some(e) = rig.control.events.pop() {
                match e {
                    Event::TlsEstablished { .. } => established += 1,
                    Event::TlsFailed { failure, .. } => panic!("handshake failed: {failure:?}"),
                    _ => {}
                }
            }
            if !busy {
                rig.idle();
            }
        }
        time += rig.worker_time - before;
        done += 32;
        for k in keys {
            rig.send(Command::Release { key: k });
        }
        for (h, _) in sessions {
            rig.host.tcp(h).abort();
        }
        for _ in 0..200 {
            if !rig.step() {
                rig.idle();
            }
            while rig.control.events.pop().is_some() {}
        }
        rig.host.sockets.iter_mut().count();
    }
    time.as_secs_f64() * 1e9 / done as f64
}

/// Moves records from one connection to another in memory; returns the time the receiver
/// took when `time_receiver`.
fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection, buf: &mut Vec<u8>) -> Wall {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf).unwrap();
    }
    let t = WallInstant::now();
    let mut r = &buf[..];
    while !r.is_empty() {
        to.read_tls(&mut r).unwrap();
        to.process_new_packets().unwrap();
    }
    t.elapsed()
}

fn conns(agw: &TlsConfig, ue: &TlsConfig) -> (rustls::Connection, rustls::Connection) {
    let TlsConfig::Server(s) = agw else { panic!() };
    let TlsConfig::Client(c, ip) = ue else {
        panic!()
    };
    let client: rustls::Connection =
        rustls::ClientConnection::new(Arc::clone(c), ServerName::IpAddress((*ip).into()))
            .unwrap()
            .into();
    let server: rustls::Connection = rustls::ServerConnection::new(Arc::clone(s)).unwrap().into();
    (client, server)
}

/// rustls alone, in-process: server-side time per handshake with the same configurations.
fn floor_handshakes(agw: &TlsConfig, ue: &TlsConfig, n: usize) -> f64 {
    let mut server_time = Wall::ZERO;
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..n {
        let t = WallInstant::now();
        let (mut c, mut s) = conns(agw, ue);
        server_time += t.elapsed() / 2;
        while c.is_handshaking() || s.is_handshaking() || c.wants_write() || s.wants_write() {
            server_time += transfer(&mut c, &mut s, &mut buf);
            let t = WallInstant::now();
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            server_time += t.elapsed();
            let mut r = &buf[..];
            while !r.is_empty() {
                c.read_tls(&mut r).unwrap();
                c.process_new_packets().unwrap();
            }
        }
    }
    server_time.as_secs_f64() * 1e9 / n as f64
}

/// rustls alone: ns per byte to decrypt, and to encrypt, bulk records.
fn floor_bulk(agw: &TlsConfig, ue: &TlsConfig, bytes: u64) -> (f64, f64) {
    let (mut c, mut s) = conns(agw, ue);
    let mut buf = Vec::with_capacity(1 << 20);
    while c.is_handshaking() || s.is_handshaking() {
        transfer(&mut c, &mut s, &mut buf);
        transfer(&mut s, &mut c, &mut buf);
    }
    c.set_buffer_limit(None);
    let chunk = vec![0x5au8; 16 * 1024];
    let mut out = vec![0u8; 64 * 1024];
    let (mut enc, mut dec) = (Wall::ZERO, Wall::ZERO);
    let mut done = 0u64;
    while done < bytes {
        let t = WallInstant::now();
        for _ in 0..16 {
            c.writer().write_all(&chunk).unwrap();
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        enc += t.elapsed();
        let t = WallInstant::now();
        let mut r = &buf[..];
        while !r.is_empty() {
            s.read_tls(&mut r).unwrap();
            s.process_new_packets().unwrap();
            while let Ok(n) = s.reader().read(&mut out) {
                if n == 0 {
                    break;
                }
            }
        }
        dec += t.elapsed();
        done += 16 * chunk.len() as u64;
    }
    (
        dec.as_secs_f64() * 1e9 / bytes as f64,
        enc.as_secs_f64() * 1e9 / bytes as f64,
    )
}

/// Worker ns per relayed byte: UE-X (TLS client) sends `bytes` through T1 (TLS) to T2
/// (plain, or TLS towards UE-Y when `tls_both`).
fn worker_relay(
    agw: &TlsConfig,
    ue: &TlsConfig,
    y: Option<(&TlsConfig, &TlsConfig)>,
    bytes: u64,
) -> f64 {
    let mut rig = Rig::new();
    let (t1, t2) = (rig.key(), rig.key());
    rig.send(Command::Reserve {
        key: t1,
        local: SocketAddrV4::new(AGW_ACCESS, 41000).into(),
    });
    rig.send(Command::Reserve {
        key: t2,
        local: SocketAddrV4::new(AGW_CORE, 42000).into(),
    });
    let yh = rig.host.add_tcp(256 * 1024, 256 * 1024);
    rig.host
        .tcp(yh)
        .listen(IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(UE_Y)),
            port: 2855,
        })
        .unwrap();
    rig.send(Command::Start {
        key: t2,
        role: LegRole::Active {
            remote: SocketAddrV4::new(UE_Y, 2855).into(),
        },
        accept: Accept::Latch,
        timers: LegTimers::default(),
        tls: y.map(|(agw_y, _)| agw_y.clone()),
        framing: Framing::Agnostic,
    });
    rig.send(Command::Start {
        key: t1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: LegTimers::default(),
        tls: Some(agw.clone()),
        framing: Framing::Agnostic,
    });
    rig.send(Command::Join { a: t1, b: t2 });
    rig.step();
    let xh = rig.connect(SocketAddrV4::new(AGW_ACCESS, 41000), 5000);
    let mut xs = TlsSession::new(ue).unwrap();
    let mut ys = y.map(|(_, ue_y)| TlsSession::new(ue_y).unwrap());
    let chunk = vec![0xa5u8; 16 * 1024];
    let mut sink = vec![0u8; 64 * 1024];
    let (mut sent, mut got) = (0u64, 0u64);
    let mut start: Option<Wall> = None;
    let mut rounds = 0u64;
    while got < bytes {
        rounds += 1;
        assert!(rounds < 100_000_000, "relay stalled at {got}");
        let mut busy = rig.step();
        let s = rig.host.tcp(xh);
        busy |= drive(&mut xs, s);
        if !xs.is_handshaking() {
            start.get_or_insert(rig.worker_time);
            while sent < bytes && !xs.wants_write() {
                let k = xs.write_plaintext(&chunk);
                if k == 0 {
                    break;
                }
                sent += k as u64;
                xs.transmit(s);
                busy = true;
            }
        }
        let s = rig.host.tcp(yh);
        match ys.as_mut() {
            None => {
                while let Ok(n) = s.recv_slice(&mut sink) {
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                    busy = true;
                }
            }
            Some(t) => {
                busy |= drive(t, s);
                loop {
                    let n = t.read_plaintext(&mut sink);
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                    busy = true;
                }
                busy |= drive(t, s);
            }
        }
        if !busy {
            rig.idle();
        }
    }
    let t = rig.worker_time - start.unwrap_or(Wall::ZERO);
    t.as_secs_f64() * 1e9 / bytes as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("IMSAGW_BENCH_QUICK").is_some()
        || !std::env::args().any(|a| a == "--bench");
    let (batches, floor_n, bytes, reps) = if quick {
        (2, 64, 8 << 20, 1)
    } else {
        (16, 1000, 512 << 20, 3)
    };
    let agw_id = Identity::generate("agw.example").unwrap();
    let ue_id = Identity::generate("ue.example").unwrap();
    let y_id = Identity::generate("ue-y.example").unwrap();
    let agw = TlsConfig::new(&agw_id, None, vec![ue_id.fingerprint(HashAlg::Sha256)]).unwrap();
    let ue = TlsConfig::with_versions(
        &ue_id,
        Some(AGW_ACCESS.into()),
        vec![agw_id.fingerprint(HashAlg::Sha256)],
        &[&rustls::version::TLS13],
    )
    .unwrap();
    let agw_y = TlsConfig::new(
        &agw_id,
        Some(UE_Y.into()),
        vec![y_id.fingerprint(HashAlg::Sha256)],
    )
    .unwrap();
    let ue_y = TlsConfig::with_versions(
        &y_id,
        None,
        vec![agw_id.fingerprint(HashAlg::Sha256)],
        &[&rustls::version::TLS13],
    )
    .unwrap();

    // IMSAGW_BENCH_ONLY=handshakes: the worker's handshakes alone, for a profiler.
    if std::env::var("IMSAGW_BENCH_ONLY").is_ok_and(|v| v == "handshakes") {
        let ns = worker_handshakes(&agw, &ue, batches);
        println!("worker handshakes/s: {:.0}", 1e9 / ns);
        return;
    }
    let min = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[0], v[v.len() - 1])
    };
    let (mut hw, mut hf, mut rw, mut rf, mut tw, mut tf) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        // Interleaved: floor, worker, floor, worker ...
        hf.push(floor_handshakes(&agw, &ue, floor_n));
        hw.push(worker_handshakes(&agw, &ue, batches));
        let (dec, enc) = floor_bulk(&agw, &ue, bytes);
        rf.push(dec);
        tf.push(dec + enc);
        rw.push(worker_relay(&agw, &ue, None, bytes));
        tw.push(worker_relay(&agw, &ue, Some((&agw_y, &ue_y)), bytes));
    }
    let (hw0, hw1) = min(&mut hw);
    let (hf0, hf1) = min(&mut hf);
    let (rw0, rw1) = min(&mut rw);
    let (rf0, rf1) = min(&mut rf);
    let (tw0, tw1) = min(&mut tw);
    let (tf0, tf1) = min(&mut tf);
    let gbit = |ns_per_byte: f64| 8.0 / ns_per_byte;
    println!("# TLS at the access edge, one core, best (and worst) of {reps} interleaved runs");
    println!("| workload | imsagw worker | floor (rustls in-process) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| full handshakes/s, AGW as server, ECDSA P-256, X25519, TLS 1.3, client cert pinned | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} |",
        1e9 / hw0,
        1e9 / hw1,
        1e9 / hf0,
        1e9 / hf1,
        hw0 / hf0
    );
    println!(
        "| relay TLS -> TCP, Gbit/s of payload | {:.2} ({:.2}) | {:.2} ({:.2}) decrypt | {:.2} |",
        gbit(rw0),
        gbit(rw1),
        gbit(rf0),
        gbit(rf1),
        rw0 / rf0
    );
    println!(
        "| relay TLS -> TLS, Gbit/s of payload | {:.2} ({:.2}) | {:.2} ({:.2}) decrypt + encrypt | {:.2} |",
        gbit(tw0),
        gbit(tw1),
        gbit(tf0),
        gbit(tf1),
        tw0 / tf0
    );
}
