//! After warm-up, the worker's poll loop does not allocate: traffic keeps flowing through
//! established pairs while a counting allocator watches only the worker's own calls.

mod common;

use common::*;
use smoltcp::time::Duration;
use testbed::memlink::Faults;
use testbed::{PatternChecker, PatternSender};

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
    // Frame buffers are the link's (a DPDK mempool is made whole at start), not the worker's.
    b.pool.fill();
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
        let (busy, n) = allocations(watching, || b.worker.poll(now));
        worker_allocs += n;
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
