//! The MG model for the Iq TCP and T.38 media: contexts and terminations with MG-chosen IDs,
//! the H.248 commands, realm port pools, and the mapping of each decision onto data-plane
//! `Command`s. Descriptors replace what was there (H.248.1 7.1.8: no merging).
//!
//! Its parts, one job each:
//! - [`registry`]: contexts and terminations, by name and by data-plane key;
//! - [`ports`]: the local ports of each realm, per worker;
//! - `command`: H.248 command semantics, each command planned in full before its first side
//!   effect, so a failing command leaves nothing behind;
//! - `leg`: what a termination's SDP, mode and latching mean for its leg (role, gate, TLS or
//!   DTLS configuration) and the worker commands that get it there;
//! - `answer`: the Local SDP the MG answers with;
//! - `events`: data-plane events into Notify for the events the ALG armed (with the
//!   heartbeat and `it/ito`);
//! - `deferred`: Subtract replies that wait for the worker's final statistics;
//! - `stats`: the statistics descriptors and the totals for status.
//!
//! Worker commands go through [`DataPlane`], and the workers' events come back through it
//! ([`DataPlane::next_event`] into [`Mg::on_event`]).

mod answer;
mod command;
mod deferred;
mod descriptors;
mod events;
mod leg;
pub mod ports;
pub mod registry;
mod stats;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dataplane::contract::{Command as Dp, Event, LegStats, LegTimers, TerminationKey};
use dataplane::tls::{HashAlg, Identity};
use h248::ast::*;

use crate::dispatch::Executor;
use crate::iq::Tokens;
use crate::transaction::Millis;

pub use events::Notification;
pub use ports::PoolStatus;
pub use stats::{AppTotals, TlsCounts};

/// A command's failure: the H.248 error it is answered with.
pub(crate) type Fail = ErrorDescriptor;

pub(crate) fn fail(code: u16, text: impl Into<String>) -> Fail {
    ErrorDescriptor {
        code,
        text: Some(text.into().as_str().into()),
    }
}

/// The workers as the MG sees them: a bounded command ring each, and their events.
pub trait DataPlane {
    /// Commands worker `worker`'s ring takes now. The control thread is the rings' only
    /// producer, so this much room stays until it submits.
    fn room(&self, worker: usize) -> usize;
    /// Queues a command for worker `worker`; false if its ring is full (never after `room`
    /// said there was room).
    fn submit(&mut self, worker: usize, cmd: Dp) -> bool;
    /// The next event a worker reported, with its worker.
    fn next_event(&mut self) -> Option<(usize, Event)>;
}

#[derive(Debug, Clone)]
pub struct Realm {
    pub name: Text,
    /// The realm's local addresses: each gives the realm its port range again, so a realm
    /// can hold more legs than one address has ports.
    pub addresses: Vec<IpAddr>,
    pub first_port: u16,
    pub last_port: u16,
    /// DSCP and policing defaults, and the rates the ALG may ask for.
    pub policy: crate::iq::RealmPolicy,
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
    /// The names of the Iq elements no public source confirms (`[h248.tokens]`).
    pub tokens: Tokens,
    /// How local ports are chosen (unpredictable unless a test seeds it).
    pub port_order: ports::PortOrder,
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
            tokens: Tokens::default(),
            port_order: ports::PortOrder::Random,
        }
    }

    fn workers(&self) -> usize {
        self.workers.max(1)
    }

    /// The worker of a context.
    fn worker_of(&self, context: u32) -> usize {
        context as usize % self.workers()
    }
}

pub struct Mg<D: DataPlane> {
    cfg: MgConfig,
    dataplane: D,
    registry: registry::Registry,
    ports: ports::PortPools,
    now: Millis,
    events: events::EventState,
    deferred: deferred::DeferredReplies,
    app_totals: AppTotals,
    tls: TlsCounts,
    /// Commands a worker refused (the H.248 side had already answered).
    worker_rejections: u64,
    /// Commands executed, by command and result (0: success, else the H.248 error code).
    command_counts: std::collections::BTreeMap<(&'static str, u16), u64>,
    /// Per realm: whether its network is reachable (`ipra`).
    realm_up: Vec<bool>,
}

impl<D: DataPlane> Mg<D> {
    pub fn new(cfg: MgConfig, dataplane: D) -> Self {
        let ports = ports::PortPools::new(&cfg.realms, cfg.workers(), cfg.port_order);
        let cfg_realms = cfg.realms.len();
        Mg {
            registry: registry::Registry::new(cfg.workers()),
            ports,
            cfg,
            dataplane,
            now: 0,
            events: events::EventState::default(),
            deferred: deferred::DeferredReplies::default(),
            app_totals: AppTotals::default(),
            tls: TlsCounts::default(),
            worker_rejections: 0,
            command_counts: Default::default(),
            realm_up: vec![true; cfg_realms],
        }
    }

    pub fn dataplane(&self) -> &D {
        &self.dataplane
    }

    pub fn dataplane_mut(&mut self) -> &mut D {
        &mut self.dataplane
    }

    pub fn tokens(&self) -> &Tokens {
        &self.cfg.tokens
    }

    /// The MGC's inactivity timer (`it/ito` on ROOT), if armed: request ID and limit in ms.
    pub fn inactivity(&self) -> Option<(u32, Millis)> {
        self.events.root.inactivity
    }

    /// New certificate for handshakes from now on (SIGHUP); sessions up keep theirs.
    pub fn set_identity(&mut self, identity: Option<Identity>) {
        self.cfg.tls = identity;
    }

    /// The control thread's clock, set before each round.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now;
    }

    pub fn contexts(&self) -> usize {
        self.registry.contexts()
    }

    pub fn terminations(&self) -> usize {
        self.registry.len()
    }

    pub fn tls_counts(&self) -> TlsCounts {
        self.tls
    }

    pub fn worker_rejections(&self) -> u64 {
        self.worker_rejections
    }

    /// Port-pool occupancy of every realm.
    pub fn pools(&self) -> Vec<PoolStatus> {
        self.ports.status(&self.cfg.realms)
    }

    /// Every live termination's name, context, data-plane key, worker and local address.
    pub fn termination_list(
        &self,
    ) -> impl Iterator<Item = (&str, u32, TerminationKey, usize, SocketAddr)> + '_ {
        self.registry
            .iter()
            .map(|t| (t.name.as_str(), t.context, t.key, t.worker, t.local))
    }

    /// The worker and local port of a termination, by name.
    pub fn termination_port(&self, name: &str) -> Option<(usize, u16)> {
        self.registry.get(name).map(|t| (t.worker, t.local.port()))
    }

    /// The worker that owns a local port (the hand-off key).
    pub fn port_owner(&self, port: u16) -> usize {
        port as usize % self.cfg.workers()
    }

    /// MSRP and BFCP counts of every termination, gone or live (terminations count once
    /// they have carried something).
    pub fn app_totals(&self) -> AppTotals {
        let mut totals = self.app_totals;
        for t in self.registry.iter() {
            if let Some(s) = &t.stats {
                totals.add(&s.app);
            }
        }
        totals
    }

    /// Statistics reported by the data plane, kept for Subtract replies and audits.
    pub fn update_stats(&mut self, key: TerminationKey, stats: LegStats) {
        if let Some(t) = self.registry.by_key_mut(key) {
            t.set_stats(stats);
        }
    }

    /// Releases every termination (shutdown); returns how many there were. Commands that do
    /// not fit the rings now are dropped: the workers release every leg when they stop.
    pub fn release_all(&mut self) -> usize {
        let terms = self.registry.drain();
        let n = terms.len();
        for t in terms {
            self.dataplane.submit(t.worker, Dp::Release { key: t.key });
            self.ports.give_back(t.realm, t.local, self.now);
        }
        n
    }

    /// The ALG answered a heartbeat Notify with 411/430/435: it does not know the
    /// termination, which is hanging (H.248.36); release it.
    pub fn release_hanging(&mut self, name: &str) {
        let Some(t) = self.registry.get(name) else {
            return;
        };
        if self.dataplane.room(t.worker) == 0 {
            tracing::warn!(termination = %t.name, "hanging termination kept: command ring full");
            return;
        }
        if let Some(t) = self.remove_term(name) {
            tracing::warn!(termination = %t.name, "hanging termination released");
            self.app_totals.add(&t.stats().app);
        }
    }

    /// Takes a termination out of the MG and releases its leg: its name, key, port, context
    /// membership (an empty context goes). The caller has made sure the ring has room.
    fn remove_term(&mut self, name: &str) -> Option<registry::Term> {
        let t = self.registry.remove(name)?;
        let queued = self.dataplane.submit(t.worker, Dp::Release { key: t.key });
        debug_assert!(queued, "room was checked");
        self.ports.give_back(t.realm, t.local, self.now);
        Some(t)
    }

    /// Our fingerprint for Local descriptors, when TLS is configured.
    fn our_fingerprint(&self) -> Option<String> {
        self.cfg
            .tls
            .as_ref()
            .map(|id| id.fingerprint(self.cfg.fingerprint_hash).to_string())
    }
}

impl<D: DataPlane> Executor for Mg<D> {
    fn execute(
        &mut self,
        peer: SocketAddr,
        version: u8,
        request: &TransactionRequest,
    ) -> Option<ReplyResult> {
        let result = ReplyResult::Actions(self.transaction(request));
        let waiting = self.deferred.take_collected();
        if waiting.is_empty() {
            return Some(result);
        }
        let deadline = self.now + self.cfg.stats_wait.as_millis() as Millis;
        self.deferred
            .defer(peer, request.id, version, result, waiting, deadline);
        None
    }
}
