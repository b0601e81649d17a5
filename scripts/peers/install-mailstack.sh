#!/usr/bin/env bash
# Install the real mail stack that the end-to-end test runs around the
# deepmail gateways (scripts/peers/mailstack/mailstack.py drives it): Exim
# (exim4-daemon-light, through install-exim.sh), Dovecot IMAP (dovecot-imapd)
# and swaks, and the unprivileged user the stack's daemons run as when the
# caller is root. Prints what it found or installed, one `name=path` a line:
#
#   bash scripts/peers/install-mailstack.sh
#   exim=/usr/sbin/exim4
#   dovecot=/usr/sbin/dovecot
#   doveadm=/usr/bin/doveadm
#   swaks=/usr/bin/swaks
#   python3=/usr/bin/python3
#   runas=deepmail-mail
#
# Idempotent: installed packages are left alone; `apt-get update` runs only
# when a missing package is not known to apt. No system daemon is started and
# no system configuration is used by the stack: while packages install, a
# policy-rc.d that answers 101 ("action forbidden") keeps the maintainer
# scripts from starting services (an existing policy-rc.d is left as it is;
# one we add is removed afterwards), and should a service manager have
# started dovecot or exim anyway it is stopped again. mailstack.py runs every
# daemon with its own configuration inside a temporary directory, on
# 127.0.0.1, at the ports it is given.
#
# The run user. Exim's Debian build refuses to deliver as root (Fixed
# never_users: 0) and Dovecot's rootless mode wants one plain user, so when
# mailstack.py is invoked as root it starts every daemon as an unprivileged
# system user: `deepmail-mail` (created here: system account, no home, no
# login shell), or `nobody` when that user does not exist. Invoked as anyone
# else, the daemons run as the caller.
#
# Needs root (or sudo) only when something is missing. Overrides, used as is:
# DEEPMAIL_EXIM, DEEPMAIL_DOVECOT, DEEPMAIL_SWAKS (executables).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runas=deepmail-mail

sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo -n"
fi
need_root() {
    if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
        echo "install-mailstack.sh: $1 is missing and we are not root (no sudo): $2" >&2
        exit 1
    fi
}

# Exim: the existing installer prints the binary's path on its last line.
exim="$(bash "$here/install-exim.sh" | tail -n 1)"
[ -x "$exim" ] || { echo "install-mailstack.sh: install-exim.sh gave no exim binary ('$exim')" >&2; exit 1; }

find_dovecot() {
    if [ -n "${DEEPMAIL_DOVECOT:-}" ] && [ -x "$DEEPMAIL_DOVECOT" ]; then
        echo "$DEEPMAIL_DOVECOT"; return 0
    fi
    # The imap binary comes with dovecot-imapd, not dovecot-core.
    [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] && { echo /usr/sbin/dovecot; return 0; }
    return 1
}
find_swaks() {
    if [ -n "${DEEPMAIL_SWAKS:-}" ] && [ -x "$DEEPMAIL_SWAKS" ]; then
        echo "$DEEPMAIL_SWAKS"; return 0
    fi
    command -v swaks 2>/dev/null
}

missing=()
find_dovecot >/dev/null || missing+=(dovecot-imapd)
find_swaks >/dev/null || missing+=(swaks)

if [ "${#missing[@]}" -gt 0 ]; then
    need_root "${missing[*]}" "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    for p in "${missing[@]}"; do
        if ! apt-cache show "$p" >/dev/null 2>&1; then
            echo "install-mailstack.sh: $p not in apt's lists; running apt-get update" >&2
            $sudo apt-get update -qq >&2
            break
        fi
    done

    policy=/usr/sbin/policy-rc.d
    added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# added by deepmail scripts/peers/install-mailstack.sh while installing packages\nexit 101\n' \
            | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        added_policy=1
    fi
    cleanup() { if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi; }
    trap cleanup EXIT

    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

    # Belt and braces: should a service manager have started one anyway,
    # stop it (it would hold ports 143/993/25 and is nothing the tests use).
    if command -v systemctl >/dev/null 2>&1; then
        for svc in dovecot exim4; do
            if systemctl is-active --quiet "$svc" 2>/dev/null; then
                $sudo systemctl stop "$svc" >&2 || true
            fi
        done
    fi
    for pidfile in /run/dovecot/master.pid /run/exim4/exim.pid; do
        if [ -r "$pidfile" ] && pid="$(cat "$pidfile" 2>/dev/null)" && [ -n "$pid" ] \
            && kill -0 "$pid" 2>/dev/null; then
            $sudo kill "$pid" >&2 || true
        fi
    done
fi

dovecot="$(find_dovecot)" || { echo "install-mailstack.sh: installed dovecot-imapd but found no /usr/sbin/dovecot with /usr/lib/dovecot/imap" >&2; exit 1; }
swaks="$(find_swaks)" || { echo "install-mailstack.sh: installed swaks but found no swaks binary" >&2; exit 1; }
doveadm="$(dirname "$dovecot")/doveadm"
[ -x "$doveadm" ] || doveadm="$(command -v doveadm 2>/dev/null || echo /usr/bin/doveadm)"
python="$(command -v python3 2>/dev/null)" || { echo "install-mailstack.sh: no python3 (mailstack.py needs Python 3.9+)" >&2; exit 1; }

# The run user for root-invoked stacks; anyone else runs the daemons as
# themselves.
if [ "$(id -u)" = 0 ]; then
    if ! getent passwd "$runas" >/dev/null; then
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/bin/false
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell "$nologin" --comment "deepmail test mail stack" "$runas" >&2
    fi
else
    runas="$(id -un)"
fi

echo "exim=$exim"
echo "dovecot=$dovecot"
echo "doveadm=$doveadm"
echo "swaks=$swaks"
echo "python3=$python"
echo "runas=$runas"
