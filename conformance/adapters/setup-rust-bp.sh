#!/usr/bin/env bash
# Find (or build once) the deepmail-adapter/1 programs over two independent
# Rust BPv7 crates: conformance/adapters/rust-bp, a standalone package
# (not a member of the deepmail workspace) with the binaries
#   bp7-adapter         over bp7 0.12 (dtn7-rs's bundle crate)
#   hardy-bpv7-adapter  over hardy-bpv7 0.6 (Hardy's bundle crate)
# Prints where they are, one `name=path` line each:
#
#   bash conformance/adapters/setup-rust-bp.sh
#   #   bp7-adapter=/root/.cache/deepmail/peers/rust-bp-adapters-0.1.0-1a2b3c4d5e6f/bin/bp7-adapter
#   #   hardy-bpv7-adapter=/root/.cache/deepmail/peers/rust-bp-adapters-0.1.0-1a2b3c4d5e6f/bin/hardy-bpv7-adapter
#
#   python3 conformance/adapters/run_adapter.py \
#       --adapter "$(bash conformance/adapters/setup-rust-bp.sh | sed -n 's/^bp7-adapter=//p')" \
#       --expected-failures vectors/expected-failures/bp7.json vectors/bundle/*.json
#
# The cache is
#   ${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/rust-bp-adapters-<version>/bin
# where <version> is the package version plus the first 12 hex digits of a
# SHA-256 over Cargo.toml, Cargo.lock and src/ -- edited adapters get a new
# cache directory and are rebuilt. If it is missing they are built into it
# with
#   cargo install --path conformance/adapters/rust-bp --locked --root <tmp>
# (pure Rust, no C compiler needed), then moved into place only when the
# build succeeded, so an interrupted build leaves no half cache; two
# concurrent runs serialise on a lock file (flock) beside the cache.
#
# With DEEPMAIL_RUST_BP_NO_BUILD=1 nothing is built: adapters that are not
# in the cache are reported missing (exit 1).
#
# Only stdout carries the name=path lines; everything else goes to stderr.
# Exit 0 found/built; 1 not found and cannot build (no cargo) or the build
# failed.
set -euo pipefail
me="setup-rust-bp.sh"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/rust-bp"
bins=(bp7-adapter hardy-bpv7-adapter)

# shellcheck source=../../scripts/peers/lib/cargo-install-once.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/peers/lib/cargo-install-once.sh"
source_cache "$src" rust-bp-adapters

# An adapter is usable if it answers the protocol's hello.
have_cache() {
    local b
    for b in "${bins[@]}"; do
        [ -x "$cache_root/bin/$b" ] || return 1
        printf '{"id":"hello","operation":"hello","format":"deepmail-adapter/1"}\n' |
            "$cache_root/bin/$b" 2>/dev/null | grep -q '"result":"ok"' || return 1
    done
}

report() {
    local b
    for b in "${bins[@]}"; do
        echo "$b=$cache_root/bin/$b"
    done
}

install_once "$src" "the rust-bp adapters" DEEPMAIL_RUST_BP_NO_BUILD "${bins[@]}"
