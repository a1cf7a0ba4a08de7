//! The two smoltcp calls every per-leg engine makes: hand one received frame to one leg's
//! socket set, and poll one leg's set for egress while smoltcp says it is due. Shared by the
//! worker and by the test hosts that use the same demux.

use smoltcp::iface::{Interface, SocketSet};
use smoltcp::time::Instant;

use crate::device::SmolDevice;
use port::Port;

/// Gives `frame` to the sockets in `set` (an empty set answers ARP, ICMP and RSTs). Returns
/// false if the device had no room to stage it.
pub fn ingress<P: Port>(
    iface: &mut Interface,
    device: &mut SmolDevice<P>,
    set: &mut SocketSet<'_>,
    frame: P::Buf,
    now: Instant,
) -> bool {
    if device.stage_rx(frame).is_err() {
        return false;
    }
    iface.poll_ingress_single(now, device, set);
    true
}

/// What one egress poll of a leg did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Frames the leg sent.
    pub sent: u64,
    /// The leg had something due but sent nothing: it waits for a neighbour or the port is
    /// full, and must be polled again after the next ARP frame.
    pub blocked: bool,
    /// When smoltcp next wants this set polled.
    pub poll_at: Option<Instant>,
}

/// Polls `set` for egress until smoltcp has nothing due (one segment per dispatch), at most
/// 64 times.
pub fn egress<P: Port>(
    iface: &mut Interface,
    device: &mut SmolDevice<P>,
    set: &mut SocketSet<'_>,
    now: Instant,
) -> Egress {
    let before = device.stats().tx_frames;
    let mut wanted = false;
    // The set's next deadline when the loop ended on it: nothing ran since, so asking again
    // would only walk every socket's send state once more (a tenth of a frame's cost).
    let mut next = None;
    for _ in 0..64 {
        let at = iface.poll_at(now, set);
        if at.is_none_or(|t| t > now) {
            next = Some(at);
            break;
        }
        wanted = true;
        let sent_before = device.stats().tx_frames;
        iface.poll_egress(now, device, set);
        if device.stats().tx_frames == sent_before {
            break;
        }
    }
    let sent = device.stats().tx_frames - before;
    Egress {
        sent,
        blocked: wanted && sent == 0,
        poll_at: next.unwrap_or_else(|| iface.poll_at(now, set)),
    }
}

/// Milliseconds at or after `t`, for the timer wheel.
pub fn ceil_ms(t: Instant) -> i64 {
    (t.total_micros() + 999).div_euclid(1000)
}
