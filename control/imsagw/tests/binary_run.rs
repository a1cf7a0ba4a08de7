//! The `imsagw run` binary as an operator starts it (DPDK net_tap, needs root): it registers
//! with the MGC, serves Add with its TLS fingerprint, reloads its certificate on SIGHUP (the
//! next Add carries the new fingerprint), answers `imsagw status`, and on SIGTERM sends
//! ServiceChange Forced and exits 0. Bad core maps are refused before anything starts.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::tls::{HashAlg, Identity};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_imsagw")
}

fn recv(alg: &UdpSocket, what: &str) -> (String, std::net::SocketAddr) {
    let mut buf = [0u8; 8192];
    alg.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let (n, from) = alg
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no {what}: {e}"));
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

fn tid(msg: &str) -> String {
    let rest = msg.split("T=").nth(1).unwrap();
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_string()
}

/// Sends an Add for a TLS termination and returns the fingerprint in the reply.
fn add_tls(alg: &UdpSocket, mg: std::net::SocketAddr, t: u32) -> String {
    let add = format!("!/3 [127.0.0.1]:{} T={t}{{C=${{A=${{M{{ST=1{{O{{MO=IN}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\n}}}}}}}}}}}}", alg.local_addr().unwrap().port());
    alg.send_to(add.as_bytes(), mg).unwrap();
    loop {
        let (r, _) = recv(alg, "Add reply");
        if r.contains(&format!("P={t}")) {
            let fp = r
                .split("a=fingerprint:")
                .nth(1)
                .unwrap_or_else(|| panic!("no fingerprint: {r}"));
            return fp.lines().next().unwrap().trim().to_string();
        }
    }
}

#[test]
fn bad_core_maps_are_refused_before_start() {
    for (cores, want) in [
        ("0", "also a worker core"),
        ("1,1", "listed twice"),
        ("64", "not present"),
        ("x", "core list"),
    ] {
        let out = Command::new(exe())
            .args([
                "run",
                "--worker-cores",
                cores,
                "--status-socket",
                "/nonexistent/s",
            ])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cores}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{cores}: {err}");
    }
}

#[test]
fn run_register_reload_the_certificate_and_stop() {
    let dir = std::env::temp_dir().join(format!("imsagw-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = (dir.join("agw.crt"), dir.join("agw.key"));
    let write_identity = || {
        let (c, k) = Identity::generate_pem("agw.example").unwrap();
        std::fs::write(&crt, &c).unwrap();
        std::fs::write(&key, &k).unwrap();
        Identity::from_pem(c.as_bytes(), k.as_bytes())
            .unwrap()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    };
    let first = write_identity();
    let alg = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock = dir.join("status.sock");
    let iface = format!("imbin{}", std::process::id() % 10000);
    let mut child = Command::new(exe())
        .args(["run", "--bind", "127.0.0.1:0", "--mgc"])
        .arg(alg.local_addr().unwrap().to_string())
        .arg("--tls-cert")
        .arg(&crt)
        .arg("--tls-key")
        .arg(&key)
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
        .stderr(Stdio::null())
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

    let (sc, mg) = recv(&alg, "ServiceChange");
    assert!(sc.contains("MT=RS") || sc.contains("Restart"), "{sc}");
    let answer = format!(
        "!/3 [127.0.0.1]:{} P={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}",
        alg.local_addr().unwrap().port(),
        tid(&sc)
    );
    alg.send_to(answer.as_bytes(), mg).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(add_tls(&alg, mg, 10), first);
    let second = write_identity();
    assert_ne!(first, second);
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut t = 11;
    loop {
        let fp = add_tls(&alg, mg, t);
        if fp == second {
            break;
        }
        assert_eq!(fp, first, "neither certificate");
        assert!(
            Instant::now() < end,
            "SIGHUP did not reload the certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
        t += 1;
    }

    // Clients that connect and send nothing (or half a request) do not hold up the others:
    // the control loop reads requests without blocking. They are answered with the status
    // once their wait ends, as clients from before request lines expect.
    let silent_since = Instant::now();
    let mut silent: Vec<std::os::unix::net::UnixStream> = (0..3)
        .map(|_| std::os::unix::net::UnixStream::connect(&sock).unwrap())
        .collect();
    silent[2].write_all(b"stat").unwrap();
    let status = Command::new(exe())
        .args(["status", "--json", "--status-socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(status.status.success());
    if silent_since.elapsed() < Duration::from_millis(1500) {
        for c in &mut silent {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let e = c.read(&mut b).unwrap_err();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "answered too early"
            );
            c.set_nonblocking(false).unwrap();
        }
    }
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        assert!(body.contains("\"registration\""), "{body}");
    }
    let text = String::from_utf8_lossy(&status.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(
        v["registration"]
            .as_str()
            .unwrap()
            .starts_with("registered"),
        "{v}"
    );

    // A capture names a termination; an unknown one is refused. Nothing flows here, so the
    // capture ends at its deadline with an empty pcapng that tshark opens.
    let pcap = dir.join("t1.pcapng");
    let cap = Command::new(exe())
        .args([
            "capture",
            "--termination",
            "tcp/access/1",
            "--seconds",
            "1",
            "--out",
        ])
        .arg(&pcap)
        .arg("--status-socket")
        .arg(&sock)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&cap.stdout);
    assert!(
        cap.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&cap.stderr)
    );
    assert!(out.contains("DONE packets=0"), "{out}");
    let tshark = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let bad = Command::new(exe())
        .args([
            "capture",
            "--termination",
            "tcp/access/999",
            "--out",
            "/tmp/x.pcapng",
        ])
        .arg("--status-socket")
        .arg(&sock)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no termination"));
    assert!(v["terminations"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["workers"][0]["legs"].as_u64().is_some(), "{v}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (forced, _) = recv(&alg, "ServiceChange Forced");
    assert!(forced.contains("MT=FO"), "{forced}");
    alg.send_to(
        format!(
            "!/3 [127.0.0.1]:{} P={}{{C=-{{SC=ROOT{{}}}}}}",
            alg.local_addr().unwrap().port(),
            tid(&forced)
        )
        .as_bytes(),
        mg,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "imsagw did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit {code}");
    let _ = std::fs::remove_dir_all(&dir);
}
