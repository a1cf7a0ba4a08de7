//! IPv6 legs on MemLink with the virtual clock: every pair of address families (v4-v4,
//! v6-v6, v6-v4, v4-v6) relays byte for byte; an IPv6 access leg cut through to an IPv4 core
//! leg moves 100 MB each way through loss and reordering; UDPTL crosses from IPv6 to IPv4;
//! the gate, the source filter and DiffServ marking work on IPv6 addresses; the worker probes
//! its IPv6 addresses (duplicate address detection), advertises them, answers neighbour
//! solicitations (multicast and unicast) and counts another host's claim; IPv6 extension
//! headers and fragments are dropped and counted.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use common::*;
use dataplane::contract::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Duration;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv6Packet, Icmpv6Repr, IpEndpoint,
    IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};
use testbed::memlink::Faults;
use testbed::{PatternChecker, PatternSender};

/// Moves `bytes` each way between the UE sockets `x` and `y` (no close).
fn exchange(
    b: &mut Bed,
    x: smoltcp::iface::SocketHandle,
    y: smoltcp::iface::SocketHandle,
    bytes: u64,
) {
    let (mut tx_x, mut tx_y) = (PatternSender::new(1, bytes), PatternSender::new(2, bytes));
    let (mut rx_x, mut rx_y) = (PatternChecker::new(2), PatternChecker::new(1));
    b.run(Duration::from_secs(120), |b| {
        let mut moved = 0;
        for (h, tx, rx) in [(x, &mut tx_x, &mut rx_x), (y, &mut tx_y, &mut rx_y)] {
            let s = b.ue(h);
            moved += tx.pump(s) + rx.pump(s);
        }
        if rx_x.received == bytes && rx_y.received == bytes {
            Progress::Done
        } else if moved > 0 {
            Progress::Busy
        } else {
            Progress::Idle
        }
    });
    assert_eq!((rx_x.first_mismatch, rx_y.first_mismatch), (None, None));
}

fn established_remote(b: &Bed, key: TerminationKey) -> SocketAddr {
    b.events
        .iter()
        .find_map(|e| match e {
            Event::Established { key: k, remote } if *k == key => Some(*remote),
            _ => None,
        })
        .expect("established")
}

#[test]
fn every_pair_of_address_families_relays_both_ways() {
    for (i, at) in [V4_V4, V6_V6, V6_V4, V4_V6].into_iter().enumerate() {
        let mut b = bed_dual(lossy(), 0x600 + i as u64, Default::default());
        let (t1, t2) = (
            TerminationKey {
                context: 1,
                termination: 1,
            },
            TerminationKey {
                context: 1,
                termination: 2,
            },
        );
        let (x, y) = b.pair_at(at, t1, t2, 41000, 64 * 1024, Framing::Agnostic);
        exchange(&mut b, x, y, 300_000);
        assert_eq!(established_remote(&b, t1).ip(), at.ue_x, "{at:?}");
        assert_eq!(established_remote(&b, t2), sa(at.ue_y, 41000), "{at:?}");
        let keys: Vec<SocketAddr> = b.worker.leg_keys().into_iter().map(|k| k.1).collect();
        assert_eq!(keys, vec![sa(at.access, 41000), sa(at.core, 41000)]);
        // Released, both legs go and every buffer comes back.
        b.send(Command::Release { key: t1 });
        b.send(Command::Release { key: t2 });
        b.wait_for(Duration::from_secs(10), |b| b.worker.legs() == 0);
        drop(b.worker);
        drop(b.host);
        assert_eq!(b.pool.in_use(), 0, "{at:?}");
    }
}

#[test]
fn an_ipv6_access_leg_cut_through_to_an_ipv4_core_leg_moves_100_mb_each_way_through_loss() {
    let mut b = bed_dual(lossy(), 0x6A, Default::default());
    let (x, y) = b.pair_at(V6_V4, T1, T2, 41000, 256 * 1024, Framing::Agnostic);
    assert_eq!(established_remote(&b, T1).ip(), IpAddr::from(UE_X6));
    transfer(&mut b, x, y, 100 * MB);
    let st = b.worker.port().egress_stats();
    assert!(
        st.dropped > 1000 && st.reordered > 1000,
        "faults were injected: {st:?}"
    );
    finish(&mut b);
    drop(b.worker);
    drop(b.host);
    assert_eq!(b.pool.in_use(), 0);
}

#[test]
fn the_gate_on_an_ipv6_address_refuses_another_source() {
    let mut b = bed_dual(Faults::default(), 0x6B, Default::default());
    let intruder: Ipv6Addr = "2001:db8:1:100::99".parse().unwrap();
    b.host.iface.update_ip_addrs(|a| {
        let _ = a.push(smoltcp::wire::IpCidr::new(intruder.into(), 32));
    });
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS6, 41000),
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Gate(UE_X6.into()),
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.run_for(Duration::from_millis(5));
    let bad = b.ue_connect(sa(intruder, 6000), sa(AGW_ACCESS6, 41000), 4096);
    // Reset by the gate (once the worker has resolved the intruder's link-layer address).
    b.wait_for(Duration::from_secs(5), |b| {
        b.host.sockets.get::<tcp::Socket>(bad).state() == tcp::State::Closed
    });
    assert!(b.worker.counters().gate_rejected >= 1);
    let good = b.ue_connect(sa(UE_X6, 6001), sa(AGW_ACCESS6, 41000), 4096);
    b.wait_for(Duration::from_secs(2), |b| {
        b.has(|e| matches!(e, Event::Established { key, .. } if *key == T1))
    });
    assert_eq!(b.ue(good).state(), tcp::State::Established);
    assert_eq!(established_remote(&b, T1), sa(UE_X6, 6001));
}

fn udp_socket(b: &mut Bed, at: SocketAddr) -> smoltcp::iface::SocketHandle {
    let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]);
    let mut s = udp::Socket::new(buf(), buf());
    s.bind(IpEndpoint::from(at)).unwrap();
    b.host.sockets.add(s)
}

#[test]
fn udptl_crosses_from_an_ipv6_access_leg_to_an_ipv4_core_leg_and_back() {
    let mut b = bed_dual(Faults::default(), 0x6C, Default::default());
    let (ue, far) = (sa(UE_X6, 5004), sa(UE_Y, 6004));
    let (access, core) = (sa(AGW_ACCESS6, 40000), sa(AGW_CORE, 40002));
    let hx = udp_socket(&mut b, ue);
    let hy = udp_socket(&mut b, far);
    b.send(Command::ReserveDatagram {
        key: T1,
        local: access,
    });
    b.send(Command::ReserveDatagram {
        key: T2,
        local: core,
    });
    for (key, remote) in [(T1, ue), (T2, far)] {
        b.send(Command::StartDatagram {
            key,
            remote: Some(remote),
            accept: Accept::Gate(remote.ip()),
            relatch: false,
            timers: timers(),
            dtls: None,
        });
    }
    b.send(Command::Join { a: T1, b: T2 });
    b.run_for(Duration::from_millis(10));
    for i in 0..20u8 {
        let page = vec![i; 300];
        b.host
            .sockets
            .get_mut::<udp::Socket>(hx)
            .send_slice(&page, IpEndpoint::from(access))
            .unwrap();
        b.host
            .sockets
            .get_mut::<udp::Socket>(hy)
            .send_slice(&page[..100], IpEndpoint::from(core))
            .unwrap();
        b.run_for(Duration::from_millis(2));
    }
    b.run_for(Duration::from_millis(20));
    let mut got_y = Vec::new();
    while let Ok((d, meta)) = b.host.sockets.get_mut::<udp::Socket>(hy).recv() {
        got_y.push((d.to_vec(), SocketAddr::from(meta.endpoint)));
    }
    let mut got_x = Vec::new();
    while let Ok((d, meta)) = b.host.sockets.get_mut::<udp::Socket>(hx).recv() {
        got_x.push((d.to_vec(), SocketAddr::from(meta.endpoint)));
    }
    assert_eq!(got_y.len(), 20);
    assert_eq!(got_x.len(), 20);
    for (i, ((dy, from_y), (dx, from_x))) in got_y.iter().zip(&got_x).enumerate() {
        assert_eq!(dy, &vec![i as u8; 300]);
        assert_eq!(dx, &vec![i as u8; 100]);
        assert_eq!(*from_y, core, "the core leg sends from its IPv4 address");
        assert_eq!(
            *from_x, access,
            "the access leg sends from its IPv6 address"
        );
    }
    assert_eq!(b.worker.counters().datagrams_relayed, 40);
}

/// The frames captured so far, as (outbound, bytes).
fn drain(b: &mut Bed) -> Vec<(bool, Vec<u8>)> {
    let r = b.control.capture.clone();
    let mut out = Vec::new();
    while let Some(f) = r.full.pop() {
        out.push((f.outbound, f.bytes().to_vec()));
        let _ = r.free.push(f);
    }
    out
}

/// A captured frame's ICMPv6 neighbour-discovery message: (IPv6 source, destination,
/// message), if it is one.
fn ndisc(frame: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, NdiscRepr<'_>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let repr = Ipv6Repr::parse(&ip).ok()?;
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    match Icmpv6Repr::parse(
        &repr.src_addr,
        &repr.dst_addr,
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .ok()?
    {
        Icmpv6Repr::Ndisc(n) => Some((repr.src_addr, repr.dst_addr, n)),
        _ => None,
    }
}

/// An Ethernet frame carrying `msg` from `src` (MAC `mac`) to `dst`.
fn ndisc_frame(
    mac: EthernetAddress,
    to: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: NdiscRepr,
) -> Vec<u8> {
    let icmp = Icmpv6Repr::Ndisc(msg);
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        hop_limit: 255,
        payload_len: icmp.buffer_len(),
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(mac);
    eth.set_dst_addr(to);
    eth.set_ethertype(EthernetProtocol::Ipv6);
    let mut packet = Ipv6Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet);
    icmp.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(packet.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    buf
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

#[test]
fn the_worker_probes_advertises_answers_and_notices_a_claim_on_its_ipv6_addresses() {
    let mut b = bed_dual(Faults::default(), 0x6D, Default::default());
    // The capture is queued before the worker's first poll, which sends the probes.
    capture(&mut b, 256);
    b.run_for(Duration::from_millis(1500));
    let frames = drain(&mut b);
    let sent: Vec<_> = frames
        .iter()
        .filter(|f| f.0)
        .filter_map(|f| ndisc(&f.1))
        .collect();
    for ours in [AGW_ACCESS6, AGW_CORE6] {
        // Duplicate address detection first: from the unspecified address, to the target's
        // solicited-node group, without a link-layer option (RFC 4862 5.4.2).
        assert!(
            sent.iter().any(|(src, dst, m)| src.is_unspecified()
                && *dst == solicited_node(ours)
                && matches!(m, NdiscRepr::NeighborSolicit { target_addr, lladdr: None } if *target_addr == ours)),
            "no DAD probe for {ours}: {sent:?}"
        );
        // Then an unsolicited advertisement to all nodes, overriding caches.
        assert!(
            sent.iter().any(|(src, dst, m)| *src == ours
                && *dst == "ff02::1".parse::<Ipv6Addr>().unwrap()
                && matches!(m, NdiscRepr::NeighborAdvert { target_addr, flags, lladdr: Some(_) }
                    if *target_addr == ours && flags.contains(NdiscNeighborFlags::OVERRIDE))),
            "no unsolicited advertisement of {ours}: {sent:?}"
        );
    }
    let agw_mac = EthernetAddress(port::Port::mac(b.worker.port()));
    let other = EthernetAddress([0x02, 0, 0, 0, 0x66, 0x66]);
    let global: Ipv6Addr = "2001:db8:1::77".parse().unwrap();
    // A router, or a host whose packet's own source is not one of its addresses, solicits
    // from its link-local address.
    let link_local: Ipv6Addr = "fe80::77".parse().unwrap();

    // A neighbour's solicitation, multicast (address resolution) and unicast (reachability
    // confirmation, as Linux sends once a cache entry is stale), from a global and from a
    // link-local address: all answered.
    let ns = |neighbour: Ipv6Addr, dst: Ipv6Addr, to: EthernetAddress| {
        ndisc_frame(
            other,
            to,
            neighbour,
            dst,
            NdiscRepr::NeighborSolicit {
                target_addr: AGW_ACCESS6,
                lladdr: Some(RawHardwareAddress::from(other)),
            },
        )
    };
    let group = solicited_node(AGW_ACCESS6);
    let group_mac = {
        let o = group.octets();
        EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
    };
    for (neighbour, dst, to) in [
        (global, group, group_mac),
        (global, AGW_ACCESS6, agw_mac),
        (link_local, group, group_mac),
        (link_local, AGW_ACCESS6, agw_mac),
    ] {
        assert_eq!(inject(&mut b, &[ns(neighbour, dst, to)]), 1);
        b.run_for(Duration::from_millis(5));
        let frames = drain(&mut b);
        let answers: Vec<_> = frames
            .iter()
            .filter(|f| f.0)
            .filter_map(|f| ndisc(&f.1))
            .filter(|(src, dst, m)| {
                *src == AGW_ACCESS6
                    && *dst == neighbour
                    && matches!(m, NdiscRepr::NeighborAdvert { target_addr, flags, .. }
                        if *target_addr == AGW_ACCESS6 && flags.contains(NdiscNeighborFlags::SOLICITED))
            })
            .collect();
        assert_eq!(
            answers.len(),
            1,
            "solicitation from {neighbour} to {dst} answered once"
        );
    }
    assert_eq!(b.worker.counters().duplicate_addresses, 0);

    // Another host advertises our address: counted (and logged once).
    let claim = ndisc_frame(
        other,
        EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
        AGW_ACCESS6,
        "ff02::1".parse().unwrap(),
        NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::OVERRIDE,
            target_addr: AGW_ACCESS6,
            lladdr: Some(RawHardwareAddress::from(other)),
        },
    );
    // And another host probes for our other address.
    let probe = ndisc_frame(
        other,
        EthernetAddress([0x33, 0x33, 0xff, 0, 0, 0x20]),
        Ipv6Addr::UNSPECIFIED,
        solicited_node(AGW_CORE6),
        NdiscRepr::NeighborSolicit {
            target_addr: AGW_CORE6,
            lladdr: None,
        },
    );
    assert_eq!(inject(&mut b, &[claim.clone(), probe, claim]), 3);
    b.run_for(Duration::from_millis(5));
    assert_eq!(b.worker.counters().duplicate_addresses, 3);
}

/// A TCP SYN from UE-X6 to `dst`, behind `ext` (next-header values and 8-byte headers).
fn syn_v6(dst: (Ipv6Addr, u16), ext: &[u8]) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&5555u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x02;
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    let payload = ext.len() * 8 + tcp.len();
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[6] = ext.first().copied().unwrap_or(6);
    ip[7] = 64;
    ip[8..24].copy_from_slice(&UE_X6.octets());
    ip[24..40].copy_from_slice(&dst.0.octets());
    f.extend_from_slice(&ip);
    for (i, _) in ext.iter().enumerate() {
        let next = ext.get(i + 1).copied().unwrap_or(6);
        f.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
    }
    f.extend_from_slice(&tcp);
    f
}

#[test]
fn ipv6_extension_headers_and_fragments_are_dropped_and_counted() {
    let mut b = bed_dual(Faults::default(), 0x6E, Default::default());
    b.send(Command::Reserve {
        key: T1,
        local: sa(AGW_ACCESS6, 41000),
    });
    b.send(Command::Start {
        key: T1,
        role: LegRole::Passive,
        accept: Accept::Latch,
        timers: timers(),
        tls: None,
        framing: Framing::Agnostic,
    });
    b.run_for(Duration::from_millis(5));
    let before = b.worker.counters();
    let dst = (AGW_ACCESS6, 41000);
    // Destination options; hop-by-hop then routing; a fragment header.
    let frames = [
        syn_v6(dst, &[60]),
        syn_v6(dst, &[0, 43]),
        syn_v6(dst, &[44]),
    ];
    assert_eq!(inject(&mut b, &frames), 3);
    b.run_for(Duration::from_millis(5));
    let after = b.worker.counters();
    assert_eq!(after.extension_dropped - before.extension_dropped, 2);
    assert_eq!(after.fragments_dropped - before.fragments_dropped, 1);
    assert!(
        !b.has(|e| matches!(e, Event::Established { .. } | Event::Latched { .. })),
        "nothing behind an extension header reached the leg"
    );
    // The same SYN without extension headers is a connection request the leg takes.
    assert_eq!(inject(&mut b, &[syn_v6(dst, &[])]), 1);
    b.run_for(Duration::from_millis(5));
    assert_eq!(
        after.extension_dropped,
        b.worker.counters().extension_dropped
    );
}

/// An ICMP error from a router on the path quoting a TCP segment we sent from `ours` to
/// `theirs`: ICMPv6 Packet Too Big for IPv6, ICMP Fragmentation Needed for IPv4, with `mtu`.
fn too_big(ours: SocketAddr, theirs: SocketAddr, mtu: u32) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&ours.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&theirs.port().to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    let mut f = vec![0u8; 14];
    match (ours.ip(), theirs.ip()) {
        (IpAddr::V6(o), IpAddr::V6(t)) => {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut quoted = vec![0u8; 40];
            quoted[0] = 0x60;
            quoted[4..6].copy_from_slice(&1460u16.to_be_bytes());
            quoted[6] = 6;
            quoted[7] = 64;
            quoted[8..24].copy_from_slice(&o.octets());
            quoted[24..40].copy_from_slice(&t.octets());
            quoted.extend_from_slice(&tcp);
            let mut icmp = vec![2, 0, 0, 0];
            icmp.extend_from_slice(&mtu.to_be_bytes());
            icmp.extend_from_slice(&quoted);
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
            ip[6] = 58;
            ip[7] = 64;
            // From a router on UE-X's side.
            ip[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).octets());
            ip[24..40].copy_from_slice(&o.octets());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&icmp);
        }
        (IpAddr::V4(o), IpAddr::V4(t)) => {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let mut quoted = vec![0u8; 20];
            quoted[0] = 0x45;
            quoted[2..4].copy_from_slice(&1500u16.to_be_bytes());
            quoted[8] = 64;
            quoted[9] = 6;
            quoted[12..16].copy_from_slice(&o.octets());
            quoted[16..20].copy_from_slice(&t.octets());
            quoted.extend_from_slice(&tcp[..8]);
            let mut icmp = vec![3, 4, 0, 0, 0, 0];
            icmp.extend_from_slice(&(mtu as u16).to_be_bytes());
            icmp.extend_from_slice(&quoted);
            let mut ip = vec![0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = 1;
            ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
            ip[16..20].copy_from_slice(&o.octets());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&icmp);
        }
        _ => unreachable!("one family"),
    }
    f
}

/// The largest IP packet the worker sent to `to` among the captured frames.
fn largest_packet_to(frames: &[(bool, Vec<u8>)], to: IpAddr) -> usize {
    frames
        .iter()
        .filter(|(out, _)| *out)
        .filter_map(|(_, f)| match (f.get(12..14)?, to) {
            ([0x86, 0xdd], IpAddr::V6(a)) if f.get(38..54)? == a.octets() => {
                Some(40 + u16::from_be_bytes([f[18], f[19]]) as usize)
            }
            ([0x08, 0x00], IpAddr::V4(a)) if f.get(30..34)? == a.octets() => {
                Some(u16::from_be_bytes([f[16], f[17]]) as usize)
            }
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn packet_too_big_makes_a_legs_segments_smaller_and_only_that_legs() {
    let mut b = bed_dual(Faults::default(), 0x6F, Default::default());
    let (x, y) = b.pair_at(V6_V4, T1, T2, 41000, 64 * 1024, Framing::Agnostic);
    capture(&mut b, 64);
    exchange(&mut b, x, y, 200_000);
    let ue_x = SocketAddr::from(b.ue(x).local_endpoint().unwrap());
    let ue_y = SocketAddr::from(b.ue(y).local_endpoint().unwrap());
    let (t1, t2) = (sa(AGW_ACCESS6, 41000), sa(AGW_CORE, 41000));
    let before = drain(&mut b);
    assert_eq!(largest_packet_to(&before, ue_x.ip()), 1500);
    assert_eq!(largest_packet_to(&before, ue_y.ip()), 1500);
    // Errors that quote no leg's connection change nothing: another peer port, another
    // local port, a UDP-less family mix-up.
    let wrong_port = SocketAddr::new(ue_x.ip(), ue_x.port().wrapping_add(1));
    assert_eq!(
        inject(
            &mut b,
            &[
                too_big(t1, wrong_port, 1280),
                too_big(sa(AGW_ACCESS6, 41001), ue_x, 1280),
            ]
        ),
        2
    );
    b.run_for(Duration::from_millis(5));
    assert_eq!(b.worker.counters().path_mtu_lowered, 0);
    // UE-X's path takes 1280 octets (an MTU of 1000 is below IPv6's minimum: 1280); UE-Y's
    // 1000 (IPv4's floor is 576).
    assert_eq!(
        inject(&mut b, &[too_big(t1, ue_x, 1000), too_big(t2, ue_y, 1000)]),
        2
    );
    b.run_for(Duration::from_millis(5));
    assert_eq!(b.worker.counters().path_mtu_lowered, 2);
    exchange(&mut b, x, y, 200_000);
    let after = drain(&mut b);
    let (to_x, to_y) = (
        largest_packet_to(&after, ue_x.ip()),
        largest_packet_to(&after, ue_y.ip()),
    );
    assert!((1200..=1280).contains(&to_x), "{to_x}");
    assert!((900..=1000).contains(&to_y), "{to_y}");
    // A larger MTU later does not raise it again.
    assert_eq!(inject(&mut b, &[too_big(t1, ue_x, 1500)]), 1);
    b.run_for(Duration::from_millis(5));
    assert_eq!(b.worker.counters().path_mtu_lowered, 2);
}
