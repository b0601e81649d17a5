#!/usr/bin/env bash
# Find (or build once) dtn7-rs 0.21.0, the real BPv7 node the TCPCLv4 and
# fragment interop tests relay bundles through, and print where its
# programs are, one `name=path` line each:
#
#   bash scripts/peers/install-dtnd.sh
#   #   dtnd=/root/.cache/deepmail/peers/dtn7-0.21.0/bin/dtnd
#   #   dtnsend=/root/.cache/deepmail/peers/dtn7-0.21.0/bin/dtnsend
#   #   dtnrecv=...   dtnquery=...   dtntrigger=...
#
# Looked for, in order:
#   1. $DEEPMAIL_DTND, if set: the dtnd executable to use as is (the other
#      programs are looked for beside it; missing ones are left out).
#      Nothing is built. A DEEPMAIL_DTND that is not executable is an error.
#   2. the per-machine cache:
#      ${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/dtn7-0.21.0/bin
#   3. otherwise it is built into that cache with
#        cargo install dtn7 --version 0.21.0 --locked --root <cache>
#      which takes ~12 minutes on a 2-core machine (progress on stderr), so
#      CI builds it once per machine and reuses it (cache that directory).
#      The build goes to a temporary root first and is moved into place only
#      when it succeeded, so an interrupted build leaves no half cache; two
#      concurrent runs serialise on a lock file (flock) beside the cache.
#
# Only stdout carries the name=path lines; everything else goes to stderr.
# Exit 0 found/built; 1 not found and cannot build (no cargo) or the build
# failed.
#
# The daemons themselves are run by scripts/peers/dtnd/dtnchain.py.
set -euo pipefail
me="install-dtnd.sh"
version="0.21.0"
progs="dtnd dtnsend dtnrecv dtnquery dtntrigger"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/dtn7-$version"

print_from() { # DIR: print name=path for every program present in DIR
    local p
    for p in $progs; do
        if [ -x "$1/$p" ]; then
            echo "$p=$1/$p"
        fi
    done
}

if [ -n "${DEEPMAIL_DTND:-}" ]; then
    if [ ! -x "$DEEPMAIL_DTND" ] || [ -d "$DEEPMAIL_DTND" ]; then
        echo "$me: DEEPMAIL_DTND=$DEEPMAIL_DTND is not an executable file" >&2
        exit 1
    fi
    echo "dtnd=$DEEPMAIL_DTND"
    dir="$(dirname "$DEEPMAIL_DTND")"
    for p in $progs; do
        [ "$p" = dtnd ] && continue
        [ -x "$dir/$p" ] && echo "$p=$dir/$p"
    done
    exit 0
fi

have_cache() {
    [ -x "$cache_root/bin/dtnd" ] \
        && "$cache_root/bin/dtnd" --version 2>/dev/null | grep -qx "dtn7-rs $version"
}

if have_cache; then
    print_from "$cache_root/bin"
    exit 0
fi

# --- build -------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    echo "$me: dtnd $version is not in $cache_root and cargo is missing; install Rust" \
         "(rustup) or set DEEPMAIL_DTND to a dtnd executable" >&2
    exit 1
fi
mkdir -p "$(dirname "$cache_root")"
lock="$cache_root.lock"
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
    if ! flock -n 9; then
        echo "$me: another build of dtn7 $version is running (lock $lock); waiting for it" >&2
        flock 9
    fi
fi
# The other run may have finished it while we waited.
if have_cache; then
    print_from "$cache_root/bin"
    exit 0
fi

tmp_root="$cache_root.partial.$$"
rm -rf "$tmp_root"
trap 'rm -rf "$tmp_root"' EXIT
echo "$me: building dtn7 $version into $cache_root with" \
     "'cargo install dtn7 --version $version --locked' (~12 min on 2 cores; once per machine)" >&2
start=$SECONDS
# cargo prints its progress (Compiling ... lines) on stderr; keep it there.
if ! cargo install dtn7 --version "$version" --locked --root "$tmp_root" >&2; then
    echo "$me: cargo install dtn7 $version failed after $((SECONDS - start)) s" >&2
    exit 1
fi
if [ ! -x "$tmp_root/bin/dtnd" ]; then
    echo "$me: cargo install finished but $tmp_root/bin/dtnd is missing" >&2
    exit 1
fi
rm -rf "$cache_root"
mv "$tmp_root" "$cache_root"
trap - EXIT
echo "$me: built dtn7 $version in $((SECONDS - start)) s: $cache_root/bin" >&2
if ! have_cache; then
    echo "$me: $cache_root/bin/dtnd does not report 'dtn7-rs $version'" >&2
    exit 1
fi
print_from "$cache_root/bin"
