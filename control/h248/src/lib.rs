//! H.248.1 text codec (versions 1 to 3): typed messages for the Annex B grammar, a decoder
//! that reports the byte offset and the H.248 error code of every failure, a pretty or compact
//! encoder, and SDP with H.248's wildcards (`$`, `CHOOSE`).
//!
//! It must never know of workers, media, sockets or the MG model: it turns bytes into typed
//! messages and back, and nothing else. It builds without DPDK, libclang or an async runtime
//! (its fuzz target depends on it alone).
#![forbid(unsafe_code)]

pub mod ast;
mod decode;
mod encode;
pub mod error;
pub mod sdp;
pub mod token;

pub use decode::decode;
pub use encode::{encode, encode_into, Form};
pub use error::DecodeError;
