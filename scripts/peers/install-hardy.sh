#!/usr/bin/env bash
# Find (or build once) hardy-node, the second real BPv7 node the TCPCLv4
# interop tests can relay bundles through: scripts/peers/hardy, a small
# binary over Hardy's crates hardy-bpa 0.2 and hardy-tcpclv4 0.4. Prints
# where it is, one `name=path` line:
#
#   bash scripts/peers/install-hardy.sh
#   #   hardy-node=/root/.cache/deepmail/peers/hardy-node-0.1.0-1a2b3c4d5e6f/bin/hardy-node
#
# Looked for, in order:
#   1. $DEEPMAIL_HARDY, if set: the hardy-node executable to use as is.
#      Nothing is built. A DEEPMAIL_HARDY that is not executable is an error.
#   2. the per-machine cache:
#      ${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/hardy-node-<version>/bin
#      where <version> is the crate version plus the first 12 hex digits of
#      a SHA-256 over Cargo.toml, Cargo.lock and src/ -- an edited node gets
#      a new cache directory and is rebuilt.
#   3. otherwise it is built into that cache with
#        cargo install --path scripts/peers/hardy --locked --root <cache>
#      which takes ~2 minutes on a 2-core machine (aws-lc-sys, the C crypto
#      library under rustls, needs a C compiler: gcc or clang), so CI builds
#      it once per machine and reuses it (cache that directory). The build
#      goes to a temporary root first and is moved into place only when it
#      succeeded, so an interrupted build leaves no half cache; two
#      concurrent runs serialise on a lock file (flock) beside the cache.
#
# With DEEPMAIL_HARDY_NO_BUILD=1 nothing is built: a node that is not in
# the cache is reported missing (exit 1). Tests use that.
#
# Only stdout carries the name=path line; everything else goes to stderr.
# Exit 0 found/built; 1 not found and cannot build (no cargo) or the build
# failed.
#
# The node is run by scripts/peers/hardy/selftest.sh; see
# scripts/peers/hardy/README.md for its command line.
set -euo pipefail
me="install-hardy.sh"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hardy"

if [ -n "${DEEPMAIL_HARDY:-}" ]; then
    if [ ! -x "$DEEPMAIL_HARDY" ] || [ -d "$DEEPMAIL_HARDY" ]; then
        echo "$me: DEEPMAIL_HARDY=$DEEPMAIL_HARDY is not an executable file" >&2
        exit 1
    fi
    echo "hardy-node=$DEEPMAIL_HARDY"
    exit 0
fi

# shellcheck source=lib/cargo-install-once.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/cargo-install-once.sh"
source_cache "$src" hardy-node
crate_version="${version%-*}"

have_cache() {
    "$cache_root/bin/hardy-node" --version 2>/dev/null | grep -q "^hardy-node $crate_version "
}

report() {
    echo "hardy-node=$cache_root/bin/hardy-node"
}

install_once "$src" hardy-node DEEPMAIL_HARDY_NO_BUILD hardy-node
