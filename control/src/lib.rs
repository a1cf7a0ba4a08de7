//! imsagw control plane. The H.248 codec, transactions, the MG model and the Iq profile
//! arrive here in their own modules; today it holds what the `imsagw` binary shares.

pub mod dispatch;
pub mod h248;
pub mod iq;
pub mod logging;
pub mod mg;
pub mod plane;
pub mod registration;
pub mod transaction;
pub mod transport;
