#!/usr/bin/env bash
# Builds the Debian package of imsagw: the binary, a systemd unit, a default configuration
# (a conffile), the README and the Grafana dashboard. Runtime dependencies are the Debian
# packages that own the shared libraries the binary links (DPDK's among them).
# Usage: scripts/package.sh [OUTDIR]   (default target/debian); prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/debian}

cargo build --release -p imsagw >&2
BIN=target/release/imsagw
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' control/imsagw/Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
install -D -m 0755 "$BIN" "$ROOT/usr/bin/imsagw"
strip --strip-debug "$ROOT/usr/bin/imsagw"
install -D -m 0644 packaging/imsagw.service "$ROOT/lib/systemd/system/imsagw.service"
install -D -m 0644 packaging/imsagw.toml "$ROOT/etc/imsagw/imsagw.toml"
install -D -m 0644 README.md "$ROOT/usr/share/doc/imsagw/README.md"
install -D -m 0644 docs/grafana-dashboard.json "$ROOT/usr/share/imsagw/grafana-dashboard.json"

# The packages that own the libraries the binary needs.
depends=$(ldd "$BIN" | awk '/=> \//{print $3}' | while read -r lib; do
  dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null
done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
[ -n "$depends" ] || { echo "package.sh: no dependencies found for $BIN" >&2; exit 1; }

mkdir -p "$ROOT/DEBIAN"
cat >"$ROOT/DEBIAN/control" <<CONTROL
Package: imsagw
Version: $VERSION
Architecture: $ARCH
Maintainer: imsagw developers <imsagw@localhost>
Depends: $depends
Section: net
Priority: optional
Description: media plane of an IMS Access Gateway
 imsagw terminates TCP and TLS for MSRP and BFCP media on DPDK ports under
 H.248 (Iq) control from an IMS-ALG, and cuts the payload through.
CONTROL
echo "/etc/imsagw/imsagw.toml" >"$ROOT/DEBIAN/conffiles"
cat >"$ROOT/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
# The unit is not enabled or started: the operator sets cores, port and MGCs first.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
SCRIPT
cat >"$ROOT/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && systemctl is-active --quiet imsagw; then
  systemctl stop imsagw
fi
SCRIPT
cat >"$ROOT/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
if [ "$1" = purge ]; then
  rm -rf /etc/imsagw
fi
SCRIPT
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"

mkdir -p "$OUT"
DEB="$OUT/imsagw_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$ROOT" "$DEB" >&2
echo "$DEB"
