//! A worker on one end of a MemLink and a smoltcp host playing both UEs on the other, on one
//! virtual clock, with the control end of the worker's rings.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr};
use testbed::memlink::{Faults, MemLink, MemLinkConfig, MemPool, MemPort};
use testbed::Host;

pub const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
pub const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
pub const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
pub const NAT: Ipv4Addr = Ipv4Addr::new(198, 18, 150, 1);

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
    let cfg = WorkerConfig {
        addresses: vec![Ipv4Cidr::new(AGW_ACCESS, 15), Ipv4Cidr::new(AGW_CORE, 15)],
        ..worker_cfg
    };
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
    pub fn ue_listen(&mut self, ip: Ipv4Addr, port: u16, buf: usize) -> SocketHandle {
        let h = self.host.add_tcp(buf, buf);
        self.host
            .tcp(h)
            .listen(IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(ip)),
                port,
            })
            .unwrap();
        h
    }

    /// A UE socket connecting from `from` to `to`.
    pub fn ue_connect(&mut self, from: SocketAddrV4, to: SocketAddrV4, buf: usize) -> SocketHandle {
        let h = self.host.add_tcp(buf, buf);
        let cx = self.host.iface.context();
        self.host
            .sockets
            .get_mut::<tcp::Socket>(h)
            .connect(
                cx,
                IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port()),
                IpListenEndpoint {
                    addr: Some(IpAddress::Ipv4(*from.ip())),
                    port: from.port(),
                },
            )
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
        self.send(Command::Reserve {
            key: t1,
            local: sa(AGW_ACCESS, port),
        });
        self.send(Command::Reserve {
            key: t2,
            local: sa(AGW_CORE, port),
        });
        let y = self.ue_listen(UE_Y, port, buf);
        self.send(Command::Start {
            key: t2,
            role: LegRole::Active {
                remote: sa(UE_Y, port),
            },
            accept: Accept::Gate(UE_Y),
            timers: timers(),
            tls: None,
            framing: Framing::Agnostic,
        });
        self.send(Command::Start {
            key: t1,
            role: LegRole::Passive,
            accept: Accept::Gate(UE_X),
            timers: timers(),
            tls: None,
            framing,
        });
        self.send(Command::Join { a: t1, b: t2 });
        self.run_for(Duration::from_millis(5));
        let x = self.ue_connect(sa(UE_X, port), sa(AGW_ACCESS, port), buf);
        self.wait_for(Duration::from_secs(5), |b| {
            b.has(|e| matches!(e, Event::CutThrough { a, b } if *a == t1 || *b == t1))
        });
        (x, y)
    }

    pub fn ue(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.host.tcp(h)
    }
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
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
