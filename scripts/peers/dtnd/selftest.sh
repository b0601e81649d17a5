#!/usr/bin/env bash
# Prove a chain of two real dtnd (dtn7-rs 0.21) nodes relays bundles over
# TCPCLv4 to a final TCPCLv4 peer that is not a dtnd -- here tcpcl.py listen
# standing in for the Moon gateway (node id ipn:2.0, serving ipn:2.25):
#
#   [REST /send | tcpcl.py send] -> dtnd ipn:101.0 -> dtnd ipn:102.0 -> tcpcl.py listen ipn:2.0
#
#   bash scripts/peers/dtnd/selftest.sh        # ~8-11 s once dtnd is built; exit 0 = all ok
#
# Checks, each printed as "ok - ..." or "not ok - ...":
#   1. a bundle sent *from* dtnd node 1 with REST POST /send?dst=ipn:2.25
#      reaches the final peer with the same payload;
#   2. a bundle encoded by dtnsend --dryrun (bp7's encoder) and one
#      hand-built here (CRC-32C) injected into node 1 over TCPCLv4 arrive
#      with primary block and payload byte-identical;
#   3. a fragment set (2 fragments of one 150,000-octet ADU, each larger
#      than dtnd's 64,000-octet segment MRU) injected over TCPCLv4 arrives
#      as 2 fragments, each with its primary block and payload unchanged,
#      and together they reassemble to the ADU; dtnd neither reassembles
#      nor refragments.
# and the timings (chain start, each path's latency, stop).
#
# Ports: 5 consecutive free TCP ports from $DEEPMAIL_DTND_TEST_PORT (default:
# a free range picked at random in 20000-59999). Files: a mktemp -d
# directory, removed at the end unless the test failed or
# DEEPMAIL_KEEP_TMP=1 (its path is printed). Needs python3 and dtnd (found
# or built by scripts/peers/install-dtnd.sh; ~12 min the first time).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me="selftest.sh"
py=python3
export PYTHONDONTWRITEBYTECODE=1   # the helpers import bpv7.py: no __pycache__ in the repo
command -v $py >/dev/null || { echo "$me: python3 not found" >&2; exit 1; }

bins="$(bash "$here/../install-dtnd.sh")"
dtnd="$(sed -n 's/^dtnd=//p' <<<"$bins")"
dtnsend="$(sed -n 's/^dtnsend=//p' <<<"$bins")"
export DEEPMAIL_DTND="$dtnd"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/deepmail-dtnd-selftest.XXXXXX")"
rx_pid=""
failed=0
cleanup() {
    local rc=$?
    $py "$here/dtnchain.py" stop --dir "$tmp/chain" >/dev/null 2>&1 || true
    if [ -n "$rx_pid" ] && kill -0 "$rx_pid" 2>/dev/null; then
        kill "$rx_pid" 2>/dev/null || true
        wait "$rx_pid" 2>/dev/null || true
    fi
    if [ "$failed" != 0 ] || [ "$rc" != 0 ] || [ "${DEEPMAIL_KEEP_TMP:-}" = 1 ]; then
        echo "# files kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
ms() { $py -c "import sys; print('%.0f' % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$2"; }

# --- ports -------------------------------------------------------------------
base="$($py - "${DEEPMAIL_DTND_TEST_PORT:-}" <<'EOF'
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
    if all(free(b + i) for i in range(5)):
        print(b); break
else:
    sys.exit("no 5 free ports")
EOF
)"
final_port=$((base + 4))
echo "# dtnd: $dtnd ($("$dtnd" --version))"
echo "# ports: node1 tcpcl $base web $((base + 1)), node2 tcpcl $((base + 2)) web $((base + 3)), final peer $final_port; dir $tmp"

# --- final peer: the stand-in Moon gateway -------------------------------------
rx_log="$tmp/final.log"
$py "$here/tcpcl.py" listen --port "$final_port" --node-id ipn:2.0 --out "$tmp/rx" >"$rx_log" 2>"$tmp/final.err" &
rx_pid=$!
for _ in $(seq 100); do grep -q '"event": "listening"' "$rx_log" 2>/dev/null && break; sleep 0.05; done
grep -q '"event": "listening"' "$rx_log" || { echo "$me: tcpcl.py listen did not start:" >&2; cat "$tmp/final.err" >&2; exit 1; }

# --- chain ---------------------------------------------------------------------
t0=$(now)
$py "$here/dtnchain.py" start --dir "$tmp/chain" --nodes 2 --first-port "$base" \
    --final "127.0.0.1:$final_port" --final-node-id ipn:2.0 >"$tmp/chain.out"
t1=$(now)
ready_s="$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['ready_s'])" "$tmp/chain/chain.json")"
t2=$(now); $py -c pass; t3=$(now)
echo "# chain start: dtnd processes ready ${ready_s} s after spawn; dtnchain.py start took $(ms "$t0" "$t1") ms in all (python3 itself starts in $(ms "$t2" "$t3") ms here)"

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }

# wait_bundles N: wait until the final peer has reported N bundles (10 s max)
wait_bundles() {
    local n="$1" i
    for i in $(seq 200); do
        [ "$(grep -c '"event": "bundle"' "$rx_log" || true)" -ge "$n" ] && return 0
        sleep 0.05
    done
    return 1
}

# --- 1. REST /send from dtnd ----------------------------------------------------
printf 'MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\nSubject: hi\r\n\r\nhello moon\r\n.\r\n' >"$tmp/mail.bsmtp"
$py "$here/dtnchain.py" send --dir "$tmp/chain" --node 1 --dst ipn:2.25 --file "$tmp/mail.bsmtp" >"$tmp/send.out"
if wait_bundles 1; then
    res="$($py - "$rx_log" "$tmp/mail.bsmtp" "$tmp/send.out" <<'EOF'
import hashlib, json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"bundle"' in l][0]
t_post = json.load(open(sys.argv[3]))["ts"]
b = ev["bundle"]
want = hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
ok = b["destination"] == "ipn:2.25" and b["source"] == "ipn:101.0" and b["payload_sha256"] == want
blocks = ",".join("%s#%d" % (x["name"], x["number"]) for x in b["blocks"])
hop = [x for x in b["blocks"] if x["type"] == 10]
print("%s %.0f id=%s size=%d flags=%s blocks=%s hop_count=%s lifetime_ms=%d session_peer=%s"
      % ("ok" if ok else "bad", (ev["ts"] - t_post) * 1000, b["id"], ev["size"],
         b["flags"], blocks, hop[0]["hop_count"] if hop else None, b["lifetime_ms"],
         ev["peer_node_id"]))
EOF
)"
    set -- $res
    if [ "$1" = ok ]; then
        ok "REST POST /send?dst=ipn:2.25 at node 1 -> final peer ipn:2.0 has the bundle $2 ms later: ${*:3}"
    else
        notok "REST bundle arrived but differs: $res"
    fi
else
    notok "REST /send bundle did not reach the final peer within 10 s"
fi

# --- 2. TCPCL injection: dtnsend-encoded and hand-built bundles ------------------
n_expected=1
files=()
if [ -n "$dtnsend" ]; then
    printf 'encoded by dtnsend (bp7)\n' >"$tmp/p2.txt"
    hex="$("$dtnsend" -p $((base + 1)) -s ipn:9.2 -r ipn:2.25 -D -l 600 "$tmp/p2.txt" | tail -n 1)"
    $py -c "import sys; open(sys.argv[1], 'wb').write(bytes.fromhex(sys.argv[2]))" "$tmp/dtnsend.cbor" "$hex"
    files+=("$tmp/dtnsend.cbor")
fi
$py "$here/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 3000 --seq 1 --out "$tmp/whole.cbor" >/dev/null
files+=("$tmp/whole.cbor")
n_before=$(grep -c '"event": "bundle"' "$rx_log" || true)
$py "$here/tcpcl.py" send --port "$base" --node-id ipn:9.0 "${files[@]}" >"$tmp/send2.out"
if wait_bundles $((n_before + ${#files[@]})); then
    for f in "${files[@]}"; do
        id="$($py "$here/bpv7.py" dump "$f" | $py -c "import json,sys; print(json.load(sys.stdin)['id'])")"
        read -r got lat <<<"$($py - "$rx_log" "$id" "$tmp/send2.out" "$f" <<'EOF'
import json, sys
sent = [json.loads(l) for l in open(sys.argv[3]) if '"sent"' in l]
start = [e["ts"] - e["elapsed_ms"] / 1000 for e in sent if e["file"] == sys.argv[4]][0]
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "bundle" and e["bundle"]["id"] == sys.argv[2]:
        print(e["file"], "%.1f" % ((e["ts"] - start) * 1000)); break
EOF
)"
        if [ -n "$got" ] && cmp_out="$($py "$here/bpv7.py" compare "$f" "$got")"; then
            added="$($py -c "import json,sys; d=json.loads(sys.argv[1]); print(','.join('%s#%d(prev=%s)' % (b['name'], b['number'], b.get('previous_node')) for b in d['added_blocks']) or 'none', '; changed:', ','.join('%s#%d' % ('type%d' % b['type'], b['number']) for b in d['changed_blocks']) or 'none')" "$cmp_out")"
            ok "TCPCL inject $(basename "$f") ($(stat -c %s "$f") B, id $id) at node 1 -> final peer $lat ms later, primary block and payload byte-identical; added: $added"
        else
            notok "TCPCL inject $(basename "$f"): not received or changed: ${cmp_out:-missing}"
        fi
    done
else
    notok "TCPCL-injected bundles did not all reach the final peer within 10 s"
fi

# --- 3. fragment set -----------------------------------------------------------
$py "$here/bpv7.py" build --src ipn:9.1 --dst ipn:2.25 --payload-size 150000 --fragments 2 --seq 2 \
    --out "$tmp/frag" >"$tmp/frag.out"
n_before=$(grep -c '"event": "bundle"' "$rx_log" || true)
$py "$here/tcpcl.py" send --port "$base" --node-id ipn:9.0 "$tmp/frag.0.cbor" "$tmp/frag.1.cbor" >"$tmp/send3.out"
if wait_bundles $((n_before + 2)); then
    res="$($py - "$rx_log" "$tmp" "$here" "$n_before" <<'EOF'
import hashlib, json, subprocess, sys
log, tmp, here, n_before = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, here)
import bpv7
evs = [json.loads(l) for l in open(log) if '"event": "bundle"' in l][n_before:]
orig = {}
for i in (0, 1):
    data = open("%s/frag.%d.cbor" % (tmp, i), "rb").read()
    orig[bpv7.summary(data)["id"]] = "%s/frag.%d.cbor" % (tmp, i)
problems, adu, parts = [], {}, []
sent = [json.loads(l) for l in open(tmp + "/send3.out") if '"sent"' in l]
for e in evs:
    b = e["bundle"]
    if b["id"] not in orig:
        problems.append("unexpected bundle %s" % b["id"]); continue
    r = subprocess.run([sys.executable, here + "/bpv7.py", "compare", orig[b["id"]], e["file"]],
                       capture_output=True, text=True)
    if r.returncode != 0:
        problems.append("fragment %s changed: %s" % (b["id"], r.stdout.strip()))
    p = bpv7.parse(open(e["file"], "rb").read())
    adu[b["fragment_offset"]] = p[2]["payload"]
    s = [x for x in sent if x["file"] == orig[b["id"]]][0]
    parts.append("offset %d len %d, %d B bundle, %d+%d TCPCL segments in+out, %.1f ms"
                 % (b["fragment_offset"], b["payload_len"], e["size"], s["segments"], e["segments"],
                    (e["ts"] - (s["ts"] - s["elapsed_ms"] / 1000)) * 1000))
    if not b["is_fragment"] or b["total_adu_length"] != 150000:
        problems.append("fragment flags/total length lost on %s" % b["id"])
whole = b"".join(adu[k] for k in sorted(adu))
want = bytes((i * 131 + 7) & 0xFF for i in range(150000))
if whole != want:
    problems.append("fragments do not reassemble to the ADU (%d octets)" % len(whole))
print(("ok " if not problems else "bad ") + "; ".join(problems or parts))
EOF
)"
    if [ "${res%% *}" = ok ]; then
        ok "2 fragments of one 150000-octet ADU forwarded separately and unchanged (primary+payload), reassemble to the ADU: ${res#ok }"
    else
        notok "fragments: ${res#bad }"
    fi
else
    notok "fragments did not both reach the final peer within 10 s"
fi

# --- stop ------------------------------------------------------------------------
t0=$(now)
stopped="$($py "$here/dtnchain.py" stop --dir "$tmp/chain" | wc -l)"
t1=$(now)
echo "# chain stop: $stopped dtnd stopped, dtnchain.py stop took $(ms "$t0" "$t1") ms"
if [ "$failed" = 0 ]; then
    echo "selftest: PASS"
else
    echo "selftest: FAIL (logs: $py $here/dtnchain.py logs --dir $tmp/chain)"
    exit 1
fi
