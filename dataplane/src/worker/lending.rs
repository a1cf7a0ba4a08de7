//! Socket buffers on demand. A TCP leg starts with small guaranteed buffers, enough for a
//! chat message without a zero-window probe; while it moves data it borrows large ones (the
//! configured per-leg size) from a per-worker pool, and gives them back once it has been
//! drained and without payload for `RETURN_AFTER`. A mostly idle call then holds a few KiB
//! instead of four large buffers.
//!
//! The pool lends at most `limit` large buffers at once and may be smaller than all legs
//! would want: a leg that finds it empty keeps its guaranteed window, which slows its sender
//! (back-pressure) and loses nothing. A leg holds at most one large buffer each way (its
//! share), so a stuck pair holds at most two and the rest of the pool serves the others.
//! Buffers given back are kept for the next loan and the next legs rather than freed: no
//! allocation once warm. The large ones lent and kept together never exceed `limit`, so the
//! pool's memory is at most `limit` full-size buffers, whatever the load was. Their old bytes are never read (a ring buffer exposes only what was
//! written into it since it was given to its socket).
//!
//! Swapping buffers on a live socket (and not accepting octets beyond a smaller buffer) is
//! smoltcp patch 8 (`vendor/smoltcp/PATCHES.md`).

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use super::leg::NOT_LENT;
use super::{Worker, WorkerConfig};
use port::Port;

/// How long a drained leg keeps its large buffers after its last payload: longer than a
/// pause inside a transfer (a round trip, a retransmission timeout), shorter than the gaps
/// between chat messages.
pub(super) const RETURN_AFTER: Duration = Duration::from_millis(500);

/// Legs holding large buffers looked at per poll for ones to take back.
const SWEEP_PER_POLL: usize = 4;

/// Small buffers of freed legs kept per direction for the next legs.
const SPARE_SMALL: usize = 256;

/// Buffers of one size kept for reuse, at most `keep`.
struct Spare {
    size: usize,
    keep: usize,
    buffers: Vec<Vec<u8>>,
}

impl Spare {
    fn new(size: usize, keep: usize) -> Spare {
        Spare {
            size,
            keep,
            // Room for all it keeps up front: giving one back never allocates.
            buffers: Vec::with_capacity(keep),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_else(|| vec![0; self.size])
    }

    /// Keeps `buffer` if there is room (it has this size).
    fn give(&mut self, buffer: Vec<u8>) {
        debug_assert_eq!(buffer.len(), self.size);
        if self.buffers.len() < self.keep {
            self.buffers.push(buffer);
        }
    }
}

/// The worker's socket buffers: the small ones legs start with and the large ones it lends.
pub(super) struct Pool {
    small_rx: Spare,
    small_tx: Spare,
    large_rx: Spare,
    large_tx: Spare,
    /// Large buffers lent at most at once.
    limit: usize,
    /// Large buffers legs hold now.
    lent: usize,
    /// Legs holding a large buffer (each leg knows its place: `Leg::lent_slot`).
    holders: Vec<u32>,
    cursor: usize,
    pub lends: u64,
    pub refused: u64,
    pub returned: u64,
}

impl Pool {
    pub fn new(cfg: &WorkerConfig) -> Pool {
        let small_rx = cfg.guaranteed_rx.clamp(1, cfg.rx_buffer);
        let small_tx = cfg.guaranteed_tx.clamp(1, cfg.tx_buffer);
        let mut pool = Pool {
            small_rx: Spare::new(small_rx, SPARE_SMALL),
            small_tx: Spare::new(small_tx, SPARE_SMALL),
            large_rx: Spare::new(cfg.rx_buffer, cfg.lendable_buffers),
            large_tx: Spare::new(cfg.tx_buffer, cfg.lendable_buffers),
            limit: cfg.lendable_buffers,
            lent: 0,
            // A holder holds at least one of the `limit` buffers.
            holders: Vec::with_capacity(cfg.lendable_buffers),
            cursor: 0,
            lends: 0,
            refused: 0,
            returned: 0,
        };
        for _ in 0..cfg.prefill_buffers.min(cfg.lendable_buffers) {
            for spare in [&mut pool.large_rx, &mut pool.large_tx] {
                let b = vec![0; spare.size];
                spare.give(b);
            }
        }
        pool
    }

    /// A new leg's buffers (receive, send; the guaranteed sizes, which are the full sizes
    /// when lending is off) and the largest receive buffer it may get.
    pub fn initial(&mut self) -> (Vec<u8>, Vec<u8>, usize) {
        (
            self.small_rx.take(),
            self.small_tx.take(),
            self.large_rx.size,
        )
    }

    fn lends_rx(&self) -> bool {
        self.small_rx.size < self.large_rx.size
    }

    fn lends_tx(&self) -> bool {
        self.small_tx.size < self.large_tx.size
    }

    /// A large buffer to lend, unless the pool is at its limit.
    fn borrow(&mut self, receive: bool) -> Option<Vec<u8>> {
        if self.lent >= self.limit {
            self.refused += 1;
            return None;
        }
        self.lent += 1;
        self.lends += 1;
        Some(if receive {
            self.large_rx.take()
        } else {
            self.large_tx.take()
        })
    }

    /// Takes back a buffer of a leg; a large one (when lent) counts as returned.
    pub fn give_back(&mut self, buffer: Vec<u8>, receive: bool) {
        let lends = if receive {
            self.lends_rx()
        } else {
            self.lends_tx()
        };
        let (small, large) = if receive {
            (&mut self.small_rx, &mut self.large_rx)
        } else {
            (&mut self.small_tx, &mut self.large_tx)
        };
        if lends && buffer.len() == large.size {
            self.lent -= 1;
            self.returned += 1;
            // Lent and kept together stay within the limit: the pool never holds more.
            let kept = self.large_rx.buffers.len() + self.large_tx.buffers.len();
            if self.lent + kept < self.limit {
                let large = if receive {
                    &mut self.large_rx
                } else {
                    &mut self.large_tx
                };
                large.give(buffer);
            }
        } else if buffer.len() == small.size {
            small.give(buffer);
        }
    }

    pub fn lent(&self) -> usize {
        self.lent
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<P: Port> Worker<P> {
    /// Lends a leg a large buffer each way asked (`receive`, `send`) whose small one is (nearly)
    /// full: a receive buffer with less than a quarter left (a sender the guaranteed window
    /// limits), a send buffer with no room (a receiver slower than its partner's sender). A
    /// chat message that fits borrows nothing.
    #[inline]
    pub(super) fn lend(&mut self, idx: u32, receive: bool, send: bool) {
        let pool = &mut self.pool;
        let (lends_rx, lends_tx) = (receive && pool.lends_rx(), send && pool.lends_tx());
        if !(lends_rx || lends_tx) {
            return;
        }
        let Some(Some(leg)) = self.legs.get_mut(idx as usize) else {
            return;
        };
        if leg.is_udp() {
            return;
        }
        let sock = leg.set.get_mut::<tcp::Socket>(leg.handle);
        let mut lent = false;
        let cap = sock.recv_capacity();
        if lends_rx && cap < pool.large_rx.size && sock.recv_queue() * 4 >= cap * 3 {
            if let Some(b) = pool.borrow(true) {
                match sock.replace_rx_buffer(tcp::SocketBuffer::new(b)) {
                    Ok(old) => {
                        lent = true;
                        if let Some(v) = old.into_vec() {
                            pool.give_back(v, true);
                        }
                    }
                    // A large buffer holds whatever a small one does.
                    Err(b) => {
                        if let Some(v) = b.into_vec() {
                            pool.give_back(v, true);
                        }
                    }
                }
            }
        }
        let cap = sock.send_capacity();
        if lends_tx && cap < pool.large_tx.size && sock.send_queue() >= cap {
            if let Some(b) = pool.borrow(false) {
                match sock.replace_tx_buffer(tcp::SocketBuffer::new(b)) {
                    Ok(old) => {
                        lent = true;
                        if let Some(v) = old.into_vec() {
                            pool.give_back(v, false);
                        }
                    }
                    Err(b) => {
                        if let Some(v) = b.into_vec() {
                            pool.give_back(v, false);
                        }
                    }
                }
            }
        }
        if lent && leg.lent_slot == NOT_LENT {
            leg.lent_slot = pool.holders.len() as u32;
            pool.holders.push(idx);
        }
    }

    /// Takes large buffers back from a few legs that have been drained and without payload
    /// for `RETURN_AFTER`, giving them their small ones again.
    pub(super) fn sweep_lent(&mut self, now: Instant) {
        let pool = &mut self.pool;
        for _ in 0..SWEEP_PER_POLL.min(pool.holders.len()) {
            if pool.cursor >= pool.holders.len() {
                pool.cursor = 0;
            }
            let idx = pool.holders[pool.cursor];
            let Some(Some(leg)) = self.legs.get_mut(idx as usize) else {
                // Freed legs leave the list when freed; this cannot happen.
                unhold(&mut pool.holders, &mut self.legs, pool.cursor);
                continue;
            };
            if now < leg.last_payload + RETURN_AFTER {
                pool.cursor += 1;
                continue;
            }
            let sock = leg.set.get_mut::<tcp::Socket>(leg.handle);
            let mut holds = false;
            if sock.recv_capacity() == pool.large_rx.size && pool.lends_rx() {
                holds = sock.recv_queue() > 0 || {
                    let small = tcp::SocketBuffer::new(pool.small_rx.take());
                    match sock.replace_rx_buffer(small) {
                        Ok(large) => {
                            if let Some(v) = large.into_vec() {
                                pool.give_back(v, true);
                            }
                            false
                        }
                        // Out-of-order octets beyond the small buffer: later.
                        Err(small) => {
                            if let Some(v) = small.into_vec() {
                                pool.give_back(v, true);
                            }
                            true
                        }
                    }
                };
            }
            if sock.send_capacity() == pool.large_tx.size && pool.lends_tx() {
                let queued = sock.send_queue() > 0;
                holds |= queued;
                if !queued {
                    let small = tcp::SocketBuffer::new(pool.small_tx.take());
                    if let Ok(large) = sock.replace_tx_buffer(small) {
                        if let Some(v) = large.into_vec() {
                            pool.give_back(v, false);
                        }
                    }
                }
            }
            if holds {
                pool.cursor += 1;
            } else {
                leg.lent_slot = NOT_LENT;
                unhold(&mut pool.holders, &mut self.legs, pool.cursor);
            }
        }
    }

    /// A freed leg's socket buffers go back to the pool, and the leg leaves the holders.
    pub(super) fn return_buffers(&mut self, socket: tcp::Socket<'static>, lent_slot: u32) {
        let pool = &mut self.pool;
        let (rx, tx) = socket.into_buffers();
        if let Some(v) = rx.into_vec() {
            pool.give_back(v, true);
        }
        if let Some(v) = tx.into_vec() {
            pool.give_back(v, false);
        }
        if lent_slot != NOT_LENT {
            unhold(&mut pool.holders, &mut self.legs, lent_slot as usize);
        }
    }
}

/// Takes the holder at `slot` off the list; the one moved into its place learns its slot.
fn unhold(holders: &mut Vec<u32>, legs: &mut [Option<super::leg::Leg>], slot: usize) {
    if slot >= holders.len() {
        return;
    }
    holders.swap_remove(slot);
    if let Some(&moved) = holders.get(slot) {
        if let Some(Some(m)) = legs.get_mut(moved as usize) {
            m.lent_slot = slot as u32;
        }
    }
}
