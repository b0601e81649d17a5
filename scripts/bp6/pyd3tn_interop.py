#!/usr/bin/env python3
"""BPv6 (RFC 5050) interop between pyD3TN and deepmail's bp6-fragmenter codec.

Run with the pyD3TN venv:

    target/pyd3tn-venv/bin/python scripts/bp6/pyd3tn_interop.py

(a) pyD3TN -> ours: bundles and fragments written by
    ``pyd3tn.bundle6.serialize_bundle6`` are parsed by our codec
    (``bp6tool inspect``, the crate's example binary) and every field is
    compared with what pyD3TN was given; pyD3TN's fragments are reassembled
    by our reassembler, and a pyD3TN bundle is re-fragmented by ours.
(b) ours -> pyD3TN: bundles and fragments written by our codec are read
    field by field with pyD3TN's own SDNV decoder (``pyd3tn.sdnv``; pyD3TN
    0.15 has no BPv6 *parser*, only the serializer), the fields are compared
    with the spec, and ``serialize_bundle6`` given those fields must write
    the very same bytes.

Prints PASS/FAIL per check; exits 1 if any check failed.
"""

import json
import os
import random
import subprocess
import sys
import tempfile

from pyd3tn.bundle6 import RFC5050Flag, serialize_bundle6
from pyd3tn.sdnv import sdnv_decode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRATE = os.path.join(ROOT, "plugins-standalone", "bp6-fragmenter")
TOOL = os.path.join(CRATE, "target", "release", "examples", "bp6tool")

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail and not ok else ""))


def build_tool():
    """$BP6TOOL, or the crate's example binary, built here if missing."""
    if os.environ.get("BP6TOOL"):
        return os.environ["BP6TOOL"]
    if not os.path.exists(TOOL):
        subprocess.run(
            [os.environ.get("CARGO", "cargo"), "build", "--release", "--quiet",
             "--example", "bp6tool", "--manifest-path", os.path.join(CRATE, "Cargo.toml"),
             "--target-dir", os.path.join(CRATE, "target")],
            check=True)
    return TOOL


def tool(*args):
    p = subprocess.run([TOOL_PATH, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bp6tool {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def inspect(paths):
    return [json.loads(line) for line in tool("inspect", *paths).splitlines()]


# --- a minimal BPv6 reader on pyD3TN's SDNV decoder ------------------------

def py_parse(b):
    """RFC 5050 §4.5 with pyd3tn.sdnv.sdnv_decode; returns a dict of fields."""
    pos = 0

    def sdnv():
        nonlocal pos
        v, n = sdnv_decode(b[pos:pos + 10])
        pos += n
        return v

    assert b[0] == 6, "version"
    pos = 1
    flags = sdnv()
    blen = sdnv()
    body_start = pos
    offs = [sdnv() for _ in range(8)]
    ctime, seq, life = sdnv(), sdnv(), sdnv()
    dlen = sdnv()
    dic = b[pos:pos + dlen]
    pos += dlen

    def s(o):
        return dic[o:dic.index(b"\0", o)].decode()

    eids = [f"{s(offs[2 * i])}:{s(offs[2 * i + 1])}" for i in range(4)]
    frag = None
    if flags & RFC5050Flag.IS_FRAGMENT:
        frag = (sdnv(), sdnv())
    assert pos - body_start == blen, "primary block length"
    blocks = []
    while True:
        btype = b[pos]
        pos += 1
        bflags = sdnv()
        assert not bflags & 0x40, "EID references not expected"
        dl = sdnv()
        blocks.append((btype, bflags, b[pos:pos + dl]))
        pos += dl
        if bflags & 0x08:
            break
    assert pos == len(b), "trailing bytes"
    payload = [d for t, _, d in blocks if t == 1]
    assert len(payload) == 1, "one payload block"
    return dict(flags=flags, destination=eids[0], source=eids[1], report_to=eids[2],
                custodian=eids[3], creation_time=ctime, sequence_number=seq,
                lifetime=life, fragment=frag, payload=payload[0], blocks=blocks)


def reserialize(f):
    """The same fields through pyD3TN's serializer."""
    kw = {}
    if f["fragment"] is not None:
        kw = dict(fragment_offset=f["fragment"][0], total_adu_length=f["fragment"][1])
    return serialize_bundle6(
        f["source"], f["destination"], f["payload"], report_to_eid=f["report_to"],
        custodian_eid=f["custodian"], creation_timestamp=f["creation_time"],
        sequence_number=f["sequence_number"], lifetime=f["lifetime"],
        flags=RFC5050Flag(f["flags"]), **kw)


def main():
    global TOOL_PATH
    TOOL_PATH = build_tool()
    rng = random.Random(5050)
    tmp = tempfile.mkdtemp(prefix="bp6-interop-")

    # ---------------- (a) pyD3TN -> ours ----------------
    print("== (a) bundles built by pyD3TN, parsed by deepmail bp6-fragmenter ==")
    D = RFC5050Flag.DEFAULT_OUTGOING
    cases = [
        ("ipn, small payload", "ipn:1.0", "ipn:2.25", b"hello", {}),
        ("empty payload", "ipn:1.0", "ipn:2.25", b"", {}),
        ("127/128-byte payload (SDNV length 1/2 bytes)", "ipn:1.0", "ipn:2.25", bytes(127), {}),
        ("128-byte payload", "ipn:1.0", "ipn:2.25", bytes(range(128)), {}),
        ("16384-byte payload (3-byte SDNV)", "ipn:1.0", "ipn:2.25", rng.randbytes(16384), {}),
        ("dtn:// EIDs, report-to, custodian", "dtn://earth-gw/mail", "dtn://moon-gw/mail",
         b"mail", dict(report_to_eid="dtn://earth-gw/reports", custodian_eid="dtn://relay/")),
        ("large SDNVs (time, seq 2^40, lifetime 2^32)", "ipn:4294967296.25",
         "ipn:18446744073709551615.0", b"x",
         dict(creation_timestamp=2**40 + 5, sequence_number=2**40, lifetime=2**32)),
        ("flags: custody + reports + must-not-fragment + expedited", "ipn:1.0", "ipn:2.25", b"y",
         dict(flags=RFC5050Flag.SINGLETON_ENDPOINT | RFC5050Flag.EXPEDITED_PRIORITY
              | RFC5050Flag.CUSTODY_TRANSFER_REQUESTED | RFC5050Flag.MUST_NOT_BE_FRAGMENTED
              | RFC5050Flag.REPORT_DELIVERY | RFC5050Flag.REPORT_DELETION)),
        ("admin record flag", "ipn:1.0", "ipn:2.0", b"\x10rec",
         dict(flags=D | RFC5050Flag.ADMINISTRATIVE_RECORD)),
    ]
    for name, src, dst, payload, kw in cases:
        kw = dict(kw)
        kw.setdefault("creation_timestamp", 815_000_000)
        kw.setdefault("sequence_number", 3)
        kw.setdefault("lifetime", 3600)
        b = serialize_bundle6(src, dst, payload, **kw)
        path = os.path.join(tmp, "py.bundle")
        open(path, "wb").write(b)
        got = inspect([path])[0]
        want = dict(version=6, flags=int(kw.get("flags", D)), source=src, destination=dst,
                    report_to=kw.get("report_to_eid", "dtn:none"),
                    custodian=kw.get("custodian_eid", "dtn:none"),
                    creation_time=kw["creation_timestamp"], sequence_number=kw["sequence_number"],
                    lifetime=kw["lifetime"], fragment_offset=None, total_adu_length=None,
                    payload_length=len(payload), payload_hex=payload.hex(), is_fragment=False,
                    must_not_fragment=bool(int(kw.get("flags", D)) & 4))
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        check(f"(a) parse: {name}", not diff and "error" not in got, str(got.get("error") or diff))

    # pyD3TN fragments of one ADU, reassembled by ours in shuffled order.
    adu = rng.randbytes(5000)
    pieces, off = [], 0
    while off < len(adu):
        n = rng.randint(1, 900)
        pieces.append((off, adu[off:off + n]))
        off += n
    paths = []
    for i, (o, data) in enumerate(pieces):
        b = serialize_bundle6("ipn:7.1", "ipn:2.25", data, creation_timestamp=815_000_000,
                              sequence_number=9, lifetime=3600,
                              flags=D | RFC5050Flag.IS_FRAGMENT, fragment_offset=o,
                              total_adu_length=len(adu))
        p = os.path.join(tmp, f"pyfrag{i:03}.bundle")
        open(p, "wb").write(b)
        paths.append(p)
    infos = inspect(paths)
    ok = all(i.get("is_fragment") and i["fragment_offset"] == o and i["total_adu_length"] == len(adu)
             and bytes.fromhex(i["payload_hex"]) == d for i, (o, d) in zip(infos, pieces))
    check(f"(a) parse: {len(pieces)} pyD3TN fragments (offset, total ADU length, payload)", ok)
    shuffled = paths[:]
    rng.shuffle(shuffled)
    out = os.path.join(tmp, "adu.out")
    rep = json.loads(tool("reassemble", f"out={out}", f"now={815_000_000_000 + 1}", *shuffled))
    check("(a) reassemble: pyD3TN fragments, shuffled, by our reassembler",
          open(out, "rb").read() == adu and rep["fragments"] == len(pieces)
          and rep["source"] == "ipn:7.1" and rep["sequence_number"] == 9, str(rep))

    # A pyD3TN bundle re-fragmented by ours: each piece is what pyD3TN
    # itself writes for that fragment.
    big = rng.randbytes(3000)
    src_b = serialize_bundle6("dtn://earth-gw/mail", "ipn:2.25", big, creation_timestamp=815_000_001,
                              sequence_number=1, lifetime=60)
    p = os.path.join(tmp, "pybig.bundle")
    open(p, "wb").write(src_b)
    fdir = os.path.join(tmp, "refrag")
    outs = tool("fragment", f"in={p}", f"dir={fdir}", "mtu=700").split()
    same = True
    for f in outs:
        ours = open(f, "rb").read()
        fields = py_parse(ours)
        o, t = fields["fragment"]
        theirs = serialize_bundle6("dtn://earth-gw/mail", "ipn:2.25", big[o:o + len(fields["payload"])],
                                   creation_timestamp=815_000_001, sequence_number=1, lifetime=60,
                                   flags=D | RFC5050Flag.IS_FRAGMENT, fragment_offset=o,
                                   total_adu_length=t)
        same &= ours == theirs and len(ours) <= 700
    check(f"(a) fragment: pyD3TN bundle cut by ours into {len(outs)} pieces == pyD3TN's own fragments", same)

    # ---------------- (b) ours -> pyD3TN ----------------
    print("== (b) bundles built by deepmail bp6-fragmenter, read with pyD3TN ==")
    specs = [
        ("ipn defaults", dict(), 40),
        ("dtn:// EIDs + report-to", dict(src="dtn://earth-gw/mail", dst="dtn://moon-gw/mail",
                                         rpt="dtn://earth-gw/reports"), 1000),
        ("large SDNVs", dict(src="ipn:4294967296.25", dst="ipn:18446744073709551615.0",
                             time=str(2**40 + 5), seq=str(2**40), life=str(2**32)), 200),
        ("must-not-fragment", dict(mnf="1"), 128),
        ("empty ADU", dict(), 0),
    ]
    for name, kv, size in specs:
        payload = rng.randbytes(size)
        a = os.path.join(tmp, "adu.bin")
        open(a, "wb").write(payload)
        out = os.path.join(tmp, "ours.bundle")
        tool("build", f"adu={a}", f"out={out}", *[f"{k}={v}" for k, v in kv.items()])
        ours = open(out, "rb").read()
        try:
            f = py_parse(ours)
            want = dict(source=kv.get("src", "ipn:1.0"), destination=kv.get("dst", "ipn:2.25"),
                        report_to=kv.get("rpt", "dtn:none"), custodian="dtn:none",
                        creation_time=int(kv.get("time", 815_000_000)),
                        sequence_number=int(kv.get("seq", 0)), lifetime=int(kv.get("life", 3600)),
                        fragment=None, payload=payload,
                        flags=int(D) | (4 if kv.get("mnf") == "1" else 0))
            diff = {k: (f[k], v) for k, v in want.items() if f[k] != v}
            check(f"(b) read with pyd3tn.sdnv: {name}", not diff, str(diff))
            check(f"(b) serialize_bundle6(same fields) == our bytes: {name}", reserialize(f) == ours)
        except Exception as e:  # noqa: BLE001
            check(f"(b) read with pyd3tn.sdnv: {name}", False, repr(e))

    for size, mtu in [(5000, 500), (70_000, 9000), (300, 90), (20_000, 1024)]:
        adu = rng.randbytes(size)
        a = os.path.join(tmp, "adu.bin")
        open(a, "wb").write(adu)
        d = os.path.join(tmp, f"ours-{size}-{mtu}")
        outs = tool("fragment-adu", f"adu={a}", f"dir={d}", f"mtu={mtu}", "src=ipn:1.0",
                    "dst=ipn:2.25", "time=815000000", "seq=4", "life=86400").split()
        ok_fields, ok_bytes, back = True, True, bytearray(size)
        detail = ""
        try:
            for p in outs:
                ours = open(p, "rb").read()
                f = py_parse(ours)
                o, t = f["fragment"]
                ok_fields &= (len(ours) <= mtu and t == size and f["source"] == "ipn:1.0"
                              and f["destination"] == "ipn:2.25" and f["creation_time"] == 815_000_000
                              and f["sequence_number"] == 4 and f["lifetime"] == 86400
                              and bool(f["flags"] & RFC5050Flag.IS_FRAGMENT)
                              and f["payload"] == adu[o:o + len(f["payload"])])
                back[o:o + len(f["payload"])] = f["payload"]
                ok_bytes &= reserialize(f) == ours
        except Exception as e:  # noqa: BLE001
            ok_fields, detail = False, repr(e)
        check(f"(b) our {len(outs)} fragments of {size} B at MTU {mtu}: fields read with pyd3tn.sdnv,"
              f" payloads tile the ADU", ok_fields and bytes(back) == adu, detail)
        check(f"(b) serialize_bundle6(same fields) == our bytes for all {len(outs)} fragments"
              f" ({size} B, MTU {mtu})", ok_bytes)

    n_ok = sum(results)
    print(f"== {n_ok}/{len(results)} checks passed ==")
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
