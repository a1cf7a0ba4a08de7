//! A worker on one end of a MemLink and a smoltcp host playing both UEs on the other, on one
//! virtual clock, with the control end of the worker's rings.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr, Ipv6Cidr};
use testbed::memlink::{Faults, MemLink, MemLinkConfig, MemPool, MemPort};
use testbed::Host;
use testbed::{PatternChecker, PatternSender};

pub const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
pub const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
pub const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
pub const NAT: Ipv4Addr = Ipv4Addr::new(198, 18, 150, 1);
/// The IPv6 access network (documentation prefix): the AGW's access address and UE-X.
pub const AGW_ACCESS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 0x10);
pub const UE_X6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0x100, 0, 0, 0, 0x7);
/// The IPv6 core network.
pub const AGW_CORE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 0x20);
pub const UE_Y6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0x200, 0, 0, 0, 0x50);

/// The addresses of a proxied pair: the AGW's access and core legs, and the UEs they serve.
#[derive(Debug, Clone, Copy)]
pub struct PairAddrs {
    pub access: IpAddr,
    pub core: IpAddr,
    pub ue_x: IpAddr,
    pub ue_y: IpAddr,
}

/// Both sides on IPv4 (the seed's flow).
pub const V4_V4: PairAddrs = PairAddrs {
    access: IpAddr::V4(AGW_ACCESS),
    core: IpAddr::V4(AGW_CORE),
    ue_x: IpAddr::V4(UE_X),
    ue_y: IpAddr::V4(UE_Y),
};
/// UE-X on IPv6 in the access network, UE-Y on IPv4 in the core network.
pub const V6_V4: PairAddrs = PairAddrs {
    access: IpAddr::V6(AGW_ACCESS6),
    core: IpAddr::V4(AGW_CORE),
    ue_x: IpAddr::V6(UE_X6),
    ue_y: IpAddr::V4(UE_Y),
};
/// UE-X on IPv4, UE-Y on IPv6.
pub const V4_V6: PairAddrs = PairAddrs {
    access: IpAddr::V4(AGW_ACCESS),
    core: IpAddr::V6(AGW_CORE6),
    ue_x: IpAddr::V4(UE_X),
    ue_y: IpAddr::V6(UE_Y6),
};
/// Both on IPv6.
pub const V6_V6: PairAddrs = PairAddrs {
    access: IpAddr::V6(AGW_ACCESS6),
    core: IpAddr::V6(AGW_CORE6),
    ue_x: IpAddr::V6(UE_X6),
    ue_y: IpAddr::V6(UE_Y6),
};

pub const T1: TerminationKey = TerminationKey {
    context: 1,
    termination: 1,
};
pub const T2: TerminationKey = TerminationKey {
    context: 1,
    termination: 2,
};

pub enum Progress {
    Busy,
    Idle,
    Done,
}

pub struct Bed {
    pub clock: VirtualClock,
    pub worker: Worker<MemPort>,
    pub host: Host<MemPort>,
    pub control: ControlEnd,
    pub events: Vec<Event>,
    pub pool: MemPool,
}

pub fn bed_with(faults: Faults, seed: u64, worker_cfg: WorkerConfig) -> Bed {
    bed_with_pool(faults, seed, worker_cfg, 16384)
}

/// A bed whose link has `pool_buffers` frame buffers in all (both ends draw on them).
pub fn bed_with_pool(
    faults: Faults,
    seed: u64,
    worker_cfg: WorkerConfig,
    pool_buffers: usize,
) -> Bed {
    let clock = VirtualClock::new();
    let link = MemLinkConfig {
        seed,
        pool_buffers,
        faults_a_to_b: faults.clone(),
        faults_b_to_a: faults,
        ..MemLinkConfig::default()
    };
    let (pa, pb) = MemLink::pair(link, clock.clone());
    let pool = pa.pool().clone();
    let now = clock.now();
    let mut cfg = WorkerConfig {
        addresses: vec![
            Ipv4Cidr::new(AGW_ACCESS, 15).into(),
            Ipv4Cidr::new(AGW_CORE, 15).into(),
        ],
        ..worker_cfg.clone()
    };
    cfg.addresses.extend(worker_cfg.addresses);
    let (control, worker_end) = rings(1024);
    let worker = Worker::new(pa, cfg, worker_end, now);
    let mut host = Host::new(pb, Ipv4Cidr::new(UE_X, 15), now);
    host.iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)));
        let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(NAT, 15)));
    });
    Bed {
        clock,
        worker,
        host,
        control,
        events: Vec::new(),
        pool,
    }
}

/// A bed whose worker and host also have the IPv6 access and core addresses (one /32 link,
/// as the IPv4 addresses share one /15).
pub fn bed_dual(faults: Faults, seed: u64, worker_cfg: WorkerConfig) -> Bed {
    let v6 = |a: Ipv6Addr| IpCidr::Ipv6(Ipv6Cidr::new(a, 32));
    let mut cfg = worker_cfg;
    cfg.addresses.extend([v6(AGW_ACCESS6), v6(AGW_CORE6)]);
    let mut b = bed_with(faults, seed, cfg);
    b.host.iface.update_ip_addrs(|a| {
        let _ = a.push(v6(UE_X6));
        let _ = a.push(v6(UE_Y6));
    });
    b
}

pub fn bed(faults: Faults, seed: u64) -> Bed {
    bed_with(faults, seed, WorkerConfig::default())
}

impl Bed {
    pub fn send(&mut self, cmd: Command) {
        self.control
            .commands
            .push(cmd)
            .expect("command ring has room");
    }

    /// One round: the worker, then the host; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let now = self.clock.now();
        let mut busy = self.worker.poll(now);
        let before = self.host.device.stats();
        self.host.poll(now);
        busy |= self.host.device.stats() != before;
        while let Some(e) = self.control.events.pop() {
            self.events.push(e);
            busy = true;
        }
        busy
    }

    /// Advances the clock to the next thing that can happen (at least 1 ms when idle).
    pub fn idle(&mut self) {
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

    /// Runs rounds with `app` (which drives the UE sockets) until it says `Done`; panics after
    /// `limit` of virtual time.
    pub fn run(&mut self, limit: Duration, mut app: impl FnMut(&mut Bed) -> Progress) {
        let end = self.clock.now() + limit;
        loop {
            let mut busy = self.step();
            match app(self) {
                Progress::Done => return,
                Progress::Busy => busy = true,
                Progress::Idle => {}
            }
            assert!(
                self.clock.now() < end,
                "not done after {limit} of virtual time; events: {:?}",
                self.events
            );
            if !busy {
                self.idle();
            }
        }
    }

    /// Runs until `cond` holds.
    pub fn wait_for(&mut self, limit: Duration, cond: impl Fn(&Bed) -> bool) {
        self.run(limit, |b| {
            if cond(b) {
                Progress::Done
            } else {
                Progress::Idle
            }
        });
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        self.wait_for(d + Duration::from_secs(1), |b| b.clock.now() >= end);
    }

    pub fn has(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(f)
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// A UE socket listening on `ip:port`.
    pub fn ue_listen(&mut self, ip: impl Into<IpAddr>, port: u16, buf: usize) -> SocketHandle {
        let h = self.host.add_tcp(buf, buf);
        self.host
            .tcp(h)
            .listen(IpListenEndpoint {
                addr: Some(IpAddress::from(ip.into())),
                port,
            })
            .unwrap();
        h
    }

    /// A UE socket connecting from `from` to `to`.
    pub fn ue_connect(
        &mut self,
        from: impl Into<SocketAddr>,
        to: impl Into<SocketAddr>,
        buf: usize,
    ) -> SocketHandle {
        let (from, to) = (from.into(), to.into());
        let h = self.host.add_tcp(buf, buf);
        let cx = self.host.iface.context();
        self.host
            .sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, IpEndpoint::from(to), IpListenEndpoint::from(from))
            .unwrap();
        h
    }

    /// The seed's proxied pair, up and cut through: T2 connects out to UE-Y (the server) on
    /// `port`, UE-X connects to T1; UE sockets get `buf` bytes of buffer. Returns (UE-X, UE-Y).
    pub fn proxied_pair(&mut self, port: u16, buf: usize) -> (SocketHandle, SocketHandle) {
        self.pair_of(T1, T2, port, buf, Framing::Agnostic)
    }

    /// A proxied pair of terminations `t1` (access, passive) and `t2` (core, active) on
    /// `port`, with `framing` asked for on the access leg only.
    pub fn pair_of(
        &mut self,
        t1: TerminationKey,
        t2: TerminationKey,
        port: u16,
        buf: usize,
        framing: Framing,
    ) -> (SocketHandle, SocketHandle) {
        self.pair_at(V4_V4, t1, t2, port, buf, framing)
    }

    /// [`Bed::pair_of`] on the addresses `at` (a bed from [`bed_dual`] for IPv6 ones).
    pub fn pair_at(
        &mut self,
        at: PairAddrs,
        t1: TerminationKey,
        t2: TerminationKey,
        port: u16,
        buf: usize,
        framing: Framing,
    ) -> (SocketHandle, SocketHandle) {
        self.send(Command::Reserve {
            key: t1,
            local: sa(at.access, port),
        });
        self.send(Command::Reserve {
            key: t2,
            local: sa(at.core, port),
        });
        let y = self.ue_listen(at.ue_y, port, buf);
        self.send(Command::Start {
            key: t2,
            role: LegRole::Active {
                remote: sa(at.ue_y, port),
            },
            accept: Accept::Gate(at.ue_y),
            timers: timers(),
            tls: None,
            framing: Framing::Agnostic,
        });
        self.send(Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(at.ue_x),
            timers: timers(),
            tls: None,
            framing,
        });
        self.send(Command::Join { a: t1, b: t2 });
        self.run_for(Duration::from_millis(5));
        let x = self.ue_connect(sa(at.ue_x, port), sa(at.access, port), buf);
        self.wait_for(Duration::from_secs(5), |b| {
            b.has(|e| matches!(e, Event::CutThrough { a, b } if *a == t1 || *b == t1))
        });
        (x, y)
    }

    pub fn ue(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.host.tcp(h)
    }
}

pub fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

pub fn timers() -> LegTimers {
    LegTimers {
        connect: Duration::from_secs(5),
        idle: None,
        ..LegTimers::default()
    }
}

/// Sends `frames` from the UE host's side of the link, as if from the network; returns how
/// many the link took.
pub fn inject(b: &mut Bed, frames: &[Vec<u8>]) -> usize {
    use port::{Burst, PacketBuf, Port};
    let port = b.host.device.port_mut();
    let mut burst = Burst::new();
    let mut sent = 0;
    for f in frames {
        let Some(mut buf) = port.alloc() else { break };
        let Some(dst) = buf.append(f.len()) else {
            continue;
        };
        dst.copy_from_slice(f);
        burst.push(buf);
        if burst.is_full() {
            sent += port.tx_burst(&mut burst);
            burst.clear();
        }
    }
    sent += port.tx_burst(&mut burst);
    sent
}

#[allow(unused_imports)]
pub use alloc_count::{allocations, Counting};

/// Starts a capture of every frame the worker sends and receives, `snaplen` bytes of each,
/// into the capture rings (filled with free buffers first).
pub fn capture(b: &mut Bed, snaplen: u16) {
    use dataplane::capture::{CaptureFilter, CapturedFrame};
    let r = &b.control.capture;
    while r.free.len() < dataplane::contract::CAPTURE_BUFFERS {
        if r.free.push(CapturedFrame::empty()).is_err() {
            break;
        }
    }
    b.send(Command::Capture {
        filter: Some(CaptureFilter::All),
        snaplen,
        packets: u64::MAX,
    });
}

pub const MB: u64 = 1_000_000;

pub fn lossy() -> Faults {
    Faults {
        drop: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_micros(400),
        delay: Duration::from_micros(50),
        jitter: Duration::from_micros(5),
        rate_bytes_per_sec: Some(1_250_000_000),
        ..Faults::default()
    }
}

/// Moves `bytes` each way between the two UE sockets through the worker, then closes both
/// ends and checks the events and statistics.
pub fn transfer(
    b: &mut Bed,
    x: smoltcp::iface::SocketHandle,
    y: smoltcp::iface::SocketHandle,
    bytes: u64,
) {
    let mut send_x = PatternSender::new(1, bytes);
    let mut send_y = PatternSender::new(2, bytes);
    let mut recv_x = PatternChecker::new(2);
    let mut recv_y = PatternChecker::new(1);
    b.run(Duration::from_secs(600), |b| {
        let mut moved = 0;
        for (h, tx, rx) in [(x, &mut send_x, &mut recv_x), (y, &mut send_y, &mut recv_y)] {
            let s = b.ue(h);
            moved += tx.pump(s) + rx.pump(s);
            if tx.done() && s.send_queue() == 0 && s.may_send() {
                s.close();
            }
        }
        let done = recv_x.received == bytes
            && recv_y.received == bytes
            && b.has(|e| matches!(e, Event::Closed { key, .. } if *key == T1))
            && b.has(|e| matches!(e, Event::Closed { key, .. } if *key == T2));
        if done {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!(recv_x.first_mismatch, None);
    assert_eq!(recv_y.first_mismatch, None);
    for key in [T1, T2] {
        let Some(Event::Closed { cause, stats, .. }) = b
            .events
            .iter()
            .find(|e| matches!(e, Event::Closed { key: k, .. } if *k == key))
        else {
            unreachable!()
        };
        assert_eq!(*cause, ReleaseCause::PeerClosed, "{key:?}");
        assert_eq!(stats.octets_in, bytes, "{key:?} {stats:?}");
        assert_eq!(stats.octets_out, bytes, "{key:?} {stats:?}");
    }
}

pub fn finish(b: &mut Bed) {
    // Legs are freed once their sockets are done; then every buffer is back in the pool.
    b.wait_for(Duration::from_secs(30), |b| b.worker.legs() == 0);
}
