//! T.38 over DTLS at the access edge against its floor, in one run on one core:
//! - DTLS 1.2 handshakes per second, the AGW as server (cookie exchange, client certificate
//!   asked for and pinned; ECDSA P-256, ECDHE, AES-128-GCM as dimpl negotiates it): the
//!   worker's poll time per handshake, 32 UEs at a time over MemLink, against dimpl's server
//!   alone in-process (the floor);
//! - relayed datagrams per second: UDPTL-sized datagrams (200 bytes) through a DTLS <-> UDP
//!   pair, both directions, the worker's poll time per datagram, against dimpl's own record
//!   decrypt or encrypt of one such datagram in-process; and a plain UDP <-> UDP pair.
//!
//! Only the worker's time is counted, not the simulated UEs'. `cargo bench -p dataplane --bench
//! dtls`; env IMSAGW_BENCH_QUICK=1 for a short run.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration as Wall, Instant as WallInstant};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity};
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpCidr, IpEndpoint, Ipv4Cidr};
use testbed::memlink::{MemLink, MemLinkConfig, MemPort};
use testbed::{DtlsPeer, Host};

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
const DATAGRAM: usize = 200;

struct Rig {
    clock: VirtualClock,
    worker: Worker<MemPort>,
    host: Host<MemPort>,
    control: ControlEnd,
    worker_time: Wall,
    next_key: u32,
    next_port: u16,
}

fn ep(a: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::from(a)
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

    fn udp(&mut self, at: SocketAddrV4) -> SocketHandle {
        let buf =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 2048]);
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(ep(at)).unwrap();
        self.host.sockets.add(s)
    }

    fn pump(&mut self, peers: &mut [DtlsPeer]) -> bool {
        let now = self.clock.now();
        let mut busy = false;
        for p in peers {
            busy |= p.pump(&mut self.host.sockets, now);
        }
        busy
    }
}

fn timers() -> LegTimers {
    LegTimers {
        idle: None,
        ..LegTimers::default()
    }
}

/// Worker time per DTLS server handshake: `batches` of 32 UEs at once.
fn worker_handshakes(ids: &Ids, batches: usize) -> f64 {
    let mut rig = Rig::new();
    let mut done = 0usize;
    let mut time = Wall::ZERO;
    for _ in 0..batches {
        let mut peers = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..32 {
            let (k, p) = (rig.key(), rig.port());
            rig.send(Command::ReserveDatagram {
                key: k,
                local: SocketAddrV4::new(AGW_ACCESS, p).into(),
            });
            rig.send(Command::StartDatagram {
                key: k,
                remote: Some(SocketAddrV4::new(UE_X, p).into()),
                accept: Accept::Gate(UE_X.into()),
                relatch: false,
                timers: timers(),
                dtls: Some(ids.agw_server.clone()),
            });
            keys.push(k);
            let h = rig.udp(SocketAddrV4::new(UE_X, p));
            peers.push(DtlsPeer::new(
                ids.ue_cert.clone(),
                true,
                h,
                ep(SocketAddrV4::new(AGW_ACCESS, p)),
                rig.clock.now(),
            ));
        }
        rig.step();
        let before = rig.worker_time;
        let mut established = 0;
        let mut rounds = 0;
        while established < 32 {
            rounds += 1;
            assert!(rounds < 1_000_000, "handshakes did not finish");
            let mut busy = rig.step();
            busy |= rig.pump(&mut peers);
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
        for _ in 0..50 {
            if !rig.step() {
                rig.idle();
            }
            rig.pump(&mut peers);
            while rig.control.events.pop().is_some() {}
        }
        for p in peers {
            rig.host.sockets.remove(p.handle);
        }
    }
    time.as_secs_f64() * 1e9 / done as f64
}

/// Worker time per relayed datagram through one pair, `n` each way, 32 at a time; T1 with
/// DTLS (towards UE-X) or plain.
fn worker_relay(ids: &Ids, dtls: bool, n: usize) -> f64 {
    let mut rig = Rig::new();
    let (t1, t2) = (rig.key(), rig.key());
    let (access, core) = (
        SocketAddrV4::new(AGW_ACCESS, 40000),
        SocketAddrV4::new(AGW_CORE, 40002),
    );
    let (x, y) = (SocketAddrV4::new(UE_X, 5004), SocketAddrV4::new(UE_Y, 6004));
    rig.send(Command::ReserveDatagram {
        key: t1,
        local: access.into(),
    });
    rig.send(Command::ReserveDatagram {
        key: t2,
        local: core.into(),
    });
    rig.send(Command::StartDatagram {
        key: t2,
        remote: Some(y.into()),
        accept: Accept::Gate(UE_Y.into()),
        relatch: false,
        timers: timers(),
        dtls: None,
    });
    rig.send(Command::StartDatagram {
        key: t1,
        remote: Some(x.into()),
        accept: Accept::Gate(UE_X.into()),
        relatch: false,
        timers: timers(),
        dtls: dtls.then(|| ids.agw_server.clone()),
    });
    rig.send(Command::Join { a: t1, b: t2 });
    let hx = rig.udp(x);
    let hy = rig.udp(y);
    let mut ue = [DtlsPeer::new(
        ids.ue_cert.clone(),
        true,
        hx,
        ep(access),
        rig.clock.now(),
    )];
    if dtls {
        while !ue[0].connected {
            let busy = rig.step() | rig.pump(&mut ue);
            if !busy {
                rig.idle();
            }
        }
    }
    // Both next hops resolved before timing.
    rig.host
        .sockets
        .get_mut::<udp::Socket>(hy)
        .send_slice(&[0; 8], ep(core))
        .unwrap();
    for _ in 0..2000 {
        let mut busy = rig.step();
        if dtls {
            busy |= rig.pump(&mut ue);
        }
        if !busy {
            rig.idle();
        }
    }
    // The warm-up datagram, wherever it went.
    if dtls {
        ue[0].received.clear();
    } else {
        let s = rig.host.sockets.get_mut::<udp::Socket>(hx);
        while s.recv().is_ok() {}
    }
    let payload = vec![0x5a; DATAGRAM];
    let mut plain_rx = Vec::new();
    let before = rig.worker_time;
    let (mut sent, mut got_x, mut got_y) = (0usize, 0usize, 0usize);
    let start_x = ue[0].received.len();
    let mut rounds = 0u64;
    while got_x < n || got_y < n {
        rounds += 1;
        assert!(
            rounds < 10_000_000,
            "relay stuck: sent {sent}, at UE-X {got_x}, at UE-Y {got_y}; {:?}; UE {:?}",
            rig.worker.counters(),
            ue[0].error
        );
        if sent < n && got_y >= sent && got_x >= sent {
            for _ in 0..32.min(n - sent) {
                if dtls {
                    assert!(ue[0].send(&mut rig.host.sockets, &payload));
                } else {
                    rig.host
                        .sockets
                        .get_mut::<udp::Socket>(hx)
                        .send_slice(&payload, ep(access))
                        .unwrap();
                }
                rig.host
                    .sockets
                    .get_mut::<udp::Socket>(hy)
                    .send_slice(&payload, ep(core))
                    .unwrap();
                sent += 1;
            }
        }
        let mut busy = rig.step();
        if dtls {
            busy |= rig.pump(&mut ue);
            got_x = ue[0].received.len() - start_x;
        } else {
            let s = rig.host.sockets.get_mut::<udp::Socket>(hx);
            while let Ok((d, _)) = s.recv() {
                plain_rx.push(d.len());
                got_x += 1;
            }
        }
        let s = rig.host.sockets.get_mut::<udp::Socket>(hy);
        while let Ok((d, _)) = s.recv() {
            assert_eq!(d.len(), DATAGRAM, "{:?}", &d[..d.len().min(40)]);
            got_y += 1;
        }
        if !busy {
            rig.idle();
        }
    }
    let c = rig.worker.counters();
    assert_eq!(c.udp_dropped, 0, "{c:?}");
    (rig.worker_time - before).as_secs_f64() * 1e9 / (2 * n) as f64
}

/// A dimpl client (the UE) and server (the AGW) connected in memory; returns the pair and
/// the server side's share of the time (its creation and every call made on it).
fn connected_pair(
    ids: &Ids,
    cfg: &Arc<dimpl::Config>,
    buf: &mut [u8],
) -> (dimpl::Dtls, dimpl::Dtls, Wall) {
    let base = std::time::Instant::now();
    let mut c = dimpl::Dtls::new_12(Arc::clone(cfg), ids.ue_cert.clone(), base);
    c.set_active(true);
    let t = WallInstant::now();
    let mut s = dimpl::Dtls::new_12(Arc::clone(cfg), ids.agw_cert.clone(), base);
    let mut server_time = t.elapsed();
    let (mut cc, mut sc) = (false, false);
    let (mut to_s, mut to_c): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut rounds = 0;
    while !(cc && sc) {
        rounds += 1;
        assert!(rounds < 100, "in-memory handshake stuck");
        c.handle_timeout(std::time::Instant::now()).unwrap();
        for p in to_c.drain(..) {
            c.handle_packet(&p).unwrap();
        }
        while let Some(o) = next(&mut c, buf) {
            match o {
                Out::Packet(p) => to_s.push(p),
                Out::Connected => cc = true,
            }
        }
        let t = WallInstant::now();
        s.handle_timeout(std::time::Instant::now()).unwrap();
        for p in to_s.drain(..) {
            s.handle_packet(&p).unwrap();
        }
        while let Some(o) = next(&mut s, buf) {
            match o {
                Out::Packet(p) => to_c.push(p),
                Out::Connected => sc = true,
            }
        }
        server_time += t.elapsed();
    }
    // The server's last flight (its Finished) to the client.
    for p in to_c.drain(..) {
        c.handle_packet(&p).unwrap();
    }
    while next(&mut c, buf).is_some() {}
    (c, s, server_time)
}

/// dimpl alone: server-side time per handshake with the client certificate required.
fn floor_handshakes(ids: &Ids, n: usize) -> f64 {
    let cfg = Arc::new(dimpl::Config::default());
    let mut buf = vec![0u8; 4096];
    let mut server_time = Wall::ZERO;
    for _ in 0..n {
        server_time += connected_pair(ids, &cfg, &mut buf).2;
    }
    server_time.as_secs_f64() * 1e9 / n as f64
}

enum Out {
    Packet(Vec<u8>),
    Connected,
}

fn next(d: &mut dimpl::Dtls, buf: &mut [u8]) -> Option<Out> {
    loop {
        match d.poll_output(buf) {
            dimpl::Output::Packet(p) => return Some(Out::Packet(p.to_vec())),
            dimpl::Output::Connected => return Some(Out::Connected),
            dimpl::Output::Timeout(_) => return None,
            _ => {}
        }
    }
}

/// dimpl alone: time per datagram to encrypt one, and to decrypt one (connected pair).
fn floor_records(ids: &Ids, n: usize) -> (f64, f64) {
    let cfg = Arc::new(dimpl::Config::default());
    let mut buf = vec![0u8; 4096];
    let (mut c, mut s, _) = connected_pair(ids, &cfg, &mut buf);
    let payload = vec![0x5a; DATAGRAM];
    let (mut enc, mut dec) = (Wall::ZERO, Wall::ZERO);
    let mut record = Vec::with_capacity(2048);
    for _ in 0..n {
        let t = WallInstant::now();
        s.send_application_data(&payload).unwrap();
        record.clear();
        loop {
            match s.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => record.extend_from_slice(p),
                dimpl::Output::Timeout(_) => break,
                _ => {}
            }
        }
        enc += t.elapsed();
        let t = WallInstant::now();
        c.handle_packet(&record).unwrap();
        let mut got = 0;
        loop {
            match c.poll_output(&mut buf) {
                dimpl::Output::ApplicationData(d) => got += d.len(),
                dimpl::Output::Timeout(_) => break,
                _ => {}
            }
        }
        dec += t.elapsed();
        assert_eq!(got, DATAGRAM);
    }
    (
        enc.as_secs_f64() * 1e9 / n as f64,
        dec.as_secs_f64() * 1e9 / n as f64,
    )
}

struct Ids {
    agw_server: DtlsConfig,
    agw_cert: dimpl::DtlsCertificate,
    ue_cert: dimpl::DtlsCertificate,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("IMSAGW_BENCH_QUICK").is_some()
        || !std::env::args().any(|a| a == "--bench");
    let (batches, floor_n, datagrams, reps) = if quick {
        (2, 64, 2_000, 1)
    } else {
        (16, 500, 100_000, 3)
    };
    let agw = Identity::generate("agw.example").unwrap();
    let ue = Identity::generate("ue.example").unwrap();
    let ids = Ids {
        agw_server: DtlsConfig::new(&agw, false, vec![ue.fingerprint(HashAlg::Sha256)], None)
            .unwrap(),
        agw_cert: (**agw.dtls_certificate().unwrap()).clone(),
        ue_cert: (**ue.dtls_certificate().unwrap()).clone(),
    };
    let best = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[0], v[v.len() - 1])
    };
    let (mut hw, mut hf, mut rw, mut pw, mut ef, mut df) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        // Interleaved: floor, worker, floor, worker ...
        hf.push(floor_handshakes(&ids, floor_n));
        hw.push(worker_handshakes(&ids, batches));
        let (e, d) = floor_records(&ids, datagrams);
        ef.push(e);
        df.push(d);
        rw.push(worker_relay(&ids, true, datagrams));
        pw.push(worker_relay(&ids, false, datagrams));
    }
    let (hw0, hw1) = best(&mut hw);
    let (hf0, hf1) = best(&mut hf);
    let (rw0, rw1) = best(&mut rw);
    let (pw0, pw1) = best(&mut pw);
    let (ef0, _) = best(&mut ef);
    let (df0, _) = best(&mut df);
    // Per relayed datagram the worker decrypts (UE -> core) or encrypts (core -> UE): the
    // floor is the mean of one of each.
    let floor_dg = (ef0 + df0) / 2.0;
    let per_s = |ns: f64| 1e9 / ns;
    println!("# T.38 over DTLS at the access edge, one core, best (and worst) of {reps} interleaved runs");
    println!("| workload | imsagw worker | floor (dimpl in-process) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| DTLS 1.2 handshakes/s, AGW as server, cookie, ECDSA P-256, client cert pinned | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} |",
        per_s(hw0),
        per_s(hw1),
        per_s(hf0),
        per_s(hf1),
        hf0 / hw0
    );
    println!(
        "| datagrams/s relayed DTLS <-> UDP, {DATAGRAM} B, both ways | {:.0} ({:.0}) | {:.0} (encrypt {:.0} ns, decrypt {:.0} ns) | {:.2} |",
        per_s(rw0),
        per_s(rw1),
        per_s(floor_dg),
        ef0,
        df0,
        floor_dg / rw0
    );
    println!(
        "| datagrams/s relayed UDP <-> UDP, {DATAGRAM} B, both ways | {:.0} ({:.0}) | - | - |",
        per_s(pw0),
        per_s(pw1)
    );
}
