//! `farm`: one side's kernel TCP UEs for `load`, listeners (UE-Y) or connections (UE-X),
//! each connection moving a checked byte stream (bulk both ways or one way, the byte pattern
//! or an application's sample stream) or timing echoes.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use testbed::fill_pattern;

use crate::farmtls::{FarmStream, FarmTls};
use crate::payload::{App, Checker, Payload};

#[derive(Debug, Args)]
pub struct FarmArgs {
    /// UE-Y: listen on this address and the next `count - 1` ports.
    #[arg(long)]
    listen_base: Option<SocketAddrV4>,
    #[arg(long, default_value_t = 1)]
    count: u16,
    /// UE-X: connect to the addresses read from standard input, one per line.
    #[arg(long)]
    connect_stdin: bool,
    /// Bytes each side sends on each connection.
    #[arg(long, default_value_t = 65536)]
    bytes: u64,
    #[command(flatten)]
    workload: EchoArgs,
    /// TLS on this side's connections: our certificate and key (PEM) and the fingerprint
    /// of the relay's certificate, pinned. Bulk over TLS goes one way (UE-X to UE-Y, then a
    /// count back); the echo workload is the same as over TCP.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    #[arg(long)]
    tls_peer_fingerprint: Option<String>,
    /// Bulk one way (UE-X to UE-Y, then the count back), as over TLS.
    #[arg(long)]
    one_way: bool,
    /// With --one-way: UE-Y sends and UE-X counts.
    #[arg(long)]
    reverse: bool,
    /// UE-Y: one listener at --listen-base accepting `count` connections (the echo workload
    /// only: bulk checks each call's stream by its port).
    #[arg(long)]
    one_listener: bool,
    /// Bulk carries this application's sample stream, repeated, instead of the byte pattern.
    #[arg(long, value_enum)]
    sample: Option<App>,
}

/// The echo workload instead of bulk: UE-Y echoes; UE-X sends `echo_count` messages of
/// `echo_size` bytes at `echo_rate` a second per connection, each after the last came back or
/// when due, and reports the round-trip times.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    #[arg(long)]
    pub echo: bool,
    #[arg(long, default_value_t = 1000)]
    pub echo_count: u64,
    #[arg(long, default_value_t = 1024)]
    pub echo_size: usize,
    #[arg(long, default_value_t = 1000)]
    pub echo_rate: u64,
}

impl EchoArgs {
    /// The same workload, as a farm's arguments.
    pub fn farm_args(&self) -> Vec<String> {
        if !self.echo {
            return vec![];
        }
        vec![
            "--echo".into(),
            "--echo-count".into(),
            self.echo_count.to_string(),
            "--echo-size".into(),
            self.echo_size.to_string(),
            "--echo-rate".into(),
            self.echo_rate.to_string(),
        ]
    }
}

fn tcp_ready(s: &TcpStream) -> Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_nodelay(true)?;
    Ok(())
}

/// Bulk one way, the sending side (UE-X, or UE-Y with --reverse): `bytes` of the pattern,
/// then the count the other side received.
fn one_way_send(mut s: FarmStream, payload: &Payload, call: u64, bytes: u64) -> Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = ((bytes - sent) as usize).min(buf.len());
        payload.fill(2 * call, sent, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    s.flush()?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)?;
    if u64::from_be_bytes(count) != bytes {
        bail!(
            "call {call}: UE-Y counted {} of {bytes}",
            u64::from_be_bytes(count)
        );
    }
    s.close_write()?;
    Ok(())
}

/// Bulk one way, the receiving side: check `bytes` of the pattern, answer with the count.
fn one_way_receive(mut s: FarmStream, payload: Payload, call: u64, bytes: u64) -> Result<()> {
    let mut check = Checker::new(payload, 2 * call);
    let mut buf = vec![0u8; 16 * 1024];
    while check.received < bytes {
        let n = s.read(&mut buf[..((bytes - check.received) as usize).min(16 * 1024)])?;
        if n == 0 {
            break;
        }
        check.check(&buf[..n]);
    }
    if check.received != bytes || check.first_mismatch.is_some() {
        bail!(
            "call {call}: received {} of {bytes}, first wrong byte {:?}",
            check.received,
            check.first_mismatch
        );
    }
    s.write_all(&bytes.to_be_bytes())?;
    s.flush()?;
    let mut rest = [0u8; 16];
    while s.read(&mut rest)? != 0 {}
    s.close_write()?;
    Ok(())
}

/// UE-Y's side of the echo workload: everything back, until the UE-X side closes.
fn echo_back(mut s: FarmStream) -> Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n])?;
        s.flush()?;
    }
    s.close_write()?;
    Ok(())
}

/// UE-X's side of the echo workload: round-trip times in microseconds.
fn echo_timed(
    mut s: FarmStream,
    call: u64,
    count: u64,
    size: usize,
    rate: u64,
) -> Result<Vec<f64>> {
    let mut msg = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for k in 0..count {
        let due = start + Duration::from_secs_f64(k as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        fill_pattern(2 * call, k * size as u64, &mut msg);
        let t = Instant::now();
        s.write_all(&msg)?;
        s.flush()?;
        s.read_exact(&mut back)?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
        if back != msg {
            bail!("call {call}: echo {k} came back different");
        }
    }
    s.close_write()?;
    let mut rest = [0u8; 16];
    if s.read(&mut rest)? != 0 {
        bail!("call {call}: bytes after the last echo");
    }
    Ok(rtts)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Stream `2 i` goes from UE-X to UE-Y on call `i`, `2 i + 1` back. A side shuts its
/// write half only once it has sent and received everything, so the second FIN of a call
/// reaches the relay after every byte has crossed it: HAProxy 2.6 (the bench's baseline),
/// given a FIN from each side while one direction still had bytes in its socket, reset
/// both sockets and dropped those bytes (about one run in ten of `bench.sh`'s bulk).
fn exchange(mut s: TcpStream, payload: Payload, call: u64, x_side: bool, bytes: u64) -> Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let (out_stream, in_stream) = if x_side {
        (2 * call, 2 * call + 1)
    } else {
        (2 * call + 1, 2 * call)
    };
    let mut w = s.try_clone()?;
    let sending = payload.clone();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        while sent < bytes {
            let n = ((bytes - sent) as usize).min(buf.len());
            sending.fill(out_stream, sent, &mut buf[..n]);
            w.write_all(&buf[..n])?;
            sent += n as u64;
        }
        Ok(())
    });
    let mut check = Checker::new(payload, in_stream);
    let mut buf = vec![0u8; 16 * 1024];
    while check.received < bytes {
        let want = ((bytes - check.received) as usize).min(buf.len());
        let n = s.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        check.check(&buf[..n]);
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    if check.received != bytes || check.first_mismatch.is_some() {
        bail!(
            "call {call}: received {} of {bytes}, first wrong byte {:?}",
            check.received,
            check.first_mismatch
        );
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut rest = [0u8; 16];
    if s.read(&mut rest)? != 0 {
        bail!("call {call}: bytes after the {bytes} expected");
    }
    Ok(())
}

pub fn farm(a: FarmArgs) -> Result<()> {
    let tls = match (&a.tls_cert, &a.tls_key, &a.tls_peer_fingerprint) {
        (Some(c), Some(k), Some(f)) => Some(FarmTls::load(c, k, f)?),
        (None, None, None) => None,
        _ => bail!("TLS needs --tls-cert, --tls-key and --tls-peer-fingerprint"),
    };
    let payload = Payload::of(a.sample);
    let mut threads = Vec::new();
    if let (Some(base), true) = (a.listen_base, a.one_listener) {
        if !a.workload.echo {
            bail!("--one-listener serves the echo workload only");
        }
        // A backlog for every call (the kernel caps it at net.core.somaxconn): the relay's
        // connections arrive together at the Modify, faster than one thread accepts them.
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        sock.bind(&SocketAddr::V4(base).into())
            .with_context(|| format!("listening on {base}"))?;
        sock.listen(i32::from(a.count))?;
        let l: TcpListener = sock.into();
        println!("LISTENING {}", a.count);
        for _ in 0..a.count {
            let (s, _) = l.accept()?;
            let tls = tls.clone();
            threads.push(std::thread::spawn(move || -> Result<Vec<f64>> {
                tcp_ready(&s)?;
                echo_back(FarmStream::new(s, tls.as_ref(), false)?)?;
                Ok(vec![])
            }));
        }
    } else if let Some(base) = a.listen_base {
        let mut listeners = Vec::new();
        for i in 0..a.count {
            let addr = SocketAddrV4::new(*base.ip(), base.port() + i);
            listeners
                .push(TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?);
        }
        println!("LISTENING {}", a.count);
        for (i, l) in listeners.into_iter().enumerate() {
            let (bytes, echo, one_way, tls) = (a.bytes, a.workload.echo, a.one_way, tls.clone());
            let (reverse, payload) = (a.reverse, payload.clone());
            threads.push(std::thread::spawn(move || -> Result<Vec<f64>> {
                let (s, _) = l.accept()?;
                // One descriptor per call, not two, while the call lasts.
                drop(l);
                tcp_ready(&s)?;
                let call = i as u64;
                match (echo, one_way) {
                    (true, _) => echo_back(FarmStream::new(s, tls.as_ref(), false)?)?,
                    (false, true) if reverse => one_way_send(
                        FarmStream::new(s, tls.as_ref(), false)?,
                        &payload,
                        call,
                        bytes,
                    )?,
                    (false, true) => one_way_receive(
                        FarmStream::new(s, tls.as_ref(), false)?,
                        payload,
                        call,
                        bytes,
                    )?,
                    (false, false) => exchange(s, payload, call, false, bytes)?,
                }
                Ok(vec![])
            }));
        }
    } else if a.connect_stdin {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let to: SocketAddr = line?.trim().parse().context("address")?;
            let (bytes, echo, one_way, tls) = (a.bytes, a.workload.echo, a.one_way, tls.clone());
            let (reverse, payload) = (a.reverse, payload.clone());
            let w = &a.workload;
            let (count, size, rate) = (w.echo_count, w.echo_size, w.echo_rate);
            threads.push(std::thread::spawn(move || -> Result<Vec<f64>> {
                let s = TcpStream::connect_timeout(&to, Duration::from_secs(20))
                    .with_context(|| format!("connecting to {to}"))?;
                tcp_ready(&s)?;
                match (echo, one_way) {
                    (true, _) => echo_timed(
                        FarmStream::new(s, tls.as_ref(), true)?,
                        i as u64,
                        count,
                        size,
                        rate,
                    ),
                    (false, true) if reverse => {
                        let s = FarmStream::new(s, tls.as_ref(), true)?;
                        one_way_receive(s, payload, i as u64, bytes)?;
                        Ok(vec![])
                    }
                    (false, true) => {
                        let s = FarmStream::new(s, tls.as_ref(), true)?;
                        one_way_send(s, &payload, i as u64, bytes)?;
                        Ok(vec![])
                    }
                    (false, false) => {
                        exchange(s, payload, i as u64, true, bytes)?;
                        Ok(vec![])
                    }
                }
            }));
        }
    } else {
        bail!("give --listen-base or --connect-stdin");
    }
    let n = threads.len();
    let mut failed = 0;
    let mut rtts = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(r)) => rtts.extend(r),
            Ok(Err(e)) => {
                eprintln!("farm: {e:#}");
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    if failed > 0 {
        bail!("{failed} of {n} connections failed");
    }
    if !rtts.is_empty() {
        rtts.sort_by(f64::total_cmp);
        println!(
            "LATENCY echoes={} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
            rtts.len(),
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.99),
            percentile(&rtts, 0.999),
            rtts[rtts.len() - 1]
        );
    }
    println!("FARM OK connections={n}");
    Ok(())
}
