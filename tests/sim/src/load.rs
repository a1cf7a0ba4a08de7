//! Many concurrent calls: `load` plays the IMS-ALG for `--calls` calls at once (Add, Add,
//! Modify, Modify each, the seed's proxy mode), has two `farm`s of kernel TCP UEs move a checked
//! byte stream both ways on every call, and releases them all with Subtract, checking each
//! call's statistics. `farm` (farm.rs) is one side's UEs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use h248::ast::*;
use h248::decode;

use crate::farm::EchoArgs;
use crate::payload::{App, Payload};

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
