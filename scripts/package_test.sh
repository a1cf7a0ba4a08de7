#!/usr/bin/env bash
# Builds the Debian package, installs it, starts the service, registers it with the IMS-ALG
# simulator, reads its status and metrics, stops it and purges the package: every file
# must be gone. With systemd as PID 1 the service is started by `systemctl start imsagw`;
# in a container without it (this machine, CI) the unit's own ExecStart line is run with the
# unit's runtime directory, and the unit file is checked by `systemd-analyze verify`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "package_test.sh needs root (dpkg, DPDK)"; exit 1; }

UNIT=/lib/systemd/system/imsagw.service
SOCK=/run/imsagw/imsagw.sock
PID=""
LOG=$(mktemp)
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || echo "imsagw exited non-zero during cleanup"
  fi
  if dpkg-query -W imsagw >/dev/null 2>&1; then
    dpkg --purge imsagw >/dev/null
  fi
  rm -f "$LOG" "$LOG.alg"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- imsagw log:" >&2; cat "$LOG" >&2; exit 1; }

echo "== build the package"
DEB=$(bash scripts/package.sh)
dpkg-deb --info "$DEB" | sed -n '/Package:/,/Description:/p'
dpkg-deb --contents "$DEB" | awk '{print $6}'

echo "== install"
dpkg -i "$DEB"
for f in /usr/bin/imsagw "$UNIT" /etc/imsagw/imsagw.toml /usr/share/doc/imsagw/README.md \
  /usr/share/imsagw/grafana-dashboard.json; do
  [ -e "$f" ] || fail "$f not installed"
done
systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"

echo "== start the service"
cargo build --release -p sim >&2
if [ -d /run/systemd/system ]; then
  systemctl start imsagw
  PID=$(systemctl show -p MainPID --value imsagw)
else
  echo "(systemd is not PID 1 here: running the unit's ExecStart as systemd would)"
  mkdir -p /run/imsagw
  exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
  # shellcheck disable=SC2086
  $exec_start --metrics 127.0.0.1:9465 >"$LOG" 2>&1 &
  PID=$!
fi
target/release/imsagw-sim alg --listen 127.0.0.1:2945 --register-only --timeout-s 20 \
  >"$LOG.alg" 2>&1 || { cat "$LOG.alg"; fail "no registration"; }
cat "$LOG.alg"
grep -q REGISTERED "$LOG.alg" || fail "no registration"
/usr/bin/imsagw status --status-socket "$SOCK" --json | grep -q '"registration":"registered' \
  || fail "status does not say registered"
if [ ! -d /run/systemd/system ]; then
  curl -sf http://127.0.0.1:9465/metrics | grep '^imsagw_registered' | grep -q ' 1$' \
    || fail "metrics do not say registered"
fi
echo "registered; status and metrics read"

echo "== stop"
if [ -d /run/systemd/system ]; then
  systemctl stop imsagw
else
  kill -TERM "$PID"
  status=0
  wait "$PID" || status=$?
  [ "$status" -eq 0 ] || fail "imsagw exited with $status"
fi
PID=""
grep -q "mbufs_in_use=0" "$LOG" || [ -d /run/systemd/system ] || fail "mbufs not returned"

echo "== purge"
dpkg --purge imsagw
for f in /usr/bin/imsagw "$UNIT" /etc/imsagw /usr/share/imsagw; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
echo "package test: PASS"
