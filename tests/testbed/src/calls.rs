//! The commands the control thread sends a worker for the calls the tests and benchmarks
//! make, written once.

use std::net::{IpAddr, SocketAddr};

use dataplane::contract::{Accept, Command, Framing, LegRole, LegTimers, TerminationKey};

/// A plain TCP call in context `context`: T1 on `access` waits for `ue_x` (gated on its
/// address), T2 on `core` connects to `ue_y`, and the two are joined. Default timers, no
/// TLS, agnostic.
pub fn plain_call(
    context: u32,
    access: impl Into<SocketAddr>,
    core: impl Into<SocketAddr>,
    ue_x: impl Into<IpAddr>,
    ue_y: impl Into<SocketAddr>,
) -> [Command; 5] {
    let (access, core, ue_x, ue_y) = (access.into(), core.into(), ue_x.into(), ue_y.into());
    let key = |termination| TerminationKey {
        context,
        termination,
    };
    [
        Command::Reserve {
            key: key(1),
            local: access,
        },
        Command::Reserve {
            key: key(2),
            local: core,
        },
        Command::Start {
            key: key(1),
            role: LegRole::Passive,
            accept: Accept::Gate(ue_x),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
        Command::Start {
            key: key(2),
            role: LegRole::Active { remote: ue_y },
            accept: Accept::Gate(ue_y.ip()),
            timers: LegTimers::default(),
            tls: None,
            framing: Framing::Agnostic,
        },
        Command::Join {
            a: key(1),
            b: key(2),
        },
    ]
}
