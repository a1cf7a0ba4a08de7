//! The IMS-ALG side of the seed's reference flow (TR 29.828 Annex y, steps 1 to 25) over
//! H.248 text on UDP: it waits for the MG's ServiceChange, answers it, drives Add, Add,
//! Modify, Modify, waits for the Notify of step 24, lets the two UEs exchange MSRP through
//! the AGW, and ends with Subtract, checking the statistics against what the UEs counted.
//! Each numbered step is printed with the H.248 message that carries it.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use h248::ast::*;
use h248::sdp::{SdpLine, SdpValue};
use h248::{decode, encode, Form};

#[derive(Debug, Args)]
pub struct AlgArgs {
    /// Where this ALG listens for the MG (the MG's `--mgc`).
    #[arg(long, default_value = "127.0.0.1:2945")]
    listen: SocketAddr,
    /// UE-X's address (the TCP client, on the access side); an IPv6 address makes T1 an
    /// IPv6 termination (`c=IN IP6`).
    #[arg(long, default_value = "198.18.100.7")]
    ue_x: IpAddr,
    /// UE-Y's address and MSRP port (the TCP server, on the core side), IPv4 or IPv6.
    #[arg(long, default_value = "198.18.200.50:2855")]
    ue_y: SocketAddr,
    /// Run UE-X in this network namespace.
    #[arg(long)]
    ue_x_netns: Option<String>,
    /// Run UE-Y in this network namespace.
    #[arg(long)]
    ue_y_netns: Option<String>,
    /// MSRP SEND requests each UE sends.
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// The TLS variant (TR 29.828 y.3): TLS between UE-X and the AGW (TCP/TLS/MSRP on T1,
    /// fingerprints exchanged in the H.248 descriptors), plain TCP towards UE-Y.
    #[arg(long)]
    tls: bool,
    /// After the Notify of step 24, the IMS-ALG goes away for a while and comes back (an MGC
    /// restart) while the UEs keep exchanging, paced; imsagw must notice (it/ito, armed after
    /// registration), come back with ServiceChange Disconnected, and keep the call.
    #[arg(long)]
    mgc_restart: bool,
    /// A T.38 fax call instead (TS 23.334 e2ae with RFC 7345): plain UDPTL towards UE-Y on
    /// the core side, UDPTL over DTLS towards UE-X, a fax page each way.
    #[arg(long, conflicts_with_all = ["tls", "mgc_restart"])]
    fax: bool,
    /// Fax: UDPTL packets each UE sends.
    #[arg(long, default_value_t = 300)]
    fax_packets: u16,
    /// Answer the MG's ServiceChange, audit its capabilities, and stop (a smoke test of an
    /// installed MG).
    #[arg(long)]
    register_only: bool,
    /// Seconds to wait for each step.
    #[arg(long, default_value_t = 20)]
    timeout_s: u64,
}

struct Alg {
    sock: UdpSocket,
    mid: String,
    mg: Option<SocketAddr>,
    next_tid: u32,
    notifies: Vec<(u32, Vec<(String, String)>)>,
    timeout: Duration,
}

fn step(n: &str, what: &str) {
    println!("\n== {n}. {what}");
}

fn show(dir: &str, text: &str) {
    println!("   {dir}");
    for l in text.lines() {
        println!("   | {l}");
    }
}

impl Alg {
    /// Waits for a message from the MG.
    fn recv(&mut self, until: Instant) -> Result<Message> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no H.248 message from the MG in time");
            }
            self.sock.set_read_timeout(Some(left))?;
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            if self.mg.is_some_and(|m| m != from) {
                continue;
            }
            let msg = decode(&buf[..n]).map_err(|e| anyhow::anyhow!("MG sent bad H.248: {e}"))?;
            self.mg = Some(from);
            return Ok(msg);
        }
    }

    fn send_text(&mut self, text: &str) -> Result<()> {
        let to = self.mg.context("no MG yet")?;
        self.sock.send_to(text.as_bytes(), to)?;
        Ok(())
    }

    /// Answers a request from the MG (ServiceChange, Notify) and remembers Notifies.
    fn serve_request(&mut self, req: &TransactionRequest, print: bool) -> Result<()> {
        let mut replies = Vec::new();
        for a in &req.actions {
            for c in &a.commands {
                match &c.command {
                    Command::ServiceChange { .. } => {
                        replies.push(format!("Context = {} {{ ServiceChange = ROOT {{ Services {{ Version = 3 }} }} }}", ctx_text(a.context)));
                    }
                    Command::Notify {
                        terminations,
                        observed,
                        ..
                    } => {
                        let RequestId::Id(rid) = observed.request_id else {
                            continue;
                        };
                        let events = observed
                            .events
                            .iter()
                            .map(|e| (e.name.package.to_string(), e.name.item.to_string()))
                            .collect();
                        self.notifies.push((rid, events));
                        replies.push(format!(
                            "Context = {} {{ Notify = {} }}",
                            ctx_text(a.context),
                            terminations[0].0
                        ));
                    }
                    _ => {}
                }
            }
        }
        let text = format!(
            "MEGACO/3 {}\nReply = {} {{\n  {}\n}}\n",
            self.mid,
            req.id,
            replies.join(",\n  ")
        );
        if print {
            show("IMS-ALG -> IMS-AGW", &text);
        }
        self.send_text(&text)
    }

    /// Sends a transaction and returns the MG's reply, answering the MG's own requests on the
    /// way; retransmits (H.248.1 D.1) until answered, waits longer after Pending.
    fn transact(&mut self, body: &str) -> Result<TransactionReply> {
        let tid = self.next_tid;
        self.next_tid += 1;
        let text = format!(
            "MEGACO/3 {}\nTransaction = {tid} {{\n{body}\n}}\n",
            self.mid
        );
        show("IMS-ALG -> IMS-AGW", &text);
        self.send_text(&text)?;
        let end = Instant::now() + self.timeout;
        let mut resend = Instant::now() + Duration::from_secs(1);
        loop {
            let until = resend.min(end);
            let msg = match self.recv(until) {
                Ok(m) => m,
                Err(_) if Instant::now() < end => {
                    self.send_text(&text)?;
                    resend = Instant::now() + Duration::from_secs(1);
                    continue;
                }
                Err(e) => return Err(e.context(format!("transaction {tid} unanswered"))),
            };
            let MessageBody::Transactions(ts) = &msg.body else {
                bail!(
                    "MG answered with a message error: {}",
                    encode(&msg, Form::Pretty)
                );
            };
            for t in ts {
                match t {
                    Transaction::Reply(r) if r.id == tid => {
                        show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                        return Ok(r.clone());
                    }
                    Transaction::Pending(p) if *p == tid => {
                        resend = Instant::now() + Duration::from_secs(5);
                    }
                    Transaction::Request(r) => {
                        show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                        self.serve_request(r, true)?;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Answers whatever the MG asks during `d`.
    fn serve_for(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while let Ok(msg) = self.recv(until) {
            if let MessageBody::Transactions(ts) = &msg.body {
                for tr in ts {
                    if let Transaction::Request(r) = tr {
                        show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                        self.serve_request(r, true)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits for a Notify for `rid` with `event`, answering everything else the MG asks on
    /// the way.
    fn await_notify(&mut self, rid: u32, event: (&str, &str)) -> Result<Vec<(String, String)>> {
        let end = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.notifies.iter().position(|(r, evs)| {
                *r == rid && evs.iter().any(|(p, i)| p == event.0 && i == event.1)
            }) {
                return Ok(self.notifies.remove(i).1);
            }
            let msg = self.recv(end)?;
            if let MessageBody::Transactions(ts) = &msg.body {
                for t in ts {
                    if let Transaction::Request(r) = t {
                        show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                        self.serve_request(r, true)?;
                    }
                }
            }
        }
    }
}

fn ctx_text(c: ContextId) -> String {
    match c {
        ContextId::Null => "-".into(),
        ContextId::Choose => "$".into(),
        ContextId::All => "*".into(),
        ContextId::Id(i) => i.to_string(),
    }
}

/// Context, termination, local address and (for TLS) fingerprint of an Add reply.
/// The SDP address type of `a`.
fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn added(r: &TransactionReply) -> Result<(u32, String, SocketAddr, Option<String>)> {
    let ReplyResult::Actions(actions) = &r.result else {
        bail!("Add refused: {:?}", r.result);
    };
    let a = actions.first().context("empty reply")?;
    if let Some(e) = &a.error {
        bail!("Add refused: {} {:?}", e.code, e.text);
    }
    let ContextId::Id(ctx) = a.context else {
        bail!("no context in the Add reply")
    };
    let Some(CommandReply::Amms {
        terminations,
        audit: Some(descriptors),
        ..
    }) = a.replies.first()
    else {
        bail!("no termination in the Add reply")
    };
    let (mut ip, mut port, mut fingerprint) = (None, None, None);
    for d in descriptors {
        let Descriptor::Media(ms) = d else { continue };
        for m in ms {
            let parms = match m {
                MediaParm::Streams(s) => &s.parms,
                _ => continue,
            };
            for p in parms {
                let StreamParm::Local(g) = p else { continue };
                for line in g.0.iter().flat_map(|s| &s.lines) {
                    match line {
                        SdpLine::Connection {
                            address: SdpValue::Value(a),
                            ..
                        } => ip = a.parse::<IpAddr>().ok(),
                        SdpLine::Media {
                            port: SdpValue::Value(p),
                            ..
                        } => port = p.parse::<u16>().ok(),
                        SdpLine::Attribute {
                            name,
                            value: Some(v),
                        } if name.eq_ignore_ascii_case("fingerprint") => {
                            fingerprint = Some(v.to_string())
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok((
            ctx,
            terminations[0].0.to_string(),
            SocketAddr::new(ip, port),
            fingerprint,
        )),
        _ => bail!("no address in the Add reply's Local"),
    }
}

fn check_ok(r: &TransactionReply, what: &str) -> Result<()> {
    match &r.result {
        ReplyResult::Error(e) => bail!("{what} refused: {} {:?}", e.code, e.text),
        ReplyResult::Actions(a) => {
            if let Some(e) = a.iter().find_map(|a| a.error.as_ref()) {
                bail!("{what} refused: {} {:?}", e.code, e.text);
            }
            Ok(())
        }
    }
}

/// `nt/os` and `nt/or` of each termination in a Subtract reply.
fn subtract_stats(r: &TransactionReply) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let ReplyResult::Actions(actions) = &r.result else {
        return out;
    };
    for c in actions.iter().flat_map(|a| &a.replies) {
        let CommandReply::Amms {
            kind: AmmsKind::Subtract,
            terminations,
            audit: Some(ds),
        } = c
        else {
            continue;
        };
        let (mut os, mut or) = (0, 0);
        for d in ds {
            let Descriptor::Statistics(ss) = d else {
                continue;
            };
            for s in ss {
                let v = match &s.value {
                    Some(StatisticsValue::Single(v)) => v.text.parse().unwrap_or(0),
                    _ => 0,
                };
                if s.name.is("nt", "os") {
                    os = v;
                } else if s.name.is("nt", "or") {
                    or = v;
                }
            }
        }
        out.push((terminations[0].0.to_string(), os, or));
    }
    out
}

struct Ue {
    child: Child,
    lines: Receiver<String>,
    name: &'static str,
}

impl Ue {
    fn spawn(netns: &Option<String>, name: &'static str, args: &[String]) -> Result<Ue> {
        Self::spawn_sub(netns, name, "ue", args)
    }

    fn spawn_sub(
        netns: &Option<String>,
        name: &'static str,
        sub: &str,
        args: &[String],
    ) -> Result<Ue> {
        let exe = std::env::current_exe()?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let mut child = cmd
            .arg(sub)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("UE stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Ue {
            child,
            lines: rx,
            name,
        })
    }

    fn expect(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("{}: no {prefix} line in time", self.name))?;
            println!("   {}: {l}", self.name);
            if l.starts_with(prefix) {
                return Ok(l);
            }
        }
    }

    /// The UE's SUMMARY line if it has printed it (other lines are shown).
    fn summary(&mut self) -> Option<String> {
        while let Ok(l) = self.lines.try_recv() {
            println!("   {}: {l}", self.name);
            if l.starts_with("SUMMARY") {
                return Some(l);
            }
            if l.starts_with("Error") {
                return Some(l);
            }
        }
        None
    }

    fn finish(mut self, summary: String) -> Result<(u64, u64)> {
        let l = summary;
        let field = |k: &str| -> u64 {
            l.split(' ')
                .find_map(|kv| {
                    kv.strip_prefix(&format!("{k}="))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(u64::MAX)
        };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("{} failed: {status}", self.name);
        }
        Ok((field("bytes_out"), field("bytes_in")))
    }
}

impl Drop for Ue {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn run(a: AlgArgs) -> Result<()> {
    let sock = UdpSocket::bind(a.listen).with_context(|| format!("binding {}", a.listen))?;
    let mut alg = Alg {
        mid: format!("[{}]:{}", a.listen.ip(), a.listen.port()),
        sock,
        mg: None,
        next_tid: 5001,
        notifies: Vec::new(),
        timeout: Duration::from_secs(a.timeout_s),
    };
    let t = alg.timeout;
    let n = a.messages.to_string();

    step(
        "0",
        "Registration: the IMS-AGW's ServiceChange (Restart, 901) is answered",
    );
    println!("   IMS-ALG listening on {}", a.listen);
    let end = Instant::now() + Duration::from_secs(a.timeout_s * 3);
    loop {
        let msg = alg.recv(end)?;
        if let MessageBody::Transactions(ts) = &msg.body {
            if let Some(Transaction::Request(r)) = ts.first() {
                show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                alg.serve_request(r, true)?;
                break;
            }
        }
    }

    if a.fax {
        return fax(&mut alg, &a);
    }
    if a.register_only {
        let r = alg
            .transact("  Context = - {\n    AuditCapability = ROOT { Audit { Packages } }\n  }")?;
        check_ok(&r, "AuditCapabilities ROOT")?;
        println!("REGISTERED");
        return Ok(());
    }
    if a.mgc_restart {
        step(
            "0b",
            "The IMS-ALG arms the inactivity timer on ROOT (it/ito, 300 ms)",
        );
        let r = alg.transact(
            "  Context = - {\n    Modify = ROOT { Events = 1 { it/ito { mit = 30 } } }\n  }",
        )?;
        check_ok(&r, "Modify ROOT")?;
    }
    let pace: Vec<String> = if a.mgc_restart {
        vec!["--interval-ms".into(), "20".into()]
    } else {
        vec![]
    };
    // UE-Y is the TCP server (it chose a=setup:passive in its SDP answer).
    let mut ue_y = Ue::spawn(
        &a.ue_y_netns,
        "UE-Y",
        &[
            "--listen".into(),
            a.ue_y.to_string(),
            "--name".into(),
            "y".into(),
            "--peer-name".into(),
            "x".into(),
            "--seed".into(),
            "2".into(),
            "--peer-seed".into(),
            "1".into(),
            "--messages".into(),
            n.clone(),
            "--peer-messages".into(),
            n.clone(),
        ]
        .into_iter()
        .chain(pace.iter().cloned())
        .collect::<Vec<_>>(),
    )?;
    ue_y.expect("LISTENING", t)?;

    let x_proto = if a.tls { "TCP/TLS/MSRP" } else { "TCP/MSRP" };
    // UE-X's own certificate, as a TLS UE would have; its fingerprint goes into its SDP.
    let ue_x_tls = if a.tls {
        let (cert, key) = dataplane::tls::Identity::generate_pem("ue-x.example")?;
        let dir = std::env::temp_dir().join(format!("imsagw-sim-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (c, k) = (dir.join("ue-x.crt"), dir.join("ue-x.key"));
        std::fs::write(&c, &cert)?;
        std::fs::write(&k, &key)?;
        let fp = dataplane::tls::Identity::from_pem(cert.as_bytes(), key.as_bytes())?
            .fingerprint(dataplane::tls::HashAlg::Sha256);
        Some((c, k, fp.to_string()))
    } else {
        None
    };
    step("1", &format!("The IMS-ALG receives an SDP offer ({x_proto}) from UE-X; the TCP direction is not decided yet"));
    step("2", "Add T1 (access realm, setup role still open)");
    let r = alg.transact(&format!(
        "  Context = $ {{\n    Add = $ {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = Inactive, ipdc/realm = \"access\" }},\n        Local {{\nv=0\nc=IN {xfam} $\nm=message $ {x_proto} *\n}}\n      }} }}\n    }}\n  }}",
        xfam = family(a.ue_x),
    ))?;
    let (ctx, t1, t1_addr, agw_fp) = added(&r)?;
    if a.tls && agw_fp.is_none() {
        bail!("the Add reply for a TLS termination has no a=fingerprint");
    }
    step(
        "3",
        &format!("The IMS-AGW created T1 = {t1} in context {ctx}"),
    );
    step(
        "4",
        &format!("Add reply: T1's local transport address is {t1_addr}"),
    );
    if let Some(fp) = &agw_fp {
        println!("   y.3: the IMS-AGW's certificate fingerprint for UE-X, from Local: {fp}");
    }

    step("5", "Add T2 (core realm) into the same context");
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Add = $ {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = Inactive, ipdc/realm = \"core\" }},\n        Local {{\nv=0\nc=IN {yfam} $\nm=message $ TCP/MSRP *\n}}\n      }} }}\n    }}\n  }}",
        yfam = family(a.ue_y.ip())
    ))?;
    let (ctx2, t2, t2_addr, _) = added(&r)?;
    if ctx2 != ctx {
        bail!("T2 landed in context {ctx2}, not {ctx}");
    }
    step("6", &format!("The IMS-AGW created T2 = {t2}"));
    step(
        "7",
        &format!("Add reply: T2's local transport address is {t2_addr}"),
    );
    step(
        "8",
        &format!("The IMS-ALG rewrites the SDP offer with T2's address {t2_addr}"),
    );
    step("9", "... and forwards it towards UE-Y");
    step(
        "10",
        &format!(
            "UE-Y answers: TCP server role (a=setup:passive) at {}",
            a.ue_y
        ),
    );
    step(
        "11",
        "The IMS-ALG decides the TCP mode: proxy, incoming at T1, outgoing at T2",
    );

    step(
        "12",
        "Modify T2: connect out to UE-Y; arm establishment failure and release events",
    );
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Modify = {t2} {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = SendReceive }},\n        Local {{\nv=0\nc=IN {yfam} {ip}\nm=message {port} TCP/MSRP *\na=setup:active\na=connection:new\n}},\n        Remote {{\nv=0\nc=IN {yfam} {yip}\nm=message {yport} TCP/MSRP *\na=setup:passive\na=connection:new\na=path:msrp://{ysock}/s;tcp\n}}\n      }} }},\n      Events = 103 {{ tcpc/estfail, tcpc/rel }}\n    }}\n  }}",
        ip = t2_addr.ip(),
        port = t2_addr.port(),
        yfam = family(a.ue_y.ip()),
        yip = a.ue_y.ip(),
        ysock = a.ue_y,
        yport = a.ue_y.port(),
    ))?;
    check_ok(&r, "Modify T2")?;
    step(
        "13",
        "The IMS-ALG forwards the SDP answer towards UE-X (T1's address, a=setup:passive)",
    );
    step("14", "The IMS-AGW configured T2 (active leg)");
    step("15", "Modify reply received");
    step(
        "16",
        &format!("TCP three-way handshake {t2_addr} -> {}", a.ue_y),
    );
    let l = ue_y.expect("ESTABLISHED", t)?;
    if !l.contains(&format!("remote={t2_addr}")) {
        bail!("UE-Y's connection does not come from T2 ({t2_addr}): {l}");
    }
    step("17", "Established: TCP bearer segment towards UE-Y");

    let (x_fp_line, x_events) = match &ue_x_tls {
        Some((_, _, fp)) => (
            format!("a=fingerprint:{fp}\n"),
            "tcpc/est, tlsc/est, tlsc/estfail",
        ),
        None => (String::new(), "tcpc/est"),
    };
    step(
        "18",
        &format!("Modify T1: accept UE-X's connection (gate on UE-X's address); arm {x_events}"),
    );
    if let Some((_, _, fp)) = &ue_x_tls {
        println!("   y.3: UE-X's certificate fingerprint, from its SDP, in Remote: {fp}");
    }
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Modify = {t1} {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = SendReceive }},\n        Local {{\nv=0\nc=IN {xfam} {ip}\nm=message {port} {x_proto} *\na=setup:passive\na=connection:new\n}},\n        Remote {{\nv=0\nc=IN {xfam} {xip}\nm=message 9 {x_proto} *\na=setup:active\na=connection:new\n{x_fp_line}}}\n      }} }},\n      Events = 104 {{ {x_events} }}\n    }}\n  }}",
        ip = t1_addr.ip(),
        port = t1_addr.port(),
        xfam = family(a.ue_x),
        xip = a.ue_x,
    ))?;
    check_ok(&r, "Modify T1")?;
    step("19", "The IMS-AGW configured T1 (passive leg)");
    step("20", "Modify reply received");

    step(
        "21",
        &format!("TCP three-way handshake {} -> {t1_addr}", a.ue_x),
    );
    let mut x_args: Vec<String> = Vec::new();
    if let (Some((c, k, _)), Some(agw)) = (&ue_x_tls, &agw_fp) {
        x_args.extend([
            "--tls-cert".into(),
            c.display().to_string(),
            "--tls-key".into(),
            k.display().to_string(),
            "--tls-peer-fingerprint".into(),
            agw.clone(),
        ]);
    }
    let mut ue_x = Ue::spawn(
        &a.ue_x_netns,
        "UE-X",
        &[
            x_args,
            vec![
                "--connect".into(),
                t1_addr.to_string(),
                "--name".into(),
                "x".into(),
                "--peer-name".into(),
                "y".into(),
                "--seed".into(),
                "1".into(),
                "--peer-seed".into(),
                "2".into(),
                "--messages".into(),
                n.clone(),
                "--peer-messages".into(),
                n,
            ],
        ]
        .concat(),
    )?;
    let l = ue_x.expect("ESTABLISHED", t)?;
    if !l.contains(&format!("remote={t1_addr}")) {
        bail!("UE-X is not connected to T1: {l}");
    }
    step("22", "Established: TCP bearer segment towards UE-X");
    if a.tls {
        step("y.3", "TLS: UE-X (TLS client) and T1 (TLS server, asking for UE-X's certificate) handshake; each pins the other by the fingerprint from SDP");
        alg.await_notify(104, ("tlsc", "est"))?;
        ue_x.expect("TLS", t)?;
    }
    step("23", "The IMS-AGW cuts the two legs through");
    step("24", "Notify: end-to-end bearer established");
    alg.await_notify(104, ("tcpc", "est"))?;

    step(
        "25",
        &format!(
            "Data transfer: {} MSRP SEND requests and 200 responses each way",
            a.messages
        ),
    );
    if a.mgc_restart {
        step(
            "--",
            "MGC restart: the IMS-ALG goes away while the UEs keep talking",
        );
        let listen = alg.sock.local_addr()?;
        drop(std::mem::replace(
            &mut alg.sock,
            UdpSocket::bind("127.0.0.1:0")?,
        ));
        std::thread::sleep(Duration::from_millis(2500));
        alg.sock = UdpSocket::bind(listen).with_context(|| format!("binding {listen} again"))?;
        println!("   the IMS-ALG is back on {listen}; waiting for imsagw's ServiceChange");
        let end = Instant::now() + Duration::from_secs(a.timeout_s);
        loop {
            let msg = alg.recv(end)?;
            let MessageBody::Transactions(ts) = &msg.body else {
                continue;
            };
            let mut registered = false;
            for tr in ts {
                if let Transaction::Request(r) = tr {
                    let disconnected = r.actions.iter().flat_map(|a| &a.commands).any(|c| {
                        matches!(&c.command, Command::ServiceChange { parms, .. }
                            if parms.contains(&ServiceChangeParm::Method(ServiceChangeMethod::Disconnected)))
                    });
                    show("IMS-AGW -> IMS-ALG", &encode(&msg, Form::Pretty));
                    alg.serve_request(r, true)?;
                    registered |= disconnected;
                }
            }
            if registered {
                break;
            }
        }
        println!(
            "   imsagw re-registered with ServiceChange Disconnected (900); its call was kept"
        );
    }
    // While the UEs talk, the IMS-ALG keeps answering the MG (Notify, inactivity).
    let ((x_out, x_in), (y_out, y_in)) = run_ues(&mut alg, ue_x, ue_y, t * 3)?;
    println!("   every byte arrived: UE-X -> UE-Y {x_out} bytes, UE-Y -> UE-X {y_out} bytes");

    step("--", "Release: Subtract both terminations, with statistics");
    subtract_checked(&mut alg, ctx, [(&t1, x_in, x_out), (&t2, y_in, y_out)])?;
    if let Some((c, _, _)) = &ue_x_tls {
        if let Some(dir) = c.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    println!("\nALG: PASS");
    Ok(())
}

/// Serves the MG while both UEs run; each one's (bytes_out, bytes_in) once both printed
/// their SUMMARY, which must agree (what one sent the other received).
fn run_ues(
    alg: &mut Alg,
    mut ue_x: Ue,
    mut ue_y: Ue,
    limit: Duration,
) -> Result<((u64, u64), (u64, u64))> {
    let end = Instant::now() + limit;
    let (mut sx, mut sy) = (None, None);
    while sx.is_none() || sy.is_none() {
        if Instant::now() > end {
            bail!("the UEs did not finish");
        }
        if sx.is_none() {
            sx = ue_x.summary();
        }
        if sy.is_none() {
            sy = ue_y.summary();
        }
        alg.serve_for(Duration::from_millis(20))?;
    }
    let (x_out, x_in) = ue_x.finish(sx.unwrap_or_default())?;
    let (y_out, y_in) = ue_y.finish(sy.unwrap_or_default())?;
    if x_out != y_in || y_out != x_in {
        bail!(
            "lost or added: UE-X sent {x_out} received {x_in}, UE-Y sent {y_out} received {y_in}"
        );
    }
    Ok(((x_out, x_in), (y_out, y_in)))
}

/// Subtracts both terminations of `ctx` with statistics and checks each one's `nt/os` and
/// `nt/or` against what its UE counted: `(termination, os, or)`.
fn subtract_checked(alg: &mut Alg, ctx: u32, want: [(&String, u64, u64); 2]) -> Result<()> {
    let (t1, t2) = (want[0].0, want[1].0);
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Subtract = {t1} {{ Audit {{ Statistics }} }},\n    Subtract = {t2} {{ Audit {{ Statistics }} }}\n  }}"
    ))?;
    check_ok(&r, "Subtract")?;
    let stats = subtract_stats(&r);
    for (term, os, or) in want {
        match stats.iter().find(|(t, ..)| t == term) {
            Some((_, gos, gor)) if *gos == os && *gor == or => {
                println!("   {term}: nt/os={gos} nt/or={gor} (matches the UE's count)")
            }
            got => bail!("statistics of {term}: got {got:?}, the UE counted os={os} or={or}"),
        }
    }
    Ok(())
}

/// The T.38 call of TS 23.334's e2ae procedure for fax (RFC 7345), offer from the core.
fn fax(alg: &mut Alg, a: &AlgArgs) -> Result<()> {
    let t = alg.timeout;
    let (yip, yport) = (a.ue_y.ip(), 6004u16);
    let x_at = SocketAddr::new(a.ue_x, 5004);
    let (xfam, yfam) = (family(a.ue_x), family(yip));
    let (cert, key) = dataplane::tls::Identity::generate_pem("ue-x.example")?;
    let dir = std::env::temp_dir().join(format!("imsagw-sim-fax-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (c, k) = (dir.join("ue-x.crt"), dir.join("ue-x.key"));
    std::fs::write(&c, &cert)?;
    std::fs::write(&k, &key)?;
    let x_fp = dataplane::tls::Identity::from_pem(cert.as_bytes(), key.as_bytes())?
        .fingerprint(dataplane::tls::HashAlg::Sha256)
        .to_string();
    let packets = a.fax_packets.to_string();

    step("F1", &format!("The IMS-ALG receives a T.38 offer from the core (UE-Y): m=image {yport} udptl t38 at {yip}"));
    step("F2", "Add T2 (core realm, udptl) with UE-Y's offer in Remote; arm media inactivity (adid/ipstop)");
    let r = alg.transact(&format!(
        "  Context = $ {{\n    Add = $ {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = SendReceive, ipdc/realm = \"core\" }},\n        Local {{\nv=0\nc=IN {yfam} $\nm=image $ udptl t38\n}},\n        Remote {{\nv=0\nc=IN {yfam} {yip}\nm=image {yport} udptl t38\na=T38FaxVersion:0\na=T38FaxUdpEC:t38UDPRedundancy\n}}\n      }} }},\n      Events = 201 {{ adid/ipstop }}\n    }}\n  }}"
    ))?;
    let (ctx, t2, t2_addr, _) = added(&r)?;
    println!("   T2 = {t2} at {t2_addr}, sending to UE-Y at {yip}:{yport}");

    let tls_id = format!("agw{:016x}", std::process::id() as u64 * 0x9E37_79B9);
    step("F3", "Add T1 (access realm, UDP/TLS/UDPTL, a=setup:actpass, a new a=tls-id); arm DTLS established and failure");
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Add = $ {{\n      Media {{ Stream = 1 {{\n        LocalControl {{ Mode = SendReceive, ipdc/realm = \"access\" }},\n        Local {{\nv=0\nc=IN {xfam} $\nm=image $ UDP/TLS/UDPTL t38\na=setup:actpass\na=tls-id:{tls_id}\n}}\n      }} }},\n      Events = 202 {{ tlsc/est, tlsc/estfail, adid/ipstop }}\n    }}\n  }}"
    ))?;
    let (ctx1, t1, t1_addr, agw_fp) = added(&r)?;
    if ctx1 != ctx {
        bail!("T1 landed in context {ctx1}, not {ctx}");
    }
    let agw_fp = agw_fp.context("the Add reply for UDP/TLS/UDPTL has no a=fingerprint")?;
    println!("   T1 = {t1} at {t1_addr}; the IMS-AGW's fingerprint: {agw_fp}");
    step("F4", "The IMS-ALG offers UE-X m=image UDP/TLS/UDPTL at T1 with a=3ge2ae:applied, the AGW's a=fingerprint, a=tls-id and a=setup:actpass");
    step("F5", "UE-X answers a=setup:active (it is the DTLS client) with its own a=fingerprint and a=tls-id");
    println!("   UE-X's fingerprint: {x_fp}");
    step("F6", "Modify T1 with UE-X's answer in Remote: the IMS-AGW is the DTLS server and pins UE-X's certificate");
    let r = alg.transact(&format!(
        "  Context = {ctx} {{\n    Modify = {t1} {{\n      Media {{ Stream = 1 {{\n        Remote {{\nv=0\nc=IN {xfam} {xip}\nm=image {xport} UDP/TLS/UDPTL t38\na=setup:active\na=tls-id:ue{tls_id}\na=fingerprint:{x_fp}\n}}\n      }} }}\n    }}\n  }}",
        xip = x_at.ip(),
        xport = x_at.port(),
    ))?;
    check_ok(&r, "Modify T1")?;
    step(
        "F7",
        "The IMS-ALG answers the core with T2's address; UE-Y waits for the page",
    );
    let mut ue_y = Ue::spawn_sub(
        &a.ue_y_netns,
        "UE-Y",
        "fax-ue",
        &[
            "--bind".into(),
            format!("{yip}:{yport}"),
            "--to".into(),
            t2_addr.to_string(),
            "--seed".into(),
            "2".into(),
            "--peer-seed".into(),
            "1".into(),
            "--packets".into(),
            packets.clone(),
            "--wait-for-peer".into(),
        ],
    )?;
    ue_y.expect("READY", t)?;
    step("F8", "DTLS 1.2 handshake UE-X -> T1 (cookie exchange, both certificates checked against the SDP fingerprints)");
    let mut ue_x = Ue::spawn_sub(
        &a.ue_x_netns,
        "UE-X",
        "fax-ue",
        &[
            "--bind".into(),
            x_at.to_string(),
            "--to".into(),
            t1_addr.to_string(),
            "--seed".into(),
            "1".into(),
            "--peer-seed".into(),
            "2".into(),
            "--packets".into(),
            packets,
            "--dtls-cert".into(),
            c.display().to_string(),
            "--dtls-key".into(),
            k.display().to_string(),
            "--dtls-peer-fingerprint".into(),
            agw_fp,
        ],
    )?;
    ue_x.expect("READY", t)?;
    alg.await_notify(202, ("tlsc", "est"))?;
    step(
        "F9",
        &format!(
            "The fax page: {} UDPTL packets (with redundancy) each way, DTLS on T1, plain on T2",
            a.fax_packets
        ),
    );
    let ((x_out, x_in), (y_out, y_in)) = run_ues(alg, ue_x, ue_y, t * 3)?;
    println!("   every packet arrived once and in order: UE-X -> UE-Y {x_out} bytes, UE-Y -> UE-X {y_out} bytes");

    step(
        "F10",
        "Release: Subtract both terminations, with statistics",
    );
    subtract_checked(alg, ctx, [(&t1, x_in, x_out), (&t2, y_in, y_out)])?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nALG: PASS");
    Ok(())
}
