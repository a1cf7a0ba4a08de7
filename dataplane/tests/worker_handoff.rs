//! Two workers on one port whose frames all arrive on the first worker's queue, as net_tap
//! and NICs without flow steering deliver them: the second worker's UDP (T.38) legs get their
//! datagrams through the software hand-off (a worker owns the local ports with
//! `port % workers` equal to its index), and ARP replies reach it as copies. A page of
//! datagrams goes both ways through a call on each worker, every one once and in order.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{handoff_mesh, Worker, WorkerConfig};
use port::{Burst, Port, PortCapabilities};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpCidr, IpEndpoint, Ipv4Cidr};
use testbed::memlink::{MemBuf, MemLink, MemLinkConfig, MemPort};
use testbed::{udptl_packets, Host};

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);

/// One queue of a port shared by two workers: both transmit on it, only the first receives.
struct Queue {
    port: Rc<RefCell<MemPort>>,
    receives: bool,
}

impl Port for Queue {
    type Buf = MemBuf;

    fn rx_burst(&mut self, out: &mut Burst<MemBuf>) -> usize {
        if self.receives {
            self.port.borrow_mut().rx_burst(out)
        } else {
            0
        }
    }

    fn tx_burst(&mut self, frames: &mut Burst<MemBuf>) -> usize {
        self.port.borrow_mut().tx_burst(frames)
    }

    fn alloc(&mut self) -> Option<MemBuf> {
        self.port.borrow_mut().alloc()
    }

    fn mac(&self) -> [u8; 6] {
        self.port.borrow().mac()
    }

    fn capabilities(&self) -> PortCapabilities {
        self.port.borrow().capabilities()
    }
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn ep(a: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::from(a)
}

struct Rig {
    clock: VirtualClock,
    workers: Vec<Worker<Queue>>,
    controls: Vec<ControlEnd>,
    host: Host<MemPort>,
    events: Vec<(usize, Event)>,
}

impl Rig {
    fn new() -> Rig {
        let clock = VirtualClock::new();
        let (pa, pb) = MemLink::pair(MemLinkConfig::default(), clock.clone());
        let shared = Rc::new(RefCell::new(pa));
        let now = clock.now();
        let cfg = WorkerConfig {
            addresses: vec![
                Ipv4Cidr::new(AGW_ACCESS, 15).into(),
                Ipv4Cidr::new(AGW_CORE, 15).into(),
            ],
            ..WorkerConfig::default()
        };
        let mut controls = Vec::new();
        let mut workers = Vec::new();
        for (i, h) in handoff_mesh(2, 1024).into_iter().enumerate() {
            let (control, end) = rings(1024);
            let q = Queue {
                port: Rc::clone(&shared),
                receives: i == 0,
            };
            workers.push(Worker::with_handoff(q, cfg.clone(), end, now, h));
            controls.push(control);
        }
        let mut host = Host::new(pb, Ipv4Cidr::new(UE_X, 15), now);
        host.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(UE_Y, 15)));
        });
        Rig {
            clock,
            workers,
            controls,
            host,
            events: Vec::new(),
        }
    }

    fn send(&mut self, worker: usize, cmd: Command) {
        self.controls[worker].commands.push(cmd).expect("room");
    }

    fn step(&mut self) {
        let now = self.clock.now();
        let mut busy = false;
        for w in &mut self.workers {
            busy |= w.poll(now);
        }
        let before = self.host.device.stats();
        self.host.poll(now);
        busy |= self.host.device.stats() != before;
        for (i, c) in self.controls.iter().enumerate() {
            while let Some(e) = c.events.pop() {
                self.events.push((i, e));
                busy = true;
            }
        }
        if !busy {
            self.clock.advance(Duration::from_millis(1));
        }
    }

    fn socket(&mut self, at: SocketAddrV4) -> SocketHandle {
        let buf =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 512], vec![0; 256 * 1024]);
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(ep(at)).unwrap();
        self.host.sockets.add(s)
    }
}

/// A plain UDPTL call on worker `w`: T1 on the access realm, T2 on the core, both on ports
/// that worker owns.
struct Call {
    worker: usize,
    t1: TerminationKey,
    t2: TerminationKey,
    access: SocketAddrV4,
    core: SocketAddrV4,
    ue: SocketAddrV4,
    far: SocketAddrV4,
}

impl Call {
    fn new(worker: usize, ctx: u32) -> Call {
        let base = 40000 + 10 * ctx as u16 + worker as u16;
        Call {
            worker,
            t1: TerminationKey {
                context: ctx,
                termination: 1,
            },
            t2: TerminationKey {
                context: ctx,
                termination: 2,
            },
            access: sa(AGW_ACCESS, base),
            core: sa(AGW_CORE, base + 2),
            ue: sa(UE_X, 5000 + ctx as u16),
            far: sa(UE_Y, 6000 + ctx as u16),
        }
    }

    fn start(&self, r: &mut Rig) {
        let w = self.worker;
        r.send(
            w,
            Command::ReserveDatagram {
                key: self.t1,
                local: self.access.into(),
            },
        );
        r.send(
            w,
            Command::ReserveDatagram {
                key: self.t2,
                local: self.core.into(),
            },
        );
        for (key, remote) in [(self.t1, self.ue), (self.t2, self.far)] {
            r.send(
                w,
                Command::StartDatagram {
                    key,
                    remote: Some(remote.into()),
                    accept: Accept::Gate((*remote.ip()).into()),
                    relatch: false,
                    timers: LegTimers {
                        idle: None,
                        ..LegTimers::default()
                    },
                    dtls: None,
                },
            );
        }
        r.send(
            w,
            Command::Join {
                a: self.t1,
                b: self.t2,
            },
        );
    }
}

fn received(r: &mut Rig, h: SocketHandle) -> Vec<Vec<u8>> {
    let s = r.host.sockets.get_mut::<udp::Socket>(h);
    let mut out = Vec::new();
    while let Ok((d, _)) = s.recv() {
        out.push(d.to_vec());
    }
    out
}

#[test]
fn udp_legs_of_the_second_worker_get_their_datagrams_through_the_hand_off() {
    let mut r = Rig::new();
    let calls = [Call::new(0, 2), Call::new(1, 3)];
    assert_eq!(calls[1].access.port() % 2, 1, "worker 1 owns odd ports");
    let mut sockets = Vec::new();
    for c in &calls {
        c.start(&mut r);
        sockets.push((r.socket(c.ue), r.socket(c.far)));
    }
    for _ in 0..200 {
        r.step();
    }
    let pages: Vec<_> = (0..2)
        .map(|i| {
            (
                udptl_packets(10 + i, 100, |s| 60 + (s as usize * 31) % 300),
                udptl_packets(20 + i, 100, |s| 60 + (s as usize * 17) % 300),
            )
        })
        .collect();
    // Per call: what reached the core, what reached UE-X.
    type Page = Vec<Vec<u8>>;
    let mut got: Vec<(Page, Page)> = vec![Default::default(); 2];
    for n in 0..100 {
        for (i, c) in calls.iter().enumerate() {
            let (ue, far) = sockets[i];
            r.host
                .sockets
                .get_mut::<udp::Socket>(ue)
                .send_slice(&pages[i].0[n], ep(c.access))
                .unwrap();
            r.host
                .sockets
                .get_mut::<udp::Socket>(far)
                .send_slice(&pages[i].1[n], ep(c.core))
                .unwrap();
        }
        for _ in 0..20 {
            r.step();
        }
        for (i, (ue, far)) in sockets.clone().into_iter().enumerate() {
            got[i].0.extend(received(&mut r, far));
            got[i].1.extend(received(&mut r, ue));
        }
    }
    for _ in 0..500 {
        r.step();
    }
    for (i, (ue, far)) in sockets.clone().into_iter().enumerate() {
        got[i].0.extend(received(&mut r, far));
        got[i].1.extend(received(&mut r, ue));
        assert_eq!(
            got[i].0, pages[i].0,
            "call {i}: UE-X to the core, once, in order"
        );
        assert_eq!(
            got[i].1, pages[i].1,
            "call {i}: the core to UE-X, once, in order"
        );
    }
    let (c0, c1) = (r.workers[0].counters(), r.workers[1].counters());
    assert_eq!((c0.datagrams_relayed, c1.datagrams_relayed), (200, 200));
    // Every datagram of worker 1's call came in on worker 0's queue and was handed over.
    assert!(c0.handed_off >= 200, "{c0:?}");
    assert!(c1.handed_in >= 200, "{c1:?}");
    assert_eq!((c0.handoff_dropped, c1.handoff_dropped), (0, 0));
    assert_eq!((c0.udp_no_leg, c1.udp_no_leg), (0, 0));
    assert!(r
        .events
        .iter()
        .any(|(w, e)| *w == 1 && matches!(e, Event::CutThrough { .. })));

    for c in &calls {
        r.send(c.worker, Command::Release { key: c.t1 });
        r.send(c.worker, Command::Release { key: c.t2 });
    }
    for _ in 0..50 {
        r.step();
    }
    assert_eq!(r.workers[0].legs() + r.workers[1].legs(), 0);
}

/// A worker whose thread sleeps (on its ports) is woken by the peer that hands it a frame:
/// the peer learns which of the workers it handed frames are asleep, once per hand-off, and
/// none that are awake; a worker with frames already in its inbox does not go to sleep.
#[test]
fn a_sleeping_worker_is_named_to_the_peer_that_hands_it_frames() {
    let mut r = Rig::new();
    let call = Call::new(1, 3);
    call.start(&mut r);
    let (ue, _far) = (r.socket(call.ue), r.socket(call.far));
    for _ in 0..200 {
        r.step();
    }
    assert_eq!(r.workers[0].asleep_handed(), 0, "nothing handed yet");
    let datagram = |r: &mut Rig, n: u8| {
        r.host
            .sockets
            .get_mut::<udp::Socket>(ue)
            .send_slice(&[n; 40], ep(call.access))
            .unwrap();
    };

    // Worker 1 asleep: the datagram for its call comes in on worker 0's queue.
    assert!(r.workers[1].going_to_sleep(), "an empty inbox: it sleeps");
    datagram(&mut r, 1);
    let now = r.clock.now();
    r.host.poll(now);
    r.workers[0].poll(now);
    assert_eq!(
        r.workers[0].asleep_handed(),
        1 << 1,
        "worker 1 is to be woken"
    );
    assert_eq!(r.workers[0].asleep_handed(), 0, "once");
    // Its inbox holds the frame: had it not slept yet, it would not go to sleep now.
    r.workers[1].woke();
    assert!(!r.workers[1].going_to_sleep(), "a frame waits in the inbox");
    r.workers[1].poll(now);
    assert!(r.workers[1].counters().handed_in >= 1);

    // Awake (the flag came down with the refusal above): a hand-off names nobody.
    datagram(&mut r, 2);
    for _ in 0..5 {
        r.step();
    }
    assert!(r.workers[0].counters().handed_off >= 2);
    assert_eq!(r.workers[0].asleep_handed(), 0, "worker 1 is awake");
}
