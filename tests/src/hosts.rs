//! Test hosts for the DPDK integration tests: network namespaces bridged to imsagw's tap,
//! child processes reaped on drop, and line readers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn lines_of(child: &mut Child, stderr: bool) -> Receiver<String> {
    let (tx, rx) = channel();
    let out: Box<dyn std::io::Read + Send> = if stderr {
        Box::new(child.stderr.take().unwrap())
    } else {
        Box::new(child.stdout.take().unwrap())
    };
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn expect(rx: &Receiver<String>, prefix: &str, seen: &mut Vec<String>) -> String {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(prefix) {
                    return l;
                }
            }
            Err(_) => panic!("no {prefix:?}; seen {seen:?}"),
        }
    }
}

pub fn field(line: &str, key: &str) -> u64 {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

/// `imsagw run` on its own net_tap `tap` (no NIC, no hugepages), H.248 on loopback towards
/// the MGC at `mgc`, with `extra` flags; returns once it runs, with its log lines.
pub fn start_imsagw(
    tap: &str,
    mgc: &str,
    status: &Path,
    extra: &[&str],
) -> (Reap, Receiver<String>, Vec<String>) {
    let vdev = format!("net_tap0,iface={tap}");
    let mut eal = vec!["--".to_string()];
    eal.extend(crate::eal_args(&[&vdev]));
    spawn_imsagw(mgc, status, extra, &eal)
}

/// [`start_imsagw`] on several taps: `net_tap0` on the first, `net_tap1` on the second...
pub fn start_imsagw_on(
    taps: &[&str],
    mgc: &str,
    status: &Path,
    extra: &[&str],
) -> (Reap, Receiver<String>, Vec<String>) {
    let vdevs = crate::tap_vdevs(taps);
    let vdevs: Vec<&str> = vdevs.iter().map(String::as_str).collect();
    let mut eal = vec!["--".to_string()];
    eal.extend(crate::eal_args(&vdevs));
    spawn_imsagw(mgc, status, extra, &eal)
}

/// `imsagw run --af-xdp IFACE` (the EAL arguments imsagw makes for it), otherwise as
/// [`start_imsagw`].
pub fn start_imsagw_af_xdp(
    iface: &str,
    mgc: &str,
    status: &Path,
    extra: &[&str],
) -> (Reap, Receiver<String>, Vec<String>) {
    let mut args = vec!["--af-xdp", iface, "--control-core", "0"];
    args.extend_from_slice(extra);
    spawn_imsagw(mgc, status, &args, &[])
}

fn spawn_imsagw(
    mgc: &str,
    status: &Path,
    extra: &[&str],
    eal: &[String],
) -> (Reap, Receiver<String>, Vec<String>) {
    let mut agw = Reap(
        Command::new(crate::bin("imsagw"))
            .args(["run", "--bind", "127.0.0.1:0", "--mgc", mgc])
            .args(extra)
            .arg("--status-socket")
            .arg(status)
            .args(eal)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut agw.0, true);
    let mut seen = Vec::new();
    expect(&lines, "imsagw running", &mut seen);
    (agw, lines, seen)
}

/// SIGTERM: imsagw must exit 0 with every mbuf back in its pool.
pub fn stop_imsagw(mut agw: Reap, lines: Receiver<String>, mut seen: Vec<String>) {
    sh(&["kill", "-TERM", &agw.0.id().to_string()]);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = agw.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "imsagw did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = lines.try_recv() {
        seen.push(l);
    }
    assert!(status.success(), "imsagw: {seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("mbufs_in_use=0")),
        "{seen:?}"
    );
}
