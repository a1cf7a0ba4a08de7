//! H.248 text transports: UDP (one message per datagram, answers to the request's source
//! address, H.248.1 D.1) and TCP with TPKT framing (RFC 1006: version 3, reserved 0, 16-bit
//! length including the 4-byte header, H.248.1 D.2), both the connections an MGC opens and
//! those the MG opens to an MGC configured over TCP (`tcp`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::{Dispatcher, Executor, FromPeer};
use crate::registration::{Mgc, MgcTransport};
use crate::transaction::Millis;

mod tcp;

use tcp::LinkEvent;
pub use tcp::{MgcLink, TcpTransport};

/// The MG's UDP endpoint (default port 2944).
pub struct UdpTransport {
    socket: UdpSocket,
    buf: Vec<u8>,
    /// Current receive mode: `None` non-blocking, else the read timeout.
    timeout: Option<Duration>,
    pub send_errors: u64,
}

impl UdpTransport {
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        Ok(UdpTransport {
            socket,
            buf: vec![0; 65_536],
            // A fresh socket blocks without a timeout: force the first `set_wait`.
            timeout: Some(Duration::MAX),
            send_errors: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one message (our own requests go out from the same socket, so the MGC answers
    /// and addresses us there).
    pub fn send_to(&mut self, to: SocketAddr, bytes: &[u8]) {
        if let Err(e) = self.socket.send_to(bytes, to) {
            self.send_errors += 1;
            tracing::warn!(%to, error = %e, "H.248 send failed");
        }
    }

    /// Waits up to `wait` (zero: not at all) for one datagram and hands it to the
    /// dispatcher; returns whether one came.
    pub fn poll<E: Executor>(
        &mut self,
        dispatcher: &mut Dispatcher<E>,
        now: Millis,
        wait: Duration,
        from_peer: impl FnMut(FromPeer),
    ) -> io::Result<bool> {
        self.set_wait(wait)?;
        self.receive(dispatcher, now, from_peer)
    }

    /// Blocking with a timeout, or non-blocking for zero; system calls only on a change.
    fn set_wait(&mut self, wait: Duration) -> io::Result<()> {
        let want = (!wait.is_zero()).then(|| wait.max(Duration::from_millis(1)));
        if self.timeout == want {
            return Ok(());
        }
        match want {
            None => self.socket.set_nonblocking(true)?,
            Some(t) => {
                if self.timeout.is_none() {
                    self.socket.set_nonblocking(false)?;
                }
                self.socket.set_read_timeout(Some(t))?;
            }
        }
        self.timeout = want;
        Ok(())
    }

    fn receive<E: Executor>(
        &mut self,
        dispatcher: &mut Dispatcher<E>,
        now: Millis,
        from_peer: impl FnMut(FromPeer),
    ) -> io::Result<bool> {
        let (n, peer) = match self.socket.recv_from(&mut self.buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        let socket = &self.socket;
        let send_errors = &mut self.send_errors;
        dispatcher.datagram(
            peer,
            &self.buf[..n],
            now,
            |to, bytes: Arc<[u8]>| {
                if let Err(e) = socket.send_to(&bytes, to) {
                    *send_errors += 1;
                    tracing::warn!(%to, error = %e, "H.248 send failed");
                }
            },
            from_peer,
        );
        Ok(true)
    }
}

/// The MG's H.248 endpoints: UDP always; TCP (TPKT) connections the MGC opens when the
/// listener is enabled, and the ones the MG opens to MGCs configured over TCP. Answers go
/// back the way the request came.
pub struct Endpoints {
    pub udp: UdpTransport,
    pub tcp: Option<TcpTransport>,
    links: Vec<MgcLink>,
    buf: Vec<u8>,
}

impl Endpoints {
    pub fn new(udp: UdpTransport) -> Self {
        Endpoints {
            udp,
            tcp: None,
            links: Vec::new(),
            buf: vec![0; 16 * 1024],
        }
    }

    /// A message of ours to an MGC, over the transport it is configured with (a TCP
    /// connection is opened, and the message queued, when there is none yet).
    pub fn send_mgc(&mut self, to: Mgc, bytes: &Arc<[u8]>, now: Millis) {
        match to.transport {
            MgcTransport::Udp => self.udp.send_to(to.addr, bytes),
            MgcTransport::Tcp => self.link(to.addr, now).send(bytes),
        }
    }

    /// An answer (or a retransmission): on the TCP connection with that peer if there is
    /// one, else by UDP.
    pub fn send_to(&mut self, to: SocketAddr, bytes: &[u8]) {
        if let Some(l) = self.links.iter_mut().find(|l| l.addr() == to) {
            l.send(&Arc::from(bytes));
            return;
        }
        if let Some(t) = self.tcp.as_mut() {
            if t.has_peer(to) && t.send_to(to, bytes) {
                return;
            }
        }
        self.udp.send_to(to, bytes);
    }

    fn link(&mut self, addr: SocketAddr, now: Millis) -> &mut MgcLink {
        match self.links.iter().position(|l| l.addr() == addr) {
            Some(i) => &mut self.links[i],
            None => {
                self.links.push(MgcLink::new(addr, now));
                self.links.last_mut().expect("pushed")
            }
        }
    }

    /// Serves the TCP side: new connections from MGCs, messages on every connection, and
    /// the MG's own connections kept up (re-opened with back-off). Returns the MGCs whose
    /// connection was lost this round.
    pub fn poll_tcp<E: Executor>(
        &mut self,
        dispatcher: &mut Dispatcher<E>,
        mgcs: &[std::net::IpAddr],
        now: Millis,
        mut from_peer: impl FnMut(FromPeer),
    ) -> io::Result<Vec<SocketAddr>> {
        if let Some(t) = self.tcp.as_mut() {
            t.poll(dispatcher, mgcs, now, &mut from_peer)?;
        }
        let mut lost = Vec::new();
        for l in &mut self.links {
            if l.poll(&mut self.buf, dispatcher, now, &mut from_peer) == LinkEvent::Lost {
                lost.push(l.addr());
            }
        }
        Ok(lost)
    }

    /// Whether H.248 may arrive over TCP (a listener or a connection of ours): the control
    /// loop then must not wait long on the UDP socket alone.
    pub fn has_tcp(&self) -> bool {
        self.tcp.is_some() || !self.links.is_empty()
    }

    /// Whether the MG's connection to `addr` is up.
    pub fn link_up(&self, addr: SocketAddr) -> bool {
        self.links.iter().any(|l| l.addr() == addr && l.is_up())
    }
}

/// Adds the TPKT header to one message.
pub fn tpkt_frame(message: &[u8], out: &mut Vec<u8>) -> Result<(), TpktError> {
    let total = message.len() + 4;
    if total > u16::MAX as usize {
        return Err(TpktError::TooLong(total));
    }
    out.extend_from_slice(&[3, 0, (total >> 8) as u8, total as u8]);
    out.extend_from_slice(message);
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpktError {
    #[error("TPKT version {0}, expected 3")]
    Version(u8),
    #[error("TPKT length {0} is shorter than its header")]
    Short(usize),
    #[error("message of {0} bytes does not fit a TPKT frame")]
    TooLong(usize),
    #[error("TPKT frame of {0} bytes exceeds the limit of {1}")]
    OverLimit(usize, usize),
}

/// Splits a TCP byte stream into messages. Bounded: at most one frame (of at most `limit`
/// bytes) is buffered; a bad header is an error after which the connection must be closed.
pub struct TpktReader {
    buf: Vec<u8>,
    limit: usize,
}

impl TpktReader {
    pub fn new(limit: usize) -> Self {
        TpktReader {
            buf: Vec::new(),
            limit: limit.min(u16::MAX as usize),
        }
    }

    /// Feeds bytes from the stream; calls `message` for every complete frame.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut message: impl FnMut(&[u8]),
    ) -> Result<(), TpktError> {
        while !data.is_empty() {
            // Complete the header first, then the body, never buffering past one frame.
            let want = if self.buf.len() < 4 {
                4
            } else {
                frame_len(&self.buf)?
            };
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 4 {
                let len = frame_len(&self.buf)?;
                if len > self.limit {
                    return Err(TpktError::OverLimit(len, self.limit));
                }
            }
            if self.buf.len() >= 4 && self.buf.len() == frame_len(&self.buf)? {
                message(&self.buf[4..]);
                self.buf.clear();
            }
        }
        Ok(())
    }
}

fn frame_len(h: &[u8]) -> Result<usize, TpktError> {
    if h[0] != 3 {
        return Err(TpktError::Version(h[0]));
    }
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if len < 4 {
        return Err(TpktError::Short(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Dispatcher;
    use crate::transaction::{ReplyCache, TransactionTimers};
    use h248::ast::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    struct Echo(u32);
    impl Executor for Echo {
        fn execute(
            &mut self,
            _: SocketAddr,
            _: u8,
            req: &TransactionRequest,
        ) -> Option<ReplyResult> {
            self.0 += 1;
            Some(ReplyResult::Actions(vec![ActionReply {
                context: ContextId::Id(req.id),
                properties: vec![],
                replies: vec![],
                error: None,
            }]))
        }
    }

    fn serve_once(mg: &mut UdpTransport, d: &mut Dispatcher<Echo>) {
        assert!(
            mg.poll(d, 0, Duration::from_secs(5), |_| {}).unwrap(),
            "a datagram arrived"
        );
    }

    fn exchange(bind: &str, client_bind: &str) {
        let mut mg = UdpTransport::bind(bind.parse().unwrap()).unwrap();
        let client = UdpSocket::bind(client_bind).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut d = Dispatcher::new(
            Echo(0),
            ReplyCache::new(TransactionTimers::default(), 100),
            MId::Device("imsagw".into()),
            3,
            vec![client.local_addr().unwrap().ip()],
        );
        let to = mg.local_addr().unwrap();
        let mut replies = Vec::new();
        for _ in 0..2 {
            client
                .send_to(b"!/3 <alg.example.net> T=4{C=-{N=t1{OE=1{a/b}}}}", to)
                .unwrap();
            serve_once(&mut mg, &mut d);
            let mut buf = [0u8; 1500];
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, to, "the answer comes from the MG's socket");
            replies.push(buf[..n].to_vec());
        }
        assert_eq!(
            replies[0], replies[1],
            "the retransmission got the identical reply"
        );
        assert_eq!(replies[0], b"!/3 imsagw\nP=4{C=4}");
        assert_eq!(d.executor().0, 1);
    }

    #[test]
    fn udp_over_ipv4_answers_the_source_and_suppresses_duplicates() {
        exchange("127.0.0.1:0", "127.0.0.1:0");
    }

    #[test]
    fn udp_over_ipv6() {
        if UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        }
        exchange("[::1]:0", "[::1]:0");
    }

    #[test]
    fn tcp_with_tpkt_answers_on_the_connection_and_closes_on_bad_frames() {
        let mut mg = TcpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = mg.local_addr().unwrap();
        let mgcs = vec!["127.0.0.1".parse().unwrap()];
        let mut d = Dispatcher::new(
            Echo(0),
            ReplyCache::new(TransactionTimers::default(), 100),
            MId::Device("imsagw".into()),
            3,
            mgcs.clone(),
        );
        let mut client = TcpStream::connect(to).unwrap();
        // The MG is polled from this thread too: never block long in the client's read.
        client
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        client.set_nodelay(true).unwrap();
        let mut stream = Vec::new();
        for tid in [5, 6] {
            tpkt_frame(
                format!("!/3 <alg.example.net> T={tid}{{C=-{{N=t1{{OE=1{{a/b}}}}}}}}").as_bytes(),
                &mut stream,
            )
            .unwrap();
        }
        // Split awkwardly across writes.
        for piece in stream.chunks(7) {
            client.write_all(piece).unwrap();
            client.flush().unwrap();
            let _ = mg.poll(&mut d, &mgcs, 0, |_| {});
        }
        let mut reader = TpktReader::new(4096);
        let mut got = Vec::new();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && std::time::Instant::now() < end {
            let _ = mg.poll(&mut d, &mgcs, 0, |_| {});
            let mut buf = [0u8; 512];
            if let Ok(n) = client.read(&mut buf) {
                reader
                    .feed(&buf[..n], |m| {
                        got.push(String::from_utf8(m.to_vec()).unwrap())
                    })
                    .unwrap();
            }
        }
        assert_eq!(got, vec!["!/3 imsagw\nP=5{C=5}", "!/3 imsagw\nP=6{C=6}"]);
        // A bad header ends that connection.
        client.write_all(&[9, 9, 9, 9]).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while mg.connections() > 0 && std::time::Instant::now() < end {
            let _ = mg.poll(&mut d, &mgcs, 0, |_| {});
        }
        assert_eq!((mg.connections(), mg.closed), (0, 1));
        // A connection from an address that is not an MGC is refused.
        let _c = TcpStream::connect(to).unwrap();
        let others = vec!["198.51.100.1".parse().unwrap()];
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while mg.refused == 0 && std::time::Instant::now() < end {
            let _ = mg.poll(&mut d, &others, 0, |_| {});
        }
        assert_eq!((mg.refused, mg.connections()), (1, 0));
    }

    #[test]
    fn tpkt_frames_split_and_join_across_any_segmentation() {
        let msgs: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("!/3 x T={i}{{C=-{{}}}}").into_bytes())
            .collect();
        let mut stream = Vec::new();
        for m in &msgs {
            tpkt_frame(m, &mut stream).unwrap();
        }
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut r = TpktReader::new(4096);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.feed(piece, |m| got.push(m.to_vec())).unwrap();
            }
            assert_eq!(got, msgs, "chunk size {chunk}");
        }
    }

    #[test]
    fn bad_tpkt_headers_and_oversized_frames_are_errors() {
        let mut r = TpktReader::new(100);
        assert_eq!(r.feed(&[4, 0, 0, 10], |_| {}), Err(TpktError::Version(4)));
        let mut r = TpktReader::new(100);
        assert_eq!(r.feed(&[3, 0, 0, 2], |_| {}), Err(TpktError::Short(2)));
        let mut r = TpktReader::new(100);
        assert_eq!(
            r.feed(&[3, 0, 1, 0], |_| {}),
            Err(TpktError::OverLimit(256, 100))
        );
        let mut out = Vec::new();
        assert_eq!(
            tpkt_frame(&vec![0; 70_000], &mut out),
            Err(TpktError::TooLong(70_004))
        );
    }
}
