//! imsagw's data plane: the poll-mode worker and what it runs on a leg.
//!
//! A worker owns one queue of a packet [`port::Port`], one smoltcp
//! interface, and every leg the control thread gives it through its command ring
//! ([`contract`]). Each leg has its own one-socket smoltcp set behind a flat port table
//! ([`demux`]), so the cost of a frame does not grow with the number of legs; TCP legs are cut
//! through to their partner with back-pressure, optionally terminating TLS ([`tls`]) or
//! observing MSRP/BFCP ([`framing`]); UDP legs relay T.38 datagrams, optionally over DTLS
//! ([`dtls`]).
//!
//! What it must never do: know H.248 (the [`contract`] is all it sees of the control plane),
//! depend on DPDK (it is generic over [`port::Port`]), block, or allocate, lock or log per
//! packet once warm.
#![forbid(unsafe_code)]

pub mod capture;
pub mod clock;
pub mod contract;
pub mod counters;
pub mod demux;
pub mod device;
pub mod dtls;
pub mod echo;
pub mod framing;
pub mod legpoll;
pub mod policy;
pub mod tls;
pub mod vlan;
pub mod wheel;
pub mod worker;
