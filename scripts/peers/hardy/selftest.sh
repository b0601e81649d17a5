#!/usr/bin/env bash
# Prove hardy-node (Hardy's hardy-bpa 0.2 + hardy-tcpclv4 0.4) relays bundles
# over TCPCLv4 to a final TCPCLv4 peer that is not Hardy -- tcpcl.py listen
# from scripts/peers/dtnd standing in for the Moon gateway (ipn:2.0):
#
#   tcpcl.py send -> hardy-node ipn:101.0 --route ipn:2.*=FINAL -> tcpcl.py listen ipn:2.0
#   tcpcl.py send -> hardy-node ipn:111.0 =TLS=> hardy-node ipn:112.0 -> tcpcl.py listen ipn:2.0
#
#   bash scripts/peers/hardy/selftest.sh      # ~15-25 s once hardy-node is built; exit 0 = PASS
#
# Checks, each printed as "ok - ..." or "not ok - ...". "Unaltered" means:
# primary block and payload block byte-identical to what was injected, no
# block removed or changed, and the only addition a Previous Node block
# (RFC 9171 §4.4.1) naming the relay; fragments keep their offset and total
# ADU length and must reassemble to the ADU.
#   1. two 3,000-octet bundles (CRC-32C and CRC-16) injected at node 101;
#   2. one 3 MiB bundle (48 TCPCL segments in and out);
#   3. a 3 MiB ADU cut into 48 fragments of 64 KiB: forwarded as 48
#      fragments (Hardy reassembles only bundles for itself), reassembled
#      here to the ADU;
#   4. TLS (needs openssl; skipped, not failed, without it): a test PKI;
#      two TLS nodes 111 -> 112 relay a bundle and 4 fragments with TLS
#      negotiated between them (seen in their debug logs) and plain TCPCL to
#      the final peer, whose contact header does not offer TLS; node 112's
#      certificate deliberately names ipn:999.0 in its URI SAN (accepted:
#      Hardy does not check the node ID against the certificate); a
#      --require-tls node ends a session from a peer without TLS; a node
#      trusting another CA cannot open its session (certificate refused);
#   5. a bundle for ipn:7.1 (no --route) is accepted and dropped
#      (--unrouted drop, the default), never forwarded;
#   6. the final peer goes away and comes back on the same port: a bundle
#      sent meanwhile waits and is delivered once node 101 reopened the
#      session (--reconnect 0.5);
#   7. SIGTERM: node 101 exits 0.
# Timings (python3 start-up included where a python tool is involved) are
# printed with each check.
#
# Ports: 7 consecutive free TCP ports from $DEEPMAIL_HARDY_TEST_PORT (default:
# a free range picked at random in 20000-59999). Files: a mktemp -d directory,
# removed at the end unless the test failed or DEEPMAIL_KEEP_TMP=1. Needs
# python3, and hardy-node (found or built by scripts/peers/install-hardy.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dt="$here/../dtnd"
me="selftest.sh"
py=python3
export PYTHONDONTWRITEBYTECODE=1
command -v $py >/dev/null || { echo "$me: python3 not found" >&2; exit 1; }

bins="$(bash "$here/../install-hardy.sh")"
node="$(sed -n 's/^hardy-node=//p' <<<"$bins")"
[ -x "$node" ] || { echo "$me: install-hardy.sh printed no hardy-node" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/deepmail-hardy-selftest.XXXXXX")"
pids=()
failed=0
cleanup() {
    local rc=$? p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "$failed" != 0 ] || [ "$rc" != 0 ] || [ "${DEEPMAIL_KEEP_TMP:-}" = 1 ]; then
        echo "# files kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }

# --- ports -------------------------------------------------------------------
base="$($py - "${DEEPMAIL_HARDY_TEST_PORT:-}" <<'EOF'
import random, socket, sys
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
fixed = sys.argv[1]
cands = [int(fixed)] if fixed else [random.randrange(20000, 59990, 10) for _ in range(50)]
for b in cands:
    if all(free(b + i) for i in range(7)):
        print(b); break
else:
    sys.exit("no 7 free ports")
EOF
)"
p_n1=$base; p_final=$((base + 1)); p_t1=$((base + 2)); p_t2=$((base + 3)); p_t3=$((base + 4)); p_t4=$((base + 5))
echo "# hardy-node: $node ($("$node" --version))"
echo "# ports: node101 $p_n1, final peer $p_final, tls nodes 111/112/113/114 $p_t1/$p_t2/$p_t3/$p_t4; dir $tmp"

# --- helpers -------------------------------------------------------------------
# start_final LOG OUT: tcpcl.py listen as ipn:2.0 on p_final
start_final() {
    $py "$dt/tcpcl.py" listen --port "$p_final" --node-id ipn:2.0 --out "$2" >"$1" 2>"$1.err" &
    pids+=($!)
    final_pid=$!
    local i
    for i in $(seq 100); do grep -q '"event": "listening"' "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "$me: tcpcl.py listen did not start:" >&2; cat "$1.err" >&2; exit 1
}

# start_node NAME ARGS...: start hardy-node, wait for its ready line; sets last_pid, ready_ms
start_node() {
    local name="$1" i t0 t1; shift
    t0=$(now)
    "$node" "$@" 2>"$tmp/$name.log" &
    last_pid=$!
    pids+=($last_pid)
    for i in $(seq 200); do
        if grep -q '^hardy-node: ready' "$tmp/$name.log" 2>/dev/null; then
            t1=$(now); ready_ms=$(ms "$t0" "$t1"); return 0
        fi
        kill -0 "$last_pid" 2>/dev/null || break
        sleep 0.025
    done
    echo "$me: hardy-node $name did not become ready:" >&2; tail -20 "$tmp/$name.log" >&2; exit 1
}

# wait_log FILE REGEX [SECONDS]
wait_log() {
    local i n=$(( ${3:-10} * 20 ))
    for i in $(seq "$n"); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# wait_bundles LOG N [SECONDS]: until LOG reports N bundles
wait_bundles() {
    local i n=$(( ${3:-20} * 20 ))
    for i in $(seq "$n"); do
        [ "$(grep -c '"event": "bundle"' "$1" 2>/dev/null || true)" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
count_bundles() { grep -c '"event": "bundle"' "$1" 2>/dev/null || true; }

# check.py RXLOG N_BEFORE SENDLOG PREV_NODE ADU_SIZE(0 = whole bundles) FILE...
cat >"$tmp/check.py" <<'EOF'
import json, sys
rxlog, n_before, sendlog, prev, adu_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
files = sys.argv[6:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0] + "/dtnd")
import bpv7
orig = {}
for f in files:
    data = open(f, "rb").read()
    orig[bpv7.summary(data)["id"]] = (f, bpv7.summary(data))
evs = [json.loads(l) for l in open(rxlog) if '"event": "bundle"' in l][n_before:]
sent = {e["file"]: e for e in (json.loads(l) for l in open(sendlog)) if e.get("event") == "sent"}
problems, seen, adu, lat, segs = [], set(), {}, [], []
for e in evs:
    bid = e["bundle"]["id"]
    if bid not in orig:
        problems.append("unexpected bundle %s" % bid); continue
    if bid in seen:
        problems.append("duplicate %s" % bid)
    seen.add(bid)
    f, x = orig[bid]
    y = bpv7.summary(open(e["file"], "rb").read())
    if x["primary"]["raw_sha256"] != y["primary"]["raw_sha256"]:
        problems.append("%s: primary block changed" % bid)
    if x["payload_sha256"] != y["payload_sha256"]:
        problems.append("%s: payload changed" % bid)
    xb = {(b["type"], b["number"]): b for b in x["blocks"]}
    yb = {(b["type"], b["number"]): b for b in y["blocks"]}
    added = [yb[k] for k in yb if k not in xb]
    if [k for k in xb if k not in yb]:
        problems.append("%s: blocks removed" % bid)
    if [k for k in xb if k in yb and xb[k]["raw_sha256"] != yb[k]["raw_sha256"]]:
        problems.append("%s: blocks changed" % bid)
    if len(added) != 1 or added[0]["type"] != 6 or added[0].get("previous_node") != prev:
        problems.append("%s: added blocks %s (want one previous-node %s)"
                        % (bid, [(b["type"], b.get("previous_node")) for b in added], prev))
    p = bpv7.parse(open(e["file"], "rb").read())
    if adu_size:
        b = e["bundle"]
        if not b["is_fragment"] or b["total_adu_length"] != adu_size:
            problems.append("%s: fragment flag/total ADU length lost" % bid)
        adu[b["fragment_offset"]] = p[2]["payload"]
    s = sent.get(f)
    if s is None or s["result"] != "acked":
        problems.append("%s: injection not acked (%s)" % (bid, s and s["result"]))
    else:
        lat.append((e["ts"] - (s["ts"] - s["elapsed_ms"] / 1000)) * 1000)
        segs.append((s["segments"], e["segments"]))
    blk = added[0] if added else {}
missing = set(orig) - seen
if missing:
    problems.append("%d of %d not received: %s" % (len(missing), len(orig), sorted(missing)[:3]))
if adu_size and not problems:
    whole = b"".join(adu[k] for k in sorted(adu))
    if whole != bytes((i * 131 + 7) & 0xFF for i in range(adu_size)):
        problems.append("fragments do not reassemble to the %d-octet ADU" % adu_size)
if problems:
    print("bad " + "; ".join(problems[:6]))
else:
    sizes = sorted(set(e["size"] for e in evs))
    print("ok %d bundle(s) of %s B received, TCPCL segments in/out %s, latency %.1f-%.1f ms (send start -> received), added block: previous-node #%s crc %s = %s"
          % (len(evs), "/".join(map(str, sizes[:3])) + ("..." if len(sizes) > 3 else ""),
             "/".join(sorted(set("%d/%d" % s for s in segs))), min(lat), max(lat),
             blk.get("number"), blk.get("crc_type"), blk.get("previous_node")))
EOF
mkdir -p "$tmp/dtnd"; cp "$dt/bpv7.py" "$tmp/dtnd/bpv7.py"

# inject_check LABEL NODEPORT PREV ADU_SIZE FILE...: send FILEs from ipn:9.0, check at the final peer
inject_check() {
    local label="$1" port="$2" prev="$3" adu="$4" n_before res t0 t1; shift 4
    n_before=$(count_bundles "$rx_log")
    t0=$(now)
    $py "$dt/tcpcl.py" send --port "$port" --node-id ipn:9.0 "$@" >"$tmp/send.$label.out" || true
    if wait_bundles "$rx_log" $((n_before + $#)) 30; then
        t1=$(now)
        res="$($py "$tmp/check.py" "$rx_log" "$n_before" "$tmp/send.$label.out" "$prev" "$adu" "$@")"
        if [ "${res%% *}" = ok ]; then
            ok "$label: ${res#ok } (all in $(ms "$t0" "$t1") ms incl. python start)"
        else
            notok "$label: ${res#bad }"
        fi
    else
        notok "$label: only $(( $(count_bundles "$rx_log") - n_before )) of $# bundles reached the final peer within 30 s (send: $(grep -o '"result": "[^"]*"' "$tmp/send.$label.out" | sort | uniq -c | tr -s ' ' | tr '\n' ' '))"
    fi
}

# --- final peer and node 101 ----------------------------------------------------
rx_log="$tmp/final.log"
start_final "$rx_log" "$tmp/rx"
start_node n101 --node-id ipn:101.0 --listen "127.0.0.1:$p_n1" --route "ipn:2.*=127.0.0.1:$p_final" --reconnect 0.5
n101_pid=$last_pid
if wait_log "$tmp/n101.log" 'opened TCPCLv4 session' 5; then
    ok "node ipn:101.0 ready ${ready_ms} ms after spawn (listener accepting), session to the final peer open: $(grep -o 'opened TCPCLv4 session in [0-9]* ms' "$tmp/n101.log" | head -1)"
else
    notok "node 101 did not open its route session"; tail -20 "$tmp/n101.log" >&2
fi

# --- 1. whole bundles -------------------------------------------------------------
$py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3000 --crc 32 --seq 1 --out "$tmp/w32.cbor" >/dev/null
$py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3000 --crc 16 --seq 2 --out "$tmp/w16.cbor" >/dev/null
inject_check "whole 3000 B (CRC-32C, CRC-16) via node 101" "$p_n1" ipn:101.0 0 "$tmp/w32.cbor" "$tmp/w16.cbor"

# --- 2. one 3 MiB bundle ----------------------------------------------------------
$py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3145728 --seq 3 --out "$tmp/big.cbor" >/dev/null
inject_check "one 3 MiB bundle via node 101" "$p_n1" ipn:101.0 0 "$tmp/big.cbor"

# --- 3. 3 MiB ADU in 48 fragments of 64 KiB -----------------------------------------
$py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3145728 --fragments 48 --seq 4 \
    --out "$tmp/frag" >/dev/null
frags=()
for i in $(seq 0 47); do frags+=("$tmp/frag.$i.cbor"); done
inject_check "3 MiB ADU as 48 x 64 KiB fragments via node 101, forwarded as fragments" "$p_n1" ipn:101.0 3145728 "${frags[@]}"

# --- 4. TLS ------------------------------------------------------------------------
if command -v openssl >/dev/null 2>&1; then
    pki="$tmp/pki"; mkdir -p "$pki"
    t0=$(now)
    (
        cd "$pki"
        for ca in ca other; do
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $ca.key 2>/dev/null
            openssl req -x509 -new -key $ca.key -subj "/CN=deepmail hardy selftest $ca" -days 2 -out $ca.pem \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        done
        for n in n111:ipn:111.0 n112:ipn:999.0 n113:ipn:113.0; do
            name=${n%%:*}; uri=${n#*:}
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $name.key 2>/dev/null
            openssl req -new -key $name.key -subj "/CN=localhost" -out $name.csr 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,URI:%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$uri" >$name.ext
            openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile $name.ext -out $name.pem 2>/dev/null
        done
    )
    t1=$(now)
    echo "# TLS test PKI (openssl $(openssl version | cut -d' ' -f2), EC P-256, PKCS#8 keys) made in $(ms "$t0" "$t1") ms"
    tlslog="info,hardy_tcpclv4=debug"
    start_node n112 --node-id ipn:112.0 --listen "127.0.0.1:$p_t2" --route "ipn:2.*=127.0.0.1:$p_final" \
        --tls-cert "$pki/n112.pem" --tls-key "$pki/n112.key" --tls-ca "$pki/ca.pem" --log "$tlslog"
    start_node n111 --node-id ipn:111.0 --listen "127.0.0.1:$p_t1" --route "ipn:2.*=127.0.0.1:$p_t2" \
        --tls-cert "$pki/n111.pem" --tls-key "$pki/n111.key" --tls-ca "$pki/ca.pem" --log "$tlslog"
    if wait_log "$tmp/n111.log" 'opened TCPCLv4 session' 5 && wait_log "$tmp/n112.log" 'opened TCPCLv4 session' 5; then
        if grep -q 'TLS session key negotiation completed' "$tmp/n111.log" \
            && grep -q 'TLS session key negotiation completed' "$tmp/n112.log"; then
            ok "TLS: node 111 -> node 112 session negotiated TLS (both logs: 'TLS session key negotiation completed'; 112's certificate URI SAN says ipn:999.0, its SESS_INIT ipn:112.0, accepted); 112 -> final peer plain (peer offers no TLS)"
        else
            notok "TLS: sessions open but no TLS handshake logged"
        fi
    else
        notok "TLS: node 111/112 did not open their route sessions"; tail -5 "$tmp/n111.log" "$tmp/n112.log" >&2
    fi
    $py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3000 --seq 5 --out "$tmp/tlsw.cbor" >/dev/null
    $py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 262144 --fragments 4 --seq 6 --out "$tmp/tlsf" >/dev/null
    inject_check "TLS chain 111 => 112: whole bundle" "$p_t1" ipn:112.0 0 "$tmp/tlsw.cbor"
    inject_check "TLS chain 111 => 112: 4 x 64 KiB fragments" "$p_t1" ipn:112.0 262144 \
        "$tmp/tlsf.0.cbor" "$tmp/tlsf.1.cbor" "$tmp/tlsf.2.cbor" "$tmp/tlsf.3.cbor"

    start_node n113 --node-id ipn:113.0 --listen "127.0.0.1:$p_t3" \
        --tls-cert "$pki/n113.pem" --tls-key "$pki/n113.key" --tls-ca "$pki/ca.pem" --require-tls --log "$tlslog"
    $py "$dt/tcpcl.py" send --port "$p_t3" --node-id ipn:9.0 "$tmp/tlsw.cbor" >"$tmp/send.req.out" 2>&1 || true
    # Hardy answers the plain contact header with SESS_TERM instead of SESS_INIT.
    res="$(grep -o '"result": "[^"]*"\|"error": "[^"]*SESS_TERM[^"]*"' "$tmp/send.req.out" | head -1 || true)"
    if [ -n "$res" ] && ! grep -q '"result": "acked"' "$tmp/send.req.out" \
        && grep -q 'TLS is required' "$tmp/n113.log"; then
        ok "--require-tls: node 113 ended the session of a peer without TLS (tcpcl.py: $res; log: 'Peer does not support TLS, but TLS is required')"
    else
        notok "--require-tls: plain peer was not refused (${res:-no result}; $(tail -c 300 "$tmp/send.req.out"))"
    fi

    start_node n114 --node-id ipn:114.0 --listen "127.0.0.1:$p_t4" --route "ipn:2.*=127.0.0.1:$p_t2" \
        --tls-cert "$pki/n111.pem" --tls-key "$pki/n111.key" --tls-ca "$pki/other.pem" --log "$tlslog"
    if wait_log "$tmp/n114.log" 'TLS session key negotiation failed' 5; then
        why="$(grep -o 'TLS session key negotiation failed: [^"]*' "$tmp/n114.log" | head -1)"
        if grep -q 'opened TCPCLv4 session' "$tmp/n114.log"; then
            notok "TLS: node 114 (trusting another CA) opened a session anyway"
        else
            ok "TLS: node 114 trusting another CA cannot open its session to 112 (${why})"
        fi
    else
        notok "TLS: node 114 (trusting another CA) logged no failed TLS handshake"; tail -5 "$tmp/n114.log" >&2
    fi
else
    echo "# TLS checks skipped: openssl not found"
fi

# --- 5. unrouted bundle is dropped -----------------------------------------------
$py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:7.1 --payload-size 100 --seq 7 --out "$tmp/unrouted.cbor" >/dev/null
n_before=$(count_bundles "$rx_log")
$py "$dt/tcpcl.py" send --port "$p_n1" --node-id ipn:9.0 "$tmp/unrouted.cbor" >"$tmp/send.unrouted.out" || true
if wait_log "$tmp/n101.log" 'no --route matches; bundle dropped.*ipn:7\.1' 5 \
    && grep -q '"result": "acked"' "$tmp/send.unrouted.out"; then
    sleep 0.3
    if [ "$(count_bundles "$rx_log")" = "$n_before" ]; then
        ok "bundle for ipn:7.1 (no route) acked by node 101 and dropped, not forwarded"
    else
        notok "bundle for ipn:7.1 was forwarded"
    fi
else
    notok "bundle for ipn:7.1: not acked or no drop logged"
fi

# --- 6. final peer restarts ---------------------------------------------------------
kill "$final_pid"; wait "$final_pid" 2>/dev/null || true
t_down=$(now)
if wait_log "$tmp/n101.log" "route session down" 5; then
    t_seen=$(now)
    $py "$dt/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 5000 --seq 8 --out "$tmp/later.cbor" >/dev/null
    $py "$dt/tcpcl.py" send --port "$p_n1" --node-id ipn:9.0 "$tmp/later.cbor" >"$tmp/send.later.out" || true
    sleep 0.5
    rx_log="$tmp/final2.log"
    t_up=$(now)
    start_final "$rx_log" "$tmp/rx2"
    if wait_bundles "$rx_log" 1 10; then
        t_rx=$(now)
        res="$($py "$tmp/check.py" "$rx_log" 0 "$tmp/send.later.out" ipn:101.0 0 "$tmp/later.cbor")"
        if [ "${res%% *}" = ok ]; then
            ok "final peer stopped (node 101 saw the session drop in $(ms "$t_down" "$t_seen") ms), bundle sent meanwhile waited and arrived unaltered $(ms "$t_up" "$t_rx") ms after the peer restarted (--reconnect 0.5)"
        else
            notok "after reconnect: ${res#bad }"
        fi
    else
        notok "bundle held while the final peer was down did not arrive after it came back"
    fi
else
    notok "node 101 did not notice the final peer going away"
fi

# --- 7. SIGTERM -------------------------------------------------------------------
t0=$(now)
kill -TERM "$n101_pid"
rc=0; wait "$n101_pid" || rc=$?
t1=$(now)
if [ "$rc" = 0 ]; then
    ok "SIGTERM: node 101 exited 0 in $(ms "$t0" "$t1") ms"
else
    notok "SIGTERM: node 101 exited $rc"
fi

if [ "$failed" = 0 ]; then
    echo "selftest: PASS"
else
    echo "selftest: FAIL (node logs: $tmp/*.log)"
    exit 1
fi
