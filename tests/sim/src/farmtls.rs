//! The farm's connections, plain TCP or TLS (rustls, the certificate of the other end pinned
//! by fingerprint as the AGW's SDP gives it): one blocking stream per connection thread.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use dataplane::tls::{Fingerprint, Identity, TlsConfig};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

/// What a farm needs to speak TLS: its own identity and the fingerprint it pins.
#[derive(Clone)]
pub struct FarmTls {
    identity: Arc<Identity>,
    pin: Fingerprint,
}

impl FarmTls {
    pub fn load(cert: &Path, key: &Path, pin: &str) -> Result<FarmTls> {
        Ok(FarmTls {
            identity: Arc::new(Identity::from_pem_files(cert, key)?),
            pin: Fingerprint::parse(pin)?,
        })
    }
}

pub enum FarmStream {
    Plain(TcpStream),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl FarmStream {
    /// `s` as it is, or wrapped in TLS: the connecting side is the TLS client.
    pub fn new(s: TcpStream, tls: Option<&FarmTls>, connecting: bool) -> Result<FarmStream> {
        let Some(t) = tls else {
            return Ok(FarmStream::Plain(s));
        };
        let server = connecting
            .then(|| s.peer_addr())
            .transpose()?
            .map(|a| a.ip());
        Ok(
            match TlsConfig::new(&t.identity, server, vec![t.pin.clone()])? {
                TlsConfig::Client(cfg, ip) => FarmStream::Client(Box::new(StreamOwned::new(
                    ClientConnection::new(cfg, ServerName::IpAddress(ip.into()))
                        .context("TLS client")?,
                    s,
                ))),
                TlsConfig::Server(cfg) => FarmStream::Server(Box::new(StreamOwned::new(
                    ServerConnection::new(cfg).context("TLS server")?,
                    s,
                ))),
            },
        )
    }

    /// No more bytes from us: a FIN, or TLS's close_notify.
    pub fn close_write(&mut self) -> std::io::Result<()> {
        match self {
            FarmStream::Plain(s) => s.shutdown(Shutdown::Write),
            FarmStream::Client(s) => {
                s.conn.send_close_notify();
                s.flush()
            }
            FarmStream::Server(s) => {
                s.conn.send_close_notify();
                s.flush()
            }
        }
    }
}

impl Read for FarmStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = match self {
            FarmStream::Plain(s) => s.read(buf),
            FarmStream::Client(s) => s.read(buf),
            FarmStream::Server(s) => s.read(buf),
        };
        match r {
            // A relay may close the TCP connection without its own close_notify once ours
            // went through: the end of the stream either way.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

impl Write for FarmStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            FarmStream::Plain(s) => s.write(buf),
            FarmStream::Client(s) => s.write(buf),
            FarmStream::Server(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FarmStream::Plain(s) => s.flush(),
            FarmStream::Client(s) => s.flush(),
            FarmStream::Server(s) => s.flush(),
        }
    }
}
