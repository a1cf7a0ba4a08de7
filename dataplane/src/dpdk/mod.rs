//! The safe layer over DPDK: EAL, mempools, owned mbufs, ethdev ports and their queues.
//!
//! Every `unsafe` block of the data plane lives here, next to the FFI it wraps.

mod eal;
mod error;
mod ethdev;
mod mbuf;
mod mempool;

pub use eal::Eal;
pub use error::DpdkError;
pub use ethdev::{DpdkPort, EthDev, EthDevConfig, EthStats, LinkStatus};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, MempoolConfig};
