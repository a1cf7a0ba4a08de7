//! imsagw data plane: packet I/O over DPDK or an in-memory link, and the smoltcp device
//! adapter the per-leg TCP stacks run on.

pub mod capture;
pub mod clock;
pub mod contract;
pub mod demux;
pub mod device;
pub mod dpdk;
pub mod dtls;
pub mod echo;
pub mod framing;
pub mod hostile;
pub mod legpoll;
pub mod memlink;
pub mod port;
pub mod rng;
pub mod testbed;
pub mod tls;
pub mod wheel;
pub mod worker;
