//! Shared pieces of the integration tests: network namespaces as test hosts, the EAL
//! arguments for vdev-only runs, the product's binaries, and Erlang megaco's H.248 corpus.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

pub mod corpus;
pub mod hosts;

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

/// A short interface name unique to this process (Linux allows 15 characters).
pub fn iface_name(prefix: &str) -> String {
    let mut n = format!("{prefix}{}", std::process::id());
    n.truncate(15);
    n
}

/// The two UEs of the seed's flow as Linux hosts: namespaces `{prefix}-uex` (198.18.100.7/15)
/// and `{prefix}-uey` (198.18.200.50/15) on veths into a bridge in `{prefix}-lan`, which also
/// takes the DPDK tap `tap` (its kernel side gets a MAC of its own: net_tap gives it the DPDK
/// port's, and a bridge would keep every frame for that MAC to itself).
pub struct UeLan {
    pub lan: NetNs,
    pub uex: NetNs,
    pub uey: NetNs,
}

impl UeLan {
    pub fn new(prefix: &str, tap: &str) -> Result<UeLan> {
        let lan = NetNs::new(&format!("{prefix}-lan"))?;
        let uex = NetNs::new(&format!("{prefix}-uex"))?;
        let uey = NetNs::new(&format!("{prefix}-uey"))?;
        run("ip", &["link", "set", tap, "netns", &lan.name])?;
        lan.exec(
            "ip",
            &["link", "set", "dev", tap, "address", "02:00:00:00:00:fe"],
        )?;
        lan.exec("ip", &["link", "add", "br0", "type", "bridge"])?;
        lan.exec("ip", &["link", "set", tap, "master", "br0"])?;
        for (ns, ip, v) in [
            (&uex, "198.18.100.7/15", "vx"),
            (&uey, "198.18.200.50/15", "vy"),
        ] {
            lan.exec(
                "ip",
                &[
                    "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
                ],
            )?;
            lan.exec("ip", &["link", "set", v, "master", "br0"])?;
            lan.exec("ip", &["link", "set", v, "up"])?;
            ns.exec("ip", &["addr", "add", ip, "dev", "eth0"])?;
            ns.exec("ip", &["link", "set", "eth0", "up"])?;
        }
        lan.exec("ip", &["link", "set", tap, "up"])?;
        lan.exec("ip", &["link", "set", "br0", "up"])?;
        Ok(UeLan { lan, uex, uey })
    }
}
