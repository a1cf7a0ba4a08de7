//! MG registration with its MGC (H.248.1 11.4 and 7.2.8): ServiceChange Restart with reason
//! 901 on start, the highest version we speak and the profile; the MGC's reply fixes the
//! version (and may redirect us with MgcIdToTry); no answer within T-MAX moves on to the next
//! configured MGC; after loss of contact we come back to the same MGC with Disconnected (900);
//! shutdown sends Forced (905). Pure logic on the caller's clock; it builds messages and says
//! where to send them, over UDP or TCP as each MGC is configured.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use crate::transaction::{Millis, Outgoing, Outstanding, TransactionTimers};
use h248::ast::*;
use h248::{encode, Form};

/// The default H.248 text port (H.248.1 D.1).
pub const H248_TEXT_PORT: u16 = 2944;

/// How an MGC is reached: H.248 text over UDP (H.248.1 D.1) or over TCP with TPKT framing
/// (D.2, a connection the MG opens and keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MgcTransport {
    Udp,
    Tcp,
}

/// An MGC: `ADDR` or `udp://ADDR` for UDP, `tcp://ADDR` for TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mgc {
    pub transport: MgcTransport,
    pub addr: SocketAddr,
}

impl Mgc {
    pub fn udp(addr: SocketAddr) -> Mgc {
        Mgc {
            transport: MgcTransport::Udp,
            addr,
        }
    }

    pub fn tcp(addr: SocketAddr) -> Mgc {
        Mgc {
            transport: MgcTransport::Tcp,
            addr,
        }
    }
}

impl FromStr for Mgc {
    type Err = String;

    fn from_str(s: &str) -> Result<Mgc, String> {
        let (transport, rest) = match s.split_once("://") {
            Some(("udp", r)) => (MgcTransport::Udp, r),
            Some(("tcp", r)) => (MgcTransport::Tcp, r),
            Some((other, _)) => {
                return Err(format!(
                    "MGC {s:?}: transport {other:?} is neither udp nor tcp"
                ))
            }
            None => (MgcTransport::Udp, s),
        };
        let addr = rest
            .parse()
            .map_err(|_| format!("MGC {s:?}: expected [udp://|tcp://]ADDRESS:PORT"))?;
        Ok(Mgc { transport, addr })
    }
}

impl std::fmt::Display for Mgc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.transport {
            MgcTransport::Udp => write!(f, "udp://{}", self.addr),
            MgcTransport::Tcp => write!(f, "tcp://{}", self.addr),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Mgc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mgc, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// MGCs in order of preference, each over UDP or TCP.
    pub mgcs: Vec<Mgc>,
    pub mid: MId,
    /// Profile name and version sent in the ServiceChange. No public copy of TS 29.334 shows
    /// the Iq profile's registered name (docs/iq-packages.md), so it is configuration, not a
    /// constant.
    pub profile: (Text, u8),
    /// Highest protocol version we speak.
    pub max_version: u8,
    pub timers: TransactionTimers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Idle,
    /// Waiting for the answer to our ServiceChange sent to `mgc`.
    Registering {
        mgc: Mgc,
        tid: u32,
    },
    Registered {
        mgc: Mgc,
        version: u8,
    },
    /// Every MGC was tried without success; `start` again after a delay.
    Failed,
    ShutDown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        to: Mgc,
        bytes: Arc<[u8]>,
    },
    Registered {
        mgc: Mgc,
        version: u8,
    },
    /// No MGC answered; the caller schedules another `start`.
    AllMgcsFailed,
}

pub struct Registration {
    cfg: RegistrationConfig,
    state: State,
    outstanding: Outstanding,
    /// Index in `cfg.mgcs` being tried, or a redirect target.
    next: usize,
    redirect: Option<Mgc>,
    method: ServiceChangeMethod,
    reason: &'static str,
    /// We were registered once: our terminations may still exist, so every later attempt
    /// says Disconnected (900), not a cold boot (H.248.1 11.5).
    was_registered: bool,
}

impl Registration {
    pub fn new(cfg: RegistrationConfig, first_tid: u32) -> Self {
        let timers = cfg.timers;
        Registration {
            cfg,
            state: State::Idle,
            outstanding: Outstanding::new(timers, first_tid),
            next: 0,
            redirect: None,
            method: ServiceChangeMethod::Restart,
            reason: "901 Cold Boot",
            was_registered: false,
        }
    }

    /// The method and reason of the next ServiceChange: Restart before the first
    /// registration, Disconnected after it.
    fn reset_method(&mut self) {
        if self.was_registered {
            self.method = ServiceChangeMethod::Disconnected;
            self.reason = "900 Service Restored";
        } else {
            self.method = ServiceChangeMethod::Restart;
            self.reason = "901 Cold Boot";
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Requests from the MGC are refused with 505 until this is true (H.248.1 11.4).
    pub fn is_registered(&self) -> bool {
        matches!(self.state, State::Registered { .. })
    }

    /// A request of ours (ServiceChange) is still waiting for its answer.
    pub fn awaiting(&self) -> bool {
        !self.outstanding.is_empty()
    }

    pub fn version(&self) -> Option<u8> {
        match self.state {
            State::Registered { version, .. } => Some(version),
            _ => None,
        }
    }

    /// Starts (or restarts) registration with the first MGC of the list.
    pub fn start(&mut self, now: Millis, act: &mut impl FnMut(Action)) {
        self.next = 0;
        self.redirect = None;
        self.reset_method();
        self.try_next(now, act);
    }

    /// The MGC we are registered with, or trying.
    pub fn mgc(&self) -> Option<Mgc> {
        match self.state {
            State::Registering { mgc, .. } | State::Registered { mgc, .. } => Some(mgc),
            _ => None,
        }
    }

    /// Where a retransmission to `addr` goes: the MGC being worked with, a configured one,
    /// else UDP.
    fn target(&self, addr: SocketAddr) -> Mgc {
        self.mgc()
            .filter(|m| m.addr == addr)
            .or_else(|| self.cfg.mgcs.iter().copied().find(|m| m.addr == addr))
            .unwrap_or(Mgc::udp(addr))
    }

    /// Contact with the registered MGC is lost (our requests unanswered, or its TCP
    /// connection gone): come back to it with Disconnected so it knows state may be stale
    /// (H.248.1 11.5).
    pub fn contact_lost(&mut self, now: Millis, act: &mut impl FnMut(Action)) {
        if let State::Registered { mgc, .. } = self.state {
            self.method = ServiceChangeMethod::Disconnected;
            self.reason = "900 Service Restored";
            self.send_service_change(mgc, now, act);
        }
    }

    /// Shutting down: tell the MGC every termination is gone (Forced, 905).
    pub fn shutdown(&mut self, now: Millis, act: &mut impl FnMut(Action)) {
        if let State::Registered { mgc, .. } = self.state {
            self.method = ServiceChangeMethod::Forced;
            self.reason = "905 Termination taken out of service";
            // Tracked like any request, so it is repeated while the process drains.
            let tid = self.outstanding.allocate_tid();
            let bytes = self.service_change(tid);
            self.outstanding
                .sent(tid, mgc.addr, Arc::clone(&bytes), now);
            act(Action::Send { to: mgc, bytes });
        }
        self.state = State::ShutDown;
    }

    fn try_next(&mut self, now: Millis, act: &mut impl FnMut(Action)) {
        let target = match self.redirect.take() {
            Some(r) => Some(r),
            None => {
                let t = self.cfg.mgcs.get(self.next).copied();
                self.next += 1;
                t
            }
        };
        match target {
            Some(mgc) => self.send_service_change(mgc, now, act),
            None => {
                self.state = State::Failed;
                act(Action::AllMgcsFailed);
            }
        }
    }

    fn send_service_change(&mut self, mgc: Mgc, now: Millis, act: &mut impl FnMut(Action)) {
        let tid = self.outstanding.allocate_tid();
        let bytes = self.service_change(tid);
        self.outstanding
            .sent(tid, mgc.addr, Arc::clone(&bytes), now);
        self.state = State::Registering { mgc, tid };
        tracing::info!(%mgc, tid, method = ?self.method, "registering with MGC");
        act(Action::Send { to: mgc, bytes });
    }

    fn service_change(&self, tid: u32) -> Arc<[u8]> {
        let parms = vec![
            ServiceChangeParm::Method(self.method.clone()),
            ServiceChangeParm::Reason(Value::quoted(self.reason)),
            ServiceChangeParm::Version(self.cfg.max_version),
            ServiceChangeParm::Profile {
                name: self.cfg.profile.0.clone(),
                version: self.cfg.profile.1,
            },
        ];
        let msg = Message {
            auth: None,
            version: self.cfg.max_version,
            mid: self.cfg.mid.clone(),
            body: MessageBody::Transactions(vec![Transaction::Request(TransactionRequest {
                id: tid,
                actions: vec![ActionRequest {
                    context: ContextId::Null,
                    properties: vec![],
                    audit: None,
                    commands: vec![CommandRequest {
                        optional: false,
                        wildcard_reply: false,
                        command: Command::ServiceChange {
                            terminations: vec![TerminationId("ROOT".into())],
                            parms,
                        },
                    }],
                }],
            })]),
        };
        Arc::from(encode(&msg, Form::Compact).into_bytes())
    }

    /// Retransmissions and give-ups of our ServiceChange.
    pub fn poll(&mut self, now: Millis, act: &mut impl FnMut(Action)) {
        let mut gave_up = false;
        let mut resend = Vec::new();
        self.outstanding.poll(now, |o| match o {
            Outgoing::Retransmit { to, bytes, .. } => resend.push((to, bytes)),
            Outgoing::GaveUp { to, .. } => {
                tracing::warn!(mgc = %to, "MGC did not answer our ServiceChange; trying the next");
                gave_up = true;
            }
        });
        for (to, bytes) in resend {
            act(Action::Send {
                to: self.target(to),
                bytes,
            });
        }
        if gave_up && matches!(self.state, State::Registering { .. }) {
            self.reset_method();
            self.try_next(now, act);
        }
    }

    /// The MGC said Pending for our ServiceChange.
    pub fn pending(&mut self, tid: u32, now: Millis) {
        self.outstanding.pending(tid, now);
    }

    /// A reply from the MGC; returns false if it was not for our ServiceChange.
    pub fn reply(
        &mut self,
        reply: &TransactionReply,
        now: Millis,
        act: &mut impl FnMut(Action),
    ) -> bool {
        let State::Registering { mgc, tid } = self.state else {
            return self.outstanding.reply(reply.id);
        };
        if reply.id != tid || !self.outstanding.reply(tid) {
            return false;
        }
        let parms = match &reply.result {
            ReplyResult::Error(e) => {
                tracing::warn!(%mgc, code = e.code, "MGC refused our ServiceChange");
                self.try_next(now, act);
                return true;
            }
            ReplyResult::Actions(actions) => {
                actions
                    .iter()
                    .flat_map(|a| &a.replies)
                    .find_map(|r| match r {
                        CommandReply::ServiceChange { result, .. } => Some(result.clone()),
                        _ => None,
                    })
            }
        };
        let mut version = reply_version(&parms).unwrap_or(self.cfg.max_version);
        if let Some(Some(ServiceChangeResult::Error(e))) = &parms {
            tracing::warn!(%mgc, code = e.code, "MGC refused our ServiceChange");
            self.try_next(now, act);
            return true;
        }
        if let Some(Some(ServiceChangeResult::Parms(ps))) = &parms {
            for p in ps {
                if let ServiceChangeParm::MgcIdToTry(m) = p {
                    if let Some(addr) = mid_address(m) {
                        // A configured MGC is reached as configured; another one the way
                        // the MGC that sent us there was.
                        let to = self
                            .cfg
                            .mgcs
                            .iter()
                            .copied()
                            .find(|c| c.addr == addr)
                            .unwrap_or(Mgc {
                                transport: mgc.transport,
                                addr,
                            });
                        tracing::info!(from = %mgc, %to, "redirected by MgcIdToTry");
                        self.redirect = Some(to);
                        self.try_next(now, act);
                        return true;
                    }
                }
            }
        }
        if version > self.cfg.max_version {
            // The MGC may only lower the version; one we cannot speak is not a registration.
            tracing::warn!(%mgc, version, "MGC answered with a version we do not speak");
            self.try_next(now, act);
            return true;
        }
        version = version.max(1);
        self.was_registered = true;
        self.reset_method();
        self.state = State::Registered { mgc, version };
        tracing::info!(%mgc, version, "registered with MGC");
        act(Action::Registered { mgc, version });
        true
    }
}

fn reply_version(parms: &Option<Option<ServiceChangeResult>>) -> Option<u8> {
    match parms {
        Some(Some(ServiceChangeResult::Parms(ps))) => ps.iter().find_map(|p| match p {
            ServiceChangeParm::Version(v) => Some(*v),
            _ => None,
        }),
        _ => None,
    }
}

/// The transport address an mId names (port 2944 when none is given); domain and device
/// names would need a resolver and are not followed.
pub fn mid_address(m: &MId) -> Option<SocketAddr> {
    match m {
        MId::Ip4 { addr, port } => Some(SocketAddr::new(
            IpAddr::from(*addr),
            port.unwrap_or(H248_TEXT_PORT),
        )),
        MId::Ip6 { addr, port } => Some(SocketAddr::new(
            IpAddr::V6(*addr),
            port.unwrap_or(H248_TEXT_PORT),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h248::decode;

    fn mgc(n: u8) -> Mgc {
        Mgc::udp(SocketAddr::new(IpAddr::from([198, 51, 100, n]), 2944))
    }

    fn reg() -> Registration {
        Registration::new(
            RegistrationConfig {
                mgcs: vec![mgc(1), mgc(2)],
                mid: MId::Ip4 {
                    addr: [198, 51, 100, 200],
                    port: Some(2944),
                },
                profile: ("imsagw".into(), 1),
                max_version: 3,
                timers: TransactionTimers::default(),
            },
            1,
        )
    }

    fn reply_to(tid: u32, text: &str) -> TransactionReply {
        let m = decode(format!("!/3 [198.51.100.1] P={tid}{{{text}}}").as_bytes()).unwrap();
        let MessageBody::Transactions(ts) = m.body else {
            unreachable!()
        };
        let Transaction::Reply(r) = ts.into_iter().next().unwrap() else {
            unreachable!()
        };
        r
    }

    fn sent(actions: &[Action]) -> Vec<(Mgc, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, bytes } => {
                    Some((*to, String::from_utf8(bytes.to_vec()).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn restart_901_with_profile_and_version_then_the_mgcs_version_is_taken() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        let s = sent(&acts);
        assert_eq!(s[0].0, mgc(1));
        assert_eq!(s[0].1, "!/3 [198.51.100.200]:2944\nT=1{C=-{SC=ROOT{SV{MT=RS,RE=\"901 Cold Boot\",V=3,PF=imsagw/1}}}}");
        assert!(!r.is_registered());
        acts.clear();
        assert!(
            r.reply(&reply_to(1, "C=-{SC=ROOT{SV{V=2}}}"), 10, &mut |a| acts
                .push(a))
        );
        assert_eq!(
            acts,
            vec![Action::Registered {
                mgc: mgc(1),
                version: 2
            }]
        );
        assert_eq!(r.version(), Some(2));
    }

    #[test]
    fn a_silent_mgc_is_retried_with_back_off_then_the_next_one_is_used() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        for now in 0..=30_000 {
            r.poll(now, &mut |a| acts.push(a));
        }
        let s = sent(&acts);
        let to_first = s.iter().filter(|(to, _)| *to == mgc(1)).count();
        assert!(
            to_first >= 8,
            "original and retransmissions to the first MGC: {to_first}"
        );
        assert_eq!(s.last().unwrap().0, mgc(2), "failover to the second MGC");
        assert!(
            s.last()
                .unwrap()
                .1
                .starts_with("!/3 [198.51.100.200]:2944\nT=2{"),
            "a new transaction"
        );
        assert!(
            r.reply(&reply_to(2, "C=-{SC=ROOT{SV{V=3}}}"), 30_001, &mut |a| acts
                .push(a))
        );
        assert_eq!(
            r.state(),
            &State::Registered {
                mgc: mgc(2),
                version: 3
            }
        );
        // A late reply from the first MGC is not ours any more.
        assert!(!r.reply(&reply_to(1, "C=-{SC=ROOT{SV{V=3}}}"), 30_002, &mut |_| {}));
    }

    #[test]
    fn mgc_id_to_try_redirects_before_the_configured_list() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        r.reply(
            &reply_to(1, "C=-{SC=ROOT{SV{MG=[198.51.100.9]:2950}}}"),
            5,
            &mut |a| acts.push(a),
        );
        let s = sent(&acts);
        assert_eq!(s.last().unwrap().0, "198.51.100.9:2950".parse().unwrap());
        assert!(!r.is_registered());
        r.reply(&reply_to(2, "C=-{SC=ROOT{SV{V=3}}}"), 6, &mut |a| {
            acts.push(a)
        });
        assert_eq!(
            r.state(),
            &State::Registered {
                mgc: "198.51.100.9:2950".parse().unwrap(),
                version: 3
            }
        );
    }

    #[test]
    fn mgcs_over_tcp_and_udp_mix_and_a_redirect_keeps_the_transport() {
        assert_eq!(
            "tcp://198.51.100.1:2944".parse::<Mgc>(),
            Ok(Mgc::tcp("198.51.100.1:2944".parse().unwrap()))
        );
        assert_eq!("198.51.100.1:2944".parse::<Mgc>(), Ok(mgc(1)));
        assert_eq!("udp://198.51.100.1:2944".parse::<Mgc>(), Ok(mgc(1)));
        assert!("sctp://198.51.100.1:2944".parse::<Mgc>().is_err());
        assert!("tcp://nowhere".parse::<Mgc>().is_err());
        assert_eq!(mgc(1).to_string(), "udp://198.51.100.1:2944");
        let tcp = |n| Mgc::tcp(SocketAddr::new(IpAddr::from([198, 51, 100, n]), 2944));
        let mut r = Registration::new(
            RegistrationConfig {
                mgcs: vec![tcp(1), mgc(2), tcp(3)],
                mid: MId::Ip4 {
                    addr: [198, 51, 100, 200],
                    port: Some(2944),
                },
                profile: ("imsagw".into(), 1),
                max_version: 3,
                timers: TransactionTimers::default(),
            },
            1,
        );
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        assert_eq!(sent(&acts)[0].0, tcp(1));
        // Redirected to a configured MGC: as configured (UDP); to another: as the redirector.
        r.reply(
            &reply_to(1, "C=-{SC=ROOT{SV{MG=[198.51.100.2]:2944}}}"),
            1,
            &mut |a| acts.push(a),
        );
        assert_eq!(sent(&acts).last().unwrap().0, mgc(2));
        r.reply(
            &reply_to(2, "C=-{SC=ROOT{SV{MG=[198.51.100.9]:2944}}}"),
            2,
            &mut |a| acts.push(a),
        );
        assert_eq!(
            sent(&acts).last().unwrap().0,
            Mgc::udp("198.51.100.9:2944".parse().unwrap())
        );
        // Retransmissions keep the transport.
        acts.clear();
        let mut r = Registration::new(
            RegistrationConfig {
                mgcs: vec![tcp(1)],
                mid: MId::Device("mg".into()),
                profile: ("imsagw".into(), 1),
                max_version: 3,
                timers: TransactionTimers::default(),
            },
            1,
        );
        r.start(0, &mut |a| acts.push(a));
        for now in 0..5_000 {
            r.poll(now, &mut |a| acts.push(a));
        }
        assert!(sent(&acts).len() > 2);
        assert!(sent(&acts).iter().all(|(to, _)| *to == tcp(1)));
    }

    #[test]
    fn refusals_and_exhausted_lists_are_reported() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        r.reply(&reply_to(1, "ER=402{\"go away\"}"), 1, &mut |a| {
            acts.push(a)
        });
        r.reply(
            &reply_to(2, "C=-{SC=ROOT{ER=461{\"unknown profile\"}}}"),
            2,
            &mut |a| acts.push(a),
        );
        assert_eq!(acts.last(), Some(&Action::AllMgcsFailed));
        assert_eq!(r.state(), &State::Failed);
    }

    #[test]
    fn after_a_registration_every_new_attempt_says_disconnected() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        assert!(sent(&acts)[0].1.contains("MT=RS"), "{}", sent(&acts)[0].1);
        r.reply(&reply_to(1, "C=-{SC=ROOT{SV{V=3}}}"), 1, &mut |a| {
            acts.push(a)
        });
        acts.clear();
        r.contact_lost(100, &mut |a| acts.push(a));
        // Nobody answers: the list is walked, then registration starts over.
        let mut t = 100;
        while !acts.contains(&Action::AllMgcsFailed) {
            t += 1000;
            assert!(t < 1_000_000, "never gave up");
            r.poll(t, &mut |a| acts.push(a));
        }
        acts.clear();
        r.start(t, &mut |a| acts.push(a));
        let s = sent(&acts);
        assert!(
            s[0].1.contains("MT=DC,RE=\"900 Service Restored\""),
            "{}",
            s[0].1
        );
    }

    #[test]
    fn loss_of_contact_comes_back_with_disconnected_and_shutdown_is_forced_905() {
        let mut r = reg();
        let mut acts = Vec::new();
        r.start(0, &mut |a| acts.push(a));
        r.reply(&reply_to(1, "C=-{SC=ROOT{SV{V=3}}}"), 1, &mut |a| {
            acts.push(a)
        });
        acts.clear();
        r.contact_lost(100, &mut |a| acts.push(a));
        let s = sent(&acts);
        assert_eq!(s[0].0, mgc(1), "back to the same MGC");
        assert!(
            s[0].1.contains("MT=DC,RE=\"900 Service Restored\""),
            "{}",
            s[0].1
        );
        r.reply(&reply_to(2, "C=-{SC=ROOT{SV{V=3}}}"), 101, &mut |a| {
            acts.push(a)
        });
        acts.clear();
        r.shutdown(200, &mut |a| acts.push(a));
        let s = sent(&acts);
        assert!(
            s[0].1
                .contains("MT=FO,RE=\"905 Termination taken out of service\""),
            "{}",
            s[0].1
        );
        assert_eq!(r.state(), &State::ShutDown);
    }
}
