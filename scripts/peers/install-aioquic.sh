#!/usr/bin/env bash
# Install aioquic (PyPI) into target/aioquic-venv as the HTTP/3 interop peer
# for the quic-sender plugin (toolkit/host/tests/quic_sender.rs), and print
# the path of the venv's python.
#
#   bash scripts/peers/install-aioquic.sh    # prints .../target/aioquic-venv/bin/python
#
# Idempotent: a venv that already imports aioquic and cryptography is left
# alone. Needs python3 with the venv module (Debian: python3-venv) and PyPI.
# DEEPMAIL_AIOQUIC_VENV overrides the venv directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${DEEPMAIL_AIOQUIC_VENV:-$root/target/aioquic-venv}"
py="$venv/bin/python"

if [ -x "$py" ] && "$py" -c 'import aioquic, cryptography' 2>/dev/null; then
    echo "$py"
    exit 0
fi

command -v python3 >/dev/null || { echo "install-aioquic.sh: python3 is missing (apt-get install python3 python3-venv)" >&2; exit 1; }
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2 || { echo "install-aioquic.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
"$py" -m pip install --quiet --disable-pip-version-check 'aioquic>=1.2,<2' 'cryptography>=42' >&2
"$py" -c 'import aioquic, cryptography' || { echo "install-aioquic.sh: aioquic did not install" >&2; exit 1; }
echo "$py"
