#!/usr/bin/env bash
# Stop the NSD that start-nsd.sh started from ZONEDIR (the PID in
# ZONEDIR/nsd.pid): SIGTERM, wait up to 5 s for it and its children to go,
# then SIGKILL. Prints the stopped PID (one line) on stdout, nothing when no
# NSD was running from ZONEDIR. Exit status 0 in both cases (idempotent),
# non-zero only on a usage error or an NSD that survives SIGKILL.
#
#   bash scripts/peers/nsd/stop-nsd.sh ZONEDIR
#
# Only the process named in the pidfile (and the server/xfrd children NSD
# forked, which exit with it) is signalled, and only if it is an nsd.
set -euo pipefail
me="stop-nsd.sh"

if [ $# -ne 1 ]; then
    echo "usage: $me ZONEDIR" >&2
    exit 64
fi
pidfile="$1/nsd.pid"
[ -s "$pidfile" ] || exit 0
pid="$(tr -dc 0-9 <"$pidfile")"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    exit 0
fi
comm="$(cat "/proc/$pid/comm" 2>/dev/null || ps -o comm= -p "$pid" 2>/dev/null || true)"
case "$comm" in
    nsd*) ;;
    *) echo "$me: pid $pid in $pidfile is '$comm', not nsd; not touching it" >&2
       rm -f "$pidfile"
       exit 0 ;;
esac

# NSD's descendants (its main and server processes: the process we started
# is NSD's xfrd, "nsd: xfrd"), to wait for them as well.
children=""
level="$pid"
for _ in 1 2 3; do
    [ -n "$level" ] || break
    level="$(ps -o pid= --ppid "$(echo $level | tr ' ' ,)" 2>/dev/null | tr -s ' \n' ' ' || true)"
    children="$children $level"
done

gone() {
    local p
    for p in "$pid" $children; do
        # a zombie (our own child never reaped) counts as gone
        if kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c1)" != Z ]; then
            return 1
        fi
    done
    return 0
}

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 50); do
    gone && break
    sleep 0.1
done
if ! gone; then
    echo "$me: nsd $pid still there after SIGTERM and 5s; SIGKILL" >&2
    kill -KILL "$pid" $children 2>/dev/null || true
    sleep 0.2
    gone || { echo "$me: nsd $pid survives SIGKILL" >&2; exit 1; }
fi
rm -f "$pidfile"
echo "$pid"
