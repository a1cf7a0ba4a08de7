//! Time for the data plane. smoltcp's timers (retransmission, delayed ACK, TIME-WAIT) read
//! it, so tests drive a virtual clock and production a monotonic one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use smoltcp::time::{Duration, Instant};

pub trait Clock {
    fn now(&self) -> Instant;
}

/// Wall-clock monotonic time since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as i64)
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    micros: Arc<AtomicI64>,
}

impl VirtualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, d: Duration) {
        self.micros
            .fetch_add(d.total_micros() as i64, Ordering::Relaxed);
    }

    /// Moves the clock to `t` if `t` is later than now.
    pub fn advance_to(&self, t: Instant) {
        self.micros.fetch_max(t.total_micros(), Ordering::Relaxed);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.micros.load(Ordering::Relaxed))
    }
}
