//! After warm-up, relaying UDPTL does not allocate in the worker: datagrams flow both ways
//! through a plain UDP pair and through a DTLS <-> UDP pair while a counting allocator
//! watches only the worker's own calls.
//!
//! The exception is dimpl's record layer, traced with backtraces: 0.9 allocates three buffers
//! per record it encrypts (`record.rs` building the record) and three per record it decrypts
//! (a `Records` box and two `ParsedRecord` boxes), each freed once the record is consumed, so
//! a DTLS leg costs three short-lived allocations per relayed datagram. The bound below is
//! exactly that: anything of ours that allocated would exceed it.

mod common;

use std::net::SocketAddr;

use common::*;
use dataplane::contract::*;
use dataplane::dtls::DtlsConfig;
use dataplane::tls::{HashAlg, Identity};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::IpEndpoint;
use testbed::memlink::Faults;
use testbed::DtlsPeer;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ep(a: SocketAddr) -> IpEndpoint {
    IpEndpoint::from(a)
}

fn udp_socket(b: &mut Bed, at: SocketAddr) -> SocketHandle {
    let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let mut s = udp::Socket::new(buf(), buf());
    s.bind(ep(at)).unwrap();
    b.host.sockets.add(s)
}

/// Worker allocations while `count` datagrams go each way after a warm-up, and the datagrams
/// that arrived.
fn relay(dtls: bool) -> (usize, usize) {
    let mut b = bed(Faults::default(), 21);
    let agw = Identity::generate("agw").unwrap();
    let ue_id = Identity::generate("ue").unwrap();
    let t1 = TerminationKey {
        context: 1,
        termination: 1,
    };
    let t2 = TerminationKey {
        context: 1,
        termination: 2,
    };
    let (access, core) = (sa(AGW_ACCESS, 40000), sa(AGW_CORE, 40002));
    let (x, y) = (sa(UE_X, 5004), sa(UE_Y, 6004));
    let timers = LegTimers {
        idle: Some(Duration::from_secs(30)),
        ..LegTimers::default()
    };
    b.send(Command::ReserveDatagram {
        key: t1,
        local: access,
    });
    b.send(Command::ReserveDatagram {
        key: t2,
        local: core,
    });
    b.send(Command::StartDatagram {
        key: t2,
        remote: Some(y),
        accept: Accept::Gate(UE_Y.into()),
        relatch: false,
        timers,
        dtls: None,
    });
    let cfg = DtlsConfig::new(&agw, false, vec![ue_id.fingerprint(HashAlg::Sha256)], None).unwrap();
    b.send(Command::StartDatagram {
        key: t1,
        remote: Some(x),
        accept: Accept::Gate(UE_X.into()),
        relatch: false,
        timers,
        dtls: dtls.then_some(cfg),
    });
    b.send(Command::Join { a: t1, b: t2 });
    let hx = udp_socket(&mut b, x);
    let hy = udp_socket(&mut b, y);
    let mut ue = DtlsPeer::new(
        (**ue_id.dtls_certificate().unwrap()).clone(),
        true,
        hx,
        ep(access),
        b.now(),
    );
    let payload = [0x38u8; 180];
    let (mut allocs, mut arrived) = (0, 0);
    // 20 s of fax at 100 datagrams/s each way; the last 5 s watched (the wheel has turned).
    let warm = b.now() + Duration::from_secs(15);
    let end = warm + Duration::from_secs(5);
    let mut next = b.now();
    while b.now() < end {
        let now = b.now();
        if now >= next && (!dtls || ue.connected) {
            next = now + Duration::from_millis(10);
            if dtls {
                assert!(ue.send(&mut b.host.sockets, &payload));
            } else {
                b.host
                    .sockets
                    .get_mut::<udp::Socket>(hx)
                    .send_slice(&payload, ep(access))
                    .unwrap();
            }
            b.host
                .sockets
                .get_mut::<udp::Socket>(hy)
                .send_slice(&payload, ep(core))
                .unwrap();
        }
        let watching = now >= warm;
        let (busy, n) = allocations(watching, || b.worker.poll(now));
        allocs += n;
        b.host.poll(now);
        if dtls {
            ue.pump(&mut b.host.sockets, now);
        }
        for h in [hx, hy] {
            let s = b.host.sockets.get_mut::<udp::Socket>(h);
            while let Ok((d, _)) = s.recv() {
                if watching {
                    arrived += usize::from(d.len() == payload.len());
                }
            }
        }
        if watching {
            arrived += std::mem::take(&mut ue.received).len();
        } else {
            ue.received.clear();
        }
        while b.control.events.pop().is_some() {}
        if !busy {
            b.clock.advance(Duration::from_micros(200));
        }
    }
    (allocs, arrived)
}

#[test]
fn relaying_udptl_does_not_allocate_once_warm() {
    let (allocs, arrived) = relay(false);
    assert!(arrived > 900, "only {arrived} datagrams in 5 s");
    assert_eq!(allocs, 0, "worker allocations while relaying plain UDPTL");
}

#[test]
fn relaying_udptl_over_dtls_allocates_only_in_dimpls_record_layer() {
    let (allocs, arrived) = relay(true);
    assert!(arrived > 900, "only {arrived} datagrams in 5 s");
    // Every datagram was decrypted or encrypted once: three allocations each in dimpl.
    assert!(
        allocs <= 3 * arrived + 8,
        "{allocs} worker allocations for {arrived} datagrams over DTLS"
    );
    eprintln!("{allocs} allocations (all in dimpl's record layer) for {arrived} datagrams");
}
