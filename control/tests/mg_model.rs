//! The MG against a reference model. Seeded random sequences of H.248 transactions — Add,
//! Modify, Move, Subtract, AuditValue and AuditCapabilities with valid and invalid SDP,
//! missing and malformed fingerprints, unknown realms and contexts, `$` and `*` IDs, optional
//! commands, several commands per transaction, retransmissions, the limits and the port pools
//! run dry, worker refusals and connect failures, the MGC lost and registering again — go
//! through the dispatcher into the MG. After every step the MG's registry, every realm's port
//! pool and the worker's leg table must agree with a small model of contexts, terminations
//! and ports kept from the replies; a failing command must have sent nothing to the worker;
//! and a final `Context = * { Subtract = * }` must leave everything empty.
//!
//! The same sequences run once through a real worker on the in-memory link, whose leg table
//! shows every leg a command leaves behind.
//!
//! Seeded and reproducible: `IMSAGW_MODEL_SEED=S` replays one seed, `IMSAGW_MODEL_STEPS=N`
//! sets the steps per seed (the full run: 1 000 000), `IMSAGW_MODEL_SEEDS=K` the seeds. A
//! failure prints its seed and step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};

use control::dispatch::Dispatcher;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{
    Command as Dp, ConnectFailure, Event, LegRole, LegStats, Rejection, ReleaseCause,
    TerminationKey,
};
use dataplane::tls::Identity;
use h248::ast::*;
use h248::sdp::{SdpGroups, SdpLine, SdpValue};
use testbed::rng::SplitMix64;

const ACCESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CORE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
/// Six ports a realm: the pools run dry within a few Adds.
const PORTS: u16 = 6;
const MAX_CONTEXTS: usize = 5;
const MAX_TERMINATIONS: usize = 8;
const MAX_PER_WORKER: usize = 7;

/// Seeds the test command runs, and found by earlier runs (each replayed in full).
const REGRESSION_SEEDS: &[u64] = &[1, 2, 3];

fn alg() -> SocketAddr {
    "198.51.100.1:2944".parse().unwrap()
}

fn config(identity: &Identity) -> MgConfig {
    let mut cfg = MgConfig::new(vec![
        Realm {
            name: "access".into(),
            addresses: vec![ACCESS.into()],
            first_port: 41000,
            last_port: 41000 + PORTS - 1,
            policy: Default::default(),
        },
        Realm {
            name: "core".into(),
            addresses: vec![CORE.into()],
            first_port: 42000,
            last_port: 42000 + PORTS - 1,
            policy: Default::default(),
        },
    ]);
    cfg.max_contexts = MAX_CONTEXTS;
    cfg.max_terminations = MAX_TERMINATIONS;
    cfg.max_legs_per_worker = MAX_PER_WORKER;
    cfg.tls = Some(identity.clone());
    cfg
}

// ---- the worker as a double: a leg table, refusals and connect failures on demand ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct DoubleLeg {
    local: SocketAddr,
}

#[derive(Default)]
struct Legs {
    live: BTreeMap<TerminationKey, DoubleLeg>,
    events: VecDeque<(usize, Event)>,
    /// The next reservations are refused (the leg table is full).
    refuse: u32,
    /// Active starts fail to connect.
    connect_fails: bool,
    /// The command ring takes nothing.
    full: bool,
    submitted: u64,
    /// Reservations refused: the termination exists in the MG, its leg does not.
    refused: BTreeSet<TerminationKey>,
    /// What a correct MG never does, found on the way.
    faults: Vec<String>,
}

impl Legs {
    fn unknown(&mut self, key: TerminationKey) {
        self.events.push_back((
            0,
            Event::Rejected {
                key,
                reason: Rejection::UnknownTermination,
            },
        ));
    }
}

impl DataPlane for Legs {
    fn room(&self, _worker: usize) -> usize {
        if self.full {
            0
        } else {
            usize::MAX
        }
    }

    fn submit(&mut self, _worker: usize, cmd: Dp) -> bool {
        if self.full {
            self.faults
                .push(format!("submitted to a full ring: {cmd:?}"));
            return false;
        }
        self.submitted += 1;
        match cmd {
            Dp::Reserve { key, local } | Dp::ReserveDatagram { key, local } => {
                if self.refuse > 0 {
                    self.refuse -= 1;
                    self.refused.insert(key);
                    self.events.push_back((
                        0,
                        Event::Rejected {
                            key,
                            reason: Rejection::LegTableFull,
                        },
                    ));
                } else if self.live.contains_key(&key) {
                    self.faults.push(format!("key {key:?} reserved twice"));
                } else if self.live.values().any(|l| l.local == local) {
                    self.faults.push(format!("{local} reserved twice"));
                } else {
                    self.live.insert(key, DoubleLeg { local });
                }
            }
            Dp::Start { key, role, .. } => {
                if !self.live.contains_key(&key) {
                    return {
                        self.unknown(key);
                        true
                    };
                }
                if self.connect_fails && matches!(role, LegRole::Active { .. }) {
                    self.events.push_back((
                        0,
                        Event::ConnectFailed {
                            key,
                            failure: ConnectFailure::Refused,
                        },
                    ));
                }
            }
            Dp::StartDatagram { key, .. }
            | Dp::SetGate { key, .. }
            | Dp::SetPolicy { key, .. }
            | Dp::Split { key }
            | Dp::Audit { key } => {
                if !self.live.contains_key(&key) {
                    self.unknown(key);
                }
            }
            Dp::Join { a, b } => {
                for k in [a, b] {
                    if !self.live.contains_key(&k) {
                        self.unknown(k);
                    }
                }
            }
            Dp::Release { key } => match self.live.remove(&key) {
                Some(_) => self.events.push_back((
                    0,
                    Event::Closed {
                        key,
                        cause: ReleaseCause::Released,
                        stats: LegStats::default(),
                    },
                )),
                None => self.unknown(key),
            },
            Dp::Capture { .. } => {}
        }
        true
    }

    fn next_event(&mut self) -> Option<(usize, Event)> {
        self.events.pop_front()
    }
}

// ---- the model ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelTerm {
    context: u32,
    realm: usize,
    port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    /// Lower-case name -> termination.
    terms: BTreeMap<String, ModelTerm>,
}

impl Model {
    fn contexts(&self) -> BTreeMap<u32, Vec<String>> {
        let mut c: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (n, t) in &self.terms {
            c.entry(t.context).or_default().push(n.clone());
        }
        c
    }

    fn in_realm(&self, realm: usize) -> usize {
        self.terms.values().filter(|t| t.realm == realm).count()
    }

    /// Applies what a reply says was done.
    fn apply(&mut self, reply: &ReplyResult) {
        let ReplyResult::Actions(actions) = reply else {
            return;
        };
        for a in actions {
            let ctx = match a.context {
                ContextId::Id(c) => Some(c),
                _ => None,
            };
            for r in &a.replies {
                let CommandReply::Amms {
                    kind,
                    terminations,
                    audit,
                } = r
                else {
                    continue;
                };
                let failed = audit
                    .iter()
                    .flatten()
                    .any(|d| matches!(d, Descriptor::Error(_)));
                if failed {
                    continue;
                }
                let name = terminations[0].0.to_ascii_lowercase().to_string();
                match kind {
                    AmmsKind::Add => {
                        let (address, port) = local_of(audit).expect("an Add reply has Local");
                        let realm = if address == ACCESS { 0 } else { 1 };
                        self.terms.insert(
                            name,
                            ModelTerm {
                                context: ctx.expect("an Add reply names its context"),
                                realm,
                                port,
                            },
                        );
                    }
                    AmmsKind::Move => {
                        if let Some(t) = self.terms.get_mut(&name) {
                            t.context = ctx.expect("a Move reply names its context");
                        }
                    }
                    AmmsKind::Subtract if name == "*" => {
                        // W-: one reply for everything `*` matched in the action's context
                        // (every context for `*` or a context not chosen yet).
                        self.terms
                            .retain(|_, t| ctx.is_some_and(|c| c != t.context));
                    }
                    AmmsKind::Subtract => {
                        self.terms.remove(&name);
                    }
                    AmmsKind::Modify => {}
                }
            }
        }
    }
}

/// The address and port of the Local SDP in a reply's audit.
fn local_of(audit: &Option<Vec<Descriptor>>) -> Option<(Ipv4Addr, u16)> {
    for d in audit.iter().flatten() {
        let Descriptor::Media(ms) = d else { continue };
        for m in ms {
            let MediaParm::Streams(s) = m else { continue };
            for p in &s.parms {
                if let StreamParm::Local(g) = p {
                    return sdp_addr(g);
                }
            }
        }
    }
    None
}

fn sdp_addr(g: &SdpGroups) -> Option<(Ipv4Addr, u16)> {
    let s = g.first()?;
    let (_, addr) = s.connection()?;
    let SdpValue::Value(a) = addr else {
        return None;
    };
    let port = s.lines.iter().find_map(|l| match l {
        SdpLine::Media {
            port: SdpValue::Value(p),
            ..
        } => p.parse().ok(),
        _ => None,
    })?;
    Some((a.parse().ok()?, port))
}

// ---- the sequences ----

#[path = "mg_model/gen.rs"]
mod gen;
use gen::Gen;

// ---- the run ----

/// The worker behind the MG, as the checks see it.
trait Workers: DataPlane {
    /// Live legs by key, with their local address.
    fn legs(&self) -> BTreeMap<TerminationKey, SocketAddr>;
    /// Reservations it refused.
    fn refused(&self) -> &BTreeSet<TerminationKey>;
    fn submitted(&self) -> u64;
    fn faults(&self) -> &[String];
    /// Inject trouble (refusals, connect failures, a full ring) where the double can.
    fn trouble(&mut self, _rng: &mut SplitMix64) {}
    /// Ends the trouble.
    fn calm(&mut self) {}
    /// Lets time pass (a real worker runs its poll loop).
    fn run(&mut self, _now_ms: u64) {}
}

impl Workers for Legs {
    fn legs(&self) -> BTreeMap<TerminationKey, SocketAddr> {
        self.live.iter().map(|(k, l)| (*k, l.local)).collect()
    }
    fn refused(&self) -> &BTreeSet<TerminationKey> {
        &self.refused
    }
    fn submitted(&self) -> u64 {
        self.submitted
    }
    fn faults(&self) -> &[String] {
        &self.faults
    }
    fn trouble(&mut self, rng: &mut SplitMix64) {
        match rng.below(100) {
            0 => self.refuse = 1 + rng.below(2) as u32,
            1 => self.connect_fails = !self.connect_fails,
            2 => self.full = true,
            _ => self.full = false,
        }
    }
    fn calm(&mut self) {
        self.full = false;
        self.refuse = 0;
    }
}

struct Run<W: Workers> {
    d: Dispatcher<Mg<W>>,
    model: Model,
    gen: Gen,
    now: u64,
    registered: bool,
    last: Option<(String, Vec<String>)>,
    seed: u64,
    step: u64,
    /// What the run went through: reply codes (0 for success) and the most terminations.
    codes: BTreeMap<u16, u64>,
    most: usize,
}

impl<W: Workers> Run<W> {
    fn new(seed: u64, workers: W, identity: &Identity) -> Self {
        let mut cfg = config(identity);
        // Ports are random in production; seeded here so that a seed replays a run exactly.
        cfg.port_order = control::mg::ports::PortOrder::Seeded(seed);
        let d = Dispatcher::new(
            Mg::new(cfg, workers),
            ReplyCache::new(TransactionTimers::default(), 100_000),
            MId::Ip4 {
                addr: [198, 51, 100, 2],
                port: Some(2944),
            },
            3,
            vec![alg().ip()],
        );
        Run {
            d,
            model: Model::default(),
            gen: Gen {
                rng: SplitMix64::new(seed),
                tid: 0,
            },
            now: 0,
            registered: true,
            last: None,
            seed,
            step: 0,
            codes: BTreeMap::new(),
            most: 0,
        }
    }

    fn summary(&self) -> String {
        format!(
            "seed {}: {} steps, reply codes {:?}, at most {} terminations, {} reservations refused by the worker",
            self.seed,
            self.step + 1,
            self.codes,
            self.most,
            self.d.executor().dataplane().refused().len()
        )
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} step {}: {what}\nlast transaction and replies: {:?}\n(replay: IMSAGW_MODEL_SEED={} IMSAGW_MODEL_STEPS={})",
            self.seed,
            self.step,
            self.last,
            self.seed,
            self.step + 1
        )
    }

    /// Sends a request; returns every reply it got (deferred ones included).
    fn send(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.d.datagram(
            alg(),
            text.as_bytes(),
            self.now,
            |_, b| out.push(String::from_utf8(b.to_vec()).unwrap()),
            |_| {},
        );
        self.settle(&mut out);
        out
    }

    /// Events to the MG, deferred replies out.
    fn settle(&mut self, out: &mut Vec<String>) {
        self.d.executor_mut().dataplane_mut().run(self.now);
        self.d.executor_mut().set_now(self.now);
        while let Some((_, ev)) = self.d.executor_mut().dataplane_mut().next_event() {
            self.d.executor_mut().on_event(&ev);
        }
        let done = self.d.executor_mut().completed();
        for (peer, tid, version, result) in done {
            self.d
                .complete(peer, tid, version, result, self.now, |_, b| {
                    out.push(String::from_utf8(b.to_vec()).unwrap())
                });
        }
        let _ = self.d.executor_mut().notifications().count();
    }

    fn step(&mut self) {
        self.now += 5;
        self.d.executor_mut().set_now(self.now);
        let r = self.gen.rng.below(1000);
        if self.registered && r < 3 || !self.registered && r < 150 {
            // The MGC goes away for a few steps: every request meanwhile is refused and
            // changes nothing; then it registers us again.
            self.registered = !self.registered;
            self.d.set_registered(self.registered);
            self.last = None;
            if self.registered {
                // A (re)started MGC numbers its transactions afresh.
                self.d.cache().clear();
            }
            return;
        }
        if r < 40 {
            let mut rng = SplitMix64::new(self.seed ^ self.step);
            self.d.executor_mut().dataplane_mut().trouble(&mut rng);
            return;
        }
        if r < 80 {
            if let Some((text, replies)) = self.last.clone() {
                // A retransmission: the same answer, nothing executed again.
                let before = self.snapshot();
                let again = self.send(&text);
                if !replies.is_empty() && again.first() != replies.last() {
                    self.fail(&format!(
                        "retransmission answered {again:?}, first time {replies:?}"
                    ));
                }
                if self.snapshot() != before {
                    self.fail("a retransmission changed the MG");
                }
                return;
            }
        }
        let text = self.gen.transaction(&self.model);
        let before = self.snapshot();
        let submitted = self.d.executor().dataplane().submitted();
        let replies = self.send(&text);
        for reply in &replies {
            let m = h248::decode(reply.as_bytes())
                .unwrap_or_else(|e| self.fail(&format!("reply does not decode: {e}\n{reply}")));
            let MessageBody::Transactions(ts) = m.body else {
                self.fail(&format!("message error: {reply}"))
            };
            for t in ts {
                match t {
                    Transaction::Reply(r) => {
                        self.count(&r.result);
                        self.check_reply(&text, &r.result, &before);
                        self.model.apply(&r.result);
                        let all_failed = matches!(&r.result, ReplyResult::Error(_))
                            || matches!(&r.result, ReplyResult::Actions(a)
                                if a.iter().all(|a| a.replies.is_empty() && a.error.is_some()));
                        if all_failed
                            && self.d.executor().dataplane().submitted() != submitted
                            && !text.contains("O-")
                        {
                            self.fail(&format!(
                                "a failing transaction sent commands to the worker\n{text}\n{reply}"
                            ));
                        }
                    }
                    Transaction::Pending(_) => {}
                    other => self.fail(&format!("unexpected {other:?}")),
                }
            }
        }
        self.last = Some((text, replies));
        self.most = self.most.max(self.model.terms.len());
        self.check();
    }

    fn count(&mut self, result: &ReplyResult) {
        let mut codes = Vec::new();
        match result {
            ReplyResult::Error(e) => codes.push(e.code),
            ReplyResult::Actions(actions) => {
                for a in actions {
                    for r in &a.replies {
                        let failed = match r {
                            CommandReply::Amms { audit, .. } => {
                                audit.iter().flatten().find_map(|d| match d {
                                    Descriptor::Error(e) => Some(e.code),
                                    _ => None,
                                })
                            }
                            _ => None,
                        };
                        codes.push(failed.unwrap_or(0));
                    }
                    if let Some(e) = &a.error {
                        codes.push(e.code);
                    }
                }
            }
        }
        for c in codes {
            *self.codes.entry(c).or_insert(0) += 1;
        }
    }

    /// Commands the model can say must fail did fail.
    fn check_reply(&self, text: &str, result: &ReplyResult, before: &Snapshot) {
        let ReplyResult::Actions(actions) = result else {
            return;
        };
        for a in actions {
            for r in &a.replies {
                if let CommandReply::Amms {
                    kind: AmmsKind::Add,
                    audit,
                    ..
                } = r
                {
                    let ok = !audit
                        .iter()
                        .flatten()
                        .any(|d| matches!(d, Descriptor::Error(_)));
                    if ok
                        && before.terms.len() >= MAX_TERMINATIONS
                        && text.matches("A=").count() == 1
                        && !text.contains("S=")
                    {
                        self.fail(&format!(
                            "an Add beyond the termination limit succeeded\n{text}"
                        ));
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mg = self.d.executor();
        Snapshot {
            terms: mg
                .termination_list()
                .map(|(n, c, k, _, l)| (n.to_ascii_lowercase(), (c, k, l)))
                .collect(),
            contexts: mg.contexts(),
            pools: mg.pools().iter().map(|p| p.in_use).collect(),
            legs: mg.dataplane().legs(),
        }
    }

    /// The MG, its pools and the worker against the model.
    fn check(&self) {
        let s = self.snapshot();
        let mg: BTreeMap<String, (u32, u16)> = s
            .terms
            .iter()
            .map(|(n, (c, _, l))| (n.clone(), (*c, l.port())))
            .collect();
        let model: BTreeMap<String, (u32, u16)> = self
            .model
            .terms
            .iter()
            .map(|(n, t)| (n.clone(), (t.context, t.port)))
            .collect();
        if mg != model {
            self.fail(&format!("registry {mg:?}\nmodel {model:?}"));
        }
        let contexts = self.model.contexts();
        if s.contexts != contexts.len() {
            self.fail(&format!(
                "{} contexts in the MG, {} in the model",
                s.contexts,
                contexts.len()
            ));
        }
        if let Some((c, m)) = contexts.iter().find(|(_, m)| m.len() > 2) {
            self.fail(&format!("context {c} holds {m:?}"));
        }
        for (realm, in_use) in s.pools.iter().enumerate() {
            if *in_use != self.model.in_realm(realm) {
                self.fail(&format!(
                    "realm {realm}: {in_use} ports in use, the model has {}",
                    self.model.in_realm(realm)
                ));
            }
        }
        // Every termination has its leg (unless the worker refused it), at its address, and
        // the worker has no leg of its own.
        let refused = self.d.executor().dataplane().refused();
        let expected: BTreeMap<TerminationKey, SocketAddr> = s
            .terms
            .values()
            .filter(|(_, k, _)| !refused.contains(k))
            .map(|(_, k, l)| (*k, *l))
            .collect();
        if s.legs != expected {
            self.fail(&format!("worker legs {:?}\nexpected {expected:?}", s.legs));
        }
        if let Some(f) = self.d.executor().dataplane().faults().first() {
            self.fail(f);
        }
    }

    /// `Context = * { Subtract = * }` (what an ALG sends after its own restart) empties it.
    fn clear_all(&mut self) {
        self.d.set_registered(true);
        self.now += 5;
        self.d.executor_mut().dataplane_mut().calm();
        let empty = self.model.terms.is_empty();
        let replies = self.send("!/3 [198.51.100.1]:2944 T=4000000000{C=*{S=*{AT{}}}}");
        // Nothing to subtract is 431 (no termination matched the wildcard).
        let refused = replies
            .iter()
            .any(|r| r.contains("ER=") && !(empty && r.contains("ER=431")));
        if refused {
            self.fail(&format!("Subtract of everything refused: {replies:?}"));
        }
        let s = self.snapshot();
        if !s.terms.is_empty() || s.contexts != 0 || s.pools.iter().any(|n| *n != 0) {
            self.fail(&format!("not empty after Subtract of everything: {s:?}"));
        }
        if !s.legs.is_empty() {
            self.fail(&format!(
                "legs left after Subtract of everything: {:?}",
                s.legs
            ));
        }
    }
}

/// A real worker on the in-memory link behind real rings: every leg a command leaves
/// behind is in its table.
struct Real {
    rings: control::plane::Rings,
    worker: dataplane::worker::Worker<testbed::memlink::MemPort>,
    clock: dataplane::clock::VirtualClock,
    /// The other end of the link: nobody answers there.
    _far: testbed::memlink::MemPort,
    pending: VecDeque<(usize, Event)>,
    refused: BTreeSet<TerminationKey>,
    submitted: u64,
    faults: Vec<String>,
}

impl Real {
    fn new() -> Real {
        use dataplane::clock::{Clock, VirtualClock};
        use testbed::memlink::{MemLink, MemLinkConfig};
        let clock = VirtualClock::new();
        let (pa, pb) = MemLink::pair(MemLinkConfig::default(), clock.clone());
        let (control, end) = dataplane::contract::rings(64);
        let cfg = dataplane::worker::WorkerConfig {
            addresses: vec![
                (smoltcp::wire::Ipv4Cidr::new(ACCESS, 24)).into(),
                (smoltcp::wire::Ipv4Cidr::new(CORE, 24)).into(),
            ],
            // One fewer than the MG allows: the worker refuses some reservations itself.
            max_legs: MAX_PER_WORKER - 1,
            ..Default::default()
        };
        let worker = dataplane::worker::Worker::new(pa, cfg, end, clock.now());
        Real {
            rings: control::plane::Rings::new(vec![control]),
            worker,
            clock,
            _far: pb,
            pending: VecDeque::new(),
            refused: BTreeSet::new(),
            submitted: 0,
            faults: Vec::new(),
        }
    }
}

impl DataPlane for Real {
    fn room(&self, worker: usize) -> usize {
        self.rings.room(worker)
    }
    fn submit(&mut self, worker: usize, cmd: Dp) -> bool {
        self.submitted += 1;
        self.rings.submit(worker, cmd)
    }
    fn next_event(&mut self) -> Option<(usize, Event)> {
        self.pending.pop_front()
    }
}

impl Workers for Real {
    fn legs(&self) -> BTreeMap<TerminationKey, SocketAddr> {
        self.worker.leg_keys().into_iter().collect()
    }
    fn refused(&self) -> &BTreeSet<TerminationKey> {
        &self.refused
    }
    fn submitted(&self) -> u64 {
        self.submitted
    }
    fn faults(&self) -> &[String] {
        &self.faults
    }
    fn run(&mut self, now_ms: u64) {
        use dataplane::clock::Clock;
        let target = smoltcp::time::Instant::from_millis(now_ms as i64);
        self.clock.advance_to(target);
        for _ in 0..64 {
            if !self.worker.poll(self.clock.now()) {
                break;
            }
        }
        while let Some((w, ev)) = self.rings.next_event() {
            if let Event::Rejected {
                key,
                reason: Rejection::LegTableFull | Rejection::AddressInUse,
            } = ev
            {
                self.refused.insert(key);
            }
            self.pending.push_back((w, ev));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    terms: BTreeMap<String, (u32, TerminationKey, SocketAddr)>,
    contexts: usize,
    pools: Vec<usize>,
    legs: BTreeMap<TerminationKey, SocketAddr>,
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn seeds() -> Vec<u64> {
    if let Some(s) = env("IMSAGW_MODEL_SEED") {
        return vec![s];
    }
    let extra = env("IMSAGW_MODEL_SEEDS").unwrap_or(4);
    let mut seeds = REGRESSION_SEEDS.to_vec();
    seeds.extend((0..extra).map(|i| 0x5eed_0000 + i));
    seeds
}

/// The same sequences through a real worker: a quarter of the steps per seed.
#[test]
fn a_real_worker_holds_exactly_the_legs_of_the_model() {
    let identity = Identity::generate("agw").unwrap();
    let steps = env("IMSAGW_MODEL_STEPS").unwrap_or(5_000) / 4;
    for seed in seeds() {
        let mut run = Run::new(seed, Real::new(), &identity);
        for step in 0..steps {
            run.step = step;
            run.step();
        }
        run.clear_all();
        run.d.executor_mut().dataplane_mut().run(run.now + 10_000);
        if run.d.executor().dataplane().worker.legs() != 0 {
            run.fail("legs left in the worker after every leg was released and drained");
        }
        eprintln!("real worker: {}", run.summary());
    }
}

#[test]
fn the_mg_agrees_with_the_model_after_every_step() {
    let identity = Identity::generate("agw").unwrap();
    let steps = env("IMSAGW_MODEL_STEPS").unwrap_or(5_000);
    for seed in seeds() {
        let mut run = Run::new(seed, Legs::default(), &identity);
        for step in 0..steps {
            run.step = step;
            run.step();
        }
        run.clear_all();
        eprintln!("{}", run.summary());
    }
}
