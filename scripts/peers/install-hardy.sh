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

if [ ! -f "$src/Cargo.toml" ] || [ ! -f "$src/Cargo.lock" ] || [ ! -d "$src/src" ]; then
    echo "$me: the hardy-node sources are missing ($src: Cargo.toml, Cargo.lock, src/)" >&2
    exit 1
fi
crate_version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$src/Cargo.toml" | head -n 1)"
src_hash="$(
    cd "$src"
    { printf '%s\n' Cargo.toml Cargo.lock; find src -type f | LC_ALL=C sort; } |
        while IFS= read -r f; do
            printf '%s\0' "$f"
            cat "$f"
        done | sha256sum | cut -c1-12
)"
version="${crate_version:-0}-$src_hash"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/hardy-node-$version"
bin="$cache_root/bin/hardy-node"

have_cache() {
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^hardy-node $crate_version "
}

if have_cache; then
    echo "hardy-node=$bin"
    exit 0
fi

# --- build -------------------------------------------------------------------
if [ "${DEEPMAIL_HARDY_NO_BUILD:-}" = 1 ]; then
    echo "$me: hardy-node is not built for these sources (no $cache_root); DEEPMAIL_HARDY_NO_BUILD=1 says not to build it" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "$me: hardy-node $version is not in $cache_root and cargo is missing; install Rust" \
         "(rustup) or set DEEPMAIL_HARDY to a hardy-node executable" >&2
    exit 1
fi
mkdir -p "$(dirname "$cache_root")"
lock="$cache_root.lock"
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
    if ! flock -n 9; then
        echo "$me: another build of hardy-node $version is running (lock $lock); waiting for it" >&2
        flock 9
    fi
fi
# The other run may have finished it while we waited.
if have_cache; then
    echo "hardy-node=$bin"
    exit 0
fi

tmp_root="$cache_root.partial.$$"
rm -rf "$tmp_root"
trap 'rm -rf "$tmp_root"' EXIT
echo "$me: building hardy-node $version into $cache_root with" \
     "'cargo install --path $src --locked' (~2 min on 2 cores; once per machine and source version)" >&2
start=$SECONDS
# cargo prints its progress (Compiling ... lines) on stderr; keep it there.
# Its target directory is a temporary one under --root's parent unless
# CARGO_TARGET_DIR is set; nothing is written into the source tree.
if ! CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$tmp_root/target}" \
        cargo install --path "$src" --locked --root "$tmp_root" >&2; then
    echo "$me: cargo install --path $src failed after $((SECONDS - start)) s" >&2
    exit 1
fi
rm -rf "$tmp_root/target" "$tmp_root/.crates.toml" "$tmp_root/.crates2.json"
if [ ! -x "$tmp_root/bin/hardy-node" ]; then
    echo "$me: cargo install finished but $tmp_root/bin/hardy-node is missing" >&2
    exit 1
fi
rm -rf "$cache_root"
mv "$tmp_root" "$cache_root"
trap - EXIT
echo "$me: built hardy-node $version in $((SECONDS - start)) s: $bin" >&2
if ! have_cache; then
    echo "$me: $bin does not report 'hardy-node $crate_version'" >&2
    exit 1
fi
echo "hardy-node=$bin"
