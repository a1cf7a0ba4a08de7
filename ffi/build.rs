//! Binds the system DPDK (pkg-config `libdpdk`, 22.11 on Debian 12): bindgen over an explicit
//! allowlist, plus a C shim compiled with DPDK's own cflags for the static-inline fast path.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_lcore_count",
    "rte_socket_id",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_set_link_up",
    "rte_eth_promiscuous_enable",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "shim_.*",
];

const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_ether_addr",
    "rte_eth_stats",
    "rte_eth_link",
];

const VARS: &[&str] = &[
    "RTE_ETH_MQ_RX_NONE",
    "RTE_ETH_MQ_RX_RSS",
    "RTE_ETH_LINK_UP",
    "RTE_ETH_LINK_FULL_DUPLEX",
    "RTE_MAX_ETHPORTS",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "SOCKET_ID_ANY",
];

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    panic!("{msg}");
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        fail("pkg-config is not installed: run `apt-get install pkg-config` (or scripts/setup.sh)");
    }
    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => fail(&format!(
            "DPDK >= 22.11 not found by pkg-config ({e}): run `apt-get install libdpdk-dev` \
             (or scripts/setup.sh)"
        )),
    };

    // The exact cflags, as one list, for both clang (bindgen) and cc (shim): the
    // `-include rte_config.h` pair and Debian's `-march=corei7` must reach both.
    let cflags = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let cflags: Vec<String> = cflags.split_whitespace().map(str::to_owned).collect();

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").opt_level(2).warnings(false);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("imsagw_dpdk_shim");

    // Shared linkage: EAL then dlopens the PMDs from its compiled-in plugin directory.
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    for p in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }

    let mut builder = bindgen::Builder::default()
        .header("shim/wrapper.h")
        .clang_args(cflags.iter())
        .derive_default(true)
        .layout_tests(true)
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .allowlist_recursively(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }

    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!(
            "bindgen failed on the DPDK headers ({e}); is libclang installed? \
             run `apt-get install libclang-dev` (or scripts/setup.sh)"
        )),
        Err(_) => fail(
            "bindgen could not load libclang: run `apt-get install libclang-dev` \
             (or scripts/setup.sh)",
        ),
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");
}
