#!/usr/bin/env bash
# Install every real interop peer the tests run against, so that `cargo test`
# skips nothing. `.ci/run` calls this; run it yourself to do what CI does:
#
#   bash scripts/peers/install-all.sh
#
# Each step is idempotent (a peer already there is left alone):
#   pyD3TN 0.15.2 (PyPI venv)        conformance/adapters/setup-pyd3tn.sh
#   dnspython 2.9.2 (PyPI venv)      conformance/adapters/setup-dnspython.sh
#   bp7 + hardy-bpv7 adapters        conformance/adapters/setup-rust-bp.sh  (~1 min once)
#   componentize-py 0.25.1 (PyPI)    plugins-py/build.sh  (builds the Python plugins, ~15 s)
#   jco 1.34.0 (npm)                 plugins-js/build.sh  (builds the JavaScript plugins, ~25 s)
#   Hardy node (crates.io, built)    scripts/peers/install-hardy.sh  (~2 min once)
#   Exim 4.96 (Debian)               scripts/peers/install-exim.sh
#   Exim + Dovecot + swaks (Debian)  scripts/peers/install-mailstack.sh
#   dtn7-rs dtnd 0.21 (crates.io)    scripts/peers/install-dtnd.sh  (~12 min once)
#   NSD 4 (Debian)                   scripts/peers/install-nsd.sh
#   aioquic (PyPI venv)              scripts/peers/install-aioquic.sh
#   Postfix tools (Debian, unpacked) scripts/peers/install-postfix.sh
#
# Debian packages need root (or sudo); the rest installs under target/ and
# ~/.cache/deepmail. Stops at the first peer that cannot be installed and
# says which.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

step() { # NAME SCRIPT: run one installer, naming it on failure
    local name="$1" script="$2"
    echo "install-all: $name" >&2
    bash "$script" >/dev/null || { echo "install-all: $name could not be installed ($script failed)" >&2; exit 1; }
}

step "pyD3TN" conformance/adapters/setup-pyd3tn.sh
step "dnspython" conformance/adapters/setup-dnspython.sh
step "bp7 and hardy-bpv7 adapters" conformance/adapters/setup-rust-bp.sh
step "componentize-py and the Python plugins" plugins-py/build.sh
step "jco and the JavaScript plugins" plugins-js/build.sh
step "Exim" scripts/peers/install-exim.sh
step "Exim, Dovecot and swaks" scripts/peers/install-mailstack.sh
step "dtnd" scripts/peers/install-dtnd.sh
step "Hardy (hardy-bpa + hardy-tcpclv4 node)" scripts/peers/install-hardy.sh
step "NSD" scripts/peers/install-nsd.sh
step "aioquic" scripts/peers/install-aioquic.sh
step "Postfix (unpacked, no daemon)" scripts/peers/install-postfix.sh
echo "install-all: every peer is installed" >&2
