#!/usr/bin/env bash
# Checks that the crates keep their layers (docs/architecture.md):
# - DPDK (`dpdk-sys`, and with it bindgen and libclang) is reached only through `dpdk`, by the
#   binary and the DPDK integration tests; the codec, the data plane, the control plane, test
#   support and the simulator build without it;
# - the H.248 codec depends on no data plane, DPDK, libclang or async runtime;
# - only `dpdk-sys`, `dpdk`, `alloc-count` and `prefetch` may use `unsafe`: every other crate's root says
#   `#![forbid(unsafe_code)]`.
# Needs only cargo (no DPDK, no root): CI runs it before scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
deps() { cargo tree -q -p "$1" -e normal,build --prefix none --no-dedupe | awk '{print $1}' | sort -u; }

for crate in port dataplane h248 control testbed sim; do
  if deps "$crate" | grep -qx 'dpdk-sys\|dpdk\|bindgen\|clang-sys'; then
    echo "layers: $crate reaches DPDK or libclang:"
    cargo tree -q -p "$crate" -e normal,build -i dpdk-sys 2>/dev/null || true
    fail=1
  fi
done
for crate in imsagw imsagw-tests; do
  deps "$crate" | grep -qx dpdk || { echo "layers: $crate was expected to use dpdk"; fail=1; }
done
# dpdk-sys has exactly one dependent: dpdk.
dependents=$(cargo tree -q -e normal,build -i dpdk-sys --prefix none --depth 1 | awk 'NR>1 {print $1}' | sort -u)
if [ "$dependents" != "dpdk" ]; then
  echo "layers: dpdk-sys is used directly by: $dependents (only dpdk may)"
  fail=1
fi
if deps h248 | grep -qx 'dataplane\|control\|tokio\|smoltcp\|dpdk-sys'; then
  echo "layers: h248 depends on more than the codec needs:"
  deps h248
  fail=1
fi

unsafe_allowed="ffi/src/lib.rs ffi/dpdk/src/lib.rs ffi/alloc-count/src/lib.rs ffi/prefetch/src/lib.rs"
roots=$(git ls-files '*/src/lib.rs' '*/src/main.rs' 'ffi/src/lib.rs' | grep -v '^vendor/\|/fuzz/')
for root in $roots; do
  case " $unsafe_allowed " in *" $root "*) continue ;; esac
  grep -q '^#!\[forbid(unsafe_code)\]' "$root" || { echo "layers: $root lacks #![forbid(unsafe_code)]"; fail=1; }
done

if [ "$fail" -ne 0 ]; then
  echo "layers: FAILED"
  exit 1
fi
echo "layers: ok (dpdk-sys only under dpdk; h248, port, dataplane, control, testbed, sim without DPDK; unsafe only in ffi/)"
