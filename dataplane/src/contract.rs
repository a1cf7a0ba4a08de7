//! The contract between the control thread and a worker: `Command`s down, `Event`s up, each
//! over a bounded lock-free ring. The worker knows nothing of H.248; the control thread maps
//! Add/Modify/Subtract onto these and the events back onto replies and Notify.

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use smoltcp::time::Duration;

use crate::capture::CaptureRings;
pub use crate::framing::{AppStats, Framing, Violation};
pub use crate::policy::{Bucket, LegPolicy, Police, SourceFilter};

/// Which termination a leg belongs to: the control thread's handle, opaque to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminationKey {
    pub context: u32,
    pub termination: u32,
}

/// The TCP role of a leg (RFC 4145 `a=setup` as the ALG resolved it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegRole {
    /// Listen on the local address and accept exactly one connection.
    Passive,
    /// Connect from the local address to `remote`.
    Active { remote: SocketAddr },
}

/// Which sources a passive leg accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The gate: only this source address (any port).
    Gate(std::net::IpAddr),
    /// Latching (UE behind NAT): any source; the latched address is reported.
    Latch,
}

/// Through-connection of a termination (H.248 Mode, seen from outside the context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Bytes received from this leg's peer may enter the context.
    pub receive: bool,
    /// Bytes from the context may be sent to this leg's peer.
    pub send: bool,
}

impl Gate {
    pub const OPEN: Gate = Gate {
        receive: true,
        send: true,
    };
    pub const CLOSED: Gate = Gate {
        receive: false,
        send: false,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegTimers {
    /// How long an active open may take before it is given up (RFC 793 leaves it open).
    pub connect: Duration,
    /// Release the leg after this long without payload in either direction.
    pub idle: Option<Duration>,
    /// Time allowed for the TLS handshake once TCP is up.
    pub handshake: Duration,
}

impl Default for LegTimers {
    fn default() -> Self {
        LegTimers {
            connect: Duration::from_secs(10),
            idle: None,
            handshake: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reserve a local address for a termination (H.248 Add): nothing listens yet.
    Reserve {
        key: TerminationKey,
        local: SocketAddr,
    },
    /// Give the leg its role and start it (H.248 Modify completing Local/Remote).
    Start {
        key: TerminationKey,
        role: LegRole,
        accept: Accept,
        timers: LegTimers,
        /// Terminate TLS on this leg (towards the UE), with the peer pinned by fingerprint.
        tls: Option<crate::tls::TlsConfig>,
        /// Understand the payload (MSRP, BFCP): both directions of the pair are framed,
        /// limited and counted when either leg asks for it.
        framing: Framing,
    },
    /// Reserve a local address for a UDP termination (`udptl`, `UDP/TLS/UDPTL`): nothing is
    /// received until it is started.
    ReserveDatagram {
        key: TerminationKey,
        local: SocketAddr,
    },
    /// Start a UDP leg, or change a started one (a Modify's new Remote, gate or DTLS
    /// association): where its datagrams go and which sources it takes.
    StartDatagram {
        key: TerminationKey,
        /// The peer's address from Remote; `None` until latched.
        remote: Option<SocketAddr>,
        accept: Accept,
        /// A latching leg follows a new source (NAT rebinding): any datagram's for plain UDP,
        /// only one that authenticates for DTLS. Without it the first source stays.
        relatch: bool,
        timers: LegTimers,
        /// Terminate DTLS on this leg (towards the UE), with the peer pinned by fingerprint;
        /// a config for another association (`a=tls-id`) restarts the handshake.
        dtls: Option<crate::dtls::DtlsConfig>,
    },
    /// Cut payload through between two terminations of one context once both are up.
    Join {
        a: TerminationKey,
        b: TerminationKey,
    },
    /// Stop cutting through between this leg and its partner (H.248 Move out of a context).
    Split { key: TerminationKey },
    /// Change through-connection (H.248 Mode).
    SetGate { key: TerminationKey, gate: Gate },
    /// Set the leg's source filter, policer and DSCP (Iq `gm`, `tman`, `ds`); a policer
    /// already running keeps its tokens.
    SetPolicy {
        key: TerminationKey,
        policy: LegPolicy,
    },
    /// Release the leg (H.248 Subtract): close it and report its final statistics.
    Release { key: TerminationKey },
    /// Report the leg's statistics now (H.248 AuditValue).
    Audit { key: TerminationKey },
    /// Start a packet capture into the capture rings (`filter` Some), or end it (None).
    /// `Captured` reports the end.
    Capture {
        filter: Option<crate::capture::CaptureFilter>,
        snaplen: u16,
        packets: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    /// Payload octets received from this leg's peer.
    pub octets_in: u64,
    /// Payload octets sent to this leg's peer.
    pub octets_out: u64,
    /// Frames received on this leg.
    pub packets_in: u64,
    /// Frames sent on this leg.
    pub packets_out: u64,
    /// Worker time (ms since the worker's clock origin) when the connection was established.
    pub established_at_ms: Option<i64>,
    /// The peer's address once connected (the latched address for a latching leg).
    pub remote: Option<SocketAddr>,
    /// MSRP or BFCP counters of an application-aware pair.
    pub app: AppStats,
    /// Frames from the peer's side dropped by the source filter.
    pub filtered: u64,
    /// Frames from the peer dropped by the policer (H.248.53 `tmanr/dp`).
    pub policed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCause {
    /// Released by the control thread.
    Released,
    /// The peer closed (FIN) and everything was delivered.
    PeerClosed,
    /// The peer reset the connection.
    PeerReset,
    /// The partner leg went away, so this one was closed too.
    PartnerGone,
    IdleTimeout,
    /// The TLS handshake or a record failed (see `TlsFailed`).
    TlsFailed,
    /// The peer broke MSRP or BFCP framing or a limit (see `Violation`); the pair is reset.
    Violation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The active open got a RST.
    Refused,
    /// No answer within the connect timer.
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UnknownTermination,
    AddressInUse,
    /// The local address is not one the worker serves.
    NotLocal,
    LegTableFull,
    AlreadyStarted,
    NotStarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The leg's TCP connection is established.
    Established {
        key: TerminationKey,
        remote: SocketAddr,
    },
    /// A latching leg accepted a source other than the one in Remote (or none was given).
    Latched {
        key: TerminationKey,
        remote: SocketAddr,
    },
    /// Both legs are up and payload is cut through (seed step 23).
    CutThrough {
        a: TerminationKey,
        b: TerminationKey,
    },
    ConnectFailed {
        key: TerminationKey,
        failure: ConnectFailure,
    },
    /// The leg ended on its own or by release; final statistics.
    Closed {
        key: TerminationKey,
        cause: ReleaseCause,
        stats: LegStats,
    },
    /// The leg's TLS handshake completed (TLS 1.2 or 1.3).
    TlsEstablished { key: TerminationKey, version: u16 },
    /// The leg's TLS session failed; an alert was sent where TLS allows one. The leg ends.
    TlsFailed {
        key: TerminationKey,
        failure: crate::tls::TlsFailure,
    },
    /// The leg's peer broke MSRP or BFCP framing or a limit: the pair is reset and both legs
    /// report `Closed`.
    Violation {
        key: TerminationKey,
        violation: Violation,
    },
    /// A packet capture ended (its frame limit, or `Capture` with no filter).
    Captured { captured: u64, missed: u64 },
    /// Answer to `Audit`.
    Stats {
        key: TerminationKey,
        stats: LegStats,
    },
    /// A command could not be carried out.
    Rejected {
        key: TerminationKey,
        reason: Rejection,
    },
}

/// The control thread's end of one worker's rings.
#[derive(Clone)]
pub struct ControlEnd {
    pub commands: Arc<ArrayQueue<Command>>,
    pub events: Arc<ArrayQueue<Event>>,
    pub capture: CaptureRings,
}

/// The worker's end of its rings.
pub struct WorkerEnd {
    pub commands: Arc<ArrayQueue<Command>>,
    pub events: Arc<ArrayQueue<Event>>,
    pub capture: CaptureRings,
}

/// Buffers a capture may have in flight per worker.
pub const CAPTURE_BUFFERS: usize = 1024;

/// A bounded pair of rings for one worker. A full command ring is the control thread's
/// signal to answer with an error or Pending; a full event ring makes the worker keep the
/// event until there is room (it stops taking commands meanwhile).
pub fn rings(capacity: usize) -> (ControlEnd, WorkerEnd) {
    let commands = Arc::new(ArrayQueue::new(capacity));
    let events = Arc::new(ArrayQueue::new(capacity));
    let capture = CaptureRings::new(CAPTURE_BUFFERS);
    (
        ControlEnd {
            commands: Arc::clone(&commands),
            events: Arc::clone(&events),
            capture: capture.clone(),
        },
        WorkerEnd {
            commands,
            events,
            capture,
        },
    )
}
