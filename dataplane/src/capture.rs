//! Packet capture on demand: a worker copies the frames it receives and sends that match a
//! filter into buffers the control thread lent it, through two bounded rings, so a capture
//! never allocates, locks or blocks on the hot path. With no capture running, the cost is one
//! branch per frame. When no buffer is free the frame is not captured (counted), never
//! delayed.

use std::sync::Arc;

use crate::demux::FrameClass;
use crossbeam_queue::ArrayQueue;

/// Octets kept of each captured frame, at most.
pub const SNAP_MAX: usize = 2048;

/// One captured frame.
pub struct CapturedFrame {
    /// Worker clock, microseconds.
    pub ts_us: i64,
    /// Sent by the worker (true) or received (false).
    pub outbound: bool,
    /// The frame's length on the wire.
    pub orig_len: u32,
    pub len: u16,
    pub data: [u8; SNAP_MAX],
}

impl CapturedFrame {
    pub fn empty() -> Box<CapturedFrame> {
        Box::new(CapturedFrame {
            ts_us: 0,
            outbound: false,
            orig_len: 0,
            len: 0,
            data: [0; SNAP_MAX],
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

/// The rings between a worker and the control thread: filled frames up, empty buffers down.
#[derive(Clone)]
pub struct CaptureRings {
    pub full: Arc<ArrayQueue<Box<CapturedFrame>>>,
    pub free: Arc<ArrayQueue<Box<CapturedFrame>>>,
}

impl CaptureRings {
    pub fn new(capacity: usize) -> Self {
        CaptureRings {
            full: Arc::new(ArrayQueue::new(capacity)),
            free: Arc::new(ArrayQueue::new(capacity)),
        }
    }
}

/// Which frames a capture takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFilter {
    /// Every frame of the worker's ports.
    All,
    /// TCP or UDP frames with this port as source or destination (a termination's local
    /// port).
    Port(u16),
    /// IPv4 or IPv6 frames from or to this address (one UE, one peer).
    Host(std::net::IpAddr),
}

/// A running capture in a worker, on one of its ports.
pub struct CaptureTap {
    filter: CaptureFilter,
    snaplen: usize,
    /// Frames still to take, shared by the taps of one capture on a worker's ports.
    remaining: std::sync::Arc<std::sync::atomic::AtomicU64>,
    rings: CaptureRings,
    pub captured: u64,
    /// Matching frames not captured for want of a free buffer.
    pub missed: u64,
}

impl CaptureTap {
    pub fn new(filter: CaptureFilter, snaplen: usize, packets: u64, rings: CaptureRings) -> Self {
        CaptureTap {
            filter,
            snaplen: snaplen.clamp(64, SNAP_MAX),
            remaining: std::sync::Arc::new(packets.into()),
            rings,
            captured: 0,
            missed: 0,
        }
    }

    /// The same capture on another port: it takes from the same count of frames and counts
    /// its own.
    pub fn sibling(&self) -> CaptureTap {
        CaptureTap {
            filter: self.filter,
            snaplen: self.snaplen,
            remaining: std::sync::Arc::clone(&self.remaining),
            rings: self.rings.clone(),
            captured: 0,
            missed: 0,
        }
    }

    fn remaining(&self) -> u64 {
        self.remaining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn done(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes a copy of `frame` if it matches and a buffer is free.
    #[inline]
    pub fn offer(&mut self, frame: &[u8], outbound: bool, now_us: i64) {
        if self.remaining() == 0 || !self.matches(frame) {
            return;
        }
        let Some(mut buf) = self.rings.free.pop() else {
            self.missed += 1;
            return;
        };
        let n = frame.len().min(self.snaplen);
        buf.data[..n].copy_from_slice(&frame[..n]);
        buf.len = n as u16;
        buf.orig_len = frame.len() as u32;
        buf.outbound = outbound;
        buf.ts_us = now_us;
        match self.rings.full.push(buf) {
            Ok(()) => {
                self.captured += 1;
                self.remaining
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Cannot happen while every buffer is on one of the two rings of equal size;
            // the buffer goes back to the free ring.
            Err(buf) => {
                let _ = self.rings.free.push(buf);
                self.missed += 1;
            }
        }
    }

    fn matches(&self, frame: &[u8]) -> bool {
        match self.filter {
            CaptureFilter::All => true,
            CaptureFilter::Port(p) => ends(frame).is_some_and(|(s, d)| s.1 == p || d.1 == p),
            CaptureFilter::Host(ip) => ends(frame).is_some_and(|(s, d)| s.0 == ip || d.0 == ip),
        }
    }
}

/// Source and destination (address, port) of an Ethernet TCP or UDP frame, IPv4 or IPv6
/// (fragments have none).
/// A frame's ends, through a VLAN tag (frames are captured as they are on the wire).
fn ends(f: &[u8]) -> Option<((std::net::IpAddr, u16), (std::net::IpAddr, u16))> {
    match crate::demux::classify_at(f, crate::vlan::ethertype_offset(f)) {
        FrameClass::Tcp { src, dst, .. } | FrameClass::Udp { src, dst, .. } => Some((src, dst)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(src: u16, dst: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(54)];
        f[12] = 0x08;
        f[14] = 0x45;
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[23] = 6;
        f[34..36].copy_from_slice(&src.to_be_bytes());
        f[36..38].copy_from_slice(&dst.to_be_bytes());
        f
    }

    #[test]
    fn takes_matching_frames_up_to_the_limit_and_counts_what_it_misses() {
        let rings = CaptureRings::new(4);
        for _ in 0..3 {
            rings.free.push(CapturedFrame::empty()).ok().unwrap();
        }
        let mut tap = CaptureTap::new(CaptureFilter::Port(40000), 100, 5, rings.clone());
        tap.offer(&tcp_frame(1234, 40000, 60), false, 7);
        tap.offer(&tcp_frame(40000, 1234, 3000), true, 8);
        tap.offer(&tcp_frame(1, 2, 60), false, 9);
        tap.offer(&tcp_frame(40000, 9, 60), true, 10);
        // No buffer left: missed, not blocked.
        tap.offer(&tcp_frame(40000, 9, 60), true, 11);
        assert_eq!((tap.captured, tap.missed), (3, 1));
        let a = rings.full.pop().unwrap();
        assert_eq!((a.ts_us, a.outbound, a.orig_len, a.len), (7, false, 60, 60));
        let b = rings.full.pop().unwrap();
        assert_eq!((b.orig_len, b.len, b.outbound), (3000, 100, true));
        // Buffers come back; the limit of 5 stops it after two more.
        rings.free.push(a).ok().unwrap();
        rings.free.push(b).ok().unwrap();
        rings.free.push(rings.full.pop().unwrap()).ok().unwrap();
        for t in 0..5 {
            tap.offer(&tcp_frame(40000, 9, 60), true, t);
        }
        assert_eq!(tap.captured, 5);
        assert!(tap.done());
    }
}
