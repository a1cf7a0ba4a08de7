//! TCP legs: reserved at an Add, started passive (listen, accept one connection through the
//! gate or latching) or active (connect, with a timer), TLS set up once TCP is established,
//! and ended by a release, by their peer, by their partner or by a timer.

use std::net::SocketAddr;

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::leg::{sole, Kind, Leg, PendingTls, TcpLeg, TcpState, Tls};
use super::Worker;
use crate::contract::*;
use crate::framing::Framing;
use crate::tls::{TlsConfig, TlsFailure, TlsSession};
use port::Port;

/// What `Command::Start` gives a reserved leg.
pub(super) struct StartSpec {
    pub role: LegRole,
    pub accept: Accept,
    pub timers: LegTimers,
    pub tls: Option<TlsConfig>,
    pub framing: Framing,
}

/// The TLS a starting leg will run, with its handshake time.
fn pending(tls: Option<TlsConfig>, timers: &LegTimers) -> Option<Box<PendingTls>> {
    tls.map(|config| {
        Box::new(PendingTls {
            config,
            handshake: timers.handshake,
        })
    })
}

/// Whether serving a leg needs the pair's relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    Run,
    /// The pair is quiet and the leg received nothing: nothing can move.
    Quiet,
}

impl<P: Port> Worker<P> {
    pub(super) fn reserve_tcp(&mut self, key: TerminationKey, local: SocketAddr, now: Instant) {
        let (rx, tx, max_rx) = self.pool.initial();
        self.reserve(key, local, now, move |_| {
            let rx = tcp::SocketBuffer::new(rx);
            let tx = tcp::SocketBuffer::new(tx);
            let mut socket = tcp::Socket::new(rx, tx);
            socket.set_max_rx_capacity(max_rx);
            socket.set_nagle_enabled(false);
            socket.set_congestion_control(tcp::CongestionControl::Reno);
            (socket, Kind::Tcp(TcpLeg::new()))
        });
    }

    pub(super) fn start_tcp(&mut self, key: TerminationKey, spec: StartSpec, now: Instant) {
        let Some(&idx) = self.keys.get(&key) else {
            return self.reject(key, Rejection::UnknownTermination);
        };
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return;
        };
        match &leg.kind {
            Kind::Udp(_) => return self.reject(key, Rejection::NotStarted),
            Kind::Tcp(t) if !matches!(t.state, TcpState::Reserved) => {
                return self.reject(key, Rejection::AlreadyStarted)
            }
            Kind::Tcp(_) => {}
        }
        leg.set_timers(&spec.timers);
        leg.last_payload = now;
        let (ip, port) = (self.table.ip(leg.local.0), leg.local.1);
        let local = IpListenEndpoint {
            addr: Some(IpAddress::from(ip)),
            port,
        };
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let started = match spec.role {
            LegRole::Passive => sock
                .listen(local)
                .map(|()| TcpState::Listening {
                    accept: spec.accept,
                    tls: pending(spec.tls, &spec.timers),
                })
                .map_err(|_| ()),
            LegRole::Active { remote } => sock
                .connect(
                    self.nets[leg.net as usize].iface.context(),
                    IpEndpoint::from(remote),
                    local,
                )
                .map(|()| TcpState::Connecting {
                    deadline: now + spec.timers.connect,
                    tls: pending(spec.tls, &spec.timers),
                })
                .map_err(|_| ()),
        };
        match (started, &mut leg.kind) {
            (Ok(state), Kind::Tcp(t)) => {
                t.state = state;
                t.framing = spec.framing;
                self.mark(idx);
            }
            _ => self.reject(key, Rejection::NotStarted),
        }
    }

    /// Release (H.248 Subtract): closed gracefully if established (reset after the drain
    /// time), reset otherwise; Closed is reported now with its statistics, the key is free
    /// for reuse at once, and the leg stays until its socket is done.
    pub(super) fn release_tcp(&mut self, idx: u32, now: Instant) {
        let drain = self.cfg.release_drain;
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let (key, stats) = (leg.key, leg.stats());
        let Kind::Tcp(t) = &mut leg.kind else {
            return;
        };
        let partner = leg.partner.take();
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let was_reported = std::mem::replace(&mut t.reported, true);
        match t.state {
            TcpState::Reserved | TcpState::Listening { .. } | TcpState::Connecting { .. } => {
                sock.abort();
                t.close(None);
            }
            TcpState::Established { .. } | TcpState::Closing { .. } => {
                sock.close();
                t.close(Some(now + drain));
            }
        }
        if let Some(p) = partner {
            if let Some(pl) = self.leg(p) {
                pl.partner = None;
            }
        }
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

    pub(super) fn serve_tcp(&mut self, idx: u32, now: Instant) {
        let pass = self.pass;
        let Some(leg) = self.leg(idx) else {
            return;
        };
        leg.dirty = false;
        // The partner's service in this pass relayed the pair both ways and left nothing to
        // move; no frame has come in since (frames are all taken before the pass) and a plain
        // leg's state change cannot give the relay more: relaying again would only find the
        // same empty sockets (a tenth of a frame's cost, on every data frame).
        let relayed = std::mem::take(&mut leg.relayed_in_pass) == pass;
        // A quiet pair's leg that received nothing (woken for a delayed ACK or a timer, or
        // by an ACK that frees room nothing waits for) has nothing to relay: the partner's
        // lines are not touched. At 100 000 legs they are cache misses.
        if self.update_state(idx, now) == Relay::Quiet {
            self.counters.quiet_visits += 1;
        } else if !relayed {
            self.forward(idx, now);
        }
        self.egress_leg(idx, now);
    }

    /// Moves the leg's state on; says whether the relay may be skipped.
    fn update_state(&mut self, idx: u32, now: Instant) -> Relay {
        /// Where the leg is, copied out so its borrow ends before anything is done.
        enum Phase {
            Reserved,
            Listening,
            Connecting(Instant),
            Established(bool),
            Closing(Option<Instant>),
        }
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return Relay::Run;
        };
        if leg.is_udp() {
            return Relay::Run;
        }
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let sock_state = sock.state();
        let phase = match &leg.kind {
            Kind::Tcp(t) => match &t.state {
                TcpState::Reserved => Phase::Reserved,
                TcpState::Listening { .. } => Phase::Listening,
                TcpState::Connecting { deadline, .. } => Phase::Connecting(*deadline),
                TcpState::Established { tls } => Phase::Established(tls.is_some()),
                TcpState::Closing { drain } => Phase::Closing(*drain),
            },
            Kind::Udp(_) => return Relay::Run,
        };
        match phase {
            Phase::Reserved => {}
            Phase::Listening | Phase::Connecting(_) if sock_state == tcp::State::Established => {
                self.established(idx, now)
            }
            Phase::Listening => {}
            Phase::Connecting(deadline) => {
                let refused = sock_state == tcp::State::Closed;
                if refused || now >= deadline {
                    sock.abort();
                    if let Kind::Tcp(t) = &mut leg.kind {
                        t.state = TcpState::Reserved;
                    }
                    let key = leg.key;
                    let failure = if refused {
                        ConnectFailure::Refused
                    } else {
                        ConnectFailure::Timeout
                    };
                    self.emit(Event::ConnectFailed { key, failure });
                }
            }
            Phase::Established(tls) => {
                if tls && !self.tls_io(idx, now) {
                    return Relay::Run;
                }
                let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
                    return Relay::Run;
                };
                let idle = leg.idle();
                let sock = leg.set.get_mut::<tcp::Socket>(sole());
                if let Some(idle) = idle {
                    if now >= leg.last_payload + idle {
                        sock.abort();
                        self.end_leg(idx, ReleaseCause::IdleTimeout, now);
                        return Relay::Run;
                    }
                }
                let fin_forwarded = matches!(&leg.kind, Kind::Tcp(t) if t.fin_forwarded);
                // Quiet holds only for plain pairs; the peer still sending and nothing of it
                // received means no relay can move anything.
                if leg.quiet
                    && !tls
                    && sock_state == tcp::State::Established
                    && sock.recv_queue() == 0
                {
                    return Relay::Quiet;
                }
                let (has_partner, queued) = (leg.partner.is_some(), sock.recv_queue());
                match sock_state {
                    // Our FIN was acknowledged and the connection is done, but octets the
                    // peer sent before its own FIN still wait for the partner's send buffer:
                    // they go first (smoltcp keeps them readable), then the leg ends.
                    tcp::State::Closed if fin_forwarded && has_partner && queued > 0 => {}
                    tcp::State::Closed => {
                        // Closed without our FIN is a reset by the peer; after our FIN it is
                        // the end of a graceful close that went by between two polls.
                        let cause = if fin_forwarded {
                            ReleaseCause::PeerClosed
                        } else {
                            ReleaseCause::PeerReset
                        };
                        self.end_leg(idx, cause, now);
                    }
                    tcp::State::TimeWait | tcp::State::LastAck | tcp::State::Closing
                        if queued == 0 =>
                    {
                        self.end_leg(idx, ReleaseCause::PeerClosed, now);
                    }
                    _ => {}
                }
            }
            Phase::Closing(drain) => {
                if drain.is_some_and(|d| now >= d) {
                    sock.abort();
                }
                if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) {
                    self.free_leg(idx);
                }
            }
        }
        Relay::Run
    }

    /// The connection is up: TLS (if asked for) starts, the control thread hears of it.
    fn established(&mut self, idx: u32, now: Instant) {
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return;
        };
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let remote = match sock.remote_endpoint() {
            Some(e) => SocketAddr::from(e),
            None => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        };
        leg.last_payload = now;
        leg.stats.remote = Some(remote.into());
        leg.stats.established_ms = now.total_millis();
        let (key, partner) = (leg.key, leg.partner);
        let Kind::Tcp(t) = &mut leg.kind else {
            return;
        };
        let (config, latched) = match std::mem::replace(&mut t.state, TcpState::Reserved) {
            TcpState::Listening { accept, tls } => (tls, accept == Accept::Latch),
            TcpState::Connecting { tls, .. } => (tls, false),
            other => {
                t.state = other;
                return;
            }
        };
        // The session's buffers are allocated here, once per connection.
        let handshake = config.as_ref().map_or(Duration::ZERO, |p| p.handshake);
        let session = config
            .as_deref()
            .map(|p| TlsSession::new(&p.config))
            .transpose();
        let tls = match session {
            Ok(s) => s.map(|s| Tls {
                session: Box::new(s),
                handshake_deadline: Some(now + handshake),
                close_after_flush: false,
            }),
            Err(e) => {
                tracing::warn!(?key, error = %e, "TLS session not created");
                t.state = TcpState::Established { tls: None };
                sock.abort();
                self.emit(Event::TlsFailed {
                    key,
                    failure: TlsFailure::Protocol,
                });
                self.end_leg(idx, ReleaseCause::TlsFailed, now);
                return;
            }
        };
        t.state = TcpState::Established { tls };
        self.emit(Event::Established { key, remote });
        if latched {
            self.emit(Event::Latched { key, remote });
        }
        if let Some(p) = partner {
            self.mark(p);
        }
    }

    /// Drives a TLS leg's records both ways; false if the session failed and the leg ended.
    fn tls_io(&mut self, idx: u32, now: Instant) -> bool {
        let Some(leg) = self.legs.get_mut(idx as usize).and_then(|l| l.as_mut()) else {
            return false;
        };
        let (key, partner) = (leg.key, leg.partner);
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let Kind::Tcp(TcpLeg {
            state: TcpState::Established { tls: Some(tls) },
            ..
        }) = &mut leg.kind
        else {
            return true;
        };
        let was_handshaking = tls.session.is_handshaking();
        // Records filling the guaranteed window (a large ClientHello, a bulk sender).
        let rx_full = sock.recv_queue() * 4 >= sock.recv_capacity() * 3;
        let failure = match tls.session.receive(sock) {
            Err(e) => {
                tracing::info!(?key, error = %e, "TLS failed");
                Some(TlsFailure::from(&e))
            }
            Ok(_) if tls.session.is_handshaking() && tls.session.peer_done() => {
                Some(TlsFailure::Closed)
            }
            Ok(_)
                if tls.session.is_handshaking()
                    && tls.handshake_deadline.is_some_and(|d| now >= d) =>
            {
                Some(TlsFailure::Timeout)
            }
            Ok(_) => None,
        };
        // Records, or the alert of a failure, go out.
        tls.session.transmit(sock);
        // More than the send buffer holds (the server's handshake flight, a bulk sender).
        let tx_full = tls.session.wants_write();
        if let Some(failure) = failure {
            if failure == TlsFailure::Timeout {
                // No alert fits a peer that stopped talking: reset.
                sock.abort();
            } else {
                sock.close();
            }
            self.emit(Event::TlsFailed { key, failure });
            self.end_leg(idx, ReleaseCause::TlsFailed, now);
            return false;
        }
        if tls.close_after_flush && !tls.session.wants_write() {
            tls.close_after_flush = false;
            sock.close();
        }
        if was_handshaking && !tls.session.is_handshaking() {
            tls.handshake_deadline = None;
            let version = tls.session.protocol_version().map(u16::from).unwrap_or(0);
            self.emit(Event::TlsEstablished { key, version });
            if let Some(p) = partner {
                self.mark(p);
            }
        }
        if rx_full || tx_full {
            self.lend_tls(idx, rx_full, tx_full, now);
        }
        true
    }

    /// The connection of this leg ended on its own: report, tell the partner, free.
    pub(super) fn end_leg(&mut self, idx: u32, cause: ReleaseCause, now: Instant) {
        let drain = self.cfg.release_drain;
        let Some(leg) = self.leg(idx) else {
            return;
        };
        let partner = leg.partner.take();
        let reset = matches!(
            cause,
            ReleaseCause::PeerReset | ReleaseCause::IdleTimeout | ReleaseCause::Violation
        );
        if cause == ReleaseCause::Violation {
            // Nothing more from or to a peer that broke the protocol.
            if let Some(s) = leg.tcp_socket() {
                s.abort();
            }
        }
        let (key, stats) = (leg.key, leg.stats());
        let Some(t) = leg.tcp() else {
            return;
        };
        t.close(Some(now + drain));
        let reported = std::mem::replace(&mut t.reported, true);
        if !reported {
            self.emit(Event::Closed { key, cause, stats });
        }
        if let Some(p) = partner {
            if cause == ReleaseCause::Violation {
                // The partner did nothing wrong: it reports its end as the partner's.
                if let Some(pl) = self.leg(p) {
                    pl.partner = None;
                    if let Some(s) = pl.tcp_socket() {
                        s.abort();
                    }
                }
                self.end_leg(p, ReleaseCause::PartnerGone, now);
                // Send both RSTs now: a closing leg whose socket is closed is freed at its
                // next service, before it would transmit.
                self.egress_leg(p, now);
                self.egress_leg(idx, now);
                return;
            }
            if let Some(pl) = self.leg(p) {
                pl.partner = None;
                if reset {
                    // A reset on one side is a reset on the other (no byte may pretend to
                    // have been delivered).
                    if let Some(s) = pl.tcp_socket() {
                        s.abort();
                    }
                } else if pl.tcp().is_some_and(|t| !t.fin_forwarded) {
                    close_leg(pl);
                }
                self.mark(p);
            }
        }
        self.mark(idx);
    }
}

/// Closes a leg's sending side because its partner's peer did: FIN for plain TCP,
/// close_notify and then FIN for TLS.
pub(super) fn close_leg(leg: &mut Leg) {
    let Kind::Tcp(t) = &mut leg.kind else {
        return;
    };
    let sock = leg.set.get_mut::<tcp::Socket>(sole());
    t.fin_forwarded = true;
    match &mut t.state {
        TcpState::Established { tls: Some(tls) } => {
            tls.session.close();
            tls.session.transmit(sock);
            if tls.session.wants_write() {
                tls.close_after_flush = true;
            } else {
                sock.close();
            }
        }
        _ => sock.close(),
    }
}
