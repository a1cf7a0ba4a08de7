#!/usr/bin/env bash
# Every test: formatting, lints, unit and integration tests (DPDK on vdevs, network
# namespaces, real peers), the patched smoltcp's own tests, and the main-job demo.
# Needs root (DPDK, namespaces). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test (workspace)"
cargo test --workspace

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
