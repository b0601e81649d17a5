#!/usr/bin/env bash
# Unpack Debian's postfix package (without installing it: it would replace
# Exim, and no daemon is wanted) into the per-machine peer cache, and print
# where its programs are, one `name=path` line each:
#
#   bash scripts/peers/install-postfix.sh
#   #   root=/root/.cache/deepmail/peers/postfix      (run them with
#   #   postconf=.../usr/sbin/postconf               LD_LIBRARY_PATH=
#   #   postmap=.../usr/sbin/postmap                 <root>/usr/lib/postfix)
#   #   smtp-source=.../usr/sbin/smtp-source
#
# What uses it: `deepmail mta-config --mta postfix` is checked with the real
# postconf and postmap (toolkit/cli/tests/mta_config.rs), and smtp-source is
# the SMTP load generator for the gateway-vs-Exim benchmark.
#
# Idempotent: an unpacked tree that runs `postconf -d mail_version` is
# reused. Needs apt (the package's shared libraries are installed as
# ordinary packages; that needs root or sudo the first time).
set -euo pipefail
me="install-postfix.sh"
root="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/postfix"

print_paths() {
    echo "root=$root"
    for p in postconf postmap smtp-source smtp-sink; do
        echo "$p=$root/usr/sbin/$p"
    done
}

works() {
    [ -x "$root/usr/sbin/postconf" ] &&
        LD_LIBRARY_PATH="$root/usr/lib/postfix" "$root/usr/sbin/postconf" -d mail_version >/dev/null 2>&1
}

if works; then
    print_paths
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "$me: not root and no sudo: cannot install postfix's libraries" >&2; exit 1; }
    sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
libs="libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3"
if ! $sudo apt-get install -y --no-install-recommends $libs >&2; then
    $sudo apt-get update >&2
    $sudo apt-get install -y --no-install-recommends $libs >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download postfix >&2) || { $sudo apt-get update >&2; (cd "$work" && apt-get download postfix >&2); }
mkdir -p "$(dirname "$root")"
rm -rf "$root.tmp"
dpkg -x "$work"/postfix_*.deb "$root.tmp"
rm -rf "$root"
mv "$root.tmp" "$root"
works || { echo "$me: the unpacked postconf does not run" >&2; exit 1; }
print_paths
