//! `MemLink`: an in-memory Ethernet cable with two ends, a virtual clock and seeded fault
//! injection (drop, duplicate, reorder, delay and jitter, corrupt, rate limit). The data-plane
//! tests run real smoltcp stacks over it deterministically.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_queue::ArrayQueue;
use smoltcp::time::{Duration, Instant};

use crate::rng::SplitMix64;
use dataplane::clock::{Clock, VirtualClock};
use port::{Burst, PacketBuf, Port, PortCapabilities};

/// Headroom every `MemBuf` starts with, like DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const MEM_HEADROOM: usize = 128;

/// Faults applied to the frames going one way. Probabilities are per frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`, letting later frames pass.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform extra delay in [0, jitter); makes frames overtake each other when it exceeds
    /// their spacing.
    pub jitter: Duration,
    /// Probability that one random bit of the frame is flipped.
    pub corrupt: f64,
    /// Serialisation rate in bytes per second; `None` is infinitely fast.
    pub rate_bytes_per_sec: Option<u64>,
}

/// What happened to the frames sent one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    /// Transmit attempts refused because the wire's queue was full (back-pressure).
    pub refused: u64,
    /// Duplicates that could not be made because the pool was empty.
    pub no_buffer: u64,
}

#[derive(Debug, Clone)]
pub struct MemLinkConfig {
    pub seed: u64,
    /// Buffers in the link's pool (shared by both ends, like one mempool).
    pub pool_buffers: usize,
    /// Data room of each buffer, headroom included.
    pub buffer_size: usize,
    /// Frames in flight per direction before transmit refuses.
    pub queue_frames: usize,
    pub max_frame: usize,
    pub mac_a: [u8; 6],
    pub mac_b: [u8; 6],
    pub faults_a_to_b: Faults,
    pub faults_b_to_a: Faults,
}

impl Default for MemLinkConfig {
    fn default() -> Self {
        MemLinkConfig {
            seed: 1,
            pool_buffers: 8192,
            buffer_size: 2048 + MEM_HEADROOM,
            queue_frames: 1024,
            max_frame: 1514,
            mac_a: [0x02, 0, 0, 0, 0, 0x0a],
            mac_b: [0x02, 0, 0, 0, 0, 0x0b],
            faults_a_to_b: Faults::default(),
            faults_b_to_a: Faults::default(),
        }
    }
}

/// Buffers a pool keeps for reuse first, last freed first out: a DPDK mempool's per-lcore
/// cache (imsagw's holds 256 and flushes beyond 1.5 times that). Without it the pool would
/// hand out the buffer freed longest ago, always out of cache once many buffers have been
/// made, which no NIC's pool does.
const RECENT: usize = 384;

#[derive(Debug)]
struct PoolInner {
    /// Freed lately, taken again first (LIFO), up to `RECENT`.
    recent: Mutex<Vec<Box<[u8]>>>,
    /// The rest of the free buffers (FIFO), as a mempool's common ring.
    free: ArrayQueue<Box<[u8]>>,
    created: AtomicUsize,
    capacity: usize,
    buffer_size: usize,
}

/// A bounded pool of packet buffers; buffers are made on first use and recycled on drop.
#[derive(Debug, Clone)]
pub struct MemPool(Arc<PoolInner>);

impl MemPool {
    pub fn new(capacity: usize, buffer_size: usize) -> Self {
        MemPool(Arc::new(PoolInner {
            recent: Mutex::new(Vec::with_capacity(RECENT)),
            free: ArrayQueue::new(capacity.max(1)),
            created: AtomicUsize::new(0),
            capacity,
            buffer_size,
        }))
    }

    /// Makes every buffer now, as a DPDK mempool does when it is created, so that no later
    /// frame allocates (tests that count the worker's allocations).
    pub fn fill(&self) {
        loop {
            let n = self.0.created.fetch_add(1, Ordering::Relaxed);
            if n >= self.0.capacity {
                self.0.created.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let _ = self
                .0
                .free
                .push(vec![0u8; self.0.buffer_size].into_boxed_slice());
        }
    }

    pub fn alloc(&self) -> Option<MemBuf> {
        let storage = match self.0.take_recent().or_else(|| self.0.free.pop()) {
            Some(b) => b,
            None => {
                // Grow lazily up to the capacity, never beyond.
                let n = self.0.created.fetch_add(1, Ordering::Relaxed);
                if n >= self.0.capacity {
                    self.0.created.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                vec![0u8; self.0.buffer_size].into_boxed_slice()
            }
        };
        Some(MemBuf {
            storage: Some(storage),
            start: MEM_HEADROOM.min(self.0.buffer_size),
            len: 0,
            pool: Arc::clone(&self.0),
        })
    }

    /// Buffers currently out of the pool.
    pub fn in_use(&self) -> usize {
        self.0.created.load(Ordering::Relaxed) - self.0.free.len() - self.0.recent().len()
    }

    pub fn capacity(&self) -> usize {
        self.0.capacity
    }
}

impl PoolInner {
    fn recent(&self) -> MutexGuard<'_, Vec<Box<[u8]>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_recent(&self) -> Option<Box<[u8]>> {
        self.recent().pop()
    }

    fn give_back(&self, b: Box<[u8]>) {
        let mut recent = self.recent();
        if recent.len() < RECENT {
            recent.push(b);
        } else {
            drop(recent);
            // The queue has room for every buffer ever created, so this cannot fail.
            let _ = self.free.push(b);
        }
    }
}

/// A packet buffer from a [`MemPool`].
#[derive(Debug)]
pub struct MemBuf {
    storage: Option<Box<[u8]>>,
    start: usize,
    len: usize,
    pool: Arc<PoolInner>,
}

impl MemBuf {
    fn storage(&self) -> &[u8] {
        self.storage.as_deref().unwrap_or(&[])
    }

    fn storage_mut(&mut self) -> &mut [u8] {
        self.storage.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for MemBuf {
    fn drop(&mut self) {
        if let Some(b) = self.storage.take() {
            self.pool.give_back(b);
        }
    }
}

impl PacketBuf for MemBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn data(&self) -> &[u8] {
        &self.storage()[self.start..self.start + self.len]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let (s, l) = (self.start, self.len);
        &mut self.storage_mut()[s..s + l]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn tailroom(&self) -> usize {
        self.storage().len() - self.start - self.len
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let end = self.start + self.len;
        self.len += n;
        Some(&mut self.storage_mut()[end..end + n])
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        self.len += n;
        let s = self.start;
        Some(&mut self.storage_mut()[s..s + n])
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }

    fn trim(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
}

struct InFlight {
    at: i64,
    seq: u64,
    buf: MemBuf,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    // Reversed: BinaryHeap is a max-heap and we want the earliest delivery on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Direction {
    wire: BinaryHeap<InFlight>,
    faults: Faults,
    rng: SplitMix64,
    stats: DirectionStats,
    wire_free_at: i64,
    seq: u64,
}

struct Shared {
    dirs: [Mutex<Direction>; 2],
    pool: MemPool,
    clock: VirtualClock,
    queue_frames: usize,
    max_frame: usize,
}

impl Shared {
    fn dir(&self, i: usize) -> MutexGuard<'_, Direction> {
        self.dirs[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds linked pairs of [`MemPort`]s.
pub struct MemLink;

impl MemLink {
    /// Two ends, A and B, of one link. Frames sent on A arrive at B and the other way round,
    /// at the virtual time the faults decide.
    pub fn pair(cfg: MemLinkConfig, clock: VirtualClock) -> (MemPort, MemPort) {
        let dir = |faults: Faults, salt: u64| {
            Mutex::new(Direction {
                wire: BinaryHeap::with_capacity(cfg.queue_frames * 2),
                faults,
                rng: SplitMix64::new(cfg.seed ^ salt),
                stats: DirectionStats::default(),
                wire_free_at: 0,
                seq: 0,
            })
        };
        let shared = Arc::new(Shared {
            dirs: [
                dir(cfg.faults_a_to_b.clone(), 0xA2B),
                dir(cfg.faults_b_to_a.clone(), 0xB2A),
            ],
            pool: MemPool::new(cfg.pool_buffers, cfg.buffer_size),
            clock,
            queue_frames: cfg.queue_frames,
            max_frame: cfg.max_frame,
        });
        (
            MemPort {
                shared: Arc::clone(&shared),
                egress: 0,
                mac: cfg.mac_a,
            },
            MemPort {
                shared,
                egress: 1,
                mac: cfg.mac_b,
            },
        )
    }
}

/// One end of a [`MemLink`].
pub struct MemPort {
    shared: Arc<Shared>,
    egress: usize,
    mac: [u8; 6],
}

impl MemPort {
    fn ingress(&self) -> usize {
        1 - self.egress
    }

    pub fn pool(&self) -> &MemPool {
        &self.shared.pool
    }

    pub fn clock(&self) -> &VirtualClock {
        &self.shared.clock
    }

    /// Replaces the faults on frames this end sends.
    pub fn set_egress_faults(&self, faults: Faults) {
        self.shared.dir(self.egress).faults = faults;
    }

    pub fn egress_stats(&self) -> DirectionStats {
        self.shared.dir(self.egress).stats
    }

    pub fn ingress_stats(&self) -> DirectionStats {
        self.shared.dir(self.ingress()).stats
    }

    /// When the next frame for this end arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.shared
            .dir(self.ingress())
            .wire
            .peek()
            .map(|f| Instant::from_micros(f.at))
    }

    /// Frames in flight towards this end.
    pub fn in_flight_towards(&self) -> usize {
        self.shared.dir(self.ingress()).wire.len()
    }
}

impl Port for MemPort {
    type Buf = MemBuf;

    fn rx_burst(&mut self, out: &mut Burst<MemBuf>) -> usize {
        let now = self.shared.clock.now().total_micros();
        let mut d = self.shared.dir(self.ingress());
        let mut n = 0;
        while !out.is_full() {
            match d.wire.peek() {
                Some(f) if f.at <= now => {}
                _ => break,
            }
            if let Some(f) = d.wire.pop() {
                out.push(f.buf);
                n += 1;
            }
        }
        d.stats.delivered += n as u64;
        n
    }

    fn tx_burst(&mut self, frames: &mut Burst<MemBuf>) -> usize {
        let now = self.shared.clock.now().total_micros();
        let shared = Arc::clone(&self.shared);
        let mut d = shared.dir(self.egress);
        let room = shared.queue_frames.saturating_sub(d.wire.len());
        let take = frames.len().min(room);
        d.stats.refused += (frames.len() - take) as u64;
        for mut buf in frames.drain(..take) {
            let d = &mut *d;
            d.stats.sent += 1;
            if d.rng.chance(d.faults.drop) {
                d.stats.dropped += 1;
                continue;
            }
            if d.rng.chance(d.faults.corrupt) && !buf.is_empty() {
                let bit = d.rng.below(buf.len() as u64 * 8);
                buf.data_mut()[(bit / 8) as usize] ^= 1 << (bit % 8);
                d.stats.corrupted += 1;
            }
            let mut at = now;
            if let Some(rate) = d.faults.rate_bytes_per_sec.filter(|r| *r > 0) {
                let wire_us = (buf.len() as u64 * 1_000_000).div_ceil(rate) as i64;
                d.wire_free_at = d.wire_free_at.max(now) + wire_us;
                at = d.wire_free_at;
            }
            at += d.faults.delay.total_micros() as i64;
            let jitter = d.faults.jitter.total_micros();
            if jitter > 0 {
                at += d.rng.below(jitter) as i64;
            }
            if d.rng.chance(d.faults.reorder) {
                at += d.faults.reorder_delay.total_micros() as i64;
                d.stats.reordered += 1;
            }
            if d.rng.chance(d.faults.duplicate) {
                match shared.pool.alloc() {
                    Some(mut copy) => {
                        if let Some(dst) = copy.append(buf.len()) {
                            dst.copy_from_slice(buf.data());
                            d.seq += 1;
                            let seq = d.seq;
                            d.wire.push(InFlight {
                                at: at + 1,
                                seq,
                                buf: copy,
                            });
                            d.stats.duplicated += 1;
                        }
                    }
                    None => d.stats.no_buffer += 1,
                }
            }
            d.seq += 1;
            let seq = d.seq;
            d.wire.push(InFlight { at, seq, buf });
        }
        take
    }

    fn alloc(&mut self) -> Option<MemBuf> {
        self.shared.pool.alloc()
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn capabilities(&self) -> PortCapabilities {
        PortCapabilities {
            max_frame: self.shared.max_frame,
            ..PortCapabilities::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_out_the_buffer_freed_last_and_counts_every_one() {
        let pool = MemPool::new(2 * RECENT, 256);
        pool.fill();
        let held: Vec<MemBuf> = (0..RECENT + 10).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(pool.in_use(), RECENT + 10);
        // Freed in order: the first RECENT are kept for reuse, the rest go to the ring.
        let last = held[RECENT - 1].data().as_ptr();
        drop(held);
        assert_eq!(pool.in_use(), 0);
        let again = pool.alloc().unwrap();
        assert_eq!(again.data().as_ptr(), last);
        assert_eq!(pool.in_use(), 1);
        let all: Vec<MemBuf> = (1..2 * RECENT).map(|_| pool.alloc().unwrap()).collect();
        assert!(pool.alloc().is_none());
        drop((again, all));
        assert_eq!(pool.in_use(), 0);
    }

    fn frame(port: &mut MemPort, byte: u8, len: usize) -> MemBuf {
        let mut b = port.alloc().expect("pool has room");
        b.append(len).expect("tailroom").fill(byte);
        b
    }

    fn send(port: &mut MemPort, bufs: Vec<MemBuf>) -> usize {
        let mut burst = Burst::new();
        for b in bufs {
            burst.push(b);
        }
        port.tx_burst(&mut burst)
    }

    fn recv_all(port: &mut MemPort) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut burst = Burst::new();
            if port.rx_burst(&mut burst) == 0 {
                return out;
            }
            out.extend(burst.iter().map(|b| b.data().to_vec()));
        }
    }

    #[test]
    fn frames_cross_in_order_and_buffers_return_to_the_pool() {
        let clock = VirtualClock::new();
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default(), clock);
        let frames: Vec<_> = (0..20u8)
            .map(|i| frame(&mut a, i, 60 + i as usize))
            .collect();
        assert_eq!(send(&mut a, frames), 20);
        let got = recv_all(&mut b);
        assert_eq!(got.len(), 20);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.len(), 60 + i);
            assert!(f.iter().all(|x| *x == i as u8));
        }
        assert!(recv_all(&mut a).is_empty());
        assert_eq!(a.pool().in_use(), 0);
    }

    #[test]
    fn delay_holds_frames_until_the_clock_reaches_them() {
        let clock = VirtualClock::new();
        let cfg = MemLinkConfig {
            faults_a_to_b: Faults {
                delay: Duration::from_millis(5),
                ..Faults::default()
            },
            ..MemLinkConfig::default()
        };
        let (mut a, mut b) = MemLink::pair(cfg, clock.clone());
        let f = frame(&mut a, 1, 100);
        send(&mut a, vec![f]);
        assert!(recv_all(&mut b).is_empty());
        assert_eq!(b.next_arrival(), Some(Instant::from_millis(5)));
        clock.advance(Duration::from_millis(5));
        assert_eq!(recv_all(&mut b).len(), 1);
    }

    #[test]
    fn faults_are_reproducible_from_the_seed() {
        let run = |seed| {
            let clock = VirtualClock::new();
            let faults = Faults {
                drop: 0.1,
                duplicate: 0.1,
                reorder: 0.1,
                reorder_delay: Duration::from_micros(50),
                corrupt: 0.1,
                jitter: Duration::from_micros(20),
                ..Faults::default()
            };
            let cfg = MemLinkConfig {
                seed,
                faults_a_to_b: faults,
                ..MemLinkConfig::default()
            };
            let (mut a, mut b) = MemLink::pair(cfg, clock.clone());
            for i in 0..500u32 {
                let mut f = a.alloc().unwrap();
                f.append(4).unwrap().copy_from_slice(&i.to_be_bytes());
                send(&mut a, vec![f]);
                clock.advance(Duration::from_micros(10));
            }
            clock.advance(Duration::from_millis(1));
            (recv_all(&mut b), a.egress_stats())
        };
        let (x, sx) = run(42);
        let (y, sy) = run(42);
        let (z, _) = run(43);
        assert_eq!(x, y);
        assert_eq!(sx, sy);
        assert_ne!(x, z);
        assert!(sx.dropped > 20 && sx.duplicated > 20 && sx.reordered > 20 && sx.corrupted > 20);
        assert_eq!(sx.delivered, 500 - sx.dropped + sx.duplicated);
        // Reordering really happened: some sequence number arrives after a larger one.
        let seqs: Vec<u32> = x
            .iter()
            .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            .collect();
        assert!(seqs.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn rate_limit_spaces_frames_and_a_full_wire_refuses() {
        let clock = VirtualClock::new();
        let cfg = MemLinkConfig {
            queue_frames: 4,
            faults_a_to_b: Faults {
                rate_bytes_per_sec: Some(1_000_000),
                ..Faults::default()
            },
            ..MemLinkConfig::default()
        };
        let (mut a, mut b) = MemLink::pair(cfg, clock.clone());
        let frames: Vec<_> = (0..6).map(|_| frame(&mut a, 0, 1000)).collect();
        let mut burst = Burst::new();
        for f in frames {
            burst.push(f);
        }
        assert_eq!(a.tx_burst(&mut burst), 4);
        assert_eq!(burst.len(), 2, "refused frames stay with the caller");
        assert_eq!(a.egress_stats().refused, 2);
        // 1000 bytes at 1 MB/s = 1 ms each.
        clock.advance(Duration::from_micros(1999));
        assert_eq!(recv_all(&mut b).len(), 1);
        clock.advance(Duration::from_micros(1));
        assert_eq!(recv_all(&mut b).len(), 1);
        drop(burst);
        clock.advance(Duration::from_millis(10));
        assert_eq!(recv_all(&mut b).len(), 2);
        assert_eq!(a.pool().in_use(), 0);
    }

    #[test]
    fn pool_is_bounded() {
        let pool = MemPool::new(3, 256);
        let held: Vec<_> = (0..3).map(|_| pool.alloc().unwrap()).collect();
        assert!(pool.alloc().is_none());
        assert_eq!(pool.in_use(), 3);
        drop(held);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.alloc().is_some());
    }
}
