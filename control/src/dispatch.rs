//! From datagrams to transactions: who may talk to us, what to answer to bytes that do not
//! decode, and at-most-once execution of requests through the [`ReplyCache`]. The MG model
//! plugs in as an [`Executor`]; sockets stay outside (the caller passes datagrams in and
//! sends what comes out), so every rule here is tested without a network.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::transaction::{Disposition, Millis, ReplyCache};
use h248::ast::*;
use h248::{decode, encode_into, Form};

/// Carries out one transaction request and says what to reply. `None` defers the reply: the
/// executor hands it back later through [`Dispatcher::complete`] (a Subtract waiting for the
/// worker's final statistics); duplicates meanwhile get Pending.
pub trait Executor {
    fn execute(
        &mut self,
        peer: SocketAddr,
        version: u8,
        request: &TransactionRequest,
    ) -> Option<ReplyResult>;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchCounters {
    pub datagrams: u64,
    /// From an address that is not a configured MGC: dropped.
    pub unknown_peer: u64,
    /// Not H.248 at all: dropped without an answer (no reflection of garbage).
    pub garbage: u64,
    /// Longer than the configured maximum: dropped.
    pub oversized: u64,
    /// Did not decode; answered with an error.
    pub decode_errors: u64,
    pub requests: u64,
    /// Refused because the transaction cache was full (answered 510).
    pub refused: u64,
    pub acks: u64,
    /// Replies and Pendings from the peer (for our own requests).
    pub peer_replies: u64,
    /// Requests refused with 505 before registration.
    pub before_registration: u64,
}

/// Replies, Pendings and acks the peer sent, for the owner of our outgoing requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromPeer {
    Reply(TransactionReply),
    Pending(u32),
}

pub struct Dispatcher<E: Executor> {
    executor: E,
    cache: ReplyCache,
    mid: MId,
    version: u8,
    mgcs: Vec<IpAddr>,
    form: Form,
    max_message: usize,
    counters: DispatchCounters,
    scratch: String,
    registered: bool,
}

impl<E: Executor> Dispatcher<E> {
    pub fn new(executor: E, cache: ReplyCache, mid: MId, version: u8, mgcs: Vec<IpAddr>) -> Self {
        Dispatcher {
            executor,
            cache,
            mid,
            version,
            mgcs,
            form: Form::Compact,
            max_message: 32 * 1024,
            counters: DispatchCounters::default(),
            scratch: String::with_capacity(4096),
            registered: true,
        }
    }

    /// The executor requests are handed to (the MG model).
    pub fn executor(&self) -> &E {
        &self.executor
    }

    pub fn executor_mut(&mut self) -> &mut E {
        &mut self.executor
    }

    /// Until the MGC has answered our ServiceChange, requests other than a ServiceChange are
    /// refused with 505 (H.248.1 11.4) and not executed.
    pub fn set_registered(&mut self, registered: bool) {
        self.registered = registered;
    }

    pub fn set_form(&mut self, form: Form) {
        self.form = form;
    }

    pub fn set_version(&mut self, version: u8) {
        self.version = version;
    }

    pub fn counters(&self) -> DispatchCounters {
        self.counters
    }

    pub fn cache(&mut self) -> &mut ReplyCache {
        &mut self.cache
    }

    /// Handles one datagram from `peer`. Answers go to `send` (to the request's source, as
    /// H.248.1 D.1 requires); replies and Pendings for our own requests go to `from_peer`.
    pub fn datagram(
        &mut self,
        peer: SocketAddr,
        data: &[u8],
        now: Millis,
        mut send: impl FnMut(SocketAddr, Arc<[u8]>),
        mut from_peer: impl FnMut(FromPeer),
    ) {
        self.counters.datagrams += 1;
        if !self.mgcs.contains(&peer.ip()) {
            self.counters.unknown_peer += 1;
            tracing::debug!(%peer, "datagram from an address that is not a configured MGC; dropped");
            return;
        }
        if data.len() > self.max_message {
            self.counters.oversized += 1;
            tracing::warn!(%peer, len = data.len(), "oversized H.248 message dropped");
            return;
        }
        if !looks_like_h248(data) {
            self.counters.garbage += 1;
            tracing::debug!(%peer, len = data.len(), "datagram is not H.248; dropped");
            return;
        }
        let msg = match decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.decode_errors += 1;
                tracing::warn!(%peer, offset = e.offset, code = e.code, expected = e.expected, "undecodable H.248 message");
                let text = format!("offset {}: expected {}", e.offset, e.expected);
                let error = ErrorDescriptor {
                    code: e.code,
                    text: Some(text.as_str().into()),
                };
                let body = match (e.code, e.transaction) {
                    // The header or the version is broken: a message-level error.
                    (400 | 406, None) if e.offset < header_end(data) => MessageBody::Error(error),
                    (_, tid) => reply_body(tid.unwrap_or(0), ReplyResult::Error(error)),
                };
                let bytes = self.encode(body);
                send(peer, bytes);
                return;
            }
        };
        let MessageBody::Transactions(transactions) = msg.body else {
            // A message-level error from the MGC: nothing to answer.
            return;
        };
        let version = msg.version.min(self.version);
        for t in transactions {
            match t {
                Transaction::Request(req) => {
                    self.counters.requests += 1;
                    if !self.registered && !is_service_change(&req) {
                        self.counters.before_registration += 1;
                        let bytes = self.encode_with(
                            version,
                            reply_body(req.id, error(505, "not registered yet")),
                        );
                        send(peer, bytes);
                        continue;
                    }
                    match self.cache.request(peer, req.id, now) {
                        Some(Disposition::Execute) => {
                            let result = self.executor.execute(peer, version, &req);
                            if let Some(result) = result {
                                self.complete(peer, req.id, version, result, now, &mut send);
                            }
                        }
                        Some(Disposition::Pending) => {
                            let bytes = self.encode_with(
                                version,
                                MessageBody::Transactions(vec![Transaction::Pending(req.id)]),
                            );
                            send(peer, bytes);
                        }
                        Some(Disposition::Resend(bytes)) => send(peer, bytes),
                        Some(Disposition::Ignore) => {}
                        None => {
                            self.counters.refused += 1;
                            let bytes = self.encode_with(
                                version,
                                reply_body(req.id, error(510, "transaction table full")),
                            );
                            send(peer, bytes);
                        }
                    }
                }
                Transaction::ResponseAck(ranges) => {
                    for r in ranges {
                        self.counters.acks += 1;
                        self.cache
                            .acknowledged(peer, r.first.min(r.last), r.first.max(r.last));
                    }
                }
                Transaction::Reply(r) => {
                    self.counters.peer_replies += 1;
                    if r.imm_ack_required {
                        // H.248.1 D.1.4: acknowledge at once.
                        let ack = MessageBody::Transactions(vec![Transaction::ResponseAck(vec![
                            AckRange {
                                first: r.id,
                                last: r.id,
                            },
                        ])]);
                        let bytes = self.encode_with(version, ack);
                        send(peer, bytes);
                    }
                    from_peer(FromPeer::Reply(r));
                }
                Transaction::Pending(tid) => {
                    self.counters.peer_replies += 1;
                    from_peer(FromPeer::Pending(tid));
                }
                Transaction::SegmentReply(_) => {}
            }
        }
    }

    /// Sends (and caches) the reply of a request whose execution was deferred.
    pub fn complete(
        &mut self,
        peer: SocketAddr,
        tid: u32,
        version: u8,
        result: ReplyResult,
        now: Millis,
        mut send: impl FnMut(SocketAddr, Arc<[u8]>),
    ) {
        let bytes = self.encode_with(version, reply_body(tid, result));
        self.cache.replied(peer, tid, Arc::clone(&bytes), now);
        send(peer, bytes);
    }

    /// TransactionPending for every request still running past the provisional timer
    /// (H.248.1 D.1.2); the caller calls this about once per provisional interval.
    pub fn send_pendings(&mut self, now: Millis, mut send: impl FnMut(SocketAddr, Arc<[u8]>)) {
        let overdue: Vec<_> = self.cache.overdue(now).collect();
        for (peer, tid) in overdue {
            let body = MessageBody::Transactions(vec![Transaction::Pending(tid)]);
            let bytes = self.encode(body);
            send(peer, bytes);
        }
    }

    fn encode(&mut self, body: MessageBody) -> Arc<[u8]> {
        self.encode_with(self.version, body)
    }

    fn encode_with(&mut self, version: u8, body: MessageBody) -> Arc<[u8]> {
        let msg = Message {
            auth: None,
            version,
            mid: self.mid.clone(),
            body,
        };
        self.scratch.clear();
        encode_into(&msg, self.form, &mut self.scratch);
        Arc::from(self.scratch.as_bytes())
    }
}

/// A message body with one reply.
fn reply_body(id: u32, result: ReplyResult) -> MessageBody {
    MessageBody::Transactions(vec![Transaction::Reply(TransactionReply {
        id,
        segment: None,
        imm_ack_required: false,
        result,
    })])
}

fn error(code: u16, text: &str) -> ReplyResult {
    ReplyResult::Error(ErrorDescriptor {
        code,
        text: Some(text.into()),
    })
}

fn is_service_change(req: &TransactionRequest) -> bool {
    req.actions.iter().all(|a| {
        a.commands
            .iter()
            .all(|c| matches!(c.command, Command::ServiceChange { .. }))
    })
}

/// The message starts (after white space and comments) with `MEGACO/` or `!/`, or with an
/// authentication header: worth an answer.
fn looks_like_h248(data: &[u8]) -> bool {
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b';' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    let rest = &data[i..];
    let starts = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
    starts(b"MEGACO/") || starts(b"!/") || starts(b"AU") || starts(b"AUTHENTICATION")
}

/// Where the header (version and mId) ends, roughly: the first line end or the first `T=`-like
/// keyword start after the mId. Used only to tell a header error from a body error.
fn header_end(data: &[u8]) -> usize {
    let first_space = data
        .iter()
        .position(|c| *c == b' ' || *c == b'\t')
        .unwrap_or(data.len());
    let after = &data[first_space..];
    let mid_len = after
        .iter()
        .skip_while(|c| **c == b' ' || **c == b'\t')
        .take_while(|c| !c.is_ascii_whitespace())
        .count();
    (first_space + 1 + mid_len).min(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::TransactionTimers;

    struct Counting(u32);

    impl Executor for Counting {
        fn execute(
            &mut self,
            _: SocketAddr,
            _: u8,
            req: &TransactionRequest,
        ) -> Option<ReplyResult> {
            self.0 += 1;
            Some(ReplyResult::Actions(vec![ActionReply {
                context: ContextId::Id(100 + req.id),
                properties: vec![],
                replies: vec![],
                error: None,
            }]))
        }
    }

    fn mgc() -> SocketAddr {
        "198.51.100.1:2946".parse().unwrap()
    }

    fn dispatcher() -> Dispatcher<Counting> {
        Dispatcher::new(
            Counting(0),
            ReplyCache::new(TransactionTimers::default(), 1000),
            MId::Ip4 {
                addr: [198, 51, 100, 2],
                port: Some(2944),
            },
            3,
            vec![mgc().ip()],
        )
    }

    fn feed(
        d: &mut Dispatcher<Counting>,
        from: SocketAddr,
        data: &str,
        now: Millis,
    ) -> Vec<String> {
        let mut out = Vec::new();
        d.datagram(
            from,
            data.as_bytes(),
            now,
            |to, b| {
                assert_eq!(to, from, "answers go to the request's source");
                out.push(String::from_utf8(b.to_vec()).unwrap());
            },
            |_| {},
        );
        out
    }

    const ADD: &str = "!/3 [198.51.100.1]:2946 T=9{C=${A=${M{O{MO=SR}}}}}";

    #[test]
    fn a_reply_that_asks_for_an_immediate_ack_gets_one() {
        let mut d = dispatcher();
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 P=77{IA,C=-{SC=ROOT{SV{V=3}}}}",
            0,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("K{77}"), "{}", out[0]);
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 P=78{C=-{SC=ROOT{SV{V=3}}}}",
            0,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_retransmitted_request_runs_once_and_gets_the_identical_reply() {
        let mut d = dispatcher();
        let first = feed(&mut d, mgc(), ADD, 0);
        let again = feed(&mut d, mgc(), ADD, 1000);
        assert_eq!(first, again);
        assert_eq!(first[0], "!/3 [198.51.100.2]:2944\nP=9{C=109}");
        assert_eq!(d.executor().0, 1, "executed once");
        // After an ack, the ID is remembered: a late repeat is silently ignored.
        assert!(feed(&mut d, mgc(), "!/3 [198.51.100.1]:2946 K{9}", 1100).is_empty());
        assert!(feed(&mut d, mgc(), ADD, 1200).is_empty());
        assert_eq!(d.executor().0, 1);
        assert_eq!(d.counters().acks, 1);
    }

    #[test]
    fn several_transactions_in_one_message_each_get_an_answer() {
        let mut d = dispatcher();
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 T=1{C=-{N=t1{OE=1{a/b}}}} T=2{C=-{N=t1{OE=1{a/b}}}}",
            0,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(d.executor().0, 2);
    }

    #[test]
    fn unknown_peers_garbage_and_oversized_datagrams_are_dropped_and_counted() {
        let mut d = dispatcher();
        let stranger: SocketAddr = "203.0.113.66:2944".parse().unwrap();
        assert!(feed(&mut d, stranger, ADD, 0).is_empty());
        assert!(feed(&mut d, mgc(), "GET / HTTP/1.1\r\n\r\n", 0).is_empty());
        assert!(feed(&mut d, mgc(), "\u{0}\u{1}\u{2}", 0).is_empty());
        let huge = format!(
            "!/3 [198.51.100.1]:2946 T=1{{C=-{{N=t1{{OE=1{{a/b}}}}}}}}{}",
            " ".repeat(40_000)
        );
        assert!(feed(&mut d, mgc(), &huge, 0).is_empty());
        let c = d.counters();
        assert_eq!((c.unknown_peer, c.garbage, c.oversized), (1, 2, 1));
        assert_eq!(d.executor().0, 0);
        // And it keeps serving.
        assert_eq!(feed(&mut d, mgc(), ADD, 0).len(), 1);
    }

    #[test]
    fn undecodable_messages_are_answered_at_the_right_level() {
        let mut d = dispatcher();
        // A broken command in a known transaction: that transaction gets 442.
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 T=5{C=1{A=t1{Q{}}}}",
            0,
        );
        assert!(
            out[0].starts_with("!/3 [198.51.100.2]:2944\nP=5{ER=442{\"offset"),
            "{}",
            out[0]
        );
        // The transaction ID cannot be read: transaction 0 with 403.
        let out = feed(&mut d, mgc(), "!/3 [198.51.100.1]:2946 T=x{C=1{}}", 0);
        assert!(out[0].contains("P=0{ER=403{"), "{}", out[0]);
        // A truncated message.
        let out = feed(&mut d, mgc(), &ADD[..30], 0);
        assert!(out[0].contains("P=9{ER=4"), "{}", out[0]);
        // A broken header: a message-level error.
        let out = feed(
            &mut d,
            mgc(),
            "MEGACO/3 [198.51.100.300]:2946 T=1{C=-{}}",
            0,
        );
        assert!(out[0].contains("\nER=400{"), "{}", out[0]);
        assert_eq!(d.counters().decode_errors, 4);
        assert_eq!(d.executor().0, 0);
    }

    #[test]
    fn a_full_transaction_table_answers_510_without_executing() {
        let mut d = Dispatcher::new(
            Counting(0),
            ReplyCache::new(TransactionTimers::default(), 1),
            MId::Ip4 {
                addr: [198, 51, 100, 2],
                port: Some(2944),
            },
            3,
            vec![mgc().ip()],
        );
        feed(&mut d, mgc(), ADD, 0);
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 T=10{C=-{N=t1{OE=1{a/b}}}}",
            0,
        );
        assert!(out[0].contains("P=10{ER=510"), "{}", out[0]);
        assert_eq!(d.executor().0, 1);
        assert_eq!(d.counters().refused, 1);
    }

    #[test]
    fn before_registration_requests_get_505_and_are_not_executed() {
        let mut d = dispatcher();
        d.set_registered(false);
        let out = feed(&mut d, mgc(), ADD, 0);
        assert!(out[0].contains("P=9{ER=505"), "{}", out[0]);
        // The MGC's own ServiceChange is still served.
        let out = feed(
            &mut d,
            mgc(),
            "!/3 [198.51.100.1]:2946 T=11{C=-{SC=ROOT{SV{MT=RS,RE=\"901\"}}}}",
            0,
        );
        assert_eq!(out[0], "!/3 [198.51.100.2]:2944\nP=11{C=111}");
        assert_eq!(d.executor().0, 1);
        d.set_registered(true);
        assert_eq!(
            feed(&mut d, mgc(), ADD, 0)[0],
            "!/3 [198.51.100.2]:2944\nP=9{C=109}"
        );
        assert_eq!(d.counters().before_registration, 1);
    }

    #[test]
    fn replies_and_pendings_from_the_mgc_go_to_the_owner_of_our_requests() {
        let mut d = dispatcher();
        let mut got = Vec::new();
        d.datagram(
            mgc(),
            b"!/3 [198.51.100.1]:2946 P=1{C=-{SC=ROOT{SV{V=3}}}} PN=2{}",
            0,
            |_, _| panic!("nothing to send"),
            |f| got.push(f),
        );
        assert!(matches!(
            got[0],
            FromPeer::Reply(TransactionReply { id: 1, .. })
        ));
        assert_eq!(got[1], FromPeer::Pending(2));
    }
}
