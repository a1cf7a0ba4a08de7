//! DPDK on net_null without hugepages: a million frames out and a million in, in bursts,
//! and every mbuf back in the pool afterwards. Also the queue-ownership rules.

use dpdk::{DpdkError, Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::eal_args;
use port::{Burst, PacketBuf, Port, BURST};

const FRAMES: u64 = 1_000_000;

#[test]
fn net_null_moves_a_million_frames_each_way_and_returns_every_mbuf() {
    let eal = Eal::init(eal_args(&["net_null0", "net_null1"])).expect("EAL on net_null");
    let pool = Mempool::create(eal, &MempoolConfig::new("null_pool", 4095)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_null0").unwrap();
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), pool.clone()).unwrap();
    let baseline = pool.in_use();

    let mut q = dev.queue(0).unwrap();
    assert!(matches!(
        dev.queue(0),
        Err(DpdkError::QueueUnavailable { queue: 0, .. })
    ));
    assert!(dev.queue(1).is_err(), "only one queue pair was configured");
    assert_eq!(q.capabilities().max_frame, 1514);

    let mut sent = 0u64;
    while sent < FRAMES {
        let mut burst = Burst::new();
        let n = BURST.min((FRAMES - sent) as usize);
        assert!(pool.alloc_bulk(&mut burst, n), "pool ran dry at {sent}");
        for (i, m) in burst.iter_mut().enumerate() {
            let frame = m.append(64).expect("64 bytes fit");
            frame.fill(0);
            frame[..8].copy_from_slice(&(sent + i as u64).to_be_bytes());
        }
        sent += q.tx_burst(&mut burst) as u64;
        // Whatever the driver did not take is freed here, by Drop.
    }

    let mut received = 0u64;
    let mut bytes = 0u64;
    while received < FRAMES {
        let mut burst = Burst::new();
        let n = q.rx_burst(&mut burst);
        received += n as u64;
        bytes += burst.iter().map(|m| m.len() as u64).sum::<u64>();
    }
    assert!(bytes >= received * 60, "net_null frames carry data");

    let stats = dev.stats().unwrap();
    assert!(stats.tx_packets >= FRAMES, "{stats:?}");
    assert!(stats.rx_packets >= FRAMES, "{stats:?}");
    assert_eq!(pool.in_use(), baseline, "mbufs leaked");

    drop(q);
    drop(dev);
    assert_eq!(pool.in_use(), 0, "the stopped port kept mbufs");
    assert!(matches!(
        EthDev::port_by_name(eal, "net_nope9"),
        Err(DpdkError::NoSuchDevice(_))
    ));
}

#[test]
fn two_queue_pairs_serve_two_threads_and_report_link_and_stats() {
    let eal = Eal::init(eal_args(&["net_null0", "net_null1"])).expect("EAL on net_null");
    let pool = Mempool::create(eal, &MempoolConfig::new("null_mq_pool", 4095)).unwrap();
    let port_id = EthDev::port_by_name(eal, "net_null1").unwrap();
    let cfg = EthDevConfig {
        queues: 2,
        ..EthDevConfig::default()
    };
    let dev = EthDev::start(eal, port_id, &cfg, pool.clone()).unwrap();
    assert_eq!(dev.driver(), "net_null");
    assert_eq!(dev.name(), "net_null1");
    assert!(
        dev.link().unwrap().up,
        "net_null reports its link up once started"
    );
    let baseline = pool.in_use();

    let workers: Vec<_> = (0..2)
        .map(|q| {
            let mut port = dev.queue(q).unwrap();
            std::thread::spawn(move || {
                let mut rx = 0u64;
                while rx < 100_000 {
                    let mut burst = Burst::new();
                    rx += port.rx_burst(&mut burst) as u64;
                    // Send them back out on the same queue: ownership moves to the driver.
                    port.tx_burst(&mut burst);
                }
                (port.queue_id(), rx)
            })
        })
        .collect();
    for w in workers {
        let (q, rx) = w.join().unwrap();
        assert!(rx >= 100_000, "queue {q} received {rx}");
    }
    let stats = dev.stats().unwrap();
    assert!(
        stats.rx_packets >= 200_000 && stats.tx_packets > 0,
        "{stats:?}"
    );
    assert_eq!(pool.in_use(), baseline, "mbufs leaked");
    drop(dev);
    assert_eq!(pool.in_use(), 0);
}
