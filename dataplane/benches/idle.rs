//! Memory of idle calls: N plain calls held by one worker on MemLink (virtual clock), each
//! set up as the control thread sets it up, its UEs connected and one chat message (400
//! bytes) sent each way, then two seconds without traffic, by when every leg has given back
//! any full-size buffer it borrowed. Measured:
//! - worker heap per call: what the worker's own polls allocated less what they freed (the
//!   counting allocator, watching only the worker's calls), over the calls;
//! - process RSS growth per call, worker and in-process UE farm together, and the same less
//!   the farm's heap growth (the worker's share; the farm's UEs hold 512-byte buffers).
//!
//! The same with TLS on every call's access leg (UE-X a TLS 1.3 client pinned to the AGW's
//! certificate, the AGW pinning UE-X's, as the SDP fingerprints make them): the idle TLS leg
//! keeps its rustls session. The TLS configuration (the control thread builds one per
//! termination) is shared by the bench's calls; its own heap is printed beside the rows.
//!
//! `IMSAGW_IDLE_CALLS` (default "10000,100000"; the bench script's quick mode "2000") and
//! `IMSAGW_IDLE_TLS_CALLS` (the same defaults; quick "500").

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::clock::Clock;
use dataplane::contract::Command;
use dataplane::tls::{HashAlg, Identity, TlsConfig};
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::time::Duration;
use smoltcp::wire::Ipv4Cidr;
use testbed::calls::plain_call;
use testbed::memlink::{MemLinkConfig, MemPort};
use testbed::rig::WorkerRig;
use testbed::Farm;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// Calls per address pair: each call takes one port on each side.
const CALLS_PER_ADDRESS: u32 = 50_000;
const MESSAGE: u64 = 400;
const UE_BUFFER: usize = 512;

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn address(base: [u8; 3], k: u32) -> Ipv4Addr {
    Ipv4Addr::new(base[0], base[1], base[2], 10 + k as u8)
}

struct Held {
    worker_heap: f64,
    rss: f64,
    rss_less_farm: f64,
    lends: u64,
}

/// The AGW's TLS towards UE-X and UE-X's own, for `hold`'s TLS calls.
struct Keys {
    agw: Identity,
    ue: Identity,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            agw: Identity::generate("agw.example").expect("AGW identity"),
            ue: Identity::generate("ue.example").expect("UE identity"),
        }
    }

    /// The access leg's: a TLS server pinning UE-X's certificate.
    fn agw(&self) -> TlsConfig {
        TlsConfig::new(&self.agw, None, vec![self.ue.fingerprint(HashAlg::Sha256)])
            .expect("AGW TLS configuration")
    }

    /// UE-X's towards the access address `agw`.
    fn ue(&self, agw: Ipv4Addr) -> TlsConfig {
        TlsConfig::new(
            &self.ue,
            Some(agw.into()),
            vec![self.agw.fingerprint(HashAlg::Sha256)],
        )
        .expect("UE TLS configuration")
    }
}

/// Heap bytes one AGW-side TLS configuration holds (built on the control thread, one per TLS
/// termination; not in the worker's heap).
fn tls_config_bytes(keys: &Keys) -> f64 {
    const N: usize = 64;
    let before = alloc_count::live_bytes();
    let configs: Vec<TlsConfig> = (0..N).map(|_| keys.agw()).collect();
    let held = alloc_count::live_bytes().saturating_sub(before);
    drop(configs);
    held as f64 / N as f64
}

fn hold(calls: u32, keys: Option<&Keys>) -> Held {
    let sets = calls.div_ceil(CALLS_PER_ADDRESS);
    let access = |k| address([198, 18, 1], k);
    let core = |k| address([198, 18, 2], k);
    let ue_x = |k| address([198, 18, 100], k);
    let ue_y = |k| address([198, 18, 200], k);
    let link = MemLinkConfig {
        pool_buffers: 65536,
        queue_frames: 8192,
        ..MemLinkConfig::default()
    };
    let cfg = WorkerConfig {
        max_legs: 2 * calls as usize + 16,
        ..WorkerConfig::default()
    };
    // The worker's fixed heap (scratch buffers, the pool's lists) is made here, not per call.
    let WorkerRig {
        clock,
        mut worker,
        mut farm,
        control,
        pool,
    } = WorkerRig::new(
        link,
        1 << 16,
        cfg,
        &(0..sets)
            .flat_map(|k| [Ipv4Cidr::new(access(k), 15), Ipv4Cidr::new(core(k), 15)])
            .collect::<Vec<_>>(),
        &(0..sets)
            .flat_map(|k| [Ipv4Cidr::new(ue_x(k), 15), Ipv4Cidr::new(ue_y(k), 15)])
            .collect::<Vec<_>>(),
    );
    pool.fill();
    farm.auto_close = false;
    let (heap0, rss0, net0) = (
        alloc_count::live_bytes(),
        rss_bytes(),
        alloc_count::watched_net_bytes(),
    );
    let step = |worker: &mut Worker<MemPort>, farm: &mut Farm<MemPort>| {
        let now = clock.now();
        let (mut busy, _) = alloc_count::allocations(true, || worker.poll(now));
        busy |= farm.poll(now);
        while control.events.pop().is_some() {}
        if !busy {
            clock.advance(Duration::from_millis(1));
        }
    };
    let place = |i: u32| {
        (
            i / CALLS_PER_ADDRESS,
            10_000 + (i % CALLS_PER_ADDRESS) as u16,
        )
    };
    let agw_tls = keys.map(Keys::agw);
    let ue_tls: Vec<Option<TlsConfig>> = (0..sets).map(|k| keys.map(|t| t.ue(access(k)))).collect();
    let mut ys = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let (k, port) = place(i);
        ys.push(farm.listen(
            (ue_y(k), port),
            UE_BUFFER,
            2 * i as u64 + 1,
            MESSAGE,
            2 * i as u64,
            MESSAGE,
        ));
        let mut commands = plain_call(
            i,
            SocketAddrV4::new(access(k), port),
            SocketAddrV4::new(core(k), port),
            ue_x(k),
            SocketAddrV4::new(ue_y(k), port),
        );
        if let Some(cfg) = &agw_tls {
            for c in commands.iter_mut() {
                if let Command::Start { key, tls, .. } = c {
                    if key.termination == 1 {
                        *tls = Some(cfg.clone());
                    }
                }
            }
        }
        for c in commands {
            while control.commands.push(c.clone()).is_err() {
                step(&mut worker, &mut farm);
            }
        }
    }
    while worker.legs() < 2 * calls as usize || !control.commands.is_empty() {
        step(&mut worker, &mut farm);
    }
    let mut xs = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let (k, port) = place(i);
        let (local, remote) = ((ue_x(k), port), (access(k), port));
        let (out, inp) = (2 * i as u64, 2 * i as u64 + 1);
        xs.push(match &ue_tls[k as usize] {
            None => farm.connect(local, remote, UE_BUFFER, out, MESSAGE, inp, MESSAGE),
            Some(cfg) => farm
                .connect_tls(local, remote, UE_BUFFER, cfg, out, MESSAGE, inp, MESSAGE)
                .expect("UE-X's TLS session"),
        });
    }
    let limit = clock.now() + Duration::from_secs(600);
    while !xs.iter().chain(&ys).all(|&id| farm.conn(id).done()) {
        assert!(
            clock.now() < limit,
            "idle: the chat messages did not all arrive"
        );
        for _ in 0..1000 {
            step(&mut worker, &mut farm);
        }
    }
    assert!(
        xs.iter()
            .chain(&ys)
            .all(|&id| farm.conn(id).rx.first_mismatch.is_none()),
        "idle: a chat message arrived changed"
    );
    let idle_from = clock.now();
    while clock.now() < idle_from + Duration::from_secs(2) {
        step(&mut worker, &mut farm);
    }
    let c = worker.counters();
    assert_eq!(c.buffers_lent, 0, "idle legs hold no lent buffer");
    assert_eq!(worker.legs(), 2 * calls as usize);
    let worker_heap = (alloc_count::watched_net_bytes() - net0) as f64;
    let farm_heap = (alloc_count::live_bytes() - heap0) as f64 - worker_heap;
    let rss = rss_bytes().saturating_sub(rss0) as f64;
    let n = calls as f64;
    let held = Held {
        worker_heap: worker_heap / n,
        rss: rss / n,
        rss_less_farm: (rss - farm_heap) / n,
        lends: c.buffer_lends,
    };
    drop((worker, farm));
    held
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var("IMSAGW_BENCH_QUICK").is_ok_and(|v| v == "1");
    let counts = |var: &str, quick_default: &str| -> Vec<u32> {
        std::env::var(var)
            .unwrap_or_else(|_| if quick { quick_default } else { "10000,100000" }.into())
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    };
    if let Some(calls) = std::env::var("IMSAGW_IDLE_ONE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let keys = std::env::var("IMSAGW_IDLE_TLS").is_ok().then(Keys::new);
        let h = hold(calls, keys.as_ref());
        println!(
            "{} {} {} {}",
            h.worker_heap, h.rss, h.rss_less_farm, h.lends
        );
        return;
    }
    let d = WorkerConfig::default();
    println!(
        "# idle plain calls held by one worker (guaranteed buffers {} B receive, {} B send; full {} B)",
        d.guaranteed_rx, d.guaranteed_tx, d.rx_buffer
    );
    table(&counts("IMSAGW_IDLE_CALLS", "2000"), false);
    println!();
    println!(
        "# idle calls with TLS on the access leg (TLS 1.3, UE-X the client; one AGW-side TLS configuration holds {:.0} B of the control thread's heap, shared here)",
        tls_config_bytes(&Keys::new())
    );
    table(&counts("IMSAGW_IDLE_TLS_CALLS", "500"), true);
}

/// One row per count, each count in a fresh process (memory an earlier run freed would hide
/// RSS growth).
fn table(counts: &[u32], tls: bool) {
    println!("| calls | worker heap per call | process RSS growth per call | RSS growth less the UE farm's heap, per call | loans during set-up |");
    println!("|---|---|---|---|---|");
    let what = if tls { "idle TLS calls" } else { "idle calls" };
    for &calls in counts {
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"));
        child.env("IMSAGW_IDLE_ONE", calls.to_string());
        if tls {
            child.env("IMSAGW_IDLE_TLS", "1");
        }
        let out = child.output().expect("idle: run one count");
        assert!(
            out.status.success(),
            "idle: the run of {calls} calls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text
            .lines()
            .last()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert_eq!(v.len(), 4, "idle: unexpected output {text}");
        let h = Held {
            worker_heap: v[0],
            rss: v[1],
            rss_less_farm: v[2],
            lends: v[3] as u64,
        };
        println!(
            "| {calls} | {:.0} B | {:.0} B | {:.0} B | {} |",
            h.worker_heap, h.rss, h.rss_less_farm, h.lends
        );
        println!(
            "{what} {calls}: worker heap per call {:.0} B, RSS per call less farm {:.0} B, worker heap total {:.1} MiB",
            h.worker_heap,
            h.rss_less_farm,
            h.worker_heap * calls as f64 / (1024.0 * 1024.0)
        );
    }
}
