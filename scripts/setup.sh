#!/usr/bin/env bash
# Installs every system package imsagw's build, tests, demo and benchmarks need on Debian 12.
# Idempotent: a second run with everything present does nothing but check.
set -euo pipefail

PACKAGES=(
  # build: DPDK 22.11 headers and libraries, pkg-config for build.rs, libclang for bindgen
  libdpdk-dev dpdk pkg-config libclang-dev clang
  # test peers and test hosts (docs/testing.md)
  iproute2 socat iputils-ping openssl tshark
  erlang-base erlang-megaco erlang-dev erlang-examples
  # baseline for the benchmarks
  haproxy
  # metrics scrape and its OpenMetrics parser (demo), packaging (tests)
  curl python3-prometheus-client dpkg-dev
  # benchmark report plots; ethtool for the baseline's veth offloads
  python3-matplotlib ethtool
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all system packages present"
fi

# Rust components CI checks with.
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi
