//! Two smoltcp stacks move 50 MB each way over TCP on a MemLink with drop, duplication and
//! reordering injected: the data must arrive complete and in order, within a bounded amount
//! of virtual time, and the same seed must give the same run.

use dataplane::clock::{Clock, VirtualClock};
use smoltcp::socket::tcp::{self, CongestionControl};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Cidr};
use testbed::memlink::{Faults, MemLink, MemLinkConfig, MemPort};
use testbed::{Host, PatternChecker, PatternSender};

const MB: u64 = 1_000_000;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    virtual_ms: i64,
    a_received: u64,
    b_received: u64,
    a_mismatch: Option<u64>,
    b_mismatch: Option<u64>,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    pool_in_use: usize,
}

fn faults() -> Faults {
    Faults {
        drop: 0.02,
        duplicate: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_micros(300),
        delay: Duration::from_micros(50),
        jitter: Duration::from_micros(5),
        rate_bytes_per_sec: Some(1_250_000_000),
        ..Faults::default()
    }
}

fn transfer(seed: u64, bytes: u64) -> Outcome {
    let _ = env_logger::builder().is_test(true).try_init();
    let clock = VirtualClock::new();
    let cfg = MemLinkConfig {
        seed,
        faults_a_to_b: faults(),
        faults_b_to_a: faults(),
        ..MemLinkConfig::default()
    };
    let (pa, pb) = MemLink::pair(cfg, clock.clone());
    let now = clock.now();
    let ip_a = Ipv4Address::new(198, 18, 0, 1);
    let ip_b = Ipv4Address::new(198, 18, 0, 2);
    let mut a: Host<MemPort> = Host::new(pa, Ipv4Cidr::new(ip_a, 24), now);
    let mut b: Host<MemPort> = Host::new(pb, Ipv4Cidr::new(ip_b, 24), now);
    let buf = 256 * 1024;
    let ha = a.add_tcp(buf, buf);
    let hb = b.add_tcp(buf, buf);
    for (h, s) in [(&mut a, ha), (&mut b, hb)] {
        let t = h.tcp(s);
        t.set_congestion_control(CongestionControl::Reno);
        t.set_nagle_enabled(false);
    }
    b.tcp(hb).listen(5000).unwrap();
    a.sockets
        .get_mut::<tcp::Socket>(ha)
        .connect(a.iface.context(), (IpAddress::Ipv4(ip_b), 5000), 49152)
        .unwrap();

    let mut send_a = PatternSender::new(1, bytes);
    let mut send_b = PatternSender::new(2, bytes);
    let mut recv_a = PatternChecker::new(2);
    let mut recv_b = PatternChecker::new(1);
    let limit = Instant::from_secs(600);

    loop {
        let now = clock.now();
        a.poll(now);
        b.poll(now);
        let mut moved = 0;
        {
            let s = a.tcp(ha);
            moved += send_a.pump(s) + recv_a.pump(s);
            if send_a.done() && s.send_queue() == 0 && s.may_send() {
                s.close();
            }
        }
        {
            let s = b.tcp(hb);
            moved += send_b.pump(s) + recv_b.pump(s);
            if send_b.done() && s.send_queue() == 0 && s.may_send() {
                s.close();
            }
        }
        let closed = |s: &tcp::Socket| !s.may_recv() && !s.may_send();
        if recv_a.received == bytes
            && recv_b.received == bytes
            && closed(a.tcp(ha))
            && closed(b.tcp(hb))
        {
            break;
        }
        if now > limit {
            break;
        }
        if moved > 0 {
            continue; // poll again at the same instant to send what the app just wrote
        }
        // Nothing to do now: jump to the next frame arrival or smoltcp timer.
        let next = [
            a.device.port().next_arrival(),
            b.device.port().next_arrival(),
            a.poll_at(now),
            b.poll_at(now),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(1));
        if std::env::var("DEBUG_STALL").is_ok() && next > now + Duration::from_millis(100) {
            let (sa, sb) = (a.tcp(ha).state(), b.tcp(hb).state());
            let (qa, qb) = (a.tcp(ha).send_queue(), b.tcp(hb).send_queue());
            let (ra, rb) = (a.tcp(ha).recv_queue(), b.tcp(hb).recv_queue());
            eprintln!("t={now} next={next} a={sa} sq={qa} rq={ra} rx={} | b={sb} sq={qb} rq={rb} rx={} dev_a={:?} dev_b={:?}", recv_a.received, recv_b.received, a.device.stats(), b.device.stats());
        }
        clock.advance_to(next.max(now + Duration::from_micros(1)));
    }
    let st_ab = a.device.port().egress_stats();
    let st_ba = b.device.port().egress_stats();
    // Frames still on the wire belong to the link until both ends are gone.
    let pool = a.device.port().pool().clone();
    drop((a, b));
    let pool_in_use = pool.in_use();
    Outcome {
        virtual_ms: clock.now().total_millis(),
        a_received: recv_a.received,
        b_received: recv_b.received,
        a_mismatch: recv_a.first_mismatch,
        b_mismatch: recv_b.first_mismatch,
        dropped: st_ab.dropped + st_ba.dropped,
        duplicated: st_ab.duplicated + st_ba.duplicated,
        reordered: st_ab.reordered + st_ba.reordered,
        pool_in_use,
    }
}

#[test]
fn fifty_megabytes_each_way_arrive_complete_and_in_order_despite_faults() {
    let out = transfer(0x5EED, 50 * MB);
    eprintln!("{out:?}");
    assert_eq!(out.a_received, 50 * MB);
    assert_eq!(out.b_received, 50 * MB);
    assert_eq!(out.a_mismatch, None);
    assert_eq!(out.b_mismatch, None);
    // The faults really were there.
    assert!(out.dropped > 1000, "{out:?}");
    assert!(out.duplicated > 500, "{out:?}");
    assert!(out.reordered > 500, "{out:?}");
    assert!(
        out.virtual_ms < 60_000,
        "took {} ms of virtual time",
        out.virtual_ms
    );
    assert_eq!(out.pool_in_use, 0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let x = transfer(77, 2 * MB);
    let y = transfer(77, 2 * MB);
    assert_eq!(x, y);
    assert_eq!(x.a_received, 2 * MB);
    assert_eq!(x.a_mismatch, None);
}
