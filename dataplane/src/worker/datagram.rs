//! UDP legs (T.38 over UDPTL, RFC 7345 with DTLS towards the UE): on the same per-leg demux
//! as TCP legs, each with its own one-socket set, relayed datagram for datagram to the other
//! leg of the context. A leg sends to its Remote address or, latching, to the first source it
//! hears from; the gate drops every other source. DTLS legs decrypt what the UE sends and
//! encrypt what goes to it, the handshake's retransmissions on the worker's timer wheel.
//!
//! Datagram legs live in their own table; their indices carry `DATAGRAM` so the port table,
//! the key map, the dirty list and the wheel hold both kinds.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::{Worker, NO_DEADLINE};
use crate::contract::*;
use crate::dtls::{DtlsConfig, DtlsOutput, DtlsSession, DtlsStatus, DTLS_MTU};
use crate::legpoll::{self, ceil_ms};
use crate::tls::TlsFailure;
use port::Port;

/// Marks an index as one of the datagram table.
pub(super) const DATAGRAM: u32 = 1 << 31;

/// DTLS 1.2 (RFC 6347), reported in `TlsEstablished`.
pub const DTLS_1_2: u16 = 0xfefd;

pub(super) fn is_datagram(idx: u32) -> bool {
    idx & DATAGRAM != 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Address reserved, nothing taken.
    Reserved,
    Open,
}

pub(super) struct DatagramLeg {
    key: TerminationKey,
    local: (Ipv4Addr, u16),
    set: SocketSet<'static>,
    handle: SocketHandle,
    state: State,
    accept: Accept,
    relatch: bool,
    /// Where datagrams to the peer go: the Remote address, then the latched source.
    peer: Option<SocketAddrV4>,
    latched: bool,
    gate: Gate,
    timers: LegTimers,
    partner: Option<u32>,
    last_payload: Instant,
    stats: LegStats,
    dtls_config: Option<DtlsConfig>,
    dtls: Option<Box<DtlsSession>>,
    handshake_deadline: Option<Instant>,
    cut_through_reported: bool,
    /// The partner stopped reading because this leg's send queue was full: serve it once
    /// this leg has sent something.
    wake_partner: bool,
    pub(super) dirty: bool,
    pub(super) armed_ms: i64,
}

impl DatagramLeg {
    fn socket(&mut self) -> &mut udp::Socket<'static> {
        self.set.get_mut::<udp::Socket>(self.handle)
    }

    /// Ready to carry payload: started, a peer known, and DTLS (if any) connected.
    fn carries(&self) -> bool {
        self.state == State::Open
            && self.peer.is_some()
            && (self.dtls_config.is_none() || self.dtls.as_ref().is_some_and(|d| d.is_connected()))
    }

    /// Room for one more datagram (or its DTLS record) in the send queue. The ring may waste
    /// its tail on wrap, hence two.
    fn has_room(&mut self) -> bool {
        let s = self.socket();
        s.can_send() && s.payload_send_capacity() - s.send_queue() >= 2 * super::DG_BUF
    }

    fn takes_from(&self, src: SocketAddrV4) -> bool {
        match self.accept {
            Accept::Gate(ip) => *src.ip() == ip,
            Accept::Latch => !self.latched || self.peer == Some(src) || self.relatch,
        }
    }
}

/// What serving a leg has to report once the borrows end.
#[derive(Default)]
struct Outcome {
    latched: Option<SocketAddrV4>,
    connected: bool,
    failed: Option<TlsFailure>,
    peer_closed: bool,
    relayed: u64,
    octets: u64,
    gate_dropped: u64,
    dropped: u64,
    /// The leg's queue was not emptied within the budget.
    more: bool,
    /// The partner's send queue is full: what is left waits in this leg's receive queue.
    blocked: bool,
}

fn endpoint_v4(e: IpEndpoint) -> Option<SocketAddrV4> {
    match e.addr {
        IpAddress::Ipv4(a) => Some(SocketAddrV4::new(a, e.port)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Sends `data` from `to` towards its peer through its socket (and its DTLS session).
fn deliver(to: &mut DatagramLeg, data: &[u8], out_buf: &mut [u8]) -> bool {
    let Some(peer) = to.peer else {
        return false;
    };
    let endpoint = IpEndpoint::new(IpAddress::Ipv4(*peer.ip()), peer.port());
    let sock = to.set.get_mut::<udp::Socket>(to.handle);
    let sent = match to.dtls.as_mut() {
        None => sock.send_slice(data, endpoint).is_ok(),
        Some(d) => {
            if data.len() + 64 > DTLS_MTU {
                return false;
            }
            let mut ok = true;
            let took = d.send(data, out_buf, |o| {
                if let DtlsOutput::Record(r) = o {
                    ok &= sock.send_slice(r, endpoint).is_ok();
                }
            });
            took && ok
        }
    };
    if sent {
        to.stats.octets_out += data.len() as u64;
        to.stats.packets_out += 1;
    }
    sent
}

impl<P: Port> Worker<P> {
    pub(super) fn dgram(&mut self, idx: u32) -> Option<&mut DatagramLeg> {
        self.dgrams
            .get_mut((idx & !DATAGRAM) as usize)
            .and_then(|l| l.as_mut())
    }

    pub(super) fn reserve_datagram(
        &mut self,
        key: TerminationKey,
        local: SocketAddrV4,
        now: Instant,
    ) {
        if !self.admit(key, local) {
            return;
        }
        let slot = match self.dgram_free.pop() {
            Some(i) => i,
            None => {
                self.dgrams.push(None);
                (self.dgrams.len() - 1) as u32
            }
        };
        let idx = slot | DATAGRAM;
        if !self.table.bind(*local.ip(), local.port(), idx) {
            self.dgram_free.push(slot);
            return self.emit(Event::Rejected {
                key,
                reason: Rejection::AddressInUse,
            });
        }
        let (slots, bytes) = (self.cfg.datagram_slots, self.cfg.datagram_bytes);
        let buffer =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; bytes]);
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(udp::Socket::new(buffer(), buffer()));
        self.dgrams[slot as usize] = Some(DatagramLeg {
            key,
            local: (*local.ip(), local.port()),
            set,
            handle,
            state: State::Reserved,
            accept: Accept::Latch,
            relatch: false,
            peer: None,
            latched: false,
            gate: Gate::OPEN,
            timers: LegTimers::default(),
            partner: None,
            last_payload: now,
            stats: LegStats::default(),
            dtls_config: None,
            dtls: None,
            handshake_deadline: None,
            cut_through_reported: false,
            wake_partner: false,
            dirty: false,
            armed_ms: NO_DEADLINE,
        });
        self.keys.insert(key, idx);
        self.live_legs += 1;
    }

    pub(super) fn start_datagram(&mut self, key: TerminationKey, spec: DatagramSpec, now: Instant) {
        let Some(&idx) = self.keys.get(&key).filter(|i| is_datagram(**i)) else {
            let reason = if self.keys.contains_key(&key) {
                Rejection::NotStarted
            } else {
                Rejection::UnknownTermination
            };
            return self.emit(Event::Rejected { key, reason });
        };
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        if leg.state == State::Reserved {
            let (ip, port) = leg.local;
            if leg
                .socket()
                .bind(IpListenEndpoint {
                    addr: Some(IpAddress::Ipv4(ip)),
                    port,
                })
                .is_err()
            {
                return self.emit(Event::Rejected {
                    key,
                    reason: Rejection::NotStarted,
                });
            }
            leg.state = State::Open;
            leg.last_payload = now;
        }
        leg.accept = spec.accept;
        leg.relatch = spec.relatch;
        leg.timers = spec.timers;
        let mut resolve = None;
        if let Some(r) = spec.remote {
            // A new Remote is where we send from now on, latched or not.
            if leg.peer != Some(r) {
                resolve = Some(*r.ip());
            }
            leg.peer = Some(r);
            leg.latched = matches!(spec.accept, Accept::Gate(_));
        }
        let restart = match (&leg.dtls_config, &spec.dtls) {
            (Some(old), Some(new)) => old != new,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if spec.dtls.is_none() {
            leg.dtls = None;
        }
        leg.dtls_config = spec.dtls;
        if let Some(ip) = resolve {
            self.resolve(ip);
        }
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        if restart {
            leg.dtls = None;
            leg.cut_through_reported = false;
            leg.handshake_deadline = Some(now + leg.timers.handshake);
            self.open_dtls(idx, now);
        }
        self.mark(idx);
    }

    /// Creates the DTLS session once the leg knows its peer (a client sends the first flight
    /// to it; a server answers whoever its gate or latch takes).
    fn open_dtls(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        if leg.dtls.is_some() {
            return;
        }
        let Some(cfg) = leg.dtls_config.as_ref() else {
            return;
        };
        if cfg.client && leg.peer.is_none() {
            return;
        }
        leg.dtls = Some(Box::new(DtlsSession::new(cfg, now)));
    }

    pub(super) fn release_datagram(&mut self, idx: u32, now: Instant) {
        let (out_buf, _) = self.dg_scratch.split_at_mut(super::DG_BUF);
        let Some(leg) = self
            .dgrams
            .get_mut((idx & !DATAGRAM) as usize)
            .and_then(|l| l.as_mut())
        else {
            return;
        };
        let (key, stats) = (leg.key, leg.stats);
        if let (Some(d), Some(peer)) = (leg.dtls.as_mut(), leg.peer) {
            // close_notify is sent once and not retransmitted (RFC 6347 4.2.7).
            let endpoint = IpEndpoint::new(IpAddress::Ipv4(*peer.ip()), peer.port());
            let sock = leg.set.get_mut::<udp::Socket>(leg.handle);
            d.close(out_buf, |o| {
                if let DtlsOutput::Record(r) = o {
                    let _ = sock.send_slice(r, endpoint);
                }
            });
        }
        self.dgram_egress(idx, now);
        self.emit(Event::Closed {
            key,
            cause: ReleaseCause::Released,
            stats,
        });
        self.free_datagram(idx);
    }

    /// Ends a leg on its own (idle, DTLS failure or close): reported, then freed. The partner
    /// stays: a UDP leg has no connection to take down with it.
    fn end_datagram(&mut self, idx: u32, cause: ReleaseCause) {
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        let (key, stats) = (leg.key, leg.stats);
        self.emit(Event::Closed { key, cause, stats });
        self.free_datagram(idx);
    }

    pub(super) fn free_datagram(&mut self, idx: u32) {
        let slot = (idx & !DATAGRAM) as usize;
        let Some(leg) = self.dgrams.get_mut(slot).and_then(|l| l.take()) else {
            return;
        };
        self.table.unbind(leg.local.0, leg.local.1);
        if self.keys.get(&leg.key) == Some(&idx) {
            self.keys.remove(&leg.key);
        }
        if let Some(p) = leg.partner {
            if let Some(pl) = self.dgram(p) {
                pl.partner = None;
            }
        }
        self.dgram_free.push(slot as u32);
        self.live_legs -= 1;
    }

    pub(super) fn datagram_stats(&mut self, idx: u32) -> LegStats {
        self.dgram(idx).map(|l| l.stats).unwrap_or_default()
    }

    pub(super) fn join_datagrams(&mut self, a: u32, b: u32) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(l) = self.dgram(x) {
                l.partner = Some(y);
                l.cut_through_reported = false;
            }
        }
        self.mark(a);
        self.mark(b);
    }

    pub(super) fn split_datagram(&mut self, idx: u32) {
        if let Some(p) = self.dgram(idx).and_then(|l| l.partner.take()) {
            if let Some(pl) = self.dgram(p) {
                pl.partner = None;
            }
        }
    }

    pub(super) fn set_datagram_gate(&mut self, idx: u32, gate: Gate) {
        if let Some(l) = self.dgram(idx) {
            l.gate = gate;
        }
        self.mark(idx);
    }

    /// A frame for a UDP leg: given to its socket if the leg is started.
    pub(super) fn datagram_ingress(&mut self, idx: u32, frame: P::Buf, now: Instant) -> bool {
        let slot = (idx & !DATAGRAM) as usize;
        let Some(leg) = self.dgrams.get_mut(slot).and_then(|l| l.as_mut()) else {
            return false;
        };
        if leg.state != State::Open {
            self.counters.udp_gate_dropped += 1;
            return false;
        }
        legpoll::ingress(&mut self.iface, &mut self.device, &mut leg.set, frame, now);
        self.mark(idx);
        true
    }

    /// Serves a UDP leg: its timers, what its peer sent (relayed to the partner), and egress.
    pub(super) fn serve_datagram(&mut self, idx: u32, now: Instant) {
        let slot = (idx & !DATAGRAM) as usize;
        let Some(leg) = self.dgrams.get_mut(slot).and_then(|l| l.as_mut()) else {
            return;
        };
        leg.dirty = false;
        if leg.state == State::Open {
            if let Some(idle) = leg.timers.idle {
                if now >= leg.last_payload + idle {
                    return self.end_datagram(idx, ReleaseCause::IdleTimeout);
                }
            }
            let handshaking = leg.dtls_config.is_some() && !leg.carries();
            if handshaking && leg.handshake_deadline.is_some_and(|d| now >= d) {
                return self.dtls_failed(idx, TlsFailure::Timeout);
            }
        }
        let outcome = self.relay(idx, now);
        self.counters.udp_gate_dropped += outcome.gate_dropped;
        self.counters.udp_dropped += outcome.dropped;
        self.counters.datagrams_relayed += outcome.relayed;
        self.counters.octets_relayed += outcome.octets;
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        let (key, partner) = (leg.key, leg.partner);
        if let Some(remote) = outcome.latched {
            self.emit(Event::Latched { key, remote });
            // A DTLS client waiting for a peer has one now.
            self.open_dtls(idx, now);
            self.mark(idx);
        }
        if let Some(f) = outcome.failed {
            return self.dtls_failed(idx, f);
        }
        if outcome.connected {
            if let Some(leg) = self.dgram(idx) {
                leg.handshake_deadline = None;
                leg.stats.established_at_ms = Some(now.total_millis());
            }
            self.emit(Event::TlsEstablished {
                key,
                version: DTLS_1_2,
            });
        }
        if outcome.peer_closed {
            return self.end_datagram(idx, ReleaseCause::PeerClosed);
        }
        if let Some(p) = partner {
            if outcome.relayed > 0 || outcome.connected {
                self.mark(p);
            }
            let both = self.dgram(p).is_some_and(|l| l.carries())
                && self
                    .dgram(idx)
                    .is_some_and(|l| l.carries() && !l.cut_through_reported);
            if both {
                let mut b = key;
                for x in [idx, p] {
                    if let Some(l) = self.dgram(x) {
                        l.cut_through_reported = true;
                        b = l.key;
                    }
                }
                self.emit(Event::CutThrough { a: key, b });
            }
        }
        if outcome.blocked {
            if let Some(p) = partner {
                // Send what the partner holds now, then carry on with this leg.
                self.dgram_egress(p, now);
            }
        }
        if outcome.more {
            self.mark(idx);
        }
        self.dgram_egress(idx, now);
    }

    fn dtls_failed(&mut self, idx: u32, failure: TlsFailure) {
        let Some(leg) = self.dgram(idx) else {
            return;
        };
        let key = leg.key;
        tracing::info!(?key, ?failure, "DTLS failed");
        self.emit(Event::TlsFailed { key, failure });
        self.end_datagram(idx, ReleaseCause::TlsFailed);
    }

    /// Takes what the leg's peer sent: the gate and the latch, DTLS, and the partner's
    /// socket. Drives the DTLS timers when nothing arrived.
    fn relay(&mut self, idx: u32, now: Instant) -> Outcome {
        let mut o = Outcome::default();
        let slot = (idx & !DATAGRAM) as usize;
        let partner = self
            .dgrams
            .get(slot)
            .and_then(|l| l.as_ref())
            .and_then(|l| l.partner)
            .map(|p| (p & !DATAGRAM) as usize);
        let (a, mut b) = match partner {
            Some(ps) if ps != slot => match self.dgrams.get_disjoint_mut([slot, ps]) {
                Ok([a, b]) => (a.as_mut(), b.as_mut()),
                Err(_) => return o,
            },
            _ => (self.dgrams.get_mut(slot).and_then(|l| l.as_mut()), None),
        };
        let Some(a) = a else {
            return o;
        };
        let (in_buf, rest) = self.dg_scratch.split_at_mut(super::DG_BUF);
        let (out_buf, relay_buf) = rest.split_at_mut(super::DG_BUF);
        if a.state != State::Open {
            return o;
        }
        let mut budget = self.cfg.datagram_slots;
        loop {
            if budget == 0 {
                // More may wait: served again next poll.
                o.more = true;
                break;
            }
            budget -= 1;
            if let Some(b) = b.as_deref_mut() {
                if a.gate.receive && b.gate.send && b.carries() && !b.has_room() {
                    b.wake_partner = true;
                    o.blocked = true;
                    break;
                }
            }
            let sock = a.set.get_mut::<udp::Socket>(a.handle);
            let (n, meta) = match sock.recv_slice(in_buf) {
                Ok(x) => x,
                Err(udp::RecvError::Truncated) => {
                    o.dropped += 1;
                    continue;
                }
                Err(_) => break,
            };
            a.stats.packets_in += 1;
            let Some(src) = endpoint_v4(meta.endpoint) else {
                o.gate_dropped += 1;
                continue;
            };
            if !a.takes_from(src) {
                o.gate_dropped += 1;
                continue;
            }
            // A gated leg keeps sending to its Remote. A latching plain leg latches (or
            // relatches) on any datagram; a latching DTLS leg latches its first source for the
            // handshake and relatches only once a datagram authenticates.
            let new_source = a.accept == Accept::Latch && a.peer != Some(src);
            if new_source && (a.dtls_config.is_none() || !a.latched) {
                a.peer = Some(src);
                a.latched = true;
                o.latched = Some(src);
            }
            let data = &in_buf[..n];
            if a.dtls_config.is_none() {
                a.last_payload = now;
                forward(a, b.as_deref_mut(), data, relay_buf, &mut o);
                continue;
            }
            let Some(session) = a.dtls.as_mut() else {
                // A DTLS client still waiting for its peer: this datagram made it known.
                continue;
            };
            let sock = a.set.get_mut::<udp::Socket>(a.handle);
            // Records go back to the source they answer.
            let endpoint = IpEndpoint::new(IpAddress::Ipv4(*src.ip()), src.port());
            let gate_in = a.gate.receive;
            let (mut plain, mut plain_octets) = (0u64, 0u64);
            let mut to_partner = b.as_deref_mut();
            let status = session.step(Some(data), now, out_buf, |out| match out {
                DtlsOutput::Record(r) => {
                    let _ = sock.send_slice(r, endpoint);
                }
                DtlsOutput::Plaintext(p) => {
                    plain += 1;
                    plain_octets += p.len() as u64;
                    match to_partner.as_deref_mut() {
                        Some(b) if gate_in && b.gate.send && b.carries() => {
                            if deliver(b, p, relay_buf) {
                                o.relayed += 1;
                                o.octets += p.len() as u64;
                            } else {
                                o.dropped += 1;
                            }
                        }
                        _ => o.dropped += 1,
                    }
                }
            });
            match status {
                DtlsStatus::Failed(f) => {
                    o.failed = Some(f);
                    return o;
                }
                DtlsStatus::Connected => o.connected = true,
                DtlsStatus::PeerClosed => {
                    o.peer_closed = true;
                    return o;
                }
                _ => {}
            }
            if plain > 0 {
                if new_source && a.peer != Some(src) {
                    // Authenticated from a new address: the UE moved (NAT rebinding).
                    a.peer = Some(src);
                    o.latched = Some(src);
                }
                a.stats.octets_in += plain_octets;
                a.last_payload = now;
                if let Some(b) = b.as_deref_mut() {
                    b.last_payload = now;
                }
            }
        }
        // Timers of a handshake (retransmissions) when due.
        if let Some(session) = a.dtls.as_mut() {
            // A new session (a client's first flight) has no timer yet.
            if session.next_timeout().is_none_or(|t| t <= now) {
                let sock = a.set.get_mut::<udp::Socket>(a.handle);
                if let Some(peer) = a.peer {
                    let endpoint = IpEndpoint::new(IpAddress::Ipv4(*peer.ip()), peer.port());
                    match session.step(None, now, out_buf, |out| {
                        if let DtlsOutput::Record(r) = out {
                            let _ = sock.send_slice(r, endpoint);
                        }
                    }) {
                        DtlsStatus::Failed(f) => o.failed = Some(f),
                        DtlsStatus::Connected => o.connected = true,
                        _ => {}
                    }
                }
            }
        }
        o
    }

    pub(super) fn dgram_egress(&mut self, idx: u32, now: Instant) {
        let slot = (idx & !DATAGRAM) as usize;
        let Some(leg) = self.dgrams.get_mut(slot).and_then(|l| l.as_mut()) else {
            return;
        };
        let out = legpoll::egress(&mut self.iface, &mut self.device, &mut leg.set, now);
        if out.blocked {
            self.arp_blocked.push(idx);
        }
        if out.sent > 0 && leg.wake_partner {
            leg.wake_partner = false;
            if let Some(p) = leg.partner {
                self.mark(p);
            }
        }
        let Some(leg) = self.dgrams.get_mut(slot).and_then(|l| l.as_mut()) else {
            return;
        };
        let mut next = out.poll_at.map(ceil_ms).unwrap_or(NO_DEADLINE);
        if let Some(t) = leg.dtls.as_ref().and_then(|d| d.next_timeout()) {
            next = next.min(ceil_ms(t));
        }
        if let Some(d) = leg.handshake_deadline {
            next = next.min(ceil_ms(d));
        }
        if leg.state == State::Open {
            if let Some(idle) = leg.timers.idle {
                next = next.min(ceil_ms(leg.last_payload + idle));
            }
        }
        super::arm(&mut self.wheel, &mut leg.armed_ms, idx, next, now);
    }
}

/// Passes one datagram from `a`'s peer to `b`'s, if the gates and `b` allow.
fn forward(
    a: &mut DatagramLeg,
    b: Option<&mut DatagramLeg>,
    data: &[u8],
    out_buf: &mut [u8],
    o: &mut Outcome,
) {
    a.stats.octets_in += data.len() as u64;
    let Some(b) = b else {
        o.dropped += 1;
        return;
    };
    if !(a.gate.receive && b.gate.send && a.carries() && b.carries()) {
        o.dropped += 1;
        return;
    }
    if deliver(b, data, out_buf) {
        b.last_payload = a.last_payload;
        o.relayed += 1;
        o.octets += data.len() as u64;
    } else {
        o.dropped += 1;
    }
}

/// What `Command::StartDatagram` gives a leg.
pub(super) struct DatagramSpec {
    pub remote: Option<SocketAddrV4>,
    pub accept: Accept,
    pub relatch: bool,
    pub timers: LegTimers,
    pub dtls: Option<DtlsConfig>,
}
