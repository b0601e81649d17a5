#!/usr/bin/env bash
# Builds the JavaScript stage plugins into WebAssembly components with
# jco componentize (ComponentizeJS / StarlingMonkey) and prints the path
# of each .wasm.
#
#   plugins-js/build.sh              # every target
#   plugins-js/build.sh fragmenter   # the fragmenter-plugin world, pure JS
#   plugins-js/build.sh fragmenter-accelerated   # same code, CRC-32C via the
#                                    # host's host-checksum import (own world)
#
# node_modules lives in each plugin directory (npm ci from its
# package-lock.json on first use, or when the lock file changed);
# components go to target/js-plugins/<name>.wasm. Needs Node >= 20 and
# the npm registry the first time only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out_dir="$root/target/js-plugins"

# target -> "directory entry WIT-dir world"
declare -A targets=(
    [fragmenter]="fragmenter app.js ../../wit fragmenter-plugin"
    [fragmenter-accelerated]="fragmenter app-accelerated.js wit-accelerated accelerated-fragmenter"
)

plugins=("$@")
[ ${#plugins[@]} -gt 0 ] || plugins=(fragmenter fragmenter-accelerated)

mkdir -p "$out_dir"
for name in "${plugins[@]}"; do
    spec="${targets[$name]:-}"
    [ -n "$spec" ] || { echo "unknown target: $name (known: ${!targets[*]})" >&2; exit 2; }
    read -r subdir entry wit world <<<"$spec"
    dir="$here/$subdir"
    # npm ci only when node_modules is missing or older than the lock file
    # (npm writes node_modules/.package-lock.json on every install).
    stamp="$dir/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
        echo "installing jco into $dir/node_modules (npm ci)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
    out="$out_dir/$name.wasm"
    # Run from the plugin directory: jco resolves the entry and --wit from
    # there (the WIT of the fragmenter target is the checkout's wit/).
    # jco is pinned to 1.34.0: 1.35.0's componentize fails before building
    # with "failed to get path metadata (os error 44)" (its bundled
    # wasm-tools, on preview2-shim 0.26, is given no preopened directory to
    # read the WIT from). --disable all: the stage is
    # pure (no stdio, clocks, random, http), so the component imports no WASI.
    # --bundle: without it StarlingMonkey cannot load app.js's relative
    # imports (./src/*.js) at wizer time. Rolldown then warns that it cannot
    # resolve 'deepmail:stages/host-checksum@0.1.0' and keeps it external:
    # that is what we want (it is a WIT import), so its output is filtered.
    rm -f "$out.tmp"
    (cd "$dir" &&
        ./node_modules/.bin/jco componentize "$entry" \
            --wit "$wit" --world-name "$world" \
            --disable all --bundle \
            -o "$out.tmp" 2>&1 | grep -v -e '^ *[0-9]* *[│╭╰─]' -e UNRESOLVED_IMPORT -e '^$' >&2 || true)
    [ -s "$out.tmp" ] || { echo "jco componentize failed for $name" >&2; exit 1; }
    mv "$out.tmp" "$out"
    echo "$out"
done
