//! H.248.1 text codec (versions 1 to 3): typed messages, a decoder that reports the byte
//! offset and the H.248 error code of every failure, and a pretty or compact encoder.
//! It knows nothing of workers or media; the MG model builds on it.

pub mod ast;
mod decode;
mod encode;
pub mod error;
pub mod sdp;
pub mod token;

pub use decode::decode;
pub use encode::{encode, encode_into, Form};
pub use error::DecodeError;
