#!/usr/bin/env bash
# Builds the BPv6 (RFC 5050) fragmenter component for wasm32-wasip2 and
# prints the path of the .wasm. Standalone crate: its own Cargo.lock and
# target dir (plugins-standalone/bp6-fragmenter/target).
#
#   bash scripts/bp6/build.sh
#   deepmail fragment --plugin fragmenter="$(bash scripts/bp6/build.sh)" ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
crate="$root/plugins-standalone/bp6-fragmenter"
target_dir="$crate/target"
cargo build --release --target wasm32-wasip2 \
    --manifest-path "$crate/Cargo.toml" --target-dir "$target_dir" \
    ${CARGO_OFFLINE:+--offline} >&2
wasm="$target_dir/wasm32-wasip2/release/deepmail_plugin_bp6_fragmenter.wasm"
[ -f "$wasm" ] || { echo "build.sh: $wasm was not produced" >&2; exit 1; }
echo "$wasm"
