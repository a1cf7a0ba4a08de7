//! Raw bindings to the system DPDK 22.11 and the C shim over its static-inline fast path.
//!
//! Nothing here is safe to call without reading DPDK's documentation; the safe layer is
//! the `dpdk` crate, the only one that uses this one.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
