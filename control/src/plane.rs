//! The control plane in one place: the H.248 UDP endpoint, the dispatcher with the MG model
//! behind it, registration with the MGC, Notify, and one worker's rings. `poll` is one round
//! of the control thread; the binary calls it in a loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dataplane::capture::CaptureFilter;
use dataplane::contract::{Command as Dp, ControlEnd, Event};

use crate::capture::{CaptureRequest, CaptureSession, CaptureSummary, CaptureTarget};
use serde::Serialize;

use crate::dispatch::{DispatchCounters, Dispatcher, FromPeer};
use crate::mg::{DataPlane, Mg, MgConfig};
use crate::notify::{Notifier, NotifyCounters};
use crate::registration::{Action, MgcTransport, Registration, RegistrationConfig, State};
use crate::transaction::{Millis, ReplyCache};
use crate::transport::{Endpoints, TcpTransport, UdpTransport};

/// The workers' rings as the MG model's data plane, indexed by worker.
pub struct Rings {
    ends: Vec<ControlEnd>,
    /// The worker whose events are read next (each gets its turn).
    next: usize,
}

impl Rings {
    pub fn new(ends: Vec<ControlEnd>) -> Self {
        Rings { ends, next: 0 }
    }

    pub fn ends(&self) -> &[ControlEnd] {
        &self.ends
    }
}

impl DataPlane for Rings {
    fn room(&self, worker: usize) -> usize {
        self.ends
            .get(worker)
            .map_or(0, |r| r.commands.capacity() - r.commands.len())
    }

    fn submit(&mut self, worker: usize, cmd: Dp) -> bool {
        self.ends
            .get(worker)
            .is_some_and(|r| r.commands.push(cmd).is_ok())
    }

    fn next_event(&mut self) -> Option<(usize, Event)> {
        for _ in 0..self.ends.len() {
            let w = self.next;
            self.next = (self.next + 1) % self.ends.len();
            if let Some(ev) = self.ends[w].events.pop() {
                return Some((w, ev));
            }
        }
        None
    }
}

/// Datagrams taken per round once one has arrived.
const BURST: usize = 64;

pub struct ControlPlane {
    transport: Endpoints,
    mgc_ips: Vec<std::net::IpAddr>,
    dispatcher: Dispatcher<Mg<Rings>>,
    registration: Registration,
    notifier: Notifier,
    outbox: Vec<Action>,
    provisional: Millis,
    last_pending_sweep: Millis,
    retry_registration_at: Option<Millis>,
    registration_retry: Millis,
    /// Messages seen from the MGC, and when the count last moved (for `it/ito`).
    mgc_messages: u64,
    mgc_active_at: Millis,
    /// Data-plane events seen, for status.
    events: u64,
    /// A packet capture being written, if any.
    capture: Option<CaptureSession>,
}

/// What `imsagw status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub registration: String,
    pub contexts: usize,
    pub terminations: usize,
    pub dataplane_events: u64,
    pub h248: DispatchStatus,
    pub notify: NotifyStatus,
    /// MSRP- and BFCP-aware terminations: what they carried, what broke.
    pub applications: crate::mg::AppTotals,
    /// H.248 commands executed: command, result (0: success, else the error code), count.
    pub commands: Vec<(&'static str, u16, u64)>,
    pub tls: crate::mg::TlsCounts,
    /// Local ports in use in each realm's pool.
    pub port_pools: Vec<crate::mg::PoolStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DispatchStatus {
    pub datagrams: u64,
    pub requests: u64,
    pub unknown_peer: u64,
    pub garbage: u64,
    pub oversized: u64,
    pub decode_errors: u64,
    pub refused: u64,
    pub before_registration: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyStatus {
    pub sent: u64,
    pub answered: u64,
    pub refused: u64,
    pub given_up: u64,
    pub unregistered: u64,
    pub retransmissions: u64,
}

impl From<DispatchCounters> for DispatchStatus {
    fn from(c: DispatchCounters) -> Self {
        DispatchStatus {
            datagrams: c.datagrams,
            requests: c.requests,
            unknown_peer: c.unknown_peer,
            garbage: c.garbage,
            oversized: c.oversized,
            decode_errors: c.decode_errors,
            refused: c.refused,
            before_registration: c.before_registration,
        }
    }
}

/// Replies remembered by default: LONG-TIMER times the peak transaction rate must fit (30 s
/// at 33 000 transactions/s); each entry holds its reply, a few hundred bytes.
pub const DEFAULT_REPLY_CACHE: usize = 1 << 20;

impl ControlPlane {
    pub fn new(
        bind: SocketAddr,
        reg: RegistrationConfig,
        mg: MgConfig,
        rings: ControlEnd,
    ) -> std::io::Result<Self> {
        Self::with_reply_cache(bind, reg, mg, vec![rings], DEFAULT_REPLY_CACHE)
    }

    /// As `new`, with one ring pair per worker and room for `reply_cache` remembered
    /// transactions (when it is full, new requests are answered with 510 until entries
    /// expire).
    pub fn with_reply_cache(
        bind: SocketAddr,
        reg: RegistrationConfig,
        mut mg: MgConfig,
        rings: Vec<ControlEnd>,
        reply_cache: usize,
    ) -> std::io::Result<Self> {
        mg.workers = rings.len().max(1);
        let transport = Endpoints::new(UdpTransport::bind(bind)?);
        let mgc_ips: Vec<std::net::IpAddr> = reg.mgcs.iter().map(|m| m.addr.ip()).collect();
        let mgcs = mgc_ips.clone();
        let mut dispatcher = Dispatcher::new(
            Mg::new(mg, Rings::new(rings)),
            ReplyCache::new(reg.timers, reply_cache),
            reg.mid.clone(),
            reg.max_version,
            mgcs,
        );
        dispatcher.set_registered(false);
        Ok(ControlPlane {
            transport,
            mgc_ips,
            dispatcher,
            notifier: Notifier::new(reg.timers, reg.mid.clone()),
            provisional: reg.timers.provisional.as_millis() as Millis,
            registration: Registration::new(reg, 1),
            outbox: Vec::new(),
            last_pending_sweep: 0,
            retry_registration_at: None,
            registration_retry: 5_000,
            mgc_messages: 0,
            mgc_active_at: 0,
            events: 0,
            capture: None,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.transport.udp.local_addr()
    }

    /// Also serve H.248 over TCP with TPKT framing (H.248.1 D.2) on `addr`: the MGC's
    /// requests on a connection it opened are answered on it. (MGCs configured as
    /// `tcp://ADDR` get our own connection, for everything.)
    pub fn enable_tcp(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let t = TcpTransport::bind(addr)?;
        let local = t.local_addr()?;
        self.transport.tcp = Some(t);
        Ok(local)
    }

    pub fn is_registered(&self) -> bool {
        self.registration.is_registered()
    }

    pub fn start(&mut self, now: Millis) {
        let outbox = &mut self.outbox;
        self.registration.start(now, &mut |a| outbox.push(a));
        self.flush(now);
    }

    /// ServiceChange Forced (905) to the MGC; the caller keeps polling while it drains.
    pub fn shutdown(&mut self, now: Millis) {
        let outbox = &mut self.outbox;
        self.registration.shutdown(now, &mut |a| outbox.push(a));
        self.dispatcher.set_registered(false);
        self.flush(now);
    }

    /// Wait before registration starts over after every MGC failed.
    pub fn set_registration_retry(&mut self, retry: Duration) {
        self.registration_retry = retry.as_millis() as Millis;
    }

    /// The certificate for TLS handshakes from now on.
    pub fn set_identity(&mut self, identity: Option<dataplane::tls::Identity>) {
        self.dispatcher.executor_mut().set_identity(identity);
    }

    /// Whether the networks of realms are reachable (the link of their port): the ALG is
    /// told of a change if it armed the realm availability event.
    pub fn set_realms_available(&mut self, changes: &[(usize, bool)]) {
        self.mg_mut().set_realms_available(changes);
    }

    /// Releases every termination (shutdown); returns how many there were.
    pub fn release_all(&mut self) -> usize {
        self.dispatcher.executor_mut().release_all()
    }

    /// Our ServiceChange is still unanswered (while shutting down: wait a little for it).
    pub fn awaiting_replies(&self) -> bool {
        self.registration.awaiting()
    }

    pub fn mg(&self) -> &Mg<Rings> {
        self.dispatcher.executor()
    }

    fn mg_mut(&mut self) -> &mut Mg<Rings> {
        self.dispatcher.executor_mut()
    }

    pub fn status(&self) -> Status {
        let registration = match self.registration.state() {
            State::Idle => "idle".to_string(),
            State::Registering { mgc, .. } => format!("registering with {mgc}"),
            State::Registered { mgc, version } => format!("registered with {mgc} (v{version})"),
            State::Failed => "failed (retrying)".to_string(),
            State::ShutDown => "shut down".to_string(),
        };
        let n: NotifyCounters = self.notifier.counters();
        Status {
            registration,
            contexts: self.mg().contexts(),
            terminations: self.mg().terminations(),
            dataplane_events: self.events,
            h248: self.dispatcher.counters().into(),
            notify: NotifyStatus {
                sent: n.sent,
                answered: n.answered,
                refused: n.refused,
                given_up: n.given_up,
                unregistered: n.unregistered,
                retransmissions: self.notifier.retransmissions(),
            },
            applications: self.mg().app_totals(),
            commands: self.mg().commands().collect(),
            tls: self.mg().tls_counts(),
            port_pools: self.mg().pools(),
        }
    }

    /// One round: data-plane events, H.248 datagrams (waiting at most `wait` for the first),
    /// deferred replies, Notify, timers.
    pub fn poll(&mut self, now: Millis, wait: Duration) -> std::io::Result<()> {
        self.mg_mut().set_now(now);
        self.drain_events();
        // A reply waiting for the worker must not wait for the next datagram too.
        let wait = if self.mg().has_deferred() {
            Duration::ZERO
        } else if self.transport.has_tcp() {
            // The TCP side is polled once per round, after the UDP wait.
            wait.min(Duration::from_millis(1))
        } else {
            wait
        };
        // One datagram at a time: a registration reply takes effect before the next
        // request in the same burst is judged (a request right behind our ServiceChange's
        // answer must not get 505).
        let mut from_peer = Vec::new();
        for i in 0..BURST {
            let w = if i == 0 { wait } else { Duration::ZERO };
            if !self
                .transport
                .udp
                .poll(&mut self.dispatcher, now, w, |f| from_peer.push(f))?
            {
                break;
            }
            self.take_peer_answers(&mut from_peer, now);
        }
        let lost = self
            .transport
            .poll_tcp(&mut self.dispatcher, &self.mgc_ips, now, |f| {
                from_peer.push(f)
            })?;
        self.take_peer_answers(&mut from_peer, now);
        if let State::Registered { mgc, .. } = *self.registration.state() {
            if mgc.transport == MgcTransport::Tcp && lost.contains(&mgc.addr) {
                // Over TCP, loss of contact is the connection's loss (H.248.1 D.2).
                tracing::warn!(%mgc, "lost the connection to the MGC");
                let outbox = &mut self.outbox;
                self.registration.contact_lost(now, &mut |a| outbox.push(a));
                self.apply_registration(now);
            }
        }
        // Events that arrived while the datagrams were handled.
        self.drain_events();
        self.flush(now);
        Ok(())
    }

    /// Replies and Pendings for our own requests; registration takes effect at once.
    fn take_peer_answers(&mut self, from_peer: &mut Vec<FromPeer>, now: Millis) {
        let outbox = &mut self.outbox;
        for f in from_peer.drain(..) {
            match f {
                FromPeer::Reply(r) => {
                    if self.registration.reply(&r, now, &mut |a| outbox.push(a)) {
                        continue;
                    }
                    match self.notifier.answer(&r) {
                        Some(Some(hanging)) => {
                            self.dispatcher.executor_mut().release_hanging(&hanging)
                        }
                        Some(None) => {}
                        None => tracing::debug!(tid = r.id, "reply to no request of ours"),
                    }
                }
                FromPeer::Pending(tid) => {
                    self.registration.pending(tid, now);
                    self.notifier.pending(tid, now);
                }
            }
        }
        self.apply_registration(now);
    }

    /// The workers' events: capture ends are the control plane's, the rest the MG's.
    fn drain_events(&mut self) {
        while let Some((w, ev)) = self.mg_mut().dataplane_mut().next_event() {
            self.events += 1;
            if let Event::Captured { missed, .. } = ev {
                if let Some(c) = self.capture.as_mut() {
                    c.worker_ended(w, missed);
                }
                continue;
            }
            self.mg_mut().on_event(&ev);
        }
    }

    /// Per worker: commands in its ring, events waiting in its ring.
    pub fn ring_occupancy(&self) -> Vec<(usize, usize)> {
        self.mg()
            .dataplane()
            .ends()
            .iter()
            .map(|r| (r.commands.len(), r.events.len()))
            .collect()
    }

    /// Starts a packet capture (one at a time). `epoch_origin_us`: wall-clock time of the
    /// workers' clock origin, for the file's timestamps.
    pub fn start_capture(
        &mut self,
        request: CaptureRequest,
        epoch_origin_us: u64,
        now: Millis,
    ) -> Result<(), String> {
        if self.capture.is_some() {
            return Err("a capture is already running".into());
        }
        let mg = self.mg();
        let (workers, filter) = match &request.target {
            CaptureTarget::Termination(name) => {
                let (w, p) = mg
                    .termination_port(name)
                    .ok_or_else(|| format!("no termination {name}"))?;
                (vec![w], CaptureFilter::Port(p))
            }
            CaptureTarget::Port(p) => (vec![mg.port_owner(*p)], CaptureFilter::Port(*p)),
            CaptureTarget::Host(ip) => (vec![], CaptureFilter::Host(*ip)),
            CaptureTarget::All => (vec![], CaptureFilter::All),
        };
        tracing::info!(?request, "packet capture started");
        self.capture = Some(CaptureSession::start(
            request,
            workers,
            filter,
            mg.dataplane().ends(),
            epoch_origin_us,
            now,
        )?);
        Ok(())
    }

    /// Ends the running capture early; false if none runs.
    pub fn stop_capture(&mut self) -> bool {
        match self.capture.as_mut() {
            Some(c) => {
                c.stop(self.dispatcher.executor().dataplane().ends());
                true
            }
            None => false,
        }
    }

    /// Writes captured frames; the summary once the capture has ended.
    pub fn poll_capture(&mut self, now: Millis) -> Option<CaptureSummary> {
        let c = self.capture.as_mut()?;
        if !c.poll(self.dispatcher.executor().dataplane().ends(), now) {
            return None;
        }
        let summary = c.summary;
        tracing::info!(?summary, file = %c.request.out.display(), "packet capture ended");
        self.capture = None;
        Some(summary)
    }

    /// Deferred replies, notifications, retransmissions, Pendings and registration actions.
    fn flush(&mut self, now: Millis) {
        let transport = &mut self.transport;
        for (peer, tid, version, result) in self.dispatcher.executor_mut().completed() {
            self.dispatcher
                .complete(peer, tid, version, result, now, |to, b: Arc<[u8]>| {
                    transport.send_to(to, &b)
                });
        }
        if now.saturating_sub(self.last_pending_sweep) >= self.provisional {
            self.last_pending_sweep = now;
            self.dispatcher
                .send_pendings(now, |to, b: Arc<[u8]>| transport.send_to(to, &b));
        }
        let mgc = match self.registration.state() {
            State::Registered { mgc, version } => Some((mgc.addr, *version)),
            _ => None,
        };
        let c = self.dispatcher.counters();
        let seen = c.requests + c.acks + c.peer_replies;
        if seen != self.mgc_messages {
            self.mgc_messages = seen;
            self.mgc_active_at = now;
        }
        if let (Some((rid, mit)), Some(_)) = (self.dispatcher.executor().inactivity(), mgc) {
            if now.saturating_sub(self.mgc_active_at) >= mit {
                // The MGC's silence is reported; if it cannot even answer this, the Notify
                // is given up and contact is lost.
                self.mgc_active_at = now;
                let n = self.dispatcher.executor().inactivity_notification(rid);
                if let Some((to, bytes)) = self.notifier.send(&n, mgc, now) {
                    transport.send_to(to, &bytes);
                }
            }
        }
        for n in self.dispatcher.executor_mut().notifications() {
            if let Some((to, bytes)) = self.notifier.send(&n, mgc, now) {
                transport.send_to(to, &bytes);
            }
        }
        let lost = self
            .notifier
            .poll(now, |to, b: Arc<[u8]>| transport.send_to(to, &b));
        let outbox = &mut self.outbox;
        if lost {
            self.registration.contact_lost(now, &mut |a| outbox.push(a));
        }
        if self.retry_registration_at.is_some_and(|t| now >= t) {
            self.retry_registration_at = None;
            self.registration.start(now, &mut |a| outbox.push(a));
        }
        self.registration.poll(now, &mut |a| outbox.push(a));
        self.apply_registration(now);
    }

    /// Carries out what registration asked for: sends, and the registered state.
    fn apply_registration(&mut self, now: Millis) {
        for a in self.outbox.drain(..) {
            match a {
                Action::Send { to, bytes } => self.transport.send_mgc(to, &bytes, now),
                Action::Registered { mgc, version } => {
                    tracing::info!(%mgc, version, "registered");
                    // A (re)started MGC numbers its transactions afresh.
                    self.dispatcher.cache().clear();
                    self.mgc_active_at = now;
                    self.dispatcher.set_registered(true);
                    self.dispatcher.set_version(version);
                }
                Action::AllMgcsFailed => {
                    tracing::error!(
                        retry_ms = self.registration_retry,
                        "no MGC answered; registration will be retried"
                    );
                    self.dispatcher.set_registered(false);
                    self.retry_registration_at = Some(now + self.registration_retry);
                }
            }
        }
    }
}
