//! The packet-port contract the data plane runs on: burst receive and transmit of owned
//! buffers. `dpdk::DpdkPort` (one ethdev queue pair) and `testbed::memlink::MemPort` (one end
//! of an in-memory link) implement it; nothing above it knows which one it has.
//!
//! It must never depend on DPDK, smoltcp or anything else of imsagw: it is the seam that lets
//! the worker run on a NIC queue in production and on an in-memory link under test.
#![forbid(unsafe_code)]

use arrayvec::ArrayVec;

/// Frames per burst. DPDK drivers work best at 32; smoltcp is told the same limit.
pub const BURST: usize = 32;

/// A fixed-capacity burst of owned buffers; never allocates.
pub type Burst<B> = ArrayVec<B, BURST>;

/// An owned packet buffer: a contiguous data area with head- and tailroom.
pub trait PacketBuf: Send {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    fn headroom(&self) -> usize;
    fn tailroom(&self) -> usize;
    /// Grows the data at the end by `n` bytes and returns them; `None` without room.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the data at the front by `n` bytes and returns them; `None` without room.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front; false if the data is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false if the data is shorter.
    fn trim(&mut self, n: usize) -> bool;
}

/// What a port can do, for the smoltcp adapter and the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCapabilities {
    /// Largest Ethernet frame (header included, FCS excluded) the port sends or receives.
    pub max_frame: usize,
    /// Frames the port can take in one burst.
    pub max_burst: usize,
    /// The port verifies IPv4/TCP/UDP checksums on receive (none of ours do yet).
    pub rx_checksum_offload: bool,
    /// The port fills IPv4/TCP/UDP checksums on transmit (none of ours do yet).
    pub tx_checksum_offload: bool,
}

impl Default for PortCapabilities {
    fn default() -> Self {
        PortCapabilities {
            max_frame: 1514,
            max_burst: BURST,
            rx_checksum_offload: false,
            tx_checksum_offload: false,
        }
    }
}

/// Counters every port keeps about the frames it refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortDrops {
    /// Received frames dropped because they spanned several buffers.
    pub rx_multi_segment: u64,
}

/// One queue pair of a network port, owned by one thread at a time.
pub trait Port {
    type Buf: PacketBuf;

    /// Appends up to `out.remaining_capacity()` received frames; returns how many.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>) -> usize;

    /// Transmits frames from the front of `frames`; the sent ones are removed and the rest stay
    /// in order. Returns how many were sent.
    fn tx_burst(&mut self, frames: &mut Burst<Self::Buf>) -> usize;

    /// An empty buffer with the port's standard headroom, or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<Self::Buf>;

    fn mac(&self) -> [u8; 6];

    fn capabilities(&self) -> PortCapabilities;

    fn drops(&self) -> PortDrops {
        PortDrops::default()
    }
}
