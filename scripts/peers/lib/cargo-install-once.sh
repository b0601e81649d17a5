# Sourced by the find-or-build-once scripts of local cargo packages
# (scripts/peers/install-hardy.sh, conformance/adapters/setup-rust-bp.sh):
# a per-machine cache keyed by the sources, built with
#   cargo install --path SRC --locked --root <tmp>
# into a temporary root moved into place only when the build succeeded (an
# interrupted build leaves no half cache), two concurrent runs serialised on
# a lock file (flock) beside the cache.
#
# The caller sets `me` (its name, for messages) and defines two functions:
#   have_cache   succeeds when $cache_root/bin holds working programs
#   report       prints the name=path lines on stdout
# then calls, in order:
#   source_cache SRC NAME        sets version and cache_root
#   install_once SRC WHAT NO_BUILD_VAR PROGRAM...
# Exit 0 found/built; 1 not found and cannot build, or the build failed.

# version = the package's version + 12 hex digits of a SHA-256 over
# Cargo.toml, Cargo.lock and src/, so edited sources get a new cache;
# cache_root = ${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/NAME-<version>.
source_cache() {
    local src="$1" name="$2" crate_version src_hash
    if [ ! -f "$src/Cargo.toml" ] || [ ! -f "$src/Cargo.lock" ] || [ ! -d "$src/src" ]; then
        echo "$me: the sources are missing ($src: Cargo.toml, Cargo.lock, src/)" >&2
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
    cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/$name-$version"
}

install_once() {
    local src="$1" what="$2" no_build_var="$3"
    shift 3
    if have_cache; then
        report
        exit 0
    fi
    if [ "${!no_build_var:-}" = 1 ]; then
        echo "$me: $what: not built for these sources (no $cache_root); $no_build_var=1 says not to build" >&2
        exit 1
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$me: $what $version is not in $cache_root and cargo is missing; install Rust (rustup)" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$cache_root")"
    local lock="$cache_root.lock"
    exec 9>"$lock"
    if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
        echo "$me: another build of $what $version is running (lock $lock); waiting for it" >&2
        flock 9
    fi
    # The other run may have finished it while we waited.
    if have_cache; then
        report
        exit 0
    fi
    tmp_root="$cache_root.partial.$$"
    rm -rf "$tmp_root"
    trap 'rm -rf "$tmp_root"' EXIT
    echo "$me: building $what $version into $cache_root with" \
         "'cargo install --path $src --locked' (once per machine and source version)" >&2
    local start=$SECONDS p
    # cargo prints its progress on stderr; keep it there. Its target
    # directory is a temporary one unless CARGO_TARGET_DIR is set: nothing is
    # written into the source tree.
    if ! CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$tmp_root/target}" \
            cargo install --path "$src" --locked --root "$tmp_root" >&2; then
        echo "$me: cargo install --path $src failed after $((SECONDS - start)) s" >&2
        exit 1
    fi
    rm -rf "$tmp_root/target" "$tmp_root/.crates.toml" "$tmp_root/.crates2.json"
    for p in "$@"; do
        if [ ! -x "$tmp_root/bin/$p" ]; then
            echo "$me: cargo install finished but $tmp_root/bin/$p is missing" >&2
            exit 1
        fi
    done
    rm -rf "$cache_root"
    mv "$tmp_root" "$cache_root"
    trap - EXIT
    echo "$me: built $what $version in $((SECONDS - start)) s: $cache_root/bin" >&2
    if ! have_cache; then
        echo "$me: the programs built in $cache_root/bin do not work" >&2
        exit 1
    fi
    report
}
