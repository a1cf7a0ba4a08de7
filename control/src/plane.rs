//! The control plane in one place: the H.248 UDP endpoint, the dispatcher with the MG model
//! behind it, registration with the MGC, and one worker's rings. `poll` is one round of the
//! control thread; the binary calls it in a loop.

use std::net::SocketAddr;
use std::time::Duration;

use dataplane::contract::{Command as Dp, ControlEnd, Event};

use crate::dispatch::{Dispatcher, FromPeer};
use crate::mg::{DataPlane, Mg, MgConfig};
use crate::registration::{Action, Registration, RegistrationConfig};
use crate::transaction::{Millis, ReplyCache};
use crate::transport::UdpTransport;

/// The worker's command ring as the MG model's data plane.
pub struct Rings(pub ControlEnd);

impl DataPlane for Rings {
    fn submit(&mut self, cmd: Dp) -> bool {
        self.0.commands.push(cmd).is_ok()
    }
}

pub struct ControlPlane {
    transport: UdpTransport,
    dispatcher: Dispatcher<Mg<Rings>>,
    registration: Registration,
    outbox: Vec<Action>,
    /// Data-plane events seen, for status.
    pub events: u64,
}

impl ControlPlane {
    pub fn new(
        bind: SocketAddr,
        reg: RegistrationConfig,
        mg: MgConfig,
        rings: ControlEnd,
    ) -> std::io::Result<Self> {
        let transport = UdpTransport::bind(bind)?;
        let mgcs = reg.mgcs.iter().map(|a| a.ip()).collect();
        let mut dispatcher = Dispatcher::new(
            Mg::new(mg, Rings(rings)),
            ReplyCache::new(reg.timers, 1 << 16),
            reg.mid.clone(),
            reg.max_version,
            mgcs,
        );
        dispatcher.set_registered(false);
        Ok(ControlPlane {
            transport,
            dispatcher,
            registration: Registration::new(reg, 1),
            outbox: Vec::new(),
            events: 0,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    pub fn is_registered(&self) -> bool {
        self.registration.is_registered()
    }

    pub fn start(&mut self, now: Millis) {
        let outbox = &mut self.outbox;
        self.registration.start(now, &mut |a| outbox.push(a));
    }

    pub fn mg(&self) -> &Mg<Rings> {
        &self.dispatcher.executor
    }

    /// One round: data-plane events, one H.248 datagram (waiting at most `wait`), timers.
    pub fn poll(&mut self, now: Millis, wait: Duration) -> std::io::Result<()> {
        while let Some(ev) = self.dispatcher.executor.dataplane.0.events.pop() {
            self.events += 1;
            match ev {
                Event::Closed { key, stats, .. } | Event::Stats { key, stats } => {
                    self.dispatcher.executor.update_stats(key, stats)
                }
                other => tracing::debug!(event = ?other, "data-plane event"),
            }
        }
        let mut from_peer = Vec::new();
        self.transport
            .poll(&mut self.dispatcher, now, wait, |f| from_peer.push(f))?;
        let outbox = &mut self.outbox;
        for f in from_peer {
            match f {
                FromPeer::Reply(r) => {
                    self.registration.reply(&r, now, &mut |a| outbox.push(a));
                }
                FromPeer::Pending(tid) => self.registration.pending(tid, now),
            }
        }
        self.registration.poll(now, &mut |a| outbox.push(a));
        for a in self.outbox.drain(..) {
            match a {
                Action::Send { to, bytes } => self.transport.send_to(to, &bytes),
                Action::Registered { mgc, version } => {
                    tracing::info!(%mgc, version, "registered");
                    self.dispatcher.set_registered(true);
                    self.dispatcher.set_version(version);
                }
                Action::AllMgcsFailed => {
                    tracing::error!("no MGC answered; registration will be retried")
                }
            }
        }
        Ok(())
    }
}
