//! Contexts and their terminations: by name (case-insensitive, H.248.1 names are), by the
//! data-plane key of their leg, and by worker. Every change keeps the three views in step; a
//! context exists exactly while it has a termination.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use dataplane::contract::{LegStats, TerminationKey, Violation};
use h248::ast::{TerminationId, Text};
use h248::sdp::SdpGroups;

use super::events::Armed;
use super::leg::{LegSent, Media};
use super::{fail, Fail};
use crate::transaction::Millis;

/// Terminations a context holds (a pair: T1 towards the UE, T2 towards the core).
pub const CONTEXT_SIZE: usize = 2;

/// One termination and its leg.
#[derive(Debug, Clone)]
pub struct Term {
    /// As chosen by the MG or given by the ALG (case kept for replies).
    pub name: Text,
    pub context: u32,
    /// The leg's handle in the worker.
    pub key: TerminationKey,
    pub realm: usize,
    pub local: SocketAddr,
    pub worker: usize,
    /// What the ALG's descriptors set.
    pub media: Media,
    /// What the worker has been told.
    pub leg: LegSent,
    /// The Local SDP the MG answers with.
    pub local_sdp: StoredSdp,
    /// The worker's last report (at an audit or the close); `None` until one came, so a
    /// held call does not carry a full set of zero counters.
    pub stats: Option<Box<LegStats>>,
    /// Armed events: request ID and events.
    pub events: Option<Armed>,
    pub established_at: Option<Millis>,
    pub next_heartbeat: Option<Millis>,
    /// What the peer broke, when its pair was reset for it.
    pub violation: Option<Violation>,
    /// When the worker reported the leg closed: its statistics are final from then on, and
    /// a later Release gets no second report.
    pub closed_at: Option<Millis>,
}

/// An SDP kept as its text: a held call needs its Local again only for a Modify or an audit,
/// and the text is a fraction of the parsed lines' size (about 90 bytes against 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSdp(Box<str>);

impl StoredSdp {
    pub fn store(sdp: &SdpGroups) -> Self {
        let mut text = String::new();
        sdp.write(&mut text);
        StoredSdp(text.into_boxed_str())
    }

    pub fn load(&self) -> SdpGroups {
        // Written by `store` from parsed lines, so it parses back to the same lines.
        SdpGroups::parse(&self.0).unwrap_or_default()
    }
}

impl Term {
    /// The worker's last statistics report, or zeros before one.
    pub fn stats(&self) -> LegStats {
        self.stats.as_deref().copied().unwrap_or_default()
    }

    pub fn set_stats(&mut self, stats: LegStats) {
        match &mut self.stats {
            Some(s) => **s = stats,
            None => self.stats = Some(Box::new(stats)),
        }
    }
}

fn lower(s: &str) -> Text {
    s.to_ascii_lowercase().as_str().into()
}

#[derive(Debug)]
pub struct Registry {
    /// Context ID -> the lower-case names of its terminations.
    contexts: BTreeMap<u32, Vec<Text>>,
    /// Lower-case name -> termination (boxed: the table's slots, a third of them empty, stay
    /// a pointer wide).
    terms: HashMap<Text, Box<Term>>,
    by_key: HashMap<TerminationKey, Text>,
    per_worker: Vec<usize>,
    next_context: u32,
    next_name: u32,
    next_key: u32,
}

impl Registry {
    pub fn new(workers: usize) -> Self {
        Registry {
            contexts: BTreeMap::new(),
            terms: HashMap::new(),
            by_key: HashMap::new(),
            per_worker: vec![0; workers.max(1)],
            next_context: 1,
            next_name: 1,
            next_key: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    pub fn context_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.contexts.keys().copied()
    }

    /// Terminations on worker `worker`.
    pub fn on_worker(&self, worker: usize) -> usize {
        self.per_worker.get(worker).copied().unwrap_or(0)
    }

    pub fn has_context(&self, id: u32) -> bool {
        self.contexts.contains_key(&id)
    }

    /// The terminations of a context, as `Term`s, in the order they joined.
    pub fn members(&self, id: u32) -> impl Iterator<Item = &Term> + '_ {
        self.contexts
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|n| self.terms.get(n).map(|t| &**t))
    }

    pub fn context_len(&self, id: u32) -> usize {
        self.contexts.get(&id).map_or(0, Vec::len)
    }

    pub fn get(&self, name: &str) -> Option<&Term> {
        self.terms.get(&lower(name)).map(|t| &**t)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Term> {
        self.terms.get_mut(&lower(name)).map(|t| &mut **t)
    }

    pub fn by_key(&self, key: TerminationKey) -> Option<&Term> {
        self.by_key
            .get(&key)
            .and_then(|n| self.terms.get(n))
            .map(|t| &**t)
    }

    pub fn by_key_mut(&mut self, key: TerminationKey) -> Option<&mut Term> {
        self.by_key
            .get(&key)
            .and_then(|n| self.terms.get_mut(n))
            .map(|t| &mut **t)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Term> + '_ {
        self.terms.values().map(|t| &**t)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Term> + '_ {
        self.terms.values_mut().map(|t| &mut **t)
    }

    /// The context ID a new context would get: the next unused one from where the last
    /// ended (0, `$` and `*` are reserved: H.248.1 6.1.1), on `worker` when given.
    pub fn free_context_id(&self, workers: usize, worker: Option<usize>) -> u32 {
        let workers = workers.max(1) as u32;
        let mut c = self.next_context;
        loop {
            let usable = c != 0 && c < u32::MAX - 1;
            let right_worker = worker.is_none_or(|w| c % workers == w as u32);
            if usable && right_worker && !self.contexts.contains_key(&c) {
                return c;
            }
            c = c.wrapping_add(1);
        }
    }

    /// The number a chosen termination name would get (`tcp/<realm>/<n>`).
    pub fn free_name_number(&self) -> u32 {
        self.next_name
    }

    /// The data-plane key a new leg would get.
    pub fn free_key(&self, context: u32) -> TerminationKey {
        TerminationKey {
            context,
            termination: self.next_key,
        }
    }

    /// Adds a termination planned with `free_*` (the context is created if new).
    pub fn insert(&mut self, t: Term, chose_name: bool) {
        let name = lower(&t.name);
        if !self.contexts.contains_key(&t.context) {
            self.next_context = t.context.wrapping_add(1);
        }
        if chose_name {
            self.next_name = self.next_name.wrapping_add(1);
        }
        self.next_key = self.next_key.wrapping_add(1);
        self.contexts
            .entry(t.context)
            .or_default()
            .push(name.clone());
        self.by_key.insert(t.key, name.clone());
        if self.per_worker.len() <= t.worker {
            self.per_worker.resize(t.worker + 1, 0);
        }
        self.per_worker[t.worker] += 1;
        self.terms.insert(name, Box::new(t));
    }

    /// Takes a termination out; its context goes when it was the last one.
    pub fn remove(&mut self, name: &str) -> Option<Term> {
        let name = lower(name);
        let t = *self.terms.remove(&name)?;
        self.by_key.remove(&t.key);
        if let Some(c) = self.per_worker.get_mut(t.worker) {
            *c = c.saturating_sub(1);
        }
        self.leave_context(t.context, &name);
        Some(t)
    }

    fn leave_context(&mut self, context: u32, name: &Text) {
        if let Some(members) = self.contexts.get_mut(&context) {
            members.retain(|m| m != name);
            if members.is_empty() {
                self.contexts.remove(&context);
            }
        }
    }

    /// Moves a termination into context `dest` (created if new); the context it leaves goes
    /// when it is empty.
    pub fn move_to(&mut self, name: &str, dest: u32) {
        let name = lower(name);
        let Some(t) = self.terms.get_mut(&name) else {
            return;
        };
        let from = std::mem::replace(&mut t.context, dest);
        if from == dest {
            return;
        }
        self.leave_context(from, &name);
        if !self.contexts.contains_key(&dest) {
            self.next_context = dest.wrapping_add(1);
        }
        self.contexts.entry(dest).or_default().push(name);
    }

    /// Takes every termination out (shutdown).
    pub fn drain(&mut self) -> Vec<Term> {
        self.contexts.clear();
        self.by_key.clear();
        self.per_worker.iter_mut().for_each(|c| *c = 0);
        self.terms.drain().map(|(_, t)| *t).collect()
    }

    /// The termination `tid` names, if it is in `context` (any context: `None`).
    pub fn find(&self, context: Option<u32>, tid: &TerminationId) -> Result<&Term, Fail> {
        let t = self
            .get(&tid.0)
            .ok_or_else(|| fail(430, format!("unknown termination {}", tid.0)))?;
        if context.is_some_and(|c| c != t.context) {
            return Err(fail(
                435,
                format!("termination {} is not in this context", tid.0),
            ));
        }
        Ok(t)
    }

    /// The names a (possibly wildcarded) ID matches in `context` (any context: `None`),
    /// sorted (H.248.1 6.2: `*` matches any run of characters here; `$` names no existing
    /// termination).
    pub fn matching(&self, context: Option<u32>, tid: &TerminationId) -> Result<Vec<Text>, Fail> {
        if tid.is_choose() {
            return Err(fail(442, "$ names no existing termination"));
        }
        if !tid.0.contains('*') {
            return Ok(vec![self.find(context, tid)?.name.clone()]);
        }
        let pattern = lower(&tid.0);
        let mut names: Vec<&Term> = match context {
            Some(c) => self.members(c).collect(),
            None => self.terms.values().map(|t| &**t).collect(),
        };
        names.retain(|t| wildcard_match(&pattern, &lower(&t.name)));
        if names.is_empty() {
            return Err(fail(431, format!("no termination matches {}", tid.0)));
        }
        let mut out: Vec<Text> = names.into_iter().map(|t| t.name.clone()).collect();
        out.sort_by_key(|n| lower(n));
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::{wildcard_match, StoredSdp};
    use crate::iq::tcp_media;
    use crate::mg::answer::answer_sdp;
    use h248::sdp::SdpGroups;

    /// Every kind of answer the MG keeps comes back from its stored text as it was.
    #[test]
    fn stored_answers_load_back_unchanged() {
        let offers = [
            "v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n",
            "v=0\nc=IN IP6 $\nm=message $ TCP/TLS/MSRP *\na=tls-id:abc123\n",
            "v=0\nc=IN IP4 $\nm=application $ TCP/BFCP *\n",
            "v=0\nc=IN IP4 $\nm=application $ TCP/TLS/BFCP 10 11\n",
            "v=0\nc=IN IP4 $\nm=image $ udptl t38\n",
            "v=0\nc=IN IP4 $\nm=image $ UDP/TLS/UDPTL t38\n",
        ];
        let fp = "sha-256 3F:0A:45:9A:83:29:CA:B4:49:2C:D4:CB:B1:65:61:AC:90:E0:58:E8:CD:B7:99:A6:38:D0:FA:AE:86:9F:95:C7";
        for offer in offers {
            let media = tcp_media(&SdpGroups::parse(offer).unwrap())
                .unwrap()
                .unwrap();
            for local in ["192.0.2.10:40001", "[2001:db8::10]:40002"] {
                for setup in [None, Some("active"), Some("passive")] {
                    for fingerprint in [None, Some(fp)] {
                        let sdp = answer_sdp(&media, local.parse().unwrap(), setup, fingerprint);
                        assert_eq!(StoredSdp::store(&sdp).load(), sdp, "{offer} {setup:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "tcp/access/1"));
        assert!(wildcard_match("tcp/*", "tcp/access/1"));
        assert!(wildcard_match("tcp/*/1", "tcp/access/1"));
        assert!(!wildcard_match("tcp/*/2", "tcp/access/1"));
        assert!(wildcard_match("*1", "tcp/access/1"));
        assert!(!wildcard_match("udptl/*", "tcp/access/1"));
        assert!(wildcard_match("tcp/access/1", "tcp/access/1"));
        assert!(!wildcard_match("tcp/access", "tcp/access/1"));
    }
}
