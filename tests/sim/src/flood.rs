//! `flood`: an attacker on the access network, for the flood benchmark and test. Sends, for
//! `--seconds` at up to `--rate` packets a second, one of:
//! - `syn`: TCP SYNs from random sources in `--sources` to random ports of `--ports` at
//!   `--target` (raw IPv4, so the sources are spoofed; no state kept here either);
//! - `connect`: real kernel TCP connection attempts from this host to those ports (at most
//!   `--in-flight` open at once, each dropped after 200 ms), as a connection flood does;
//! - `garbage`: the data-plane fuzzer's hostile IPv4/TCP packets aimed at those ports.
//!
//! Only meant for namespaces the caller made: the sources are spoofed inside `--sources`.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testbed::hostile::{Aim, Flow, HostileFrames};
use testbed::rng::SplitMix64;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Syn,
    Connect,
    Garbage,
}

#[derive(Debug, Args)]
pub struct FloodArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    /// The AGW address under attack.
    #[arg(long)]
    target: Ipv4Addr,
    /// Port range, `FIRST-LAST`.
    #[arg(long, default_value = "40000-49999")]
    ports: String,
    /// Spoofed sources: a prefix, `ADDR/LEN` (syn and garbage only).
    #[arg(long, default_value = "198.18.0.0/15")]
    sources: String,
    /// Sources never to use (the real hosts), comma-separated.
    #[arg(long, value_delimiter = ',')]
    avoid: Vec<Ipv4Addr>,
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn range(text: &str) -> Result<(u16, u16)> {
    let (a, b) = text.split_once('-').context("ports: FIRST-LAST")?;
    let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
    if a > b {
        bail!("ports: FIRST > LAST");
    }
    Ok((a, b))
}

fn prefix(text: &str) -> Result<(u32, u32)> {
    let (a, l) = text.split_once('/').context("sources: ADDR/LEN")?;
    let (a, l): (Ipv4Addr, u32) = (a.parse()?, l.parse()?);
    if !(8..=32).contains(&l) {
        bail!("sources: length 8 to 32");
    }
    let mask = u32::MAX << (32 - l);
    Ok((u32::from(a) & mask, !mask))
}

pub fn run(a: FloodArgs) -> Result<()> {
    let (first, last) = range(&a.ports)?;
    let (net, host_mask) = prefix(&a.sources)?;
    let mut rng = SplitMix64::new(a.seed);
    let mut frames = HostileFrames::new(a.seed, [0; 6], [0; 6]);
    let raw = match a.kind {
        Kind::Syn | Kind::Garbage => Some(
            // IPPROTO_RAW: the packets carry their own IPv4 header (spoofed source).
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
                .context("raw socket (needs root)")?,
        ),
        Kind::Connect => None,
    };
    let mut pending: VecDeque<(Instant, Socket)> = VecDeque::new();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let (mut sent, mut failed) = (0u64, 0u64);
    while Instant::now() < end {
        // Pace in 1 ms slices.
        let due = (start.elapsed().as_secs_f64() * a.rate as f64) as u64;
        if sent + failed >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let port = first + (rng.next_u64() % (last - first + 1) as u64) as u16;
        let dst = SocketAddrV4::new(a.target, port);
        let ok = match a.kind {
            Kind::Syn | Kind::Garbage => {
                let src = loop {
                    let s = Ipv4Addr::from(net | (rng.next_u64() as u32 & host_mask));
                    if !a.avoid.contains(&s) && s != a.target {
                        break s;
                    }
                };
                let flow = Flow {
                    src: (src.into(), 1024 + (rng.next_u64() % 60000) as u16),
                    dst: (a.target.into(), port),
                };
                let frame = match a.kind {
                    Kind::Syn => frames.syn(Some(flow), a.target),
                    _ => frames.frame(Some(flow), a.target, Aim::Anything),
                };
                // Without its Ethernet header; a frame too short for one is skipped.
                match frame.get(14..).filter(|ip| ip.len() >= 20) {
                    Some(ip) => raw
                        .as_ref()
                        .context("raw socket")?
                        .send_to(ip, &SockAddr::from(SocketAddr::V4(dst)))
                        .is_ok(),
                    None => continue,
                }
            }
            Kind::Connect => {
                while pending.len() >= a.in_flight
                    || pending
                        .front()
                        .is_some_and(|(t, _)| t.elapsed() > Duration::from_millis(200))
                {
                    pending.pop_front();
                }
                let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
                s.set_nonblocking(true)?;
                match s.connect(&SockAddr::from(SocketAddr::V4(dst))) {
                    Ok(()) => true,
                    Err(e) if e.raw_os_error() == Some(115) => {
                        // EINPROGRESS: the SYN is out; the socket is kept for a while.
                        pending.push_back((Instant::now(), s));
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        if ok {
            sent += 1;
        } else {
            failed += 1;
        }
    }
    println!(
        "FLOOD kind={:?} sent={sent} failed={failed} seconds={:.2}",
        a.kind,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
