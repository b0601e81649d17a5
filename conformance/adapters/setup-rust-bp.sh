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

if [ ! -f "$src/Cargo.toml" ] || [ ! -f "$src/Cargo.lock" ] || [ ! -d "$src/src" ]; then
    echo "$me: the adapter sources are missing ($src: Cargo.toml, Cargo.lock, src/)" >&2
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
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/rust-bp-adapters-$version"

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

if have_cache; then
    report
    exit 0
fi

# --- build -------------------------------------------------------------------
if [ "${DEEPMAIL_RUST_BP_NO_BUILD:-}" = 1 ]; then
    echo "$me: the rust-bp adapters are not built for these sources (no $cache_root);" \
         "DEEPMAIL_RUST_BP_NO_BUILD=1 says not to build them" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "$me: rust-bp adapters $version are not in $cache_root and cargo is missing; install Rust (rustup)" >&2
    exit 1
fi
mkdir -p "$(dirname "$cache_root")"
lock="$cache_root.lock"
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
    if ! flock -n 9; then
        echo "$me: another build of rust-bp adapters $version is running (lock $lock); waiting for it" >&2
        flock 9
    fi
fi
# The other run may have finished it while we waited.
if have_cache; then
    report
    exit 0
fi

tmp_root="$cache_root.partial.$$"
rm -rf "$tmp_root"
trap 'rm -rf "$tmp_root"' EXIT
echo "$me: building rust-bp adapters $version into $cache_root with" \
     "'cargo install --path $src --locked' (once per machine and source version)" >&2
start=$SECONDS
# cargo prints its progress on stderr; keep it there. Its target directory is
# a temporary one unless CARGO_TARGET_DIR is set; nothing is written into the
# source tree.
if ! CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$tmp_root/target}" \
        cargo install --path "$src" --locked --root "$tmp_root" >&2; then
    echo "$me: cargo install --path $src failed after $((SECONDS - start)) s" >&2
    exit 1
fi
rm -rf "$tmp_root/target" "$tmp_root/.crates.toml" "$tmp_root/.crates2.json"
for b in "${bins[@]}"; do
    if [ ! -x "$tmp_root/bin/$b" ]; then
        echo "$me: cargo install finished but $tmp_root/bin/$b is missing" >&2
        exit 1
    fi
done
rm -rf "$cache_root"
mv "$tmp_root" "$cache_root"
trap - EXIT
echo "$me: built rust-bp adapters $version in $((SECONDS - start)) s: $cache_root/bin" >&2
if ! have_cache; then
    echo "$me: the adapters in $cache_root/bin do not answer hello" >&2
    exit 1
fi
report
