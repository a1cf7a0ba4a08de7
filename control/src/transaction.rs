//! H.248.1 Annex D transaction handling for the MG, independent of sockets and time sources
//! (the caller passes `now`), so it is tested deterministically.
//!
//! Incoming requests (D.1.1, D.1.2): a request is executed at most once per (peer,
//! transaction ID). While it runs, a repeat is answered with Pending; once answered, a repeat
//! gets the identical reply bytes; after a TransactionResponseAck the reply may be dropped but
//! the ID is remembered, so a late repeat is ignored. Everything is forgotten LONG-TIMER after
//! the reply.
//!
//! Our own requests (D.1.3 to D.1.5): retransmitted with exponential back-off (capped), a
//! Pending from the peer switches to the provisional-response timer, and the request is given
//! up once T-MAX has passed since it was first sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A point in time as the caller's clock counts it (monotonic).
pub type Millis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionTimers {
    /// How long replies and transaction IDs are remembered (LONG-TIMER, 30 s suggested).
    pub long_timer: Duration,
    /// How long a request may run before the MG sends Pending (the MG's provisional
    /// response timer, root/MGProvisionalResponseTimerValue).
    pub provisional: Duration,
    /// First retransmission timer of our own requests.
    pub initial_retransmit: Duration,
    /// Cap of the back-off (D.1.3 suggests 4 s).
    pub max_retransmit: Duration,
    /// Give up on our request this long after first sending it (T-MAX).
    pub t_max: Duration,
    /// Repeat interval once the peer said Pending (root/MGCProvisionalResponseTimerValue).
    pub after_pending: Duration,
}

impl Default for TransactionTimers {
    fn default() -> Self {
        TransactionTimers {
            long_timer: Duration::from_secs(30),
            provisional: Duration::from_millis(500),
            initial_retransmit: Duration::from_millis(200),
            max_retransmit: Duration::from_secs(4),
            t_max: Duration::from_secs(30),
            after_pending: Duration::from_secs(4),
        }
    }
}

fn ms(d: Duration) -> Millis {
    d.as_millis() as Millis
}

/// What to do with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// New: execute it, then call [`ReplyCache::replied`].
    Execute,
    /// A repeat of one still running: answer with Pending (D.1.2).
    Pending,
    /// A repeat of one already answered: send these exact bytes again.
    Resend(Arc<[u8]>),
    /// A repeat of one answered and acknowledged: ignore it.
    Ignore,
}

#[derive(Debug, Clone)]
enum Entry {
    Running {
        since: Millis,
    },
    Replied {
        reply: Option<Arc<[u8]>>,
        at: Millis,
    },
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    pub executed: u64,
    pub duplicates_resent: u64,
    pub duplicates_pending: u64,
    pub duplicates_ignored: u64,
    pub acks: u64,
    /// New requests refused because the cache was at its bound.
    pub refused_full: u64,
}

/// The at-most-once cache of incoming requests, bounded in entries.
/// Entries a reply cache keeps room for however quiet it gets.
const SHRINK_FLOOR: usize = 1024;

pub struct ReplyCache {
    timers: TransactionTimers,
    entries: HashMap<(SocketAddr, u32), Entry>,
    /// (time the entry may expire, key), in time order; stale items are skipped.
    expiry: VecDeque<(Millis, (SocketAddr, u32))>,
    max_entries: usize,
    counters: CacheCounters,
    /// Times the table gave its room back.
    shrinks: u64,
    /// Entries still running: the Pending sweep walks the table only when there are some.
    running: usize,
}

impl ReplyCache {
    pub fn new(timers: TransactionTimers, max_entries: usize) -> Self {
        ReplyCache {
            timers,
            entries: HashMap::new(),
            expiry: VecDeque::new(),
            max_entries,
            counters: CacheCounters::default(),
            shrinks: 0,
            running: 0,
        }
    }

    pub fn counters(&self) -> CacheCounters {
        self.counters
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Classifies a request from `peer` with transaction `tid`. `None` means the cache is
    /// full: the caller answers with error 510 (insufficient resources) without executing.
    pub fn request(&mut self, peer: SocketAddr, tid: u32, now: Millis) -> Option<Disposition> {
        self.expire(now);
        match self.entries.get(&(peer, tid)) {
            Some(Entry::Running { .. }) => {
                self.counters.duplicates_pending += 1;
                Some(Disposition::Pending)
            }
            Some(Entry::Replied { reply: Some(r), .. }) => {
                self.counters.duplicates_resent += 1;
                Some(Disposition::Resend(Arc::clone(r)))
            }
            Some(Entry::Replied { reply: None, .. }) => {
                self.counters.duplicates_ignored += 1;
                Some(Disposition::Ignore)
            }
            None => {
                if self.entries.len() >= self.max_entries {
                    self.counters.refused_full += 1;
                    return None;
                }
                self.counters.executed += 1;
                self.entries
                    .insert((peer, tid), Entry::Running { since: now });
                self.running += 1;
                Some(Disposition::Execute)
            }
        }
    }

    /// Requests still running for longer than the provisional timer (the caller sends
    /// Pending for each and then calls again later).
    pub fn overdue(&self, now: Millis) -> impl Iterator<Item = (SocketAddr, u32)> + '_ {
        let limit = ms(self.timers.provisional);
        // Nearly always none: a million remembered replies are not walked for nothing.
        let walk = if self.running > 0 {
            self.entries.iter()
        } else {
            Default::default()
        };
        walk.filter_map(move |(k, e)| match e {
            Entry::Running { since } if now.saturating_sub(*since) >= limit => Some(*k),
            _ => None,
        })
    }

    /// Records the reply sent for a request, byte for byte.
    pub fn replied(&mut self, peer: SocketAddr, tid: u32, reply: Arc<[u8]>, now: Millis) {
        let was = self.entries.insert(
            (peer, tid),
            Entry::Replied {
                reply: Some(reply),
                at: now,
            },
        );
        if let Some(Entry::Running { .. }) = was {
            self.running -= 1;
        }
        self.expiry
            .push_back((now + ms(self.timers.long_timer), (peer, tid)));
    }

    /// A TransactionResponseAck from `peer` for `first..=last`: the replies can go, the IDs
    /// stay until LONG-TIMER.
    pub fn acknowledged(&mut self, peer: SocketAddr, first: u32, last: u32) {
        // Ranges come from the peer: walk the smaller of the range and our entries.
        let span = last.saturating_sub(first) as usize + 1;
        if span <= self.entries.len() {
            for tid in first..=last {
                if let Some(Entry::Replied { reply, .. }) = self.entries.get_mut(&(peer, tid)) {
                    *reply = None;
                    self.counters.acks += 1;
                }
            }
        } else {
            for ((p, tid), e) in self.entries.iter_mut() {
                if *p == peer && (first..=last).contains(tid) {
                    if let Entry::Replied { reply, .. } = e {
                        *reply = None;
                        self.counters.acks += 1;
                    }
                }
            }
        }
    }

    /// Forgets everything answered more than LONG-TIMER ago.
    pub fn expire(&mut self, now: Millis) {
        let mut expired_any = false;
        while let Some(&(at, key)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            let expired = matches!(self.entries.get(&key), Some(Entry::Replied { at: t, .. }) if t + ms(self.timers.long_timer) <= now);
            if expired {
                self.entries.remove(&key);
                expired_any = true;
            }
        }
        if expired_any {
            self.give_back_room();
        }
    }

    /// After a burst has expired, the table and the expiry queue give their room back: a
    /// burst of a million transactions would otherwise hold its tens of megabytes for the
    /// life of the process. Only when a quarter or less is used, so a steady load that
    /// rises and falls a little does not rehash over and over (each rehash is O(entries),
    /// paid at most once per halving).
    fn give_back_room(&mut self) {
        if self.entries.capacity() > SHRINK_FLOOR
            && self.entries.len() <= self.entries.capacity() / 4
        {
            self.entries.shrink_to(self.entries.len() * 2);
            self.shrinks += 1;
        }
        if self.expiry.capacity() > SHRINK_FLOOR && self.expiry.len() <= self.expiry.capacity() / 4
        {
            self.expiry.shrink_to(self.expiry.len() * 2);
        }
    }

    /// Room the table and the queue hold now, in entries, and how often the table gave
    /// room back.
    pub fn capacity(&self) -> (usize, usize, u64) {
        (
            self.entries.capacity(),
            self.expiry.capacity(),
            self.shrinks,
        )
    }

    /// Forgets everything (MG restart: H.248.1 D.1.1 says to process requests without ID
    /// checks after a restart).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.expiry.clear();
        self.running = 0;
    }
}

/// What the caller must do for its own requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Retransmit {
        tid: u32,
        to: SocketAddr,
        bytes: Arc<[u8]>,
    },
    /// No reply within T-MAX: the peer is considered lost (H.248.1 D.1.3, 11.5).
    GaveUp { tid: u32, to: SocketAddr },
}

struct Sent {
    to: SocketAddr,
    bytes: Arc<[u8]>,
    first: Millis,
    next: Millis,
    interval: Millis,
    pending: bool,
}

/// Our own outstanding requests (ServiceChange, Notify) and their retransmission.
pub struct Outstanding {
    timers: TransactionTimers,
    sent: HashMap<u32, Sent>,
    next_tid: u32,
    pub retransmissions: u64,
}

impl Outstanding {
    pub fn new(timers: TransactionTimers, first_tid: u32) -> Self {
        Outstanding {
            timers,
            sent: HashMap::new(),
            next_tid: first_tid.max(1),
            retransmissions: 0,
        }
    }

    /// A fresh transaction ID for a new request (never 0, wraps past u32::MAX).
    pub fn allocate_tid(&mut self) -> u32 {
        let tid = self.next_tid;
        self.next_tid = self.next_tid.checked_add(1).unwrap_or(1);
        tid
    }

    /// Records a request just sent.
    pub fn sent(&mut self, tid: u32, to: SocketAddr, bytes: Arc<[u8]>, now: Millis) {
        let interval = ms(self.timers.initial_retransmit);
        self.sent.insert(
            tid,
            Sent {
                to,
                bytes,
                first: now,
                next: now + interval,
                interval,
                pending: false,
            },
        );
    }

    /// The peer answered: the request is done. Returns false for a reply we did not expect
    /// (late, duplicate or foreign).
    pub fn reply(&mut self, tid: u32) -> bool {
        self.sent.remove(&tid).is_some()
    }

    /// The peer said Pending: wait longer before repeating.
    pub fn pending(&mut self, tid: u32, now: Millis) {
        if let Some(s) = self.sent.get_mut(&tid) {
            s.pending = true;
            s.interval = ms(self.timers.after_pending);
            s.next = now + s.interval;
        }
    }

    pub fn is_outstanding(&self, tid: u32) -> bool {
        self.sent.contains_key(&tid)
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Retransmissions due and requests given up, at `now`.
    pub fn poll(&mut self, now: Millis, mut act: impl FnMut(Outgoing)) {
        let t_max = ms(self.timers.t_max);
        let cap = ms(self.timers.max_retransmit);
        let mut gave_up = Vec::new();
        for (&tid, s) in self.sent.iter_mut() {
            if now.saturating_sub(s.first) >= t_max {
                gave_up.push(tid);
                continue;
            }
            if now < s.next {
                continue;
            }
            act(Outgoing::Retransmit {
                tid,
                to: s.to,
                bytes: Arc::clone(&s.bytes),
            });
            self.retransmissions += 1;
            if !s.pending {
                // Exponential back-off after the first retry (D.1.3), capped.
                s.interval = (s.interval * 2).min(cap);
            }
            s.next = now + s.interval;
        }
        for tid in gave_up {
            if let Some(s) = self.sent.remove(&tid) {
                act(Outgoing::GaveUp { tid, to: s.to });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "198.51.100.1:2944".parse().unwrap()
    }

    fn bytes(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn a_request_runs_once_and_repeats_get_pending_then_the_same_reply() {
        let mut c = ReplyCache::new(TransactionTimers::default(), 100);
        assert_eq!(c.request(peer(), 7, 0), Some(Disposition::Execute));
        assert_eq!(c.request(peer(), 7, 10), Some(Disposition::Pending));
        let other: SocketAddr = "198.51.100.9:2944".parse().unwrap();
        assert_eq!(
            c.request(other, 7, 10),
            Some(Disposition::Execute),
            "IDs are per peer"
        );
        assert_eq!(c.overdue(600).collect::<Vec<_>>().len(), 2);
        c.replied(peer(), 7, bytes("P=7{C=1{A=t1}}"), 700);
        assert_eq!(c.overdue(700).count(), 1);
        c.replied(other, 7, bytes("P=7{C=2{A=t1}}"), 700);
        assert_eq!(c.overdue(900).count(), 0, "both answered");
        c.request(other, 8, 900);
        assert_eq!(c.overdue(1_500).count(), 1, "a new one still seen");
        assert_eq!(
            c.request(peer(), 7, 800),
            Some(Disposition::Resend(bytes("P=7{C=1{A=t1}}")))
        );
        assert_eq!(c.counters().executed, 3);
        assert_eq!(c.counters().duplicates_resent, 1);
    }

    #[test]
    fn an_acknowledged_reply_is_dropped_but_its_id_remembered_until_long_timer() {
        let t = TransactionTimers::default();
        let mut c = ReplyCache::new(t, 100);
        for tid in 1..=5 {
            c.request(peer(), tid, 0);
            c.replied(peer(), tid, bytes("reply"), 0);
        }
        c.acknowledged(peer(), 2, 4);
        assert_eq!(c.request(peer(), 3, 100), Some(Disposition::Ignore));
        assert!(matches!(
            c.request(peer(), 5, 100),
            Some(Disposition::Resend(_))
        ));
        // A huge range from a peer costs no more than our entries.
        c.acknowledged(peer(), 0, u32::MAX);
        assert_eq!(c.request(peer(), 5, 200), Some(Disposition::Ignore));
        // After LONG-TIMER the IDs are forgotten: a request with an old ID is new again.
        let later = ms(t.long_timer) + 1;
        assert_eq!(c.request(peer(), 3, later), Some(Disposition::Execute));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_burst_gives_its_room_back_once_it_has_expired() {
        let t = TransactionTimers::default();
        let mut c = ReplyCache::new(t, 1 << 20);
        for tid in 1..=100_000 {
            c.request(peer(), tid, 0);
            c.replied(peer(), tid, bytes("reply"), 0);
        }
        let (table, queue, _) = c.capacity();
        assert!(table >= 100_000 && queue >= 100_000);
        // A trickle that stays: answered later, so still remembered after the burst expires.
        let late = ms(t.long_timer) / 2;
        for tid in 200_001..=200_010 {
            c.request(peer(), tid, late);
            c.replied(peer(), tid, bytes("reply"), late);
        }
        c.expire(ms(t.long_timer) + 1);
        assert_eq!(c.len(), 10);
        let (table, queue, shrinks) = c.capacity();
        assert_eq!(shrinks, 1);
        assert!(table <= 2 * SHRINK_FLOOR, "table kept room for {table}");
        assert!(queue <= 2 * SHRINK_FLOOR, "queue kept room for {queue}");
        // What is left still works.
        assert_eq!(
            c.request(peer(), 200_005, ms(t.long_timer) + 2),
            Some(Disposition::Resend(bytes("reply")))
        );
        assert_eq!(
            c.request(peer(), 5, ms(t.long_timer) + 2),
            Some(Disposition::Execute)
        );
    }

    #[test]
    fn a_steady_load_keeps_its_room() {
        let t = TransactionTimers::default();
        let mut c = ReplyCache::new(t, 1 << 20);
        let step = ms(t.long_timer) / 10;
        let mut tid = 0;
        // 5 000 transactions per tenth of LONG-TIMER: 50 000 remembered at any time, and
        // between 45 000 and 50 000 whenever entries expire.
        for round in 0..40u64 {
            for _ in 0..5_000 {
                tid += 1;
                c.request(peer(), tid, round * step);
                c.replied(peer(), tid, bytes("reply"), round * step);
            }
        }
        assert!(c.len() >= 45_000);
        assert_eq!(
            c.capacity().2,
            0,
            "a steady load rehashed to give room back"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_says_so() {
        let mut c = ReplyCache::new(TransactionTimers::default(), 2);
        assert!(c.request(peer(), 1, 0).is_some());
        assert!(c.request(peer(), 2, 0).is_some());
        assert_eq!(c.request(peer(), 3, 0), None);
        assert_eq!(c.counters().refused_full, 1);
        // A repeat of a known ID is still answered.
        assert_eq!(c.request(peer(), 1, 0), Some(Disposition::Pending));
    }

    #[test]
    fn our_requests_back_off_to_the_cap_then_give_up_at_t_max() {
        let t = TransactionTimers::default();
        let mut o = Outstanding::new(t, 1);
        let tid = o.allocate_tid();
        o.sent(tid, peer(), bytes("T=1{...}"), 0);
        let mut at = Vec::new();
        let mut gave_up = None;
        let mut now = 0;
        while gave_up.is_none() && now <= 40_000 {
            o.poll(now, |a| match a {
                Outgoing::Retransmit { .. } => at.push(now),
                Outgoing::GaveUp { tid, .. } => gave_up = Some((tid, now)),
            });
            now += 1;
        }
        // 200, then 400, 800, 1600, 3200, and 4000 ms apart from then on.
        let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(at[0], 200);
        assert_eq!(&gaps[..5], &[400, 800, 1600, 3200, 4000]);
        assert!(gaps[5..].iter().all(|g| *g == 4000));
        assert_eq!(gave_up, Some((1, 30_000)));
        assert!(o.is_empty());
    }

    #[test]
    fn a_reply_ends_retransmission_and_pending_slows_it() {
        let mut o = Outstanding::new(TransactionTimers::default(), u32::MAX);
        let a = o.allocate_tid();
        let b = o.allocate_tid();
        assert_eq!((a, b), (u32::MAX, 1), "IDs wrap and skip 0");
        o.sent(a, peer(), bytes("a"), 0);
        o.sent(b, peer(), bytes("b"), 0);
        assert!(o.reply(a));
        assert!(!o.reply(a), "a second reply is not expected");
        o.pending(b, 100);
        let mut seen = Vec::new();
        for now in 0..4_200 {
            o.poll(now, |x| seen.push((now, x)));
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, 4_100);
    }
}
