//! Running on a kernel interface through DPDK's AF_XDP driver (`--af-xdp IFACE`): the EAL
//! arguments for it, and the checks that turn what the kernel would refuse later, with a
//! driver message an operator cannot act on, into a clear error before DPDK starts.
//!
//! AF_XDP moves frames between the interface and imsagw through shared rings, with no system
//! call per frame: the choice on a VM, in a container or on a NIC without a DPDK driver.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Largest MTU imsagw's frames take (its TCP/IP stack sends 1500-byte IP packets; a larger
/// frame from the peer would not fit an mbuf's data room).
const MAX_MTU: u32 = 1500;

/// Capabilities AF_XDP needs, by bit number in CapEff, with what each is for.
const CAPABILITIES: [(u32, &str, &str); 4] = [
    (
        12,
        "CAP_NET_ADMIN",
        "attach the XDP program to the interface",
    ),
    (13, "CAP_NET_RAW", "open the AF_XDP sockets"),
    (14, "CAP_IPC_LOCK", "pin the mbuf pool as the sockets' UMEM"),
    (
        39,
        "CAP_BPF",
        "load the XDP program (or CAP_SYS_ADMIN on kernels before 5.8)",
    ),
];
const CAP_SYS_ADMIN: u32 = 21;

/// The EAL's `--vdev` of AF_XDP port `device` (`net_af_xdpK`) on `iface`, with one queue
/// per worker, starting at queue 0.
pub fn vdev(device: &str, iface: &str, workers: usize) -> String {
    format!("{device},iface={iface},start_queue=0,queue_count={workers}")
}

/// Checks what the kernel would refuse: the interface, one receive queue per worker, the
/// MTU, an XDP program already attached by someone else, and the capabilities.
pub fn preflight(iface: &str, workers: usize) -> Result<()> {
    let sys = Path::new("/sys/class/net").join(iface);
    if !sys.exists() {
        bail!("--af-xdp {iface}: no such network interface");
    }
    let queues = std::fs::read_dir(sys.join("queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1);
    if queues < workers {
        bail!(
            "--af-xdp {iface}: the interface has {queues} receive queue(s) and {workers} workers need one each (`ethtool -L {iface} combined {workers}`, or fewer worker cores)"
        );
    }
    let mtu: u32 = std::fs::read_to_string(sys.join("mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(MAX_MTU);
    if mtu > MAX_MTU {
        bail!("--af-xdp {iface}: MTU {mtu} is larger than imsagw's frames take ({MAX_MTU}); `ip link set {iface} mtu {MAX_MTU}`");
    }
    if let Some(prog) = attached_xdp_program(iface) {
        bail!("--af-xdp {iface}: an XDP program ({prog}) is already attached; detach it (`ip link set {iface} xdp off`) or give imsagw another interface");
    }
    let missing = missing_capabilities()?;
    if !missing.is_empty() {
        bail!(
            "--af-xdp {iface}: missing capabilities: {} (run as root, or give the service AmbientCapabilities; see docs/operations.md)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Frames the kernel dropped on receive at `iface` since it came up (`rx_dropped` of its
/// statistics). On an AF_XDP interface these are mostly frames the XDP program could not put
/// in a socket's receive ring (full, or the fill ring empty): DPDK's port statistics do not
/// count them.
pub fn kernel_rx_dropped(iface: &str) -> Option<u64> {
    let path = Path::new("/sys/class/net")
        .join(iface)
        .join("statistics/rx_dropped");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The XDP program attached to `iface`, if `ip` reports one.
fn attached_xdp_program(iface: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", iface])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("prog/xdp") || l.contains(" xdp ") || l.starts_with("xdp"))
        .map(str::to_string)
}

/// The capabilities of [`CAPABILITIES`] this process lacks (CAP_BPF counts as present with
/// CAP_SYS_ADMIN).
fn missing_capabilities() -> Result<Vec<String>> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    Ok(CAPABILITIES
        .iter()
        .filter(|(bit, _, _)| !(has(*bit) || (*bit == 39 && has(CAP_SYS_ADMIN))))
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vdev_names_one_queue_per_worker() {
        assert_eq!(
            vdev("net_af_xdp0", "veth0", 2),
            "net_af_xdp0,iface=veth0,start_queue=0,queue_count=2"
        );
    }

    #[test]
    fn a_missing_interface_is_named() {
        let e = preflight("imsagw-no-such0", 1).unwrap_err();
        assert!(e.to_string().contains("no such network interface"), "{e}");
    }

    #[test]
    fn too_many_workers_for_the_queues_are_refused() {
        // Loopback has one receive queue.
        let e = preflight("lo", 4).unwrap_err();
        assert!(e.to_string().contains("receive queue"), "{e}");
    }

    #[test]
    fn a_large_mtu_is_refused() {
        // Loopback's MTU is 65536.
        let e = preflight("lo", 1).unwrap_err();
        assert!(e.to_string().contains("MTU"), "{e}");
    }
}
