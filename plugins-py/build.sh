#!/usr/bin/env bash
# Builds the Python stage plugins into WebAssembly components with
# componentize-py and prints the path of each .wasm.
#
#   plugins-py/build.sh            # every plugin
#   plugins-py/build.sh bsmtp-codec
#
# bsmtp-codec is a codec passing every codec vector; counting-policy and
# counting-policy-stateful are one test policy (counting-policy/app.py)
# built for two worlds, to show what a policy instance may keep.
#
# The venv lives in target/componentize-py-venv (created on first use);
# components go to target/python-plugins/<name>.wasm. Needs python3 >= 3.10
# and network access to PyPI the first time only.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/target/componentize-py-venv"
out_dir="$root/target/python-plugins"

# plugin -> WIT world it targets, and the directory of its app.py when
# that is not the plugin's own name
declare -A worlds=([bsmtp-codec]=codec-plugin [counting-policy]=policy-plugin
    [counting-policy-stateful]=stateful-policy-plugin)
declare -A dirs=([counting-policy-stateful]=counting-policy)

if [ ! -x "$venv/bin/componentize-py" ] ||
    ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q " $COMPONENTIZE_PY_VERSION\$"; then
    echo "setting up $venv (componentize-py $COMPONENTIZE_PY_VERSION)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

plugins=("$@")
[ ${#plugins[@]} -gt 0 ] || plugins=("${!worlds[@]}")

mkdir -p "$out_dir"
for name in "${plugins[@]}"; do
    world="${worlds[$name]:-}"
    [ -n "$world" ] || { echo "unknown plugin: $name (known: ${!worlds[*]})" >&2; exit 2; }
    out="$out_dir/$name.wasm"
    # -d/-w are options of componentize-py itself and go before the
    # subcommand; the WIT package has several worlds, so -w is required.
    # `app` is the module (app.py) found on the -p path.
    (cd "$here/${dirs[$name]:-$name}" &&
        "$venv/bin/componentize-py" --quiet -d "$root/wit" -w "$world" \
            componentize app -p . -o "$out.tmp")
    mv "$out.tmp" "$out"
    echo "$out"
done
