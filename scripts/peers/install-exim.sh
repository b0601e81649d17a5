#!/usr/bin/env bash
# Install Exim (Debian's exim4-daemon-light) as the interop peer for
# toolkit/cli/tests/exim_interop.rs, and print the path of the exim binary.
#
#   bash scripts/peers/install-exim.sh     # prints e.g. /usr/sbin/exim4
#
# Idempotent: an installed exim is left alone. `apt-get update` runs only when
# the package is not known to apt. The system's exim daemon is never started
# and no system config is touched by us: while the package installs, a
# policy-rc.d that answers 101 ("action forbidden") keeps the maintainer
# scripts from starting the service (an existing policy-rc.d is left as it
# is; one we add is removed afterwards). The tests run exim only with their
# own `-C <tempdir>/exim.conf`, `-bS` / `-odi`, no daemon.
#
# Needs root (or sudo) only when the package is missing. DEEPMAIL_EXIM, if
# set to an executable, is used as is and nothing is installed.
set -euo pipefail

find_exim() {
    if [ -n "${DEEPMAIL_EXIM:-}" ] && [ -x "$DEEPMAIL_EXIM" ]; then
        echo "$DEEPMAIL_EXIM"; return 0
    fi
    for c in /usr/sbin/exim4 /usr/sbin/exim; do
        [ -x "$c" ] && { echo "$c"; return 0; }
    done
    command -v exim4 2>/dev/null || command -v exim 2>/dev/null || return 1
}

if exim="$(find_exim)"; then
    echo "$exim"
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-exim.sh: exim is missing and we are not root (no sudo): apt-get install exim4-daemon-light" >&2; exit 1; }
    sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive

if ! apt-cache show exim4-daemon-light >/dev/null 2>&1; then
    echo "install-exim.sh: exim4-daemon-light not in apt's lists; running apt-get update" >&2
    $sudo apt-get update -qq >&2
fi

policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# added by deepmail scripts/peers/install-exim.sh while installing exim\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get install -y -qq --no-install-recommends exim4-daemon-light >&2

# Belt and braces: should a service manager have started it anyway, stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet exim4 2>/dev/null; then
    $sudo systemctl stop exim4 >&2 || true
fi

exim="$(find_exim)" || { echo "install-exim.sh: installed exim4-daemon-light but found no exim binary" >&2; exit 1; }
echo "$exim"
