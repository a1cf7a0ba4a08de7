//! H.248 over TCP (H.248.1 D.2): each message in a TPKT frame, on connections the MGC opens
//! to our listener ([`TcpTransport`]) or that the MG opens to an MGC configured over TCP
//! ([`MgcLink`]). Everything is non-blocking; one `poll` does one round.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use super::{tpkt_frame, TpktReader};
use crate::dispatch::{Dispatcher, Executor, FromPeer};
use crate::transaction::Millis;

/// Largest H.248 message taken on a connection.
const MAX_FRAME: usize = 32 * 1024;

/// One TCP connection carrying H.248: what arrives goes to the dispatcher, answers to
/// requests go back on it.
struct TcpConn {
    stream: TcpStream,
    peer: SocketAddr,
    reader: TpktReader,
}

/// The connection must be closed (the peer closed it, it failed, or it broke the framing).
struct Closed;

impl TcpConn {
    fn new(stream: TcpStream, peer: SocketAddr) -> io::Result<TcpConn> {
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        Ok(TcpConn {
            stream,
            peer,
            reader: TpktReader::new(MAX_FRAME),
        })
    }

    /// Reads what arrived and hands each message to the dispatcher; whether anything came.
    fn serve<E: Executor>(
        &mut self,
        buf: &mut [u8],
        dispatcher: &mut Dispatcher<E>,
        now: Millis,
        from_peer: &mut impl FnMut(FromPeer),
    ) -> Result<bool, Closed> {
        let n = match self.stream.read(buf) {
            Ok(0) => return Err(Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(_) => return Err(Closed),
        };
        let (stream, peer) = (&mut self.stream, self.peer);
        let mut write_failed = false;
        let framed = self.reader.feed(&buf[..n], |msg| {
            dispatcher.datagram(
                peer,
                msg,
                now,
                |_, bytes| {
                    // Answers are our own encodings, never longer than a frame.
                    let mut out = Vec::with_capacity(bytes.len() + 4);
                    if tpkt_frame(&bytes, &mut out).is_err() || stream.write_all(&out).is_err() {
                        write_failed = true;
                    }
                },
                &mut *from_peer,
            );
        });
        if let Err(e) = framed {
            tracing::warn!(%peer, error = %e, "H.248 TCP framing error; closing");
            return Err(Closed);
        }
        if write_failed {
            return Err(Closed);
        }
        Ok(true)
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        let mut out = Vec::with_capacity(bytes.len() + 4);
        tpkt_frame(bytes, &mut out).is_ok() && self.stream.write_all(&out).is_ok()
    }
}

/// Connections from configured MGCs to our listener, each message in a TPKT frame, answers
/// on the connection the request came on.
pub struct TcpTransport {
    listener: TcpListener,
    conns: Vec<TcpConn>,
    max_connections: usize,
    buf: Vec<u8>,
    /// Connections refused (not an MGC, or too many) and closed for a framing error.
    pub refused: u64,
    pub closed: u64,
}

impl TcpTransport {
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(TcpTransport {
            listener,
            conns: Vec::new(),
            max_connections: 16,
            buf: vec![0; 16 * 1024],
            refused: 0,
            closed: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Accepts new MGC connections and serves what arrived on the open ones.
    pub fn poll<E: Executor>(
        &mut self,
        dispatcher: &mut Dispatcher<E>,
        mgcs: &[std::net::IpAddr],
        now: Millis,
        mut from_peer: impl FnMut(FromPeer),
    ) -> io::Result<bool> {
        let mut busy = false;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    busy = true;
                    if !mgcs.contains(&peer.ip()) || self.conns.len() >= self.max_connections {
                        self.refused += 1;
                        tracing::warn!(%peer, "H.248 TCP connection refused");
                        continue;
                    }
                    self.conns.push(TcpConn::new(stream, peer)?);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            match self.conns[i].serve(&mut self.buf, dispatcher, now, &mut from_peer) {
                Ok(b) => {
                    busy |= b;
                    i += 1;
                }
                Err(Closed) => {
                    self.closed += 1;
                    self.conns.swap_remove(i);
                }
            }
        }
        Ok(busy)
    }

    /// Sends one message on the connection from `peer`; false if there is none (or it failed,
    /// and is closed).
    pub fn send_to(&mut self, peer: SocketAddr, bytes: &[u8]) -> bool {
        let Some(i) = self.conns.iter().position(|c| c.peer == peer) else {
            return false;
        };
        if self.conns[i].send(bytes) {
            return true;
        }
        tracing::warn!(%peer, "H.248 TCP send failed; closing the connection");
        self.conns.swap_remove(i);
        false
    }

    pub fn has_peer(&self, peer: SocketAddr) -> bool {
        self.conns.iter().any(|c| c.peer == peer)
    }
}

/// Messages kept for an MGC while its connection is (re)opened; older ones are dropped
/// first (our requests are retransmitted anyway).
const QUEUED: usize = 16;
/// Re-opening a lost connection waits this long at first, doubling up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Millis = 100;
const MAX_BACKOFF: Millis = 5_000;

enum Link {
    /// Closed; opened again at `retry_at`.
    Down {
        retry_at: Millis,
    },
    Connecting(TcpStream),
    Up(TcpConn),
}

/// What a round of an [`MgcLink`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    None,
    Up,
    /// The connection was up and is gone (for registration: loss of contact).
    Lost,
}

/// The MG's own TCP connection to an MGC configured over TCP: opened on the first message,
/// re-opened with back-off when lost, messages queued (bounded) while it is not up.
pub struct MgcLink {
    addr: SocketAddr,
    link: Link,
    backoff: Millis,
    queue: VecDeque<Arc<[u8]>>,
    /// A send found the connection broken: the next round reports it lost.
    lost: bool,
}

impl MgcLink {
    pub fn new(addr: SocketAddr, now: Millis) -> Self {
        MgcLink {
            addr,
            link: Link::Down { retry_at: now },
            backoff: FIRST_BACKOFF,
            queue: VecDeque::new(),
            lost: false,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    /// Sends now if the connection is up, else queues until it is.
    pub fn send(&mut self, bytes: &Arc<[u8]>) {
        if let Link::Up(c) = &mut self.link {
            if c.send(bytes) {
                return;
            }
            tracing::warn!(mgc = %self.addr, "H.248 TCP send failed; reconnecting");
            self.link = Link::Down { retry_at: 0 };
            self.lost = true;
        }
        if self.queue.len() >= QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(Arc::clone(bytes));
    }

    fn start_connect(&mut self, now: Millis) {
        use socket2::{Domain, Protocol, Socket, Type};
        let opened = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .and_then(|s| {
            s.set_nonblocking(true)?;
            match s.connect(&self.addr.into()) {
                Ok(()) => Ok(s),
                Err(e)
                    if e.raw_os_error() == Some(libc_einprogress())
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    Ok(s)
                }
                Err(e) => Err(e),
            }
        });
        match opened {
            Ok(s) => self.link = Link::Connecting(s.into()),
            Err(e) => {
                tracing::debug!(mgc = %self.addr, error = %e, "H.248 TCP connect failed");
                self.retry_later(now);
            }
        }
    }

    fn retry_later(&mut self, now: Millis) {
        self.link = Link::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// One round: (re)connects when due, serves what arrived, flushes the queue once up.
    pub fn poll<E: Executor>(
        &mut self,
        buf: &mut [u8],
        dispatcher: &mut Dispatcher<E>,
        now: Millis,
        from_peer: &mut impl FnMut(FromPeer),
    ) -> LinkEvent {
        match &mut self.link {
            Link::Down { retry_at } => {
                if now >= *retry_at && !self.queue.is_empty() {
                    self.start_connect(now);
                }
                if std::mem::take(&mut self.lost) {
                    return LinkEvent::Lost;
                }
                LinkEvent::None
            }
            Link::Connecting(stream) => {
                match (stream.take_error(), stream.peer_addr()) {
                    (Ok(None), Ok(_)) => {}
                    (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                        return LinkEvent::None
                    }
                    _ => {
                        tracing::debug!(mgc = %self.addr, "H.248 TCP connection refused");
                        self.retry_later(now);
                        return LinkEvent::None;
                    }
                }
                let Link::Connecting(stream) =
                    std::mem::replace(&mut self.link, Link::Down { retry_at: now })
                else {
                    return LinkEvent::None;
                };
                match TcpConn::new(stream, self.addr) {
                    Ok(mut conn) => {
                        tracing::info!(mgc = %self.addr, "H.248 TCP connection to the MGC up");
                        self.backoff = FIRST_BACKOFF;
                        while let Some(m) = self.queue.pop_front() {
                            if !conn.send(&m) {
                                self.retry_later(now);
                                return LinkEvent::None;
                            }
                        }
                        self.link = Link::Up(conn);
                        LinkEvent::Up
                    }
                    Err(_) => {
                        self.retry_later(now);
                        LinkEvent::None
                    }
                }
            }
            Link::Up(conn) => match conn.serve(buf, dispatcher, now, from_peer) {
                Ok(_) => LinkEvent::None,
                Err(Closed) => {
                    tracing::warn!(mgc = %self.addr, "H.248 TCP connection to the MGC lost");
                    self.retry_later(now);
                    LinkEvent::Lost
                }
            },
        }
    }
}

/// EINPROGRESS on Linux: a non-blocking connect under way.
fn libc_einprogress() -> i32 {
    115
}
