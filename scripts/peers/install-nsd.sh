#!/usr/bin/env bash
# Install NSD (Debian's `nsd`), the real authoritative DNS server the URI
# resolver tests query, and print the paths of `nsd` and `nsd-checkzone`,
# one a line:
#
#   bash scripts/peers/install-nsd.sh      # prints /usr/sbin/nsd
#                                          #        /usr/sbin/nsd-checkzone
#
# Idempotent: an installed nsd is left alone. `apt-get update` runs only when
# the package is not known to apt. The system's nsd service is never left
# running and no system config is used by us: while the package installs, a
# policy-rc.d that answers 101 ("action forbidden") keeps the maintainer
# scripts from starting the service (an existing policy-rc.d is left as it
# is; one we add is removed afterwards), and should a service manager have
# started it anyway it is stopped. The tests run nsd only through
# scripts/peers/nsd/start-nsd.sh, with their own nsd.conf in a temp dir, on
# 127.0.0.1 at a high port.
#
# Needs root (or sudo) only when the package is missing. DEEPMAIL_NSD, if set
# to an executable, is used as is (nsd-checkzone is looked for beside it) and
# nothing is installed.
set -euo pipefail

find_nsd() {
    local nsd="" checkzone=""
    if [ -n "${DEEPMAIL_NSD:-}" ] && [ -x "$DEEPMAIL_NSD" ]; then
        nsd="$DEEPMAIL_NSD"
    else
        for c in /usr/sbin/nsd /usr/local/sbin/nsd; do
            [ -x "$c" ] && { nsd="$c"; break; }
        done
        [ -n "$nsd" ] || nsd="$(command -v nsd 2>/dev/null)" || return 1
    fi
    checkzone="$(dirname "$nsd")/nsd-checkzone"
    [ -x "$checkzone" ] || checkzone="$(command -v nsd-checkzone 2>/dev/null)" || return 1
    printf '%s\n%s\n' "$nsd" "$checkzone"
}

if paths="$(find_nsd)"; then
    echo "$paths"
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-nsd.sh: nsd is missing and we are not root (no sudo): apt-get install nsd" >&2; exit 1; }
    sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive

if ! apt-cache show nsd >/dev/null 2>&1; then
    echo "install-nsd.sh: nsd not in apt's lists; running apt-get update" >&2
    $sudo apt-get update -qq >&2
fi

policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# added by deepmail scripts/peers/install-nsd.sh while installing nsd\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get install -y -qq --no-install-recommends nsd >&2

# Belt and braces: should a service manager have started it anyway, stop it
# (it would hold port 53 and is nothing the tests use).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nsd 2>/dev/null; then
    $sudo systemctl stop nsd >&2 || true
fi
if [ -r /run/nsd/nsd.pid ] && pid="$(cat /run/nsd/nsd.pid 2>/dev/null)" && [ -n "$pid" ] \
    && kill -0 "$pid" 2>/dev/null; then
    $sudo kill "$pid" >&2 || true
fi

paths="$(find_nsd)" || { echo "install-nsd.sh: installed nsd but found no nsd/nsd-checkzone binary" >&2; exit 1; }
echo "$paths"
