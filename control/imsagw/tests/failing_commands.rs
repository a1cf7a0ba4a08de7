//! Commands that fail leave nothing behind, checked on the running binary as an operator
//! would (DPDK net_tap, needs root): thousands of Adds that fail (a TLS termination whose
//! Remote has no fingerprint, into a new context and into a live one), Modifies and Moves
//! that fail, then `imsagw status` must show exactly the calls that were set up — contexts,
//! terminations, worker legs and every realm's port pool — and after `Context = * {
//! Subtract = * }` nothing at all.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_imsagw")
}

struct Alg {
    sock: UdpSocket,
    mg: SocketAddr,
    tid: u32,
}

impl Alg {
    fn recv(&self) -> String {
        let mut buf = [0u8; 65536];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer from imsagw: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Sends one transaction (`T=<tid>{BODY}`) and returns its reply.
    fn call(&mut self, body: &str) -> String {
        self.tid += 1;
        let port = self.sock.local_addr().unwrap().port();
        let msg = format!("!/3 [127.0.0.1]:{port} T={}{{{body}}}", self.tid);
        self.sock.send_to(msg.as_bytes(), self.mg).unwrap();
        loop {
            let r = self.recv();
            if r.contains(&format!("P={}", self.tid)) {
                return r;
            }
        }
    }
}

fn code(reply: &str) -> Option<u16> {
    reply.split("ER=").nth(1).map(|s| s[..3].parse().unwrap())
}

const TCP: &str = "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}";
const TLS_NO_FINGERPRINT: &str = "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\n},R{\nv=0\nc=IN IP4 198.18.100.7\nm=message 9 TCP/TLS/MSRP *\na=setup:active\n}";

fn add(ctx: &str, realm: &str, sdp: &str) -> String {
    format!("C={ctx}{{A=${{M{{ST=1{{O{{MO=IN,ipdc/realm={realm}}},{sdp}}}}}}}}}")
}

/// The context and termination an Add reply names.
fn added(r: &str) -> (String, String) {
    let ctx = r.split("C=").nth(1).unwrap();
    let ctx = ctx.split('{').next().unwrap().to_string();
    let t = r.split("A=").nth(1).unwrap();
    (ctx, t.split('{').next().unwrap().to_string())
}

fn status(sock: &std::path::Path) -> serde_json::Value {
    let out = Command::new(exe())
        .args(["status", "--json", "--status-socket"])
        .arg(sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn legs(s: &serde_json::Value) -> u64 {
    s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["legs"].as_u64().unwrap())
        .sum()
}

fn in_use(s: &serde_json::Value) -> Vec<(String, u64)> {
    s["port_pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["realm"].as_str().unwrap().to_string(),
                p["in_use"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn thousands_of_failing_commands_leave_no_context_termination_leg_or_port_behind() {
    let dir = std::env::temp_dir().join(format!("imsagw-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("status.sock");
    let alg = UdpSocket::bind("127.0.0.1:0").unwrap();
    alg.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let iface = format!("imfail{}", std::process::id() % 10000);
    let mut child = Command::new(exe())
        .args(["run", "--bind", "127.0.0.1:0", "--mgc"])
        .arg(alg.local_addr().unwrap().to_string())
        .arg("--status-socket")
        .arg(&sock)
        .args([
            "--",
            "-l",
            "0",
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-m",
            "256",
        ])
        .arg(format!("--vdev=net_tap0,iface={iface}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.0.to_string())
                .status();
        }
    }
    let _guard = Kill(child.id());
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // Register.
    let mut buf = [0u8; 8192];
    let (n, mg) = alg.recv_from(&mut buf).unwrap();
    let sc = String::from_utf8_lossy(&buf[..n]).into_owned();
    let sc_tid = sc.split("T=").nth(1).unwrap();
    let sc_tid: String = sc_tid.chars().take_while(|c| c.is_ascii_digit()).collect();
    let mut a = Alg {
        sock: alg,
        mg,
        tid: 100,
    };
    let port = a.sock.local_addr().unwrap().port();
    a.sock
        .send_to(
            format!("!/3 [127.0.0.1]:{port} P={sc_tid}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}").as_bytes(),
            mg,
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // What stays: a full context C (T1 access, T2 core) and a half one D (T3 access).
    let (c, t1) = added(&a.call(&add("$", "access", TCP)));
    let (_, _t2) = added(&a.call(&add(&c, "core", TCP)));
    let (d, t3) = added(&a.call(&add("$", "access", TCP)));
    assert_ne!(c, d);

    // The failures.
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..5000 {
        let body = match i % 5 {
            // TLS without the UE's fingerprint: a new context, or the live one with room.
            0 | 1 => add("$", "access", TLS_NO_FINGERPRINT),
            2 => add(&d, "core", TLS_NO_FINGERPRINT),
            // A Modify that would turn a TCP termination into UDP, or start it without an
            // address to connect to.
            3 if i % 2 == 0 => format!("C={d}{{MF={t3}{{M{{ST=1{{L{{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}}}}}}}}}}"),
            3 => format!("C={d}{{MF={t3}{{M{{ST=1{{R{{\nv=0\nc=IN IP4 198.18.200.50\nm=message 0 TCP/MSRP *\na=setup:passive\n}}}}}}}}}}"),
            // A Move into the full context.
            _ => format!("C={c}{{MV={t3}{{M{{ST=1{{O{{MO=SR}}}}}}}}}}"),
        };
        let r = a.call(&body);
        *codes.entry(code(&r)).or_insert(0) += 1;
    }
    eprintln!("failing commands by reply code: {codes:?}");
    assert!(!codes.contains_key(&None), "every one failed: {codes:?}");
    assert_eq!(codes.get(&Some(449)), Some(&3500), "{codes:?}");

    let s = status(&sock);
    assert_eq!(s["contexts"], 2, "{s}");
    assert_eq!(s["terminations"], 3, "{s}");
    assert_eq!(legs(&s), 3, "{s}");
    assert_eq!(
        in_use(&s),
        vec![("access".to_string(), 2), ("core".to_string(), 1)]
    );
    let failed_adds: u64 = s["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0] == "add" && e[1] != 0)
        .map(|e| e[2].as_u64().unwrap())
        .sum();
    assert_eq!(failed_adds, 3000, "{s}");
    // T3 is as it was: still in D, still TCP.
    let r = a.call(&format!("C={d}{{AV={t3}{{AT{{M}}}}}}"));
    assert!(r.contains("TCP/MSRP") && !r.contains("udptl"), "{r}");
    let r = a.call(&format!("C={c}{{AV={t1}{{AT{{M}}}}}}"));
    assert!(code(&r).is_none(), "{r}");

    // What an ALG sends after its own restart.
    let r = a.call("C=*{S=*}");
    assert!(code(&r).is_none(), "{r}");
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(&sock);
        let empty = s["contexts"] == 0 && s["terminations"] == 0 && legs(&s) == 0;
        if empty {
            assert!(in_use(&s).iter().all(|(_, n)| *n == 0), "{s}");
            break;
        }
        assert!(Instant::now() < end, "not empty: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    let lines = log.join().unwrap();
    assert!(exit.success(), "{lines:?}");
    let stopped = lines.iter().find(|l| l.contains("imsagw stopped")).unwrap();
    assert!(
        stopped.contains("legs_left=0") && stopped.contains("mbufs_in_use=0"),
        "{stopped}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
