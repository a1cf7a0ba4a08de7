//! `legpoll::egress` reports the set's next deadline without asking smoltcp a last time when
//! its loop already had the answer: the deadline it returns must be the one a fresh ask gives,
//! in every state a leg goes through (neighbour pending, handshake, data with a window that closes,
//! retransmissions after loss, FIN, idle).

use dataplane::clock::{Clock, VirtualClock};
use dataplane::demux::{classify, FrameClass};
use dataplane::legpoll;
use port::Port;
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Cidr};
use testbed::memlink::{Faults, MemLink, MemLinkConfig, MemPort};
use testbed::{Host, PatternChecker, PatternSender};

#[test]
fn egress_deadline_is_a_fresh_one_through_a_lossy_transfer() {
    let clock = VirtualClock::new();
    let lossy = Faults {
        drop: 0.03,
        reorder: 0.02,
        reorder_delay: Duration::from_micros(300),
        delay: Duration::from_micros(50),
        ..Faults::default()
    };
    let cfg = MemLinkConfig {
        seed: 7,
        faults_a_to_b: lossy.clone(),
        faults_b_to_a: lossy,
        ..MemLinkConfig::default()
    };
    let (pa, pb) = MemLink::pair(cfg, clock.clone());
    let now = clock.now();
    let (ip_a, ip_b) = (
        Ipv4Address::new(198, 18, 0, 1),
        Ipv4Address::new(198, 18, 0, 2),
    );
    // A: one socket in its own set, driven the way the worker drives a leg.
    let mut a: Host<MemPort> = Host::new(pa, Ipv4Cidr::new(ip_a, 24), now);
    let ha = a.add_tcp(16 * 1024, 16 * 1024);
    let mut set = std::mem::replace(&mut a.sockets, SocketSet::new(Vec::new()));
    // B: a plain host with a small receive window, so A's sends stall and resume.
    let mut b: Host<MemPort> = Host::new(pb, Ipv4Cidr::new(ip_b, 24), now);
    let hb = b.add_tcp(4 * 1024, 16 * 1024);
    b.tcp(hb).listen(5000).unwrap();
    set.get_mut::<tcp::Socket>(ha)
        .connect(a.iface.context(), (IpAddress::Ipv4(ip_b), 5000), 49152)
        .unwrap();

    let bytes = 2_000_000;
    let mut send = PatternSender::new(1, bytes);
    let mut recv = PatternChecker::new(1);
    let (mut egresses, mut idle, mut sent) = (0u64, 0u64, 0u64);
    while clock.now() < Instant::from_secs(120) {
        let now = clock.now();
        let mut burst: port::Burst<testbed::memlink::MemBuf> = port::Burst::new();
        a.device.port_mut().rx_burst(&mut burst);
        for frame in burst.drain(..) {
            // ARP and the TCP segments both go to the one set, as the worker's demux would.
            let class = classify(port::PacketBuf::data(&frame));
            assert!(matches!(class, FrameClass::Arp | FrameClass::Tcp { .. }));
            legpoll::ingress(&mut a.iface, &mut a.device, &mut set, frame, now);
        }
        let s = set.get_mut::<tcp::Socket>(ha);
        send.pump(s);
        if send.done() && s.send_queue() == 0 && s.may_send() {
            s.close();
        }
        let out = legpoll::egress(&mut a.iface, &mut a.device, &mut set, now);
        egresses += 1;
        idle += (out.sent == 0) as u64;
        sent += out.sent;
        assert_eq!(
            out.poll_at,
            a.iface.poll_at(now, &set),
            "egress {egresses} at {now}: the deadline returned is not the set's"
        );
        a.device.flush();
        b.poll(now);
        recv.pump(b.tcp(hb));
        if recv.received == bytes && !set.get::<tcp::Socket>(ha).is_open() {
            break;
        }
        let next = [
            a.device.port().next_arrival(),
            b.device.port().next_arrival(),
            out.poll_at,
            b.poll_at(now),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(1));
        clock.advance_to(next.max(now + Duration::from_micros(1)));
    }
    assert_eq!(recv.received, bytes, "transfer incomplete");
    assert_eq!(recv.first_mismatch, None);
    assert!(
        a.device.port().egress_stats().dropped > 0,
        "no loss was injected"
    );
    // Both kinds of poll were checked: ones that sent and ones with nothing due.
    assert!(
        idle > 0 && idle < egresses,
        "{idle} of {egresses} egress polls sent nothing"
    );
    assert!(sent > bytes / 1500, "{sent} frames sent for {bytes} bytes");
}
