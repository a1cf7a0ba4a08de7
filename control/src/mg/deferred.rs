//! Subtract replies that wait for the worker's final statistics of the legs they released
//! (H.248.1 7.2.3: Subtract returns the statistics the termination kept until it was taken
//! out). Duplicates of the request get Pending meanwhile (the dispatcher's job); a reply is
//! sent once every released leg has reported, or after the statistics wait with the last
//! counts known.

use std::collections::HashMap;
use std::net::SocketAddr;

use dataplane::contract::{LegStats, TerminationKey};
use h248::ast::*;

use super::stats::statistics;
use super::{DataPlane, Mg};
use crate::transaction::Millis;

/// A Subtract reply waiting for the final statistics of the legs it released.
#[derive(Debug)]
struct Deferred {
    peer: SocketAddr,
    tid: u32,
    version: u8,
    result: ReplyResult,
    waiting: Vec<TerminationKey>,
    deadline: Millis,
}

/// A subtracted termination whose final statistics have not all arrived.
#[derive(Debug)]
pub struct Released {
    pub name: Text,
    pub stats: LegStats,
    pub drops: super::stats::Drops,
    pub final_stats: bool,
    pub established_at: Option<Millis>,
    pub closed_at: Option<Millis>,
}

#[derive(Debug, Default)]
pub struct DeferredReplies {
    /// Terminations released by the transaction being executed, whose statistics its reply
    /// reports.
    collecting: Vec<TerminationKey>,
    released: HashMap<TerminationKey, Released>,
    deferred: Vec<Deferred>,
}

impl DeferredReplies {
    /// The transaction being executed reports this released leg's statistics.
    pub fn collect(&mut self, key: TerminationKey, released: Released) {
        self.collecting.push(key);
        self.released.insert(key, released);
    }

    /// The legs the transaction just executed waits for.
    pub fn take_collected(&mut self) -> Vec<TerminationKey> {
        std::mem::take(&mut self.collecting)
    }

    pub fn defer(
        &mut self,
        peer: SocketAddr,
        tid: u32,
        version: u8,
        result: ReplyResult,
        waiting: Vec<TerminationKey>,
        deadline: Millis,
    ) {
        self.deferred.push(Deferred {
            peer,
            tid,
            version,
            result,
            waiting,
            deadline,
        });
    }

    /// A released leg's final report; false if no reply waits for it.
    pub fn closed(&mut self, key: TerminationKey, stats: LegStats, now: Millis) -> bool {
        let Some(r) = self.released.get_mut(&key) else {
            return false;
        };
        r.stats = stats;
        r.final_stats = true;
        r.closed_at = Some(now);
        true
    }

    /// The worker no longer knew a released leg (it had ended on its own): its statistics
    /// are final as they are. False if no reply waits for it.
    pub fn rejected(&mut self, key: TerminationKey) -> bool {
        match self.released.get_mut(&key) {
            Some(r) => {
                r.final_stats = true;
                true
            }
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deferred.is_empty()
    }
}

impl<D: DataPlane> Mg<D> {
    /// Replies are waiting for the worker's statistics.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Deferred replies whose statistics are all in (or that waited long enough):
    /// `(peer, transaction, version, reply)`.
    pub fn completed(&mut self) -> Vec<(SocketAddr, u32, u8, ReplyResult)> {
        let now = self.now;
        let d = &mut self.deferred;
        let mut done = Vec::new();
        let mut i = 0;
        while i < d.deferred.len() {
            let w = &d.deferred[i];
            let ready = w
                .waiting
                .iter()
                .all(|k| d.released.get(k).is_none_or(|r| r.final_stats));
            if !ready && now < w.deadline {
                i += 1;
                continue;
            }
            let mut w = d.deferred.swap_remove(i);
            if !ready {
                tracing::warn!(
                    tid = w.tid,
                    "final statistics late; answering Subtract with the last known"
                );
            }
            for key in &w.waiting {
                if let Some(r) = d.released.remove(key) {
                    self.app_totals.add(&r.stats.app);
                    let stats = statistics(
                        &self.cfg.tokens,
                        &r.stats,
                        r.drops,
                        r.established_at,
                        r.closed_at.or(Some(now)),
                    );
                    set_subtract_stats(&mut w.result, &r.name, stats);
                }
            }
            done.push((w.peer, w.tid, w.version, w.result));
        }
        done
    }
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
