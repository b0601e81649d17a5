#!/usr/bin/env bash
# Create (or reuse) a venv with pyD3TN for conformance/adapters/pyd3tn_adapter.py.
#
#   conformance/adapters/setup-pyd3tn.sh        # prints the venv's python path
#
# Venv: $DEEPMAIL_VENV, default <repo>/target/pyd3tn-venv. Idempotent: an
# existing venv that already has the pinned version is left alone.
set -euo pipefail

PYD3TN_VERSION="0.15.2"
CBOR2_VERSION="5.8.0"   # pyD3TN's CBOR library, pinned so results are reproducible
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${DEEPMAIL_VENV:-$repo/target/pyd3tn-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
have="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("pyD3TN"))' 2>/dev/null || true)"
if [ "$have" != "$PYD3TN_VERSION" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pyD3TN==$PYD3TN_VERSION" "cbor2==$CBOR2_VERSION" >&2
fi
echo "$venv/bin/python"
