//! A T.38 fax endpoint over UDPTL on a kernel UDP socket, plain or over DTLS 1.2 (RFC 7345,
//! dimpl on the wall clock) with its own certificate and the AGW pinned by fingerprint. It
//! sends a page of UDPTL packets with redundancy and checks that the peer's page arrives
//! whole: every packet once, in order. Prints `READY` (DTLS: once the handshake is done) and
//! at the end `SUMMARY sent=.. received=.. bytes_out=.. bytes_in=..`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use dataplane::tls::{Fingerprint, Identity};
use testbed::udptl_packets;

#[derive(Debug, Args)]
pub struct FaxUeArgs {
    /// This endpoint's address.
    #[arg(long)]
    bind: SocketAddr,
    /// Where its packets go (the AGW's termination).
    #[arg(long)]
    to: SocketAddr,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    peer_seed: u64,
    /// UDPTL packets each side sends.
    #[arg(long, default_value_t = 300)]
    packets: u16,
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Send only after the peer's first packet arrived (the side that answers the page).
    #[arg(long)]
    wait_for_peer: bool,
    /// DTLS: this endpoint's certificate (PEM), with --dtls-key and
    /// --dtls-peer-fingerprint.
    #[arg(long, requires_all = ["dtls_key", "dtls_peer_fingerprint"])]
    dtls_cert: Option<String>,
    #[arg(long)]
    dtls_key: Option<String>,
    /// The fingerprint the AGW announced (`sha-256 AB:..`).
    #[arg(long)]
    dtls_peer_fingerprint: Option<String>,
    /// DTLS server (the UE's `a=setup:passive`); client otherwise.
    #[arg(long)]
    dtls_passive: bool,
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// Sizes of the primary IFPs: with two redundant ones, packets of 56 to ~400 bytes.
pub fn ifp_size(seq: u16) -> usize {
    50 + (seq as usize * 37) % 80
}

pub fn run(a: FaxUeArgs) -> Result<()> {
    let sock = UdpSocket::bind(a.bind).with_context(|| format!("binding {}", a.bind))?;
    sock.set_read_timeout(Some(Duration::from_millis(2)))?;
    let page = udptl_packets(a.seed, a.packets, ifp_size);
    let expect = udptl_packets(a.peer_seed, a.packets, ifp_size);
    let mut dtls = match (&a.dtls_cert, &a.dtls_key, &a.dtls_peer_fingerprint) {
        (Some(c), Some(k), Some(f)) => {
            let id = Identity::from_pem_files(c.as_ref(), k.as_ref())?;
            let cert = id
                .dtls_certificate()
                .context("DTLS needs an ECDSA certificate")?;
            let mut d = dimpl::Dtls::new_12(
                std::sync::Arc::new(dimpl::Config::default()),
                (**cert).clone(),
                Instant::now(),
            );
            d.set_active(!a.dtls_passive);
            Some((d, Fingerprint::parse(f)?))
        }
        _ => None,
    };
    let mut ready = dtls.is_none();
    if ready {
        println!("READY");
    }
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut bytes_out, mut bytes_in) = (0u64, 0u64);
    let mut next_send = Instant::now();
    let end = Instant::now() + Duration::from_secs(a.timeout_s);
    let mut buf = vec![0u8; 4096];
    let mut out = vec![0u8; 4096];
    let mut received: Vec<Vec<u8>> = Vec::new();
    while sent < page.len() || got < expect.len() {
        if Instant::now() > end {
            println!("SUMMARY sent={sent} received={got} bytes_out={bytes_out} bytes_in={bytes_in} timeout");
            bail!("page incomplete after {} s", a.timeout_s);
        }
        // Send the next packet when due.
        if ready
            && sent < page.len()
            && Instant::now() >= next_send
            && (!a.wait_for_peer || got > 0)
        {
            let p = &page[sent];
            match dtls.as_mut() {
                None => {
                    sock.send_to(p, a.to)?;
                }
                Some((d, _)) => {
                    d.send_application_data(p)
                        .map_err(|e| anyhow::anyhow!("DTLS send: {e:?}"))?;
                }
            }
            bytes_out += p.len() as u64;
            sent += 1;
            next_send += Duration::from_millis(a.interval_ms);
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => match dtls.as_mut() {
                None => received.push(buf[..n].to_vec()),
                Some((d, _)) => {
                    d.handle_timeout(Instant::now())
                        .map_err(|e| anyhow::anyhow!("DTLS: {e:?}"))?;
                    d.handle_packet(&buf[..n])
                        .map_err(|e| anyhow::anyhow!("DTLS: {e:?}"))?;
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some((d, pin)) = dtls.as_mut() {
            d.handle_timeout(Instant::now())
                .map_err(|e| anyhow::anyhow!("DTLS: {e:?}"))?;
            loop {
                match d.poll_output(&mut out) {
                    dimpl::Output::Packet(p) => {
                        sock.send_to(p, a.to)?;
                    }
                    dimpl::Output::Timeout(_) => break,
                    dimpl::Output::PeerCert(der) if !pin.matches(der) => {
                        bail!("the AGW's certificate does not match {pin}");
                    }
                    dimpl::Output::Connected => {
                        ready = true;
                        next_send = Instant::now();
                        println!("READY dtls=1.2");
                    }
                    dimpl::Output::ApplicationData(p) => received.push(p.to_vec()),
                    dimpl::Output::BufferTooSmall { needed } => out.resize(needed, 0),
                    _ => {}
                }
            }
        }
        for p in received.drain(..) {
            if got >= expect.len() || p != expect[got] {
                let seq = p.get(..2).map(|s| u16::from_be_bytes([s[0], s[1]]));
                bail!(
                    "packet {got} of the peer's page is wrong (sequence {seq:?}, {} bytes)",
                    p.len()
                );
            }
            bytes_in += p.len() as u64;
            got += 1;
        }
    }
    println!("SUMMARY sent={sent} received={got} bytes_out={bytes_out} bytes_in={bytes_in}");
    Ok(())
}
