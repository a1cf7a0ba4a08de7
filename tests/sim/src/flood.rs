//! `flood`: an attacker on the access network, for the flood benchmark and test. Sends, for
//! `--seconds` at up to `--rate` packets a second, one of:
//! - `syn`: TCP SYNs from random sources in `--sources` to random ports of `--ports` at
//!   `--target` (raw IP, so the sources are spoofed; no state kept here either);
//! - `connect`: real kernel TCP connection attempts from this host to those ports (at most
//!   `--in-flight` open at once, each dropped after 200 ms), as a connection flood does;
//! - `garbage`: the data-plane fuzzer's hostile TCP packets aimed at those ports.
//!
//! The target is IPv4 or IPv6 (the sources then an IPv6 prefix). Only meant for namespaces the
//! caller made: the sources are spoofed inside `--sources`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
    /// The AGW address under attack, IPv4 or IPv6.
    #[arg(long)]
    target: IpAddr,
    /// Port range, `FIRST-LAST`.
    #[arg(long, default_value = "40000-49999")]
    ports: String,
    /// Spoofed sources: a prefix, `ADDR/LEN`, of the target's family (syn and garbage
    /// only); without it 198.18.0.0/15, or 2001:db8::/32 for an IPv6 target.
    #[arg(long)]
    sources: Option<String>,
    /// Sources never to use (the real hosts), comma-separated.
    #[arg(long, value_delimiter = ',')]
    avoid: Vec<IpAddr>,
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

/// A prefix as (network, host mask) over 128 bits (IPv4 in the low 32).
fn prefix(text: &str) -> Result<(IpAddr, u128, u128)> {
    let (a, l) = text.split_once('/').context("sources: ADDR/LEN")?;
    let (a, l): (IpAddr, u32) = (a.parse()?, l.parse()?);
    let (bits, value) = match a {
        IpAddr::V4(v) => (32, u32::from(v) as u128),
        IpAddr::V6(v) => (128, u128::from(v)),
    };
    if !(8..=bits).contains(&l) {
        bail!("sources: length 8 to {bits}");
    }
    let all = if bits == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    let host = all >> l;
    Ok((a, value & !host & all, host))
}

/// Where a frame's IP packet starts: after the Ethernet header and any VLAN tags the fuzzer
/// put on it (a raw IP socket sends IP only).
fn ip_start(frame: &[u8]) -> usize {
    let mut at = 12;
    while frame
        .get(at..at + 2)
        .is_some_and(|t| t == [0x81, 0x00] || t == [0x88, 0xa8])
    {
        at += 4;
    }
    at + 2
}

fn address(like: IpAddr, value: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => Ipv4Addr::from(value as u32).into(),
        IpAddr::V6(_) => Ipv6Addr::from(value).into(),
    }
}

pub fn run(a: FloodArgs) -> Result<()> {
    let (first, last) = range(&a.ports)?;
    let default_sources = match a.target {
        IpAddr::V4(_) => "198.18.0.0/15",
        IpAddr::V6(_) => "2001:db8::/32",
    };
    let (like, net, host_mask) = prefix(a.sources.as_deref().unwrap_or(default_sources))?;
    if like.is_ipv4() != a.target.is_ipv4() {
        bail!("sources: of the target's address family");
    }
    let domain = if a.target.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let mut rng = SplitMix64::new(a.seed);
    let mut frames = HostileFrames::new(a.seed, [0; 6], [0; 6]);
    let raw = match a.kind {
        Kind::Syn | Kind::Garbage => Some(
            // IPPROTO_RAW: the packets carry their own IP header (spoofed source).
            Socket::new(domain, Type::RAW, Some(Protocol::from(255)))
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
        let dst = SocketAddr::new(a.target, port);
        let ok = match a.kind {
            Kind::Syn | Kind::Garbage => {
                let src = loop {
                    let r = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
                    let s = address(like, net | (r & host_mask));
                    if !a.avoid.contains(&s) && s != a.target {
                        break s;
                    }
                };
                let flow = Flow {
                    src: (src, 1024 + (rng.next_u64() % 60000) as u16),
                    dst: (a.target, port),
                };
                let frame = match a.kind {
                    Kind::Syn => frames.syn(Some(flow), a.target),
                    _ => frames.frame(Some(flow), a.target, Aim::Anything),
                };
                // A raw IPv6 socket takes the port as a protocol: none.
                let to = SocketAddr::new(a.target, if a.target.is_ipv4() { port } else { 0 });
                match frame.get(ip_start(&frame)..).filter(|ip| ip.len() >= 20) {
                    Some(ip) => raw
                        .as_ref()
                        .context("raw socket")?
                        .send_to(ip, &SockAddr::from(to))
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
                let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
                s.set_nonblocking(true)?;
                match s.connect(&SockAddr::from(dst)) {
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
