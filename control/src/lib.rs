//! imsagw's control plane: H.248 transactions and transports, registration with the MGC, the
//! MG model with the Iq profile, Notify, and the control plane that joins them to the workers'
//! rings.
//!
//! Requests come in through [`transport`] and [`dispatch`] (at-most-once execution,
//! [`transaction`]); the MG model ([`mg`]) turns each command into worker [`Command`]s through
//! the [`mg::DataPlane`] interface and the workers' [`Event`]s back into replies and Notify
//! ([`notify`]). [`plane::ControlPlane`] is one round of the control thread.
//!
//! What it must never do: touch a packet, depend on DPDK, or block the control thread on a
//! peer. It speaks to workers only through the contract's rings.
//!
//! [`Command`]: dataplane::contract::Command
//! [`Event`]: dataplane::contract::Event
#![forbid(unsafe_code)]

pub mod capture;
pub mod dispatch;
pub mod iq;
pub mod mg;
pub mod notify;
pub mod plane;
pub mod registration;
pub mod transaction;
pub mod transport;
