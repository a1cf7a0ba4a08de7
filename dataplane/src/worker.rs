//! The poll-mode worker: it owns one port queue, one smoltcp `Interface` and every leg given
//! to it, and cuts payload through between the two legs of each context.
//!
//! Each leg has its own `SocketSet` holding one TCP socket, found by our local (ip, port) in a
//! flat port table, so the cost of a frame does not grow with the number of legs
//! (demux-evidence.md). Ingress never transmits; every leg an ingress frame, a command or a
//! forwarded byte touches goes on the dirty list and is polled for egress, and smoltcp's
//! `poll_at` of every leg is kept in a timer wheel.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Address,
    Ipv4Cidr,
};

use crate::capture::CaptureTap;
use crate::contract::*;
use crate::demux::{classify, FrameClass, PortTable};
use crate::device::SmolDevice;
use crate::framing::{Framer, Framing, FramingLimits, Violation};
use crate::legpoll::{self, ceil_ms};
use crate::tls::{TlsConfig, TlsFailure, TlsSession, PLAINTEXT_LIMIT};
use crate::wheel::TimerWheel;
use port::{Burst, PacketBuf, Port};

mod datagram;
pub use datagram::DTLS_1_2;
use datagram::{is_datagram, DatagramLeg, DatagramSpec, DATAGRAM};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Local addresses the worker's legs use (the realms' address pools), with prefix.
    pub addresses: Vec<Ipv4Cidr>,
    pub gateway: Option<Ipv4Address>,
    /// Receive and send buffer of each leg's socket: the window towards a fast sender and
    /// the data held for a slow receiver.
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    pub max_legs: usize,
    /// How long a released leg may take to close gracefully before it is reset.
    pub release_drain: Duration,
    /// Limits of MSRP- and BFCP-aware legs.
    pub framing: FramingLimits,
    /// Datagrams each UDP leg's socket queues per direction, and their bytes.
    pub datagram_slots: usize,
    pub datagram_bytes: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            addresses: Vec::new(),
            gateway: None,
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
            max_legs: 1 << 20,
            release_drain: Duration::from_secs(2),
            framing: FramingLimits::default(),
            datagram_slots: 32,
            datagram_bytes: 32 * 1024,
        }
    }
}

/// Counters of the worker's own decisions, read by the control thread for status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    pub busy_polls: u64,
    pub idle_polls: u64,
    pub rx_frames: u64,
    /// TCP segments to no leg (answered with RST by the interface).
    pub tcp_no_leg: u64,
    /// Connection requests refused by a gate (answered with RST).
    pub gate_rejected: u64,
    pub fragments_dropped: u64,
    pub malformed_dropped: u64,
    pub commands: u64,
    /// Events that could not be queued (never expected: the queue is sized by the legs).
    pub events_dropped: u64,
    /// Frames given to another worker (TCP for its ports, copies of ARP).
    pub handed_off: u64,
    /// Frames taken from other workers.
    pub handed_in: u64,
    /// Frames for another worker dropped because its inbox was full (or no buffer for a copy).
    pub handoff_dropped: u64,
    /// Pairs closed because an MSRP- or BFCP-aware leg's peer broke framing or a limit.
    pub msrp_violations: u64,
    pub bfcp_violations: u64,
    /// Payload octets cut through, both directions (TLS legs: plaintext).
    pub octets_relayed: u64,
    /// UDP datagrams to no leg (dropped; the interface answers ICMP port unreachable).
    pub udp_no_leg: u64,
    /// Datagrams from a source the gate or the latch does not take.
    pub udp_gate_dropped: u64,
    /// Datagrams that could not be relayed: the other leg not up, its queue full, or too
    /// large for a DTLS record.
    pub udp_dropped: u64,
    pub datagrams_relayed: u64,
}

/// One worker's end of the software hand-off between the workers of a port: bounded inboxes,
/// one per worker, indexed by worker.
pub struct HandoffEnd<B> {
    pub index: usize,
    pub inbox: std::sync::Arc<crossbeam_queue::ArrayQueue<B>>,
    pub peers: Vec<std::sync::Arc<crossbeam_queue::ArrayQueue<B>>>,
}

/// The hand-off ends of `workers` workers, each inbox holding `capacity` frames.
pub fn handoff_mesh<B>(workers: usize, capacity: usize) -> Vec<HandoffEnd<B>> {
    let inboxes: Vec<_> = (0..workers)
        .map(|_| std::sync::Arc::new(crossbeam_queue::ArrayQueue::new(capacity)))
        .collect();
    (0..workers)
        .map(|index| HandoffEnd {
            index,
            inbox: std::sync::Arc::clone(&inboxes[index]),
            peers: inboxes.clone(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Address reserved, no role yet.
    Reserved,
    Listening,
    Connecting,
    Established,
    /// Closing after a release, a partner's end or a timeout; freed once the socket is done.
    Closing,
}

struct Leg {
    key: TerminationKey,
    local: (Ipv4Addr, u16),
    set: SocketSet<'static>,
    handle: SocketHandle,
    state: LegState,
    passive: bool,
    accept: Accept,
    gate: Gate,
    timers: LegTimers,
    partner: Option<u32>,
    /// Deadline of the current state (connect timer, release drain), if any.
    deadline: Option<Instant>,
    last_payload: Instant,
    stats: LegStats,
    /// We half-closed this leg because its partner's peer did.
    fin_forwarded: bool,
    /// Closed has been reported (release or end of the connection).
    reported: bool,
    cut_through_reported: bool,
    dirty: bool,
    /// Deadline this leg is armed for in the wheel, in ms.
    armed_ms: i64,
    /// TLS to set up once TCP is established, then the session.
    tls_config: Option<TlsConfig>,
    tls: Option<Box<TlsSession>>,
    /// close_notify is queued: close TCP once rustls has written it out.
    close_after_flush: bool,
    /// MSRP or BFCP awareness asked for by the control plane.
    framing: Framing,
    /// Frames what this leg's peer sends, once the pair is cut through and aware.
    framer: Option<Box<Framer>>,
}

impl Leg {
    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.handle)
    }

    /// Ready to carry payload: TCP established and, for a TLS leg, the handshake done.
    fn carries(&self) -> bool {
        self.state == LegState::Established
            && (self.tls_config.is_none() || self.tls.as_ref().is_some_and(|t| !t.is_handshaking()))
    }
}

/// What `Command::Start` gives a reserved leg.
struct StartSpec {
    role: LegRole,
    accept: Accept,
    timers: LegTimers,
    tls: Option<TlsConfig>,
    framing: Framing,
}

/// Plaintext moved between two TLS legs per step (below the send limit, so it always fits).
const TLS_SCRATCH: usize = 8 * 1024;

/// One datagram (a received one, a DTLS record, a relayed one): three of them per worker.
const DG_BUF: usize = 2048;

pub struct Worker<P: Port> {
    device: SmolDevice<P>,
    iface: Interface,
    /// For frames that belong to no leg: ARP, ICMP, and RSTs to unknown ports.
    empty: SocketSet<'static>,
    table: PortTable,
    legs: Vec<Option<Leg>>,
    free: Vec<u32>,
    /// UDP legs; their indices elsewhere carry `DATAGRAM`.
    dgrams: Vec<Option<DatagramLeg>>,
    dgram_free: Vec<u32>,
    dg_scratch: Box<[u8]>,
    keys: HashMap<TerminationKey, u32>,
    dirty: Vec<u32>,
    wheel: TimerWheel,
    arp_blocked: Vec<u32>,
    rings: WorkerEnd,
    pending: VecDeque<Event>,
    cfg: WorkerConfig,
    counters: WorkerCounters,
    live_legs: usize,
    scratch: Box<[u8]>,
    /// The software hand-off between the workers of one port.
    handoff: Option<HandoffEnd<P::Buf>>,
    /// Gratuitous ARPs sent so far and when the next is due.
    announcements: u32,
    next_announcement: Instant,
}

/// Gratuitous ARPs after start, at 0, 1, 2, 4 and 8 s: neighbours that still map our
/// addresses to another MAC (a restart, a new NIC, a fail-over) learn the new one.
const ANNOUNCEMENTS: u32 = 5;

const NO_DEADLINE: i64 = i64::MAX;

impl<P: Port> Worker<P> {
    pub fn new(port: P, cfg: WorkerConfig, rings: WorkerEnd, now: Instant) -> Self {
        let mut device = SmolDevice::new(port);
        device.set_auto_rx(false);
        let mac = EthernetAddress(device.port().mac());
        let mut icfg = Config::new(HardwareAddress::Ethernet(mac));
        icfg.random_seed = now.total_micros() as u64
            ^ u64::from_be_bytes([
                0, 0, mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5],
            ]);
        let mut iface = Interface::new(icfg, &mut device, now);
        let mut table = PortTable::new();
        iface.update_ip_addrs(|a| {
            for c in &cfg.addresses {
                if a.push(IpCidr::Ipv4(*c)).is_err() {
                    tracing::error!(address = %c, "too many local addresses for one interface");
                }
            }
        });
        for c in &cfg.addresses {
            table.add_ip(c.address());
        }
        if let Some(gw) = cfg.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        Worker {
            device,
            iface,
            empty: SocketSet::new(Vec::new()),
            table,
            legs: Vec::new(),
            free: Vec::new(),
            dgrams: Vec::new(),
            dgram_free: Vec::new(),
            dg_scratch: vec![0; 3 * DG_BUF].into_boxed_slice(),
            keys: HashMap::new(),
            dirty: Vec::new(),
            wheel: TimerWheel::new(now.total_millis()),
            arp_blocked: Vec::new(),
            rings,
            pending: VecDeque::new(),
            cfg,
            counters: WorkerCounters::default(),
            live_legs: 0,
            scratch: vec![0; TLS_SCRATCH].into_boxed_slice(),
            handoff: None,
            announcements: 0,
            next_announcement: now,
        }
    }

    /// A worker of several on one port: TCP frames for local ports another worker owns
    /// (`port % workers`) are handed to it, ARP frames are copied to every other worker
    /// (each keeps its own neighbour cache), and frames handed to this one are taken in.
    pub fn with_handoff(
        port: P,
        cfg: WorkerConfig,
        rings: WorkerEnd,
        now: Instant,
        handoff: HandoffEnd<P::Buf>,
    ) -> Self {
        let mut w = Self::new(port, cfg, rings, now);
        w.handoff = Some(handoff);
        w
    }

    pub fn counters(&self) -> WorkerCounters {
        self.counters
    }

    /// The smoltcp adapter's counters (frames, and frames lost for want of a buffer).
    pub fn device_stats(&self) -> crate::device::DeviceStats {
        self.device.stats()
    }

    pub fn legs(&self) -> usize {
        self.live_legs
    }

    pub fn port(&self) -> &P {
        self.device.port()
    }

    /// Bytes of socket buffer one established pair holds (both legs, both directions).
    pub fn pair_buffer_bytes(&self) -> usize {
        2 * (self.cfg.rx_buffer + self.cfg.tx_buffer)
    }

    /// Heap one established pair costs: its socket buffers plus, per leg, the leg record, its
    /// one-slot socket set and the key-map entry.
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
        let mut burst: Burst<P::Buf> = Burst::new();
        self.device.port_mut().rx_burst(&mut burst);
        let mut handed: Burst<P::Buf> = Burst::new();
        if let Some(h) = &self.handoff {
            while !handed.is_full() {
                let Some(frame) = h.inbox.pop() else { break };
                handed.push(frame);
            }
        }
        busy |= self.take_commands(now);
        for frame in burst.drain(..) {
            busy = true;
            // Classified once, for the hand-off and for the demux.
            let class = classify(frame.data());
            if let Some(frame) = self.hand_off(frame, class) {
                self.ingress(frame, class, now);
            }
        }
        for frame in handed.drain(..) {
            busy = true;
            self.counters.handed_in += 1;
            let class = classify(frame.data());
            self.ingress(frame, class, now);
        }

        let now_ms = now.total_millis();
        {
            let legs = &mut self.legs;
            let dgrams = &mut self.dgrams;
            let dirty = &mut self.dirty;
            self.wheel.expire(now_ms, |idx, at| {
                let (armed, flag) = if is_datagram(idx) {
                    match dgrams.get_mut((idx & !DATAGRAM) as usize) {
                        Some(Some(l)) => (&mut l.armed_ms, &mut l.dirty),
                        _ => return,
                    }
                } else {
                    match legs.get_mut(idx as usize) {
                        Some(Some(l)) => (&mut l.armed_ms, &mut l.dirty),
                        _ => return,
                    }
                };
                if *armed == at {
                    *armed = NO_DEADLINE;
                    if !*flag {
                        *flag = true;
                        dirty.push(idx);
                    }
                }
            });
        }

        // Serving a leg can dirty its partner (forwarded bytes); bound the passes.
        let mut budget = 4 * (self.dirty.len() + 1);
        while let Some(idx) = self.dirty.pop() {
            busy = true;
            if is_datagram(idx) {
                self.serve_datagram(idx, now);
            } else {
                self.serve(idx, now);
            }
            budget -= 1;
            if budget == 0 {
                break;
            }
        }

        if self.announcements < ANNOUNCEMENTS && now >= self.next_announcement {
            self.announce();
            self.next_announcement = now + Duration::from_secs(1 << self.announcements.min(8));
            self.announcements += 1;
        }

        self.device.flush();
        if self.device.tap_mut().is_some_and(|t| t.done()) {
            if let Some(t) = self.device.set_tap(None) {
                self.emit(Event::Captured {
                    captured: t.captured,
                    missed: t.missed,
                });
            }
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

    /// Frames of another worker go to it (`None`); ARP is also copied to the others.
    fn hand_off(&mut self, frame: P::Buf, class: FrameClass) -> Option<P::Buf> {
        let Some(h) = &self.handoff else {
            return Some(frame);
        };
        match class {
            FrameClass::Tcp { dst, .. } | FrameClass::Udp { dst, .. }
                if self.table.serves(dst.0) =>
            {
                let owner = dst.1 as usize % h.peers.len();
                if owner == h.index {
                    return Some(frame);
                }
                if h.peers[owner].push(frame).is_err() {
                    self.counters.handoff_dropped += 1;
                } else {
                    self.counters.handed_off += 1;
                }
                None
            }
            FrameClass::Arp => {
                for (i, q) in h.peers.iter().enumerate() {
                    if i == h.index {
                        continue;
                    }
                    let copied = self.device.port_mut().alloc().and_then(|mut b| {
                        let data = frame.data();
                        b.append(data.len())?.copy_from_slice(data);
                        Some(b)
                    });
                    match copied.map(|b| q.push(b)) {
                        Some(Ok(())) => self.counters.handed_off += 1,
                        _ => self.counters.handoff_dropped += 1,
                    }
                }
                Some(frame)
            }
            _ => Some(frame),
        }
    }

    /// A gratuitous ARP request for each of our addresses.
    fn announce(&mut self) {
        for i in 0..self.cfg.addresses.len() {
            let ip = self.cfg.addresses[i].address();
            if !self.arp_request(ip, ip) {
                return;
            }
        }
    }

    /// Broadcasts an ARP request from `source` for `target`; false if the port had no room.
    fn arp_request(&mut self, source: Ipv4Address, target: Ipv4Address) -> bool {
        use smoltcp::phy::{Device, TxToken};
        use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};
        let mac = EthernetAddress(self.device.port().mac());
        let Some(tx) = self.device.transmit(Instant::ZERO) else {
            return false;
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: source,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        tx.consume(14 + arp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            frame.set_src_addr(mac);
            frame.set_dst_addr(EthernetAddress::BROADCAST);
            frame.set_ethertype(EthernetProtocol::Arp);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
        true
    }

    /// Asks for the MAC of the next hop towards `remote` now, with our own ARP request:
    /// smoltcp sends one request per second per interface and only once something waits, so
    /// a leg's first datagrams could wait a second (and a burst overflow its queue) behind
    /// another leg's resolution. The reply fills smoltcp's cache like any ARP for us.
    fn resolve(&mut self, remote: Ipv4Addr) {
        let on_link = self.cfg.addresses.iter().find(|c| c.contains_addr(&remote));
        let (source, target) = match (on_link, self.cfg.gateway) {
            (Some(c), _) => (c.address(), remote),
            (None, Some(gw)) => match self.cfg.addresses.iter().find(|c| c.contains_addr(&gw)) {
                Some(c) => (c.address(), gw),
                None => return,
            },
            (None, None) => return,
        };
        self.arp_request(source, target);
    }

    fn emit(&mut self, ev: Event) {
        if self.pending.len() >= 4 * self.cfg.max_legs.min(1 << 16) + 1024 {
            self.counters.events_dropped += 1;
            tracing::error!(?ev, "event queue full; event dropped");
            return;
        }
        self.pending.push_back(ev);
    }

    /// Every command queued now (the ring bounds them; not a budget, since the one a
    /// waiting frame needs may be the last), while events have room: a control thread that
    /// does not read its events stops getting its commands executed, rather than losing
    /// events.
    fn take_commands(&mut self, now: Instant) -> bool {
        let queued = self.rings.commands.len();
        let mut took = false;
        for _ in 0..queued {
            if self.pending.len() >= 1024 {
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

    fn mark(&mut self, idx: u32) {
        if is_datagram(idx) {
            if let Some(l) = self.dgram(idx) {
                if !l.dirty {
                    l.dirty = true;
                    self.dirty.push(idx);
                }
            }
            return;
        }
        if let Some(Some(l)) = self.legs.get_mut(idx as usize) {
            if !l.dirty {
                l.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    // ---- ingress ----

    fn ingress(&mut self, frame: P::Buf, class: FrameClass, now: Instant) {
        self.counters.rx_frames += 1;
        if let Some(tap) = self.device.tap_mut() {
            tap.offer(frame.data(), false, now.total_micros());
        }
        let leg_idx = match class {
            FrameClass::Tcp { src, dst, syn_only } => match self.table.get(dst.0, dst.1) {
                Some(idx) if !is_datagram(idx) => {
                    let Some(leg) = self.legs[idx as usize].as_ref() else {
                        return;
                    };
                    let refused = match (leg.state, leg.accept) {
                        (LegState::Reserved, _) => true,
                        (LegState::Listening, Accept::Gate(ip)) => syn_only && src.0 != ip,
                        _ => false,
                    };
                    if refused {
                        self.counters.gate_rejected += 1;
                        None
                    } else {
                        Some(idx)
                    }
                }
                _ => {
                    self.counters.tcp_no_leg += 1;
                    None
                }
            },
            FrameClass::Udp { dst, .. } => match self.table.get(dst.0, dst.1) {
                Some(idx) if is_datagram(idx) => {
                    self.datagram_ingress(idx, frame, now);
                    return;
                }
                _ => {
                    self.counters.udp_no_leg += 1;
                    None
                }
            },
            FrameClass::Fragment => {
                self.counters.fragments_dropped += 1;
                return;
            }
            FrameClass::Malformed => {
                self.counters.malformed_dropped += 1;
                return;
            }
            FrameClass::Arp | FrameClass::Other => None,
        };
        match leg_idx {
            Some(idx) => {
                let Some(leg) = self.legs[idx as usize].as_mut() else {
                    return;
                };
                legpoll::ingress(&mut self.iface, &mut self.device, &mut leg.set, frame, now);
                leg.stats.packets_in += 1;
                self.mark(idx);
            }
            None => {
                legpoll::ingress(
                    &mut self.iface,
                    &mut self.device,
                    &mut self.empty,
                    frame,
                    now,
                );
                // Interface-level replies (ARP, ICMP, RST) go out now.
                self.iface
                    .poll_egress(now, &mut self.device, &mut self.empty);
                if class == FrameClass::Arp {
                    // Keep the list's capacity: no allocation on the steady path.
                    let mut blocked = std::mem::take(&mut self.arp_blocked);
                    for idx in blocked.drain(..) {
                        self.mark(idx);
                    }
                    self.arp_blocked = blocked;
                }
            }
        }
    }

    // ---- commands ----

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Reserve { key, local } => self.reserve(key, local, now),
            Command::ReserveDatagram { key, local } => self.reserve_datagram(key, local, now),
            Command::StartDatagram {
                key,
                remote,
                accept,
                relatch,
                timers,
                dtls,
            } => self.start_datagram(
                key,
                DatagramSpec {
                    remote,
                    accept,
                    relatch,
                    timers,
                    dtls,
                },
                now,
            ),
            Command::Start {
                key,
                role,
                accept,
                timers,
                tls,
                framing,
            } => self.start(
                key,
                StartSpec {
                    role,
                    accept,
                    timers,
                    tls,
                    framing,
                },
                now,
            ),
            Command::Join { a, b } => {
                let (Some(&ia), Some(&ib)) = (self.keys.get(&a), self.keys.get(&b)) else {
                    let key = if self.keys.contains_key(&a) { b } else { a };
                    self.emit(Event::Rejected {
                        key,
                        reason: Rejection::UnknownTermination,
                    });
                    return;
                };
                match (is_datagram(ia), is_datagram(ib)) {
                    (true, true) => return self.join_datagrams(ia, ib),
                    (false, false) => {}
                    // A TCP leg and a UDP leg carry nothing to each other.
                    _ => {
                        return self.emit(Event::Rejected {
                            key: b,
                            reason: Rejection::NotStarted,
                        })
                    }
                }
                for (x, y) in [(ia, ib), (ib, ia)] {
                    if let Some(l) = self.legs[x as usize].as_mut() {
                        l.partner = Some(y);
                        l.cut_through_reported = false;
                    }
                }
                self.mark(ia);
                self.mark(ib);
            }
            Command::Split { key } => match self.keys.get(&key).copied() {
                Some(idx) if is_datagram(idx) => self.split_datagram(idx),
                Some(idx) => {
                    let partner = self.legs[idx as usize]
                        .as_mut()
                        .and_then(|l| l.partner.take());
                    if let Some(p) = partner {
                        if let Some(pl) = self.legs[p as usize].as_mut() {
                            pl.partner = None;
                        }
                    }
                }
                None => self.emit(Event::Rejected {
                    key,
                    reason: Rejection::UnknownTermination,
                }),
            },
            Command::SetGate { key, gate } => match self.keys.get(&key).copied() {
                Some(idx) if is_datagram(idx) => self.set_datagram_gate(idx, gate),
                Some(idx) => {
                    if let Some(l) = self.legs[idx as usize].as_mut() {
                        l.gate = gate;
                        let partner = l.partner;
                        self.mark(idx);
                        if let Some(p) = partner {
                            self.mark(p);
                        }
                    }
                }
                None => self.emit(Event::Rejected {
                    key,
                    reason: Rejection::UnknownTermination,
                }),
            },
            Command::Release { key } => self.release(key, now),
            Command::Capture {
                filter,
                snaplen,
                packets,
            } => {
                let tap = filter.map(|f| {
                    CaptureTap::new(f, snaplen as usize, packets, self.rings.capture.clone())
                });
                if let Some(old) = self.device.set_tap(tap) {
                    self.emit(Event::Captured {
                        captured: old.captured,
                        missed: old.missed,
                    });
                }
            }
            Command::Audit { key } => match self.keys.get(&key).copied() {
                Some(idx) if is_datagram(idx) => {
                    let stats = self.datagram_stats(idx);
                    self.emit(Event::Stats { key, stats });
                }
                Some(idx) => {
                    let stats = self.legs[idx as usize]
                        .as_ref()
                        .map(|l| l.stats)
                        .unwrap_or_default();
                    self.emit(Event::Stats { key, stats });
                }
                None => self.emit(Event::Rejected {
                    key,
                    reason: Rejection::UnknownTermination,
                }),
            },
        }
    }

    /// Whether a new leg for `key` may take `local`; the refusal is reported.
    fn admit(&mut self, key: TerminationKey, local: SocketAddrV4) -> bool {
        let reason = if self.keys.contains_key(&key) {
            Rejection::AlreadyStarted
        } else if !self.table.serves(*local.ip()) {
            Rejection::NotLocal
        } else if self.live_legs >= self.cfg.max_legs {
            Rejection::LegTableFull
        } else {
            return true;
        };
        self.emit(Event::Rejected { key, reason });
        false
    }

    fn reserve(&mut self, key: TerminationKey, local: SocketAddrV4, now: Instant) {
        let reject = |w: &mut Self, reason| w.emit(Event::Rejected { key, reason });
        if !self.admit(key, local) {
            return;
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.legs.push(None);
                (self.legs.len() - 1) as u32
            }
        };
        if !self.table.bind(*local.ip(), local.port(), idx) {
            self.free.push(idx);
            return reject(self, Rejection::AddressInUse);
        }
        let rx = tcp::SocketBuffer::new(vec![0; self.cfg.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; self.cfg.tx_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_nagle_enabled(false);
        socket.set_congestion_control(tcp::CongestionControl::Reno);
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(socket);
        self.legs[idx as usize] = Some(Leg {
            key,
            local: (*local.ip(), local.port()),
            set,
            handle,
            state: LegState::Reserved,
            passive: true,
            accept: Accept::Latch,
            gate: Gate::OPEN,
            timers: LegTimers::default(),
            partner: None,
            deadline: None,
            last_payload: now,
            stats: LegStats::default(),
            fin_forwarded: false,
            reported: false,
            cut_through_reported: false,
            dirty: false,
            armed_ms: NO_DEADLINE,
            tls_config: None,
            tls: None,
            close_after_flush: false,
            framing: Framing::Agnostic,
            framer: None,
        });
        self.keys.insert(key, idx);
        self.live_legs += 1;
    }

    fn start(&mut self, key: TerminationKey, spec: StartSpec, now: Instant) {
        let StartSpec {
            role,
            accept,
            timers,
            tls,
            framing,
        } = spec;
        let Some(&idx) = self.keys.get(&key) else {
            return self.emit(Event::Rejected {
                key,
                reason: Rejection::UnknownTermination,
            });
        };
        if is_datagram(idx) {
            return self.emit(Event::Rejected {
                key,
                reason: Rejection::NotStarted,
            });
        }
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        if leg.state != LegState::Reserved {
            return self.emit(Event::Rejected {
                key,
                reason: Rejection::AlreadyStarted,
            });
        }
        leg.timers = timers;
        leg.accept = accept;
        leg.last_payload = now;
        leg.tls_config = tls;
        leg.framing = framing;
        let (ip, port) = leg.local;
        let result = match role {
            LegRole::Passive => {
                leg.passive = true;
                leg.set
                    .get_mut::<tcp::Socket>(leg.handle)
                    .listen(IpListenEndpoint {
                        addr: Some(IpAddress::Ipv4(ip)),
                        port,
                    })
                    .map(|()| LegState::Listening)
                    .map_err(|_| ())
            }
            LegRole::Active { remote } => {
                leg.passive = false;
                leg.deadline = Some(now + timers.connect);
                leg.set
                    .get_mut::<tcp::Socket>(leg.handle)
                    .connect(
                        self.iface.context(),
                        IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port()),
                        IpListenEndpoint {
                            addr: Some(IpAddress::Ipv4(ip)),
                            port,
                        },
                    )
                    .map(|()| LegState::Connecting)
                    .map_err(|_| ())
            }
        };
        match result {
            Ok(s) => {
                leg.state = s;
                self.mark(idx);
            }
            Err(()) => self.emit(Event::Rejected {
                key,
                reason: Rejection::NotStarted,
            }),
        }
    }

    fn release(&mut self, key: TerminationKey, now: Instant) {
        let Some(&idx) = self.keys.get(&key) else {
            return self.emit(Event::Rejected {
                key,
                reason: Rejection::UnknownTermination,
            });
        };
        if is_datagram(idx) {
            return self.release_datagram(idx, now);
        }
        let drain = self.cfg.release_drain;
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        let stats = leg.stats;
        let was_reported = leg.reported;
        leg.reported = true;
        match leg.state {
            LegState::Reserved | LegState::Listening | LegState::Connecting => {
                leg.socket().abort();
                leg.state = LegState::Closing;
            }
            LegState::Established | LegState::Closing => {
                leg.socket().close();
                leg.state = LegState::Closing;
                leg.deadline = Some(now + drain);
            }
        }
        if let Some(p) = leg.partner.take() {
            if let Some(pl) = self.legs[p as usize].as_mut() {
                pl.partner = None;
            }
        }
        // The key is free for reuse at once; the leg itself stays until its socket is done.
        self.keys.remove(&key);
        if !was_reported {
            self.emit(Event::Closed {
                key,
                cause: ReleaseCause::Released,
                stats,
            });
        }
        self.mark(idx);
    }

    // ---- serving a leg ----

    fn serve(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        leg.dirty = false;
        self.update_state(idx, now);
        self.forward(idx, now);
        if self.legs[idx as usize].is_none() {
            return;
        }
        self.egress(idx, now);
    }

    fn update_state(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        let sock_state = leg.socket().state();
        match leg.state {
            LegState::Listening | LegState::Connecting => {
                if sock_state == tcp::State::Established {
                    leg.state = LegState::Established;
                    leg.deadline = None;
                    leg.last_payload = now;
                    let remote = match leg.socket().remote_endpoint() {
                        Some(IpEndpoint {
                            addr: IpAddress::Ipv4(a),
                            port,
                        }) => SocketAddrV4::new(a, port),
                        _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    };
                    leg.stats.remote = Some(remote);
                    leg.stats.established_at_ms = Some(now.total_millis());
                    if let Some(cfg) = &leg.tls_config {
                        // The session's buffers are allocated here, once per connection.
                        match TlsSession::new(cfg) {
                            Ok(s) => {
                                leg.tls = Some(Box::new(s));
                                leg.deadline = Some(now + leg.timers.handshake);
                            }
                            Err(e) => {
                                tracing::warn!(key = ?leg.key, error = %e, "TLS session not created");
                                leg.socket().abort();
                                let key = leg.key;
                                self.emit(Event::TlsFailed {
                                    key,
                                    failure: TlsFailure::Protocol,
                                });
                                self.end_leg(idx, ReleaseCause::TlsFailed, now);
                                return;
                            }
                        }
                    }
                    let (key, latched) = (leg.key, leg.passive && leg.accept == Accept::Latch);
                    let partner = leg.partner;
                    self.emit(Event::Established { key, remote });
                    if latched {
                        self.emit(Event::Latched { key, remote });
                    }
                    if let Some(p) = partner {
                        self.mark(p);
                    }
                } else if leg.state == LegState::Connecting {
                    let refused = sock_state == tcp::State::Closed;
                    let timed_out = leg.deadline.is_some_and(|d| now >= d);
                    if refused || timed_out {
                        leg.socket().abort();
                        leg.state = LegState::Reserved;
                        leg.deadline = None;
                        let key = leg.key;
                        let failure = if refused {
                            ConnectFailure::Refused
                        } else {
                            ConnectFailure::Timeout
                        };
                        self.emit(Event::ConnectFailed { key, failure });
                    }
                }
            }
            LegState::Established => {
                if leg.tls.is_some() && !self.tls_io(idx, now) {
                    return;
                }
                let Some(leg) = self.legs[idx as usize].as_mut() else {
                    return;
                };
                if let Some(idle) = leg.timers.idle {
                    if now >= leg.last_payload + idle {
                        leg.socket().abort();
                        self.end_leg(idx, ReleaseCause::IdleTimeout, now);
                        return;
                    }
                }
                match sock_state {
                    // Our FIN was acknowledged and the connection is done, but octets the
                    // peer sent before its own FIN still wait for the partner's send buffer:
                    // they go first (smoltcp keeps them readable), then the leg ends.
                    tcp::State::Closed
                        if leg.fin_forwarded
                            && leg.partner.is_some()
                            && leg.socket().recv_queue() > 0 => {}
                    tcp::State::Closed => {
                        // Closed without our FIN is a reset by the peer; after our FIN it is
                        // the end of a graceful close that went by between two polls.
                        let cause = if leg.fin_forwarded {
                            ReleaseCause::PeerClosed
                        } else {
                            ReleaseCause::PeerReset
                        };
                        self.end_leg(idx, cause, now);
                    }
                    tcp::State::TimeWait | tcp::State::LastAck | tcp::State::Closing
                        if leg.socket().recv_queue() == 0 =>
                    {
                        self.end_leg(idx, ReleaseCause::PeerClosed, now);
                    }
                    _ => {}
                }
            }
            LegState::Closing => {
                let drained = leg.deadline.is_some_and(|d| now >= d);
                if drained {
                    leg.socket().abort();
                }
                if matches!(
                    leg.socket().state(),
                    tcp::State::Closed | tcp::State::TimeWait
                ) {
                    self.free_leg(idx);
                }
            }
            LegState::Reserved => {}
        }
    }

    /// Drives a TLS leg's records both ways; false if the session failed and the leg ended.
    fn tls_io(&mut self, idx: u32, now: Instant) -> bool {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return false;
        };
        let Some(tls) = leg.tls.as_mut() else {
            return true;
        };
        let sock = leg.set.get_mut::<tcp::Socket>(leg.handle);
        let was_handshaking = tls.is_handshaking();
        let failure = match tls.receive(sock) {
            Err(e) => {
                tracing::info!(key = ?leg.key, error = %e, "TLS failed");
                Some(TlsFailure::from(&e))
            }
            Ok(_) if tls.is_handshaking() && tls.peer_done() => Some(TlsFailure::Closed),
            Ok(_) if tls.is_handshaking() && leg.deadline.is_some_and(|d| now >= d) => {
                Some(TlsFailure::Timeout)
            }
            Ok(_) => None,
        };
        // Records, or the alert of a failure, go out.
        tls.transmit(sock);
        if let Some(failure) = failure {
            if failure == TlsFailure::Timeout {
                // No alert fits a peer that stopped talking: reset.
                sock.abort();
            } else {
                sock.close();
            }
            let key = leg.key;
            self.emit(Event::TlsFailed { key, failure });
            self.end_leg(idx, ReleaseCause::TlsFailed, now);
            return false;
        }
        if leg.close_after_flush && !tls.wants_write() {
            leg.close_after_flush = false;
            sock.close();
        }
        if was_handshaking && !tls.is_handshaking() {
            leg.deadline = None;
            let version = tls.protocol_version().map(u16::from).unwrap_or(0);
            let (key, partner) = (leg.key, leg.partner);
            self.emit(Event::TlsEstablished { key, version });
            if let Some(p) = partner {
                self.mark(p);
            }
        }
        true
    }

    /// The connection of this leg ended on its own: report, tell the partner, free.
    fn end_leg(&mut self, idx: u32, cause: ReleaseCause, now: Instant) {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        let partner = leg.partner.take();
        let reset = matches!(
            cause,
            ReleaseCause::PeerReset | ReleaseCause::IdleTimeout | ReleaseCause::Violation
        );
        if cause == ReleaseCause::Violation {
            // Nothing more from or to a peer that broke the protocol.
            leg.socket().abort();
        }
        leg.state = LegState::Closing;
        leg.deadline = Some(now + self.cfg.release_drain);
        let (key, stats, reported) = (leg.key, leg.stats, leg.reported);
        leg.reported = true;
        if !reported {
            self.emit(Event::Closed { key, cause, stats });
        }
        if let Some(p) = partner {
            if cause == ReleaseCause::Violation {
                // The partner did nothing wrong: it reports its end as the partner's.
                if let Some(pl) = self.legs[p as usize].as_mut() {
                    pl.partner = None;
                    pl.socket().abort();
                }
                self.end_leg(p, ReleaseCause::PartnerGone, now);
                // Send both RSTs now: a closing leg whose socket is closed is freed at its
                // next service, before it would transmit.
                self.egress(p, now);
                self.egress(idx, now);
                return;
            }
            if let Some(pl) = self.legs[p as usize].as_mut() {
                pl.partner = None;
                if reset {
                    // A reset on one side is a reset on the other (no byte may pretend to
                    // have been delivered).
                    pl.socket().abort();
                } else if !pl.fin_forwarded {
                    pl.fin_forwarded = true;
                    close_leg(pl);
                }
                self.mark(p);
            }
        }
        self.mark(idx);
    }

    fn free_leg(&mut self, idx: u32) {
        if let Some(leg) = self.legs[idx as usize].take() {
            self.table.unbind(leg.local.0, leg.local.1);
            if self.keys.get(&leg.key) == Some(&idx) {
                self.keys.remove(&leg.key);
            }
            self.free.push(idx);
            self.live_legs -= 1;
        }
    }

    /// Moves payload both ways between a leg and its partner, straight from one socket's
    /// receive buffer into the other's send buffer. What does not fit stays in the receive
    /// buffer, so the sender's window closes: back-pressure without a buffer of our own.
    fn forward(&mut self, idx: u32, now: Instant) {
        let Some(p) = self.legs[idx as usize].as_ref().and_then(|l| l.partner) else {
            return;
        };
        let Ok([a, b]) = self.legs.get_disjoint_mut([idx as usize, p as usize]) else {
            return;
        };
        let (Some(a), Some(b)) = (a.as_mut(), b.as_mut()) else {
            return;
        };
        if !(a.carries() && b.carries()) {
            return;
        }
        let first_report = !a.cut_through_reported;
        a.cut_through_reported = true;
        b.cut_through_reported = true;
        // An aware pair frames both directions, whichever leg asked for it.
        let framing = match a.framing {
            Framing::Agnostic => b.framing,
            f => f,
        };
        for leg in [&mut *a, &mut *b] {
            if leg.framer.is_none() {
                leg.framer =
                    Framer::new(framing, &self.cfg.framing, now.total_millis()).map(Box::new);
            }
        }
        let mut moved = 0;
        let scratch = &mut self.scratch;
        let mut from_tls_a = 0;
        let mut from_tls_b = 0;
        let mut violation = None;
        if a.gate.receive && b.gate.send {
            match pump(a, b, now, scratch) {
                Ok(n) => {
                    if a.tls.is_some() {
                        from_tls_a = n;
                    }
                    moved += n;
                }
                Err(v) => violation = Some((idx, v)),
            }
        }
        if violation.is_none() && b.gate.receive && a.gate.send {
            match pump(b, a, now, scratch) {
                Ok(n) => {
                    if b.tls.is_some() {
                        from_tls_b = n;
                    }
                    moved += n;
                }
                Err(v) => violation = Some((p, v)),
            }
        }
        if let Some((offender, v)) = violation {
            let key = if offender == idx { a.key } else { b.key };
            match v {
                Violation::Msrp(_) => self.counters.msrp_violations += 1,
                Violation::Bfcp(_) => self.counters.bfcp_violations += 1,
            }
            tracing::warn!(
                ?key,
                protocol = v.protocol(),
                violation = v.token(),
                "peer broke framing; pair reset"
            );
            self.emit(Event::Violation { key, violation: v });
            self.end_leg(offender, ReleaseCause::Violation, now);
            return;
        }
        self.counters.octets_relayed += moved as u64;
        // The peer of `a` closed its sending side and everything it sent is forwarded: pass
        // the FIN on (half-close), and the same the other way.
        moved += pass_fin(a, b) + pass_fin(b, a);
        let (ka, kb) = (a.key, b.key);
        if first_report {
            self.emit(Event::CutThrough { a: ka, b: kb });
        }
        if moved > 0 {
            self.mark(p);
        }
        // A TLS leg whose plaintext was taken may now read more records from its socket.
        if from_tls_a > 0 {
            self.mark(idx);
        }
        if from_tls_b > 0 {
            self.mark(p);
        }
    }

    fn egress(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        let out = legpoll::egress(&mut self.iface, &mut self.device, &mut leg.set, now);
        leg.stats.packets_out += out.sent;
        let poll_at = out.poll_at;
        if out.blocked {
            // Something was due and nothing left: it waits for a neighbour (or the port was
            // full). Re-poll it after the next ARP frame.
            self.arp_blocked.push(idx);
        }
        let mut next = poll_at.map(ceil_ms).unwrap_or(NO_DEADLINE);
        if let Some(d) = leg.deadline {
            next = next.min(ceil_ms(d));
        }
        if leg.state == LegState::Established {
            if let Some(idle) = leg.timers.idle {
                next = next.min(ceil_ms(leg.last_payload + idle));
            }
        }
        arm(&mut self.wheel, &mut leg.armed_ms, idx, next, now);
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

/// Closes a leg's sending side: FIN for plain TCP, close_notify and then FIN for TLS.
fn close_leg(leg: &mut Leg) {
    match leg.tls.as_mut() {
        Some(tls) => {
            tls.close();
            let sock = leg.set.get_mut::<tcp::Socket>(leg.handle);
            tls.transmit(sock);
            if tls.wants_write() {
                leg.close_after_flush = true;
            } else {
                sock.close();
            }
        }
        None => leg.socket().close(),
    }
}

/// Half-closes `to` once `from`'s peer has closed its sending side and all of it is forwarded.
fn pass_fin(from: &mut Leg, to: &mut Leg) -> usize {
    if to.fin_forwarded {
        return 0;
    }
    let done = match from.tls.as_mut() {
        Some(tls) => tls.peer_done(),
        None => {
            let rx = from.set.get_mut::<tcp::Socket>(from.handle);
            !rx.may_recv() && rx.recv_queue() == 0
        }
    };
    if done {
        to.fin_forwarded = true;
        close_leg(to);
        return 1;
    }
    0
}

/// Copies what `from`'s peer sent into `to`'s send buffer, as much as fits, decrypting and
/// encrypting on the way for TLS legs. An aware pair's framer sees each piece before it is
/// forwarded; a piece it rejects is not forwarded.
fn pump(
    from: &mut Leg,
    to: &mut Leg,
    now: Instant,
    scratch: &mut [u8],
) -> Result<usize, Violation> {
    let before = from.framer.as_ref().map(|f| f.snapshot());
    let now_ms = now.total_millis();
    let mut framer = from.framer.as_deref_mut();
    let mut violation = None;
    let mut observe = |piece: &[u8]| -> bool {
        match framer.as_deref_mut().map(|f| f.feed(piece, now_ms)) {
            Some(Err(v)) => {
                violation = Some(v);
                false
            }
            _ => true,
        }
    };
    let total = match (from.tls.as_mut(), to.tls.as_mut()) {
        (None, None) => pump_plain(
            &mut from.set,
            from.handle,
            &mut to.set,
            to.handle,
            &mut observe,
        ),
        (Some(tf), None) => {
            let tx = to.set.get_mut::<tcp::Socket>(to.handle);
            let mut total = 0;
            while tx.may_send() && tx.send_queue() < tx.send_capacity() {
                let n = tx
                    .send(|buf| {
                        let n = tf.read_plaintext(buf);
                        if observe(&buf[..n]) {
                            (n, n)
                        } else {
                            (0, 0)
                        }
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        }
        (None, Some(tt)) => {
            let rx = from.set.get_mut::<tcp::Socket>(from.handle);
            let tx = to.set.get_mut::<tcp::Socket>(to.handle);
            let mut total = 0;
            for _ in 0..4 {
                tt.transmit(tx);
                if !tx.may_send() || tt.wants_write() || !rx.can_recv() {
                    break;
                }
                // Nothing is pending, so a piece up to the limit is taken whole.
                let n = rx
                    .recv(|data| {
                        let piece = &data[..data.len().min(PLAINTEXT_LIMIT)];
                        if !observe(piece) {
                            return (0, 0);
                        }
                        let n = tt.write_plaintext(piece);
                        debug_assert_eq!(n, piece.len());
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                total += n;
            }
            tt.transmit(tx);
            total
        }
        (Some(tf), Some(tt)) => {
            let tx = to.set.get_mut::<tcp::Socket>(to.handle);
            let mut total = 0;
            for _ in 0..8 {
                // Only with nothing pending: then a scratch-full of plaintext always fits
                // under the send limit, and nothing read is left over.
                tt.transmit(tx);
                if !tx.may_send() || tt.wants_write() {
                    break;
                }
                let n = tf.read_plaintext(scratch);
                if n == 0 || !observe(&scratch[..n]) {
                    break;
                }
                let taken = tt.write_plaintext(&scratch[..n]);
                debug_assert_eq!(taken, n);
                total += n;
            }
            tt.transmit(tx);
            total
        }
    };
    if let (Some(before), Some(f)) = (before, from.framer.as_ref()) {
        let after = f.snapshot();
        from.stats.app.book(&before, &after, true);
        to.stats.app.book(&before, &after, false);
    }
    if let Some(v) = violation {
        return Err(v);
    }
    if total > 0 {
        from.stats.octets_in += total as u64;
        to.stats.octets_out += total as u64;
        from.last_payload = now;
        to.last_payload = now;
    }
    Ok(total)
}

/// Plain TCP to plain TCP: straight from one socket's receive ring into the other's send ring.
fn pump_plain(
    from: &mut SocketSet<'static>,
    rx: SocketHandle,
    to: &mut SocketSet<'static>,
    tx: SocketHandle,
    observe: &mut impl FnMut(&[u8]) -> bool,
) -> usize {
    let tx = to.get_mut::<tcp::Socket>(tx);
    if !tx.may_send() {
        return 0;
    }
    let rx = from.get_mut::<tcp::Socket>(rx);
    let mut total = 0;
    // The receive ring may wrap: at most two contiguous pieces.
    for _ in 0..2 {
        let room = tx.send_capacity() - tx.send_queue();
        if room == 0 || !rx.can_recv() {
            break;
        }
        let n = rx
            .recv(|data| {
                let piece = &data[..data.len().min(room)];
                if !observe(piece) {
                    return (0, 0);
                }
                let n = tx.send_slice(piece).unwrap_or(0);
                debug_assert_eq!(n, piece.len());
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}
