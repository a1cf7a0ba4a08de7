//! A scripted MGC speaking H.248 text over UDP to a running `imsagw`: it answers the
//! registration, sends transactions one at a time and returns their replies, and answers
//! and keeps every Notify that arrives meanwhile.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct TextMgc {
    sock: UdpSocket,
    mg: Option<SocketAddr>,
    tid: u32,
    /// Notify requests received, in order, as text.
    pub notifies: Vec<String>,
}

impl TextMgc {
    /// Binds on loopback; give [`TextMgc::addr`] to imsagw as `--mgc`.
    pub fn bind() -> TextMgc {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        TextMgc {
            sock,
            mg: None,
            tid: 100,
            notifies: Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn header(&self) -> String {
        format!("!/3 [127.0.0.1]:{}", self.addr().port())
    }

    /// Waits for imsagw's ServiceChange and accepts it (version 3).
    pub fn register(&mut self) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < end, "no ServiceChange from imsagw");
            let Some((m, from)) = self.recv() else {
                continue;
            };
            if let Some(tid) = request_tid(&m) {
                self.mg = Some(from);
                let reply = format!("{} P={tid}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}", self.header());
                self.sock.send_to(reply.as_bytes(), from).unwrap();
                return;
            }
        }
    }

    fn recv(&self) -> Option<(String, SocketAddr)> {
        let mut buf = [0u8; 65536];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    }

    /// Takes what arrives for `wait`: Notifies are answered and kept; other requests are
    /// answered with an empty reply.
    pub fn serve(&mut self, wait: Duration) {
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if let Some((m, from)) = self.recv() {
                self.answer(&m, from);
            }
        }
    }

    fn answer(&mut self, m: &str, from: SocketAddr) {
        let Some(tid) = request_tid(m) else {
            return;
        };
        if m.contains("N=") || m.contains("Notify") {
            self.notifies.push(m.to_string());
        }
        let ctx = m
            .split("C=")
            .nth(1)
            .map(|c| c.split('{').next().unwrap_or("-").to_string())
            .unwrap_or_else(|| "-".into());
        let term = m
            .split("N=")
            .nth(1)
            .map(|t| t.split('{').next().unwrap_or("ROOT").to_string())
            .unwrap_or_else(|| "ROOT".into());
        let reply = format!("{} P={tid}{{C={ctx}{{N={term}}}}}", self.header());
        self.sock.send_to(reply.as_bytes(), from).unwrap();
    }

    /// Waits until a Notify containing `what` has arrived; returns it.
    pub fn await_notify(&mut self, what: &str, wait: Duration) -> String {
        let end = Instant::now() + wait;
        loop {
            if let Some(n) = self.notifies.iter().find(|n| n.contains(what)) {
                return n.clone();
            }
            assert!(
                Instant::now() < end,
                "no Notify with {what}: {:?}",
                self.notifies
            );
            self.serve(Duration::from_millis(100));
        }
    }

    /// Sends one transaction (`T=<tid>{BODY}`) and returns its reply.
    pub fn call(&mut self, body: &str) -> String {
        self.tid += 1;
        let mg = self.mg.expect("registered");
        let msg = format!("{} T={}{{{body}}}", self.header(), self.tid);
        self.sock.send_to(msg.as_bytes(), mg).unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < end, "no reply to {body}");
            let Some((r, from)) = self.recv() else {
                continue;
            };
            if r.contains(&format!("P={}", self.tid)) {
                return r;
            }
            self.answer(&r, from);
        }
    }
}

/// The transaction ID of a request (`T=N`), if the message is one.
fn request_tid(m: &str) -> Option<String> {
    let t = m.split("T=").nth(1)?;
    let tid: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!tid.is_empty()).then_some(tid)
}

/// The context and termination an Add reply names.
pub fn added(r: &str) -> (String, String) {
    let ctx = r.split("C=").nth(1).expect(r);
    let ctx = ctx.split('{').next().unwrap().to_string();
    let t = r.split("A=").nth(1).expect(r);
    (ctx, t.split('{').next().unwrap().to_string())
}

/// The port of the first `m=` line of a reply.
pub fn local_port(r: &str) -> u16 {
    let m = r.find("\nm=").expect(r) + 1;
    r[m..].split_whitespace().nth(1).unwrap().parse().expect(r)
}

/// The value of statistic `name` (`pkg/item`) in a reply.
pub fn statistic(r: &str, name: &str) -> Option<u64> {
    let v = r.split(&format!("{name}=")).nth(1)?;
    v.chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}
