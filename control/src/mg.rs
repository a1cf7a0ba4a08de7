//! The MG model for the Iq TCP media: contexts and terminations with MG-chosen IDs, Add,
//! Modify, Subtract and AuditValue, address pools per realm, and the mapping of each decision
//! onto data-plane `Command`s. Descriptors replace what was there (H.248.1 7.1.8: no merging).
//!
//! Data-plane events become Notify requests for the events the ALG armed (`notifications`),
//! and a Subtract's reply waits for the worker's final statistics of the released legs
//! (`completed`).
//!
//! T.38 terminations (`udptl`, `UDP/TLS/UDPTL`) become datagram legs: started as soon as a
//! peer address or latching is known, restarted with a new Remote or `a=tls-id`.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use dataplane::contract::{
    Accept, AppStats, Command as Dp, ConnectFailure, Event, Gate, LegRole, LegStats, LegTimers,
    ReleaseCause, TerminationKey, Violation,
};

use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity, TlsConfig, TlsFailure};

use crate::dispatch::Executor;
use crate::iq::{self, tcp_media, unconfirmed, we_are_dtls_client, we_connect, TcpMedia};
use crate::transaction::Millis;
use h248::ast::*;
use h248::sdp::{SdpGroups, SdpLine, SdpSession, SdpValue};

/// A Notify the MG owes the ALG: an armed event was observed on a termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub context: ContextId,
    pub termination: Text,
    pub request_id: u32,
    pub event: (&'static str, &'static str),
    pub parameters: Vec<(&'static str, String)>,
}

/// A Subtract reply waiting for the final statistics of the legs it released.
struct Deferred {
    peer: SocketAddr,
    tid: u32,
    version: u8,
    result: ReplyResult,
    waiting: Vec<TerminationKey>,
    deadline: Millis,
}

/// A subtracted termination whose final statistics have not all arrived.
struct Released {
    name: Text,
    stats: LegStats,
    final_stats: bool,
    established_at: Option<Millis>,
    closed_at: Option<Millis>,
}

/// An event name as (package, item).
type EventName = (&'static str, &'static str);
/// Armed events of a termination: the request ID and the names.
type Armed = (u32, Vec<EventName>);

/// Events the MG can report, by the names the ALG arms them with.
const SUPPORTED_EVENTS: [(&str, &str); 7] = [
    unconfirmed::MEDIA_INACTIVITY,
    unconfirmed::TCP_ESTABLISHED,
    unconfirmed::TCP_FAILURE,
    unconfirmed::TCP_RELEASED,
    unconfirmed::TLS_ESTABLISHED,
    unconfirmed::TLS_FAILURE,
    unconfirmed::HEARTBEAT,
];

/// Where decisions go: the command ring of worker `worker`. `false` means the ring is full.
pub trait DataPlane {
    fn submit(&mut self, worker: usize, cmd: Dp) -> bool;
}

#[derive(Debug, Clone)]
pub struct Realm {
    pub name: Text,
    pub address: Ipv4Addr,
    pub first_port: u16,
    pub last_port: u16,
}

#[derive(Debug, Clone)]
pub struct MgConfig {
    /// The first realm is used when the ALG names none.
    pub realms: Vec<Realm>,
    pub max_contexts: usize,
    pub max_terminations: usize,
    /// Terminations one worker may hold (its leg table, less room for legs still draining).
    pub max_legs_per_worker: usize,
    pub timers: LegTimers,
    /// Interval of the termination heartbeat (`hangterm/thb`) when the ALG arms it.
    pub heartbeat: Duration,
    /// How long a Subtract reply waits for the worker's final statistics.
    pub stats_wait: Duration,
    /// The AGW's certificate for TLS towards UEs; without it TCP/TLS/* is refused (501).
    pub tls: Option<Identity>,
    /// Hash of our fingerprint in Local descriptors.
    pub fingerprint_hash: HashAlg,
    /// Inactivity time of UDP (T.38) legs.
    pub datagram_idle: Option<smoltcp::time::Duration>,
    /// Latching UDP legs follow a new source (see `Command::StartDatagram`).
    pub relatch: bool,
    /// Workers behind the rings: a context lives on worker `context % workers`, and its legs'
    /// local ports are those with `port % workers` equal to it (the hand-off key).
    pub workers: usize,
}

impl MgConfig {
    pub fn new(realms: Vec<Realm>) -> Self {
        MgConfig {
            realms,
            max_contexts: 10_000,
            max_terminations: 20_000,
            max_legs_per_worker: usize::MAX,
            timers: LegTimers::default(),
            heartbeat: Duration::from_secs(60),
            stats_wait: Duration::from_secs(2),
            tls: None,
            fingerprint_hash: HashAlg::Sha256,
            datagram_idle: Some(smoltcp::time::Duration::from_secs(60)),
            relatch: false,
            workers: 1,
        }
    }
}

struct Term {
    name: Text,
    context: u32,
    key: TerminationKey,
    realm: usize,
    local: SocketAddrV4,
    worker: usize,
    mode: StreamMode,
    latch: bool,
    local_sdp: SdpGroups,
    local_media: Option<TcpMedia>,
    remote: Option<TcpMedia>,
    started: bool,
    stats: LegStats,
    /// Armed events: request ID and the names.
    events: Option<Armed>,
    established_at: Option<Millis>,
    next_heartbeat: Option<Millis>,
    /// What the peer broke, when its pair was reset for it.
    violation: Option<Violation>,
    /// When the worker reported the leg closed: its statistics are final from then on, and
    /// a later Release gets no second report.
    closed_at: Option<Millis>,
    /// The last start given to a datagram leg: a Modify that changes it starts it again.
    datagram_start: Option<Dp>,
}

/// Ports handed out in order; freed ones are reused oldest first, so a port is not reused
/// while the worker may still be draining the leg that had it.
struct Pool {
    next: u32,
    free: std::collections::VecDeque<u16>,
}

pub struct Mg<D: DataPlane> {
    cfg: MgConfig,
    pub dataplane: D,
    contexts: BTreeMap<u32, Vec<Text>>,
    terms: HashMap<Text, Term>,
    next_context: u32,
    next_term: u32,
    /// Per realm, per worker.
    pools: Vec<Vec<Pool>>,
    by_key: HashMap<TerminationKey, Text>,
    now: Millis,
    /// Terminations released by the Subtract being executed, whose statistics it reports.
    collecting: Vec<TerminationKey>,
    released: HashMap<TerminationKey, Released>,
    deferred: Vec<Deferred>,
    notifications: Vec<Notification>,
    /// `it/ito` armed on ROOT: request ID and the maximum inactivity in ms.
    inactivity: Option<(u32, Millis)>,
    /// The earliest heartbeat due (`Millis::MAX`: none armed).
    heartbeat_due: Millis,
    /// MSRP and BFCP counts of terminations already gone, and violations.
    app_totals: AppTotals,
    tls: TlsCounts,
    /// Terminations per worker.
    per_worker: Vec<usize>,
    /// Commands a worker refused (the H.248 side had already answered).
    pub worker_rejections: u64,
}

/// TLS handshakes on access legs by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsCounts {
    pub established: u64,
    pub failed_fingerprint: u64,
    pub failed_no_certificate: u64,
    pub failed_protocol: u64,
    pub failed_timeout: u64,
    pub failed_closed: u64,
}

/// What the MG's application-aware terminations carried, for status: each direction is
/// counted once, as received by the termination whose peer sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppTotals {
    pub msrp_terminations: u64,
    pub msrp_chunks: u64,
    pub msrp_messages: u64,
    pub msrp_aborted: u64,
    pub msrp_reports: u64,
    pub msrp_body_octets: u64,
    pub msrp_responses_2xx: u64,
    pub msrp_responses_4xx: u64,
    pub msrp_responses_5xx: u64,
    pub msrp_violations: u64,
    pub bfcp_terminations: u64,
    pub bfcp_frames: u64,
    pub bfcp_octets: u64,
    pub bfcp_violations: u64,
}

impl AppTotals {
    fn add(&mut self, app: &AppStats) {
        match app {
            AppStats::None => {}
            AppStats::Msrp { received: r, .. } => {
                self.msrp_terminations += 1;
                self.msrp_chunks += r.chunks;
                self.msrp_messages += r.messages;
                self.msrp_aborted += r.aborted;
                self.msrp_reports += r.reports;
                self.msrp_body_octets += r.body_octets;
                self.msrp_responses_2xx += r.responses_2xx;
                self.msrp_responses_4xx += r.responses_4xx;
                self.msrp_responses_5xx += r.responses_5xx;
            }
            AppStats::Bfcp { received: r, .. } => {
                self.bfcp_terminations += 1;
                self.bfcp_frames += r.frames;
                self.bfcp_octets += r.octets;
            }
        }
    }
}

type Fail = ErrorDescriptor;

fn fail(code: u16, text: impl Into<String>) -> Fail {
    ErrorDescriptor {
        code,
        text: Some(text.into().as_str().into()),
    }
}

fn lower(s: &str) -> Text {
    s.to_ascii_lowercase().as_str().into()
}

impl<D: DataPlane> Mg<D> {
    pub fn new(cfg: MgConfig, dataplane: D) -> Self {
        let pools = cfg
            .realms
            .iter()
            .map(|_| {
                (0..cfg.workers.max(1))
                    .map(|_| Pool {
                        next: 0,
                        free: Default::default(),
                    })
                    .collect()
            })
            .collect();
        Mg {
            cfg,
            dataplane,
            contexts: BTreeMap::new(),
            terms: HashMap::new(),
            next_context: 1,
            next_term: 1,
            pools,
            by_key: HashMap::new(),
            now: 0,
            collecting: Vec::new(),
            released: HashMap::new(),
            deferred: Vec::new(),
            notifications: Vec::new(),
            inactivity: None,
            heartbeat_due: Millis::MAX,
            app_totals: AppTotals::default(),
            tls: TlsCounts::default(),
            per_worker: Vec::new(),
            worker_rejections: 0,
        }
    }

    /// The MGC's inactivity timer (`it/ito` on ROOT), if armed: request ID and limit in ms.
    pub fn inactivity(&self) -> Option<(u32, Millis)> {
        self.inactivity
    }

    /// Modify ROOT: only the inactivity timer can be armed there.
    fn modify_root(&mut self, descriptors: &[Descriptor]) -> Result<(), Fail> {
        for d in descriptors {
            match d {
                Descriptor::Events(None) => self.inactivity = None,
                Descriptor::Events(Some(e)) => {
                    let RequestId::Id(rid) = e.request_id else {
                        return Err(fail(458, "Events needs a request ID"));
                    };
                    let mut armed = None;
                    for ev in &e.events {
                        let (p, i) = unconfirmed::INACTIVITY;
                        if !ev.name.is(p, i) {
                            return Err(fail(
                                451,
                                format!(
                                    "only {p}/{i} can be armed on ROOT, not {}/{}",
                                    ev.name.package, ev.name.item
                                ),
                            ));
                        }
                        let mut mit = None;
                        for parm in &ev.parameters {
                            if let EventParameter::Other {
                                name,
                                value: ParmValue::Equal(v),
                            } = parm
                            {
                                if name.eq_ignore_ascii_case(unconfirmed::INACTIVITY_MAX_PARAMETER)
                                {
                                    mit = Some(v.text.parse::<u64>().map_err(|_| {
                                        fail(449, format!("bad mit value {}", v.text))
                                    })?);
                                }
                            }
                        }
                        let mit = mit.ok_or_else(|| fail(457, "it/ito needs mit"))?;
                        if mit == 0 {
                            return Err(fail(449, "mit value 0"));
                        }
                        armed = Some((rid, mit * unconfirmed::INACTIVITY_UNIT_MS));
                    }
                    self.inactivity = armed;
                }
                Descriptor::Audit(_) | Descriptor::Signals(_) => {}
                _ => return Err(fail(444, "only Events can be modified on ROOT")),
            }
        }
        Ok(())
    }

    /// The ALG answered a heartbeat Notify with 411/430/435: it does not know the
    /// termination, which is hanging (H.248.36); release it.
    pub fn release_hanging(&mut self, name: &str) {
        let key = lower(name);
        if let Some(t) = self.remove_term(&key) {
            tracing::warn!(termination = %t.name, "hanging termination released");
            self.app_totals.add(&t.stats.app);
        }
    }

    /// Takes a termination out of the MG and releases its leg: its name, key, port, context
    /// membership (an empty context goes) and its worker's count.
    fn remove_term(&mut self, name: &Text) -> Option<Term> {
        let t = self.terms.remove(name)?;
        if let Some(c) = self.per_worker.get_mut(t.worker) {
            *c = c.saturating_sub(1);
        }
        self.dataplane.submit(t.worker, Dp::Release { key: t.key });
        self.by_key.remove(&t.key);
        self.free_port(t.realm, t.local.port());
        if let Some(members) = self.contexts.get_mut(&t.context) {
            members.retain(|m| m != name);
            if members.is_empty() {
                self.contexts.remove(&t.context);
            }
        }
        Some(t)
    }

    /// Our fingerprint for Local descriptors, when TLS is configured.
    fn our_fingerprint(&self) -> Option<String> {
        self.cfg
            .tls
            .as_ref()
            .map(|id| id.fingerprint(self.cfg.fingerprint_hash).to_string())
    }

    /// New certificate for handshakes from now on (SIGHUP); sessions up keep theirs.
    pub fn set_identity(&mut self, identity: Option<Identity>) {
        self.cfg.tls = identity;
    }

    /// Releases every termination (shutdown); returns how many there were.
    pub fn release_all(&mut self) -> usize {
        let n = self.terms.len();
        for t in self.terms.values() {
            self.dataplane.submit(t.worker, Dp::Release { key: t.key });
        }
        self.terms.clear();
        self.per_worker.iter_mut().for_each(|c| *c = 0);
        self.contexts.clear();
        self.by_key.clear();
        n
    }

    /// The control thread's clock, set before each round.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now;
    }

    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    pub fn terminations(&self) -> usize {
        self.terms.len()
    }

    pub fn tls_counts(&self) -> TlsCounts {
        self.tls
    }

    /// The worker and local port of a termination, by name.
    pub fn termination_port(&self, name: &str) -> Option<(usize, u16)> {
        self.terms
            .get(&lower(name))
            .map(|t| (t.worker, t.local.port()))
    }

    /// The worker that owns a local port (the hand-off key).
    pub fn port_owner(&self, port: u16) -> usize {
        port as usize % self.workers()
    }

    /// MSRP and BFCP counts of every termination, gone or live (terminations count once
    /// they have carried something).
    pub fn app_totals(&self) -> AppTotals {
        let mut totals = self.app_totals;
        for t in self.terms.values() {
            totals.add(&t.stats.app);
        }
        totals
    }

    /// Statistics reported by the data plane, kept for Subtract replies and audits.
    pub fn update_stats(&mut self, key: TerminationKey, stats: LegStats) {
        if let Some(t) = self.by_key.get(&key).and_then(|n| self.terms.get_mut(n)) {
            t.stats = stats;
        }
    }

    /// One event from the data plane: statistics kept, armed events turned into
    /// notifications, waiting Subtract replies fed.
    pub fn on_event(&mut self, ev: &Event) {
        let now = self.now;
        match *ev {
            Event::Established { key, .. } => {
                if let Some(t) = self.term_mut(key) {
                    t.established_at = Some(now);
                }
            }
            Event::CutThrough { a, b } => {
                for key in [a, b] {
                    self.notify(key, unconfirmed::TCP_ESTABLISHED, vec![]);
                }
            }
            Event::ConnectFailed { key, failure } => {
                let cause = match failure {
                    ConnectFailure::Refused => "refused",
                    ConnectFailure::Timeout => "timeout",
                };
                self.notify(
                    key,
                    unconfirmed::TCP_FAILURE,
                    vec![(unconfirmed::CAUSE_PARAMETER, cause.to_string())],
                );
            }
            Event::Closed { key, cause, stats } => {
                if let Some(r) = self.released.get_mut(&key) {
                    r.stats = stats;
                    r.final_stats = true;
                    r.closed_at = Some(now);
                    return;
                }
                if let Some(t) = self.term_mut(key) {
                    t.stats = stats;
                    t.closed_at = Some(now);
                }
                let datagram = self
                    .term_mut(key)
                    .is_some_and(|t| t.datagram_start.is_some());
                if datagram && cause == ReleaseCause::IdleTimeout {
                    self.notify(key, unconfirmed::MEDIA_INACTIVITY, vec![]);
                } else if cause != ReleaseCause::Released {
                    let cause = match cause {
                        ReleaseCause::PeerClosed => "closed",
                        ReleaseCause::PeerReset => "reset",
                        ReleaseCause::PartnerGone => "partner",
                        ReleaseCause::IdleTimeout => "idle",
                        ReleaseCause::TlsFailed => "tls",
                        ReleaseCause::Violation => unconfirmed::CAUSE_VIOLATION,
                        ReleaseCause::Released => "released",
                    };
                    let mut params = vec![(unconfirmed::CAUSE_PARAMETER, cause.to_string())];
                    if let Some(v) = self.term_mut(key).and_then(|t| t.violation) {
                        params.push((
                            unconfirmed::VIOLATION_PARAMETER,
                            format!("{}-{}", v.protocol(), v.token()),
                        ));
                    }
                    self.notify(key, unconfirmed::TCP_RELEASED, params);
                }
            }
            Event::Stats { key, stats } => self.update_stats(key, stats),
            // Capture ends are the control plane's (see `plane`).
            Event::Captured { .. } => {}
            Event::Violation { key, violation } => {
                tracing::warn!(
                    ?key,
                    protocol = violation.protocol(),
                    violation = violation.token(),
                    "peer broke framing; pair reset"
                );
                match violation {
                    Violation::Msrp(_) => self.app_totals.msrp_violations += 1,
                    Violation::Bfcp(_) => self.app_totals.bfcp_violations += 1,
                }
                if let Some(t) = self.term_mut(key) {
                    t.violation = Some(violation);
                }
            }
            Event::Rejected { key, reason } => {
                // A released leg the worker already freed (both ends closed) has nothing
                // more to report: expected, not a fault.
                if let Some(r) = self.released.get_mut(&key) {
                    r.final_stats = true;
                    tracing::debug!(?key, ?reason, "released leg already gone");
                    return;
                }
                if !self.by_key.contains_key(&key) {
                    // A Release the worker got after the peers had closed the leg and the
                    // Subtract was answered from the close: both sides are done with it.
                    tracing::debug!(?key, ?reason, "command for a termination already gone");
                    return;
                }
                tracing::warn!(?key, ?reason, "the worker refused a command");
                self.worker_rejections += 1;
            }
            Event::Latched { key, remote } => {
                tracing::debug!(?key, %remote, "leg latched");
            }
            Event::TlsEstablished { key, version } => {
                tracing::info!(?key, version, "TLS established");
                self.tls.established += 1;
                self.notify(key, unconfirmed::TLS_ESTABLISHED, vec![]);
            }
            Event::TlsFailed { key, failure } => {
                let t = &mut self.tls;
                match failure {
                    TlsFailure::Fingerprint => t.failed_fingerprint += 1,
                    TlsFailure::NoCertificate => t.failed_no_certificate += 1,
                    TlsFailure::Protocol => t.failed_protocol += 1,
                    TlsFailure::Timeout => t.failed_timeout += 1,
                    TlsFailure::Closed => t.failed_closed += 1,
                }
                let cause = match failure {
                    TlsFailure::Fingerprint => "fingerprint",
                    TlsFailure::NoCertificate => "nocert",
                    TlsFailure::Protocol => "protocol",
                    TlsFailure::Timeout => "timeout",
                    TlsFailure::Closed => "closed",
                };
                tracing::warn!(?key, cause, "TLS failed");
                self.notify(
                    key,
                    unconfirmed::TLS_FAILURE,
                    vec![(unconfirmed::CAUSE_PARAMETER, cause.to_string())],
                );
            }
        }
    }

    fn term_mut(&mut self, key: TerminationKey) -> Option<&mut Term> {
        self.by_key.get(&key).and_then(|n| self.terms.get_mut(n))
    }

    fn notify(
        &mut self,
        key: TerminationKey,
        event: (&'static str, &'static str),
        parameters: Vec<(&'static str, String)>,
    ) {
        let Some(t) = self.by_key.get(&key).and_then(|n| self.terms.get(n)) else {
            return;
        };
        let Some((rid, armed)) = &t.events else {
            return;
        };
        if armed.contains(&event) {
            self.notifications.push(Notification {
                context: ContextId::Id(t.context),
                termination: t.name.clone(),
                request_id: *rid,
                event,
                parameters,
            });
        }
    }

    /// Notifications owed to the ALG, oldest first; heartbeats that are due are added.
    pub fn notifications(&mut self) -> std::vec::Drain<'_, Notification> {
        let now = self.now;
        let every = self.cfg.heartbeat.as_millis() as Millis;
        // The terminations are walked only when the earliest heartbeat is due.
        if now < self.heartbeat_due {
            return self.notifications.drain(..);
        }
        self.heartbeat_due = Millis::MAX;
        for t in self.terms.values_mut() {
            let Some(mut next) = t.next_heartbeat else {
                continue;
            };
            if next <= now {
                next = now + every;
                t.next_heartbeat = Some(next);
                if let Some((rid, _)) = &t.events {
                    self.notifications.push(Notification {
                        context: ContextId::Id(t.context),
                        termination: t.name.clone(),
                        request_id: *rid,
                        event: unconfirmed::HEARTBEAT,
                        parameters: vec![],
                    });
                }
            }
            self.heartbeat_due = self.heartbeat_due.min(next);
        }
        self.notifications.drain(..)
    }

    /// Replies are waiting for the worker's statistics.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Deferred replies whose statistics are all in (or that waited long enough):
    /// `(peer, transaction, version, reply)`.
    pub fn completed(&mut self) -> Vec<(SocketAddr, u32, u8, ReplyResult)> {
        let now = self.now;
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.deferred.len() {
            let d = &self.deferred[i];
            let ready = d
                .waiting
                .iter()
                .all(|k| self.released.get(k).is_none_or(|r| r.final_stats));
            if !ready && now < d.deadline {
                i += 1;
                continue;
            }
            let mut d = self.deferred.swap_remove(i);
            if !ready {
                tracing::warn!(
                    tid = d.tid,
                    "final statistics late; answering Subtract with the last known"
                );
            }
            for key in &d.waiting {
                if let Some(r) = self.released.remove(key) {
                    self.app_totals.add(&r.stats.app);
                    let stats = statistics(&r.stats, r.established_at, r.closed_at.or(Some(now)));
                    set_subtract_stats(&mut d.result, &r.name, stats);
                }
            }
            done.push((d.peer, d.tid, d.version, d.result));
        }
        done
    }

    fn workers(&self) -> usize {
        self.cfg.workers.max(1)
    }

    fn worker_of(&self, context: u32) -> usize {
        context as usize % self.workers()
    }

    /// A local port of `realm` that worker `worker` owns (`port % workers == worker`).
    fn alloc_port(&mut self, realm: usize, worker: usize) -> Option<u16> {
        let n = self.workers() as u32;
        let r = &self.cfg.realms[realm];
        let (first, last) = (r.first_port as u32, r.last_port as u32);
        let base = first + (worker as u32 + n - first % n) % n;
        let pool = &mut self.pools[realm][worker];
        let p = base + pool.next * n;
        if p > last {
            return pool.free.pop_front();
        }
        pool.next += 1;
        Some(p as u16)
    }

    fn free_port(&mut self, realm: usize, port: u16) {
        let w = port as usize % self.workers();
        self.pools[realm][w].free.push_back(port);
    }

    fn action(&mut self, req: &ActionRequest) -> ActionReply {
        let mut reply = ActionReply {
            context: req.context,
            properties: vec![],
            replies: vec![],
            error: None,
        };
        let mut context = match req.context {
            ContextId::Choose => None,
            ContextId::Id(id) if self.contexts.contains_key(&id) => Some(id),
            ContextId::Id(id) => {
                reply.error = Some(fail(411, format!("unknown context {id}")));
                return reply;
            }
            ContextId::Null => Some(0),
            ContextId::All => {
                reply.error = Some(fail(501, "commands on all contexts are not supported"));
                return reply;
            }
        };
        for c in &req.commands {
            let r = match &c.command {
                Command::Amm {
                    kind: AmmKind::Add,
                    terminations,
                    descriptors,
                } => self.add(&mut context, terminations, descriptors),
                Command::Amm {
                    kind: AmmKind::Modify,
                    terminations,
                    descriptors,
                } if matches!(terminations.as_slice(), [t] if t.is_root()) => {
                    self.modify_root(descriptors).map(|()| {
                        vec![CommandReply::Amms {
                            kind: AmmsKind::Modify,
                            terminations: terminations.clone(),
                            audit: None,
                        }]
                    })
                }
                Command::Amm {
                    kind: AmmKind::Modify,
                    terminations,
                    descriptors,
                } => self.modify_matching(context, terminations, descriptors),
                Command::Amm {
                    kind: AmmKind::Move,
                    terminations,
                    descriptors,
                } => self.move_(&mut context, terminations, descriptors),
                Command::Subtract {
                    terminations,
                    audit,
                } => self.subtract(context, terminations, audit.as_deref()),
                Command::Audit {
                    kind: AuditKind::Value,
                    terminations,
                    ..
                } => self.audit_matching(context, terminations),
                Command::Audit {
                    kind: AuditKind::Capabilities,
                    terminations,
                    ..
                } => self.capabilities(context, terminations),
                Command::ServiceChange { terminations, .. } => {
                    Ok(vec![CommandReply::ServiceChange {
                        terminations: terminations.clone(),
                        result: None,
                    }])
                }
                _ => Err(fail(501, "command not implemented")),
            };
            match r {
                Ok(mut rs) => reply.replies.append(&mut rs),
                Err(e) if c.optional => tracing::debug!(code = e.code, "optional command failed"),
                Err(e) => {
                    reply.error = Some(e);
                    break;
                }
            }
        }
        if let (ContextId::Choose, Some(id)) = (req.context, context) {
            reply.context = ContextId::Id(id);
        }
        reply
    }

    /// Reads a LocalControl: Mode and latching into the arguments; returns the realm named,
    /// if any. Other package properties are not supported (445).
    fn local_control(
        &self,
        lc: &[LocalParm],
        mode: &mut StreamMode,
        latch: &mut bool,
    ) -> Result<Option<Text>, Fail> {
        let mut realm = None;
        for l in lc {
            match l {
                LocalParm::Mode(m) => *mode = *m,
                LocalParm::Property(pp)
                    if pp
                        .name
                        .is(iq::unconfirmed::REALM.0, iq::unconfirmed::REALM.1) =>
                {
                    realm = Some(
                        pp.value
                            .single()
                            .map(|v| v.text.clone())
                            .unwrap_or_default(),
                    );
                }
                LocalParm::Property(pp)
                    if pp
                        .name
                        .is(iq::unconfirmed::LATCH.0, iq::unconfirmed::LATCH.1) =>
                {
                    *latch = pp
                        .value
                        .single()
                        .is_some_and(|v| v.text.eq_ignore_ascii_case("on"));
                }
                LocalParm::Property(pp) => {
                    return Err(fail(
                        445,
                        format!("unsupported property {}/{}", pp.name.package, pp.name.item),
                    ));
                }
                LocalParm::ReservedValue(_) | LocalParm::ReservedGroup(_) => {}
            }
        }
        Ok(realm)
    }

    /// The command's Events descriptor: `None` when absent, `Some(None)` for a bare `Events`
    /// (disarm), otherwise the request ID and the events, each one the MG can report.
    fn events(descriptors: &[Descriptor]) -> Result<Option<Option<Armed>>, Fail> {
        let mut found = None;
        for d in descriptors {
            let Descriptor::Events(e) = d else { continue };
            let Some(e) = e else {
                found = Some(None);
                continue;
            };
            let RequestId::Id(rid) = e.request_id else {
                return Err(fail(458, "Events needs a request ID"));
            };
            let mut names = Vec::new();
            for ev in &e.events {
                let name = SUPPORTED_EVENTS
                    .iter()
                    .find(|(p, i)| ev.name.is(p, i))
                    .ok_or_else(|| {
                        let known = SUPPORTED_EVENTS
                            .iter()
                            .any(|(p, _)| ev.name.package.eq_ignore_ascii_case(p));
                        let (code, what) = if known {
                            (451, "no such event in package")
                        } else {
                            (445, "unsupported package")
                        };
                        fail(
                            code,
                            format!("{what}: {}/{}", ev.name.package, ev.name.item),
                        )
                    })?;
                names.push(*name);
            }
            found = Some(Some((rid, names)));
        }
        Ok(found)
    }

    fn arm(&mut self, t: &mut Term, events: Option<Option<Armed>>) {
        let Some(events) = events else { return };
        let beats = events
            .as_ref()
            .is_some_and(|(_, names)| names.contains(&unconfirmed::HEARTBEAT));
        t.next_heartbeat = beats.then(|| self.now + self.cfg.heartbeat.as_millis() as Millis);
        if let Some(next) = t.next_heartbeat {
            self.heartbeat_due = self.heartbeat_due.min(next);
        }
        t.events = events;
    }

    /// Stream 1's LocalControl, Local and Remote (a bare stream or `Stream = 1`).
    fn stream1(descriptors: &[Descriptor]) -> Result<Vec<&StreamParm>, Fail> {
        let mut parms = Vec::new();
        for d in descriptors {
            match d {
                Descriptor::Media(ms) => {
                    for m in ms {
                        match m {
                            MediaParm::Stream(p) => parms.push(p),
                            MediaParm::Streams(s) if s.id == 1 => parms.extend(s.parms.iter()),
                            MediaParm::Streams(_) => {
                                return Err(fail(501, "only stream 1 is supported"))
                            }
                            MediaParm::TerminationState(_) => {}
                        }
                    }
                }
                Descriptor::Events(_) | Descriptor::Signals(_) | Descriptor::Audit(_) => {}
                Descriptor::Statistics(_) => {}
                _ => return Err(fail(444, "descriptor not supported on Iq TCP terminations")),
            }
        }
        Ok(parms)
    }

    fn add(
        &mut self,
        context: &mut Option<u32>,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Add takes one termination"));
        };
        if context == &Some(0) {
            return Err(fail(501, "no terminations in the null context on this MG"));
        }
        if self.terms.len() >= self.cfg.max_terminations {
            return Err(fail(510, "termination limit reached"));
        }
        let parms = Self::stream1(descriptors)?;
        let events = Self::events(descriptors)?;
        let mut mode = StreamMode::Inactive;
        let mut realm = 0;
        let mut latch = false;
        let mut local: Option<&SdpGroups> = None;
        let mut remote: Option<&SdpGroups> = None;
        for p in &parms {
            match p {
                StreamParm::LocalControl(lc) => {
                    if let Some(want) = self.local_control(lc, &mut mode, &mut latch)? {
                        realm = self
                            .cfg
                            .realms
                            .iter()
                            .position(|r| r.name.eq_ignore_ascii_case(&want))
                            .ok_or_else(|| fail(449, format!("unknown realm {want}")))?;
                    }
                }
                StreamParm::Local(g) => local = Some(g),
                StreamParm::Remote(g) => remote = Some(g),
                StreamParm::Statistics(_) => {}
            }
        }
        let local_media = local
            .map(tcp_media)
            .transpose()
            .map_err(|r| fail(r.code, r.reason))?
            .flatten();
        let Some(local_media) = local_media else {
            return Err(fail(441, "a TCP termination needs a Local descriptor"));
        };
        self.check_tls(&local_media)?;
        let remote_media = remote
            .map(tcp_media)
            .transpose()
            .map_err(|r| fail(r.code, r.reason))?
            .flatten();
        let ctx = match *context {
            Some(c) => c,
            None => {
                if self.contexts.len() >= self.cfg.max_contexts {
                    return Err(fail(412, "no contexts available"));
                }
                let c = self.next_context;
                self.next_context = self
                    .next_context
                    .checked_add(1)
                    .filter(|n| *n < u32::MAX - 1)
                    .unwrap_or(1);
                c
            }
        };
        if self.contexts.get(&ctx).is_some_and(|t| t.len() >= 2) {
            return Err(fail(434, "a context holds two terminations"));
        }
        let worker = self.worker_of(ctx);
        if self.per_worker.len() <= worker {
            self.per_worker.resize(worker + 1, 0);
        }
        if self.per_worker[worker] >= self.cfg.max_legs_per_worker {
            return Err(fail(
                510,
                format!("the leg table of worker {worker} is full"),
            ));
        }
        let port = self
            .alloc_port(realm, worker)
            .ok_or_else(|| fail(432, "no local port left in the realm"))?;
        let r = &self.cfg.realms[realm];
        let name: Text = if tid.is_choose() {
            let n = self.next_term;
            self.next_term += 1;
            let kind = if local_media.transport.is_datagram() {
                "udptl"
            } else {
                "tcp"
            };
            format!("{kind}/{}/{}", r.name, n).as_str().into()
        } else {
            if self.terms.contains_key(&lower(&tid.0)) {
                self.free_port(realm, port);
                return Err(fail(
                    433,
                    format!("termination {} is already in a context", tid.0),
                ));
            }
            tid.0.clone()
        };
        let key = TerminationKey {
            context: ctx,
            termination: self.next_term.wrapping_mul(2654435761) ^ port as u32,
        };
        let local_addr = SocketAddrV4::new(r.address, port);
        let reserve = if local_media.transport.is_datagram() {
            Dp::ReserveDatagram {
                key,
                local: local_addr,
            }
        } else {
            Dp::Reserve {
                key,
                local: local_addr,
            }
        };
        if !self.dataplane.submit(worker, reserve) {
            self.free_port(realm, port);
            return Err(fail(510, "data plane busy"));
        }
        *context = Some(ctx);
        let local_sdp = answer_sdp(&local_media, local_addr, None, self.our_fingerprint());
        let mut term = Term {
            name: name.clone(),
            context: ctx,
            key,
            realm,
            local: local_addr,
            worker,
            mode,
            latch,
            local_sdp,
            local_media: Some(local_media),
            remote: remote_media,
            started: false,
            stats: LegStats::default(),
            events: None,
            established_at: None,
            next_heartbeat: None,
            violation: None,
            closed_at: None,
            datagram_start: None,
        };
        self.arm(&mut term, events);
        let peers = self.contexts.entry(ctx).or_default();
        peers.push(lower(&name));
        let partner = if peers.len() == 2 {
            self.terms.get(&peers[0]).map(|t| t.key)
        } else {
            None
        };
        self.apply(&mut term)?;
        if let Some(p) = partner {
            self.dataplane
                .submit(worker, Dp::Join { a: p, b: term.key });
        }
        let reply = CommandReply::Amms {
            kind: AmmsKind::Add,
            terminations: vec![TerminationId(name.clone())],
            audit: Some(vec![Descriptor::Media(vec![MediaParm::Streams(
                StreamDescriptor {
                    id: 1,
                    parms: vec![StreamParm::Local(term.local_sdp.clone())],
                },
            )])]),
        };
        self.by_key.insert(term.key, lower(&name));
        self.terms.insert(lower(&name), term);
        self.per_worker[worker] += 1;
        Ok(vec![reply])
    }

    /// Starts the leg once its role and (for an active leg) the remote address are known, and
    /// keeps the gate in line with Mode.
    fn apply(&mut self, t: &mut Term) -> Result<(), Fail> {
        let gate = match t.mode {
            StreamMode::SendReceive => Gate::OPEN,
            StreamMode::SendOnly => Gate {
                receive: false,
                send: true,
            },
            StreamMode::ReceiveOnly => Gate {
                receive: true,
                send: false,
            },
            StreamMode::Inactive | StreamMode::Loopback => Gate::CLOSED,
        };
        self.dataplane
            .submit(t.worker, Dp::SetGate { key: t.key, gate });
        if t.local_media
            .as_ref()
            .is_some_and(|m| m.transport.is_datagram())
        {
            return self.apply_datagram(t);
        }
        if t.started {
            return Ok(());
        }
        let local_setup = t.local_media.as_ref().and_then(|m| m.setup);
        let Some(remote) = &t.remote else {
            return Ok(());
        };
        let Some(connect) = we_connect(local_setup, remote.setup) else {
            return Ok(());
        };
        let remote_ip = match &remote.address {
            Some(SdpValue::Value(a)) => a.parse::<Ipv4Addr>().ok(),
            _ => None,
        };
        let role = if connect {
            match remote_addr(remote) {
                Some(r) if r.port() != 0 => LegRole::Active { remote: r },
                _ => return Err(fail(449, "Remote needs an address and port to connect to")),
            }
        } else {
            LegRole::Passive
        };
        let accept = match (t.latch, remote_ip) {
            (false, Some(ip)) => Accept::Gate(ip),
            _ => Accept::Latch,
        };
        let tls = match (&self.cfg.tls, t.local_media.as_ref()) {
            (Some(id), Some(m)) if m.transport.is_tls() => {
                // TLS role follows the TCP role: the side that connects is the client.
                let server = match role {
                    LegRole::Active { remote } => Some(*remote.ip()),
                    LegRole::Passive => None,
                };
                Some(
                    TlsConfig::new(id, server, remote.fingerprints.clone())
                        .map_err(|e| fail(449, format!("Remote: {e}")))?,
                )
            }
            _ => None,
        };
        if !self.dataplane.submit(
            t.worker,
            Dp::Start {
                key: t.key,
                role,
                accept,
                timers: self.cfg.timers,
                tls,
                framing: iq::framing(t.local_media.as_ref().unwrap_or(remote), Some(remote)),
            },
        ) {
            return Err(fail(510, "data plane busy"));
        }
        t.started = true;
        t.local_sdp = answer_sdp(
            t.local_media.as_ref().unwrap_or(remote),
            t.local,
            Some(if connect { "active" } else { "passive" }),
            self.our_fingerprint(),
        );
        Ok(())
    }

    /// Starts a UDP leg, or starts it again when what it was started with changed: it sends
    /// to the Remote address (or latches), and a `UDP/TLS/UDPTL` leg runs DTLS with the role
    /// from `a=setup`, the UE pinned by its fingerprints and the association by `a=tls-id`.
    fn apply_datagram(&mut self, t: &mut Term) -> Result<(), Fail> {
        let Some(local) = t.local_media.as_ref() else {
            return Ok(());
        };
        let remote = t.remote.as_ref();
        let remote_addr = remote.and_then(remote_addr).filter(|r| r.port() != 0);
        let accept = match (t.latch, remote_addr) {
            (false, Some(r)) => Accept::Gate(*r.ip()),
            (true, _) => Accept::Latch,
            // Not latching and no peer yet: nothing to send to, nothing to take.
            (false, None) => return Ok(()),
        };
        let mut setup = None;
        let dtls = if local.transport.is_tls() {
            let Some(remote) = remote else {
                return Ok(());
            };
            let Some(client) = we_are_dtls_client(local.setup, remote.setup) else {
                return Ok(());
            };
            setup = Some(if client { "active" } else { "passive" });
            let id = self
                .cfg
                .tls
                .as_ref()
                .ok_or_else(|| fail(501, "DTLS at the access edge is not configured"))?;
            // The association is named by either side's tls-id (RFC 8842 4): a change on
            // either is a new one.
            let association = match (&local.tls_id, &remote.tls_id) {
                (None, None) => None,
                (l, r) => Some(format!(
                    "{}/{}",
                    l.as_deref().unwrap_or(""),
                    r.as_deref().unwrap_or("")
                )),
            };
            Some(
                DtlsConfig::new(
                    id,
                    client,
                    remote.fingerprints.clone(),
                    association.as_deref(),
                )
                .map_err(|e| fail(449, format!("Remote: {e}")))?,
            )
        } else {
            None
        };
        let start = Dp::StartDatagram {
            key: t.key,
            remote: remote_addr,
            accept,
            relatch: self.cfg.relatch,
            timers: LegTimers {
                idle: self.cfg.datagram_idle,
                ..self.cfg.timers
            },
            dtls,
        };
        if t.datagram_start.as_ref() == Some(&start) {
            return Ok(());
        }
        if !self.dataplane.submit(t.worker, start.clone()) {
            return Err(fail(510, "data plane busy"));
        }
        t.datagram_start = Some(start);
        t.started = true;
        t.local_sdp = answer_sdp(local, t.local, setup, self.our_fingerprint());
        Ok(())
    }

    /// TLS or DTLS asked for in Local: refused (501) unless this MG has a certificate that
    /// can do it.
    fn check_tls(&self, m: &TcpMedia) -> Result<(), Fail> {
        if !m.transport.is_tls() {
            return Ok(());
        }
        match &self.cfg.tls {
            None => Err(fail(
                501,
                "TLS at the access edge is not configured on this MG",
            )),
            Some(id) if m.transport.is_datagram() && id.dtls_certificate().is_none() => Err(fail(
                501,
                "the MG's certificate has no ECDSA key, which DTLS needs",
            )),
            Some(_) => Ok(()),
        }
    }

    /// The terminations a (possibly wildcarded) ID names in `context` (H.248.1 6.2: `*`
    /// matches any run of characters here; `$` cannot name existing terminations).
    fn matching(&self, context: Option<u32>, tid: &TerminationId) -> Result<Vec<Text>, Fail> {
        if tid.is_choose() {
            return Err(fail(442, "$ names no existing termination"));
        }
        if !tid.0.contains('*') {
            return Ok(vec![self.find(context, tid)?]);
        }
        let pattern = lower(&tid.0);
        let mut keys: Vec<Text> = match context {
            Some(c) => self.contexts.get(&c).cloned().unwrap_or_default(),
            None => self.terms.keys().cloned().collect(),
        }
        .into_iter()
        .filter(|k| wildcard_match(&pattern, k))
        .collect();
        keys.sort();
        if keys.is_empty() {
            return Err(fail(431, format!("no termination matches {}", tid.0)));
        }
        Ok(keys)
    }

    fn modify_matching(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Modify takes one termination ID"));
        };
        let mut replies = Vec::new();
        for key in self.matching(context, tid)? {
            let name = self.terms[&key].name.clone();
            replies.extend(self.modify(context, &[TerminationId(name)], descriptors)?);
        }
        Ok(replies)
    }

    fn audit_matching(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
    ) -> Result<Vec<CommandReply>, Fail> {
        match terminations {
            [tid] if tid.0.contains('*') => {
                let mut replies = Vec::new();
                for key in self.matching(context.filter(|c| *c != 0), tid)? {
                    let name = self.terms[&key].name.clone();
                    replies.extend(self.audit(context, &[TerminationId(name)])?);
                }
                Ok(replies)
            }
            _ => self.audit(context, terminations),
        }
    }

    /// Move (H.248.1 7.2.4): the termination leaves its context (deleted when empty) for this
    /// one, is cut through with the termination there, and takes the descriptors given.
    fn move_(
        &mut self,
        context: &mut Option<u32>,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Move takes one termination"));
        };
        if tid.0.contains(['*', '$']) {
            return Err(fail(442, "Move takes one termination, not a wildcard"));
        }
        let key = self.find(None, tid)?;
        let from = self.terms[&key].context;
        let worker = self.terms[&key].worker;
        let dest = match *context {
            Some(0) => return Err(fail(501, "no terminations in the null context on this MG")),
            Some(c) if self.worker_of(c) != worker => {
                return Err(fail(
                    501,
                    "the termination is served by another worker than that context",
                ))
            }
            Some(c) => c,
            None => {
                if self.contexts.len() >= self.cfg.max_contexts {
                    return Err(fail(412, "no contexts available"));
                }
                // A new context on the termination's own worker.
                let mut c = self.next_context;
                while self.worker_of(c) != worker || self.contexts.contains_key(&c) {
                    c = c.checked_add(1).unwrap_or(1);
                }
                self.next_context = c.checked_add(1).unwrap_or(1);
                c
            }
        };
        if dest != from {
            if self.contexts.get(&dest).is_some_and(|t| t.len() >= 2) {
                return Err(fail(434, "a context holds two terminations"));
            }
            let leg = self.terms[&key].key;
            self.dataplane.submit(worker, Dp::Split { key: leg });
            if let Some(members) = self.contexts.get_mut(&from) {
                members.retain(|m| *m != key);
                if members.is_empty() {
                    self.contexts.remove(&from);
                }
            }
            let members = self.contexts.entry(dest).or_default();
            members.push(key.clone());
            let partner = (members.len() == 2)
                .then(|| self.terms.get(&members[0]).map(|t| t.key))
                .flatten();
            if let Some(t) = self.terms.get_mut(&key) {
                t.context = dest;
            }
            if let Some(p) = partner {
                self.dataplane.submit(worker, Dp::Join { a: p, b: leg });
            }
        }
        *context = Some(dest);
        let mut replies = self.modify(Some(dest), terminations, descriptors)?;
        for r in &mut replies {
            if let CommandReply::Amms { kind, .. } = r {
                *kind = AmmsKind::Move;
            }
        }
        Ok(replies)
    }

    /// AuditCapabilities: the packages this MG implements (for ROOT or any termination).
    fn capabilities(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "AuditCapabilities takes one termination"));
        };
        if !tid.is_root() {
            self.matching(context.filter(|c| *c != 0), tid)?;
        }
        let mut packages: Vec<PackagesItem> = [
            ("g", 1),
            ("nt", 1),
            ("it", 1),
            (unconfirmed::REALM.0, 1),
            (unconfirmed::LATCH.0, 1),
            (unconfirmed::TCP_ESTABLISHED.0, 1),
            (unconfirmed::TLS_ESTABLISHED.0, 1),
            (unconfirmed::HEARTBEAT.0, 1),
            (unconfirmed::MEDIA_INACTIVITY.0, 1),
        ]
        .into_iter()
        .map(|(name, version)| PackagesItem {
            name: name.into(),
            version,
        })
        .collect();
        packages.dedup_by(|a, b| a.name == b.name);
        Ok(vec![CommandReply::Audit {
            kind: AuditKind::Capabilities,
            result: AuditResult::Terminations {
                terminations: vec![tid.clone()],
                audit: Some(vec![Descriptor::Packages(packages)]),
            },
        }])
    }

    fn find(&self, context: Option<u32>, tid: &TerminationId) -> Result<Text, Fail> {
        let key = lower(&tid.0);
        let t = self
            .terms
            .get(&key)
            .ok_or_else(|| fail(430, format!("unknown termination {}", tid.0)))?;
        if context.is_some_and(|c| c != t.context) {
            return Err(fail(
                435,
                format!("termination {} is not in this context", tid.0),
            ));
        }
        Ok(key)
    }

    fn modify(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Modify takes one termination"));
        };
        let key = self.find(context, tid)?;
        let parms = Self::stream1(descriptors)?;
        let events = Self::events(descriptors)?;
        let mut t = self.terms.remove(&key).expect("found");
        self.arm(&mut t, events);
        // Any command about the termination shows the ALG still knows it (H.248.36).
        if t.next_heartbeat.is_some() {
            t.next_heartbeat = Some(self.now + self.cfg.heartbeat.as_millis() as Millis);
        }
        let result = (|| {
            for p in &parms {
                match p {
                    StreamParm::LocalControl(lc) => {
                        // The realm of a started termination stays what Add chose.
                        self.local_control(lc, &mut t.mode, &mut t.latch)?;
                    }
                    StreamParm::Local(g) => {
                        let m = tcp_media(g).map_err(|r| fail(r.code, r.reason))?;
                        if let Some(m) = &m {
                            self.check_tls(m)?;
                            let was = t.local_media.as_ref().map(|l| l.transport.is_datagram());
                            if was.is_some_and(|d| d != m.transport.is_datagram()) {
                                return Err(fail(
                                    501,
                                    "a termination cannot change between TCP and UDP",
                                ));
                            }
                        }
                        t.local_media = m;
                    }
                    StreamParm::Remote(g) => {
                        let m = tcp_media(g).map_err(|r| fail(r.code, r.reason))?;
                        let datagram = t
                            .local_media
                            .as_ref()
                            .is_some_and(|l| l.transport.is_datagram());
                        // A UDP leg simply sends to the new peer (apply starts it again).
                        if !datagram
                            && t.started
                            && m.as_ref().is_some_and(|m| !m.existing)
                            && m != t.remote
                        {
                            return Err(fail(
                                501,
                                "changing the peer of a started connection is not supported",
                            ));
                        }
                        t.remote = m;
                    }
                    StreamParm::Statistics(_) => {}
                }
            }
            Ok(())
        })();
        let applied = result.and_then(|()| self.apply(&mut t));
        let reply_sdp = t.local_sdp.clone();
        let name = t.name.clone();
        self.terms.insert(key, t);
        applied?;
        Ok(vec![CommandReply::Amms {
            kind: AmmsKind::Modify,
            terminations: vec![TerminationId(name)],
            audit: Some(vec![Descriptor::Media(vec![MediaParm::Streams(
                StreamDescriptor {
                    id: 1,
                    parms: vec![StreamParm::Local(reply_sdp)],
                },
            )])]),
        }])
    }

    fn subtract(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
        audit: Option<&[AuditItem]>,
    ) -> Result<Vec<CommandReply>, Fail> {
        let mut keys = Vec::new();
        for tid in terminations {
            keys.extend(self.matching(context, tid)?);
        }
        if keys.is_empty() {
            return Err(fail(431, "no termination matched"));
        }
        // Statistics are returned unless the ALG sent an empty Audit (H.248.1 7.2.3).
        let with_stats = audit.is_none_or(|a| {
            a.iter().any(|i| {
                matches!(
                    i,
                    AuditItem::Token(AuditToken::Statistics) | AuditItem::Statistics(_)
                )
            })
        });
        let mut replies = Vec::new();
        for key in keys {
            let Some(t) = self.remove_term(&key) else {
                continue;
            };
            if !with_stats {
                self.app_totals.add(&t.stats.app);
            }
            if with_stats {
                // The reply waits for the worker's final count (see `completed`).
                self.collecting.push(t.key);
                self.released.insert(
                    t.key,
                    Released {
                        name: t.name.clone(),
                        stats: t.stats,
                        final_stats: t.closed_at.is_some(),
                        established_at: t.established_at,
                        closed_at: t.closed_at,
                    },
                );
            }
            replies.push(CommandReply::Amms {
                kind: AmmsKind::Subtract,
                terminations: vec![TerminationId(t.name)],
                audit: with_stats.then(|| {
                    vec![Descriptor::Statistics(statistics(
                        &t.stats,
                        t.established_at,
                        Some(self.now),
                    ))]
                }),
            });
        }
        Ok(replies)
    }

    fn audit(
        &mut self,
        context: Option<u32>,
        terminations: &[TerminationId],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "AuditValue takes one termination here"));
        };
        if tid.is_root() {
            return Ok(vec![CommandReply::Audit {
                kind: AuditKind::Value,
                result: AuditResult::Terminations {
                    terminations: vec![tid.clone()],
                    audit: None,
                },
            }]);
        }
        let key = self.find(context.filter(|c| *c != 0), tid)?;
        let t = &self.terms[&key];
        let mut parms = vec![
            StreamParm::LocalControl(vec![LocalParm::Mode(t.mode)]),
            StreamParm::Local(t.local_sdp.clone()),
        ];
        if let Some(r) = &t.remote {
            parms.push(StreamParm::Remote(answer_sdp(
                r,
                remote_addr(r).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                None,
                None,
            )));
        }
        Ok(vec![CommandReply::Audit {
            kind: AuditKind::Value,
            result: AuditResult::Terminations {
                terminations: vec![TerminationId(t.name.clone())],
                audit: Some(vec![
                    Descriptor::Media(vec![MediaParm::Streams(StreamDescriptor { id: 1, parms })]),
                    Descriptor::Statistics(statistics(&t.stats, t.established_at, Some(self.now))),
                ]),
            },
        }])
    }
}

fn remote_addr(m: &TcpMedia) -> Option<SocketAddrV4> {
    let ip = match &m.address {
        Some(SdpValue::Value(a)) => a.parse().ok()?,
        _ => return None,
    };
    let port = match &m.port {
        SdpValue::Value(p) => p.parse().ok()?,
        _ => return None,
    };
    Some(SocketAddrV4::new(ip, port))
}

/// `*` matches any run of characters (names are compared lower-case).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `nt/os`, `nt/or` (octets sent and received) and `nt/dur` (ms since established).
fn statistics(
    s: &LegStats,
    established_at: Option<Millis>,
    until: Option<Millis>,
) -> Vec<StatisticsParameter> {
    let dur = match (established_at, until) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    let mut v = vec![
        stat("nt", "os", s.octets_out),
        stat("nt", "or", s.octets_in),
        stat("nt", "dur", dur),
    ];
    match &s.app {
        AppStats::None => {}
        AppStats::Msrp { received, sent } => {
            let p = unconfirmed::MSRP_STATISTICS;
            for (dir, c) in [("r", received), ("s", sent)] {
                for (item, n) in [
                    ("chk", c.chunks),
                    ("msg", c.messages),
                    ("abt", c.aborted),
                    ("rpt", c.reports),
                    ("oth", c.other_requests),
                    ("body", c.body_octets),
                    ("r2xx", c.responses_2xx),
                    ("r4xx", c.responses_4xx),
                    ("r5xx", c.responses_5xx),
                    ("rxxx", c.responses_other),
                ] {
                    v.push(stat(p, &format!("{item}{dir}"), n));
                }
            }
        }
        AppStats::Bfcp { received, sent } => {
            let p = unconfirmed::BFCP_STATISTICS;
            for (dir, c) in [("r", received), ("s", sent)] {
                v.push(stat(p, &format!("frm{dir}"), c.frames));
                v.push(stat(p, &format!("oct{dir}"), c.octets));
                // Per primitive only where there was one, to keep replies short.
                for (i, &n) in c.primitives.iter().enumerate().filter(|(_, &n)| n > 0) {
                    v.push(stat(p, &format!("p{}{dir}", i + 1), n));
                }
            }
        }
    }
    v
}

/// Puts the final statistics into the Subtract reply of termination `name`.
fn set_subtract_stats(result: &mut ReplyResult, name: &str, stats: Vec<StatisticsParameter>) {
    let ReplyResult::Actions(actions) = result else {
        return;
    };
    for r in actions.iter_mut().flat_map(|a| a.replies.iter_mut()) {
        if let CommandReply::Amms {
            kind: AmmsKind::Subtract,
            terminations,
            audit: Some(audit),
        } = r
        {
            if terminations.first().is_some_and(|t| t.0 == name) {
                *audit = vec![Descriptor::Statistics(stats)];
                return;
            }
        }
    }
}

fn stat(pkg: &str, item: &str, v: u64) -> StatisticsParameter {
    StatisticsParameter {
        name: PkgdName {
            package: pkg.into(),
            item: item.into(),
        },
        value: Some(StatisticsValue::Single(Value::bare(&v.to_string()))),
    }
}

/// The Local SDP the MG answers with: its address and port in place of `$`.
fn answer_sdp(
    m: &TcpMedia,
    local: SocketAddrV4,
    setup: Option<&str>,
    fingerprint: Option<String>,
) -> SdpGroups {
    let proto = m.transport.token();
    let mut lines = vec![
        SdpLine::Version("0".into()),
        SdpLine::Connection {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: SdpValue::Value(local.ip().to_string().as_str().into()),
        },
        SdpLine::Media {
            media: m.media.clone(),
            port: SdpValue::Value(local.port().to_string().as_str().into()),
            proto: proto.into(),
            formats: m.formats.clone(),
        },
    ];
    if let Some(s) = setup {
        lines.push(SdpLine::Attribute {
            name: "setup".into(),
            value: Some(s.into()),
        });
    }
    if let (true, Some(f)) = (m.transport.is_tls(), fingerprint) {
        lines.push(SdpLine::Attribute {
            name: "fingerprint".into(),
            value: Some(f.as_str().into()),
        });
        if let Some(id) = &m.tls_id {
            // The ALG names the association towards the UE (TS 23.334 e2ae step 2).
            lines.push(SdpLine::Attribute {
                name: "tls-id".into(),
                value: Some(id.clone()),
            });
        }
    }
    SdpGroups(vec![SdpSession { lines }])
}

impl<D: DataPlane> Executor for Mg<D> {
    fn execute(
        &mut self,
        peer: SocketAddr,
        version: u8,
        request: &TransactionRequest,
    ) -> Option<ReplyResult> {
        self.collecting.clear();
        let result = ReplyResult::Actions(request.actions.iter().map(|a| self.action(a)).collect());
        if self.collecting.is_empty() {
            return Some(result);
        }
        self.deferred.push(Deferred {
            peer,
            tid: request.id,
            version,
            result,
            waiting: std::mem::take(&mut self.collecting),
            deadline: self.now + self.cfg.stats_wait.as_millis() as Millis,
        });
        None
    }
}
