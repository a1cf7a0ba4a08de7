//! `imsagw`: the IMS Access Gateway media plane, and the composition root of its crates.
//!
//! It reads the configuration and the command line, initialises DPDK (`dpdk`), starts one
//! pinned poll-mode worker (`dataplane`) per worker core on its port queue, and runs the
//! control plane (`control`) on the control thread; it serves `imsagw status`, Prometheus
//! metrics and packet captures. Protocol logic lives in the libraries: nothing here decides
//! what a command or a frame means.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::logging::LogFormat;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dataplane::clock::{Clock, MonotonicClock};
use dataplane::echo::{EchoConfig, EchoService};
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

mod afxdp;
mod config;
mod heap;
mod idle;
mod logging;
mod metrics;
mod networks;
mod run;

#[derive(Debug, Parser)]
#[command(
    name = "imsagw",
    version,
    about = "IMS Access Gateway media plane (TS 29.334 Iq)"
)]
struct Cli {
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring-up check of a DPDK port: a TCP echo service (plus ARP and ping) on one smoltcp
    /// interface. Runs until SIGINT or SIGTERM.
    Echo(EchoArgs),
    /// Run the gateway: DPDK, the workers and the H.248 control thread. Stops on SIGINT or
    /// SIGTERM (ServiceChange Forced to the MGC first); SIGHUP reloads the log level.
    Run(Box<run::RunArgs>),
    /// Print the state of a running imsagw (registration, contexts, workers, counters).
    Status(run::StatusArgs),
    /// Capture packets of a termination, a port or everything into a pcapng file.
    Capture(run::CaptureArgs),
    /// H.248 tools for operators.
    #[command(subcommand)]
    H248(H248Command),
}

#[derive(Debug, Subcommand)]
enum H248Command {
    /// Decode H.248 text messages (one per FILE, `-` for standard input) and print each
    /// re-encoded. A message that does not decode is reported as
    /// `FILE: offset N: <reason> (H.248 error X)` on standard error, and the exit status is 2.
    Decode(DecodeArgs),
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// Print in pretty form (the default).
    #[arg(long, conflicts_with = "compact")]
    pretty: bool,
    /// Print in compact form.
    #[arg(long)]
    compact: bool,
    /// Files holding one message each; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Address of the echo service, with prefix length.
    #[arg(long, default_value = "198.18.0.2/24", value_parser = parse_cidr)]
    address: Ipv4Cidr,
    /// Default gateway, if the clients are not on the same subnet.
    #[arg(long)]
    gateway: Option<Ipv4Address>,
    /// TCP port of the echo service.
    #[arg(long, default_value_t = 7)]
    tcp_port: u16,
    /// DPDK device to use (as EAL names it).
    #[arg(long, default_value = "net_tap0")]
    device: String,
    /// Per-connection socket buffer, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer_bytes: usize,
    /// mbufs in the pool.
    #[arg(long, default_value_t = 8191)]
    mbufs: u32,
    /// DPDK EAL arguments. The default runs without a NIC or hugepages on a tap interface
    /// named imsagw0.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
    let ip: Ipv4Address = ip.parse().map_err(|e| format!("{ip:?}: {e}"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{len:?} is not a prefix length"))?;
    Ok(Ipv4Cidr::new(ip, len))
}

fn default_eal() -> Vec<String> {
    Eal::no_nic_args(&["net_tap0,iface=imsagw0"])
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    Ok(stop)
}

fn echo(args: EchoArgs) -> Result<()> {
    let eal_args = if args.eal.is_empty() {
        default_eal()
    } else {
        args.eal.clone()
    };
    let eal = Eal::init(&eal_args).context("initialising DPDK")?;
    let pool = Mempool::create(
        eal,
        &MempoolConfig::for_device("echo_pool", args.mbufs, &args.device),
    )
    .context("creating the mbuf pool")?;
    let port_id = EthDev::port_by_name(eal, &args.device)
        .with_context(|| format!("finding DPDK device {:?}", args.device))?;
    let dev = EthDev::start(eal, port_id, &EthDevConfig::default(), Arc::clone(&pool))
        .context("starting the port")?;
    let port = dev.queue(0)?;
    let stop = stop_flag()?;

    let clock = MonotonicClock::new();
    let cfg = EchoConfig {
        address: args.address,
        gateway: args.gateway,
        tcp_port: args.tcp_port,
        listeners: 4,
        buffer_bytes: args.buffer_bytes,
    };
    let mut service = EchoService::new(port, &cfg, clock.now());
    tracing::info!(address = %args.address, tcp_port = args.tcp_port, device = %args.device, mac = ?dev.mac(), "echo service ready");
    while !stop.load(Ordering::Relaxed) {
        service.poll(clock.now());
    }
    let stats = service.stats();
    let device = service.device_stats();
    drop(service);
    // An AF_XDP port keeps the mbufs of its fill ring: the pool's baseline.
    let held = dev.held_by_driver();
    drop(dev);
    tracing::info!(
        connections = stats.connections,
        bytes_echoed = stats.bytes_echoed,
        rx_frames = device.rx_frames,
        tx_frames = device.tx_frames,
        mbufs_in_use = pool.in_use().saturating_sub(held),
        mbufs_held_by_port = held,
        "echo service stopped"
    );
    if pool.in_use() != held {
        bail!(
            "{} mbufs not returned to the pool",
            pool.in_use().saturating_sub(held)
        );
    }
    Ok(())
}

fn h248_decode(args: DecodeArgs) -> Result<std::process::ExitCode> {
    use std::io::{Read, Write};
    let form = if args.compact {
        h248::Form::Compact
    } else {
        h248::Form::Pretty
    };
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in &args.files {
        let bytes = if file == "-" {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .context("reading standard input")?;
            b
        } else {
            std::fs::read(file).with_context(|| format!("reading {file}"))?
        };
        match h248::decode(&bytes) {
            Ok(msg) => {
                let text = h248::encode(&msg, form);
                writeln!(out, "{text}")?;
            }
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let reload = logging::init(cli.log_format);
    match cli.command {
        Command::Run(a) => run::run(*a, reload).map(|()| std::process::ExitCode::SUCCESS),
        Command::Status(a) => run::status(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Capture(a) => run::capture(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Echo(a) => echo(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::H248(H248Command::Decode(a)) => h248_decode(a),
    }
}
