//! A leg and its state, as types: what a leg is (TCP, TCP with TLS, UDP, UDP with DTLS) and
//! where it is (reserved, listening, connecting, established, closing) are enums whose
//! variants carry exactly the data that state has, so an established TLS leg without a
//! session, a connect timer on a listening leg or a DTLS session on a plain leg cannot be
//! written down.

use std::net::{IpAddr, SocketAddr};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};

use crate::contract::{Accept, Gate, LegStats, LegTimers, TerminationKey};
use crate::dtls::{DtlsConfig, DtlsSession};
use crate::framing::{AppStats, Framer, Framing};
use crate::policy::Guard;
use crate::tls::{TlsConfig, TlsSession};

/// A leg's deadline in the timer wheel when it has none.
pub(super) const NO_DEADLINE: i64 = i64::MAX;

/// What every leg has: its key, its local address and one-socket smoltcp set, its partner in
/// the context, the gate, its statistics, and its place in the dirty list and the wheel.
///
/// Laid out in this order (`repr(C)`): what every frame to or from the leg reads comes first
/// and the guard right after it, so that a frame of a leg not in cache misses on as few
/// lines as it can; the counters and the timers' settings last. The MSRP/BFCP counters
/// (300 bytes) live with the framer and the Iq policy's guard (64) in a box of its own, so
/// a leg without them does not carry them: at 100 000 legs the record is what spread
/// traffic misses on, and at 256 bytes aligned to a line it is exactly four lines.
///
/// Its set holds one socket, always at [`sole`]'s handle, so the record keeps no handle; its
/// local address is an index into the worker's port table (the worker's few addresses), not
/// the address itself.
#[repr(C, align(64))]
pub(super) struct Leg {
    pub set: SocketSet<'static>,
    pub partner: Option<u32>,
    /// Index of the local address in the worker's port table, and the local port.
    pub local: (u8, u16),
    /// The network of the local address (the worker's index).
    pub net: u8,
    pub gate: Gate,
    /// DiffServ code point of what the leg sends.
    pub dscp: u8,
    /// On the dirty list.
    pub dirty: bool,
    pub cut_through_reported: bool,
    /// The pair's last relay left nothing waiting either way, and neither leg has TLS: a
    /// service of this leg with nothing received has nothing to relay (see
    /// `Worker::serve_tcp`).
    pub quiet: bool,
    /// The serving pass in which the partner's service already relayed this pair both ways
    /// with nothing left to move (0: none); see `Worker::serve_tcp`.
    pub relayed_in_pass: u32,
    /// Deadline this leg is armed for in the wheel, in ms.
    pub armed_ms: i64,
    pub last_payload: Instant,
    /// Source filter and policer of what the peer sends, when the leg has either (boxed:
    /// most legs have none, and the record stays within four lines).
    pub guard: Option<Box<Guard>>,
    pub kind: Kind,
    pub key: TerminationKey,
    /// The idle timer (ZERO: none), from the leg's `LegTimers`.
    pub idle_after: Duration,
    pub stats: Tally,
}

/// Where the part of a TCP leg's socket storage that a segment arriving in order never
/// touches lies: (offset from the storage's start, length). The spare reassembly slots, about
/// half of it (smoltcp patch 12). The same for every TCP leg: the layout is the type's.
pub(super) fn tcp_cold_span() -> (usize, usize) {
    let mut set = SocketSet::new(Vec::with_capacity(1));
    let empty = || tcp::SocketBuffer::new(Vec::new());
    let handle = set.add(tcp::Socket::new(empty(), empty()));
    let (start, len) = set.storage_addr();
    let (cold, cold_len) = set.get::<tcp::Socket>(handle).cold_span();
    let offset = (cold as usize).wrapping_sub(start as usize);
    match offset.checked_add(cold_len) {
        Some(end) if end <= len => (offset, cold_len),
        _ => (len, 0),
    }
}

/// The handle of the one socket of a leg's set (the first socket a set takes).
#[inline]
pub(super) fn sole() -> SocketHandle {
    SocketHandle::default()
}

/// An IP address and port in 20 bytes (a `SocketAddr` takes 32 for IPv6's flow label and
/// scope, which a leg never uses): the peer of a leg, kept in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addr {
    pub ip: IpAddr,
    pub port: u16,
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

impl From<Addr> for SocketAddr {
    fn from(a: Addr) -> SocketAddr {
        SocketAddr::new(a.ip, a.port)
    }
}

pub(super) const NOT_ESTABLISHED: i64 = i64::MIN;

/// What a leg counts as frames and bytes pass; `Leg::stats` adds an aware pair's MSRP or
/// BFCP counters for a report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tally {
    pub octets_in: u64,
    pub octets_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// When the connection was established (ms), [`NOT_ESTABLISHED`] before.
    pub established_ms: i64,
    pub remote: Option<Addr>,
    pub filtered: u64,
    pub policed: u64,
}

pub(super) enum Kind {
    Tcp(TcpLeg),
    Udp(UdpLeg),
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            octets_in: 0,
            octets_out: 0,
            packets_in: 0,
            packets_out: 0,
            established_ms: NOT_ESTABLISHED,
            remote: None,
            filtered: 0,
            policed: 0,
        }
    }
}

impl Leg {
    /// A leg at local address `local` (its port-table index and port) with its set of one
    /// socket.
    pub fn new(
        key: TerminationKey,
        local: (u8, u16),
        set: SocketSet<'static>,
        now: Instant,
        kind: Kind,
    ) -> Leg {
        Leg {
            key,
            local,
            net: 0,
            set,
            partner: None,
            gate: Gate::OPEN,
            guard: None,
            dscp: 0,
            idle_after: Duration::ZERO,
            last_payload: now,
            stats: Tally::new(),
            cut_through_reported: false,
            quiet: false,
            relayed_in_pass: 0,
            dirty: false,
            armed_ms: NO_DEADLINE,
            kind,
        }
    }

    /// Takes the leg's idle timer from its start command.
    pub fn set_timers(&mut self, t: &LegTimers) {
        self.idle_after = t.idle.unwrap_or(Duration::ZERO);
    }

    /// The idle timer, if the leg has one.
    pub fn idle(&self) -> Option<Duration> {
        (self.idle_after != Duration::ZERO).then_some(self.idle_after)
    }

    /// The leg's statistics as reported to the control plane.
    pub fn stats(&self) -> LegStats {
        let t = &self.stats;
        let app = match &self.kind {
            Kind::Tcp(TcpLeg { aware: Some(a), .. }) => a.app,
            _ => AppStats::None,
        };
        LegStats {
            octets_in: t.octets_in,
            octets_out: t.octets_out,
            packets_in: t.packets_in,
            packets_out: t.packets_out,
            established_at_ms: (t.established_ms != NOT_ESTABLISHED).then_some(t.established_ms),
            remote: t.remote.map(SocketAddr::from),
            app,
            filtered: t.filtered,
            policed: t.policed,
        }
    }

    /// Where a TCP leg's next received octets and next sent octets land in its socket's
    /// buffers (for prefetch hints; read from the socket, not from the buffers).
    #[inline]
    pub fn buffer_write_addrs(&self) -> Option<(*const u8, *const u8)> {
        match self.kind {
            Kind::Tcp(_) => Some(self.set.get::<tcp::Socket>(sole()).buffer_write_addrs()),
            Kind::Udp(_) => None,
        }
    }

    pub fn is_udp(&self) -> bool {
        matches!(self.kind, Kind::Udp(_))
    }

    pub fn tcp(&mut self) -> Option<&mut TcpLeg> {
        match &mut self.kind {
            Kind::Tcp(t) => Some(t),
            Kind::Udp(_) => None,
        }
    }

    pub fn udp(&mut self) -> Option<&mut UdpLeg> {
        match &mut self.kind {
            Kind::Udp(u) => Some(u),
            Kind::Tcp(_) => None,
        }
    }

    /// The leg's socket, when it is a TCP leg (the set holds the socket of the leg's kind:
    /// asking for the other type would panic in smoltcp, so every access goes by the kind).
    pub fn tcp_socket(&mut self) -> Option<&mut tcp::Socket<'static>> {
        match self.kind {
            Kind::Tcp(_) => Some(self.set.get_mut::<tcp::Socket>(sole())),
            Kind::Udp(_) => None,
        }
    }

    pub fn udp_socket(&mut self) -> Option<&mut udp::Socket<'static>> {
        match self.kind {
            Kind::Udp(_) => Some(self.set.get_mut::<udp::Socket>(sole())),
            Kind::Tcp(_) => None,
        }
    }

    /// Ready to carry payload: TCP established with TLS (if any) past its handshake, or UDP
    /// open with a peer and DTLS (if any) connected.
    pub fn carries(&self) -> bool {
        match &self.kind {
            Kind::Tcp(t) => t.carries(),
            Kind::Udp(u) => u.carries(),
        }
    }
}

/// A TCP leg: its connection state, TLS if it terminates it, and MSRP/BFCP awareness.
pub(super) struct TcpLeg {
    pub state: TcpState,
    /// MSRP or BFCP awareness asked for by the control plane.
    pub framing: Framing,
    /// Frames what this leg's peer sends, once the pair is cut through and aware.
    pub aware: Option<Box<Aware>>,
    /// We half-closed this leg because its partner's peer did.
    pub fin_forwarded: bool,
    /// Closed has been reported (release or end of the connection).
    pub reported: bool,
}

/// An aware leg's framer of what its peer sends, and the MSRP/BFCP counters of both ways.
pub(super) struct Aware {
    pub framer: Framer,
    pub app: AppStats,
}

/// Where a TCP leg's connection is.
pub(super) enum TcpState {
    /// Address reserved, no role yet.
    Reserved,
    /// Passive: accepts exactly one connection from the sources `accept` takes.
    Listening {
        accept: Accept,
        tls: Option<Box<PendingTls>>,
    },
    /// Active: connecting, given up at `deadline`.
    Connecting {
        deadline: Instant,
        tls: Option<Box<PendingTls>>,
    },
    Established {
        tls: Option<Tls>,
    },
    /// Closing after a release, a partner's end or a timeout; freed once the socket is done,
    /// reset at `drain` if that comes first. Nothing is relayed any more, so a TLS session
    /// is dropped here.
    Closing {
        drain: Option<Instant>,
    },
}

/// TLS a leg will run once its connection is up: the configuration and the time the
/// handshake may take (boxed: most legs have none, and the record stays small).
pub(super) struct PendingTls {
    pub config: TlsConfig,
    pub handshake: Duration,
}

/// TLS on an established leg (towards the UE).
pub(super) struct Tls {
    pub session: Box<TlsSession>,
    /// The handshake must be done by then.
    pub handshake_deadline: Option<Instant>,
    /// close_notify is queued: close TCP once rustls has written it out.
    pub close_after_flush: bool,
}

impl TcpLeg {
    pub fn new() -> TcpLeg {
        TcpLeg {
            state: TcpState::Reserved,
            framing: Framing::Agnostic,
            aware: None,
            fin_forwarded: false,
            reported: false,
        }
    }

    pub fn has_tls(&self) -> bool {
        matches!(&self.state, TcpState::Established { tls: Some(_) })
    }

    pub fn carries(&self) -> bool {
        match &self.state {
            TcpState::Established { tls } => {
                tls.as_ref().is_none_or(|t| !t.session.is_handshaking())
            }
            _ => false,
        }
    }

    /// The deadline of the current state, if any.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            TcpState::Connecting { deadline, .. } => Some(*deadline),
            TcpState::Established { tls } => tls.as_ref().and_then(|t| t.handshake_deadline),
            TcpState::Closing { drain } => *drain,
            TcpState::Reserved | TcpState::Listening { .. } => None,
        }
    }

    pub fn close(&mut self, drain: Option<Instant>) {
        self.state = TcpState::Closing { drain };
    }
}

/// Where a UDP leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UdpState {
    /// Address reserved, nothing taken.
    Reserved,
    Open,
}

/// A UDP (T.38) leg: its peer, gate or latch, and DTLS if it terminates it.
pub(super) struct UdpLeg {
    pub state: UdpState,
    pub accept: Accept,
    pub relatch: bool,
    /// Where datagrams to the peer go: the Remote address, then the latched source.
    pub peer: Option<Addr>,
    pub latched: bool,
    pub dtls: Option<Box<Dtls>>,
    /// The partner stopped reading because this leg's send queue was full: serve it once
    /// this leg has sent something.
    pub wake_partner: bool,
}

/// DTLS on a UDP leg (towards the UE): the association's configuration, its session once the
/// peer is known, and the handshake's deadline.
pub(super) struct Dtls {
    pub config: DtlsConfig,
    pub session: Option<Box<DtlsSession>>,
    pub handshake_deadline: Option<Instant>,
}

impl UdpLeg {
    pub fn new() -> UdpLeg {
        UdpLeg {
            state: UdpState::Reserved,
            accept: Accept::Latch,
            relatch: false,
            peer: None,
            latched: false,
            dtls: None,
            wake_partner: false,
        }
    }

    /// Ready to carry payload: started, a peer known, and DTLS (if any) connected.
    pub fn carries(&self) -> bool {
        self.state == UdpState::Open
            && self.peer.is_some()
            && self
                .dtls
                .as_ref()
                .is_none_or(|d| d.session.as_ref().is_some_and(|s| s.is_connected()))
    }

    pub fn takes_from(&self, src: Addr) -> bool {
        match self.accept {
            Accept::Gate(ip) => src.ip == ip,
            Accept::Latch => !self.latched || self.peer == Some(src) || self.relatch,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Spread traffic over 100 000 legs misses on every leg record it touches: the record is
    /// kept to 256 bytes on a line boundary, four cache lines (the MSRP/BFCP counters, the
    /// Iq guard and TLS/DTLS sessions live behind pointers, only on the legs that have them;
    /// IPv6 addresses cost it nothing: the local one is an index, a peer's is kept in 20
    /// bytes).
    #[test]
    fn a_leg_record_is_four_cache_lines() {
        assert_eq!(std::mem::size_of::<Option<Leg>>(), 256);
        assert_eq!(std::mem::align_of::<Option<Leg>>(), 64);
    }

    /// The burst leaves out the same bytes of every TCP leg's socket storage: the spare
    /// reassembly slots of that leg's own socket, well inside the storage and most of its
    /// assembler (what is left is asked for: the socket's state and its first slots).
    #[test]
    fn the_cold_span_is_each_sockets_spare_reassembly_slots() {
        let (from, len) = tcp_cold_span();
        let storage = std::mem::size_of::<smoltcp::iface::SocketStorage>();
        assert!(
            len >= 256 && from + len <= storage,
            "{from}+{len} of {storage}"
        );
        for buffers in [0, 64, 4096] {
            let buf = || tcp::SocketBuffer::new(vec![0; buffers]);
            let mut set = SocketSet::new(Vec::with_capacity(1));
            let h = set.add(tcp::Socket::new(buf(), buf()));
            let (start, _) = set.storage_addr();
            let (cold, cold_len) = set.get::<tcp::Socket>(h).cold_span();
            assert_eq!((cold as usize - start as usize, cold_len), (from, len));
        }
    }
}
