//! Shared pieces of the integration tests: network namespaces as test hosts, the EAL
//! arguments for vdev-only runs, the product's binaries, and Erlang megaco's H.248 corpus.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

pub mod corpus;
pub mod hosts;
pub mod mgc;

/// EAL arguments for a machine without NICs or hugepages, plus the given vdevs.
pub fn eal_args(vdevs: &[&str]) -> Vec<String> {
    dpdk::Eal::no_nic_args(vdevs)
}

/// A binary of the workspace (`imsagw`, `imsagw-sim`), built by the same cargo run as this
/// test: it sits in the profile directory above the test executable (`target/<profile>/deps`).
/// Cargo offers `CARGO_BIN_EXE_*` only to tests of the binary's own package, and these tests
/// need both binaries. `cargo test --workspace` builds every binary before it runs a test;
/// when a single package is tested, `cargo build --bins` first.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// `imsagw status --json` of the imsagw whose status socket is `socket`.
pub fn status_json(socket: &std::path::Path) -> serde_json::Value {
    let out = Command::new(bin("imsagw"))
        .args(["status", "--json", "--status-socket"])
        .arg(socket)
        .output()
        .expect("imsagw status runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "imsagw status: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs a command, failing with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// A network namespace made for one test and deleted when dropped.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(prefix: &str) -> Result<NetNs> {
        let name = format!("{prefix}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Result<Output> {
        let mut full = vec!["netns", "exec", self.name.as_str(), cmd];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A `Command` that runs inside the namespace, for callers that need pipes.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str(), cmd]);
        c
    }

    /// Moves a host interface into this namespace and gives it an address.
    pub fn adopt(&self, iface: &str, cidr: &str) -> Result<()> {
        run("ip", &["link", "set", iface, "netns", &self.name])?;
        self.exec("ip", &["addr", "add", cidr, "dev", iface])?;
        self.exec("ip", &["link", "set", iface, "up"])?;
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A self-signed ECDSA P-256 certificate and key for an OpenSSL UE (`CN=ue-x.example`, one
/// day), made by `openssl req` in `dir`: (certificate, key) paths.
pub fn ue_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("ue.crt"), dir.join("ue.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", "/CN=ue-x.example", "-days", "1"])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// The EAL's `--vdev` of each tap: `net_tap0` on the first, `net_tap1` on the second...
pub fn tap_vdevs(taps: &[&str]) -> Vec<String> {
    taps.iter()
        .enumerate()
        .map(|(i, t)| format!("net_tap{i},iface={t}"))
        .collect()
}

/// A short interface name unique to this process (Linux allows 15 characters).
pub fn iface_name(prefix: &str) -> String {
    let mut n = format!("{prefix}{}", std::process::id());
    n.truncate(15);
    n
}

/// The VLANs of the access and the core network on a trunk into a split UE LAN
/// (`ue_hosts.sh split`, `trunk`).
pub const ACCESS_VLAN: u16 = 10;
pub const CORE_VLAN: u16 = 20;

/// The UE LAN of `scripts/lib/ue_hosts.sh` (the one fixture the shell scripts use too):
/// namespaces `{prefix}-uex` (UE-X) and `{prefix}-uey` (UE-Y) on veths into a bridge in
/// `{prefix}-lan`, which takes imsagw's DPDK tap. The namespaces go when it is dropped.
pub struct UeLan {
    pub lan: NetNs,
    pub uex: NetNs,
    pub uey: NetNs,
    /// UE-X's and UE-Y's addresses with their prefix, as the script gave them; and their
    /// IPv6 addresses (every UE is dual-stack).
    pub uex_cidr: String,
    pub uey_cidr: String,
    pub uex6_cidr: String,
    pub uey6_cidr: String,
}

fn ue_hosts_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/ue_hosts.sh")
}

impl UeLan {
    /// The LAN with imsagw's tap `tap` on its bridge.
    pub fn new(prefix: &str, tap: &str) -> Result<UeLan> {
        let lan = Self::hosts(prefix)?;
        lan.bridge_tap(tap)?;
        Ok(lan)
    }

    /// The LAN alone; [`UeLan::bridge_tap`] joins imsagw's tap once it exists.
    pub fn hosts(prefix: &str) -> Result<UeLan> {
        let id = std::process::id();
        let names: Vec<String> = ["lan", "uex", "uey"]
            .iter()
            .map(|n| format!("{prefix}-{n}-{id}"))
            .collect();
        let script = ue_hosts_script();
        let out = run(
            "bash",
            &[
                script.to_str().context("script path")?,
                "create",
                &names[0],
                &names[1],
                &names[2],
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("{k}= in {text:?}"))
        };
        let (uex_cidr, uey_cidr) = (field("uex")?, field("uey")?);
        let (uex6_cidr, uey6_cidr) = (field("uex6")?, field("uey6")?);
        let ns = |name: &String| NetNs { name: name.clone() };
        Ok(UeLan {
            lan: ns(&names[0]),
            uex: ns(&names[1]),
            uey: ns(&names[2]),
            uex_cidr,
            uey_cidr,
            uex6_cidr,
            uey6_cidr,
        })
    }

    /// Moves imsagw's tap into the LAN's bridge.
    pub fn bridge_tap(&self, tap: &str) -> Result<()> {
        let script = ue_hosts_script();
        run(
            "bash",
            &[
                script.to_str().context("script path")?,
                "bridge-tap",
                &self.lan.name,
                tap,
            ],
        )?;
        Ok(())
    }

    /// Splits the LAN into an access network (UE-X, bridge `br0`) and a core network (UE-Y,
    /// bridge `br1`): from then on each tap joins one of them ([`UeLan::bridge_tap_to`]) or
    /// both as an 802.1Q trunk ([`UeLan::trunk`]).
    pub fn split(&self) -> Result<()> {
        self.script(&["split", &self.lan.name])
    }

    /// Moves imsagw's tap into the LAN onto `bridge` (`br0` access, `br1` core on a split
    /// LAN); `mac` the kernel side's own MAC (distinct per tap).
    pub fn bridge_tap_to(&self, tap: &str, bridge: &str, mac: &str) -> Result<()> {
        self.script(&["bridge-tap", &self.lan.name, tap, bridge, mac])
    }

    /// Moves imsagw's tap into the split LAN as a trunk: the access network's frames tagged
    /// [`ACCESS_VLAN`], the core's [`CORE_VLAN`] (through the script's user-space switch,
    /// which ends when the LAN's namespace is deleted).
    pub fn trunk(&self, tap: &str, mac: &str) -> Result<()> {
        self.script(&[
            "trunk",
            &self.lan.name,
            tap,
            mac,
            &self.uex.name,
            &self.uey.name,
        ])
    }

    fn script(&self, args: &[&str]) -> Result<()> {
        let script = ue_hosts_script();
        let mut all = vec![script.to_str().context("script path")?];
        all.extend_from_slice(args);
        run("bash", &all)?;
        Ok(())
    }

    /// A veth `iface` in this namespace for imsagw's AF_XDP port, its peer on the LAN's
    /// bridge; checksum offloads off on every veth of the path (an AF_XDP socket gets frames
    /// as their sender wrote them).
    pub fn bridge_veth(&self, iface: &str) -> Result<()> {
        let script = ue_hosts_script();
        run(
            "bash",
            &[
                script.to_str().context("script path")?,
                "bridge-veth",
                &self.lan.name,
                iface,
                &self.uex.name,
                &self.uey.name,
            ],
        )?;
        Ok(())
    }

    /// One more host on the LAN (`{prefix}-{name}-{pid}`) at `ip` (no prefix: the LAN's
    /// /15); deleted when the returned namespace is dropped.
    pub fn add_host(&self, name: &str, ip: &str) -> Result<NetNs> {
        let ns = format!("{}-{name}", self.lan.name);
        let script = ue_hosts_script();
        run(
            "bash",
            &[
                script.to_str().context("script path")?,
                "add",
                &self.lan.name,
                &ns,
                ip,
                &format!("v{name}"),
            ],
        )?;
        Ok(NetNs { name: ns })
    }

    /// UE-X's address without its prefix.
    pub fn uex_ip(&self) -> &str {
        self.uex_cidr.split('/').next().unwrap_or_default()
    }

    pub fn uey_ip(&self) -> &str {
        self.uey_cidr.split('/').next().unwrap_or_default()
    }

    /// UE-X's IPv6 address without its prefix.
    pub fn uex6_ip(&self) -> &str {
        self.uex6_cidr.split('/').next().unwrap_or_default()
    }
}
