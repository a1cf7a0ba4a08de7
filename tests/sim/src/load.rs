//! Many concurrent calls: `load` plays the IMS-ALG for `--calls` calls at once (Add, Add,
//! Modify, Modify each, the seed's proxy mode), has two `farm`s of kernel TCP UEs move a checked
//! byte stream both ways on every call, and releases them all with Subtract, checking each
//! call's statistics. `farm` is one side's UEs: listeners (UE-Y) or connections (UE-X).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use h248::ast::*;
use h248::decode;
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
    echo: bool,
    #[arg(long, default_value_t = 1000)]
    echo_count: u64,
    #[arg(long, default_value_t = 1024)]
    echo_size: usize,
    #[arg(long, default_value_t = 1000)]
    echo_rate: u64,
}

impl EchoArgs {
    /// The same workload, as a farm's arguments.
    fn farm_args(&self) -> Vec<String> {
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

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[arg(long, default_value = "127.0.0.1:2945")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 200)]
    calls: u16,
    #[arg(long, default_value_t = 65536)]
    bytes: u64,
    #[arg(long, default_value = "198.18.100.7")]
    ue_x: Ipv4Addr,
    /// UE-Y's address and first port; call i uses port + i.
    #[arg(long, default_value = "198.18.200.50:3000")]
    ue_y: SocketAddrV4,
    #[arg(long)]
    ue_x_netns: Option<String>,
    #[arg(long)]
    ue_y_netns: Option<String>,
    /// An MG already registered with this MGC address (a later round of a soak): send to it
    /// without waiting for its ServiceChange.
    #[arg(long)]
    mg: Option<SocketAddr>,
    /// First transaction ID (a later round must not reuse IDs within LONG-TIMER).
    #[arg(long, default_value_t = 1000)]
    first_tid: u32,
    /// No MG: UE-X connects to another relay at this address, call i on port + i (the
    /// benchmark's baseline, HAProxy, relaying each port to UE-Y's port + i).
    #[arg(long)]
    proxy: Option<SocketAddrV4>,
    #[command(flatten)]
    workload: EchoArgs,
    /// TLS between UE-X and the relay (the AGW is the TLS server; each side pins the other's
    /// certificate fingerprint, given in the SDP).
    #[arg(long)]
    tls_access: bool,
    /// TLS between the relay and UE-Y (the AGW is the TLS client).
    #[arg(long)]
    tls_core: bool,
    /// With --proxy: the fingerprint of the relay's certificate (with imsagw it comes from
    /// the Add reply).
    #[arg(long)]
    relay_fingerprint: Option<String>,
    /// Every call to UE-Y's one port (and with --proxy to the proxy's one port) instead of
    /// port + i: thousands of calls within a file-descriptor limit. The echo workload only.
    #[arg(long)]
    one_port: bool,
    /// Bulk over TLS from UE-Y to UE-X instead (one way, as over TLS always): the relay
    /// encrypts towards UE-X rather than decrypting from it.
    #[arg(long)]
    reverse: bool,
    /// Bulk carries this application's sample stream (MSRP chat, 2 000 messages, or BFCP,
    /// 20 000 frames), repeated, instead of the byte pattern, on `TCP/MSRP` or `TCP/BFCP`
    /// terminations that imsagw relays aware (or `TCP` ones with --agnostic): what awareness
    /// costs end to end. Plain TCP bulk only; `--bytes` is rounded up to whole repetitions.
    #[arg(long, value_enum)]
    app: Option<App>,
    /// With --app: `TCP` terminations, relayed agnostic.
    #[arg(long)]
    agnostic: bool,
}

impl LoadArgs {
    /// Call `i`'s port above UE-Y's (and the proxy's) first port.
    fn port_offset(&self, i: usize) -> u16 {
        if self.one_port {
            0
        } else {
            i as u16
        }
    }
}

/// The UEs' certificate (one for all), written where the farms can read it.
struct UeIdentity {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    fingerprint: String,
}

impl UeIdentity {
    fn create() -> Result<UeIdentity> {
        let dir = std::env::temp_dir().join(format!("imsagw-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (c, k) = dataplane::tls::Identity::generate_pem("ue.example")?;
        let (cert, key) = (dir.join("ue.crt"), dir.join("ue.key"));
        std::fs::write(&cert, &c)?;
        std::fs::write(&key, &k)?;
        let fingerprint = dataplane::tls::Identity::from_pem(c.as_bytes(), k.as_bytes())?
            .fingerprint(dataplane::tls::HashAlg::Sha256)
            .to_string();
        Ok(UeIdentity {
            cert,
            key,
            fingerprint,
        })
    }

    fn farm_args(&self, relay: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--tls-peer-fingerprint".into(),
            relay.to_string(),
        ]
    }
}

impl Drop for UeIdentity {
    fn drop(&mut self) {
        if let Some(dir) = self.cert.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `sha-256 XX:..` fingerprint in an Add reply's Local.
fn reply_fingerprint(r: &ReplyResult) -> Result<String> {
    let text = format!("{r:?}");
    let at = text
        .find("sha-256 ")
        .context("no a=fingerprint in the Add reply")?;
    let hex: String = text[at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == ':')
        .collect();
    Ok(format!("sha-256 {hex}"))
}

struct Mgc {
    sock: UdpSocket,
    mg: Option<SocketAddr>,
    hdr: String,
    next_tid: u32,
}

impl Mgc {
    /// Answers requests from the MG (ServiceChange, Notify); returns replies to ours.
    fn receive(&mut self, until: Instant) -> Result<Vec<TransactionReply>> {
        let mut buf = vec![0u8; 65536];
        let left = until.saturating_duration_since(Instant::now());
        self.sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
            return Ok(vec![]);
        };
        self.mg = Some(from);
        let msg = decode(&buf[..n]).map_err(|e| anyhow::anyhow!("bad H.248 from the MG: {e}"))?;
        let MessageBody::Transactions(ts) = msg.body else {
            return Ok(vec![]);
        };
        let mut replies = Vec::new();
        for t in ts {
            match t {
                Transaction::Reply(r) => replies.push(r),
                Transaction::Request(r) => {
                    let a = &r.actions[0];
                    let ctx = match a.context {
                        ContextId::Id(c) => c.to_string(),
                        _ => "-".into(),
                    };
                    let body = match &a.commands[0].command {
                        Command::ServiceChange { .. } => "SC=ROOT{SV{V=3}}".to_string(),
                        Command::Notify { terminations, .. } => format!("N={}", terminations[0].0),
                        _ => continue,
                    };
                    let text = format!("{} P={}{{C={ctx}{{{body}}}}}", self.hdr, r.id);
                    self.sock.send_to(text.as_bytes(), from)?;
                }
                _ => {}
            }
        }
        Ok(replies)
    }

    /// Sends many requests at once and returns their replies in order.
    /// At most `WINDOW` outstanding, so a burst of requests does not overrun the MG's
    /// socket buffer (this MGC does not retransmit).
    fn transact_all(&mut self, bodies: &[String]) -> Result<Vec<ReplyResult>> {
        const WINDOW: usize = 64;
        let mg = self.mg.context("no MG yet")?;
        let first = self.next_tid;
        self.next_tid += bodies.len() as u32;
        let mut out: Vec<Option<ReplyResult>> = vec![None; bodies.len()];
        let (mut sent, mut answered) = (0usize, 0usize);
        let end = Instant::now() + Duration::from_secs(30);
        while answered < bodies.len() {
            while sent < bodies.len() && sent - answered < WINDOW {
                let text = format!("{} T={}{{{}}}", self.hdr, first + sent as u32, bodies[sent]);
                self.sock.send_to(text.as_bytes(), mg)?;
                sent += 1;
            }
            if Instant::now() > end {
                bail!("replies missing");
            }
            for r in self.receive(end)? {
                if let Some(slot) =
                    r.id.checked_sub(first)
                        .and_then(|i| out.get_mut(i as usize))
                {
                    if slot.is_none() {
                        answered += 1;
                    }
                    *slot = Some(r.result);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// A farm process, killed when the load gives up before it finished (it would otherwise wait
/// for connections that never come, in a namespace nobody looks at again).
struct Farm(Child);

impl std::ops::Deref for Farm {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Farm {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(netns: &Option<String>, args: &[String], stdin: bool) -> Result<Farm> {
    let exe = std::env::current_exe()?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    Ok(Farm(
        cmd.arg("farm")
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .spawn()?,
    ))
}

fn added(r: &ReplyResult) -> Result<(u32, String, u16)> {
    let ReplyResult::Actions(a) = r else {
        bail!("Add refused: {r:?}")
    };
    if let Some(e) = &a[0].error {
        bail!("Add refused: {} {:?}", e.code, e.text);
    }
    let ContextId::Id(ctx) = a[0].context else {
        bail!("no context")
    };
    let Some(CommandReply::Amms {
        terminations,
        audit: Some(ds),
        ..
    }) = a[0].replies.first()
    else {
        bail!("no termination")
    };
    let text = format!("{ds:?}");
    let port = text
        .split("port: Value(\"")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .and_then(|p| p.parse().ok())
        .context("no port in the Add reply")?;
    Ok((ctx, terminations[0].0.to_string(), port))
}

fn ok(r: &ReplyResult, what: &str) -> Result<()> {
    match r {
        ReplyResult::Actions(a) if a.iter().all(|a| a.error.is_none()) => Ok(()),
        _ => bail!("{what} refused: {r:?}"),
    }
}

/// The calls set up through the MG: (context, T1, T1's port) and (context, T2, T2's port)
/// per call, and the access address UE-X connects to.
/// And the fingerprint of the AGW's certificate when a leg is TLS.
type Calls = (
    Vec<(u32, String, u16)>,
    Vec<(u32, String, u16)>,
    Ipv4Addr,
    Option<String>,
);

/// SDP media of a leg. The farm moves a byte pattern, not MSRP, so the terminations are
/// agnostic (`TCP`, or `TCP/TLS/MSRP` with CEMA: TLS without MSRP awareness), unless it
/// moves an application's stream to terminations aware of it (`TCP/MSRP`, `TCP/BFCP`).
fn media(port: &str, tls: bool, aware: Option<App>, extra: &str) -> String {
    match (tls, aware) {
        (true, _) => format!("m=message {port} TCP/TLS/MSRP *\na=msrp-cema\n{extra}"),
        (false, Some(App::Msrp)) => format!("m=message {port} TCP/MSRP *\n{extra}"),
        (false, Some(App::Bfcp)) => format!("m=application {port} TCP/BFCP *\n{extra}"),
        (false, None) => format!("m=message {port} TCP *\n{extra}"),
    }
}

fn set_up(m: &mut Mgc, a: &LoadArgs, ue: Option<&UeIdentity>) -> Result<Calls> {
    let n = a.calls as usize;
    let t = Instant::now();
    let aware = a.app.filter(|_| !a.agnostic);
    let local = |tls| format!("L{{\nv=0\nc=IN IP4 $\n{}}}", media("$", tls, aware, ""));
    let ue_fp = |tls: bool| match (tls, ue) {
        (true, Some(u)) => format!("a=fingerprint:{}\n", u.fingerprint),
        _ => String::new(),
    };
    let r1 = m.transact_all(
        &(0..n)
            .map(|_| {
                format!(
                    "C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=access}},{}}}}}}}}}",
                    local(a.tls_access)
                )
            })
            .collect::<Vec<_>>(),
    )?;
    let t1: Vec<_> = r1.iter().map(added).collect::<Result<_>>()?;
    let r2 = m.transact_all(
        &t1.iter()
            .map(|(c, _, _)| {
                format!(
                    "C={c}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=core}},{}}}}}}}}}",
                    local(a.tls_core)
                )
            })
            .collect::<Vec<_>>(),
    )?;
    let agw_fp = match (a.tls_access, a.tls_core) {
        (true, _) => Some(reply_fingerprint(&r1[0])?),
        (false, true) => Some(reply_fingerprint(&r2[0])?),
        _ => None,
    };
    let t2: Vec<_> = r2.iter().map(added).collect::<Result<_>>()?;
    let r3 = m.transact_all(
        &t2.iter()
            .enumerate()
            .map(|(i, (c, t, _))| {
                format!(
                    "C={c}{{MF={t}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 {}\n{}}}}}}}}}}}",
                    a.ue_y.ip(),
                    media(
                        &(a.ue_y.port() + a.port_offset(i)).to_string(),
                        a.tls_core,
                        aware,
                        &format!("a=setup:passive\n{}", ue_fp(a.tls_core))
                    )
                )
            })
            .collect::<Vec<_>>(),
    )?;
    for r in &r3 {
        ok(r, "Modify T2")?;
    }
    let r4 = m.transact_all(
        &t1.iter()
            .map(|(c, t, _)| {
                format!(
                    "C={c}{{MF={t}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\nc=IN IP4 {}\n{}}}}}}}}}}}",
                    a.ue_x,
                    media(
                        "9",
                        a.tls_access,
                        aware,
                        &format!("a=setup:active\n{}", ue_fp(a.tls_access))
                    )
                )
            })
            .collect::<Vec<_>>(),
    )?;
    for r in &r4 {
        ok(r, "Modify T1")?;
    }
    println!(
        "{n} calls set up in {:.0} ms ({} transactions)",
        t.elapsed().as_secs_f64() * 1e3,
        4 * n
    );
    Ok((t1, t2, realm_ip(&r1[0])?, agw_fp))
}

/// The calls set up, with UE-Y's farm started where its TLS needs the AGW's fingerprint:
/// after a first Add tells it, before the Modifies (which make T2 connect to it).
fn set_up_around(
    m: &mut Mgc,
    a: &LoadArgs,
    ue: Option<&UeIdentity>,
    farm_y: &mut Option<Farm>,
    spawn_y: &dyn Fn(Option<&str>) -> Result<Farm>,
) -> Result<Calls> {
    if farm_y.is_none() {
        // One throwaway Add for the AGW's fingerprint (the same on every Add).
        let r = m.transact_all(&[format!(
            "C=${{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\n{}}}}}}}}}}}",
            media("$", true, None, "")
        )])?;
        let fp = reply_fingerprint(&r[0])?;
        let (c, _, _) = added(&r[0])?;
        ok(&m.transact_all(&[format!("C={c}{{S=*}}")])?[0], "Subtract")?;
        *farm_y = Some(spawn_y(Some(&fp))?);
    }
    set_up(m, a, ue)
}

pub fn load(a: LoadArgs) -> Result<()> {
    let n = a.calls as usize;
    if a.one_port && !a.workload.echo {
        bail!("--one-port serves the echo workload only");
    }
    let mut mgc = match a.proxy {
        Some(_) => None,
        None => {
            let sock = UdpSocket::bind(a.listen)?;
            let mut m = Mgc {
                hdr: format!("!/3 [{}]:{}", a.listen.ip(), a.listen.port()),
                sock,
                mg: a.mg,
                next_tid: a.first_tid,
            };
            let end = Instant::now() + Duration::from_secs(60);
            while m.mg.is_none() {
                if Instant::now() > end {
                    bail!("no ServiceChange from the MG");
                }
                m.receive(end)?;
            }
            println!("registered the MG at {}", m.mg.unwrap_or(a.listen));
            Some(m)
        }
    };
    let tls = a.tls_access || a.tls_core;
    let ue = if tls {
        Some(UeIdentity::create()?)
    } else {
        None
    };
    if a.app.is_some() && (tls || a.workload.echo) {
        bail!("--app is for plain TCP bulk");
    }
    let payload = Payload::of(a.app);
    let bytes = payload.whole(a.bytes);
    let mut workload: Vec<String> = vec!["--bytes".into(), bytes.to_string()];
    if let Some(app) = a.app {
        workload.push("--sample".into());
        workload.push(app.name().into());
    }
    if tls && !a.workload.echo {
        workload.push("--one-way".into());
        if a.reverse {
            workload.push("--reverse".into());
        }
    }
    workload.extend(a.workload.farm_args());
    let each_way = if a.workload.echo {
        a.workload.echo_count * a.workload.echo_size as u64
    } else {
        bytes
    };
    // UE-Y listens before the calls are set up (T2 connects to it at the Modify); over TLS
    // it needs the AGW's fingerprint first, which an Add reply gives.
    let spawn_y = |relay_fp: Option<&str>| -> Result<Farm> {
        let mut y_args = vec![
            "--listen-base".into(),
            a.ue_y.to_string(),
            "--count".into(),
            a.calls.to_string(),
        ];
        y_args.extend(workload.iter().cloned());
        if a.one_port {
            y_args.push("--one-listener".into());
        }
        if let (true, Some(u), Some(fp)) = (a.tls_core, &ue, relay_fp) {
            y_args.extend(u.farm_args(fp));
        }
        let mut farm_y = spawn(&a.ue_y_netns, &y_args, false)?;
        let mut y_out = BufReader::new(farm_y.stdout.take().context("farm stdout")?).lines();
        match y_out.next() {
            Some(Ok(l)) if l.starts_with("LISTENING") => {
                // The rest of its output, read so that its last lines have somewhere to go.
                std::thread::spawn(move || y_out.for_each(drop));
                Ok(farm_y)
            }
            other => bail!("UE-Y farm did not start: {other:?}"),
        }
    };
    let mut farm_y_slot = None;
    if a.proxy.is_some() || !a.tls_core {
        farm_y_slot = Some(spawn_y(a.relay_fingerprint.as_deref())?);
    }
    let (calls, targets): (Option<Calls>, Vec<SocketAddrV4>) = match (&mut mgc, a.proxy) {
        (Some(m), _) => {
            let c = set_up_around(m, &a, ue.as_ref(), &mut farm_y_slot, &spawn_y)?;
            let targets =
                c.0.iter()
                    .map(|(_, _, p)| SocketAddrV4::new(c.2, *p))
                    .collect();
            (Some(c), targets)
        }
        // Another relay (the benchmark's HAProxy) on consecutive ports, no H.248.
        (None, Some(p)) => (
            None,
            (0..n)
                .map(|i| SocketAddrV4::new(*p.ip(), p.port() + a.port_offset(i)))
                .collect(),
        ),
        (None, None) => bail!("no MGC and no proxy"),
    };
    let mut farm_y = farm_y_slot.context("UE-Y farm")?;
    let relay_fp = match &calls {
        Some(c) => c.3.clone(),
        None => a.relay_fingerprint.clone(),
    };
    let data_start = Instant::now();
    // The data phase's CPU: every core's, and the load generator's own (this process, UE-Y's
    // farm less what it spent starting, UE-X's farm), the call set-up before it left out.
    let cores_start = crate::cpu::Cores::read()?;
    let load_start = crate::cpu::process_ticks("self", true)?
        + crate::cpu::process_ticks(&farm_y.id().to_string(), false)?;
    let mut x_args = vec!["--connect-stdin".into()];
    x_args.extend(workload.iter().cloned());
    if let (true, Some(u)) = (a.tls_access, &ue) {
        x_args.extend(u.farm_args(relay_fp.as_deref().context("the relay's fingerprint")?));
    }
    let mut farm_x = spawn(&a.ue_x_netns, &x_args, true)?;
    {
        let mut stdin = farm_x.stdin.take().context("farm stdin")?;
        for t in &targets {
            writeln!(stdin, "{t}")?;
        }
    }
    let mut x_out = farm_x.stdout.take().context("farm stdout")?;
    let x_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = x_out.read_to_string(&mut text);
        text
    });
    // Serve the MG while the farms move data.
    let end = Instant::now() + Duration::from_secs(120);
    let (mut x_done, mut y_done) = (None, None);
    while x_done.is_none() || y_done.is_none() {
        if Instant::now() > end {
            bail!("the farms did not finish");
        }
        match &mut mgc {
            Some(m) => {
                m.receive(Instant::now() + Duration::from_millis(20))?;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
        if x_done.is_none() {
            x_done = farm_x.try_wait()?;
        }
        if y_done.is_none() {
            y_done = farm_y.try_wait()?;
        }
    }
    if !x_done.is_some_and(|s| s.success()) || !y_done.is_some_and(|s| s.success()) {
        bail!("a farm failed: UE-X {x_done:?}, UE-Y {y_done:?}");
    }
    // From UE-X's first connection to both farms' last checked byte.
    let data_ms = data_start.elapsed().as_secs_f64() * 1e3;
    let cores = crate::cpu::Cores::read()?.since(cores_start);
    let wall_ticks = (data_ms * crate::cpu::USER_HZ as f64 / 1e3).round() as u64;
    let load_ticks = crate::cpu::process_ticks("self", true)? - load_start;
    let x_text = x_reader
        .join()
        .map_err(|_| anyhow::anyhow!("farm reader"))?;
    if let Some(l) = x_text.lines().find(|l| l.starts_with("LATENCY")) {
        println!("{l}");
    }
    // Bulk over TLS goes one way.
    let directions = if tls && !a.workload.echo { 1 } else { 2 };
    println!("{n} calls moved {each_way} bytes ({directions} way(s)) each, every byte checked");
    println!(
        "LOAD DATA ms={data_ms:.1} mbit_s={:.1}",
        (directions * n as u64 * each_way * 8) as f64 / data_ms / 1e3
    );
    println!(
        "LOAD CPU busy_ticks={} ticked_busy_ticks={} wall_ticks={wall_ticks} cores={} \
         steal_ticks={} load_ticks={load_ticks}",
        cores.busy(wall_ticks),
        cores.ticked,
        cores.cores,
        cores.steal
    );
    if let (Some(m), Some((t1, t2, _, _))) = (&mut mgc, &calls) {
        let r5 = m.transact_all(
            &t1.iter()
                .zip(t2)
                .map(|((c, a1, _), (_, a2, _))| {
                    format!("C={c}{{S={a1}{{AT{{SA}}}},S={a2}{{AT{{SA}}}}}}")
                })
                .collect::<Vec<_>>(),
        )?;
        // Octets sent and received on both terminations (not the duration, which may be
        // the same number).
        let want = |item: &str| {
            format!("item: \"{item}\" }}, value: Some(Single(Value {{ text: \"{each_way}\"")
        };
        for (i, r) in r5.iter().enumerate() {
            ok(r, "Subtract")?;
            let text = format!("{r:?}");
            let exact =
                text.matches(&want("os")).count() == 2 && text.matches(&want("or")).count() == 2;
            if directions == 2 && !exact {
                bail!("call {i}: statistics are not {each_way} each way: {text}");
            }
            // Aware legs count the messages (frames) they framed each way; agnostic ones
            // count none.
            let units = payload.units(each_way);
            let framed = |item: &str| {
                text.matches(&format!(
                    "item: \"{item}\" }}, value: Some(Single(Value {{ text: \"{units}\""
                ))
                .count()
            };
            let (received, sent) = match a.app {
                Some(App::Msrp) => ("msgr", "msgs"),
                Some(App::Bfcp) => ("frmr", "frms"),
                None => continue,
            };
            if a.agnostic && text.contains(received) {
                bail!("call {i}: framing statistics from agnostic legs: {text}");
            }
            if !a.agnostic && (framed(received) != 2 || framed(sent) != 2) {
                bail!("call {i}: framing statistics are not {units} each way: {text}");
            }
        }
    }
    println!("LOAD OK calls={n}");
    Ok(())
}

/// The address in an Add reply's Local.
fn realm_ip(r: &ReplyResult) -> Result<Ipv4Addr> {
    let text = format!("{r:?}");
    text.split("address: Value(\"")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .and_then(|p| p.parse().ok())
        .context("no address in the Add reply")
}
