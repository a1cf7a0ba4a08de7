//! Application-aware relaying (TS 23.334 5.19): when the ALG reserves a termination as
//! `TCP/MSRP` or `TCP/BFCP` (with or without TLS), the worker frames the bytes it cuts
//! through, holds each direction to limits and counts what it carried. In agnostic mode
//! (`TCP`, or MSRP with CEMA) nothing is parsed.

pub mod bfcp;
pub mod msrp;

pub use bfcp::{BfcpCounters, BfcpFramer, BfcpLimits, BfcpViolation};
pub use msrp::{MsrpCounters, MsrpFramer, MsrpLimits, MsrpViolation};

/// How the bytes of a pair are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Opaque bytes.
    #[default]
    Agnostic,
    Msrp,
    Bfcp,
}

/// The worker's limits for application-aware legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FramingLimits {
    pub msrp: MsrpLimits,
    pub bfcp: BfcpLimits,
}

/// Why a stream could no longer be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("MSRP: {0}")]
    Msrp(MsrpViolation),
    #[error("BFCP: {0}")]
    Bfcp(BfcpViolation),
}

impl Violation {
    pub fn protocol(self) -> &'static str {
        match self {
            Violation::Msrp(_) => "msrp",
            Violation::Bfcp(_) => "bfcp",
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Violation::Msrp(v) => v.token(),
            Violation::Bfcp(v) => v.token(),
        }
    }
}

/// What an application-aware termination carried, each way as seen from the termination:
/// `received` from its peer, `sent` to its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppStats {
    #[default]
    None,
    Msrp {
        received: MsrpCounters,
        sent: MsrpCounters,
    },
    Bfcp {
        received: BfcpCounters,
        sent: BfcpCounters,
    },
}

/// The framer of one direction (the bytes a leg receives from its peer). A leg holds it in a
/// Box, so the variants' sizes need not match.
#[allow(clippy::large_enum_variant)]
pub enum Framer {
    Msrp(MsrpFramer),
    Bfcp(BfcpFramer),
}

impl Framer {
    pub fn new(framing: Framing, limits: &FramingLimits, now_ms: i64) -> Option<Framer> {
        match framing {
            Framing::Agnostic => None,
            Framing::Msrp => Some(Framer::Msrp(MsrpFramer::new(limits.msrp, now_ms))),
            Framing::Bfcp => Some(Framer::Bfcp(BfcpFramer::new(limits.bfcp, now_ms))),
        }
    }

    pub fn feed(&mut self, data: &[u8], now_ms: i64) -> Result<(), Violation> {
        match self {
            Framer::Msrp(f) => f.feed(data, now_ms).map_err(Violation::Msrp),
            Framer::Bfcp(f) => f.feed(data, now_ms).map_err(Violation::Bfcp),
        }
    }

    pub fn at_boundary(&self) -> bool {
        match self {
            Framer::Msrp(f) => f.at_boundary(),
            Framer::Bfcp(f) => f.at_boundary(),
        }
    }

    /// What this direction's counters are now, for taking differences.
    pub fn snapshot(&self) -> Snapshot {
        match self {
            Framer::Msrp(f) => Snapshot::Msrp(*f.counters()),
            Framer::Bfcp(f) => Snapshot::Bfcp(*f.counters()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Snapshot {
    Msrp(MsrpCounters),
    Bfcp(BfcpCounters),
}

impl AppStats {
    /// Books what a direction carried between two snapshots, as received (on the leg whose
    /// peer sent it) or as sent (on the leg that delivered it).
    pub fn book(&mut self, before: &Snapshot, after: &Snapshot, received: bool) {
        match (before, after) {
            (Snapshot::Msrp(b), Snapshot::Msrp(a)) => {
                if !matches!(self, AppStats::Msrp { .. }) {
                    *self = AppStats::Msrp {
                        received: MsrpCounters::default(),
                        sent: MsrpCounters::default(),
                    };
                }
                if let AppStats::Msrp {
                    received: r,
                    sent: s,
                } = self
                {
                    if received { r } else { s }.add_delta(a, b);
                }
            }
            (Snapshot::Bfcp(b), Snapshot::Bfcp(a)) => {
                if !matches!(self, AppStats::Bfcp { .. }) {
                    *self = AppStats::Bfcp {
                        received: BfcpCounters::default(),
                        sent: BfcpCounters::default(),
                    };
                }
                if let AppStats::Bfcp {
                    received: r,
                    sent: s,
                } = self
                {
                    if received { r } else { s }.add_delta(a, b);
                }
            }
            _ => {}
        }
    }
}

/// Allows `rate` events per second with a burst of one second's worth; 0 means no limit.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: u64,
    /// In thousandths of a token.
    milli: u64,
    last_ms: i64,
}

impl TokenBucket {
    pub fn new(rate: u32, now_ms: i64) -> Self {
        TokenBucket {
            rate: rate as u64,
            milli: rate as u64 * 1000,
            last_ms: now_ms,
        }
    }

    pub fn take(&mut self, now_ms: i64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = (now_ms - self.last_ms).max(0) as u64;
        self.last_ms = self.last_ms.max(now_ms);
        // `rate` tokens per 1000 ms is `rate` thousandths per ms.
        self.milli = (self.milli + elapsed.saturating_mul(self.rate)).min(self.rate * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_second_of_burst_then_the_rate() {
        let mut b = TokenBucket::new(10, 0);
        assert!((0..10).all(|_| b.take(0)));
        assert!(!b.take(0));
        assert!(!b.take(50));
        assert!(b.take(100));
        assert!(!b.take(100));
        // A long pause refills only one second's worth.
        assert_eq!((0..20).filter(|_| b.take(10_000)).count(), 10);
        let mut free = TokenBucket::new(0, 0);
        assert!((0..100_000).all(|_| free.take(0)));
    }
}
