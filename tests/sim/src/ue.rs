//! A UE that speaks MSRP over kernel TCP, or over TLS with its own certificate and the AGW
//! pinned by fingerprint: it connects (or accepts one connection), sends its SEND requests,
//! answers the peer's with 200, checks every body the peer sent against the peer's seed and
//! every response against its own requests, then closes (close_notify first under TLS).
//! Prints `ESTABLISHED local=.. remote=..`, `TLS version=..` and at the end `SUMMARY ...`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use dataplane::tls::{Fingerprint, Identity, TlsConfig};
use rustls::pki_types::ServerName;

use crate::msrp::{self, Frame};

#[derive(Debug, Args)]
pub struct UeArgs {
    /// Accept one connection on this address (the TCP server UE).
    #[arg(long, conflicts_with = "connect")]
    listen: Option<SocketAddr>,
    /// Connect to this address (the TCP client UE).
    #[arg(long)]
    connect: Option<SocketAddr>,
    #[arg(long)]
    name: String,
    #[arg(long)]
    peer_name: String,
    /// SEND requests this UE sends.
    #[arg(long, default_value_t = 50)]
    messages: u64,
    /// SEND requests the peer sends.
    #[arg(long, default_value_t = 50)]
    peer_messages: u64,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    peer_seed: u64,
    /// TLS over the connection: this UE's certificate (PEM); with --tls-key and
    /// --tls-peer-fingerprint. The TCP client is the TLS client.
    #[arg(long, requires_all = ["tls_key", "tls_peer_fingerprint"])]
    tls_cert: Option<String>,
    #[arg(long)]
    tls_key: Option<String>,
    /// The fingerprint the AGW announced (`sha-256 AB:..`).
    #[arg(long)]
    tls_peer_fingerprint: Option<String>,
    /// Pause between this UE's SEND requests (0: as fast as the peer reads).
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// Bytes this UE still has to write, bounded so requests are generated as the peer reads.
const OUT_LIMIT: usize = 64 * 1024;

pub fn run(a: UeArgs) -> Result<()> {
    let stream = match (a.listen, a.connect) {
        (Some(l), None) => {
            let listener = TcpListener::bind(l).with_context(|| format!("listening on {l}"))?;
            println!("LISTENING {l}");
            listener.accept()?.0
        }
        (None, Some(c)) => TcpStream::connect_timeout(&c, Duration::from_secs(a.timeout_s))
            .with_context(|| format!("connecting to {c}"))?,
        _ => bail!("give exactly one of --listen and --connect"),
    };
    println!(
        "ESTABLISHED local={} remote={}",
        stream.local_addr()?,
        stream.peer_addr()?
    );
    let mut tls = match (&a.tls_cert, &a.tls_key, &a.tls_peer_fingerprint) {
        (Some(c), Some(k), Some(f)) => {
            let id = Identity::from_pem_files(c.as_ref(), k.as_ref())?;
            let pin = Fingerprint::parse(f)?;
            let server = match stream.peer_addr()? {
                p if a.connect.is_some() => Some(p.ip()),
                _ => None,
            };
            let conn: rustls::Connection = match TlsConfig::new(&id, server, vec![pin])? {
                TlsConfig::Client(cfg, ip) => rustls::ClientConnection::new(
                    Arc::clone(&cfg),
                    ServerName::IpAddress(ip.into()),
                )?
                .into(),
                TlsConfig::Server(cfg) => rustls::ServerConnection::new(Arc::clone(&cfg))?.into(),
            };
            Some(conn)
        }
        _ => None,
    };
    stream.set_nonblocking(true)?;
    let mut stream = stream;
    let end = Instant::now() + Duration::from_secs(a.timeout_s);

    let mut out: Vec<u8> = Vec::with_capacity(OUT_LIMIT * 2);
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut next, mut got_ok, mut got_sends) = (0u64, 0u64, 0u64);
    let (mut bytes_out, mut bytes_in) = (0u64, 0u64);
    let mut answered = vec![false; a.messages as usize];
    let (mut closed_ours, mut peer_eof, mut tls_reported) = (false, false, false);
    let mut next_at = Instant::now();
    loop {
        if Instant::now() > end {
            bail!(
                "timed out: {got_ok}/{} responses, {got_sends}/{} requests",
                a.messages,
                a.peer_messages
            );
        }
        let mut progress = false;
        let handshaking = tls.as_ref().is_some_and(|t| t.is_handshaking());
        if !handshaking && !tls_reported {
            if let Some(t) = &tls {
                println!("TLS version={:?}", t.protocol_version());
            }
            tls_reported = true;
        }
        // Our requests, as the peer takes them (and paced when asked).
        while !handshaking
            && out.len() < OUT_LIMIT
            && next < a.messages
            && Instant::now() >= next_at
        {
            out.extend(msrp::send_request(
                &a.name,
                &a.peer_name,
                next,
                &msrp::body(a.seed, next),
            ));
            next += 1;
            if a.interval_ms > 0 {
                next_at = Instant::now() + Duration::from_millis(a.interval_ms);
            }
        }
        // Out.
        match tls.as_mut() {
            None => {
                if !out.is_empty() {
                    match stream.write(&out) {
                        Ok(n) => {
                            out.drain(..n);
                            bytes_out += n as u64;
                            progress |= n > 0;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e).context("writing"),
                    }
                }
            }
            Some(t) => {
                if !out.is_empty() && !t.is_handshaking() {
                    let n = t.writer().write(&out)?;
                    out.drain(..n);
                    bytes_out += n as u64;
                    progress |= n > 0;
                }
                while t.wants_write() {
                    match t.write_tls(&mut stream) {
                        Ok(n) => progress |= n > 0,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e).context("writing TLS"),
                    }
                }
            }
        }
        // In.
        if !peer_eof {
            match tls.as_mut() {
                None => match stream.read(&mut chunk) {
                    Ok(0) => peer_eof = true,
                    Ok(n) => {
                        inbuf.extend_from_slice(&chunk[..n]);
                        bytes_in += n as u64;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e).context("reading"),
                },
                Some(t) => {
                    match t.read_tls(&mut stream) {
                        Ok(0) => peer_eof = true,
                        Ok(_) => progress = true,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e).context("reading TLS"),
                    }
                    let state = t.process_new_packets().context("TLS from the AGW")?;
                    if state.peer_has_closed() {
                        peer_eof = true;
                    }
                    loop {
                        match t.reader().read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => {
                                inbuf.extend_from_slice(&chunk[..n]);
                                bytes_in += n as u64;
                                progress = true;
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        while let Some(f) = msrp::parse(&mut inbuf).map_err(anyhow::Error::msg)? {
            match f {
                Frame::Send { tid, body } => {
                    let i = got_sends;
                    if tid != msrp::transaction_id(&a.peer_name, i) {
                        bail!("SEND {tid} out of order (expected number {i})");
                    }
                    if body != msrp::body(a.peer_seed, i) {
                        bail!("SEND {tid}: body differs from what {} sent", a.peer_name);
                    }
                    got_sends += 1;
                    out.extend(msrp::ok_response(&a.name, &a.peer_name, &tid));
                }
                Frame::Response { tid, status } => {
                    let i = tid
                        .strip_prefix(a.name.as_str())
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                        .filter(|i| *i < a.messages)
                        .with_context(|| format!("response to a request we did not send: {tid}"))?;
                    if status != 200 || std::mem::replace(&mut answered[i as usize], true) {
                        bail!("response {status} to {tid} (or a second one)");
                    }
                    got_ok += 1;
                }
            }
        }
        let all_done = got_ok == a.messages && got_sends == a.peer_messages;
        if all_done && out.is_empty() && !closed_ours {
            if let Some(t) = tls.as_mut() {
                t.send_close_notify();
                while t.wants_write() {
                    match t.write_tls(&mut stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        Err(e) => return Err(e).context("writing close_notify"),
                    }
                }
            }
            stream.shutdown(Shutdown::Write)?;
            closed_ours = true;
        }
        if closed_ours && peer_eof {
            break;
        }
        if peer_eof && !all_done {
            bail!(
                "the peer closed early: {got_ok}/{} responses, {got_sends}/{} requests",
                a.messages,
                a.peer_messages
            );
        }
        if !progress {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    if !inbuf.is_empty() {
        bail!("{} bytes of an incomplete message at the end", inbuf.len());
    }
    println!(
        "SUMMARY name={} sends_out={} ok_in={} sends_in={} bytes_out={} bytes_in={}",
        a.name, a.messages, got_ok, got_sends, bytes_out, bytes_in
    );
    Ok(())
}
