//! A UE that speaks MSRP over kernel TCP: it connects (or accepts one connection), sends its
//! SEND requests, answers the peer's with 200, checks every body the peer sent against the
//! peer's seed and every response against its own requests, then closes.
//! Prints `ESTABLISHED local=.. remote=..` and at the end `SUMMARY ...`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

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
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

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
    stream.set_read_timeout(Some(Duration::from_secs(a.timeout_s)))?;
    let mut writer = stream.try_clone()?;
    let (tx, rx) = sync_channel::<Vec<u8>>(64);
    let write_thread = thread::spawn(move || -> std::io::Result<u64> {
        let mut bytes = 0u64;
        for m in rx {
            writer.write_all(&m)?;
            bytes += m.len() as u64;
        }
        writer.shutdown(Shutdown::Write)?;
        Ok(bytes)
    });
    let sends = {
        let (tx, name, peer, n, seed) = (
            tx.clone(),
            a.name.clone(),
            a.peer_name.clone(),
            a.messages,
            a.seed,
        );
        thread::spawn(move || {
            for i in 0..n {
                if tx
                    .send(msrp::send_request(&name, &peer, i, &msrp::body(seed, i)))
                    .is_err()
                {
                    break;
                }
            }
        })
    };

    let mut reader = stream;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let (mut got_ok, mut got_sends, mut bytes_in) = (0u64, 0u64, 0u64);
    let mut answered = vec![false; a.messages as usize];
    let mut eof = false;
    let mut responder = Some(tx);
    loop {
        while let Some(f) = msrp::parse(&mut buf).map_err(anyhow::Error::msg)? {
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
                    if let Some(r) = &responder {
                        r.send(msrp::ok_response(&a.name, &a.peer_name, &tid))?;
                    }
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
        if got_ok == a.messages && got_sends == a.peer_messages {
            // Everything exchanged: close our side once our writes are out.
            responder = None;
        }
        if eof {
            break;
        }
        let n = reader.read(&mut chunk).context("reading")?;
        if n == 0 {
            eof = true;
        }
        bytes_in += n as u64;
        buf.extend_from_slice(&chunk[..n]);
    }
    drop(responder);
    sends.join().ok();
    let bytes_out = write_thread
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    if !buf.is_empty() {
        bail!("{} bytes of an incomplete message at the end", buf.len());
    }
    println!(
        "SUMMARY name={} sends_out={} ok_in={} sends_in={} bytes_out={} bytes_in={}",
        a.name, a.messages, got_ok, got_sends, bytes_out, bytes_in
    );
    if got_ok != a.messages || got_sends != a.peer_messages {
        bail!(
            "incomplete exchange: {got_ok}/{} responses, {got_sends}/{} requests",
            a.messages,
            a.peer_messages
        );
    }
    Ok(())
}
