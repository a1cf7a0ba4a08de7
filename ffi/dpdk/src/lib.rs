//! The safe layer over DPDK 22.11: EAL, mempools, owned mbufs, ethdev ports and their queues
//! as [`port::Port`]s.
//!
//! With `dpdk-sys` below it, this is the only crate of imsagw that may use `unsafe` (every
//! other crate says `#![forbid(unsafe_code)]`); each block carries a `// SAFETY:` comment next
//! to the FFI it wraps. It must never know about legs, TCP or H.248: it moves frames.
#![deny(unsafe_op_in_unsafe_fn)]

mod eal;
mod error;
mod ethdev;
mod mbuf;
mod mempool;
mod wake;

pub use eal::Eal;
pub use error::DpdkError;
pub use ethdev::{DpdkPort, EthDev, EthDevConfig, EthStats, LinkStatus};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, MempoolConfig};
pub use wake::PortSockets;
