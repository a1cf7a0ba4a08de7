//! Test support for the data plane and the simulator: an in-memory link between ports with a
//! virtual clock and fault injection ([`memlink`]), smoltcp hosts and connection farms that
//! move checked byte patterns ([`Host`], [`Farm`]), a DTLS peer, hostile frame generators
//! ([`hostile`]), valid MSRP and BFCP streams with their expected counts
//! ([`framing_sample`]), a seeded generator ([`rng`]), the commands of a call ([`calls`]),
//! and a worker with a farm on one link ([`rig`]).
//!
//! It is linked by the data plane's integration tests and benchmarks, the control plane's
//! tests and `imsagw-sim`, never by the product: nothing here may be needed to run imsagw.
#![forbid(unsafe_code)]

pub mod calls;
pub mod framing_sample;
pub mod hostile;
mod hosts;
pub mod memlink;
pub mod rig;
pub mod rng;

pub use hosts::*;
