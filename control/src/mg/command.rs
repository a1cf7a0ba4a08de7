//! H.248 command semantics (H.248.1 7.2): Add, Modify, Move, Subtract, AuditValue and
//! AuditCapabilities on the Iq terminations, and the rules of a transaction around them.
//!
//! Every command is all-or-nothing. It is planned in full first — descriptors, SDP, realm,
//! limits, ports, fingerprints and TLS configuration, every termination a wildcard matches,
//! and room in the workers' command rings for everything it will send — and only then
//! committed, in a step that cannot fail. A command that fails has changed nothing: no port
//! taken, no leg reserved or started in a worker, no context created, no termination changed.
//!
//! Around a failing command (H.248.1 8.2.2, as in RFC 3525 8.2.2):
//! - the commands of a transaction are executed in order, each seeing what the ones before it
//!   did; those before a failure keep their effect and their replies;
//! - a failing command ends the transaction: its action's reply carries the error, and no
//!   later command of the action, and no later action, is executed or answered;
//! - a failing optional command (`O-`) does not: its reply carries the error and the next
//!   command is executed;
//! - a command whose context cannot be found (411) fails its action before any command.

use std::collections::BTreeMap;

use dataplane::contract::{Command as Dp, TerminationKey};
use h248::ast::*;

use super::answer::{answer_sdp, remote_addr, unspecified};
use super::deferred::Released;
use super::descriptors::{
    is_datagram, local_control, local_reply, media_of, policy_echo, stream1, LocalControl,
};
use super::events::{events_descriptor, root_events, Armed};
use super::leg::{self, check_tls, LegPlan, LegSent, Media};
use super::registry::{StoredSdp, Term, CONTEXT_SIZE};
use super::stats::{statistics, Drops};
use super::{fail, DataPlane, Fail, Mg};
use crate::iq::Family;

/// Subtracted terminations whose statistics one reply may carry: more would not fit an H.248
/// message over UDP (H.248.1 D.1; each termination's statistics take 100 to 600 bytes).
/// A Subtract asking for more is refused with 533 before anything is released; one that
/// spans several contexts returns statistics only when its Audit asks for them.
pub const SUBTRACT_STATISTICS_LIMIT: usize = 64;

/// Which contexts an action's commands address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `$`: the first Add or Move creates the context; `Context` afterwards.
    Choose,
    Context(u32),
    /// `-`: the null context (no termination lives there on this MG).
    Null,
    /// `*`: every context.
    All,
}

impl Scope {
    /// The context a termination must be in, for commands on existing terminations (`None`:
    /// any). `$` names no context until an Add or a Move in the action has created one
    /// (H.248.1 6.1.1: CHOOSE asks the MG to create a context).
    fn lookup(self) -> Result<Option<u32>, Fail> {
        match self {
            Scope::Context(c) => Ok(Some(c)),
            Scope::Null => Ok(Some(0)),
            Scope::All => Ok(None),
            Scope::Choose => Err(fail(
                411,
                "context $ names no context until an Add or a Move creates it",
            )),
        }
    }

    /// As `lookup`, but an audit in the null context reaches any termination.
    fn audit_lookup(self) -> Result<Option<u32>, Fail> {
        match self {
            Scope::Null => Ok(None),
            s => s.lookup(),
        }
    }
}

/// The commands planned for one termination, with what it becomes.
struct TermPlan {
    name: Text,
    worker: usize,
    commands: Vec<Dp>,
    media: Media,
    leg: LegPlan,
}

pub fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Amm {
            kind: AmmKind::Add, ..
        } => "add",
        Command::Amm {
            kind: AmmKind::Modify,
            ..
        } => "modify",
        Command::Amm {
            kind: AmmKind::Move,
            ..
        } => "move",
        Command::Subtract { .. } => "subtract",
        Command::Audit {
            kind: AuditKind::Value,
            ..
        } => "audit_value",
        Command::Audit {
            kind: AuditKind::Capabilities,
            ..
        } => "audit_capabilities",
        Command::Notify { .. } => "notify",
        Command::ServiceChange { .. } => "service_change",
    }
}

/// The reply of an optional command that failed: its terminations with the error.
fn error_reply(c: &Command, e: Fail) -> CommandReply {
    let audit = Some(vec![Descriptor::Error(e.clone())]);
    match c {
        Command::Amm {
            kind, terminations, ..
        } => CommandReply::Amms {
            kind: match kind {
                AmmKind::Add => AmmsKind::Add,
                AmmKind::Modify => AmmsKind::Modify,
                AmmKind::Move => AmmsKind::Move,
            },
            terminations: terminations.clone(),
            audit,
        },
        Command::Subtract { terminations, .. } => CommandReply::Amms {
            kind: AmmsKind::Subtract,
            terminations: terminations.clone(),
            audit,
        },
        Command::Audit {
            kind, terminations, ..
        } => CommandReply::Audit {
            kind: *kind,
            result: AuditResult::Terminations {
                terminations: terminations.clone(),
                audit,
            },
        },
        Command::Notify { terminations, .. } => CommandReply::Notify {
            terminations: terminations.clone(),
            error: Some(e),
        },
        Command::ServiceChange { terminations, .. } => CommandReply::ServiceChange {
            terminations: terminations.clone(),
            result: Some(ServiceChangeResult::Error(e)),
        },
    }
}

impl<D: DataPlane> Mg<D> {
    /// Executes a transaction's actions in order; a failing command ends it (8.2.2).
    pub(super) fn transaction(&mut self, req: &TransactionRequest) -> Vec<ActionReply> {
        let mut replies = Vec::with_capacity(req.actions.len());
        for a in &req.actions {
            let (reply, stopped) = self.action(a);
            replies.push(reply);
            if stopped {
                break;
            }
        }
        replies
    }

    /// One action; true when a command failed and the transaction stops there.
    fn action(&mut self, req: &ActionRequest) -> (ActionReply, bool) {
        let mut reply = ActionReply {
            context: req.context,
            properties: vec![],
            replies: vec![],
            error: None,
        };
        let mut scope = match req.context {
            ContextId::Choose => Scope::Choose,
            ContextId::Id(id) if self.registry.has_context(id) => Scope::Context(id),
            ContextId::Id(id) => {
                if let Some(c) = req.commands.first() {
                    self.count(command_name(&c.command), 411);
                }
                reply.error = Some(fail(411, format!("unknown context {id}")));
                return (reply, true);
            }
            ContextId::Null => Scope::Null,
            ContextId::All => Scope::All,
        };
        let mut stopped = false;
        for c in &req.commands {
            let name = command_name(&c.command);
            match self.command(&mut scope, c) {
                Ok(mut rs) => {
                    self.count(name, 0);
                    reply.replies.append(&mut rs);
                }
                Err(e) if c.optional => {
                    self.count(name, e.code);
                    tracing::debug!(code = e.code, "optional command failed");
                    reply.replies.push(error_reply(&c.command, e));
                }
                Err(e) => {
                    self.count(name, e.code);
                    reply.error = Some(e);
                    stopped = true;
                    break;
                }
            }
        }
        if let (ContextId::Choose, Scope::Context(id)) = (req.context, scope) {
            reply.context = ContextId::Id(id);
        }
        (reply, stopped)
    }

    fn count(&mut self, command: &'static str, result: u16) {
        *self.command_counts.entry((command, result)).or_insert(0) += 1;
    }

    /// Commands executed by command name and result code (0: success), for metrics.
    pub fn commands(&self) -> impl Iterator<Item = (&'static str, u16, u64)> + '_ {
        self.command_counts.iter().map(|(&(c, r), &n)| (c, r, n))
    }

    fn command(
        &mut self,
        scope: &mut Scope,
        c: &CommandRequest,
    ) -> Result<Vec<CommandReply>, Fail> {
        match &c.command {
            Command::Amm {
                kind: AmmKind::Add,
                terminations,
                descriptors,
            } => self.add(scope, terminations, descriptors),
            Command::Amm {
                kind: AmmKind::Modify,
                terminations,
                descriptors,
            } if matches!(terminations.as_slice(), [t] if t.is_root()) => {
                let armed = root_events(&self.cfg.tokens, descriptors)?;
                if let Some(armed) = armed {
                    self.arm_root(armed);
                }
                Ok(vec![CommandReply::Amms {
                    kind: AmmsKind::Modify,
                    terminations: terminations.clone(),
                    audit: None,
                }])
            }
            Command::Amm {
                kind: AmmKind::Modify,
                terminations,
                descriptors,
            } => self.modify(*scope, terminations, descriptors, c.wildcard_reply),
            Command::Amm {
                kind: AmmKind::Move,
                terminations,
                descriptors,
            } => self.move_(scope, terminations, descriptors),
            Command::Subtract {
                terminations,
                audit,
            } => self.subtract(*scope, terminations, audit.as_deref(), c.wildcard_reply),
            Command::Audit {
                kind: AuditKind::Value,
                terminations,
                audit,
            } => self.audit_value(*scope, terminations, audit),
            Command::Audit {
                kind: AuditKind::Capabilities,
                terminations,
                ..
            } => self.capabilities(*scope, terminations),
            Command::ServiceChange { terminations, .. } => Ok(vec![CommandReply::ServiceChange {
                terminations: terminations.clone(),
                result: None,
            }]),
            Command::Notify { .. } => Err(fail(501, "command not implemented")),
        }
    }

    /// Whether the workers' rings take these commands now (all of them or none is sent).
    fn fits(&self, commands: &[(usize, &[Dp])]) -> Result<(), Fail> {
        let mut per_worker: BTreeMap<usize, usize> = BTreeMap::new();
        for (w, cmds) in commands {
            *per_worker.entry(*w).or_default() += cmds.len();
        }
        for (w, n) in per_worker {
            if self.dataplane.room(w) < n {
                return Err(fail(510, "data plane busy"));
            }
        }
        Ok(())
    }

    /// Sends commands `fits` accepted.
    fn send(&mut self, worker: usize, commands: Vec<Dp>) {
        for cmd in commands {
            let queued = self.dataplane.submit(worker, cmd);
            debug_assert!(queued, "room was checked before the commit");
        }
    }

    /// The partner a termination would be cut through with in `context`, refusing a pair of
    /// a TCP and a UDP leg (they carry nothing to each other).
    fn partner_in(
        &self,
        context: u32,
        except: Option<&str>,
        datagram: Option<bool>,
    ) -> Result<Option<TerminationKey>, Fail> {
        let Some(p) = self
            .registry
            .members(context)
            .find(|t| except.is_none_or(|n| !t.name.eq_ignore_ascii_case(n)))
        else {
            return Ok(None);
        };
        if let (Some(a), Some(b)) = (is_datagram(&p.media), datagram) {
            if a != b {
                return Err(fail(
                    501,
                    "a context cannot join a TCP and a UDP termination",
                ));
            }
        }
        Ok(Some(p.key))
    }

    fn add(
        &mut self,
        scope: &mut Scope,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Add takes one termination"));
        };
        if !tid.is_choose() && tid.has_wildcard() {
            return Err(fail(442, "Add takes $ or one termination name"));
        }
        match scope {
            Scope::Null => return Err(fail(501, "no terminations in the null context on this MG")),
            Scope::All => return Err(fail(501, "Add cannot address all contexts")),
            Scope::Choose | Scope::Context(_) => {}
        }
        if self.registry.len() >= self.cfg.max_terminations {
            return Err(fail(510, "termination limit reached"));
        }
        self.ports.rest(self.now);
        let parms = stream1(descriptors)?;
        let events = events_descriptor(&self.cfg.tokens, descriptors)?;
        let mut lc = LocalControl::default();
        let (mut local, mut remote) = (None, None);
        for p in &parms {
            match p {
                StreamParm::LocalControl(l) => lc = local_control(&self.cfg.tokens, l)?,
                StreamParm::Local(g) => local = Some(g),
                StreamParm::Remote(g) => remote = Some(g),
                StreamParm::Statistics(_) => {}
            }
        }
        let realm = match &lc.realm {
            None => 0,
            Some(want) => self
                .cfg
                .realms
                .iter()
                .position(|r| r.name.eq_ignore_ascii_case(want))
                .ok_or_else(|| fail(449, format!("unknown realm {want}")))?,
        };
        let Some(local_media) = local.map(media_of).transpose()?.flatten() else {
            return Err(fail(441, "a TCP termination needs a Local descriptor"));
        };
        check_tls(&self.cfg, &local_media)?;
        let remote_media = remote.map(media_of).transpose()?.flatten();
        let datagram = local_media.transport.is_datagram();
        let context = match *scope {
            Scope::Context(c) => {
                if self.registry.context_len(c) >= CONTEXT_SIZE {
                    return Err(fail(434, "a context holds two terminations"));
                }
                c
            }
            _ => {
                if self.registry.contexts() >= self.cfg.max_contexts {
                    return Err(fail(412, "no contexts available"));
                }
                self.registry.free_context_id(self.cfg.workers(), None)
            }
        };
        let worker = self.cfg.worker_of(context);
        if self.registry.on_worker(worker) >= self.cfg.max_legs_per_worker {
            return Err(fail(
                510,
                format!("the leg table of worker {worker} is full"),
            ));
        }
        let r = &self.cfg.realms[realm];
        let family = local_media.family.unwrap_or(Family::V4);
        if !r.addresses.iter().any(|a| Family::of(*a) == family) {
            return Err(fail(
                449,
                format!("realm {} has no {} address", r.name, family.token()),
            ));
        }
        let local = self
            .ports
            .peek(realm, family, worker)
            .ok_or_else(|| fail(510, "no local port left in the realm"))?;
        let (name, chosen) = if tid.is_choose() {
            let kind = if datagram { "udptl" } else { "tcp" };
            let mut n = self.registry.free_name_number();
            loop {
                let name: Text = format!("{kind}/{}/{n}", r.name).as_str().into();
                if self.registry.get(&name).is_none() {
                    break (name, true);
                }
                n = n.wrapping_add(1);
            }
        } else {
            if self.registry.get(&tid.0).is_some() {
                return Err(fail(
                    433,
                    format!("termination {} is already in a context", tid.0),
                ));
            }
            (tid.0.clone(), false)
        };
        let partner = self.partner_in(context, None, Some(datagram))?;
        let key = self.registry.free_key(context);
        let media = Media {
            mode: lc.mode.unwrap_or(StreamMode::Inactive),
            latch: lc.latch.unwrap_or(false),
            local: Some(local_media),
            remote: remote_media,
            policy: lc.policy,
        };
        let fingerprint = self.our_fingerprint();
        let plan = leg::plan(
            &self.cfg,
            &r.policy,
            fingerprint.as_deref(),
            key,
            local,
            &media,
            &LegSent::default(),
        )?;
        let mut commands = Vec::with_capacity(plan.commands.len() + 2);
        commands.push(if datagram {
            Dp::ReserveDatagram { key, local }
        } else {
            Dp::Reserve { key, local }
        });
        commands.extend(plan.commands.iter().cloned());
        if let Some(p) = partner {
            commands.push(Dp::Join { a: p, b: key });
        }
        self.fits(&[(worker, &commands)])?;

        // Commit: nothing below can fail.
        let taken = self.ports.take(realm, family, worker);
        debug_assert_eq!(taken, Some(local));
        self.send(worker, commands);
        let local_sdp = plan.local_sdp.unwrap_or_else(|| {
            answer_sdp(
                media.local.as_ref().expect("set above"),
                local,
                None,
                fingerprint.as_deref(),
            )
        });
        let reply = CommandReply::Amms {
            kind: AmmsKind::Add,
            terminations: vec![TerminationId(name.clone())],
            audit: local_reply(&local_sdp, policy_echo(&self.cfg, realm, &media)),
        };
        self.registry.insert(
            Term {
                name: name.clone(),
                context,
                key,
                realm,
                local,
                worker,
                media,
                leg: plan.sent,
                local_sdp: StoredSdp::store(&local_sdp),
                stats: None,
                events: None,
                established_at: None,
                next_heartbeat: None,
                violation: None,
                closed_at: None,
            },
            chosen,
        );
        self.arm(&name, events);
        *scope = Scope::Context(context);
        Ok(vec![reply])
    }

    /// Plans what the stream descriptors of a Modify or Move do to one termination.
    fn plan_modify(&self, t: &Term, parms: &[&StreamParm]) -> Result<TermPlan, Fail> {
        let mut media = t.media.clone();
        for p in parms {
            match p {
                StreamParm::LocalControl(l) => {
                    // The realm of a termination stays what Add chose.
                    let lc = local_control(&self.cfg.tokens, l)?;
                    if let Some(m) = lc.mode {
                        media.mode = m;
                    }
                    if let Some(l) = lc.latch {
                        media.latch = l;
                    }
                    media.policy = media.policy.merged(&lc.policy);
                }
                StreamParm::Local(g) => {
                    let m = media_of(g)?;
                    if let Some(m) = &m {
                        check_tls(&self.cfg, m)?;
                        if is_datagram(&t.media).is_some_and(|d| d != m.transport.is_datagram()) {
                            return Err(fail(
                                501,
                                "a termination cannot change between TCP and UDP",
                            ));
                        }
                    }
                    media.local = m;
                }
                StreamParm::Remote(g) => {
                    let m = media_of(g)?;
                    // A UDP leg simply sends to the new peer (it is started again).
                    let datagram = is_datagram(&media) == Some(true);
                    if !datagram
                        && t.leg.started
                        && m.as_ref().is_some_and(|m| !m.existing)
                        && m != media.remote
                    {
                        return Err(fail(
                            501,
                            "changing the peer of a started connection is not supported",
                        ));
                    }
                    media.remote = m;
                }
                StreamParm::Statistics(_) => {}
            }
        }
        let fingerprint = self.our_fingerprint();
        let leg = leg::plan(
            &self.cfg,
            &self.cfg.realms[t.realm].policy,
            fingerprint.as_deref(),
            t.key,
            t.local,
            &media,
            &t.leg,
        )?;
        Ok(TermPlan {
            name: t.name.clone(),
            worker: t.worker,
            commands: leg.commands.clone(),
            media,
            leg,
        })
    }

    /// Applies a planned change (the commands were sent by the caller); returns the reply's
    /// Local media.
    fn commit_modify(
        &mut self,
        plan: TermPlan,
        events: Option<Option<Armed>>,
    ) -> Option<Vec<Descriptor>> {
        let t = self.registry.get_mut(&plan.name)?;
        t.media = plan.media;
        t.leg = plan.leg.sent;
        let sdp = match plan.leg.local_sdp {
            Some(sdp) => {
                t.local_sdp = StoredSdp::store(&sdp);
                sdp
            }
            None => t.local_sdp.load(),
        };
        let reply = local_reply(&sdp, policy_echo(&self.cfg, t.realm, &t.media));
        self.arm(&plan.name, events);
        reply
    }

    fn modify(
        &mut self,
        scope: Scope,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
        wildcard_reply: bool,
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Modify takes one termination ID"));
        };
        let names = self.registry.matching(scope.lookup()?, tid)?;
        let parms = stream1(descriptors)?;
        let events = events_descriptor(&self.cfg.tokens, descriptors)?;
        let mut plans = Vec::with_capacity(names.len());
        for name in &names {
            let t = self.registry.get(name).expect("matched");
            plans.push(self.plan_modify(t, &parms)?);
        }
        let sends: Vec<(usize, &[Dp])> = plans
            .iter()
            .map(|p| (p.worker, p.commands.as_slice()))
            .collect();
        self.fits(&sends)?;

        let mut replies = Vec::with_capacity(plans.len());
        for mut plan in plans {
            let commands = std::mem::take(&mut plan.commands);
            self.send(plan.worker, commands);
            let name = plan.name.clone();
            let audit = self.commit_modify(plan, events.clone());
            if !wildcard_reply {
                replies.push(CommandReply::Amms {
                    kind: AmmsKind::Modify,
                    terminations: vec![TerminationId(name)],
                    audit,
                });
            }
        }
        if wildcard_reply {
            // H.248.1 6.2: `W-` asks for one reply for every termination the wildcard matched.
            replies.push(CommandReply::Amms {
                kind: AmmsKind::Modify,
                terminations: vec![tid.clone()],
                audit: None,
            });
        }
        Ok(replies)
    }

    /// Move (H.248.1 7.2.4): the termination leaves its context (deleted when empty) for this
    /// one, is cut through with the termination there, and takes the descriptors given.
    fn move_(
        &mut self,
        scope: &mut Scope,
        terminations: &[TerminationId],
        descriptors: &[Descriptor],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "Move takes one termination"));
        };
        if tid.has_wildcard() {
            return Err(fail(442, "Move takes one termination, not a wildcard"));
        }
        let parms = stream1(descriptors)?;
        let events = events_descriptor(&self.cfg.tokens, descriptors)?;
        let t = self.registry.find(None, tid)?;
        let (from, worker, leg, name) = (t.context, t.worker, t.key, t.name.clone());
        let dest = match *scope {
            Scope::Null => return Err(fail(501, "no terminations in the null context on this MG")),
            Scope::All => return Err(fail(501, "Move cannot address all contexts")),
            Scope::Context(c) if self.cfg.worker_of(c) != worker => {
                return Err(fail(
                    501,
                    "the termination is served by another worker than that context",
                ))
            }
            Scope::Context(c) => c,
            Scope::Choose => {
                if self.registry.contexts() >= self.cfg.max_contexts {
                    return Err(fail(412, "no contexts available"));
                }
                // A new context on the termination's own worker.
                self.registry
                    .free_context_id(self.cfg.workers(), Some(worker))
            }
        };
        let plan = self.plan_modify(t, &parms)?;
        let mut commands = Vec::new();
        if dest != from {
            if self.registry.context_len(dest) >= CONTEXT_SIZE {
                return Err(fail(434, "a context holds two terminations"));
            }
            let partner = self.partner_in(dest, Some(&name), is_datagram(&plan.media))?;
            commands.push(Dp::Split { key: leg });
            if let Some(p) = partner {
                commands.push(Dp::Join { a: p, b: leg });
            }
        }
        commands.extend(plan.commands.iter().cloned());
        self.fits(&[(worker, &commands)])?;

        self.send(worker, commands);
        if dest != from {
            self.registry.move_to(&name, dest);
        }
        let audit = self.commit_modify(plan, events);
        *scope = Scope::Context(dest);
        Ok(vec![CommandReply::Amms {
            kind: AmmsKind::Move,
            terminations: vec![TerminationId(name)],
            audit,
        }])
    }

    fn subtract(
        &mut self,
        scope: Scope,
        terminations: &[TerminationId],
        audit: Option<&[AuditItem]>,
        wildcard_reply: bool,
    ) -> Result<Vec<CommandReply>, Fail> {
        let mut names: Vec<Text> = Vec::new();
        for tid in terminations {
            for n in self.registry.matching(scope.lookup()?, tid)? {
                if !names.iter().any(|m| m.eq_ignore_ascii_case(&n)) {
                    names.push(n);
                }
            }
        }
        if names.is_empty() {
            return Err(fail(431, "no termination matched"));
        }
        // Statistics are returned unless the ALG sent an Audit without them (H.248.1 7.2.3);
        // a Subtract over several contexts returns them only when asked, and a wildcarded
        // reply (`W-`) has no room for them.
        let asked = audit.is_some_and(|a| {
            a.iter().any(|i| {
                matches!(
                    i,
                    AuditItem::Token(AuditToken::Statistics) | AuditItem::Statistics(_)
                )
            })
        });
        let mut contexts: Vec<u32> = names
            .iter()
            .filter_map(|n| self.registry.get(n).map(|t| t.context))
            .collect();
        contexts.sort_unstable();
        contexts.dedup();
        let with_stats = !wildcard_reply
            && (asked || (audit.is_none() && contexts.len() <= 1 && scope != Scope::All));
        if with_stats && names.len() > SUBTRACT_STATISTICS_LIMIT {
            return Err(fail(
                533,
                format!(
                    "the statistics of {} terminations exceed a message; subtract them without Audit{{Statistics}}, with W-, or fewer at a time",
                    names.len()
                ),
            ));
        }
        let releases: Vec<(usize, Vec<Dp>)> = names
            .iter()
            .filter_map(|n| self.registry.get(n))
            .map(|t| (t.worker, vec![Dp::Release { key: t.key }]))
            .collect();
        let sends: Vec<(usize, &[Dp])> = releases.iter().map(|(w, c)| (*w, c.as_slice())).collect();
        self.fits(&sends)?;

        let mut replies = Vec::with_capacity(names.len());
        for name in names {
            let Some(t) = self.remove_term(&name) else {
                continue;
            };
            if with_stats {
                // The reply waits for the worker's final count (see `deferred`).
                self.deferred.collect(
                    t.key,
                    Released {
                        name: t.name.clone(),
                        stats: t.stats(),
                        drops: Drops::of(t.leg.policy.as_ref()),
                        final_stats: t.closed_at.is_some(),
                        established_at: t.established_at,
                        closed_at: t.closed_at,
                    },
                );
            } else {
                self.app_totals.add(&t.stats().app);
            }
            if !wildcard_reply {
                let stats = t.stats();
                replies.push(CommandReply::Amms {
                    kind: AmmsKind::Subtract,
                    terminations: vec![TerminationId(t.name)],
                    audit: with_stats.then(|| {
                        vec![Descriptor::Statistics(statistics(
                            &self.cfg.tokens,
                            &stats,
                            Drops::of(t.leg.policy.as_ref()),
                            t.established_at,
                            Some(self.now),
                        ))]
                    }),
                });
            }
        }
        if wildcard_reply {
            replies.push(CommandReply::Amms {
                kind: AmmsKind::Subtract,
                terminations: terminations.to_vec(),
                audit: None,
            });
        }
        Ok(replies)
    }

    fn audit_value(
        &mut self,
        scope: Scope,
        terminations: &[TerminationId],
        audit: &[AuditItem],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "AuditValue takes one termination here"));
        };
        if tid.is_root() {
            // ROOT's one property: the realms available now (`ipra`). An empty Audit asks for
            // nothing (H.248.1 7.2.5).
            let property = TerminationStateParm::Property(PropertyParm {
                name: self.cfg.tokens.available_realms.pkgd_name(),
                value: self.available_realms(),
            });
            return Ok(vec![CommandReply::Audit {
                kind: AuditKind::Value,
                result: AuditResult::Terminations {
                    terminations: vec![tid.clone()],
                    audit: (!audit.is_empty()).then(|| {
                        vec![Descriptor::Media(vec![MediaParm::TerminationState(vec![
                            property,
                        ])])]
                    }),
                },
            }]);
        }
        let names = if tid.0.contains('*') {
            self.registry.matching(scope.audit_lookup()?, tid)?
        } else {
            vec![self.registry.find(scope.audit_lookup()?, tid)?.name.clone()]
        };
        let mut replies = Vec::with_capacity(names.len());
        for name in names {
            let t = self.registry.get(&name).expect("matched");
            replies.push(self.audit_reply(t));
        }
        Ok(replies)
    }

    fn audit_reply(&self, t: &Term) -> CommandReply {
        let mut lc = vec![LocalParm::Mode(t.media.mode)];
        lc.extend(
            t.media
                .policy
                .echo(&self.cfg.realms[t.realm].policy, &self.cfg.tokens),
        );
        let mut parms = vec![
            StreamParm::LocalControl(lc),
            StreamParm::Local(t.local_sdp.load()),
        ];
        if let Some(r) = &t.media.remote {
            parms.push(StreamParm::Remote(answer_sdp(
                r,
                remote_addr(r).unwrap_or(unspecified(r.family.unwrap_or(Family::V4))),
                None,
                None,
            )));
        }
        CommandReply::Audit {
            kind: AuditKind::Value,
            result: AuditResult::Terminations {
                terminations: vec![TerminationId(t.name.clone())],
                audit: Some(vec![
                    Descriptor::Media(vec![MediaParm::Streams(StreamDescriptor { id: 1, parms })]),
                    Descriptor::Statistics(statistics(
                        &self.cfg.tokens,
                        &t.stats(),
                        Drops::of(t.leg.policy.as_ref()),
                        t.established_at,
                        Some(self.now),
                    )),
                ]),
            },
        }
    }

    /// AuditCapabilities: the packages this MG implements (for ROOT or any termination).
    fn capabilities(
        &mut self,
        scope: Scope,
        terminations: &[TerminationId],
    ) -> Result<Vec<CommandReply>, Fail> {
        let [tid] = terminations else {
            return Err(fail(442, "AuditCapabilities takes one termination"));
        };
        if !tid.is_root() {
            self.registry.matching(scope.audit_lookup()?, tid)?;
        }
        let packages = self
            .cfg
            .tokens
            .packages()
            .into_iter()
            .map(|name| PackagesItem { name, version: 1 })
            .collect();
        Ok(vec![CommandReply::Audit {
            kind: AuditKind::Capabilities,
            result: AuditResult::Terminations {
                terminations: vec![tid.clone()],
                audit: Some(vec![Descriptor::Packages(packages)]),
            },
        }])
    }
}
