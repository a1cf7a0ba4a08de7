//! Notify requests to the registered MGC (H.248.1 7.2.7): one transaction per observed event,
//! retransmitted with back-off like any request of ours, and given up after T-MAX (which is
//! loss of contact for the caller to act on).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::iq::IqEvent;
use crate::mg::Notification;
use crate::transaction::{Millis, Outgoing, Outstanding, TransactionTimers};
use h248::ast::*;
use h248::{encode, Form};

/// Our Notify transaction IDs start here, apart from registration's, so a reply finds its
/// owner by its ID alone.
pub const FIRST_NOTIFY_TID: u32 = 0x4000_0000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyCounters {
    pub sent: u64,
    pub answered: u64,
    /// Answered with an error by the MGC.
    pub refused: u64,
    pub given_up: u64,
    /// Observed while no MGC was registered: not sent.
    pub unregistered: u64,
}

pub struct Notifier {
    outstanding: Outstanding,
    /// What each outstanding Notify reported.
    sent: std::collections::HashMap<u32, (Text, IqEvent)>,
    mid: MId,
    counters: NotifyCounters,
}

impl Notifier {
    pub fn new(timers: TransactionTimers, mid: MId) -> Self {
        Notifier {
            outstanding: Outstanding::new(timers, FIRST_NOTIFY_TID),
            sent: std::collections::HashMap::new(),
            mid,
            counters: NotifyCounters::default(),
        }
    }

    pub fn counters(&self) -> NotifyCounters {
        self.counters
    }

    pub fn retransmissions(&self) -> u64 {
        self.outstanding.retransmissions
    }

    /// Sends `n` to the MGC (`None`: not registered, counted and dropped).
    pub fn send(
        &mut self,
        n: &Notification,
        mgc: Option<(SocketAddr, u8)>,
        now: Millis,
    ) -> Option<(SocketAddr, Arc<[u8]>)> {
        let Some((to, version)) = mgc else {
            self.counters.unregistered += 1;
            tracing::warn!(termination = %n.termination, event = ?n.event, "event observed while not registered; no Notify");
            return None;
        };
        let tid = self.outstanding.allocate_tid();
        let bytes = self.message(tid, version, n);
        self.outstanding.sent(tid, to, Arc::clone(&bytes), now);
        self.sent.insert(tid, (n.termination.clone(), n.event));
        self.counters.sent += 1;
        tracing::info!(termination = %n.termination, event = ?n.event, tid, "Notify");
        Some((to, bytes))
    }

    fn message(&self, tid: u32, version: u8, n: &Notification) -> Arc<[u8]> {
        let observed = ObservedEvents {
            request_id: RequestId::Id(n.request_id),
            events: vec![ObservedEvent {
                timestamp: Some(TimeStamp(timestamp(SystemTime::now()).as_str().into())),
                name: n.name.clone(),
                parameters: n
                    .parameters
                    .iter()
                    .map(|(k, v)| ObservedEventParameter::Other {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            }],
        };
        let msg = Message {
            auth: None,
            version,
            mid: self.mid.clone(),
            body: MessageBody::Transactions(vec![Transaction::Request(TransactionRequest {
                id: tid,
                actions: vec![ActionRequest {
                    context: n.context,
                    properties: vec![],
                    audit: None,
                    commands: vec![CommandRequest {
                        optional: false,
                        wildcard_reply: false,
                        command: Command::Notify {
                            terminations: vec![TerminationId(n.termination.clone())],
                            observed,
                            error: None,
                        },
                    }],
                }],
            })]),
        };
        Arc::from(encode(&msg, Form::Compact).into_bytes())
    }

    /// A reply from the MGC; false if it is not for one of our Notify requests.
    pub fn reply(&mut self, reply: &TransactionReply) -> bool {
        self.answer(reply).is_some()
    }

    /// As `reply`; `Some(Some(termination))` when the MGC refused a heartbeat because it
    /// does not know the termination (411, 430, 435): a hanging termination.
    pub fn answer(&mut self, reply: &TransactionReply) -> Option<Option<Text>> {
        if !self.outstanding.reply(reply.id) {
            return None;
        }
        let what = self.sent.remove(&reply.id);
        self.counters.answered += 1;
        let error = match &reply.result {
            ReplyResult::Error(e) => Some(e.code),
            ReplyResult::Actions(a) => a.iter().find_map(|a| a.error.as_ref().map(|e| e.code)),
        };
        if let Some(code) = error {
            self.counters.refused += 1;
            tracing::warn!(tid = reply.id, code, "MGC refused a Notify");
            if let (Some((term, event)), 411 | 430 | 435) = (what, code) {
                if event == IqEvent::Heartbeat {
                    return Some(Some(term));
                }
            }
        }
        Some(None)
    }

    pub fn pending(&mut self, tid: u32, now: Millis) {
        self.outstanding.pending(tid, now);
    }

    /// Retransmissions due; returns true if a Notify was given up (contact lost).
    pub fn poll(&mut self, now: Millis, mut send: impl FnMut(SocketAddr, Arc<[u8]>)) -> bool {
        let mut lost = false;
        let counters = &mut self.counters;
        let sent = &mut self.sent;
        self.outstanding.poll(now, |o| match o {
            Outgoing::Retransmit { to, bytes, .. } => send(to, bytes),
            Outgoing::GaveUp { tid, to } => {
                sent.remove(&tid);
                counters.given_up += 1;
                tracing::warn!(tid, mgc = %to, "MGC did not answer a Notify");
                lost = true;
            }
        });
        lost
    }
}

/// H.248 TimeStamp `yyyymmddThhmmsshh` (UTC, hundredths of a second).
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis() / 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use h248::decode;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_740_823_533_770);
        assert_eq!(timestamp(t), "20250301T10053377");
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T00000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "20000229T00000000");
    }

    fn notification() -> Notification {
        Notification {
            context: ContextId::Id(7001),
            termination: "tcp/access/17".into(),
            request_id: 104,
            event: IqEvent::TcpEstablished,
            name: PkgdName {
                package: "tcpc".into(),
                item: "est".into(),
            },
            parameters: vec![],
        }
    }

    #[test]
    fn notify_decodes_and_is_retransmitted_until_answered() {
        let mid = MId::Ip4 {
            addr: [127, 0, 0, 1],
            port: Some(2944),
        };
        let timers = TransactionTimers::default();
        let mut n = Notifier::new(timers, mid);
        let mgc: SocketAddr = "127.0.0.1:2945".parse().unwrap();
        assert!(n.send(&notification(), None, 0).is_none());
        let (to, bytes) = n.send(&notification(), Some((mgc, 3)), 0).unwrap();
        assert_eq!(to, mgc);
        let msg = decode(&bytes).unwrap();
        let MessageBody::Transactions(ts) = msg.body else {
            panic!()
        };
        let Transaction::Request(req) = &ts[0] else {
            panic!()
        };
        assert_eq!(req.id, FIRST_NOTIFY_TID);
        assert_eq!(req.actions[0].context, ContextId::Id(7001));
        let mut resent = 0;
        assert!(!n.poll(10_000, |_, b| {
            assert_eq!(b, bytes);
            resent += 1
        }));
        assert_eq!(resent, 1);
        let reply = TransactionReply {
            id: req.id,
            segment: None,
            imm_ack_required: false,
            result: ReplyResult::Actions(vec![]),
        };
        assert!(n.reply(&reply));
        assert!(!n.reply(&reply), "a second reply is not ours any more");
        assert!(!n.poll(100_000, |_, _| panic!("nothing outstanding")));
        assert_eq!(n.counters().answered, 1);
        assert_eq!(n.counters().unregistered, 1);
    }

    #[test]
    fn unanswered_notify_is_given_up_after_t_max() {
        let mid = MId::Ip4 {
            addr: [127, 0, 0, 1],
            port: None,
        };
        let timers = TransactionTimers::default();
        let mut n = Notifier::new(timers, mid);
        let mgc: SocketAddr = "127.0.0.1:2945".parse().unwrap();
        n.send(&notification(), Some((mgc, 3)), 0).unwrap();
        let t_max = timers.t_max.as_millis() as u64;
        assert!(!n.poll(t_max - 1, |_, _| {}));
        assert!(n.poll(t_max, |_, _| {}));
        assert_eq!(n.counters().given_up, 1);
    }
}
