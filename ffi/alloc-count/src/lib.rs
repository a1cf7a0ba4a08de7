//! Test support: a global allocator that counts the allocations the calling thread makes while
//! it watches, so a test can show that a path allocates nothing (or a bounded number) once
//! warm. A test binary installs it with
//! `#[global_allocator] static GLOBAL: alloc_count::Counting = alloc_count::Counting;`.
//!
//! Counting is per thread: the tests of one binary run in parallel and each counts only its
//! own work. It is `unsafe` (a `GlobalAlloc`), which is why it sits beside the DPDK bindings
//! rather than in the safe test-support crate; it must never be linked by the product.
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed, by every thread (for leak and growth measurements).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Heap bytes currently allocated through [`Counting`], all threads together.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Forwards every call to the system allocator and counts allocations and reallocations of
/// watching threads.
pub struct Counting;

thread_local!(static ALLOCS: Cell<usize> = const { Cell::new(0) });
thread_local!(static NET: Cell<isize> = const { Cell::new(0) });
thread_local!(static WATCHING: Cell<bool> = const { Cell::new(false) });

/// Adds `bytes` to the watching thread's net allocation.
fn net(bytes: isize) {
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = NET.try_with(|n| n.set(n.get() + bytes));
        }
    });
}

/// Bytes this thread allocated less what it freed, while watching, since it started: the heap
/// a watched component holds when it frees only what it allocated itself.
pub fn watched_net_bytes() -> isize {
    NET.with(|n| n.get())
}

fn count() {
    // `try_with`: the allocator may be called while this thread's locals are being torn down.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

// SAFETY: forwards to the system allocator unchanged; counting touches only thread-locals
// that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
            net(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        net(-(l.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            LIVE.fetch_add(n, Ordering::Relaxed);
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            net(n as isize - l.size() as isize);
        }
        q
    }
}

/// Runs `f`, counting the allocations it makes on this thread when `watch` is true (with
/// [`Counting`] installed as the global allocator; without it the count is 0).
pub fn allocations<R>(watch: bool, f: impl FnOnce() -> R) -> (R, usize) {
    WATCHING.with(|w| w.set(watch));
    let before = ALLOCS.with(|a| a.get());
    let r = f();
    let n = ALLOCS.with(|a| a.get()) - before;
    WATCHING.with(|w| w.set(false));
    (r, n)
}

#[cfg(test)]
mod tests {
    #[global_allocator]
    static GLOBAL: super::Counting = super::Counting;

    #[test]
    fn counts_only_while_watching() {
        let (_, n) = super::allocations(true, || vec![1u8; 100]);
        assert_eq!(n, 1);
        let (_, n) = super::allocations(false, || vec![1u8; 100]);
        assert_eq!(n, 0);
        let (_, n) = super::allocations(true, || 1 + 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn live_bytes_follow_allocations_and_frees() {
        // Other tests of this binary allocate in parallel, so compare with a margin far
        // below the block's size.
        let before = super::live_bytes();
        let block = vec![7u8; 64 << 20];
        assert!(super::live_bytes() >= before + (60 << 20));
        drop(block);
        assert!(super::live_bytes() < before + (4 << 20));
    }
}
