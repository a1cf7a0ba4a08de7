//! A quiet pair: once a relay leaves nothing waiting either way, a service of a leg that
//! received nothing (a delayed ACK, a timer, a plain ACK) skips the relay and the partner.
//! These tests show that it does, and that data waiting for room is never left behind: a
//! receiver that stops reading for seconds, then reads, gets every byte.

mod common;

use common::*;
use dataplane::worker::WorkerConfig;
use smoltcp::iface::SocketHandle;
use smoltcp::time::Duration;
use testbed::memlink::Faults;
use testbed::{PatternChecker, PatternSender};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs until everything `from`'s sender is to send has reached `to`'s checker.
fn deliver(
    b: &mut Bed,
    (from, sender): (SocketHandle, &mut PatternSender),
    (to, checker): (SocketHandle, &mut PatternChecker),
) {
    b.run(Duration::from_secs(120), |b| {
        let n = sender.pump(b.ue(from)) + checker.pump(b.ue(to));
        if checker.received == sender.total {
            Progress::Done
        } else if n > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
}

#[test]
fn chat_sized_messages_leave_timer_wakes_without_a_relay_and_lose_nothing() {
    let mut b = bed(Faults::default(), 51);
    let (x, y) = b.proxied_pair(47000, 64 * 1024);
    let before = b.worker.counters();
    let mut sx = PatternSender::new(3, 0);
    let mut sy = PatternSender::new(4, 0);
    let mut rx = PatternChecker::new(4);
    let mut ry = PatternChecker::new(3);
    // A message one way, a pause (delayed ACKs and timers fire), a reply the other way.
    for round in 1..=40u64 {
        sx.total = 200 * round;
        sy.total = 150 * round;
        deliver(&mut b, (x, &mut sx), (y, &mut ry));
        b.run_for(Duration::from_millis(30));
        deliver(&mut b, (y, &mut sy), (x, &mut rx));
        b.run_for(Duration::from_millis(30));
    }
    assert_eq!((rx.first_mismatch, ry.first_mismatch), (None, None));
    let after = b.worker.counters();
    let quiet = after.quiet_visits - before.quiet_visits;
    assert!(
        quiet >= 40,
        "each message's delayed ACK finds the pair quiet: {quiet} quiet visits"
    );
    assert_eq!(
        after.octets_relayed - before.octets_relayed,
        200 * 40 + 150 * 40
    );
}

/// The receiver stops reading: the core leg's send buffer fills, then the access leg's
/// receive buffer, and the bytes wait there through seconds of timers (zero-window probes,
/// delayed ACKs). When it reads again, the window update's ACK is all the core leg receives:
/// the relay must run on it, or the bytes wait forever.
#[test]
fn bytes_waiting_for_a_stalled_receivers_room_move_once_it_reads() {
    let cfg = WorkerConfig {
        lendable_buffers: 0,
        ..WorkerConfig::default()
    };
    let mut b = bed_with(Faults::default(), 52, cfg);
    let (x, y) = b.proxied_pair(47001, 64 * 1024);
    let total = 2_000_000;
    let mut sx = PatternSender::new(5, total);
    let mut ry = PatternChecker::new(5);
    for stall in 0..4 {
        // Write until everything on the way is full.
        b.run(Duration::from_secs(30), |b| {
            if sx.pump(b.ue(x)) > 0 {
                Progress::Busy
            } else if b.ue(x).send_queue() > 0 && !b.ue(x).can_send() {
                Progress::Done
            } else {
                Progress::Idle
            }
        });
        b.run_for(Duration::from_secs(3));
        assert!(
            b.ue(y).recv_queue() > 0,
            "stall {stall}: Y holds unread bytes"
        );
        // Read again, a little at a time, until the sender has written its share.
        let goal = (total * (stall + 1) / 4).min(total);
        b.run(Duration::from_secs(120), |b| {
            let n = sx.pump(b.ue(x)) + ry.pump(b.ue(y));
            if ry.received >= goal.min(sx.sent) && sx.sent >= goal {
                Progress::Done
            } else if n > 0 {
                Progress::Busy
            } else {
                Progress::Idle
            }
        });
    }
    deliver(&mut b, (x, &mut sx), (y, &mut ry));
    assert_eq!((ry.received, ry.first_mismatch), (total, None));
    assert_eq!(b.worker.counters().octets_relayed, total);
}
