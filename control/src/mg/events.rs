//! Events: what the ALG armed (an Events descriptor, or `it/ito` and `ipra` on ROOT), and the workers'
//! events turned into the Notify requests it asked for: connection and (D)TLS outcomes,
//! releases with their cause, media inactivity, and the termination heartbeat.

use dataplane::contract::{ConnectFailure, Event, ReleaseCause, TerminationKey, Violation};
use dataplane::tls::TlsFailure;
use h248::ast::*;

use super::{fail, DataPlane, Fail, Mg};
use crate::iq::{IqEvent, Tokens};
use crate::transaction::Millis;

/// Armed events of a termination: the request ID and the events.
pub type Armed = (u32, Vec<IqEvent>);

/// A Notify the MG owes the ALG: an armed event was observed on a termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub context: ContextId,
    pub termination: Text,
    pub request_id: u32,
    pub event: IqEvent,
    /// The event's name and parameters as the token table spells them.
    pub name: PkgdName,
    pub parameters: Vec<(Text, ParmValue)>,
}

impl Notification {
    /// The parameters as name and text (a list's values joined by commas), for logs and tests.
    pub fn parameter_texts(&self) -> Vec<(Text, String)> {
        self.parameters
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    ParmValue::Equal(v) => v.text.to_string(),
                    ParmValue::List(vs) => vs
                        .iter()
                        .map(|v| v.text.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => format!("{other:?}"),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// A parameter with one bare value.
pub(super) fn bare(name: &Text, v: &str) -> (Text, ParmValue) {
    (name.clone(), ParmValue::Equal(Value::bare(v)))
}

/// What is armed on ROOT: the MGC's inactivity (`it/ito`, request ID and limit in ms) and
/// the realm availability change (`ipra`, request ID); one Events descriptor sets both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootEvents {
    pub inactivity: Option<(u32, Millis)>,
    pub realms: Option<u32>,
}

#[derive(Debug)]
pub struct EventState {
    pub root: RootEvents,
    /// The earliest heartbeat due (`Millis::MAX`: none armed).
    heartbeat_due: Millis,
    notifications: Vec<Notification>,
}

impl Default for EventState {
    fn default() -> Self {
        EventState {
            root: RootEvents::default(),
            heartbeat_due: Millis::MAX,
            notifications: Vec::new(),
        }
    }
}

/// The command's Events descriptor: `None` when absent, `Some(None)` for a bare `Events`
/// (disarm), otherwise the request ID and the events, each one the MG can report.
pub fn events_descriptor(
    tokens: &Tokens,
    descriptors: &[Descriptor],
) -> Result<Option<Option<Armed>>, Fail> {
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
            let event = tokens.termination_event(&ev.name).ok_or_else(|| {
                let (code, what) = if tokens.knows_event_package(&ev.name.package) {
                    (451, "no such event in package")
                } else {
                    (445, "unsupported package")
                };
                fail(
                    code,
                    format!("{what}: {}/{}", ev.name.package, ev.name.item),
                )
            })?;
            names.push(event);
        }
        found = Some(Some((rid, names)));
    }
    Ok(found)
}

/// Modify ROOT: the MGC inactivity timer and the realm availability event can be armed
/// there. Returns what to arm (`None`: no Events descriptor; nothing armed disarms),
/// checked before anything changes.
pub fn root_events(
    tokens: &Tokens,
    descriptors: &[Descriptor],
) -> Result<Option<RootEvents>, Fail> {
    let mut result = None;
    for d in descriptors {
        match d {
            Descriptor::Events(None) => result = Some(RootEvents::default()),
            Descriptor::Events(Some(e)) => {
                let RequestId::Id(rid) = e.request_id else {
                    return Err(fail(458, "Events needs a request ID"));
                };
                let mut armed = RootEvents::default();
                for ev in &e.events {
                    if tokens.realms_changed.is(&ev.name) {
                        armed.realms = Some(rid);
                        continue;
                    }
                    if !tokens.inactivity.is(&ev.name) {
                        return Err(fail(
                            451,
                            format!(
                                "only {} and {} can be armed on ROOT, not {}/{}",
                                tokens.inactivity,
                                tokens.realms_changed,
                                ev.name.package,
                                ev.name.item
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
                            if name.eq_ignore_ascii_case(&tokens.inactivity_max_parameter) {
                                mit =
                                    Some(v.text.parse::<u64>().map_err(|_| {
                                        fail(449, format!("bad mit value {}", v.text))
                                    })?);
                            }
                        }
                    }
                    let mit = mit.ok_or_else(|| {
                        fail(
                            457,
                            format!(
                                "{} needs {}",
                                tokens.inactivity, tokens.inactivity_max_parameter
                            ),
                        )
                    })?;
                    if mit == 0 {
                        return Err(fail(449, "mit value 0"));
                    }
                    armed.inactivity = Some((rid, mit.saturating_mul(tokens.inactivity_unit_ms)));
                }
                result = Some(armed);
            }
            Descriptor::Audit(_) | Descriptor::Signals(_) => {}
            _ => return Err(fail(444, "only Events can be modified on ROOT")),
        }
    }
    Ok(result)
}

impl<D: DataPlane> Mg<D> {
    /// Arms a termination's events (`None`: the command had no Events descriptor).
    pub(super) fn arm(&mut self, name: &str, events: Option<Option<Armed>>) {
        let now = self.now;
        let every = self.cfg.heartbeat.as_millis() as Millis;
        let Some(t) = self.registry.get_mut(name) else {
            return;
        };
        if let Some(events) = events {
            let beats = events
                .as_ref()
                .is_some_and(|(_, names)| names.contains(&IqEvent::Heartbeat));
            t.next_heartbeat = beats.then(|| now + every);
            t.events = events;
        } else if t.next_heartbeat.is_some() {
            // Any command about the termination shows the ALG still knows it (H.248.36).
            t.next_heartbeat = Some(now + every);
        }
        if let Some(next) = t.next_heartbeat {
            self.events.heartbeat_due = self.events.heartbeat_due.min(next);
        }
    }

    pub(super) fn arm_root(&mut self, armed: RootEvents) {
        self.events.root = armed;
    }

    /// The realms whose port is up, as the ROOT property (`ipra`) lists them: a list, or an
    /// empty string when none is.
    pub(super) fn available_realms(&self) -> ParmValue {
        let up: Vec<Value> = self
            .cfg
            .realms
            .iter()
            .zip(&self.realm_up)
            .filter(|(_, up)| **up)
            .map(|(r, _)| Value::bare(&r.name))
            .collect();
        if up.is_empty() {
            ParmValue::Equal(Value::quoted(""))
        } else {
            ParmValue::List(up)
        }
    }

    /// Whether realm `realm`'s network is reachable (the link of its port).
    pub fn set_realm_available(&mut self, realm: usize, up: bool) {
        self.set_realms_available(&[(realm, up)]);
    }

    /// Several realms' availability at once (realms sharing a port); a change is reported
    /// to the ALG in one Notify, when it armed the realm availability event on ROOT.
    pub fn set_realms_available(&mut self, changes: &[(usize, bool)]) {
        let mut changed = false;
        for &(realm, up) in changes {
            let Some(was) = self.realm_up.get_mut(realm) else {
                continue;
            };
            if *was != up {
                *was = up;
                changed = true;
                tracing::warn!(realm = %self.cfg.realms[realm].name, up, "realm availability changed");
            }
        }
        if !changed {
            return;
        }
        if let Some(rid) = self.events.root.realms {
            let list = self.available_realms();
            self.events.notifications.push(Notification {
                context: ContextId::Null,
                termination: "ROOT".into(),
                request_id: rid,
                event: IqEvent::RealmAvailability,
                name: self.cfg.tokens.realms_changed.pkgd_name(),
                parameters: vec![(self.cfg.tokens.available_realms.item.clone(), list)],
            });
        }
    }

    /// One event from the data plane: statistics kept, armed events turned into
    /// notifications, waiting Subtract replies fed.
    pub fn on_event(&mut self, ev: &Event) {
        let now = self.now;
        match *ev {
            Event::Established { key, .. } => {
                if let Some(t) = self.registry.by_key_mut(key) {
                    t.established_at = Some(now);
                }
            }
            Event::CutThrough { a, b } => {
                for key in [a, b] {
                    self.notify(key, IqEvent::TcpEstablished, vec![]);
                }
            }
            Event::ConnectFailed { key, failure } => {
                let cause = match failure {
                    ConnectFailure::Refused => "refused",
                    ConnectFailure::Timeout => "timeout",
                };
                let p = bare(&self.cfg.tokens.cause_parameter, cause);
                self.notify(key, IqEvent::TcpFailure, vec![p]);
            }
            Event::Closed { key, cause, stats } => {
                if self.deferred.closed(key, stats, now) {
                    return;
                }
                let Some(t) = self.registry.by_key_mut(key) else {
                    return;
                };
                t.set_stats(stats);
                t.closed_at = Some(now);
                let datagram = t.leg.datagram_start.is_some();
                let violation = t.violation;
                if datagram && cause == ReleaseCause::IdleTimeout {
                    self.notify(key, IqEvent::MediaInactivity, vec![]);
                } else if cause != ReleaseCause::Released {
                    let params = release_parameters(&self.cfg.tokens, cause, violation);
                    self.notify(key, IqEvent::TcpReleased, params);
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
                if let Some(t) = self.registry.by_key_mut(key) {
                    t.violation = Some(violation);
                }
            }
            Event::Rejected { key, reason } => {
                // A released leg the worker already freed (both ends closed) has nothing
                // more to report: expected, not a fault.
                if self.deferred.rejected(key) {
                    tracing::debug!(?key, ?reason, "released leg already gone");
                    return;
                }
                if self.registry.by_key(key).is_none() {
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
                self.notify(key, IqEvent::TlsEstablished, vec![]);
            }
            Event::TlsFailed { key, failure } => {
                self.tls.count_failure(failure);
                let cause = match failure {
                    TlsFailure::Fingerprint => "fingerprint",
                    TlsFailure::NoCertificate => "nocert",
                    TlsFailure::Protocol => "protocol",
                    TlsFailure::Timeout => "timeout",
                    TlsFailure::Closed => "closed",
                };
                tracing::warn!(?key, cause, "TLS failed");
                let p = bare(&self.cfg.tokens.cause_parameter, cause);
                self.notify(key, IqEvent::TlsFailure, vec![p]);
            }
        }
    }

    fn notify(&mut self, key: TerminationKey, event: IqEvent, parameters: Vec<(Text, ParmValue)>) {
        let Some(t) = self.registry.by_key(key) else {
            return;
        };
        let Some((rid, armed)) = &t.events else {
            return;
        };
        if armed.contains(&event) {
            self.events.notifications.push(Notification {
                context: ContextId::Id(t.context),
                termination: t.name.clone(),
                request_id: *rid,
                event,
                name: self.cfg.tokens.event(event).pkgd_name(),
                parameters,
            });
        }
    }

    /// The Notify of the MGC's inactivity (`it/ito` on ROOT).
    pub fn inactivity_notification(&self, request_id: u32) -> Notification {
        Notification {
            context: ContextId::Null,
            termination: "ROOT".into(),
            request_id,
            event: IqEvent::Inactivity,
            name: self.cfg.tokens.inactivity.pkgd_name(),
            parameters: vec![],
        }
    }

    /// Notifications owed to the ALG, oldest first; heartbeats that are due are added.
    pub fn notifications(&mut self) -> std::vec::Drain<'_, Notification> {
        let now = self.now;
        let every = self.cfg.heartbeat.as_millis() as Millis;
        // The terminations are walked only when the earliest heartbeat is due.
        if now < self.events.heartbeat_due {
            return self.events.notifications.drain(..);
        }
        self.events.heartbeat_due = Millis::MAX;
        let name = self.cfg.tokens.heartbeat.pkgd_name();
        for t in self.registry.iter_mut() {
            let Some(mut next) = t.next_heartbeat else {
                continue;
            };
            if next <= now {
                next = now + every;
                t.next_heartbeat = Some(next);
                if let Some((rid, _)) = &t.events {
                    self.events.notifications.push(Notification {
                        context: ContextId::Id(t.context),
                        termination: t.name.clone(),
                        request_id: *rid,
                        event: IqEvent::Heartbeat,
                        name: name.clone(),
                        parameters: vec![],
                    });
                }
            }
            self.events.heartbeat_due = self.events.heartbeat_due.min(next);
        }
        self.events.notifications.drain(..)
    }
}

/// The cause (and violation) parameters of a release event.
fn release_parameters(
    tokens: &Tokens,
    cause: ReleaseCause,
    violation: Option<Violation>,
) -> Vec<(Text, ParmValue)> {
    let cause = match cause {
        ReleaseCause::PeerClosed => "closed",
        ReleaseCause::PeerReset => "reset",
        ReleaseCause::PartnerGone => "partner",
        ReleaseCause::IdleTimeout => "idle",
        ReleaseCause::TlsFailed => "tls",
        ReleaseCause::Violation => tokens.cause_violation.as_str(),
        ReleaseCause::Released => "released",
    };
    let mut params = vec![bare(&tokens.cause_parameter, cause)];
    if let Some(v) = violation {
        params.push(bare(
            &tokens.violation_parameter,
            &format!("{}-{}", v.protocol(), v.token()),
        ));
    }
    params
}
