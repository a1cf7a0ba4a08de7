#!/usr/bin/env bash
# Every test: formatting, lints, unit and integration tests (DPDK on vdevs, network
# namespaces, real peers), the patched smoltcp's own tests, and the main-job demo.
# Needs root (DPDK, namespaces). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Before any system package: the crate layers hold, and the codec, the control plane and the
# data plane (unit and in-memory-link tests) build and pass without DPDK, libclang, root,
# Erlang or tshark. PKG_CONFIG_LIBDIR hides an installed DPDK, so a crate that reached it
# would fail here.
echo "== crate layers (cargo tree, forbid(unsafe_code))"
PKG_CONFIG_LIBDIR=/nonexistent bash scripts/check_layers.sh
echo "== h248, control, dataplane without DPDK"
PKG_CONFIG_LIBDIR=/nonexistent cargo test -p h248 -p port -p dataplane -p control -p testbed -p alloc-count -p prefetch

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test: the rest of the workspace (DPDK, namespaces, the binaries, real peers)"
# The binaries first: the integration tests start them (tests/src/lib.rs `bin`).
cargo build --workspace --bins
cargo test --workspace --exclude h248 --exclude port --exclude dataplane --exclude control \
  --exclude testbed --exclude alloc-count --exclude prefetch

echo "== vendored smoltcp: its own unit tests, on our patched copy"
(
  cd vendor/smoltcp
  CARGO_TARGET_DIR=../../target/vendor-smoltcp cargo test --lib --features \
    "std,medium-ethernet,medium-ip,proto-ipv4,proto-ipv6,socket-tcp,socket-tcp-reno,socket-udp,socket-icmp,auto-icmp-echo-reply"
  rm -f Cargo.lock
)

echo "== main-job demo"
bash scripts/demo.sh

echo "== soak, short version: calls for 1 minute, then state, mbufs and memory back"
bash scripts/soak.sh 1

echo "== floods from an attacker namespace during calls, short version"
bash scripts/flood.sh --quick

echo "== performance report, short version (checks the report is produced, not the numbers)"
bash scripts/bench.sh --quick

echo "== Debian package: install, start, register, stop, purge"
bash scripts/package_test.sh

echo "== all tests passed"
