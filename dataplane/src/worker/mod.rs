//! The poll-mode worker: it owns one queue of each of its ports, a smoltcp `Interface` per
//! network (a port, or a VLAN on one: `network`) and every leg given to it, and cuts payload
//! through between the two legs of each context.
//!
//! Each leg has its own `SocketSet` holding one socket (TCP or UDP), found by our local
//! (ip, port) in a flat port table, so the cost of a frame does not grow with the number of
//! legs: smoltcp's `Interface::poll` walks every socket of the set it is given, which with one
//! shared set of 100 000 sockets cost milliseconds per frame, and with a set per leg costs the
//! same at 10 legs as at 100 000 (docs/architecture.md, "Per-leg demux"). Ingress never
//! transmits; every leg an ingress frame, a command or a forwarded byte touches goes on the
//! dirty list and is polled for egress, and smoltcp's `poll_at` of every leg is kept in a
//! timer wheel.
//!
//! Its parts: [`leg`] (a leg's kinds and states as types), `ingress` (the demux, the hand-off
//! between workers, ARP), `tcp` (TCP legs and their TLS), `relay` (cut-through between two TCP
//! legs), `udp` (UDP legs and their DTLS), `lending` (small socket buffers for idle legs,
//! full-size ones lent from a per-worker pool while data flows).

mod idle;
mod ingress;
mod leg;
mod lending;
mod neighbour;
mod network;
mod relay;
mod tcp;
mod udp;

use std::collections::{HashMap, VecDeque};

use arrayvec::ArrayVec;
use smoltcp::iface::SocketSet;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv6Address};

use crate::capture::CaptureTap;
use crate::contract::*;
pub use crate::counters::WorkerCounters;
use crate::demux::{classify, PortTable};
use crate::device::SmolDevice;
use crate::framing::FramingLimits;
use crate::legpoll::{self, ceil_ms};
use crate::policy::Guard;
use crate::wheel::TimerWheel;
use port::{Burst, PacketBuf, Port};

use leg::{sole, Kind, Leg, NO_DEADLINE};
use network::{on_net, Net, PortNets};
pub use network::{NetworkConfig, MAX_NETWORKS, MAX_PORTS};
pub use udp::DTLS_1_2;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Local addresses the worker's legs use on its first port, untagged (the realms'
    /// address pools, IPv4 and IPv6), with prefix.
    pub addresses: Vec<IpCidr>,
    /// Default routers of that network: IPv4 and IPv6.
    pub gateway: Option<Ipv4Address>,
    pub gateway_v6: Option<Ipv6Address>,
    /// Further networks: other ports, VLANs (the realms of an access and a core network).
    pub networks: Vec<NetworkConfig>,
    /// Receive and send buffer of each leg's socket while it moves data: the window towards
    /// a fast sender and the data held for a slow receiver.
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// What an idle leg keeps: a leg starts with these and borrows the full sizes above from
    /// the worker's pool while data is queued (lending is off in a direction whose
    /// guaranteed size is not smaller than its full one).
    pub guaranteed_rx: usize,
    pub guaranteed_tx: usize,
    /// Full-size buffers the worker lends at most at once (legs beyond fall back to their
    /// guaranteed window).
    pub lendable_buffers: usize,
    /// Full-size buffers made at start, each way, so that the first loans do not allocate.
    pub prefill_buffers: usize,
    pub max_legs: usize,
    /// How long a released leg may take to close gracefully before it is reset.
    pub release_drain: Duration,
    /// Limits of MSRP- and BFCP-aware legs.
    pub framing: FramingLimits,
    /// Datagrams each UDP leg's socket queues per direction, and their bytes.
    pub datagram_slots: usize,
    pub datagram_bytes: usize,
    /// How long the worker's thread sleeps between polls once it has been idle for
    /// `idle_spin` (ZERO: it polls without pause, as on a core of its own). See
    /// [`Worker::nap`].
    pub idle_nap: Duration,
    pub idle_spin: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            addresses: Vec::new(),
            gateway: None,
            gateway_v6: None,
            networks: Vec::new(),
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
            guaranteed_rx: GUARANTEED_RX,
            guaranteed_tx: GUARANTEED_TX,
            lendable_buffers: 4096,
            prefill_buffers: 0,
            max_legs: 1 << 20,
            release_drain: Duration::from_secs(2),
            framing: FramingLimits::default(),
            datagram_slots: 32,
            datagram_bytes: 32 * 1024,
            idle_nap: Duration::ZERO,
            idle_spin: Duration::from_micros(50),
        }
    }
}

/// One worker's end of the software hand-off between the workers of a port: bounded inboxes,
/// one per worker, indexed by worker. The worker's frames travel with the index of their
/// network.
pub struct HandoffEnd<B> {
    pub index: usize,
    pub inbox: std::sync::Arc<crossbeam_queue::ArrayQueue<B>>,
    pub peers: Vec<std::sync::Arc<crossbeam_queue::ArrayQueue<B>>>,
    /// Each worker's flag, set while its thread sleeps until a frame or a peer wakes it: a
    /// worker that hands a sleeping one a frame has its thread woken (`Worker::asleep_handed`).
    asleep: Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The workers handed a frame since `Worker::asleep_handed` last looked, a bit each.
    handed: u64,
}

/// The hand-off ends of `workers` workers (at most 64), each inbox holding `capacity` frames.
pub fn handoff_mesh<B>(workers: usize, capacity: usize) -> Vec<HandoffEnd<B>> {
    assert!(workers <= 64, "at most 64 workers share a port");
    let inboxes: Vec<_> = (0..workers)
        .map(|_| std::sync::Arc::new(crossbeam_queue::ArrayQueue::new(capacity)))
        .collect();
    let asleep: Vec<_> = (0..workers).map(|_| std::sync::Arc::default()).collect();
    (0..workers)
        .map(|index| HandoffEnd {
            index,
            inbox: std::sync::Arc::clone(&inboxes[index]),
            peers: inboxes.clone(),
            asleep: asleep.clone(),
            handed: 0,
        })
        .collect()
}

/// Local addresses (both families, every realm) one network answers for: smoltcp's interface
/// holds at most this many (its `iface-max-addr-count` feature).
pub const MAX_LOCAL_ADDRESSES: usize = smoltcp::config::IFACE_MAX_ADDR_COUNT;

/// The default guaranteed buffers: a receive window of one full Ethernet segment, which a
/// chat message (an MSRP SEND of a line or two, a BFCP message) fits in, and a send buffer of
/// half of one. With the leg's record and its socket (1.3 KB), an idle plain call stays under
/// 8 KiB of worker heap.
pub const GUARANTEED_RX: usize = 1460;
pub const GUARANTEED_TX: usize = 768;

/// Plaintext moved between two TLS legs per step (below the send limit, so it always fits).
const TLS_SCRATCH: usize = 8 * 1024;

/// One datagram (a received one, a DTLS record, a relayed one): three of them per worker.
const DG_BUF: usize = 2048;

/// Gratuitous ARPs after start, at 0, 1, 2, 4 and 8 s: neighbours that still map our
/// addresses to another MAC (a restart, a new NIC, a fail-over) learn the new one.
const ANNOUNCEMENTS: u32 = 5;
/// Legs from which a receive burst prefetches its legs' records and sockets: a leg's record
/// and socket are about 1.3 KB, so below this the legs' state fits in a core's L2 and the
/// hints (and the staging of the burst) would only cost.
const PREFETCH_FROM_LEGS: usize = 1024;

pub struct Worker<P: Port> {
    /// One per port.
    devices: Vec<SmolDevice<P>>,
    nets: Vec<Net>,
    /// By port: which network a received frame's tag names.
    port_nets: Vec<PortNets>,
    /// By local address (its index in the port table): its network.
    ip_net: Vec<u8>,
    table: PortTable,
    /// Every leg, TCP and UDP, by index; the port table, the key map, the dirty list and the
    /// wheel hold these indices.
    legs: Vec<Option<Leg>>,
    free: Vec<u32>,
    keys: HashMap<TerminationKey, u32>,
    dirty: Vec<u32>,
    /// Number of the current pass over the dirty list (never 0), for `Leg::relayed_in_pass`.
    pass: u32,
    wheel: TimerWheel,
    arp_blocked: Vec<u32>,
    rings: WorkerEnd,
    pending: VecDeque<Event>,
    /// This poll's `take_commands` left commands in the ring that were queued before its
    /// frames were taken.
    commands_waiting: bool,
    cfg: WorkerConfig,
    counters: WorkerCounters,
    live_legs: usize,
    /// Legs whose state a recent burst asked for (`ingress::RECENT_LEGS`, by index).
    recent_legs: [u32; ingress::RECENT_LEGS],
    /// The part of a TCP leg's socket storage a burst does not ask for (`leg::tcp_cold_span`).
    tcp_cold: (usize, usize),
    /// Receive and transmit buffers of freed TCP legs, for the next ones.
    /// Socket buffers: the small ones legs start with, the large ones lent while data flows.
    pool: lending::Pool,
    /// Plaintext between two TLS legs.
    scratch: Box<[u8]>,
    /// A received datagram, a DTLS record and a relayed datagram.
    dg_scratch: Box<[u8]>,
    /// Receive bursts, one per port (kept, so that a poll neither builds nor drops them).
    rx_bursts: Vec<Burst<P::Buf>>,
    /// The software hand-off between the workers of one port: frames with their network.
    handoff: Option<HandoffEnd<(u8, P::Buf)>>,
    /// Gratuitous ARPs sent so far and when the next is due.
    announcements: u32,
    next_announcement: Instant,
    naps: idle::Naps,
}

impl<P: Port> Worker<P> {
    pub fn new(port: P, cfg: WorkerConfig, rings: WorkerEnd, now: Instant) -> Self {
        Self::on_ports(vec![port], cfg, rings, now, None)
    }

    /// A worker of several on one port: TCP frames for local ports another worker owns
    /// (`port % workers`) are handed to it, ARP frames are copied to every other worker
    /// (each keeps its own neighbour cache), and frames handed to this one are taken in.
    pub fn with_handoff(
        port: P,
        cfg: WorkerConfig,
        rings: WorkerEnd,
        now: Instant,
        handoff: HandoffEnd<(u8, P::Buf)>,
    ) -> Self {
        Self::on_ports(vec![port], cfg, rings, now, Some(handoff))
    }

    /// A worker on a queue of each of `ports` (the networks of `cfg` name them by their place
    /// here), with a hand-off between the workers that share them. A network the ports cannot
    /// carry (`WorkerConfig::check_networks`, which callers run first) is left out and logged.
    pub fn on_ports(
        ports: Vec<P>,
        cfg: WorkerConfig,
        rings: WorkerEnd,
        now: Instant,
        handoff: Option<HandoffEnd<(u8, P::Buf)>>,
    ) -> Self {
        let pool = lending::Pool::new(&cfg);
        let naps = idle::Naps::new(cfg.idle_nap, cfg.idle_spin);
        let mut devices: Vec<SmolDevice<P>> = ports
            .into_iter()
            .take(MAX_PORTS)
            .map(|p| {
                let mut d = SmolDevice::new(p);
                d.set_auto_rx(false);
                d
            })
            .collect();
        let mut table = PortTable::new();
        let mut nets: Vec<Net> = Vec::new();
        let mut ip_net = Vec::new();
        for n in cfg.all_networks() {
            let taken = nets.iter().any(|o| o.port == n.port && o.vlan == n.vlan);
            let shared = n.addresses.iter().any(|a| table.serves(a.address().into()));
            if n.port >= devices.len() || taken || shared || nets.len() >= MAX_NETWORKS {
                tracing::error!(port = n.port, vlan = ?n.vlan, "network left out: its port or VLAN or an address is missing or taken");
                continue;
            }
            let net = Net::new(&n, &mut devices[n.port], &mut table, now);
            for a in &n.addresses {
                if let Some(i) = table.index_of(a.address().into()) {
                    ip_net.resize(ip_net.len().max(i as usize + 1), 0);
                    ip_net[i as usize] = nets.len() as u8;
                }
            }
            nets.push(net);
        }
        let port_nets = PortNets::map(&nets, devices.len());
        let rx_bursts = devices.iter().map(|_| Burst::new()).collect();
        Worker {
            devices,
            nets,
            port_nets,
            ip_net,
            table,
            legs: Vec::new(),
            free: Vec::new(),
            keys: HashMap::new(),
            dirty: Vec::new(),
            pass: 1,
            wheel: TimerWheel::new(now.total_millis()),
            arp_blocked: Vec::new(),
            rings,
            pending: VecDeque::new(),
            commands_waiting: false,
            cfg,
            counters: WorkerCounters::default(),
            live_legs: 0,
            recent_legs: [u32::MAX; ingress::RECENT_LEGS],
            tcp_cold: leg::tcp_cold_span(),
            pool,
            scratch: vec![0; TLS_SCRATCH].into_boxed_slice(),
            dg_scratch: vec![0; 3 * DG_BUF].into_boxed_slice(),
            rx_bursts,
            handoff,
            announcements: 0,
            next_announcement: now,
            naps,
        }
    }

    /// The worker's counters, with the leg count taken now.
    pub fn counters(&self) -> WorkerCounters {
        WorkerCounters {
            legs: self.live_legs as u64,
            buffers_lent: self.pool.lent() as u64,
            buffers_lendable: self.pool.limit() as u64,
            buffer_lends: self.pool.lends,
            buffer_lends_refused: self.pool.refused,
            buffers_returned: self.pool.returned,
            ..self.counters
        }
    }

    /// The smoltcp adapters' counters over every port (frames, and frames lost for want of
    /// a buffer).
    pub fn device_stats(&self) -> crate::device::DeviceStats {
        let mut s = crate::device::DeviceStats::default();
        for d in &self.devices {
            s += d.stats();
        }
        s
    }

    pub fn legs(&self) -> usize {
        self.live_legs
    }

    /// The legs the control thread can still name (released ones are gone from here at
    /// once, though they may take a while to close), with their local address: for checks
    /// that the worker holds exactly what the MG thinks it does.
    pub fn leg_keys(&self) -> Vec<(TerminationKey, std::net::SocketAddr)> {
        let mut v: Vec<_> = self
            .keys
            .iter()
            .filter_map(|(k, &i)| {
                let l = self.legs.get(i as usize)?.as_ref()?;
                Some((*k, (self.table.ip(l.local.0), l.local.1).into()))
            })
            .collect();
        v.sort();
        v
    }

    /// The first port.
    pub fn port(&self) -> &P {
        self.devices[0].port()
    }

    /// Port `i` (its place among the ports the worker was given).
    pub fn port_at(&self, i: usize) -> Option<&P> {
        self.devices.get(i).map(|d| d.port())
    }

    /// Bytes of socket buffer an idle established pair holds (both legs, both directions:
    /// the guaranteed buffers).
    pub fn pair_buffer_bytes(&self) -> usize {
        2 * (self.cfg.guaranteed_rx.min(self.cfg.rx_buffer)
            + self.cfg.guaranteed_tx.min(self.cfg.tx_buffer))
    }

    /// Bytes of socket buffer a pair holds at most, moving data both ways (full buffers).
    pub fn busy_pair_buffer_bytes(&self) -> usize {
        2 * (self.cfg.rx_buffer + self.cfg.tx_buffer)
    }

    /// Heap an idle established pair costs: its guaranteed socket buffers plus, per leg, the
    /// leg record, its one-slot socket set and the key-map entry.
    pub fn pair_memory_bytes(&self) -> usize {
        let per_leg = std::mem::size_of::<Option<Leg>>()
            + std::mem::size_of::<smoltcp::iface::SocketStorage>()
            + std::mem::size_of::<(TerminationKey, u32)>();
        self.pair_buffer_bytes() + 2 * per_leg
    }

    /// One iteration of the poll loop: receive, take commands, run timers, serve dirty legs,
    /// transmit, publish events. Returns whether anything was done.
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut busy = false;

        // Frames first taken off the port (and the hand-off inbox), then every command
        // queued by then, then the frames read. A command the control thread pushed before
        // a frame arrived (the UE connects after the ALG's Modify was answered) is in the
        // ring once the frame is in hand, however long this thread was descheduled in
        // between: a SYN never meets a leg whose Start is still in the ring.
        // The worker's own bursts, one per port, filled in place and drained below.
        let mut bursts = std::mem::take(&mut self.rx_bursts);
        for (d, burst) in self.devices.iter_mut().zip(bursts.iter_mut()) {
            d.port_mut().rx_burst(burst);
            busy |= !burst.is_empty();
        }
        let mut handed: Burst<(u8, P::Buf)> = Burst::new();
        if let Some(h) = &self.handoff {
            while !handed.is_full() {
                let Some(frame) = h.inbox.pop() else { break };
                handed.push(frame);
            }
        }
        busy |= self.take_commands(now);
        busy |= !handed.is_empty();
        for (port, burst) in bursts.iter_mut().enumerate() {
            if burst.is_empty() {
                continue;
            }
            if self.live_legs >= PREFETCH_FROM_LEGS {
                self.ingress_prefetched(port, burst, now);
            } else {
                for mut frame in burst.drain(..) {
                    let Some(net) = self.network_of(port, &mut frame, now) else {
                        continue;
                    };
                    // Classified once, for the hand-off and for the demux.
                    let class = classify(frame.data());
                    if let Some(frame) = self.hand_off(net, frame, class) {
                        self.ingress(net, frame, class, now);
                    }
                }
            }
        }
        // What `take` left is an empty Vec that owns no memory: forgotten, not dropped (its
        // drop would be code on every poll).
        std::mem::forget(std::mem::replace(&mut self.rx_bursts, bursts));
        if !handed.is_empty() {
            if self.live_legs >= PREFETCH_FROM_LEGS {
                self.handed_prefetched(&mut handed, now);
            } else {
                for (net, frame) in handed.drain(..) {
                    self.counters.handed_in += 1;
                    let class = classify(frame.data());
                    self.ingress(net, frame, class, now);
                }
            }
        }

        self.expire_timers(now.total_millis());

        // Serving a leg can dirty its partner (forwarded bytes); bound the passes.
        let mut budget = 4 * (self.dirty.len() + 1);
        self.pass = self.pass.wrapping_add(1).max(1);
        while let Some(idx) = self.dirty.pop() {
            busy = true;
            match self.legs.get(idx as usize) {
                Some(Some(l)) if l.is_udp() => self.serve_udp(idx, now),
                Some(Some(_)) => self.serve_tcp(idx, now),
                _ => {}
            }
            budget -= 1;
            if budget == 0 {
                break;
            }
        }

        if self.pool.holding() {
            self.sweep_lent(now);
        }

        if self.announcements < ANNOUNCEMENTS && now >= self.next_announcement {
            for n in 0..self.nets.len() {
                self.announce(n as u8, self.announcements);
            }
            self.next_announcement = now + Duration::from_secs(1 << self.announcements.min(8));
            self.announcements += 1;
        }

        for d in &mut self.devices {
            d.flush();
        }
        if self.devices[0].tap_mut().is_some_and(|t| t.done()) {
            self.end_capture(None);
        }
        while let Some(ev) = self.pending.pop_front() {
            if let Err(ev) = self.rings.events.push(ev) {
                self.pending.push_front(ev);
                break;
            }
        }
        if busy {
            self.counters.busy_polls += 1;
        } else {
            self.counters.idle_polls += 1;
        }
        busy
    }

    fn emit(&mut self, ev: Event) {
        if self.pending.len() >= 4 * self.cfg.max_legs.min(1 << 16) + 1024 {
            self.counters.events_dropped += 1;
            tracing::error!(?ev, "event queue full; event dropped");
            return;
        }
        self.pending.push_back(ev);
    }

    fn reject(&mut self, key: TerminationKey, reason: Rejection) {
        self.emit(Event::Rejected { key, reason });
    }

    /// Every command queued now (the ring bounds them; not a budget, since the one a
    /// waiting frame needs may be the last), while events have room: a control thread that
    /// does not read its events stops getting its commands executed, rather than losing
    /// events.
    fn take_commands(&mut self, now: Instant) -> bool {
        let queued = self.rings.commands.len();
        let mut took = false;
        self.commands_waiting = false;
        for _ in 0..queued {
            if self.pending.len() >= 1024 {
                // Events back up towards the control thread: commands wait, and so must
                // the frames that may be for the legs they start.
                self.commands_waiting = true;
                break;
            }
            let Some(cmd) = self.rings.commands.pop() else {
                break;
            };
            took = true;
            self.counters.commands += 1;
            self.command(cmd, now);
        }
        took
    }

    fn leg(&mut self, idx: u32) -> Option<&mut Leg> {
        self.legs.get_mut(idx as usize).and_then(|l| l.as_mut())
    }

    /// Puts a leg on the dirty list (once).
    fn mark(&mut self, idx: u32) {
        if let Some(Some(l)) = self.legs.get_mut(idx as usize) {
            if !l.dirty {
                l.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    // ---- commands ----

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Reserve { key, local } => self.reserve_tcp(key, local, now),
            Command::ReserveDatagram { key, local } => self.reserve_udp(key, local, now),
            Command::Start {
                key,
                role,
                accept,
                timers,
                tls,
                framing,
            } => self.start_tcp(
                key,
                tcp::StartSpec {
                    role,
                    accept,
                    timers,
                    tls,
                    framing,
                },
                now,
            ),
            Command::StartDatagram {
                key,
                remote,
                accept,
                relatch,
                timers,
                dtls,
            } => self.start_udp(
                key,
                udp::StartSpec {
                    remote,
                    accept,
                    relatch,
                    timers,
                    dtls,
                },
                now,
            ),
            Command::Join { a, b } => self.join(a, b),
            Command::Split { key } => match self.keys.get(&key).copied() {
                Some(idx) => self.split(idx),
                None => self.reject(key, Rejection::UnknownTermination),
            },
            Command::SetGate { key, gate } => match self.keys.get(&key).copied() {
                Some(idx) => {
                    let partner = self.leg(idx).and_then(|l| {
                        l.gate = gate;
                        l.partner
                    });
                    self.mark(idx);
                    // A TCP partner may now take what this leg holds back.
                    if let Some(p) = partner.filter(|_| !self.is_udp(idx)) {
                        self.mark(p);
                    }
                }
                None => self.reject(key, Rejection::UnknownTermination),
            },
            Command::SetPolicy { key, policy } => match self.keys.get(&key).copied() {
                Some(idx) => {
                    let now_us = now.total_micros();
                    if let Some(l) = self.leg(idx) {
                        l.dscp = policy.dscp;
                        match (l.guard.as_mut(), policy.guards()) {
                            (Some(g), true) => g.update(&policy, now_us),
                            (None, true) => l.guard = Some(Box::new(Guard::new(&policy, now_us))),
                            (_, false) => l.guard = None,
                        }
                    }
                }
                None => self.reject(key, Rejection::UnknownTermination),
            },
            Command::Release { key } => match self.keys.get(&key).copied() {
                Some(idx) if self.is_udp(idx) => self.release_udp(idx, now),
                Some(idx) => self.release_tcp(idx, now),
                None => self.reject(key, Rejection::UnknownTermination),
            },
            Command::Capture {
                filter,
                snaplen,
                packets,
            } => {
                let tap = filter.map(|f| {
                    CaptureTap::new(f, snaplen as usize, packets, self.rings.capture.clone())
                });
                self.end_capture(tap);
            }
            Command::Audit { key } => match self.keys.get(&key).copied() {
                Some(idx) => {
                    let stats = self.leg(idx).map(|l| l.stats()).unwrap_or_default();
                    self.emit(Event::Stats { key, stats });
                }
                None => self.reject(key, Rejection::UnknownTermination),
            },
        }
    }

    /// Ends the running capture (reported, over every port) and starts `tap` (if any) on
    /// every port.
    fn end_capture(&mut self, tap: Option<CaptureTap>) {
        let (mut captured, mut missed, mut ran) = (0, 0, false);
        for d in &mut self.devices {
            if let Some(old) = d.set_tap(tap.as_ref().map(CaptureTap::sibling)) {
                captured += old.captured;
                missed += old.missed;
                ran = true;
            }
        }
        if ran {
            self.emit(Event::Captured { captured, missed });
        }
    }

    fn is_udp(&self, idx: u32) -> bool {
        matches!(self.legs.get(idx as usize), Some(Some(l)) if l.is_udp())
    }

    /// Cuts payload through between two legs of one kind; a TCP and a UDP leg carry nothing
    /// to each other.
    fn join(&mut self, a: TerminationKey, b: TerminationKey) {
        let (Some(&ia), Some(&ib)) = (self.keys.get(&a), self.keys.get(&b)) else {
            let key = if self.keys.contains_key(&a) { b } else { a };
            return self.reject(key, Rejection::UnknownTermination);
        };
        if self.is_udp(ia) != self.is_udp(ib) {
            return self.reject(b, Rejection::NotStarted);
        }
        for (x, y) in [(ia, ib), (ib, ia)] {
            if let Some(l) = self.leg(x) {
                l.partner = Some(y);
                l.cut_through_reported = false;
                l.quiet = false;
            }
        }
        self.mark(ia);
        self.mark(ib);
    }

    /// Stops cutting through between a leg and its partner.
    fn split(&mut self, idx: u32) {
        if let Some(p) = self.leg(idx).and_then(|l| {
            l.quiet = false;
            l.partner.take()
        }) {
            if let Some(pl) = self.leg(p) {
                pl.partner = None;
                pl.quiet = false;
            }
        }
    }

    /// Whether a new leg for `key` may take `local`; the refusal is reported.
    fn admit(&mut self, key: TerminationKey, local: std::net::SocketAddr) -> bool {
        let reason = if self.keys.contains_key(&key) {
            Rejection::AlreadyStarted
        } else if !self.table.serves(local.ip()) {
            Rejection::NotLocal
        } else if self.live_legs >= self.cfg.max_legs {
            Rejection::LegTableFull
        } else {
            return true;
        };
        self.reject(key, reason);
        false
    }

    /// Reserves a leg for `key` at `local` with the socket `make` builds (a Reserve command:
    /// nothing listens or is bound yet); a refusal is reported.
    fn reserve<S: smoltcp::socket::AnySocket<'static>>(
        &mut self,
        key: TerminationKey,
        local: std::net::SocketAddr,
        now: Instant,
        make: impl FnOnce(&WorkerConfig) -> (S, Kind),
    ) {
        if !self.admit(key, local) {
            return;
        }
        let Some(ip) = self.table.index_of(local.ip()) else {
            return self.reject(key, Rejection::NotLocal);
        };
        let (socket, kind) = make(&self.cfg);
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(socket);
        debug_assert_eq!(handle, sole());
        let mut leg = Leg::new(key, (ip, local.port()), set, now, kind);
        leg.net = self.ip_net[ip as usize];
        self.insert_leg(leg);
    }

    /// Puts a new leg in the table at its local address; false (reported) if the address is
    /// taken.
    fn insert_leg(&mut self, leg: Leg) -> bool {
        let key = leg.key;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.legs.push(None);
                (self.legs.len() - 1) as u32
            }
        };
        if !self
            .table
            .bind(self.table.ip(leg.local.0), leg.local.1, idx)
        {
            self.free.push(idx);
            self.reject(key, Rejection::AddressInUse);
            return false;
        }
        self.legs[idx as usize] = Some(leg);
        self.keys.insert(key, idx);
        self.live_legs += 1;
        true
    }

    /// Takes a leg out of the table (its socket is done); its partner is told.
    fn free_leg(&mut self, idx: u32) {
        let Some(mut leg) = self.legs.get_mut(idx as usize).and_then(|l| l.take()) else {
            return;
        };
        if !leg.is_udp() {
            if let smoltcp::socket::Socket::Tcp(s) = leg.set.remove(sole()) {
                self.return_buffers(idx, s);
            }
        }
        self.table.unbind(self.table.ip(leg.local.0), leg.local.1);
        if leg.armed_ms != NO_DEADLINE {
            self.wheel.remove(idx, leg.armed_ms);
        }
        if self.keys.get(&leg.key) == Some(&idx) {
            self.keys.remove(&leg.key);
        }
        if let Some(p) = leg.partner {
            if let Some(pl) = self.leg(p) {
                if pl.partner == Some(idx) {
                    pl.partner = None;
                }
            }
        }
        self.free.push(idx);
        self.live_legs -= 1;
    }

    /// Marks dirty the legs whose armed deadline is due. With many legs, those the wheel
    /// wakes (a delayed ACK, a retransmission, an idle check) are as cold as a spread
    /// burst's: their records are asked for a batch at a time before any is read, then what
    /// serving them touches, as for a receive burst.
    fn expire_timers(&mut self, now_ms: i64) {
        let prefetch = self.live_legs >= PREFETCH_FROM_LEGS;
        let woken_from = self.dirty.len();
        let legs = &mut self.legs;
        let dirty = &mut self.dirty;
        let mut batch: ArrayVec<(u32, i64), WHEEL_BATCH> = ArrayVec::new();
        self.wheel.expire(now_ms, |idx, at| {
            if prefetch {
                if let Some(slot) = legs.get(idx as usize) {
                    prefetch::value(slot);
                }
            }
            batch.push((idx, at));
            if batch.is_full() {
                wake(legs, dirty, &mut batch);
            }
        });
        wake(legs, dirty, &mut batch);
        if prefetch && self.dirty.len() > woken_from {
            ingress::ask_for_legs(
                &self.legs,
                self.dirty[woken_from..].iter().map(|&idx| (idx, false)),
                self.tcp_cold,
            );
        }
    }

    /// Polls a leg's set for egress and arms its next deadline, smoltcp's or its own.
    fn egress_leg(&mut self, idx: u32, now: Instant) -> legpoll::Egress {
        let own = self.leg(idx).and_then(|l| Self::own_deadline(l));
        self.egress(idx, now, own)
    }

    /// Polls a leg's set for egress and arms its next deadline (`extra`: the leg's own
    /// timers) in the wheel.
    fn egress(&mut self, idx: u32, now: Instant, extra: Option<Instant>) -> legpoll::Egress {
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return legpoll::Egress {
                sent: 0,
                blocked: false,
                poll_at: None,
            };
        };
        let (net, device) = on_net(&mut self.nets, &mut self.devices, leg.net);
        device.set_dscp(leg.dscp);
        let out = legpoll::egress(&mut net.iface, device, &mut leg.set, now);
        if !leg.is_udp() {
            // UDP legs count the datagrams they relay, not their DTLS handshake records.
            leg.stats.packets_out += out.sent;
        }
        if out.blocked {
            // Something was due and nothing left: it waits for a neighbour (or the port was
            // full). Re-poll it after the next ARP frame.
            self.arp_blocked.push(idx);
        }
        let mut next = out.poll_at.map(ceil_ms).unwrap_or(NO_DEADLINE);
        if let Some(d) = extra {
            next = next.min(ceil_ms(d));
        }
        arm(&mut self.wheel, &mut leg.armed_ms, idx, next, now);
        out
    }
}

/// Wheel entries whose legs' records are asked for together before the first is read.
const WHEEL_BATCH: usize = 32;

/// Marks dirty the legs of `due` whose armed deadline it is (an entry for an older deadline
/// is stale: the leg was re-armed since).
fn wake(
    legs: &mut [Option<Leg>],
    dirty: &mut Vec<u32>,
    due: &mut ArrayVec<(u32, i64), WHEEL_BATCH>,
) {
    for (idx, at) in due.drain(..) {
        let Some(Some(l)) = legs.get_mut(idx as usize) else {
            continue;
        };
        if l.armed_ms == at {
            l.armed_ms = NO_DEADLINE;
            if !l.dirty {
                l.dirty = true;
                dirty.push(idx);
            }
        }
    }
}

/// Arms a leg's next deadline (ms; `NO_DEADLINE` for none) in the wheel. One already due
/// (the port took no more frames) is served again next poll. Only an earlier deadline needs
/// a new wheel entry: when the armed one fires, the leg is served and re-armed for whatever
/// it then needs. This keeps one live entry per leg and few stale ones, so the wheel stops
/// growing once warm.
fn arm(wheel: &mut TimerWheel, armed_ms: &mut i64, idx: u32, mut next: i64, now: Instant) {
    let now_ms = now.total_millis();
    if next <= now_ms {
        next = now_ms + 1;
    }
    if next < *armed_ms {
        *armed_ms = next;
        wheel.insert(idx, next);
    }
}

/// The idle deadline of a leg that carries payload.
fn idle_deadline(leg: &Leg) -> Option<Instant> {
    leg.idle().map(|idle| leg.last_payload + idle)
}

impl<P: Port> Worker<P> {
    /// A leg's own deadlines for the wheel (its state's timer, and idleness once it carries
    /// or is open).
    fn own_deadline(leg: &Leg) -> Option<Instant> {
        match &leg.kind {
            Kind::Tcp(t) => {
                let mut d = t.deadline();
                if matches!(t.state, leg::TcpState::Established { .. }) {
                    d = min_opt(d, idle_deadline(leg));
                }
                d
            }
            Kind::Udp(u) => {
                let mut d = u.dtls.as_ref().and_then(|x| {
                    min_opt(
                        x.session.as_ref().and_then(|s| s.next_timeout()),
                        x.handshake_deadline,
                    )
                });
                if u.state == leg::UdpState::Open {
                    d = min_opt(d, idle_deadline(leg));
                }
                d
            }
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
