//! Socket buffers on demand. A TCP leg starts with small guaranteed buffers, enough for a
//! chat message without a zero-window probe; while it moves data it borrows large ones (the
//! configured per-leg size) from a per-worker pool, and gives each back once it has been
//! drained and its direction has carried no payload for `RETURN_AFTER`. A mostly idle call
//! then holds a few KiB instead of four large buffers.
//!
//! A direction of a pair (one leg's peer sending, the other leg delivering) moves at the pace
//! of the smaller of its two buffers, the receiving leg's receive buffer and the delivering
//! leg's send buffer, so it borrows the two together or neither: a loan of one alone would
//! take a buffer from the pool and speed nothing up. Each is given back when its own
//! direction is idle, whatever the other direction of the same legs does.
//!
//! The pool lends at most `limit` large buffers at once and may be smaller than all legs
//! would want: a direction that finds it short keeps its guaranteed windows, which slows its
//! sender (back-pressure) and loses nothing. A leg holds at most one large buffer each way (its
//! share), so a stuck pair holds at most four and the rest of the pool serves the others.
//! Buffers given back are kept for the next loan and the next legs rather than freed: no
//! allocation once warm. The large ones lent and kept together never exceed `limit`, so the
//! pool's memory is at most `limit` full-size buffers, whatever the load was. Their old
//! bytes are never read (a ring buffer exposes only what was written into it since it was
//! given to its socket).
//!
//! Swapping buffers on a live socket (and not accepting octets beyond a smaller buffer) is
//! smoltcp patch 8 (`vendor/smoltcp/PATCHES.md`).

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use super::leg::{sole, Leg};
use super::{Worker, WorkerConfig};
use port::Port;

/// How long a drained buffer is kept after the last payload of its direction: longer than a
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

/// A leg holding a large buffer, and what the sweep last saw of its two directions: its
/// octets received from its peer (what its receive buffer serves) and sent to its peer (its
/// send buffer), and when each last changed. Sampled by the sweep rather than stamped by the
/// relay, so the per-packet path and the leg record pay nothing for it.
struct Holder {
    idx: u32,
    received: u64,
    received_at: Instant,
    sent: u64,
    sent_at: Instant,
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
    /// Legs holding a large buffer. A leg is here exactly while one of its buffers is large
    /// (the record has no field for it: the per-packet path reads the record).
    holders: Vec<Holder>,
    cursor: usize,
    /// `wants_threshold`, computed once.
    wants: usize,
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
            wants: if small_rx < cfg.rx_buffer {
                small_rx / 2
            } else {
                usize::MAX
            },
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

    /// Whether a leg's socket holds a lent (large) receive and send buffer.
    fn holds(&self, sock: &tcp::Socket<'static>) -> (bool, bool) {
        (
            self.lends_rx() && sock.recv_capacity() == self.large_rx.size,
            self.lends_tx() && sock.send_capacity() == self.large_tx.size,
        )
    }

    fn lends_rx(&self) -> bool {
        self.small_rx.size < self.large_rx.size
    }

    fn lends_tx(&self) -> bool {
        self.small_tx.size < self.large_tx.size
    }

    /// A large buffer to lend; the caller checked the pool has one.
    fn borrow(&mut self, receive: bool) -> Vec<u8> {
        debug_assert!(self.lent < self.limit);
        self.lent += 1;
        self.lends += 1;
        if receive {
            self.large_rx.take()
        } else {
            self.large_tx.take()
        }
    }

    /// Whether `n` more buffers can be lent; counts a refusal if not.
    fn can_lend(&mut self, n: usize) -> bool {
        let ok = self.lent + n <= self.limit;
        if !ok {
            self.refused += 1;
        }
        ok
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

    /// Octets moved in one relay step from which the relay looks at lending: half the
    /// guaranteed receive window (or, lending off, never). Linux sends no segment larger than
    /// half the largest window it has been offered, so behind a guaranteed window of 1 460 a
    /// 1 KiB message comes as 730 + 294 octets: a segment of half the window is the sign of a
    /// sender the window holds back.
    #[inline]
    pub fn wants_threshold(&self) -> usize {
        self.wants
    }

    /// Which of a direction's two buffers are still guaranteed ones a large one could
    /// replace: the receiving socket's receive buffer, the delivering socket's send buffer.
    #[inline]
    fn small(&self, from: &tcp::Socket<'static>, to: &tcp::Socket<'static>) -> (bool, bool) {
        (
            self.lends_rx() && !self.holds(from).0,
            self.lends_tx() && !self.holds(to).1,
        )
    }

    /// Whether the direction from TCP leg `from` to TCP leg `to` could still borrow.
    #[inline]
    pub fn lacks(&self, from: &Leg, to: &Leg) -> bool {
        let (rx, tx) = self.small(
            from.set.get::<tcp::Socket>(sole()),
            to.set.get::<tcp::Socket>(sole()),
        );
        rx || tx
    }

    /// Whether some leg holds a large buffer (then `sweep_lent` has work).
    #[inline]
    pub fn holding(&self) -> bool {
        !self.holders.is_empty()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<P: Port> Worker<P> {
    /// The relay moved `moved` octets from `from` to `to` and found the sender filling half
    /// of `from`'s window or `to`'s send buffer full (`Pool::wants_threshold`). If `from`'s
    /// small receive buffer is half full or was just filled that much, or `to`'s small send
    /// buffer is full, the direction borrows what it lacks of the two large buffers, both or
    /// neither. Off the per-packet path: a chat message under half the guaranteed window
    /// never comes here.
    #[cold]
    #[inline(never)]
    pub(super) fn lend_for(&mut self, from: u32, to: u32, moved: usize, now: Instant) {
        let (Some(rs), Some(ts)) = (self.tcp_socket(from), self.tcp_socket(to)) else {
            return;
        };
        let (rx_small, tx_small) = self.pool.small(rs, ts);
        let rx_filled = moved.max(rs.recv_queue()) * 2 >= rs.recv_capacity();
        let tx_filled = ts.send_queue() >= ts.send_capacity();
        if !(rx_small && rx_filled || tx_small && tx_filled) {
            return;
        }
        if !self.pool.can_lend(rx_small as usize + tx_small as usize) {
            return;
        }
        if rx_small {
            self.lend(from, true, now);
        }
        if tx_small {
            self.lend(to, false, now);
        }
    }

    /// A TLS leg's records filled most of its guaranteed receive window (`receive`), or
    /// rustls holds more than its send buffer took (`send`): lends it large ones.
    #[cold]
    #[inline(never)]
    pub(super) fn lend_tls(&mut self, idx: u32, receive: bool, send: bool, now: Instant) {
        let Some((rx_large, tx_large)) = self.tcp_socket(idx).map(|s| self.pool.holds(s)) else {
            return;
        };
        if receive && self.pool.lends_rx() && !rx_large && self.pool.can_lend(1) {
            self.lend(idx, true, now);
        }
        if send && self.pool.lends_tx() && !tx_large && self.pool.can_lend(1) {
            self.lend(idx, false, now);
        }
    }

    fn tcp_socket(&self, idx: u32) -> Option<&tcp::Socket<'static>> {
        match self.legs.get(idx as usize) {
            Some(Some(leg)) if !leg.is_udp() => Some(leg.set.get::<tcp::Socket>(sole())),
            _ => None,
        }
    }

    /// Lends TCP leg `idx` a large receive or send buffer in place of its small one; the
    /// caller checked it has the small one and the pool has a large one.
    fn lend(&mut self, idx: u32, receive: bool, now: Instant) {
        let pool = &mut self.pool;
        let Some(Some(leg)) = self.legs.get_mut(idx as usize) else {
            return;
        };
        let (received, sent) = (leg.stats.octets_in, leg.stats.octets_out);
        let sock = leg.set.get_mut::<tcp::Socket>(sole());
        let (rx_large, tx_large) = pool.holds(sock);
        let was_holder = rx_large || tx_large;
        let b = pool.borrow(receive);
        let swapped = if receive {
            sock.replace_rx_buffer(tcp::SocketBuffer::new(b))
        } else {
            sock.replace_tx_buffer(tcp::SocketBuffer::new(b))
        };
        // A large buffer holds whatever a small one does, so the swap is not refused; if it
        // were, the large one goes back.
        let lent = swapped.is_ok();
        let back = match swapped {
            Ok(old) | Err(old) => old,
        };
        if let Some(v) = back.into_vec() {
            pool.give_back(v, receive);
        }
        if lent && !was_holder {
            pool.holders.push(Holder {
                idx,
                received,
                received_at: now,
                sent,
                sent_at: now,
            });
        }
    }

    /// Looks at a few holders: notes which of their directions moved since the last look,
    /// and takes back each large buffer that is drained and whose direction has carried no
    /// payload for `RETURN_AFTER`, giving the leg its small one again.
    #[inline(never)]
    pub(super) fn sweep_lent(&mut self, now: Instant) {
        let pool = &mut self.pool;
        for _ in 0..SWEEP_PER_POLL.min(pool.holders.len()) {
            if pool.cursor >= pool.holders.len() {
                pool.cursor = 0;
            }
            let h = &mut pool.holders[pool.cursor];
            let Some(Some(leg)) = self.legs.get_mut(h.idx as usize) else {
                // Freed legs leave the list when freed; this cannot happen.
                pool.holders.swap_remove(pool.cursor);
                continue;
            };
            if leg.stats.octets_in != h.received {
                h.received = leg.stats.octets_in;
                h.received_at = now;
            }
            if leg.stats.octets_out != h.sent {
                h.sent = leg.stats.octets_out;
                h.sent_at = now;
            }
            let rx_idle = now >= h.received_at + RETURN_AFTER;
            let tx_idle = now >= h.sent_at + RETURN_AFTER;
            let sock = leg.set.get_mut::<tcp::Socket>(sole());
            let (rx_large, tx_large) = pool.holds(sock);
            let mut holds = false;
            if rx_large {
                holds |= !rx_idle || shrink(pool, sock, true);
            }
            if tx_large {
                holds |= !tx_idle || shrink(pool, sock, false);
            }
            if holds {
                pool.cursor += 1;
            } else {
                pool.holders.swap_remove(pool.cursor);
            }
        }
    }

    /// A freed leg's socket buffers go back to the pool, and the leg leaves the holders.
    pub(super) fn return_buffers(&mut self, idx: u32, socket: tcp::Socket<'static>) {
        let pool = &mut self.pool;
        let (rx_large, tx_large) = pool.holds(&socket);
        if rx_large || tx_large {
            // At most `limit` holders; a leg is freed once per call.
            if let Some(at) = pool.holders.iter().position(|h| h.idx == idx) {
                pool.holders.swap_remove(at);
                if pool.cursor > at {
                    pool.cursor = at;
                }
            }
        }
        let (rx, tx) = socket.into_buffers();
        if let Some(v) = rx.into_vec() {
            pool.give_back(v, true);
        }
        if let Some(v) = tx.into_vec() {
            pool.give_back(v, false);
        }
    }
}

/// Swaps a leg's large receive or send buffer, drained, for a small one and gives the large
/// one back; whether the leg still holds it (octets queued, or out-of-order octets beyond what
/// the small buffer holds).
fn shrink(pool: &mut Pool, sock: &mut tcp::Socket<'static>, receive: bool) -> bool {
    let queued = if receive {
        sock.recv_queue()
    } else {
        sock.send_queue()
    };
    if queued > 0 {
        return true;
    }
    let swapped = if receive {
        sock.replace_rx_buffer(tcp::SocketBuffer::new(pool.small_rx.take()))
    } else {
        sock.replace_tx_buffer(tcp::SocketBuffer::new(pool.small_tx.take()))
    };
    let kept = swapped.is_err();
    let back = match swapped {
        Ok(b) | Err(b) => b,
    };
    if let Some(v) = back.into_vec() {
        pool.give_back(v, receive);
    }
    kept
}
