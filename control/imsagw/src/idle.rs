//! How an idle worker thread sleeps: on a timer (its nap), or on its queues' descriptors
//! (AF_XDP sockets, tap devices) and its eventfd, which a peer worker that hands it frames
//! writes.

use std::time::Duration;

use anyhow::{bail, Result};
use dpdk::{EthDev, PortSockets};
use nix::sys::eventfd::EventFd;

use crate::config::IdleWake;

/// Wakes the threads of the sleeping workers (a bit each) a worker handed frames to.
pub(crate) fn wake_peers(asleep: u64, wakers: &[EventFd]) {
    let mut rest = asleep;
    while rest != 0 {
        let peer = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if let Err(e) = wakers[peer].write(1) {
            tracing::warn!(error = %e, peer, "waking a worker failed; it wakes within 1 ms");
        }
    }
}

/// The nap of a worker whose ports are all kernel interfaces, unless configured.
pub(crate) const AUTO_IDLE_NAP_US: u64 = 30;
/// The longest a worker sleeps on its ports: its timers and the control thread's commands
/// (which no port signals) wait at most this long.
pub(crate) const PORT_WAIT_MAX: Duration = Duration::from_millis(1);

/// The descriptors each idle worker sleeps on (its queue's AF_XDP socket or tap device on every
/// port), or none when naps end on a timer.
pub(crate) fn port_wake(
    wake: IdleWake,
    devs: &[EthDev],
    workers: usize,
    nap: smoltcp::time::Duration,
) -> Result<Vec<PortSockets>> {
    let drivers: Vec<&str> = devs.iter().map(|d| d.driver()).collect();
    if !wake.on_ports(&drivers, workers, nap.total_micros())? {
        return Ok(vec![PortSockets::default(); workers]);
    }
    let own: Vec<Vec<_>> = (0..workers)
        .map(|q| {
            devs.iter()
                .flat_map(|d| d.queue_sockets(q as u16).iter().copied())
                .collect()
        })
        .collect();
    if own.iter().all(|fds| !fds.is_empty()) {
        return Ok(own.into_iter().map(PortSockets::from_fds).collect());
    }
    // Not told apart by queue: every worker sleeps on every socket (a frame wakes them all).
    match PortSockets::of_this_process() {
        Ok(sockets) if !sockets.is_empty() => Ok(vec![sockets; workers]),
        found => {
            let why = found.map_or_else(|e| e.to_string(), |_| "none found".into());
            if wake == IdleWake::Port {
                bail!("the ports' AF_XDP sockets in /proc/self/fd: {why}");
            }
            tracing::warn!(error = %why, "AF_XDP sockets not found; naps end on a timer");
            Ok(vec![PortSockets::default(); workers])
        }
    }
}

/// A napping worker thread's timer slack: its naps end within a microsecond.
pub(crate) const NAP_TIMER_SLACK_NS: u64 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::EfdFlags;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::thread;

    /// A worker asleep on its ports (here an idle socket) wakes when a peer that handed it
    /// frames writes its eventfd, and sleeps again once the eventfd is read; only the workers
    /// named are woken.
    #[test]
    fn a_peer_wakes_a_worker_sleeping_on_its_ports() {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap();
        let wakers: Arc<Vec<EventFd>> = Arc::new(
            (0..3)
                .map(|_| EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap())
                .collect(),
        );
        let mut sockets = PortSockets::from_fds(vec![port.as_raw_fd()]).and(wakers[1].as_raw_fd());
        assert!(!sockets.wait(Duration::ZERO).unwrap(), "nothing yet");
        let peer = {
            let wakers = Arc::clone(&wakers);
            thread::spawn(move || wake_peers(1 << 1, &wakers))
        };
        // Long enough never to end on its own: it ends because the peer wrote.
        assert!(sockets.wait(Duration::from_secs(60)).unwrap(), "woken");
        peer.join().unwrap();
        assert_eq!(wakers[1].read().unwrap(), 1);
        assert!(!sockets.wait(Duration::ZERO).unwrap(), "read: asleep again");
        assert!(
            wakers[0].read().is_err() && wakers[2].read().is_err(),
            "others not woken"
        );
    }
}
