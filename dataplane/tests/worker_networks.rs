//! Realms on networks of their own, on MemLink with the virtual clock: an access network and a
//! core network on two ports, and the same two networks as 802.1Q VLANs on one port (a test
//! switch tags and untags on the way to the UEs' links). UE-X is on IPv6 in the access network;
//! UE-Y is on IPv4 behind the core network's own router. A v6 access leg cut through to a v4
//! core leg moves data byte for byte through loss and reordering; every frame the worker sends
//! on a VLAN port is tagged with its network's VLAN; a frame for a core address that arrives
//! on the access network is dropped unanswered, as are frames of VLANs the port does not carry
//! and stacked tags; the access network never resolves the core's addresses.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{lossy, sa, timers};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{NetworkConfig, Worker, WorkerConfig};
use port::{Burst, PacketBuf, Port};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr, Ipv6Cidr};
use testbed::memlink::{Faults, MemLink, MemLinkConfig, MemPort};
use testbed::{Host, PatternChecker, PatternSender};

const AGW_ACCESS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
const UE_X6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x7);
const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const UE_X: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 7);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 20);
/// The core network's router, and UE-Y behind it (off the core link).
const CORE_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const UE_Y: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

const ACCESS_VLAN: u16 = 10;
const CORE_VLAN: u16 = 20;

const T1: TerminationKey = TerminationKey {
    context: 1,
    termination: 1,
};
const T2: TerminationKey = TerminationKey {
    context: 1,
    termination: 2,
};

fn access_network() -> Vec<IpCidr> {
    vec![
        Ipv4Cidr::new(AGW_ACCESS, 24).into(),
        Ipv6Cidr::new(AGW_ACCESS6, 64).into(),
    ]
}

fn core_network(port: usize, vlan: Option<u16>) -> NetworkConfig {
    NetworkConfig {
        port,
        vlan,
        addresses: vec![Ipv4Cidr::new(AGW_CORE, 24).into()],
        gateway: Some(CORE_ROUTER),
        gateway_v6: None,
    }
}

/// A switch between the worker's trunk port and the UEs' links: what the worker sends with
/// VLAN `v` goes untagged to the link of `v`; what a link sends goes to the worker tagged
/// with the link's VLAN. It counts what it could not place.
struct Switch {
    trunk: MemPort,
    links: Vec<(u16, MemPort)>,
    untagged_from_worker: u64,
    unknown_vlan_from_worker: u64,
    tagged: Vec<u16>,
}

impl Switch {
    fn forward(&mut self) -> bool {
        let mut moved = false;
        let mut burst = Burst::new();
        self.trunk.rx_burst(&mut burst);
        for f in burst.drain(..) {
            moved = true;
            let d = f.data();
            if d.len() < 18 || d[12..14] != [0x81, 0x00] {
                self.untagged_from_worker += 1;
                continue;
            }
            let vid = u16::from_be_bytes([d[14], d[15]]) & 0x0fff;
            self.tagged.push(vid);
            let Some((_, link)) = self.links.iter_mut().find(|(v, _)| *v == vid) else {
                self.unknown_vlan_from_worker += 1;
                continue;
            };
            let mut out = link.alloc().expect("a buffer");
            let dst = out.append(d.len() - 4).expect("room");
            dst[..12].copy_from_slice(&d[..12]);
            dst[12..].copy_from_slice(&d[16..]);
            let mut b = Burst::new();
            b.push(out);
            link.tx_burst(&mut b);
        }
        for (vid, link) in &mut self.links {
            let mut burst = Burst::new();
            link.rx_burst(&mut burst);
            let mut up = Burst::new();
            for f in burst.drain(..) {
                moved = true;
                let d = f.data();
                let mut out = self.trunk.alloc().expect("a buffer");
                let dst = out.append(d.len() + 4).expect("room");
                dst[..12].copy_from_slice(&d[..12]);
                dst[12..14].copy_from_slice(&[0x81, 0x00]);
                dst[14..16].copy_from_slice(&vid.to_be_bytes());
                dst[16..].copy_from_slice(&d[12..]);
                up.push(out);
            }
            self.trunk.tx_burst(&mut up);
        }
        moved
    }

    fn next_arrival(&self) -> Option<Instant> {
        std::iter::once(&self.trunk)
            .chain(self.links.iter().map(|(_, l)| l))
            .filter_map(|p| p.next_arrival())
            .min()
    }
}

/// The worker, UE-X's host (access) and UE-Y's host (core, also its router), and the switch
/// when the networks are VLANs.
struct Nets {
    clock: VirtualClock,
    worker: Worker<MemPort>,
    ue_x: Host<MemPort>,
    ue_y: Host<MemPort>,
    switch: Option<Switch>,
    control: ControlEnd,
    events: Vec<Event>,
}

fn link(clock: &VirtualClock, seed: u64, faults: Faults, mac_b: u8) -> (MemPort, MemPort) {
    MemLink::pair(
        MemLinkConfig {
            seed,
            faults_a_to_b: faults.clone(),
            faults_b_to_a: faults,
            mac_b: [0x02, 0, 0, 0, 0, mac_b],
            ..MemLinkConfig::default()
        },
        clock.clone(),
    )
}

fn hosts(ax: MemPort, ay: MemPort, now: Instant) -> (Host<MemPort>, Host<MemPort>) {
    let mut ue_x = Host::new(ax, Ipv6Cidr::new(UE_X6, 64), now);
    ue_x.iface.update_ip_addrs(|a| {
        let _ = a.push(Ipv4Cidr::new(UE_X, 24).into());
    });
    let mut ue_y = Host::new(ay, Ipv4Cidr::new(CORE_ROUTER, 24), now);
    ue_y.iface.update_ip_addrs(|a| {
        let _ = a.push(Ipv4Cidr::new(UE_Y, 24).into());
    });
    // UE-Y answers the AGW's core address from behind its router: on the core link.
    (ue_x, ue_y)
}

/// Access on the worker's port 0, core on its port 1.
fn two_ports(faults: Faults, seed: u64) -> Nets {
    let clock = VirtualClock::new();
    let now = clock.now();
    let (wa, ax) = link(&clock, seed, faults.clone(), 0x0b);
    let (wb, ay) = link(&clock, seed + 1, faults, 0x0c);
    let cfg = WorkerConfig {
        addresses: access_network(),
        networks: vec![core_network(1, None)],
        ..WorkerConfig::default()
    };
    cfg.check_networks(2).unwrap();
    let (control, end) = rings(1024);
    let worker = Worker::on_ports(vec![wa, wb], cfg, end, now, None);
    let (ue_x, ue_y) = hosts(ax, ay, now);
    Nets {
        clock,
        worker,
        ue_x,
        ue_y,
        switch: None,
        control,
        events: Vec::new(),
    }
}

/// Access as VLAN 10 and core as VLAN 20 on the worker's one port.
fn two_vlans(faults: Faults, seed: u64) -> Nets {
    let clock = VirtualClock::new();
    let now = clock.now();
    let (w, trunk) = link(&clock, seed, Faults::default(), 0x0d);
    let (sx, ax) = link(&clock, seed + 1, faults.clone(), 0x0b);
    let (sy, ay) = link(&clock, seed + 2, faults, 0x0c);
    let mut access = core_network(0, Some(ACCESS_VLAN));
    access.addresses = access_network();
    access.gateway = None;
    let cfg = WorkerConfig {
        networks: vec![access, core_network(0, Some(CORE_VLAN))],
        ..WorkerConfig::default()
    };
    cfg.check_networks(1).unwrap();
    let (control, end) = rings(1024);
    let worker = Worker::on_ports(vec![w], cfg, end, now, None);
    let (ue_x, ue_y) = hosts(ax, ay, now);
    Nets {
        clock,
        worker,
        ue_x,
        ue_y,
        switch: Some(Switch {
            trunk,
            links: vec![(ACCESS_VLAN, sx), (CORE_VLAN, sy)],
            untagged_from_worker: 0,
            unknown_vlan_from_worker: 0,
            tagged: Vec::new(),
        }),
        control,
        events: Vec::new(),
    }
}

impl Nets {
    fn step(&mut self) -> bool {
        let now = self.clock.now();
        let mut busy = self.worker.poll(now);
        if let Some(s) = &mut self.switch {
            busy |= s.forward();
        }
        for h in [&mut self.ue_x, &mut self.ue_y] {
            let before = h.device.stats();
            h.poll(now);
            busy |= h.device.stats() != before;
        }
        if let Some(s) = &mut self.switch {
            busy |= s.forward();
        }
        while let Some(e) = self.control.events.pop() {
            self.events.push(e);
            busy = true;
        }
        busy
    }

    fn idle(&mut self) {
        let now = self.clock.now();
        let mut next = now + Duration::from_millis(1);
        let mut times: Vec<Option<Instant>> = vec![
            self.ue_x.device.port().next_arrival(),
            self.ue_y.device.port().next_arrival(),
            self.ue_x.poll_at(now),
            self.ue_y.poll_at(now),
            self.switch.as_ref().and_then(Switch::next_arrival),
        ];
        for i in 0..2 {
            times.push(self.worker.port_at(i).and_then(|p| p.next_arrival()));
        }
        for t in times.into_iter().flatten() {
            if t > now {
                next = next.min(t);
            }
        }
        self.clock
            .advance_to(next.max(now + Duration::from_micros(1)));
    }

    /// Runs until `done` holds; panics after `limit` of virtual time.
    fn run(&mut self, limit: Duration, mut done: impl FnMut(&mut Nets) -> (bool, bool)) {
        let end = self.clock.now() + limit;
        loop {
            let mut busy = self.step();
            let (finished, moved) = done(self);
            if finished {
                return;
            }
            busy |= moved;
            assert!(
                self.clock.now() < end,
                "not done after {limit}; events {:?}",
                self.events
            );
            if !busy {
                self.idle();
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        self.run(d + Duration::from_secs(1), |n| {
            (n.clock.now() >= end, false)
        });
    }

    fn send(&mut self, cmd: Command) {
        self.control.commands.push(cmd).expect("ring room");
    }

    /// T1 on the access network (IPv6, passive, UE-X connects), T2 on the core network
    /// (IPv4, connects out to UE-Y through the core router), cut through. Returns (UE-X's
    /// socket, UE-Y's).
    fn pair(&mut self, port: u16) -> (SocketHandle, SocketHandle) {
        self.send(Command::Reserve {
            key: T1,
            local: sa(AGW_ACCESS6, port),
        });
        self.send(Command::Reserve {
            key: T2,
            local: sa(AGW_CORE, port),
        });
        let y = self.ue_y.add_tcp(256 * 1024, 256 * 1024);
        self.ue_y
            .tcp(y)
            .listen(IpListenEndpoint {
                addr: Some(IpAddress::from(UE_Y)),
                port,
            })
            .unwrap();
        self.send(Command::Start {
            key: T2,
            role: LegRole::Active {
                remote: sa(UE_Y, port),
            },
            accept: Accept::Gate(UE_Y.into()),
            timers: timers(),
            tls: None,
            framing: Framing::Agnostic,
        });
        self.send(Command::Start {
            key: T1,
            role: LegRole::Passive,
            accept: Accept::Gate(UE_X6.into()),
            timers: timers(),
            tls: None,
            framing: Framing::Agnostic,
        });
        self.send(Command::Join { a: T1, b: T2 });
        self.run_for(Duration::from_millis(5));
        let x = self.ue_x.add_tcp(256 * 1024, 256 * 1024);
        let cx = self.ue_x.iface.context();
        self.ue_x
            .sockets
            .get_mut::<tcp::Socket>(x)
            .connect(
                cx,
                IpEndpoint::from(sa(AGW_ACCESS6, port)),
                IpListenEndpoint::from(sa(UE_X6, port)),
            )
            .unwrap();
        self.run(Duration::from_secs(10), |n| {
            let cut = n
                .events
                .iter()
                .any(|e| matches!(e, Event::CutThrough { .. }));
            (cut, false)
        });
        (x, y)
    }

    /// `bytes` each way between UE-X and UE-Y, checked byte for byte.
    fn exchange(&mut self, x: SocketHandle, y: SocketHandle, bytes: u64) {
        let (mut tx_x, mut tx_y) = (PatternSender::new(1, bytes), PatternSender::new(2, bytes));
        let (mut rx_x, mut rx_y) = (PatternChecker::new(2), PatternChecker::new(1));
        self.run(Duration::from_secs(300), |n| {
            let mut moved = 0;
            let sx: &mut tcp::Socket = n.ue_x.tcp(x);
            moved += tx_x.pump(sx) + rx_x.pump(sx);
            let sy: &mut tcp::Socket = n.ue_y.tcp(y);
            moved += tx_y.pump(sy) + rx_y.pump(sy);
            (rx_x.received == bytes && rx_y.received == bytes, moved > 0)
        });
        assert_eq!((rx_x.first_mismatch, rx_y.first_mismatch), (None, None));
    }

    /// Frames put on UE-X's link as if UE-X sent them.
    fn inject_access(&mut self, frames: &[Vec<u8>]) {
        send_all(self.ue_x.device.port_mut(), frames);
    }

    /// Frames put on the worker's trunk as if the switch sent them.
    fn inject_trunk(&mut self, frames: &[Vec<u8>]) {
        send_all(&mut self.switch.as_mut().expect("a switch").trunk, frames);
    }

    /// Frames waiting on UE-X's link, taken off it (before UE-X's host reads them).
    fn take_access(&mut self) -> Vec<Vec<u8>> {
        let mut burst = Burst::new();
        self.ue_x.device.port_mut().rx_burst(&mut burst);
        burst.iter().map(|f| f.data().to_vec()).collect()
    }

    fn cut_through_both_ways(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::CutThrough { a, b } if *a == T1 || *b == T1))
    }
}

/// Puts `frames` on a link from `port`'s end; every one must be taken.
fn send_all(port: &mut MemPort, frames: &[Vec<u8>]) {
    let mut burst = Burst::new();
    for f in frames {
        let mut buf = port.alloc().expect("a buffer");
        buf.append(f.len()).expect("room").copy_from_slice(f);
        burst.push(buf);
    }
    assert_eq!(port.tx_burst(&mut burst), frames.len());
}

/// A TCP SYN from `src` to `dst` in an Ethernet frame to `dst_mac` (checksums left zero: the
/// worker drops the frame before anything checks them, or smoltcp does).
fn syn(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let tcp = &mut f[34..];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    f
}

/// An ARP request from `sender` for `target`.
fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

fn tagged(mut frame: Vec<u8>, tags: &[u16]) -> Vec<u8> {
    for &vid in tags.iter().rev() {
        frame.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
    }
    frame
}

#[test]
fn access_and_core_on_two_ports_relay_v6_to_v4_through_loss() {
    let mut n = two_ports(lossy(), 0x2a0);
    let (x, y) = n.pair(5000);
    assert!(n.cut_through_both_ways());
    n.exchange(x, y, 3_000_000);
    let keys: Vec<SocketAddr> = n.worker.leg_keys().into_iter().map(|k| k.1).collect();
    assert_eq!(keys, vec![sa(AGW_ACCESS6, 5000), sa(AGW_CORE, 5000)]);
    // Each link carried its own network's traffic: the core leg went out of port 1.
    let a = n.worker.port_at(0).unwrap().egress_stats().sent;
    let b = n.worker.port_at(1).unwrap().egress_stats().sent;
    assert!(a > 1000 && b > 1000, "{a} {b}");
    let c = n.worker.counters();
    assert_eq!((c.vlan_dropped, c.wrong_network_dropped), (0, 0));
}

#[test]
fn two_vlans_on_one_port_relay_v6_to_v4_and_every_frame_sent_is_tagged() {
    let mut n = two_vlans(lossy(), 0x2b0);
    let (x, y) = n.pair(5000);
    n.exchange(x, y, 3_000_000);
    let s = n.switch.as_ref().unwrap();
    assert_eq!((s.untagged_from_worker, s.unknown_vlan_from_worker), (0, 0));
    for v in [ACCESS_VLAN, CORE_VLAN] {
        assert!(s.tagged.iter().filter(|&&t| t == v).count() > 1000, "{v}");
    }
    let c = n.worker.counters();
    assert_eq!((c.vlan_dropped, c.wrong_network_dropped), (0, 0));
}

#[test]
fn a_core_address_is_not_reachable_from_the_access_network() {
    let mut n = two_ports(Faults::default(), 0x2c0);
    let (x, y) = n.pair(5000);
    n.exchange(x, y, 10_000);
    let mac = n.worker.port_at(0).unwrap().mac();
    // Past the worker's announcements (the last one 15 s after start).
    n.run_for(Duration::from_secs(16));
    let _ = n.take_access();
    // A SYN for the core leg's address and port, and an ARP request for the core address,
    // both on the access link: neither is answered.
    n.inject_access(&[syn(mac, UE_X, AGW_CORE, 5000), arp_request(UE_X, AGW_CORE)]);
    let rx_before = n.worker.counters().rx_frames;
    for _ in 0..20 {
        n.worker.poll(n.clock.now());
        n.clock.advance_to(n.clock.now() + Duration::from_millis(1));
    }
    assert_eq!(n.worker.counters().rx_frames, rx_before + 2);
    assert_eq!(n.worker.counters().wrong_network_dropped, 1);
    assert_eq!(n.take_access(), Vec::<Vec<u8>>::new());
    // The access address itself still answers ARP there.
    n.inject_access(&[arp_request(UE_X, AGW_ACCESS)]);
    n.worker.poll(n.clock.now());
    n.clock.advance_to(n.clock.now() + Duration::from_millis(1));
    let answers = n.take_access();
    assert_eq!(answers.len(), 1);
    assert_eq!(&answers[0][12..14], &[0x08, 0x06]);
    assert_eq!(&answers[0][28..32], &AGW_ACCESS.octets());
    // The relay is untouched.
    n.exchange(x, y, 10_000);
}

#[test]
fn frames_of_other_vlans_stacked_tags_and_untagged_frames_are_dropped_on_a_trunk() {
    let mut n = two_vlans(Faults::default(), 0x2d0);
    let (x, y) = n.pair(5000);
    n.exchange(x, y, 10_000);
    let mac = n.worker.port().mac();
    n.run_for(Duration::from_secs(16));
    let before = n.worker.counters();
    n.inject_trunk(&[
        tagged(arp_request(UE_X, AGW_ACCESS), &[30]),
        tagged(arp_request(UE_X, AGW_ACCESS), &[ACCESS_VLAN, 5]),
        tagged(arp_request(UE_X, AGW_ACCESS), &[4095]),
        arp_request(UE_X, AGW_ACCESS),
        // The core address on the access VLAN: a frame for another network.
        tagged(syn(mac, UE_X, AGW_CORE, 5000), &[ACCESS_VLAN]),
    ]);
    let sent_before = n.worker.device_stats().tx_frames;
    for _ in 0..20 {
        n.worker.poll(n.clock.now());
        n.clock.advance_to(n.clock.now() + Duration::from_millis(1));
    }
    let c = n.worker.counters();
    assert_eq!(c.vlan_dropped - before.vlan_dropped, 4);
    assert_eq!(c.wrong_network_dropped - before.wrong_network_dropped, 1);
    assert_eq!(n.worker.device_stats().tx_frames, sent_before);
    // The access VLAN's own ARP is answered, tagged with its VLAN.
    n.inject_trunk(&[tagged(arp_request(UE_X, AGW_ACCESS), &[ACCESS_VLAN])]);
    n.worker.poll(n.clock.now());
    n.clock.advance_to(n.clock.now() + Duration::from_millis(1));
    let mut burst = Burst::new();
    n.switch.as_mut().unwrap().trunk.rx_burst(&mut burst);
    let replies: Vec<Vec<u8>> = burst.iter().map(|f| f.data().to_vec()).collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(&replies[0][12..16], &[0x81, 0x00, 0, ACCESS_VLAN as u8]);
    assert_eq!(&replies[0][16..18], &[0x08, 0x06]);
    drop(burst);
    n.exchange(x, y, 10_000);
}

#[test]
fn networks_the_ports_cannot_carry_are_refused() {
    let base = WorkerConfig {
        addresses: access_network(),
        ..WorkerConfig::default()
    };
    let with = |nets: Vec<NetworkConfig>| WorkerConfig {
        networks: nets,
        ..base.clone()
    };
    assert!(with(vec![core_network(1, None)]).check_networks(2).is_ok());
    for (cfg, ports, why) in [
        (with(vec![core_network(1, None)]), 1, "port"),
        (with(vec![core_network(0, None)]), 1, "twice"),
        (with(vec![core_network(0, Some(4095))]), 1, "VLAN ID"),
        (
            with(vec![core_network(0, Some(7)), core_network(0, Some(7))]),
            1,
            "twice",
        ),
        (
            with(vec![NetworkConfig {
                addresses: vec![Ipv4Cidr::new(AGW_ACCESS, 24).into()],
                ..core_network(0, Some(8))
            }]),
            1,
            "also on another network",
        ),
    ] {
        let e = cfg.check_networks(ports).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}
