//! One smoltcp `phy::Device` over any [`Port`]: received frames are handed to smoltcp in place
//! (the token owns the buffer, no copy), transmitted frames are written straight into a
//! buffer from the port's pool and sent in bursts.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::capture::CaptureTap;
use crate::vlan::TAG_LEN;
use port::{Burst, PacketBuf, Port};

/// Counters of the adapter's own decisions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames smoltcp built that were dropped because the pool was empty.
    pub tx_no_buffer: u64,
    /// Frames dropped because they did not fit a buffer.
    pub tx_oversize: u64,
    /// Frames dropped because the port kept refusing them.
    pub tx_refused: u64,
}

impl std::ops::AddAssign for DeviceStats {
    fn add_assign(&mut self, o: DeviceStats) {
        self.rx_frames += o.rx_frames;
        self.tx_frames += o.tx_frames;
        self.tx_no_buffer += o.tx_no_buffer;
        self.tx_oversize += o.tx_oversize;
        self.tx_refused += o.tx_refused;
    }
}

struct TxSide<P: Port> {
    port: P,
    staged: Burst<P::Buf>,
    /// Where smoltcp writes a frame we cannot send, so it can always finish its work.
    scratch: Vec<u8>,
    stats: DeviceStats,
    /// A running packet capture, and the time of the current transmit.
    tap: Option<CaptureTap>,
    now_us: i64,
    /// DiffServ code point marked on the IPv4 packets sent now (0: none).
    dscp: u8,
    /// The 802.1Q VLAN of the network sent on now (a port may carry several).
    vlan: Option<u16>,
}

impl<P: Port> TxSide<P> {
    fn flush(&mut self) -> usize {
        self.port.tx_burst(&mut self.staged);
        self.staged.len()
    }
}

/// The adapter. Frames are staged in bursts on both sides; call [`SmolDevice::flush`] at the
/// end of each poll-loop iteration.
pub struct SmolDevice<P: Port> {
    /// Received frames, in reverse order so `pop` yields the oldest.
    rx: Burst<P::Buf>,
    tx: TxSide<P>,
    auto_rx: bool,
    caps: DeviceCapabilities,
}

impl<P: Port> SmolDevice<P> {
    pub fn new(port: P) -> Self {
        let pc = port.capabilities();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = pc.max_frame;
        caps.max_burst_size = Some(pc.max_burst);
        // Checksums stay in software until a port reports offloads (none of ours do yet).
        SmolDevice {
            rx: Burst::new(),
            tx: TxSide {
                port,
                staged: Burst::new(),
                scratch: vec![0; pc.max_frame.max(1514)],
                stats: DeviceStats::default(),
                tap: None,
                now_us: 0,
                dscp: 0,
                vlan: None,
            },
            auto_rx: true,
            caps,
        }
    }

    pub fn port(&self) -> &P {
        &self.tx.port
    }

    pub fn port_mut(&mut self) -> &mut P {
        &mut self.tx.port
    }

    pub fn stats(&self) -> DeviceStats {
        self.tx.stats
    }

    /// Starts (Some) or ends (None) a packet capture of what this device sends and of what
    /// the owner offers it as received; returns the capture that ran before.
    pub fn set_tap(&mut self, tap: Option<CaptureTap>) -> Option<CaptureTap> {
        std::mem::replace(&mut self.tx.tap, tap)
    }

    /// The DiffServ code point of the frames smoltcp sends from now on (the worker sets it
    /// before serving each leg).
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        self.tx.dscp = dscp;
    }

    /// The VLAN tag of the frames sent from now on (the worker sets it before it serves a
    /// network on this port).
    #[inline]
    pub fn set_vlan(&mut self, vlan: Option<u16>) {
        self.tx.vlan = vlan;
    }

    pub fn tap_mut(&mut self) -> Option<&mut CaptureTap> {
        self.tx.tap.as_mut()
    }

    /// When on (the default), `receive` pulls a burst from the port whenever its staging is
    /// empty. The per-leg worker turns it off and hands frames in one at a time.
    pub fn set_auto_rx(&mut self, on: bool) {
        self.auto_rx = on;
    }

    /// Makes `frame` the next frame smoltcp receives. Gives it back if the staging is full.
    pub fn stage_rx(&mut self, frame: P::Buf) -> Result<(), P::Buf> {
        self.rx.try_push(frame).map_err(|e| e.element())
    }

    /// Frames received but not yet handed to smoltcp.
    pub fn rx_staged(&self) -> usize {
        self.rx.len()
    }

    /// Sends the staged frames; returns how many are still waiting for room in the port.
    pub fn flush(&mut self) -> usize {
        self.tx.flush()
    }

    fn fill_rx(&mut self) {
        if self.tx.port.rx_burst(&mut self.rx) > 0 {
            self.rx.reverse();
        }
    }
}

impl<P: Port> phy::Device for SmolDevice<P> {
    type RxToken<'a>
        = RxToken<P::Buf>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, P>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.tx.now_us = now.total_micros();
        if self.rx.is_empty() && self.auto_rx {
            self.fill_rx();
        }
        let frame = self.rx.pop()?;
        self.tx.stats.rx_frames += 1;
        Some((RxToken { frame }, TxToken { side: &mut self.tx }))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.tx.now_us = now.total_micros();
        if self.tx.staged.is_full() && self.tx.flush() == self.tx.staged.capacity() {
            // The port takes nothing: tell smoltcp to hold its data rather than lose frames.
            return None;
        }
        Some(TxToken { side: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// Owns one received frame; smoltcp reads it in place and dropping the token frees it.
pub struct RxToken<B: PacketBuf> {
    frame: B,
}

impl<B: PacketBuf> phy::RxToken for RxToken<B> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame.data())
    }
}

pub struct TxToken<'a, P: Port> {
    side: &'a mut TxSide<P>,
}

impl<P: Port> phy::TxToken for TxToken<'_, P> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let side = self.side;
        if side.staged.is_full() && side.flush() == side.staged.capacity() {
            side.stats.tx_refused += 1;
            return scratch(side, len, f);
        }
        let Some(mut buf) = side.port.alloc() else {
            side.stats.tx_no_buffer += 1;
            return scratch(side, len, f);
        };
        let tag = if side.vlan.is_some() { TAG_LEN } else { 0 };
        let Some(dst) = buf.append(len + tag) else {
            side.stats.tx_oversize += 1;
            return scratch(side, len, f);
        };
        let r = f(&mut dst[tag..]);
        if side.dscp != 0 {
            crate::policy::mark_dscp(&mut dst[tag..], side.dscp);
        }
        if let Some(vid) = side.vlan {
            crate::vlan::tag_in_place(dst, vid);
        }
        if let Some(tap) = side.tap.as_mut() {
            tap.offer(buf.data(), true, side.now_us);
        }
        side.stats.tx_frames += 1;
        side.staged.push(buf);
        if side.staged.is_full() {
            side.flush();
        }
        r
    }
}

fn scratch<P: Port, R, F: FnOnce(&mut [u8]) -> R>(side: &mut TxSide<P>, len: usize, f: F) -> R {
    if side.scratch.len() < len {
        side.scratch.resize(len, 0);
    }
    f(&mut side.scratch[..len])
}
