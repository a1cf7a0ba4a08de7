//! UDP legs (T.38 over UDPTL, RFC 7345 with DTLS towards the UE): on the same per-leg demux
//! as TCP legs, each with its own one-socket set, relayed datagram for datagram to the other
//! leg of the context. A leg sends to its Remote address or, latching, to the first source it
//! hears from; the gate drops every other source. DTLS legs decrypt what the UE sends and
//! encrypt what goes to it, the handshake's retransmissions on the worker's timer wheel.

use std::net::SocketAddr;

use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::leg::{sole, Addr, Dtls, Kind, Leg, UdpLeg, UdpState};
use super::{Worker, DG_BUF};
use crate::contract::*;
use crate::dtls::{DtlsConfig, DtlsOutput, DtlsSession, DtlsStatus, DTLS_MTU};
use crate::tls::TlsFailure;
use port::Port;

/// DTLS 1.2 (RFC 6347), reported in `TlsEstablished`.
pub const DTLS_1_2: u16 = 0xfefd;

/// What `Command::StartDatagram` gives a leg.
pub(super) struct StartSpec {
    pub remote: Option<SocketAddr>,
    pub accept: Accept,
    pub relatch: bool,
    pub timers: LegTimers,
    pub dtls: Option<DtlsConfig>,
}

/// What serving a leg has to report once the borrows end.
#[derive(Default)]
struct Outcome {
    latched: Option<Addr>,
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

fn endpoint(a: Addr) -> IpEndpoint {
    IpEndpoint::from(SocketAddr::from(a))
}

/// Room for one more datagram (or its DTLS record) in a leg's send queue. The ring may waste
/// its tail on wrap, hence two.
fn has_room(leg: &mut Leg) -> bool {
    leg.udp_socket()
        .is_some_and(|s| s.can_send() && s.payload_send_capacity() - s.send_queue() >= 2 * DG_BUF)
}

/// Sends `data` from `to` towards its peer through its socket (and its DTLS session).
fn deliver(to: &mut Leg, data: &[u8], out_buf: &mut [u8]) -> bool {
    let Kind::Udp(u) = &mut to.kind else {
        return false;
    };
    let Some(peer) = u.peer else {
        return false;
    };
    let sock = to.set.get_mut::<udp::Socket>(sole());
    let sent = match u.dtls.as_mut().and_then(|d| d.session.as_mut()) {
        None => sock.send_slice(data, endpoint(peer)).is_ok(),
        Some(d) => {
            if data.len() + 64 > DTLS_MTU {
                return false;
            }
            let mut ok = true;
            let took = d.send(data, out_buf, |o| {
                if let DtlsOutput::Record(r) = o {
                    ok &= sock.send_slice(r, endpoint(peer)).is_ok();
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

/// Passes one datagram from `a`'s peer to `b`'s, if the gates and `b` allow.
fn forward(a: &mut Leg, b: Option<&mut Leg>, data: &[u8], out_buf: &mut [u8], o: &mut Outcome) {
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

impl<P: Port> Worker<P> {
    pub(super) fn reserve_udp(&mut self, key: TerminationKey, local: SocketAddr, now: Instant) {
        self.reserve(key, local, now, |cfg| {
            let (slots, bytes) = (cfg.datagram_slots, cfg.datagram_bytes);
            let buffer =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; bytes]);
            (
                udp::Socket::new(buffer(), buffer()),
                Kind::Udp(UdpLeg::new()),
            )
        });
    }

    pub(super) fn start_udp(&mut self, key: TerminationKey, spec: StartSpec, now: Instant) {
        let Some(&idx) = self.keys.get(&key) else {
            return self.reject(key, Rejection::UnknownTermination);
        };
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return;
        };
        let (ip, port) = (self.table.ip(leg.local.0), leg.local.1);
        let Kind::Udp(u) = &mut leg.kind else {
            return self.reject(key, Rejection::NotStarted);
        };
        let sock = leg.set.get_mut::<udp::Socket>(sole());
        if u.state == UdpState::Reserved {
            let local = IpListenEndpoint {
                addr: Some(IpAddress::from(ip)),
                port,
            };
            if sock.bind(local).is_err() {
                return self.reject(key, Rejection::NotStarted);
            }
            u.state = UdpState::Open;
            leg.last_payload = now;
        }
        u.accept = spec.accept;
        u.relatch = spec.relatch;
        leg.idle_after = spec.timers.idle.unwrap_or(Duration::ZERO);
        let mut resolve = None;
        if let Some(r) = spec.remote {
            // A new Remote is where we send from now on, latched or not.
            if u.peer != Some(r.into()) {
                resolve = Some((leg.net, r.ip()));
            }
            u.peer = Some(r.into());
            u.latched = matches!(spec.accept, Accept::Gate(_));
        }
        let restart = match (&u.dtls, &spec.dtls) {
            (Some(old), Some(new)) => old.config != *new,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        match spec.dtls {
            None => u.dtls = None,
            Some(config) if restart => {
                u.dtls = Some(Box::new(Dtls {
                    config,
                    session: None,
                    handshake_deadline: Some(now + spec.timers.handshake),
                }));
                leg.cut_through_reported = false;
            }
            Some(_) => {}
        }
        if let Some((net, ip)) = resolve {
            self.resolve(net, ip);
        }
        if restart {
            self.open_dtls(idx, now);
        }
        self.mark(idx);
    }

    /// Creates the DTLS session once the leg knows its peer (a client sends the first flight
    /// to it; a server answers whoever its gate or latch takes).
    fn open_dtls(&mut self, idx: u32, now: Instant) {
        let Some(Kind::Udp(u)) = self.leg(idx).map(|l| &mut l.kind) else {
            return;
        };
        let peer_known = u.peer.is_some();
        let Some(d) = u.dtls.as_mut() else {
            return;
        };
        if d.session.is_some() || (d.config.client && !peer_known) {
            return;
        }
        d.session = Some(Box::new(DtlsSession::new(&d.config, now)));
    }

    /// Release (H.248 Subtract): close_notify to a DTLS peer (sent once, not retransmitted:
    /// RFC 6347 4.2.7), then the leg is reported and freed.
    pub(super) fn release_udp(&mut self, idx: u32, now: Instant) {
        let (out_buf, _) = self.dg_scratch.split_at_mut(DG_BUF);
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return;
        };
        let (key, stats) = (leg.key, leg.stats());
        if let Kind::Udp(u) = &mut leg.kind {
            let sock = leg.set.get_mut::<udp::Socket>(sole());
            if let (Some(d), Some(peer)) =
                (u.dtls.as_mut().and_then(|d| d.session.as_mut()), u.peer)
            {
                d.close(out_buf, |o| {
                    if let DtlsOutput::Record(r) = o {
                        let _ = sock.send_slice(r, endpoint(peer));
                    }
                });
            }
        }
        self.egress_udp(idx, now);
        self.emit(Event::Closed {
            key,
            cause: ReleaseCause::Released,
            stats,
        });
        self.free_leg(idx);
    }

    /// Ends a leg on its own (idle, DTLS failure or close): reported, then freed. The partner
    /// stays: a UDP leg has no connection to take down with it.
    fn end_udp(&mut self, idx: u32, cause: ReleaseCause) {
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let (key, stats) = (leg.key, leg.stats());
        self.emit(Event::Closed { key, cause, stats });
        self.free_leg(idx);
    }

    /// Serves a UDP leg: its timers, what its peer sent (relayed to the partner), and egress.
    pub(super) fn serve_udp(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.leg(idx) else {
            return;
        };
        leg.dirty = false;
        let idle = leg.idle().is_some_and(|i| now >= leg.last_payload + i);
        let carries = leg.carries();
        let Kind::Udp(u) = &leg.kind else {
            return;
        };
        if u.state == UdpState::Open {
            if idle {
                return self.end_udp(idx, ReleaseCause::IdleTimeout);
            }
            let handshake_late = u
                .dtls
                .as_ref()
                .is_some_and(|d| !carries && d.handshake_deadline.is_some_and(|t| now >= t));
            if handshake_late {
                return self.dtls_failed(idx, TlsFailure::Timeout);
            }
        }
        let outcome = self.relay(idx, now);
        self.counters.udp_gate_dropped += outcome.gate_dropped;
        self.counters.udp_dropped += outcome.dropped;
        self.counters.datagrams_relayed += outcome.relayed;
        self.counters.octets_relayed += outcome.octets;
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let (key, partner) = (leg.key, leg.partner);
        if let Some(remote) = outcome.latched {
            self.emit(Event::Latched {
                key,
                remote: remote.into(),
            });
            // A DTLS client waiting for a peer has one now.
            self.open_dtls(idx, now);
            self.mark(idx);
        }
        if let Some(f) = outcome.failed {
            return self.dtls_failed(idx, f);
        }
        if outcome.connected {
            if let Some(leg) = self.leg(idx) {
                leg.stats.established_ms = now.total_millis();
                if let Some(d) = leg.udp().and_then(|u| u.dtls.as_mut()) {
                    d.handshake_deadline = None;
                }
            }
            self.emit(Event::TlsEstablished {
                key,
                version: DTLS_1_2,
            });
        }
        if outcome.peer_closed {
            return self.end_udp(idx, ReleaseCause::PeerClosed);
        }
        if let Some(p) = partner {
            if outcome.relayed > 0 || outcome.connected {
                self.mark(p);
            }
            let both = self.leg(p).is_some_and(|l| l.carries())
                && self
                    .leg(idx)
                    .is_some_and(|l| l.carries() && !l.cut_through_reported);
            if both {
                let mut b = key;
                for x in [idx, p] {
                    if let Some(l) = self.leg(x) {
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
                self.egress_udp(p, now);
            }
        }
        if outcome.more {
            self.mark(idx);
        }
        self.egress_udp(idx, now);
    }

    fn dtls_failed(&mut self, idx: u32, failure: TlsFailure) {
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let key = leg.key;
        tracing::info!(?key, ?failure, "DTLS failed");
        self.emit(Event::TlsFailed { key, failure });
        self.end_udp(idx, ReleaseCause::TlsFailed);
    }

    /// Takes what the leg's peer sent: the gate and the latch, DTLS, and the partner's
    /// socket. Drives the DTLS timers when nothing arrived.
    fn relay(&mut self, idx: u32, now: Instant) -> Outcome {
        let mut o = Outcome::default();
        let slot = idx as usize;
        let partner = self
            .legs
            .get(slot)
            .and_then(|l| l.as_ref())
            .and_then(|l| l.partner)
            .map(|p| p as usize);
        let (a, mut b) = match partner {
            Some(ps) if ps != slot => match self.legs.get_disjoint_mut([slot, ps]) {
                Ok([a, b]) => (a.as_mut(), b.as_mut()),
                Err(_) => return o,
            },
            _ => (self.legs.get_mut(slot).and_then(|l| l.as_mut()), None),
        };
        let Some(a) = a else {
            return o;
        };
        let (in_buf, rest) = self.dg_scratch.split_at_mut(DG_BUF);
        let (out_buf, relay_buf) = rest.split_at_mut(DG_BUF);
        if !matches!(&a.kind, Kind::Udp(u) if u.state == UdpState::Open) {
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
                if a.gate.receive && b.gate.send && b.carries() && !has_room(b) {
                    if let Some(bu) = b.udp() {
                        bu.wake_partner = true;
                    }
                    o.blocked = true;
                    break;
                }
            }
            let sock = a.set.get_mut::<udp::Socket>(sole());
            let (n, meta) = match sock.recv_slice(in_buf) {
                Ok(x) => x,
                Err(udp::RecvError::Truncated) => {
                    o.dropped += 1;
                    continue;
                }
                Err(_) => break,
            };
            a.stats.packets_in += 1;
            let Kind::Udp(u) = &mut a.kind else {
                return o;
            };
            let src = Addr::from(SocketAddr::from(meta.endpoint));
            if !u.takes_from(src) {
                o.gate_dropped += 1;
                continue;
            }
            // A gated leg keeps sending to its Remote. A latching plain leg latches (or
            // relatches) on any datagram; a latching DTLS leg latches its first source for the
            // handshake and relatches only once a datagram authenticates.
            let new_source = u.accept == Accept::Latch && u.peer != Some(src);
            if new_source && (u.dtls.is_none() || !u.latched) {
                u.peer = Some(src);
                u.latched = true;
                o.latched = Some(src);
            }
            let data = &in_buf[..n];
            if u.dtls.is_none() {
                a.last_payload = now;
                forward(a, b.as_deref_mut(), data, relay_buf, &mut o);
                continue;
            }
            let Some(session) = u.dtls.as_mut().and_then(|d| d.session.as_mut()) else {
                // A DTLS client still waiting for its peer: this datagram made it known.
                continue;
            };
            let sock = a.set.get_mut::<udp::Socket>(sole());
            // Records go back to the source they answer.
            let to_source = endpoint(src);
            let gate_in = a.gate.receive;
            let (mut plain, mut plain_octets) = (0u64, 0u64);
            let mut to_partner = b.as_deref_mut();
            let status = session.step(Some(data), now, out_buf, |out| match out {
                DtlsOutput::Record(r) => {
                    let _ = sock.send_slice(r, to_source);
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
                if new_source && u.peer != Some(src) {
                    // Authenticated from a new address: the UE moved (NAT rebinding).
                    u.peer = Some(src);
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
        let sock = a.set.get_mut::<udp::Socket>(sole());
        if let Kind::Udp(u) = &mut a.kind {
            let peer = u.peer;
            if let Some(session) = u.dtls.as_mut().and_then(|d| d.session.as_mut()) {
                // A new session (a client's first flight) has no timer yet.
                if let (true, Some(peer)) = (session.next_timeout().is_none_or(|t| t <= now), peer)
                {
                    match session.step(None, now, out_buf, |out| {
                        if let DtlsOutput::Record(r) = out {
                            let _ = sock.send_slice(r, endpoint(peer));
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

    /// Egress of a UDP leg; a partner that waited for room in its send queue is woken once
    /// something left.
    pub(super) fn egress_udp(&mut self, idx: u32, now: Instant) {
        let out = self.egress_leg(idx, now);
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let partner = leg.partner;
        let Some(u) = leg.udp() else {
            return;
        };
        if out.sent > 0 && u.wake_partner {
            u.wake_partner = false;
            if let Some(p) = partner {
                self.mark(p);
            }
        }
    }
}
