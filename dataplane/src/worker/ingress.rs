//! Frames in: the network a frame is for (its port and VLAN tag), the demux from its
//! destination (ip, port) to its leg (a whole burst at a time, with prefetch hints, once the
//! legs outgrow the cache), and the software hand-off of frames that belong to another
//! worker.

use std::net::IpAddr;

use smoltcp::time::Instant;

use super::leg::{Kind, Leg, TcpState, UdpState};
use super::network::on_net;
use super::Worker;
use crate::contract::Accept;
use crate::demux::{classify, FrameClass};
use crate::legpoll;
use crate::policy::Verdict;
use crate::vlan;
use arrayvec::ArrayVec;
use port::{Burst, PacketBuf, Port, BURST};

/// Frames of a burst between demux and processing: the frame, its network, its leg when that
/// was cold (hinted), and whether it carries TCP payload. The class is taken again when the
/// frame is processed (its headers are in cache by then) rather than kept: a class with IPv6
/// addresses is 46 bytes, and a burst's staging stays small.
type Staged<B> = ArrayVec<(B, u8, Option<u32>, bool), BURST>;

/// The demux slots of a burst's frames, looked up a pass after they were found (and their
/// lines asked for), so the burst's port-table misses overlap too.
type Slots = ArrayVec<Option<(u8, u16)>, BURST>;

/// How many recently met legs `Worker::stage` remembers (direct-mapped by leg index): about
/// what a core's L2 holds of leg records and sockets.
pub(super) const RECENT_LEGS: usize = 512;

/// Bytes of a socket buffer asked for from its write position: a chat-size message's lines
/// (the hardware prefetcher follows a longer one).
const BUFFER_HINT: usize = 128;

/// Asks for the lines of a leg's socket that a frame and the relay's answer touch: all of a
/// UDP leg's, a TCP leg's less `tcp_cold` (its spare reassembly slots, 7 of its 16 lines).
/// Fewer lines asked for per frame means fewer in flight at once, and with traffic spread
/// over 100 000 legs the lines in flight are what a frame waits for.
#[inline(always)]
fn ask_for_socket(l: &Leg, tcp_cold: (usize, usize)) {
    let (addr, len) = l.set.storage_addr();
    if l.is_udp() {
        return prefetch::bytes(addr, len);
    }
    let (skip_from, skip_len) = tcp_cold;
    prefetch::bytes(addr, skip_from.min(len));
    let rest = skip_from.saturating_add(skip_len).min(len);
    prefetch::bytes(addr.wrapping_add(rest), len - rest);
}

fn leg(legs: &[Option<Leg>], i: Option<u32>) -> Option<&Leg> {
    i.and_then(|i| legs.get(i as usize))
        .and_then(|l| l.as_ref())
}

/// Asks for what serving each of `cold` (legs whose records were asked for earlier and
/// are on their way) touches: its socket, its Iq guard and its partner's record, then (those
/// on their way) the partners' sockets. Used for a receive burst's legs and for the legs
/// the timer wheel wakes. A quiet pair's leg with no payload coming (a wheel wake, an ACK)
/// is served without its partner (`Worker::serve_tcp`), so the partner's lines are not asked
/// for: the lines in flight are what a spread burst waits for.
#[inline(always)]
pub(super) fn ask_for_legs(
    legs: &[Option<Leg>],
    cold: impl Iterator<Item = (u32, bool)> + Clone,
    tcp_cold: (usize, usize),
) {
    let partner_of = |l: &Leg, payload: bool| l.partner.filter(|_| payload || !l.quiet);
    for (idx, payload) in cold.clone() {
        if let Some(l) = leg(legs, Some(idx)) {
            ask_for_socket(l, tcp_cold);
            if let Some(guard) = &l.guard {
                prefetch::value(&**guard);
            }
            if let Some(partner) = partner_of(l, payload).and_then(|p| legs.get(p as usize)) {
                prefetch::value(partner);
            }
        }
    }
    for (idx, payload) in cold {
        let partner = leg(legs, Some(idx)).and_then(|l| partner_of(l, payload));
        if let Some(p) = leg(legs, partner) {
            ask_for_socket(p, tcp_cold);
        }
    }
}

#[inline]
fn carries_payload(class: FrameClass) -> bool {
    matches!(class, FrameClass::Tcp { payload: true, .. })
}

impl<P: Port> Worker<P> {
    /// The network a frame received on `port` is for, by its VLAN tag (taken off here, and
    /// the frame offered to a running capture first, as it was on the wire); `None` (dropped,
    /// counted) when the port carries no such network.
    #[inline]
    pub(super) fn network_of(
        &mut self,
        port: usize,
        frame: &mut P::Buf,
        now: Instant,
    ) -> Option<u8> {
        if let Some(tap) = self.devices[port].tap_mut() {
            tap.offer(frame.data(), false, now.total_micros());
        }
        let net = self.port_nets[port].of(vlan::untag(frame));
        if net.is_none() {
            self.counters.rx_frames += 1;
            self.counters.vlan_dropped += 1;
        }
        net
    }

    /// Frames of another worker go to it (`None`); ARP and neighbour discovery are also
    /// copied to the others.
    pub(super) fn hand_off(&mut self, net: u8, frame: P::Buf, class: FrameClass) -> Option<P::Buf> {
        let Some(h) = self.handoff.as_mut() else {
            return Some(frame);
        };
        match class {
            FrameClass::Tcp { dst, .. }
            | FrameClass::Udp { dst, .. }
            | FrameClass::TooBig { local: dst, .. }
                if self.table.serves(dst.0) =>
            {
                let owner = dst.1 as usize % h.peers.len();
                if owner == h.index {
                    return Some(frame);
                }
                if h.peers[owner].push((net, frame)).is_err() {
                    self.counters.handoff_dropped += 1;
                } else {
                    self.counters.handed_off += 1;
                    h.handed |= 1 << owner;
                }
                None
            }
            FrameClass::Arp | FrameClass::Neighbour => {
                for (i, q) in h.peers.iter().enumerate() {
                    if i == h.index {
                        continue;
                    }
                    let port = self.nets[net as usize].port;
                    let copied = self.devices[port].port_mut().alloc().and_then(|mut b| {
                        let data = frame.data();
                        b.append(data.len())?.copy_from_slice(data);
                        Some(b)
                    });
                    match copied.map(|b| q.push((net, b))) {
                        Some(Ok(())) => {
                            self.counters.handed_off += 1;
                            h.handed |= 1 << i;
                        }
                        _ => self.counters.handoff_dropped += 1,
                    }
                }
                Some(frame)
            }
            _ => Some(frame),
        }
    }

    /// The demux slot of a TCP or UDP frame's destination, its line asked for.
    #[inline]
    fn slot_of(&self, class: FrameClass) -> Option<(u8, u16)> {
        match class {
            FrameClass::Tcp { dst, .. } | FrameClass::Udp { dst, .. } => {
                self.table.slot(dst.0, dst.1)
            }
            _ => None,
        }
    }

    /// The leg at a frame's demux slot, when its state is probably out of cache: its record
    /// is then asked for (only its address is computed; nothing of it is read yet). A leg
    /// met among the last few hundred is taken to be in cache, so a hot set of legs pays no
    /// hints.
    #[inline]
    fn stage(&mut self, slot: Option<(u8, u16)>) -> Option<u32> {
        let idx = self.table.at(slot?)?;
        let seen = &mut self.recent_legs[idx as usize % RECENT_LEGS];
        if *seen == idx {
            return None;
        }
        *seen = idx;
        prefetch::value(self.legs.get(idx as usize)?);
        Some(idx)
    }

    /// A receive burst (and the frames other workers handed over) in passes: classify every
    /// frame and ask for its demux slot, then (the slots on their way) demux and ask for the
    /// record of each frame's leg if that is cold, then (the records on their way) for the
    /// legs' sockets and partners' records, then for the partners' sockets, then process.
    /// With traffic spread over many legs nearly every frame's leg is out of cache; this way
    /// the misses of a burst overlap instead of following one another.
    #[inline(never)]
    pub(super) fn ingress_prefetched(
        &mut self,
        port: usize,
        burst: &mut Burst<P::Buf>,
        now: Instant,
    ) {
        let mut inbound: Staged<P::Buf> = ArrayVec::new();
        let mut slots: Slots = ArrayVec::new();
        for mut frame in burst.drain(..) {
            let Some(net) = self.network_of(port, &mut frame, now) else {
                continue;
            };
            let class = classify(frame.data());
            if let Some(frame) = self.hand_off(net, frame, class) {
                slots.push(self.slot_of(class));
                inbound.push((frame, net, None, carries_payload(class)));
            }
        }
        self.ingress_staged(&mut inbound, &slots, now);
    }

    /// The frames other workers handed over, as [`Self::ingress_prefetched`].
    #[inline(never)]
    pub(super) fn handed_prefetched(&mut self, handed: &mut Burst<(u8, P::Buf)>, now: Instant) {
        let mut inbound: Staged<P::Buf> = ArrayVec::new();
        let mut slots: Slots = ArrayVec::new();
        for (net, frame) in handed.drain(..) {
            self.counters.handed_in += 1;
            let class = classify(frame.data());
            slots.push(self.slot_of(class));
            inbound.push((frame, net, None, carries_payload(class)));
        }
        self.ingress_staged(&mut inbound, &slots, now);
    }

    /// `slots`: the demux slot of each frame of `inbound`, whose lines were asked for.
    fn ingress_staged(&mut self, inbound: &mut Staged<P::Buf>, slots: &Slots, now: Instant) {
        for (staged, &slot) in inbound.iter_mut().zip(slots) {
            staged.2 = self.stage(slot);
        }
        ask_for_legs(
            &self.legs,
            inbound
                .iter()
                .filter_map(|&(_, _, cold, payload)| cold.map(|idx| (idx, payload))),
            self.tcp_cold,
        );
        // Last, the buffer lines a data frame writes: the leg's receive buffer where its
        // payload lands, and the partner's send buffer, where the relay copies it next.
        for &(_, _, cold, payload) in inbound.iter() {
            if !payload {
                continue;
            }
            let Some(l) = leg(&self.legs, cold) else {
                continue;
            };
            if let Some((rx, _)) = l.buffer_write_addrs() {
                prefetch::bytes(rx, BUFFER_HINT);
            }
            if let Some((_, tx)) = leg(&self.legs, l.partner).and_then(Leg::buffer_write_addrs) {
                prefetch::bytes(tx, BUFFER_HINT);
            }
        }
        for (frame, net, _, _) in inbound.drain(..) {
            let class = classify(frame.data());
            self.ingress(net, frame, class, now);
        }
    }

    /// One frame of network `net` to its leg, or to the network's interface (ARP, ICMP, RSTs
    /// to unknown ports).
    pub(super) fn ingress(&mut self, net: u8, frame: P::Buf, class: FrameClass, now: Instant) {
        self.counters.rx_frames += 1;
        let leg_idx = match class {
            FrameClass::Tcp {
                src,
                dst,
                syn_only,
                payload,
                ip_len,
            } => match self.table.get(dst.0, dst.1) {
                Some(idx) if !self.on_network(idx, net) => return self.foreign(),
                Some(idx) if self.legs[idx as usize].is_some() => {
                    if !self.guard(idx, src, ip_len, payload, now) {
                        return;
                    }
                    let leg = self.legs[idx as usize].as_ref().expect("checked above");
                    match &leg.kind {
                        Kind::Tcp(t) => {
                            let refused = match &t.state {
                                // Its Start may be among the commands still waiting.
                                TcpState::Reserved if self.commands_waiting => {
                                    return self.held_for_commands();
                                }
                                TcpState::Reserved => true,
                                TcpState::Listening {
                                    accept: Accept::Gate(ip),
                                    ..
                                } => syn_only && src.0 != *ip,
                                _ => false,
                            };
                            if refused {
                                self.counters.gate_rejected += 1;
                                None
                            } else {
                                Some(idx)
                            }
                        }
                        // A SYN to a UDP leg's port: the interface resets it.
                        Kind::Udp(_) => {
                            self.counters.tcp_no_leg += 1;
                            None
                        }
                    }
                }
                _ if self.commands_waiting => return self.held_for_commands(),
                _ => {
                    self.counters.tcp_no_leg += 1;
                    None
                }
            },
            FrameClass::Udp { src, dst, ip_len } => match self.table.get(dst.0, dst.1) {
                Some(idx) if !self.on_network(idx, net) => return self.foreign(),
                Some(idx) => match self.legs[idx as usize].as_ref().map(|l| &l.kind) {
                    Some(Kind::Udp(u)) if u.state == UdpState::Open => {
                        if !self.guard(idx, src, ip_len, true, now) {
                            return;
                        }
                        Some(idx)
                    }
                    Some(Kind::Udp(_)) => {
                        self.counters.udp_gate_dropped += 1;
                        return;
                    }
                    Some(Kind::Tcp(_)) | None if self.commands_waiting => {
                        return self.held_for_commands();
                    }
                    Some(Kind::Tcp(_)) | None => {
                        self.counters.udp_no_leg += 1;
                        None
                    }
                },
                None if self.commands_waiting => return self.held_for_commands(),
                None => {
                    self.counters.udp_no_leg += 1;
                    None
                }
            },
            FrameClass::Fragment => {
                self.counters.fragments_dropped += 1;
                return;
            }
            FrameClass::Malformed => {
                self.counters.malformed_dropped += 1;
                return;
            }
            FrameClass::Extension => {
                self.counters.extension_dropped += 1;
                return;
            }
            FrameClass::Neighbour => {
                self.check_claim(net, frame.data());
                None
            }
            FrameClass::TooBig { local, remote, mtu } => {
                self.path_mtu(net, local, remote, mtu);
                return;
            }
            FrameClass::Arp | FrameClass::Other => None,
        };
        match leg_idx {
            Some(idx) => {
                let Some(leg) = self.legs[idx as usize].as_mut() else {
                    return;
                };
                // What smoltcp answers at once (an ACK, a RST) is the leg's traffic too.
                let (net, device) = on_net(&mut self.nets, &mut self.devices, net);
                device.set_dscp(leg.dscp);
                legpoll::ingress(&mut net.iface, device, &mut leg.set, frame, now);
                if !leg.is_udp() {
                    leg.stats.packets_in += 1;
                }
                self.mark(idx);
            }
            None => {
                let (net, device) = on_net(&mut self.nets, &mut self.devices, net);
                device.set_dscp(0);
                legpoll::ingress(&mut net.iface, device, &mut net.empty, frame, now);
                // Interface-level replies (ARP, ICMP, RST) go out now.
                net.iface.poll_egress(now, device, &mut net.empty);
                if matches!(class, FrameClass::Arp | FrameClass::Neighbour) {
                    // Keep the list's capacity: no allocation on the steady path.
                    let mut blocked = std::mem::take(&mut self.arp_blocked);
                    for idx in blocked.drain(..) {
                        self.mark(idx);
                    }
                    self.arp_blocked = blocked;
                }
            }
        }
    }

    /// A segment or datagram to no started leg while commands queued before it wait in the
    /// ring (`take_commands` stopped for the events backed up): its leg may be among them, so
    /// it is dropped unanswered rather than refused, and the peer sends it again.
    #[cold]
    fn held_for_commands(&mut self) {
        self.counters.held_for_commands += 1;
    }

    /// An ICMP error says the path from `local` to `remote` takes at most `mtu` octets: the
    /// TCP leg at `local` connected to `remote` (only that one: the error must quote the
    /// leg's own connection) sends smaller segments from now on. An MTU below the minimum of
    /// its IP version (1280 for IPv6, 576 for IPv4) is taken as that minimum.
    #[cold]
    #[inline(never)]
    fn path_mtu(&mut self, net: u8, local: (IpAddr, u16), remote: (IpAddr, u16), mtu: u32) {
        let Some(idx) = self.table.get(local.0, local.1) else {
            return;
        };
        if !self.on_network(idx, net) {
            return;
        }
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return;
        };
        if leg.is_udp() {
            return;
        }
        let sock = leg
            .set
            .get_mut::<smoltcp::socket::tcp::Socket>(super::leg::sole());
        if sock.remote_endpoint()
            != Some(smoltcp::wire::IpEndpoint::from(std::net::SocketAddr::from(
                remote,
            )))
        {
            return;
        }
        let (header, floor) = if local.0.is_ipv6() {
            (40, 1280)
        } else {
            (20, 576)
        };
        if sock.limit_path_mtu(header, (mtu as usize).max(floor)) {
            self.counters.path_mtu_lowered += 1;
        }
    }

    /// Whether leg `idx`'s local address is on network `net`: a frame that arrives on another
    /// network (a core address reached from the access side) is not for it.
    #[inline]
    fn on_network(&self, idx: u32, net: u8) -> bool {
        if self.nets.len() == 1 {
            return true;
        }
        match &self.legs[idx as usize] {
            Some(l) => l.net == net,
            None => true,
        }
    }

    /// A frame for a leg that arrived on another network than the leg's: dropped, unanswered.
    #[cold]
    #[inline(never)]
    fn foreign(&mut self) {
        self.counters.wrong_network_dropped += 1;
    }

    /// Runs leg `idx`'s filter and policer (if it has them) on a frame from `src`; false when
    /// the frame is dropped (counted, and never answered: a filtered source learns nothing).
    #[inline]
    fn guard(
        &mut self,
        idx: u32,
        src: (IpAddr, u16),
        ip_len: u16,
        droppable: bool,
        now: Instant,
    ) -> bool {
        let Some(leg) = self.legs[idx as usize].as_mut() else {
            return false;
        };
        let Some(g) = leg.guard.as_mut() else {
            return true;
        };
        match g.check(src, ip_len, droppable, now.total_micros()) {
            Verdict::Pass => true,
            Verdict::Filtered => {
                leg.stats.filtered += 1;
                self.counters.filter_dropped += 1;
                false
            }
            Verdict::Policed => {
                leg.stats.policed += 1;
                self.counters.police_dropped += 1;
                false
            }
        }
    }
}
