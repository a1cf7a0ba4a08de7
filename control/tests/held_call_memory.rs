//! What a held call costs the control thread: heap per call once N calls are set up (Add,
//! Add, Modify, Modify, as the IMS-ALG sends them for the seed's flow), split into the MG
//! model's state (contexts, terminations, descriptors) and the reply cache (which keeps each
//! reply for LONG-TIMER, so it follows the call rate, not the calls held). And that calls set
//! up and released round after round leave nothing behind.

use std::net::SocketAddr;

use control::dispatch::Dispatcher;
use control::mg::{DataPlane, Mg, MgConfig, Realm};
use control::transaction::{ReplyCache, TransactionTimers};
use dataplane::contract::{Command as Dp, Event, LegStats, ReleaseCause};
use h248::ast::*;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// The data plane's side: takes every command and keeps none; answers a Release with the
/// leg's final statistics, as a worker does.
#[derive(Default)]
struct Sink {
    closed: std::collections::VecDeque<Event>,
}

impl DataPlane for Sink {
    fn room(&self, _worker: usize) -> usize {
        usize::MAX
    }
    fn submit(&mut self, _worker: usize, cmd: Dp) -> bool {
        if let Dp::Release { key } = cmd {
            self.closed.push_back(Event::Closed {
                key,
                cause: ReleaseCause::Released,
                stats: LegStats::default(),
            });
        }
        true
    }
    fn next_event(&mut self) -> Option<(usize, Event)> {
        self.closed.pop_front().map(|e| (0, e))
    }
}

fn alg() -> SocketAddr {
    "198.51.100.1:2944".parse().unwrap()
}

const CALLS: usize = 10_000;

fn dispatcher() -> Dispatcher<Mg<Sink>> {
    let realm = |name: &str, addr: &str| Realm {
        name: name.into(),
        addresses: vec![addr.parse().unwrap()],
        first_port: 40000,
        last_port: 59999,
        policy: Default::default(),
    };
    let cfg = MgConfig {
        max_contexts: 2 * CALLS,
        max_terminations: 4 * CALLS,
        ..MgConfig::new(vec![
            realm("access", "192.0.2.10"),
            realm("core", "192.0.2.20"),
        ])
    };
    let mut d = Dispatcher::new(
        Mg::new(cfg, Sink::default()),
        ReplyCache::new(TransactionTimers::default(), 1 << 20),
        MId::Ip4 {
            addr: [198, 51, 100, 2],
            port: Some(2944),
        },
        3,
        vec![alg().ip()],
    );
    d.set_registered(true);
    d
}

fn send(d: &mut Dispatcher<Mg<Sink>>, text: &str, now: u64) -> String {
    let mut out = Vec::new();
    d.datagram(
        alg(),
        text.as_bytes(),
        now,
        |_, b| out.push(String::from_utf8(b.to_vec()).unwrap()),
        |_| {},
    );
    assert_eq!(out.len(), 1, "one answer for {text}");
    out.remove(0)
}

/// Context, termination and port of an Add reply.
fn added(reply: &str) -> (u32, String, u16) {
    let m = h248::decode(reply.as_bytes()).unwrap();
    let MessageBody::Transactions(ts) = m.body else {
        panic!("{reply}")
    };
    let Transaction::Reply(r) = &ts[0] else {
        panic!("{reply}")
    };
    let ReplyResult::Actions(a) = &r.result else {
        panic!("{reply}")
    };
    let ContextId::Id(ctx) = a[0].context else {
        panic!("{reply}")
    };
    let CommandReply::Amms {
        terminations,
        audit: Some(ds),
        ..
    } = &a[0].replies[0]
    else {
        panic!("{reply}")
    };
    let Descriptor::Media(ms) = &ds[0] else {
        panic!("{reply}")
    };
    let MediaParm::Streams(s) = &ms[0] else {
        panic!("{reply}")
    };
    let StreamParm::Local(g) = &s.parms[0] else {
        panic!("{reply}")
    };
    let (_, port, _, _) = g.first().unwrap().media().unwrap();
    (
        ctx,
        terminations[0].0.to_string(),
        port.value().unwrap().parse().unwrap(),
    )
}

fn set_up(
    d: &mut Dispatcher<Mg<Sink>>,
    tid: &mut u32,
    i: usize,
    now: u64,
) -> (u32, String, String) {
    let h = "!/3 [198.51.100.1]:2944\n";
    let mut next = || {
        *tid += 1;
        *tid
    };
    let r = send(d, &format!("{h}T={}{{C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=\"access\"}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}", next()), now);
    let (ctx, t1, p1) = added(&r);
    let r = send(d, &format!("{h}T={}{{C={ctx}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=\"core\"}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}}}", next()), now);
    let (_, t2, p2) = added(&r);
    let r = send(d, &format!("{h}T={}{{C={ctx}{{MF={t2}{{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nc=IN IP4 192.0.2.20\nm=message {p2} TCP/MSRP *\na=setup:active\na=connection:new\n}},R{{\nv=0\nc=IN IP4 198.18.200.50\nm=message {} TCP/MSRP *\na=setup:passive\na=connection:new\n}}}}}},E=103{{tcpc/estfail}}}}}}}}", next(), 3000 + i % 10_000), now);
    assert!(!r.contains("Error") && !r.contains("ER="), "{r}");
    let r = send(d, &format!("{h}T={}{{C={ctx}{{MF={t1}{{M{{ST=1{{O{{MO=SR}},L{{\nv=0\nc=IN IP4 192.0.2.10\nm=message {p1} TCP/MSRP *\na=setup:passive\na=connection:new\n}},R{{\nv=0\nc=IN IP4 198.18.100.7\nm=message 9 TCP/MSRP *\na=setup:active\na=connection:new\n}}}}}},E=104{{tcpc/est}}}}}}}}", next()), now);
    assert!(!r.contains("Error") && !r.contains("ER="), "{r}");
    (ctx, t1, t2)
}

/// The heap this thread holds (the two tests of this file run in parallel, so the
/// process-wide count would mix in the other's).
fn heap() -> usize {
    alloc_count::watched_net_bytes() as usize
}

/// Subtract with statistics, answered once the data plane's final counts are in (as the
/// control thread's loop does it).
fn release(d: &mut Dispatcher<Mg<Sink>>, tid: &mut u32, call: &(u32, String, String), now: u64) {
    *tid += 1;
    let (ctx, t1, t2) = call;
    let text = format!(
        "!/3 [198.51.100.1]:2944\nT={}{{C={ctx}{{S={t1}{{AT{{SA}}}},S={t2}{{AT{{SA}}}}}}}}",
        *tid
    );
    let mut out = 0;
    d.datagram(alg(), text.as_bytes(), now, |_, _| out += 1, |_| {});
    while let Some((_, ev)) = d.executor_mut().dataplane_mut().next_event() {
        d.executor_mut().on_event(&ev);
    }
    for (peer, tid, version, result) in d.executor_mut().completed() {
        d.complete(peer, tid, version, result, now, |_, _| out += 1);
    }
    assert_eq!(out, 1, "one reply to the Subtract of context {ctx}");
}

/// At most this much control-thread heap per held call, replies aside: the worker's share
/// (docs/performance.md, "Idle calls") is about 7.5 KB, and the whole call end to end is
/// measured against a HAProxy connection by `scripts/bench.sh`.
const HELD_CALL_HEAP: usize = 3072;

#[test]
fn a_held_call_costs_the_control_thread_at_most_3_kib_beyond_its_replies() {
    alloc_count::allocations(true, held_calls);
}

fn held_calls() {
    let mut d = dispatcher();
    let mut tid = 100;
    let before = heap();
    for i in 0..CALLS {
        set_up(&mut d, &mut tid, i, 0);
    }
    let with_replies = heap();
    let replies = d.cache().len();
    assert_eq!(replies, 4 * CALLS);
    // Past LONG-TIMER every reply has gone; the calls stay.
    d.cache().expire(3_600_000);
    assert!(d.cache().is_empty());
    let held = heap();
    assert_eq!(d.executor().contexts(), CALLS);
    let per_call = (held - before) / CALLS;
    println!(
        "{CALLS} held calls: {per_call} B of control-thread heap per call, {} B with its {} cached replies",
        (with_replies - before) / CALLS,
        replies / CALLS
    );
    assert!(
        per_call <= HELD_CALL_HEAP,
        "{per_call} B per held call (at most {HELD_CALL_HEAP})"
    );
}

/// Calls set up and released in rounds, each round's replies expired before the next: over
/// the second half the heap grows by less than a byte per call (a leak of the smallest
/// allocation per call would be 16). The first round holds twice the calls of the others:
/// a hash table whose removed entries' tombstones use up its room rehashes in place when it
/// is at most half full and doubles otherwise, and which of the two a later round meets
/// depends on the table's hash seed (with every round the same size, a table of 4 096 slots
/// doubled at round 28 in one CI run). Sized by the first round, every table has room for
/// twice what a later round puts in it, so it only ever rehashes in place. Buffers that hold
/// the longer numbers of later transactions still grow by a few bytes.
#[test]
fn calls_set_up_and_released_round_after_round_leave_nothing_behind() {
    alloc_count::allocations(true, rounds_of_calls);
}

fn rounds_of_calls() {
    const ROUNDS: u64 = 30;
    const PER_ROUND: usize = 1000;
    let mut d = dispatcher();
    let mut tid = 100;
    let mut after = Vec::new();
    for round in 0..ROUNDS {
        // Past LONG-TIMER since the last round: its replies expire as this one's come in.
        let now = round * 60_000;
        d.executor_mut().set_now(now);
        let n = if round == 0 { 2 * PER_ROUND } else { PER_ROUND };
        let calls: Vec<_> = (0..n).map(|i| set_up(&mut d, &mut tid, i, now)).collect();
        for c in &calls {
            release(&mut d, &mut tid, c, now);
        }
        drop(calls);
        d.cache().expire(now + 60_000);
        assert_eq!(d.executor().contexts(), 0);
        assert!(d.cache().is_empty());
        after.push(heap());
    }
    println!("live heap after each round of {PER_ROUND} calls: {after:?}");
    let half = after[ROUNDS as usize / 2 - 1];
    let grown = after[ROUNDS as usize - 1].saturating_sub(half);
    let calls = (ROUNDS as usize / 2) * PER_ROUND;
    assert!(
        grown < calls,
        "{grown} B more over the last {calls} calls: {after:?}"
    );
}
