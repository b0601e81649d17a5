#!/usr/bin/env bash
# Proves the mail stack alone, without deepmail: the Earth Exim relays
# moon.example straight to the Moon Exim (G = M) and the Moon Exim relays
# earth.example straight back to the Earth Exim (H = E).
#
#   bash scripts/peers/mailstack/selftest.sh        # KEEP=1 keeps the temp dir
#
# 1. swaks -> Earth Exim -> Moon Exim -> Maildir -> Dovecot -> IMAP FETCH: a
#    ~10 MB MIME message (8-bit UTF-8 text part with lines starting with a dot
#    and a lone dot, base64 attachment) arrives byte for byte: the fetched
#    message is the sent one (CRLF) with trace fields (Return-path,
#    Envelope-to, Delivery-date, Received x2) prepended, nothing else.
# 2. RCPT TO:<nobody@moon.example> at the Moon Exim: 550 5.1.1 (swaks exit 24).
# 3. The same through the Earth Exim: accepted, then the Moon Exim's 550 5.1.1
#    comes back to alice@earth.example as a bounce, read over IMAP.
# 4. A reply bob@moon.example -> alice@earth.example through the Moon Exim.
# 5. EHLO at the Moon Exim offers 8BITMIME, SMTPUTF8, SIZE >= 10 MB; a message
#    with MAIL FROM:<UTF-8 address> SMTPUTF8 BODY=8BITMIME (smtplib; swaks
#    has no MAIL parameters) is delivered to bob.
# 6. stop: no process of the stack is left.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ms="$here/mailstack.py"
py="${PYTHON:-python3}"
swaks="${DEEPMAIL_SWAKS:-$(command -v swaks || true)}"
[ -x "$swaks" ] || { echo "selftest: no swaks; run bash scripts/peers/install-mailstack.sh" >&2; exit 1; }

t_all=$(date +%s.%N)
since() { "$py" -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$1"; }
step() { echo "selftest: $*"; }
fail() {
    echo "selftest: FAIL: $*" >&2
    "$py" "$ms" logs --dir "$D" --lines 25 >&2 || true
    exit 1
}

D="$(mktemp -d /tmp/deepmail-mailstack.XXXXXX)"
cleanup() {
    "$py" "$ms" stop --dir "$D" >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "selftest: kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT

# Three free loopback ports.
read -r E M I < <("$py" - <<'EOF'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()
EOF
)

t=$(date +%s.%N)
"$py" "$ms" start --dir "$D" --earth-smtp "$E" --earth-next-hop "$M" \
    --moon-smtp "$M" --moon-next-hop "$E" --imap "$I" >/dev/null || fail "start"
step "started Exim earth :$E, Exim moon :$M, Dovecot :$I in $(since "$t") s"

# --- 1. the big message ----------------------------------------------------
# msg.data is what swaks reads: CRLF lines, no final CRLF (swaks adds
# "\r\n.\r\n"; a data file ending in CRLF would gain an empty last line).
# msg.sent is the message as SMTP carries it after un-dot-stuffing:
# msg.data + CRLF.
"$py" - "$D" <<'EOF'
import base64, os, sys
d = sys.argv[1]
text = (
    "Grüße von der Erde — привет, Луна — 月へようこそ ✉\r\n"
    "\r\n"
    ".this line starts with a dot (dot-stuffed on the wire)\r\n"
    ".\r\n"
    "..two dots\r\n"
    "a lone dot above; trailing spaces here   \r\n"
    "\tand a tab\r\n"
)
blob = os.urandom(7_600_000)            # -> ~10.3 MB of base64
b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")   # 76-char lines
head = (
    "From: Alice <alice@earth.example>\r\n"
    "To: Bob <bob@moon.example>\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_vom_Mond?= selftest\r\n"
    "Date: Mon, 01 Jan 2029 00:00:00 +0000\r\n"
    "Message-ID: <selftest-big@earth.example>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="=_deepmail_selftest"\r\n'
    "\r\n"
    "--=_deepmail_selftest\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
)
msg = (head + text + "\r\n--=_deepmail_selftest\r\n"
       "Content-Type: application/octet-stream\r\n"
       "Content-Transfer-Encoding: base64\r\n"
       'Content-Disposition: attachment; filename="blob.bin"\r\n'
       "\r\n").encode() + b64 + b"--=_deepmail_selftest--"
assert b"%" not in msg and b"\\n" not in msg   # swaks would rewrite tokens
open(f"{d}/msg.data", "wb").write(msg)
open(f"{d}/msg.sent", "wb").write(msg + b"\r\n")
print(f"selftest: message of {len(msg) + 2} bytes ({len(b64)} of base64)")
EOF

t=$(date +%s.%N)
"$swaks" --server "127.0.0.1:$E" --helo earth-mua.example --from alice@earth.example \
    --to bob@moon.example --data "@$D/msg.data" --suppress-data >"$D/swaks-big.out" 2>&1 \
    || { cat "$D/swaks-big.out" >&2; fail "swaks big message: exit $?"; }
step "swaks sent it to the Earth Exim in $(since "$t") s"
"$py" "$ms" fetch --dir "$D" --user bob --wait 30 --count 1 --out "$D/bob1" >/dev/null \
    || fail "the big message did not reach bob's INBOX"
step "bob read it over IMAP $(since "$t") s after swaks started"

"$py" - "$D/msg.sent" "$D/bob1/001.eml" "$D/moon/maildir/bob" <<'EOF' || fail "big message differs"
import glob, re, sys
sent = open(sys.argv[1], "rb").read()
got = open(sys.argv[2], "rb").read()

def first_diff(a, b):
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    line = a[:n].count(b"\n") + 1
    ctx = lambda s: s[max(0, n - 60):n + 60]
    return f"first difference at byte {n} (line {line} of the sent message):\n  sent: {ctx(a)!r}\n  got:  {ctx(b)!r}\n  sizes: sent {len(a)}, got {len(b)}"

if not got.endswith(sent):
    # Align on the sent message's first header to show what changed.
    k = got.find(sent[:40])
    print("selftest: the fetched message does not end with the sent one;",
          first_diff(sent, got[k:] if k >= 0 else got), file=sys.stderr)
    sys.exit(1)
prefix = got[: len(got) - len(sent)]
names = [l.split(b":", 1)[0].decode() for l in prefix.split(b"\r\n") if l and l[:1] not in b" \t"]
allowed = {"Return-path", "Envelope-to", "Delivery-date", "Received"}
if set(names) - allowed or not prefix.endswith(b"\r\n"):
    print(f"selftest: unexpected prepended fields {names}", file=sys.stderr)
    sys.exit(1)
print(f"selftest: byte for byte: fetched = {len(prefix)} bytes of {names} + the {len(sent)} bytes sent")
# The Maildir file is the same message with LF line ends (Dovecot moved it
# from new/ to cur/ at SELECT).
files = glob.glob(sys.argv[3] + "/cur/*") + glob.glob(sys.argv[3] + "/new/*")
assert len(files) == 1, files
disk = open(files[0], "rb").read()
assert b"\r" not in disk, "Maildir file has CR"
assert disk.replace(b"\n", b"\r\n") == got, "Maildir file (LF) != IMAP message with CRLF->LF"
print("selftest: Maildir file = the IMAP message with LF line ends")
EOF

# --- 2. unknown user at the Moon Exim: 550 5.1.1 at RCPT ---------------------
set +e
"$swaks" --server "127.0.0.1:$M" --helo gw.moon.example --from alice@earth.example \
    --to nobody@moon.example >"$D/swaks-550.out" 2>&1
rc=$?
set -e
grep -E '^<\*\* +550 5\.1\.1 ' "$D/swaks-550.out" >/dev/null && [ "$rc" = 24 ] \
    || { cat "$D/swaks-550.out" >&2; fail "nobody@moon.example: expected 550 5.1.1 at RCPT and swaks exit 24, got exit $rc"; }
step "RCPT TO:<nobody@moon.example> -> $(grep -E '^<\*\* +550' "$D/swaks-550.out" | sed 's/^<\*\* *//') (swaks exit $rc)"

# --- 3. the same through Earth: bounce back to alice -------------------------
"$swaks" --server "127.0.0.1:$E" --helo earth-mua.example --from alice@earth.example \
    --to nobody@moon.example --header "Subject: to nobody" >"$D/swaks-bounce.out" 2>&1 \
    || { cat "$D/swaks-bounce.out" >&2; fail "Earth Exim did not accept mail for nobody@moon.example"; }
"$py" "$ms" fetch --dir "$D" --user alice --wait 20 --count 1 --out "$D/alice1" >/dev/null \
    || fail "no bounce for nobody@moon.example in alice's INBOX"
grep -q "550 5.1.1" "$D/alice1/001.eml" && grep -q "nobody@moon.example" "$D/alice1/001.eml" \
    || { head -40 "$D/alice1/001.eml" >&2; fail "alice's bounce does not carry the 550 5.1.1"; }
step "via Earth: the Moon Exim's 550 5.1.1 came back to alice as a bounce"

# --- 4. reply Moon -> Earth ----------------------------------------------------
"$swaks" --server "127.0.0.1:$M" --helo moon-mua.example --from bob@moon.example \
    --to alice@earth.example --header "Subject: reply from the Moon" \
    --body "Reply, bob" >"$D/swaks-reply.out" 2>&1 \
    || { cat "$D/swaks-reply.out" >&2; fail "Moon Exim did not accept bob's reply"; }
"$py" "$ms" fetch --dir "$D" --user alice --wait 20 --count 2 --out "$D/alice2" >/dev/null \
    || fail "bob's reply did not reach alice"
grep -q "Subject: reply from the Moon" "$D/alice2/002.eml" || fail "alice's second message is not bob's reply"
step "bob@moon.example -> Moon Exim -> Earth Exim -> alice: delivered"

# --- 5. SMTPUTF8 + 8BITMIME + SIZE at the Moon Exim ---------------------------
"$py" - "$M" <<'EOF' || fail "SMTPUTF8/8BITMIME at the Moon Exim"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="gw.moon.example", timeout=10)
s.ehlo()
for ext in ("8bitmime", "smtputf8", "size", "pipelining"):
    assert s.has_extn(ext), f"EHLO lacks {ext}: {s.esmtp_features}"
size = int(s.esmtp_features["size"])
assert size >= 10 * 1024 * 1024, f"SIZE {size} < 10 MB"
msg = ("From: Дмитрий <дмитрий@earth.example>\r\nTo: bob@moon.example\r\n"
       "Subject: Grüße über SMTPUTF8\r\nMessage-ID: <selftest-utf8@earth.example>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
       "Content-Transfer-Encoding: 8bit\r\n\r\nπ ≈ 3.14159\r\n").encode()
refused = s.sendmail("дмитрий@earth.example", ["bob@moon.example"], msg,
                     mail_options=["SMTPUTF8", "BODY=8BITMIME"])
assert not refused, refused
s.quit()
print(f"selftest: EHLO offers 8BITMIME SMTPUTF8 SIZE={size}; UTF-8 envelope accepted")
EOF
"$py" "$ms" fetch --dir "$D" --user bob --wait 20 --count 2 --out "$D/bob2" >/dev/null \
    || fail "the SMTPUTF8 message did not reach bob"
grep -q "Subject: Grüße über SMTPUTF8" "$D/bob2/002.eml" && grep -q "Return-path: <дмитрий@earth.example>" "$D/bob2/002.eml" \
    || { head -20 "$D/bob2/002.eml" >&2; fail "bob's SMTPUTF8 message is not as sent"; }
step "SMTPUTF8 message delivered with its UTF-8 envelope sender"

# --- 6. stop ------------------------------------------------------------------
t=$(date +%s.%N)
"$py" "$ms" stop --dir "$D" 2>/dev/null || fail "stop"
# Nothing of it may be left: no process in the daemons' process groups or
# sessions, none whose command line names the stack's directory.
"$py" - "$D" <<'EOF' || fail "processes of the stack survived stop"
import json, os, sys
d = sys.argv[1]
pids = set(json.load(open(f"{d}/stack.stopped.json"))["pids"].values())
left = []
for e in filter(str.isdigit, os.listdir("/proc")):
    try:
        st = open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()
        cmd = open(f"/proc/{e}/cmdline", "rb").read()
    except OSError:
        continue
    if st[0] != "Z" and (int(st[2]) in pids or int(st[3]) in pids or (d + "/").encode() in cmd):
        left.append((int(e), cmd.replace(b"\0", b" ").decode(errors="replace")))
if left:
    print(f"selftest: still running: {left}", file=sys.stderr)
    sys.exit(1)
EOF
step "stopped in $(since "$t") s; nothing left running"
echo "selftest: PASS in $(since "$t_all") s"
