//! Hosts and traffic for tests and benchmarks: a plain smoltcp TCP host on any [`Port`]
//! (a UE or a core-side peer), and a reproducible byte pattern whose receiver checks every
//! byte's value and position.

use std::net::IpAddr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint};

use dataplane::device::SmolDevice;
use dataplane::tls::{TlsConfig, TlsSession};
use port::Port;

/// A smoltcp host with one interface; sockets are added by the test.
pub struct Host<P: Port> {
    pub device: SmolDevice<P>,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
}

impl<P: Port> Host<P> {
    pub fn new(port: P, address: impl Into<IpCidr>, now: Instant) -> Self {
        let mut device = SmolDevice::new(port);
        let mac = EthernetAddress(device.port().mac());
        let mut cfg = Config::new(HardwareAddress::Ethernet(mac));
        cfg.random_seed = u64::from_be_bytes([
            0, 0, mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5],
        ]);
        let mut iface = Interface::new(cfg, &mut device, now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(address.into());
        });
        Host {
            device,
            iface,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    pub fn add_tcp(&mut self, rx_bytes: usize, tx_bytes: usize) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; rx_bytes]);
        let tx = tcp::SocketBuffer::new(vec![0; tx_bytes]);
        self.sockets.add(tcp::Socket::new(rx, tx))
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Ingress and egress for every socket, then send what was built.
    pub fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.device.flush();
    }

    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }
}

/// The byte at `offset` of stream `stream`: position-dependent, so a lost, duplicated or
/// reordered byte shows up as a mismatch.
#[inline]
pub fn pattern_byte(stream: u64, offset: u64) -> u8 {
    let x = offset.wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Sends `total` bytes of a pattern stream into a TCP socket as room allows.
#[derive(Debug, Clone)]
pub struct PatternSender {
    pub stream: u64,
    pub total: u64,
    pub sent: u64,
    chunk: Vec<u8>,
}

impl PatternSender {
    pub fn new(stream: u64, total: u64) -> Self {
        PatternSender {
            stream,
            total,
            sent: 0,
            chunk: vec![0; 16 * 1024],
        }
    }

    pub fn done(&self) -> bool {
        self.sent == self.total
    }

    /// Writes as much as the socket takes; returns the bytes written.
    pub fn pump(&mut self, s: &mut tcp::Socket) -> usize {
        let mut wrote = 0;
        while self.sent < self.total && s.can_send() {
            let n = (self.total - self.sent).min(self.chunk.len() as u64) as usize;
            fill_pattern(self.stream, self.sent, &mut self.chunk[..n]);
            let Ok(k) = s.send_slice(&self.chunk[..n]) else {
                break;
            };
            if k == 0 {
                break;
            }
            self.sent += k as u64;
            wrote += k;
        }
        wrote
    }

    /// Writes as much as a TLS session over the socket takes once its handshake is done,
    /// sending each record as it goes; returns the plaintext bytes written.
    pub fn pump_tls(&mut self, tls: &mut TlsSession, s: &mut tcp::Socket) -> usize {
        let mut wrote = 0;
        if tls.is_handshaking() {
            return 0;
        }
        while self.sent < self.total && !tls.wants_write() {
            let n = (self.total - self.sent).min(self.chunk.len() as u64) as usize;
            fill_pattern(self.stream, self.sent, &mut self.chunk[..n]);
            let k = tls.write_plaintext(&self.chunk[..n]);
            if k == 0 {
                break;
            }
            self.sent += k as u64;
            wrote += k;
            if tls.transmit(s) == 0 {
                break;
            }
        }
        wrote
    }
}

/// Reads a pattern stream from a TCP socket and checks every byte.
#[derive(Debug, Clone)]
pub struct PatternChecker {
    pub stream: u64,
    pub received: u64,
    /// Offset of the first wrong byte, if any.
    pub first_mismatch: Option<u64>,
    buf: Vec<u8>,
}

impl PatternChecker {
    pub fn new(stream: u64) -> Self {
        PatternChecker {
            stream,
            received: 0,
            first_mismatch: None,
            buf: vec![0; 16 * 1024],
        }
    }

    /// Checks bytes that arrived by some other path (a relay's output, a kernel socket).
    pub fn check(&mut self, data: &[u8]) {
        if self.first_mismatch.is_none() {
            if let Some(i) = data
                .iter()
                .enumerate()
                .position(|(i, b)| *b != pattern_byte(self.stream, self.received + i as u64))
            {
                self.first_mismatch = Some(self.received + i as u64);
            }
        }
        self.received += data.len() as u64;
    }

    /// Drains the socket; returns the bytes read.
    pub fn pump(&mut self, s: &mut tcp::Socket) -> usize {
        let mut read = 0;
        while s.can_recv() {
            let mut buf = std::mem::take(&mut self.buf);
            let n = s.recv_slice(&mut buf).unwrap_or(0);
            self.check(&buf[..n]);
            self.buf = buf;
            if n == 0 {
                break;
            }
            read += n;
        }
        read
    }

    /// Takes the records the socket holds into a TLS session and checks the plaintext;
    /// returns the bytes read.
    pub fn pump_tls(
        &mut self,
        tls: &mut TlsSession,
        s: &mut tcp::Socket,
    ) -> Result<usize, rustls::Error> {
        tls.receive(s)?;
        let mut read = 0;
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            let n = tls.read_plaintext(&mut buf);
            self.check(&buf[..n]);
            self.buf = buf;
            if n == 0 {
                return Ok(read);
            }
            read += n;
        }
    }
}

/// Fills `buf` with the pattern of `stream` from `offset`.
pub fn fill_pattern(stream: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(stream, offset + i as u64);
    }
}

/// Many TCP connections on one interface, each in its own socket set behind the same demux
/// as the worker's, so a test can run tens of thousands of UEs. Every connection sends a
/// pattern stream and checks the one it receives; it closes once it has sent and received
/// everything.
pub struct Farm<P: Port> {
    device: SmolDevice<P>,
    iface: Interface,
    empty: SocketSet<'static>,
    table: dataplane::demux::PortTable,
    conns: Vec<FarmConn>,
    /// Ids of removed connections, reused by the next ones.
    free: Vec<u32>,
    dirty: Vec<u32>,
    wheel: dataplane::wheel::TimerWheel,
    blocked: Vec<u32>,
    /// Close connections once they have sent and received everything (the default).
    pub auto_close: bool,
}

pub struct FarmConn {
    set: SocketSet<'static>,
    handle: SocketHandle,
    pub tx: PatternSender,
    pub rx: PatternChecker,
    /// Bytes expected from the peer.
    pub expect: u64,
    /// TLS over the connection (a client: [`Farm::connect_tls`]), when it has it.
    pub tls: Option<Box<TlsSession>>,
    dirty: bool,
    armed_ms: i64,
}

impl FarmConn {
    pub fn done(&self) -> bool {
        self.tx.done() && self.rx.received == self.expect
    }
}

impl<P: Port> Farm<P> {
    /// The farm's port, for frames that bypass its stack (floods, hostile frames).
    pub fn port_mut(&mut self) -> &mut P {
        self.device.port_mut()
    }

    pub fn new<C: Into<IpCidr> + Copy>(port: P, addresses: &[C], now: Instant) -> Self {
        let mut device = SmolDevice::new(port);
        device.set_auto_rx(false);
        let mac = EthernetAddress(device.port().mac());
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(mac)),
            &mut device,
            now,
        );
        let mut table = dataplane::demux::PortTable::new();
        iface.update_ip_addrs(|a| {
            for c in addresses {
                let _ = a.push((*c).into());
            }
        });
        for c in addresses {
            table.add_ip((*c).into().address().into());
        }
        Farm {
            device,
            iface,
            empty: SocketSet::new(Vec::new()),
            table,
            conns: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            wheel: dataplane::wheel::TimerWheel::new(now.total_millis()),
            blocked: Vec::new(),
            auto_close: true,
        }
    }

    /// Makes connection `from` send `n` more bytes of its stream, to be checked at `to`.
    pub fn push(&mut self, from: u32, to: u32, n: u64) {
        self.conns[from as usize].tx.total += n;
        self.conns[to as usize].expect += n;
        self.mark(from);
    }

    fn add(
        &mut self,
        local: (IpAddr, u16),
        buf: usize,
        tx: PatternSender,
        rx: PatternChecker,
        expect: u64,
    ) -> u32 {
        let id = self.free.pop().unwrap_or(self.conns.len() as u32);
        assert!(
            self.table.bind(local.0, local.1, id),
            "farm port {local:?} taken"
        );
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; buf]),
        );
        s.set_nagle_enabled(false);
        let handle = set.add(s);
        let conn = FarmConn {
            set,
            handle,
            tx,
            rx,
            expect,
            tls: None,
            dirty: false,
            armed_ms: i64::MAX,
        };
        match self.conns.get_mut(id as usize) {
            // A reused id: the old connection may still be on the dirty list.
            Some(old) => {
                let dirty = old.dirty;
                *old = conn;
                old.dirty = dirty;
            }
            None => self.conns.push(conn),
        }
        self.mark(id);
        id
    }

    /// Drops connection `id` (whatever its state: nothing more is sent for it) and frees its
    /// port; its id goes to the next connection.
    pub fn remove<A: Into<IpAddr>>(&mut self, id: u32, local: (A, u16)) {
        self.table.unbind(local.0.into(), local.1);
        let c = &mut self.conns[id as usize];
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(tcp::Socket::new(
            tcp::SocketBuffer::new(Vec::new()),
            tcp::SocketBuffer::new(Vec::new()),
        ));
        c.set = set;
        c.handle = handle;
        c.tx = PatternSender::new(0, 0);
        c.rx = PatternChecker::new(0);
        c.expect = 0;
        c.tls = None;
        c.armed_ms = i64::MAX;
        self.free.push(id);
    }

    /// A connection listening on `local`; sends `send` bytes of stream `out`, expects
    /// `expect` bytes of stream `inp`.
    pub fn listen<A: Into<IpAddr>>(
        &mut self,
        local: (A, u16),
        buf: usize,
        out: u64,
        send: u64,
        inp: u64,
        expect: u64,
    ) -> u32 {
        let (id, ep) = self.with_streams((local.0.into(), local.1), buf, out, send, inp, expect);
        let c = &mut self.conns[id as usize];
        c.set
            .get_mut::<tcp::Socket>(c.handle)
            .listen(ep)
            .expect("listen");
        id
    }

    /// A connection from `local` to `remote`.
    #[allow(clippy::too_many_arguments)]
    pub fn connect<A: Into<IpAddr>, R: Into<IpAddr>>(
        &mut self,
        local: (A, u16),
        remote: (R, u16),
        buf: usize,
        out: u64,
        send: u64,
        inp: u64,
        expect: u64,
    ) -> u32 {
        let (id, ep) = self.with_streams((local.0.into(), local.1), buf, out, send, inp, expect);
        let c = &mut self.conns[id as usize];
        let remote = (IpAddress::from(remote.0.into()), remote.1);
        c.set
            .get_mut::<tcp::Socket>(c.handle)
            .connect(self.iface.context(), remote, ep)
            .expect("connect");
        id
    }

    /// A connection from `local` to `remote` with TLS over it, as a client of `tls`: the
    /// streams go through the session once its handshake is done.
    #[allow(clippy::too_many_arguments)]
    pub fn connect_tls<A: Into<IpAddr>, R: Into<IpAddr>>(
        &mut self,
        local: (A, u16),
        remote: (R, u16),
        buf: usize,
        tls: &TlsConfig,
        out: u64,
        send: u64,
        inp: u64,
        expect: u64,
    ) -> Result<u32, rustls::Error> {
        let session = Box::new(TlsSession::new(tls)?);
        let id = self.connect(local, remote, buf, out, send, inp, expect);
        self.conns[id as usize].tls = Some(session);
        Ok(id)
    }

    /// A new connection sending stream `out` and checking stream `inp`, and its local endpoint.
    fn with_streams(
        &mut self,
        local: (IpAddr, u16),
        buf: usize,
        out: u64,
        send: u64,
        inp: u64,
        expect: u64,
    ) -> (u32, IpListenEndpoint) {
        let id = self.add(
            local,
            buf,
            PatternSender::new(out, send),
            PatternChecker::new(inp),
            expect,
        );
        let ep = IpListenEndpoint {
            addr: Some(IpAddress::from(local.0)),
            port: local.1,
        };
        (id, ep)
    }

    pub fn conn(&self, id: u32) -> &FarmConn {
        &self.conns[id as usize]
    }

    pub fn state(&self, id: u32) -> tcp::State {
        let c = &self.conns[id as usize];
        c.set.get::<tcp::Socket>(c.handle).state()
    }

    pub fn port(&self) -> &P {
        self.device.port()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn mark(&mut self, id: u32) {
        let c = &mut self.conns[id as usize];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
    }

    /// One round; returns whether anything happened.
    pub fn poll(&mut self, now: Instant) -> bool {
        use dataplane::demux::{classify, FrameClass};
        let mut busy = false;
        let mut burst: port::Burst<P::Buf> = port::Burst::new();
        self.device.port_mut().rx_burst(&mut burst);
        for frame in burst.drain(..) {
            busy = true;
            let class = classify(port::PacketBuf::data(&frame));
            let target = match class {
                FrameClass::Tcp { dst, .. } => self.table.get(dst.0, dst.1),
                _ => None,
            };
            match target {
                Some(id) => {
                    let c = &mut self.conns[id as usize];
                    dataplane::legpoll::ingress(
                        &mut self.iface,
                        &mut self.device,
                        &mut c.set,
                        frame,
                        now,
                    );
                    self.mark(id);
                }
                None => {
                    dataplane::legpoll::ingress(
                        &mut self.iface,
                        &mut self.device,
                        &mut self.empty,
                        frame,
                        now,
                    );
                    self.iface
                        .poll_egress(now, &mut self.device, &mut self.empty);
                    if class == FrameClass::Arp {
                        for id in std::mem::take(&mut self.blocked) {
                            self.mark(id);
                        }
                    }
                }
            }
        }
        {
            let (conns, dirty) = (&mut self.conns, &mut self.dirty);
            self.wheel.expire(now.total_millis(), |id, at| {
                let c = &mut conns[id as usize];
                if c.armed_ms == at && !c.dirty {
                    c.dirty = true;
                    dirty.push(id);
                }
            });
        }
        while let Some(id) = self.dirty.pop() {
            busy = true;
            let c = &mut self.conns[id as usize];
            c.dirty = false;
            let s = c.set.get_mut::<tcp::Socket>(c.handle);
            match c.tls.as_deref_mut() {
                None => {
                    c.tx.pump(s);
                    c.rx.pump(s);
                }
                Some(tls) if s.may_send() || s.may_recv() => {
                    // The farm's UEs and the AGW share one test's keys: a failure here is
                    // the AGW's fault, and the test's to report.
                    c.rx.pump_tls(tls, s).expect("farm UE's TLS");
                    c.tx.pump_tls(tls, s);
                    tls.transmit(s);
                }
                Some(_) => {}
            }
            if self.auto_close
                && c.tx.done()
                && s.send_queue() == 0
                && s.may_send()
                && c.rx.received == c.expect
            {
                s.close();
            }
            let out =
                dataplane::legpoll::egress(&mut self.iface, &mut self.device, &mut c.set, now);
            if out.blocked {
                self.blocked.push(id);
            }
            let next = out
                .poll_at
                .map(dataplane::legpoll::ceil_ms)
                .unwrap_or(i64::MAX)
                .max(now.total_millis() + 1);
            if next != i64::MAX && next != c.armed_ms {
                c.armed_ms = next;
                self.wheel.insert(id, next);
            }
        }
        self.device.flush();
        busy
    }
}

/// A DTLS endpoint on one UDP socket of a [`Host`] (the UE of the fax tests and benches):
/// dimpl with its default configuration, on the test's clock.
pub struct DtlsPeer {
    pub dtls: dimpl::Dtls,
    pub handle: SocketHandle,
    /// Where records go (the AGW's leg).
    pub remote: smoltcp::wire::IpEndpoint,
    /// Plaintext datagrams received, in order.
    pub received: Vec<Vec<u8>>,
    pub connected: bool,
    /// The peer's certificate (DER) as the handshake presented it.
    pub peer_cert: Option<Vec<u8>>,
    pub error: Option<String>,
    buf: Vec<u8>,
}

impl DtlsPeer {
    pub fn new(
        cert: dimpl::DtlsCertificate,
        client: bool,
        handle: SocketHandle,
        remote: smoltcp::wire::IpEndpoint,
        now: Instant,
    ) -> Self {
        let cfg = std::sync::Arc::new(dimpl::Config::default());
        let mut dtls = dimpl::Dtls::new_12(cfg, cert, dataplane::dtls::to_std(now));
        dtls.set_active(client);
        DtlsPeer {
            dtls,
            handle,
            remote,
            received: Vec::new(),
            connected: false,
            peer_cert: None,
            error: None,
            buf: vec![0; 4096],
        }
    }

    /// Takes the socket's datagrams, runs timers, sends what dimpl wants sent. Returns
    /// whether anything happened.
    pub fn pump(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        if self.error.is_some() {
            return false;
        }
        let mut sock = sockets.get_mut::<smoltcp::socket::udp::Socket>(self.handle);
        let mut busy = false;
        if let Err(e) = self.dtls.handle_timeout(dataplane::dtls::to_std(now)) {
            self.error = Some(format!("{e:?}"));
            return true;
        }
        let mut datagram = [0u8; 2048];
        // One datagram at a time, each followed by a drain: dimpl's receive queue is short.
        while let Ok((n, _)) = sock.recv_slice(&mut datagram) {
            busy = true;
            if let Err(e) = self.dtls.handle_packet(&datagram[..n]) {
                self.error = Some(format!("{e:?}"));
                return true;
            }
            self.drain(sockets);
            sock = sockets.get_mut::<smoltcp::socket::udp::Socket>(self.handle);
        }
        busy |= self.drain(sockets);
        busy
    }

    /// Sends one datagram of plaintext (once connected).
    pub fn send(&mut self, sockets: &mut SocketSet<'static>, data: &[u8]) -> bool {
        if !self.connected || self.dtls.send_application_data(data).is_err() {
            return false;
        }
        self.drain(sockets);
        true
    }

    fn drain(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        let sock = sockets.get_mut::<smoltcp::socket::udp::Socket>(self.handle);
        let mut busy = false;
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                dimpl::Output::Packet(p) => {
                    busy = true;
                    let _ = sock.send_slice(p, self.remote);
                }
                dimpl::Output::Timeout(_) => break,
                dimpl::Output::Connected => {
                    busy = true;
                    self.connected = true;
                }
                dimpl::Output::PeerCert(c) => self.peer_cert = Some(c.to_vec()),
                dimpl::Output::ApplicationData(d) => {
                    busy = true;
                    self.received.push(d.to_vec());
                }
                dimpl::Output::BufferTooSmall { needed } => self.buf.resize(needed, 0),
                _ => {}
            }
        }
        busy
    }
}

/// A T.38 fax page as UDPTL carries it (ITU-T T.38 9.1): `count` packets, each a 16-bit
/// sequence number, a primary IFP of `size(seq)` bytes with a length prefix, and the two
/// previous IFPs again as redundancy (the error-recovery field). Every packet is unique, so
/// a receiver sees any lost, duplicated or reordered datagram.
pub fn udptl_packets(stream: u64, count: u16, size: impl Fn(u16) -> usize) -> Vec<Vec<u8>> {
    let ifp = |seq: u16| -> Vec<u8> {
        let mut v = vec![0; size(seq)];
        fill_pattern(stream ^ 0x7438, u64::from(seq) << 16, &mut v);
        v
    };
    (0..count)
        .map(|seq| {
            let mut p = Vec::with_capacity(size(seq) * 3 + 16);
            p.extend_from_slice(&seq.to_be_bytes());
            let primary = ifp(seq);
            p.extend_from_slice(&(primary.len() as u16).to_be_bytes());
            p.extend_from_slice(&primary);
            let redundant: Vec<u16> = (1..=2).filter_map(|k| seq.checked_sub(k)).collect();
            p.push(0); // error recovery: secondary IFP packets
            p.push(redundant.len() as u8);
            for r in redundant {
                let old = ifp(r);
                p.extend_from_slice(&(old.len() as u16).to_be_bytes());
                p.extend_from_slice(&old);
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_finds_a_shifted_byte() {
        let mut data = vec![0u8; 1000];
        fill_pattern(3, 0, &mut data);
        let mut ok = PatternChecker::new(3);
        ok.check(&data[..400]);
        ok.check(&data[400..]);
        assert_eq!((ok.received, ok.first_mismatch), (1000, None));
        let mut bad = PatternChecker::new(3);
        bad.check(&data[..400]);
        bad.check(&data[401..]); // one byte lost
        assert!(bad.first_mismatch.is_some());
        let mut other = PatternChecker::new(4);
        other.check(&data);
        assert_eq!(other.first_mismatch, Some(0));
    }
}
