#!/usr/bin/env bash
# SMTP accept rate and CPU per accepted message: deepmail's Earth gateway
# against Exim 4.96, driven by the same external load tool (Postfix's
# smtp-source), runs alternating A B A B, with the same durability on both
# sides (the message is fsynced to the spool before the 250; nothing is
# delivered during the run: Exim runs queue_only, the gateway's route is
# behind a contact plan whose window has not opened).
#
#   bash scripts/bench/accept-vs-exim.sh                  # the issue's three loads
#   bash scripts/bench/accept-vs-exim.sh 4:4 4:16 100:4   # SIZE_KIB:CONNECTIONS ...
#   MESSAGES=4000 ROUNDS=3 bash scripts/bench/accept-vs-exim.sh 4:4
#
# Needs: exim4 (bash scripts/peers/install-exim.sh), smtp-source
# (bash scripts/peers/install-postfix.sh) and a release build
# (cargo build --release -p deepmail). Spools of finished runs are moved
# aside under the work directory, never deleted during the benchmark
# (deleting a big spool slows inode creation on journal-free ext4).
# Prints one line per run and a summary per load with the ratios.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
messages="${MESSAGES:-2000}"
rounds="${ROUNDS:-2}"
loads=("$@")
[ ${#loads[@]} -eq 0 ] && loads=(4:4 4:16 100:4)

die() { echo "accept-vs-exim: $*" >&2; exit 2; }
exim="$(command -v exim4 || command -v exim || true)"
[ -n "$exim" ] || die "exim4 is not installed (bash scripts/peers/install-exim.sh)"
postfix="${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/postfix"
source_bin="$postfix/usr/sbin/smtp-source"
[ -x "$source_bin" ] || die "smtp-source is not installed (bash scripts/peers/install-postfix.sh)"
deepmail="$here/target/release/deepmail"
[ -x "$deepmail" ] || die "no release build at $deepmail (cargo build --release -p deepmail)"

work="$(mktemp -d /tmp/deepmail-accept-vs-exim.XXXXXX)"
echo "accept-vs-exim: work directory $work (spools kept there)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Exim runs as the caller; as root, Debian's Exim refuses to run anything
# as root (FIXED_NEVER_USERS=0), so its processes run as nobody.
if [ "$(id -u)" = 0 ]; then uid=65534; gid=65534; else uid="$(id -u)"; gid="$(id -g)"; fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1 ($2)"
}

# CPU seconds used by a process and its reaped children (utime, stime,
# cutime, cstime from /proc/PID/stat).
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
}

start_exim() { # DIR PORT -> pid
    local dir="$1" port="$2"
    mkdir -p "$dir/spool" "$dir/log"
    cat >"$dir/exim.conf" <<EOF
primary_hostname = earth-gw.example
qualify_domain = earth.example
spool_directory = $dir/spool
split_spool_directory = false
log_file_path = $dir/log/%slog
exim_user = $uid
exim_group = $gid
trusted_users = $uid
never_users =
keep_environment =
daemon_smtp_ports = $port
local_interfaces = 127.0.0.1
# No DNS or ident lookups per connection: the gateway does none either.
host_lookup =
rfc1413_hosts =
smtp_accept_max = 200
smtp_accept_reserve = 0
message_size_limit = 50M
# Accept and queue: the message is on disk (Exim fsyncs its spool files)
# before the 250, and nothing is delivered during the run.
queue_only = true
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept domains = moon.example
  deny message = relay not permitted

begin routers
begin transports
EOF
    if [ "$uid" = 65534 ]; then
        # The configuration stays root's (Exim checks its owner); the spool
        # and log are nobody's, and every directory above them traversable.
        chmod 755 "$work" "$dir"
        chown -R "$uid:$gid" "$dir/spool" "$dir/log"
    fi
    "$exim" -C "$dir/exim.conf" -bd -oX "$port" -oP "$dir/exim.pid" &
    local launcher=$!
    wait_port "$port" "exim"
    # -bd forks the daemon; its pid is in the pid file.
    for _ in $(seq 50); do [ -s "$dir/exim.pid" ] && break; sleep 0.1; done
    wait "$launcher" 2>/dev/null || true
    local pid
    pid="$(cat "$dir/exim.pid")"
    pids+=("$pid")
    echo "$pid"
}

start_deepmail() { # DIR PORT -> pid
    local dir="$1" port="$2"
    mkdir -p "$dir"
    cat >"$dir/earth.toml" <<EOF
name = "gw.earth.example"
spool = "$dir/spool"
[smtp]
listen = "127.0.0.1:$port"
relay-domains = ["moon.example"]
max-connections = 200
[[route]]
domain = "moon.example"
uri = "https://127.0.0.1:9/inboundmail"
# The only window opens in 2030: the route is known down, nothing is
# attempted during the run (as Exim's queue_only).
contacts = """
@ 2030/01/01-00:00:00
a contact +0 +86400 1 2 250000
"""
max-age-cap-days = 3650
EOF
    "$deepmail" gateway --config "$dir/earth.toml" --log-level warn >"$dir/gateway.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port" "deepmail gateway (log: $dir/gateway.log)"
    echo "$pid"
}

run_load() { # NAME PID PORT SIZE_KIB CONNECTIONS -> "rate cpu_ms"
    local name="$1" pid="$2" port="$3" kib="$4" conns="$5"
    local before after t0 t1
    before="$(cpu_of "$pid")"
    t0="$(date +%s.%N)"
    LD_LIBRARY_PATH="$postfix/usr/lib/postfix" "$source_bin" -d -s "$conns" -m "$messages" \
        -l "$((kib * 1024))" -f ops@earth.example -t ada@moon.example "127.0.0.1:$port" \
        >/dev/null 2>"$work/source.err" || die "smtp-source against $name failed: $(tail -3 "$work/source.err")"
    t1="$(date +%s.%N)"
    # Let the server reap its connection processes before reading its CPU.
    sleep 1
    after="$(cpu_of "$pid")"
    awk -v n="$messages" -v t0="$t0" -v t1="$t1" -v c0="$before" -v c1="$after" \
        'BEGIN { printf "%.0f %.3f\n", n / (t1 - t0), (c1 - c0) * 1000 / n }'
}

queued() { # NAME DIR -> messages on disk
    case "$1" in
        exim) find "$2/spool/input" -name '*-H' 2>/dev/null | wc -l ;;
        deepmail) find "$2/spool/queue" -name '*.msg' 2>/dev/null | wc -l ;;
    esac
}

# The median of numbers given on one line.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "accept-vs-exim: $messages messages per run, $rounds rounds A B, $(nproc) cores; $("$exim" -bV 2>/dev/null | head -1)"
printf '%-10s %-6s %-8s %5s %10s %12s %8s\n' load round mta conns "msg/s" "cpu ms/msg" queued
summary=()
for load in "${loads[@]}"; do
    kib="${load%%:*}"; conns="${load##*:}"
    declare -A rate=() cpu=()
    for round in $(seq "$rounds"); do
        for mta in deepmail exim; do
            dir="$work/$mta-$kib-$conns-$round"
            port="$(free_port)"
            if [ "$mta" = exim ]; then pid="$(start_exim "$dir" "$port")"; else pid="$(start_deepmail "$dir" "$port")"; fi
            read -r r c < <(run_load "$mta" "$pid" "$port" "$kib" "$conns")
            n="$(queued "$mta" "$dir")"
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            sleep 0.5
            [ "$n" -ge "$messages" ] || die "$mta queued $n of $messages messages (see $dir)"
            printf '%-10s %-6s %-8s %5s %10s %12s %8s\n' "${kib}KiB" "$round" "$mta" "$conns" "$r" "$c" "$n"
            rate[$mta]+="$r "; cpu[$mta]+="$c "
        done
    done
    dr="$(echo "${rate[deepmail]}" | median)"; er="$(echo "${rate[exim]}" | median)"
    dc="$(echo "${cpu[deepmail]}" | median)"; ec="$(echo "${cpu[exim]}" | median)"
    summary+=("$(awk -v l="${kib} KiB x $conns" -v dr="$dr" -v er="$er" -v dc="$dc" -v ec="$ec" \
        'BEGIN { printf "%-14s accept rate %6.0f vs %6.0f msg/s = %.2fx Exim (goal >= 1.5x); CPU %.3f vs %.3f ms/msg = %.2fx Exim (goal <= 1.0x)", l, dr, er, dr / er, dc, ec, dc / ec }')")
    unset rate cpu
done
echo
echo "medians, deepmail vs Exim:"
printf '  %s\n' "${summary[@]}"
