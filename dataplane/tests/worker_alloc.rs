//! After warm-up, the worker's poll loop does not allocate: traffic keeps flowing through
//! established pairs while a counting allocator watches only the worker's own calls.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dataplane::memlink::Faults;
use dataplane::testbed::{PatternChecker, PatternSender};
use smoltcp::time::Duration;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local!(static WATCHING: Cell<bool> = const { Cell::new(false) });

// SAFETY: forwards to the system allocator unchanged; only counts while watching.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_poll_loop_does_not_allocate_once_warm() {
    let faults = Faults {
        drop: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_micros(300),
        ..Faults::default()
    };
    let mut b = bed(faults, 99);
    let (x, y) = b.proxied_pair(44000, 64 * 1024);

    let mut tx_x = PatternSender::new(1, u64::MAX);
    let mut tx_y = PatternSender::new(2, u64::MAX);
    let mut rx_x = PatternChecker::new(2);
    let mut rx_y = PatternChecker::new(1);
    let mut worker_allocs = 0;
    let mut worker_polls = 0u64;
    // The timer wheel's slots reach their steady size once every slot has been visited a
    // few times (one turn is 4.096 s).
    let warm = b.now() + Duration::from_secs(30);
    let end = warm + Duration::from_secs(10);
    while b.now() < end {
        let now = b.now();
        let watching = now >= warm;
        WATCHING.with(|w| w.set(watching));
        let before = ALLOCS.load(Ordering::Relaxed);
        let busy = b.worker.poll(now);
        worker_allocs += ALLOCS.load(Ordering::Relaxed) - before;
        WATCHING.with(|w| w.set(false));
        if watching {
            worker_polls += 1;
        }
        b.host.poll(now);
        let mut moved = 0;
        for (h, tx, rx) in [(x, &mut tx_x, &mut rx_x), (y, &mut tx_y, &mut rx_y)] {
            let s = b.ue(h);
            moved += tx.pump(s) + rx.pump(s);
        }
        if !busy && moved == 0 {
            b.idle();
        }
    }
    assert!(
        rx_x.received > 10_000_000 && rx_y.received > 10_000_000,
        "traffic flowed: {} {}",
        rx_x.received,
        rx_y.received
    );
    assert_eq!((rx_x.first_mismatch, rx_y.first_mismatch), (None, None));
    assert_eq!(
        worker_allocs, 0,
        "allocations in {worker_polls} worker polls after warm-up"
    );
}
