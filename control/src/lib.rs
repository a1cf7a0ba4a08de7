//! imsagw control plane: the H.248 codec, transactions, registration, the MG model with the
//! Iq profile, Notify, and the control thread that joins them to the workers' rings.

pub mod capture;
pub mod config;
pub mod dispatch;
pub mod h248;
pub mod iq;
pub mod logging;
pub mod mg;
pub mod notify;
pub mod plane;
pub mod registration;
pub mod transaction;
pub mod transport;
