//! The worker descheduled in the middle of a poll: the control thread pushes a leg's Start
//! and the UE's SYN arrives while the worker is between looking at its command ring and
//! reading its port. The SYN must still find the leg listening (found by the soak on a
//! loaded machine: connections refused right after the Modify was answered).

use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use port::{Burst, Port, PortCapabilities, PortDrops};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv4Cidr};
use testbed::memlink::{MemBuf, MemLink, MemLinkConfig, MemPort};
use testbed::Host;

const AGW: Ipv4Address = Ipv4Address::new(198, 18, 1, 10);
const UE: Ipv4Address = Ipv4Address::new(198, 18, 100, 7);

/// A port whose first frames after `due` is set come with a command pushed to the ring at
/// the moment the worker takes them: the control thread ran while the worker was stalled.
struct PreemptedPort {
    inner: MemPort,
    ring: Arc<ArrayQueue<Command>>,
    due: Arc<Mutex<Option<Command>>>,
}

impl Port for PreemptedPort {
    type Buf = MemBuf;

    fn rx_burst(&mut self, out: &mut Burst<MemBuf>) -> usize {
        let due = self.due.lock().unwrap().take();
        if let Some(c) = due {
            // Pushed before the frame arrived, seen by the worker only now.
            self.ring.push(c).unwrap();
        }
        self.inner.rx_burst(out)
    }
    fn tx_burst(&mut self, frames: &mut Burst<MemBuf>) -> usize {
        self.inner.tx_burst(frames)
    }
    fn alloc(&mut self) -> Option<MemBuf> {
        self.inner.alloc()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn capabilities(&self) -> PortCapabilities {
        self.inner.capabilities()
    }
    fn drops(&self) -> PortDrops {
        self.inner.drops()
    }
}

#[test]
fn a_start_pushed_while_the_worker_was_stalled_is_executed_before_the_syn() {
    let clock = VirtualClock::new();
    let (pa, pb) = MemLink::pair(MemLinkConfig::default(), clock.clone());
    let (control, worker_end) = rings(64);
    let due = Arc::new(Mutex::new(None));
    let port = PreemptedPort {
        inner: pa,
        ring: Arc::clone(&control.commands),
        due: Arc::clone(&due),
    };
    let cfg = WorkerConfig {
        addresses: vec![Ipv4Cidr::new(AGW, 15).into()],
        ..WorkerConfig::default()
    };
    let mut worker = Worker::new(port, cfg, worker_end, clock.now());
    let mut ue = Host::new(pb, Ipv4Cidr::new(UE, 15), clock.now());
    let key = TerminationKey {
        context: 1,
        termination: 1,
    };
    control
        .commands
        .push(Command::Reserve {
            key,
            local: SocketAddrV4::new(AGW, 7001).into(),
        })
        .unwrap();
    let run = |worker: &mut Worker<PreemptedPort>, ue: &mut Host<MemPort>, ms: u64| {
        for _ in 0..ms {
            for _ in 0..8 {
                worker.poll(clock.now());
                ue.poll(clock.now());
            }
            clock.advance(Duration::from_millis(1));
        }
    };
    // A first connection to a port with no leg (refused): both sides learn the other's MAC,
    // so the next SYN is the next frame the worker reads.
    let probe = ue.add_tcp(4096, 4096);
    let cx = ue.iface.context();
    ue.sockets
        .get_mut::<tcp::Socket>(probe)
        .connect(
            cx,
            IpEndpoint::new(IpAddress::Ipv4(AGW), 7000),
            IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(UE)),
                port: 50000,
            },
        )
        .unwrap();
    run(&mut worker, &mut ue, 20);
    assert_eq!(ue.tcp(probe).state(), tcp::State::Closed, "probe refused");
    let rejected = worker.counters().gate_rejected + worker.counters().tcp_no_leg;

    *due.lock().unwrap() = Some(Command::Start {
        key,
        role: LegRole::Passive,
        accept: Accept::Gate(UE.into()),
        timers: LegTimers::default(),
        tls: None,
        framing: Framing::Agnostic,
    });
    let x = ue.add_tcp(4096, 4096);
    let cx = ue.iface.context();
    ue.sockets
        .get_mut::<tcp::Socket>(x)
        .connect(
            cx,
            IpEndpoint::new(IpAddress::Ipv4(AGW), 7001),
            IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(UE)),
                port: 50001,
            },
        )
        .unwrap();
    ue.poll(clock.now());
    clock.advance(Duration::from_millis(1));
    run(&mut worker, &mut ue, 20);
    assert!(due.lock().unwrap().is_none(), "the Start was pushed");
    assert_eq!(
        worker.counters().gate_rejected + worker.counters().tcp_no_leg,
        rejected,
        "the SYN was refused"
    );
    assert_eq!(ue.tcp(x).state(), tcp::State::Established);
    let mut established = false;
    while let Some(e) = control.events.pop() {
        established |= matches!(e, Event::Established { key: k, .. } if k == key);
    }
    assert!(established);
}
