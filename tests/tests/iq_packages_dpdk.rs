//! The Iq profile's `gm`, `tman`, `ds` and `ipra` enforced by `imsagw run` on DPDK net_tap,
//! with kernel peers in network namespaces and a scripted MGC (H.248 text over UDP). Needs
//! root, tshark and python3.
//! - DSCP: tshark in UE-X's namespace sees EF on every packet T1 sends; UE-Y's sees 0 from
//!   T2.
//! - Filter: a second host in UE-X's subnet cannot connect to a latching T1 filtered to UE-X
//!   (its SYN is not answered), while UE-X's call works.
//! - Policing: UE-X sends UDPTL at 4x T1's `tman/sdr` for 10 s; what UE-Y receives is the
//!   bucket's depth plus the rate, within 5 %, and the drops are counted (`tmanr/dp`); a TCP
//!   sender on a policed T1 delivers every byte no faster than the rate.
//! - ipra: a link going down and up is notified to the MGC with the realms available.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use imsagw_tests::hosts::*;
use imsagw_tests::mgc::{added, local_port, statistic, TextMgc};
use imsagw_tests::NetNs;

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/iq_peers.py")
}

/// Runs `iq_peers.py` in namespace `ns` with `args`, its stdout piped.
fn peer(ns: &str, args: &[&str]) -> Reap {
    Reap(
        Command::new("ip")
            .args(["netns", "exec", ns, "python3"])
            .arg(peers())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// The peer's result line starting with `prefix`, once it exits.
fn result(p: &mut Reap, prefix: &str) -> String {
    let rx = lines_of(&mut p.0, false);
    let mut seen = Vec::new();
    let line = expect(&rx, prefix, &mut seen);
    assert!(p.0.wait().unwrap().success(), "{seen:?}");
    line
}

fn text_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

fn float(line: &str, key: &str) -> f64 {
    text_field(line, key).parse().unwrap()
}

/// `imsagw run` registered with a scripted MGC, its tap on the UE LAN.
struct Agw {
    hosts: imsagw_tests::UeLan,
    mgc: TextMgc,
    dir: PathBuf,
    agw: Option<(Reap, std::sync::mpsc::Receiver<String>, Vec<String>)>,
}

impl Agw {
    fn start(prefix: &str) -> Agw {
        let id = std::process::id() % 100_000;
        let hosts = imsagw_tests::UeLan::hosts(prefix).unwrap();
        let dir = std::env::temp_dir().join(format!("imsagw-iq-{prefix}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut mgc = TextMgc::bind();
        let tap = format!("im{prefix}{id}");
        let agw = start_imsagw(&tap, &mgc.addr().to_string(), &dir.join("status.sock"), &[]);
        hosts.bridge_tap(&tap).unwrap();
        mgc.register();
        std::thread::sleep(Duration::from_millis(300));
        Agw {
            hosts,
            mgc,
            dir,
            agw: Some(agw),
        }
    }

    fn status(&self) -> serde_json::Value {
        imsagw_tests::status_json(&self.dir.join("status.sock"))
    }

    fn worker_counter(&self, name: &str) -> u64 {
        self.status()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w[name].as_u64().unwrap_or(0))
            .sum()
    }

    /// Adds a termination in `realm` with LocalControl properties `props` and Local `m=`
    /// line `m` (port `$`); returns (context, termination, port).
    fn add(&mut self, ctx: &str, realm: &str, props: &str, m: &str) -> (String, String, u16) {
        let r = self.mgc.call(&format!(
            "C={ctx}{{A=${{M{{ST=1{{O{{MO=SR,ipdc/realm={realm}{props}}},L{{\nv=0\nc=IN IP4 $\nm={m}\n}}}}}}}}}}"
        ));
        assert!(!r.contains("ER="), "{r}");
        let (c, t) = added(&r);
        (c, t, local_port(&r))
    }

    fn remote(&mut self, ctx: &str, t: &str, sdp: &str) {
        let r = self.mgc.call(&format!(
            "C={ctx}{{MF={t}{{M{{ST=1{{O{{MO=SR}},R{{\nv=0\n{sdp}\n}}}}}}}}}}"
        ));
        assert!(!r.contains("ER="), "{r}");
    }

    /// Subtracts a termination and returns the reply with its statistics.
    fn subtract(&mut self, ctx: &str, t: &str) -> String {
        let r = self.mgc.call(&format!("C={ctx}{{S={t}{{AT{{SA}}}}}}"));
        assert!(!r.contains("ER="), "{r}");
        r
    }
}

impl Drop for Agw {
    fn drop(&mut self) {
        if let Some((agw, lines, seen)) = self.agw.take() {
            if !std::thread::panicking() {
                stop_imsagw(agw, lines, seen);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// tshark on eth0 of `ns`, writing to `out`.
fn tshark(ns: &NetNs, out: &Path) -> Child {
    let c = ns
        .command("tshark")
        .args(["-i", "eth0", "-f", "tcp", "-w"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    c
}

/// (source, DSCP) of every IPv4 packet in a capture.
fn dscps(file: &Path) -> Vec<(String, u8)> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-T", "fields", "-e", "ip.src", "-e", "ip.dsfield.dscp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (src, d) = l.split_once('\t')?;
            Some((src.to_string(), d.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn a_filtered_latching_termination_admits_only_its_ue_and_marks_its_packets() {
    let mut a = Agw::start("iqf");
    let x2 = a.hosts.add_host("x2", "198.18.100.8").unwrap();
    let (uex, uey) = (a.hosts.uex.name.clone(), a.hosts.uey.name.clone());
    // T1 latches, is filtered to UE-X and marked EF; T2 is neither.
    let (ctx, t1, p1) = a.add(
        "$",
        "access",
        ",ipnapt/latch=ON,gm/saf=ON,gm/sam=198.18.100.7,ds/dscp=2E",
        "message $ TCP *",
    );
    let (_, t2, _) = a.add(&ctx, "core", "", "message $ TCP *");
    let mut echo = peer(&uey, &["tcp-echo", "198.18.200.50:2855"]);
    let rx = lines_of(&mut echo.0, false);
    expect(&rx, "READY", &mut Vec::new());
    a.remote(
        &ctx,
        &t2,
        "c=IN IP4 198.18.200.50\nm=message 2855 TCP *\na=setup:passive",
    );
    a.remote(
        &ctx,
        &t1,
        "c=IN IP4 198.18.100.7\nm=message 9 TCP *\na=setup:active",
    );
    let dir = a.dir.clone();
    let mut cap_x = tshark(&a.hosts.uex, &dir.join("x.pcapng"));
    let mut cap_y = tshark(&a.hosts.uey, &dir.join("y.pcapng"));

    // The other host in UE-X's subnet: no answer at all (a timeout, not a refusal).
    let to = format!("198.18.1.10:{p1}");
    let tried = result(&mut peer(&x2.name, &["tcp-try", &to, "3"]), "TRY ");
    assert_eq!(tried, "TRY result=timeout");
    assert!(a.worker_counter("filter_dropped") >= 1);
    // UE-X is latched and its bytes go to UE-Y and back.
    let echoed = result(
        &mut peer(&uex, &["tcp-roundtrip", &to, "300000"]),
        "ECHOED ",
    );
    assert!(echoed.starts_with("ECHOED ok=1"), "{echoed}");
    std::thread::sleep(Duration::from_millis(500));
    for c in [&mut cap_x, &mut cap_y] {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    let x = dscps(&dir.join("x.pcapng"));
    let from_t1: Vec<u8> = x
        .iter()
        .filter(|(s, _)| s == "198.18.1.10")
        .map(|p| p.1)
        .collect();
    assert!(from_t1.len() > 20, "{x:?}");
    assert!(from_t1.iter().all(|d| *d == 46), "T1 sent {from_t1:?}");
    let y = dscps(&dir.join("y.pcapng"));
    let from_t2: Vec<u8> = y
        .iter()
        .filter(|(s, _)| s == "198.18.2.20")
        .map(|p| p.1)
        .collect();
    assert!(from_t2.len() > 20, "{y:?}");
    assert!(from_t2.iter().all(|d| *d == 0), "T2 sent {from_t2:?}");
    let s = a.subtract(&ctx, &t1);
    assert!(statistic(&s, "gmst/dp").is_some_and(|n| n >= 1), "{s}");
    a.subtract(&ctx, &t2);
    drop(x2);
}

#[test]
fn udptl_at_four_times_the_rate_is_policed_to_it_and_a_policed_tcp_sender_loses_nothing() {
    let mut a = Agw::start("iqp");
    let (uex, uey) = (a.hosts.uex.name.clone(), a.hosts.uey.name.clone());
    let (sdr, mbs) = (12_500.0, 3_000.0);
    let (ctx, t1, p1) = a.add(
        "$",
        "access",
        ",tman/pol=ON,tman/sdr=12500,tman/mbs=3000",
        "image $ udptl t38",
    );
    let (_, t2, _) = a.add(&ctx, "core", "", "image $ udptl t38");
    a.remote(&ctx, &t1, "c=IN IP4 198.18.100.7\nm=image 5004 udptl t38");
    a.remote(&ctx, &t2, "c=IN IP4 198.18.200.50\nm=image 6004 udptl t38");
    let mut count = peer(&uey, &["udp-count", "198.18.200.50:6004", "3"]);
    let rx = lines_of(&mut count.0, false);
    let mut seen = Vec::new();
    expect(&rx, "READY", &mut seen);
    let to = format!("198.18.1.10:{p1}");
    let sent = result(
        &mut peer(
            &uex,
            &["udp-send", "198.18.100.7:5004", &to, "1000", "50000", "10"],
        ),
        "SENT ",
    );
    let got = expect(&rx, "GOT ", &mut seen);
    assert!(count.0.wait().unwrap().success());
    let (n_sent, secs) = (float(&sent, "n"), float(&sent, "secs"));
    let n_got = float(&got, "n");
    let expected = (mbs + sdr * secs) / 1028.0;
    assert!(
        (n_got - expected).abs() <= 0.05 * expected,
        "{n_got} of {n_sent} datagrams through in {secs} s; {expected:.1} expected"
    );
    let s = a.subtract(&ctx, &t1);
    let dropped = statistic(&s, "tmanr/dp").unwrap_or_else(|| panic!("{s}"));
    assert_eq!(dropped as f64, n_sent - n_got, "{s}");
    assert_eq!(a.worker_counter("police_dropped"), dropped);
    a.subtract(&ctx, &t2);

    // TCP: 2 MB through a 250 kB/s policer, every byte, no faster than the rate.
    let rate = 250_000.0;
    let (ctx, t1, p1) = a.add(
        "$",
        "access",
        ",tman/pol=ON,tman/sdr=250000,tman/mbs=30000",
        "message $ TCP *",
    );
    let (_, t2, _) = a.add(&ctx, "core", "", "message $ TCP *");
    let bytes = 2_000_000;
    let mut sink = peer(
        &uey,
        &["tcp-sink", "198.18.200.50:2856", &bytes.to_string()],
    );
    let rx = lines_of(&mut sink.0, false);
    let mut seen = Vec::new();
    expect(&rx, "READY", &mut seen);
    a.remote(
        &ctx,
        &t2,
        "c=IN IP4 198.18.200.50\nm=message 2856 TCP *\na=setup:passive",
    );
    a.remote(
        &ctx,
        &t1,
        "c=IN IP4 198.18.100.7\nm=message 9 TCP *\na=setup:active",
    );
    let to = format!("198.18.1.10:{p1}");
    let sent = result(
        &mut peer(&uex, &["tcp-send", &to, &bytes.to_string()]),
        "SENT ",
    );
    let got = expect(&rx, "GOT ", &mut seen);
    assert!(sink.0.wait().unwrap().success());
    assert_eq!(text_field(&got, "bytes"), bytes.to_string(), "{got}");
    assert_eq!(text_field(&got, "sha"), text_field(&sent, "sha"));
    let secs = float(&sent, "secs");
    let floor = (bytes as f64 - 30_000.0) / rate;
    assert!(secs >= 0.95 * floor, "{secs} s for {bytes} B at {rate} B/s");
    println!(
        "TCP through the policer: {:.0} B/s of payload, {:.0} % of the policed rate",
        bytes as f64 / secs,
        100.0 * bytes as f64 / secs / rate
    );
    let s = a.subtract(&ctx, &t1);
    assert!(statistic(&s, "tmanr/dp").is_some(), "{s}");
    a.subtract(&ctx, &t2);
}

/// ipra: imsagw's tap stays in this namespace (net_tap reads its link state by the
/// interface's name, so a tap moved into another namespace reads as down).
#[test]
fn a_link_down_and_up_is_notified_with_the_available_realms() {
    let id = std::process::id() % 100_000;
    let dir = std::env::temp_dir().join(format!("imsagw-iq-ipra-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut mgc = TextMgc::bind();
    let tap = format!("imra{id}");
    let (agw, lines, seen) =
        start_imsagw(&tap, &mgc.addr().to_string(), &dir.join("status.sock"), &[]);
    mgc.register();
    let r = mgc.call("C=-{AV=ROOT{AT{M}}}");
    assert!(r.contains("ipra/ar=[access,core]"), "{r}");
    let r = mgc.call("C=-{MF=ROOT{E=9{ipra/arc}}}");
    assert!(!r.contains("ER="), "{r}");
    sh(&["ip", "link", "set", &tap, "down"]);
    let n = mgc.await_notify("ipra/arc", Duration::from_secs(10));
    assert!(n.contains("ar=\"\""), "{n}");
    let r = mgc.call("C=-{AV=ROOT{AT{M}}}");
    assert!(r.contains("ipra/ar=\"\""), "{r}");
    mgc.notifies.clear();
    sh(&["ip", "link", "set", &tap, "up"]);
    let n = mgc.await_notify("ipra/arc", Duration::from_secs(10));
    assert!(n.contains("ar=[access,core]"), "{n}");
    stop_imsagw(agw, lines, seen);
    let _ = std::fs::remove_dir_all(&dir);
}
