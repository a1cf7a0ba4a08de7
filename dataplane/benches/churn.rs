//! Memory over many calls: call after call through one worker on MemLink (virtual clock), in
//! waves of 64 concurrent calls. Each call is set up as the control thread sets it up
//! (Reserve, Start, Join), its UEs connect and send 64 bytes each way, both hang up, the
//! control thread releases the legs, and the UEs' sockets are dropped. After every
//! twentieth of the run, with no call up, it records the process's live heap (a counting
//! global allocator: every thread, worker and UE farm together) and resident set size.
//!
//! `IMSAGW_CHURN_CALLS` (default 1 000 000; the bench script's quick mode 100 000).
//! Reported: both series, and their spread over the last half of the run as
//! (max - min) / mean; flat means the worker returns what each call took.

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::*;
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::time::Duration;
use smoltcp::wire::Ipv4Cidr;
use testbed::calls::plain_call;
use testbed::memlink::{MemLinkConfig, MemPort};
use testbed::rig::WorkerRig;
use testbed::Farm;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

const AGW_ACCESS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const AGW_CORE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 20);
const UE_X: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 7);
const UE_Y: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 50);
const WAVE: u64 = 64;
/// Ports rotate over this many, so a port is reused only long after its last call.
const PORTS: u64 = 50_000;
const BYTES: u64 = 64;

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Rig {
    clock: VirtualClock,
    worker: Worker<MemPort>,
    farm: Farm<MemPort>,
    control: ControlEnd,
    closed: u64,
}

impl Rig {
    fn settle(&mut self) {
        loop {
            let now = self.clock.now();
            let w = self.worker.poll(now);
            let f = self.farm.poll(now);
            while let Some(e) = self.control.events.pop() {
                if matches!(e, Event::Closed { .. }) {
                    self.closed += 1;
                }
            }
            if !w && !f {
                break;
            }
        }
        self.clock.advance(Duration::from_millis(1));
    }

    fn send(&mut self, c: Command) {
        while self.control.commands.push(c.clone()).is_err() {
            self.settle();
        }
    }

    /// Rounds until `done`; panics after a virtual minute (a stuck call is a failure).
    fn until(&mut self, what: &str, mut done: impl FnMut(&Rig) -> bool) {
        for _ in 0..60_000 {
            if done(self) {
                return;
            }
            self.settle();
        }
        panic!("churn: stuck waiting for {what}");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var("IMSAGW_BENCH_QUICK").is_ok_and(|v| v == "1");
    let calls: u64 = std::env::var("IMSAGW_CHURN_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let waves = calls.div_ceil(WAVE);
    let cfg = WorkerConfig {
        rx_buffer: 4096,
        tx_buffer: 4096,
        ..WorkerConfig::default()
    };
    let WorkerRig {
        clock,
        worker,
        mut farm,
        control,
        ..
    } = WorkerRig::new(
        MemLinkConfig::default(),
        1 << 12,
        cfg,
        &[Ipv4Cidr::new(AGW_ACCESS, 15), Ipv4Cidr::new(AGW_CORE, 15)],
        &[Ipv4Cidr::new(UE_X, 15), Ipv4Cidr::new(UE_Y, 15)],
    );
    farm.auto_close = true;
    let mut rig = Rig {
        clock,
        worker,
        farm,
        control,
        closed: 0,
    };
    let key = |c: u64, t: u32| TerminationKey {
        context: c as u32,
        termination: t,
    };
    let port = |c: u64| 10_000 + (c % PORTS) as u16;
    let mut samples: Vec<(u64, usize, usize)> = Vec::new();
    let every = (waves / 20).max(1);
    let wall = std::time::Instant::now();
    let mut ues: Vec<(u32, u32, u16)> = Vec::with_capacity(WAVE as usize);
    for wave in 0..waves {
        ues.clear();
        for k in 0..WAVE {
            let c = wave * WAVE + k;
            let p = port(c);
            let y = rig
                .farm
                .listen((UE_Y, p), 4096, 2 * c + 1, BYTES, 2 * c, BYTES);
            ues.push((u32::MAX, y, p));
            for cmd in plain_call(
                c as u32,
                SocketAddrV4::new(AGW_ACCESS, p),
                SocketAddrV4::new(AGW_CORE, p),
                UE_X,
                SocketAddrV4::new(UE_Y, p),
            ) {
                rig.send(cmd);
            }
        }
        rig.until("the legs", |r| {
            r.worker.legs() >= 2 * WAVE as usize && r.control.commands.is_empty()
        });
        for (k, ue) in ues.iter_mut().enumerate() {
            let c = wave * WAVE + k as u64;
            ue.0 = rig.farm.connect(
                (UE_X, ue.2),
                (AGW_ACCESS, ue.2),
                4096,
                2 * c,
                BYTES,
                2 * c + 1,
                BYTES,
            );
        }
        let pending = ues.clone();
        rig.until("the bytes", |r| {
            pending
                .iter()
                .all(|&(x, y, _)| r.farm.conn(x).done() && r.farm.conn(y).done())
        });
        for k in 0..WAVE {
            let c = wave * WAVE + k;
            rig.send(Command::Release { key: key(c, 1) });
            rig.send(Command::Release { key: key(c, 2) });
        }
        let target = 2 * WAVE * (wave + 1);
        rig.until("the releases", |r| {
            r.closed >= target && r.worker.legs() == 0
        });
        for &(x, y, p) in &ues {
            rig.farm.remove(x, (UE_X, p));
            rig.farm.remove(y, (UE_Y, p));
        }
        if (wave + 1) % every == 0 || wave + 1 == waves {
            samples.push(((wave + 1) * WAVE, alloc_count::live_bytes(), rss_bytes()));
        }
    }
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "# memory over {} calls through one worker (waves of {WAVE}; 64 bytes each way per call; {:.0} calls/s of wall time, worker and UEs together)",
        waves * WAVE,
        (waves * WAVE) as f64 / secs
    );
    println!("| calls | live heap, bytes | RSS, bytes |");
    println!("|---|---|---|");
    for (c, heap, rss) in &samples {
        println!("| {c} | {heap} | {rss} |");
    }
    let half = &samples[samples.len() / 2..];
    let spread = |f: &dyn Fn(&(u64, usize, usize)) -> usize| {
        let v: Vec<f64> = half.iter().map(|s| f(s) as f64).collect();
        let max = v.iter().cloned().fold(f64::MIN, f64::max);
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        (max - min) / (v.iter().sum::<f64>() / v.len() as f64)
    };
    println!();
    println!(
        "over the last half: live heap spread {:.4} %, RSS spread {:.4} %",
        100.0 * spread(&|s| s.1),
        100.0 * spread(&|s| s.2)
    );
}
