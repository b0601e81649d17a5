#!/usr/bin/env bash
# Create (or reuse) a venv with dnspython for conformance/adapters/dnspython_adapter.py.
#
#   conformance/adapters/setup-dnspython.sh     # prints the venv's python path
#
# Venv: $DEEPMAIL_DNSPYTHON_VENV, default <repo>/target/dnspython-venv.
# Idempotent: a venv that already has the pinned version is left alone.
set -euo pipefail

DNSPYTHON_VERSION="2.9.2"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${DEEPMAIL_DNSPYTHON_VENV:-$repo/target/dnspython-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
have="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("dnspython"))' 2>/dev/null || true)"
if [ "$have" != "$DNSPYTHON_VERSION" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "dnspython==$DNSPYTHON_VERSION" >&2
fi
echo "$venv/bin/python"
