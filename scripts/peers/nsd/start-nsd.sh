#!/usr/bin/env bash
# Start a private NSD (authoritative DNS) on 127.0.0.1:PORT serving the zone
# files of ZONEDIR, wait until it answers, and print its PID (one line, the
# only thing on stdout). Stop it with stop-nsd.sh ZONEDIR.
#
#   bash scripts/peers/nsd/start-nsd.sh ZONEDIR PORT     # prints e.g. 12345
#
# ZONEDIR  a directory (created if missing) that holds the zones as
#          NAME.zone (zone NAME, e.g. moon.example.zone -> moon.example). If
#          it has no *.zone file, the repo's zones (scripts/peers/nsd/zones/)
#          are copied into it, so a test can pass a fresh temp dir. The
#          script writes nsd.conf there, and NSD writes nsd.pid, nsd.log,
#          zone.list, xfrd.state there too: use a directory of your own, not
#          the repo's zones/.
# PORT     UDP and TCP port on 127.0.0.1 (IPv4 only), e.g. 53530.
#
# Besides the zone files, the config always declares the zone
# servfail.example with a zone file that does not exist: NSD then answers
# SERVFAIL for every name in it (a zone it is configured for but has no data
# for). Names in no configured zone get REFUSED.
#
# Works as root and as an ordinary user: `username: ""` keeps NSD from
# dropping privileges (as root it stays root: no need for the zone files to
# be readable by the `nsd` user in a 0700 temp dir; as a user there is
# nothing to drop to), `chroot: ""`, and every file NSD writes is in ZONEDIR.
# NSD runs in the foreground (-d) as a background child of this script with
# stdin/stdout/stderr redirected (stdout/stderr to ZONEDIR/nsd.log), so a
# caller that collects this script's output (Rust's Command::output) gets EOF
# as soon as the script exits.
#
# Exit status 0: NSD is up and answered an SOA query over UDP for the first
# zone. Non-zero (with the reason and the tail of nsd.log on stderr): bad
# arguments, no nsd (run scripts/peers/install-nsd.sh), a zone that
# nsd-checkzone rejects, an NSD already running from ZONEDIR, or NSD that
# died or did not answer within $DEEPMAIL_NSD_START_TIMEOUT seconds (default
# 10), e.g. because the port is taken.
#
# DEEPMAIL_NSD, if set to an executable, is the nsd used (nsd-checkzone is
# looked for beside it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me="start-nsd.sh"

if [ $# -ne 2 ]; then
    echo "usage: $me ZONEDIR PORT" >&2
    exit 64
fi
port="$2"
case "$port" in
    ''|*[!0-9]*) echo "$me: PORT must be a number, not '$port'" >&2; exit 64 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "$me: PORT $port out of range" >&2; exit 64
fi
mkdir -p "$1"
zonedir="$(cd "$1" && pwd)"

# --- nsd ---------------------------------------------------------------------
nsd=""
if [ -n "${DEEPMAIL_NSD:-}" ] && [ -x "$DEEPMAIL_NSD" ]; then
    nsd="$DEEPMAIL_NSD"
elif [ -x /usr/sbin/nsd ]; then
    nsd=/usr/sbin/nsd
else
    nsd="$(command -v nsd 2>/dev/null)" || true
fi
checkzone="$(dirname "${nsd:-/usr/sbin/nsd}")/nsd-checkzone"
[ -x "$checkzone" ] || checkzone="$(command -v nsd-checkzone 2>/dev/null)" || true
if [ -z "$nsd" ] || [ -z "$checkzone" ]; then
    echo "$me: nsd / nsd-checkzone not found; install them with: bash scripts/peers/install-nsd.sh" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "$me: python3 not found (needed for the readiness probe)" >&2; exit 1; }

# alive PID: the process exists and is not a zombie (a dead child of ours, or
# an orphan whose new parent does not reap, still answers kill -0).
alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# --- not twice ---------------------------------------------------------------
pidfile="$zonedir/nsd.pid"
if [ -s "$pidfile" ] && old="$(cat "$pidfile")" && [ -n "$old" ] && alive "$old"; then
    echo "$me: an NSD (pid $old) already runs from $zonedir; stop it first: bash $here/stop-nsd.sh $zonedir" >&2
    exit 1
fi
rm -f "$pidfile"

# --- zones -------------------------------------------------------------------
shopt -s nullglob
zones=("$zonedir"/*.zone)
if [ ${#zones[@]} -eq 0 ]; then
    cp "$here"/zones/*.zone "$zonedir"/
    zones=("$zonedir"/*.zone)
fi
shopt -u nullglob

first_zone=""
zone_conf=""
for f in "${zones[@]}"; do
    base="$(basename "$f")"
    name="${base%.zone}"
    if ! out="$("$checkzone" "$name" "$f" 2>&1)"; then
        echo "$me: nsd-checkzone rejects $f:" >&2
        echo "$out" >&2
        exit 1
    fi
    [ -n "$first_zone" ] || first_zone="$name"
    zone_conf+="
zone:
    name: \"$name\"
    zonefile: \"$base\"
"
done

# --- config ------------------------------------------------------------------
conf="$zonedir/nsd.conf"
cat >"$conf" <<EOF
# Written by scripts/peers/nsd/start-nsd.sh; rewritten on every start.
server:
    ip-address: 127.0.0.1@$port
    port: $port
    do-ip4: yes
    do-ip6: no
    reuseport: no
    server-count: 1
    # "" = never drop privileges (stay root as root; nothing to drop to as a user)
    username: ""
    chroot: ""
    # every relative path below is relative to zonesdir
    zonesdir: "$zonedir"
    database: ""
    zonelistfile: "zone.list"
    xfrdfile: "xfrd.state"
    xfrdir: "$zonedir"
    pidfile: "$pidfile"
    logfile: "nsd.log"
    verbosity: 1
    # never rewrite our zone files
    zonefiles-write: 0
    # the defaults, spelt out because the tests rely on them
    ipv4-edns-size: 1232
    minimal-responses: no
    round-robin: no
    refuse-any: no

remote-control:
    control-enable: no
$zone_conf
# Configured but never loadable (the file does not exist): SERVFAIL for every
# name in servfail.example.
zone:
    name: "servfail.example"
    zonefile: "servfail.example.zone.does-not-exist"
EOF

if [ -x "$(dirname "$nsd")/nsd-checkconf" ]; then
    if ! out="$("$(dirname "$nsd")/nsd-checkconf" "$conf" 2>&1)"; then
        echo "$me: nsd-checkconf rejects $conf:" >&2
        echo "$out" >&2
        exit 1
    fi
fi

# --- start -------------------------------------------------------------------
log="$zonedir/nsd.log"
: >>"$log"
log_start=$(wc -c <"$log")
"$nsd" -d -c "$conf" </dev/null >>"$log" 2>&1 &
pid=$!

fail() {
    echo "$me: $1" >&2
    echo "--- $log (this start) ---" >&2
    tail -c +"$((log_start + 1))" "$log" | tail -n 30 >&2
    if alive "$pid"; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
    exit 1
}

timeout="${DEEPMAIL_NSD_START_TIMEOUT:-10}"
deadline=$((SECONDS + timeout))
while :; do
    if ! alive "$pid"; then
        wait "$pid" 2>/dev/null && rc=0 || rc=$?
        fail "nsd exited (status $rc) before answering on 127.0.0.1:$port (port taken?)"
    fi
    # Ready = our NSD logged that it started (it does so only once it has
    # bound its sockets: an answer alone could come from another server that
    # already holds the port) and the port answers.
    if tail -c +"$((log_start + 1))" "$log" | grep -qE "notice: nsd started .*, pid $pid\$" \
        && python3 "$here/query.py" --port "$port" --udp --type SOA --timeout 0.3 "$first_zone" 2>/dev/null \
        | grep -q '"rcode": "NOERROR"'; then
        break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        fail "nsd (pid $pid) did not answer SOA $first_zone on 127.0.0.1:$port within ${timeout}s"
    fi
    sleep 0.1
done

# NSD writes its pidfile itself; make sure it names the process we started.
echo "$pid" >"$pidfile"
echo "$pid"
