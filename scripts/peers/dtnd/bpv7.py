#!/usr/bin/env python3
"""Tiny stdlib-only BPv7 (RFC 9171) bundle builder and dumper: test tooling
for the dtnd interop scripts, not the product (that is toolkit/bundle).

    bpv7.py build --src ipn:9.1 --dst ipn:2.25 --payload-file F --out B.cbor
    bpv7.py build --src ipn:9.1 --dst ipn:2.25 --payload-size 5000 \
                  --fragments 2 --out frag          # frag.0.cbor, frag.1.cbor
    bpv7.py dump B.cbor ...                         # one JSON line per file
    bpv7.py compare ORIGINAL.cbor FORWARDED.cbor    # what a relay changed

build: one bundle, or with --fragments K a set of K fragments of one ADU
(RFC 9171 5.8: "is a fragment" flag, fragment offset, total ADU length;
primary block and payload only). CRC-32C on every block by default (--crc
16 for X.25, --crc 0 for none). The creation time is now in DTN time (ms
since 2000-01-01) unless --creation-ms is given; --seq sets the sequence
number. Prints one JSON line per file written (path, size, bundle id).

dump: primary block fields, every canonical block (type, number, flags,
CRC type and whether it verifies, data length, decoded previous-node EID,
hop count and bundle age), payload length and SHA-256, and the whole
bundle's length. Exit 0, or 2 if a file is not a bundle.

compare: exit 0 when the primary block (byte for byte) and the payload
block data are unchanged, printing which blocks were added, removed or
re-encoded; 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import time

DTN_EPOCH_UNIX = 946684800  # 2000-01-01T00:00:00Z

# --- CRC -------------------------------------------------------------------


def _table(poly, width):
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c & ((1 << width) - 1))
    return t


_T32C = _table(0x82F63B78, 32)
_T16 = _table(0x8408, 16)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc16_x25(data):
    c = 0xFFFF
    for b in data:
        c = _T16[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFF


# --- CBOR (just what BPv7 needs) ------------------------------------------


def _head(major, n):
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([(major << 5) | 26]) + struct.pack(">I", n)
    return bytes([(major << 5) | 27]) + struct.pack(">Q", n)


def enc(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(enc(x) for x in v)
    raise TypeError("cannot encode %r" % (v,))


class CborError(ValueError):
    pass


def dec(buf, off=0):
    """Decode one CBOR item at off; return (value, next offset).
    Arrays decode to lists, maps to lists of pairs, tags to ("tag", n, v)."""
    if off >= len(buf):
        raise CborError("truncated at %d" % off)
    ib = buf[off]
    major, info = ib >> 5, ib & 31
    off += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if off + size > len(buf):
            raise CborError("truncated head at %d" % off)
        n = int.from_bytes(buf[off:off + size], "big")
        off += size
    elif info == 31 and major in (2, 3, 4, 5, 7):
        n = None
    else:
        raise CborError("bad additional info %d at %d" % (info, off - 1))
    if major == 0:
        return n, off
    if major == 1:
        return -1 - n, off
    if major in (2, 3):
        if n is None:
            parts = []
            while buf[off] != 0xFF:
                p, off = dec(buf, off)
                parts.append(p)
            off += 1
            out = b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
        else:
            if off + n > len(buf):
                raise CborError("truncated string at %d" % off)
            out = bytes(buf[off:off + n])
            off += n
        return (out if major == 2 else out.decode("utf-8", "replace")), off
    if major == 4:
        items = []
        if n is None:
            while True:
                if off >= len(buf):
                    raise CborError("unterminated array")
                if buf[off] == 0xFF:
                    off += 1
                    break
                x, off = dec(buf, off)
                items.append(x)
        else:
            for _ in range(n):
                x, off = dec(buf, off)
                items.append(x)
        return items, off
    if major == 5:
        pairs = []
        while (n is None and buf[off] != 0xFF) or (n is not None and len(pairs) < n):
            k, off = dec(buf, off)
            v, off = dec(buf, off)
            pairs.append((k, v))
        if n is None:
            off += 1
        return pairs, off
    if major == 6:
        v, off = dec(buf, off)
        return ("tag", n, v), off
    if n is None:
        raise CborError("stray break at %d" % (off - 1))
    return {20: False, 21: True, 22: None}.get(n, ("simple", n)), off


# --- EIDs ------------------------------------------------------------------


def eid_to_cbor(s):
    if s == "dtn:none":
        return [1, 0]
    if s.startswith("ipn:"):
        node, svc = s[4:].split(".")
        return [2, [int(node), int(svc)]]
    if s.startswith("dtn:"):
        return [1, s[4:]]
    raise ValueError("EID must be ipn:N.S, dtn://node/svc or dtn:none, not %r" % s)


def eid_from_cbor(v):
    if isinstance(v, list) and len(v) == 2:
        if v[0] == 1:
            return "dtn:none" if v[1] == 0 else "dtn:" + str(v[1])
        if v[0] == 2 and isinstance(v[1], list):
            return "ipn:" + ".".join(str(x) for x in v[1])
    return repr(v)


# --- blocks ----------------------------------------------------------------

CRC_LEN = {0: 0, 1: 2, 2: 4}
BLOCK_NAMES = {1: "payload", 6: "previous-node", 7: "bundle-age", 10: "hop-count",
               11: "BIB", 12: "BCB"}


def with_crc(fields, crc_type):
    """fields: the block's array without the CRC; returns its CBOR with CRC."""
    if crc_type == 0:
        return enc(fields)
    zero = bytes(CRC_LEN[crc_type])
    raw = enc(list(fields) + [zero])
    c = crc16_x25(raw) if crc_type == 1 else crc32c(raw)
    val = c.to_bytes(CRC_LEN[crc_type], "big")
    return raw[:-len(val)] + val


def primary_block(flags, dst, src, report_to, ctime, seq, lifetime_ms, crc_type,
                  frag_offset=None, total_len=None):
    f = [7, flags, crc_type, eid_to_cbor(dst), eid_to_cbor(src), eid_to_cbor(report_to),
         [ctime, seq], lifetime_ms]
    if frag_offset is not None:
        f += [frag_offset, total_len]
    return with_crc(f, crc_type)


def canonical_block(btype, number, flags, crc_type, data):
    return with_crc([btype, number, flags, crc_type, data], crc_type)


def bundle(blocks):
    return b"\x9f" + b"".join(blocks) + b"\xff"


def dtn_now_ms():
    return int((time.time() - DTN_EPOCH_UNIX) * 1000)


# --- parse -----------------------------------------------------------------


def check_crc(raw_block, fields, crc_type):
    if fields and isinstance(fields[-1], bytes) and crc_type in (1, 2):
        n = CRC_LEN[crc_type]
        got = fields[-1]
        zeroed = raw_block[:-n] + bytes(n)
        want = (crc16_x25(zeroed) if crc_type == 1 else crc32c(zeroed)).to_bytes(n, "big")
        return got == want
    return None  # no CRC


def parse(buf):
    """Return (primary dict, [block dicts], spans) for a serialized bundle."""
    buf = bytes(buf)
    if not buf or buf[0] not in (0x9F,) and buf[0] >> 5 != 4:
        raise CborError("not a CBOR array")
    spans = []
    if buf[0] == 0x9F:
        off = 1
        while off < len(buf) and buf[off] != 0xFF:
            _, end = dec(buf, off)
            spans.append((off, end))
            off = end
        if off >= len(buf):
            raise CborError("bundle array not terminated")
        end_all = off + 1
        indefinite = True
    else:
        # definite-length outer array (RFC 9171 says indefinite; accept to report it)
        _, off = dec(buf, 0)
        hdr_n = buf[0] & 31
        off = 1 + ({24: 1, 25: 2, 26: 4, 27: 8}.get(hdr_n, 0))
        count = hdr_n if hdr_n < 24 else int.from_bytes(buf[1:off], "big")
        for _ in range(count):
            _, end = dec(buf, off)
            spans.append((off, end))
            off = end
        end_all = off
        indefinite = False
    if not spans:
        raise CborError("empty bundle")
    p_raw = buf[spans[0][0]:spans[0][1]]
    p, _ = dec(p_raw)
    if not isinstance(p, list) or len(p) < 8:
        raise CborError("primary block is not an array of >= 8")
    flags = p[1]
    prim = {
        "version": p[0], "flags": flags, "flags_hex": hex(flags),
        "is_fragment": bool(flags & 1), "admin_record": bool(flags & 2),
        "must_not_fragment": bool(flags & 4),
        "crc_type": p[2], "crc_ok": check_crc(p_raw, p, p[2]),
        "destination": eid_from_cbor(p[3]), "source": eid_from_cbor(p[4]),
        "report_to": eid_from_cbor(p[5]),
        "creation_ms": p[6][0], "seq": p[6][1], "lifetime_ms": p[7],
        "raw_len": len(p_raw), "raw_sha256": hashlib.sha256(p_raw).hexdigest(),
    }
    if flags & 1:
        prim["fragment_offset"] = p[8]
        prim["total_adu_length"] = p[9]
    blocks = []
    for (s, e) in spans[1:]:
        raw = buf[s:e]
        b, _ = dec(raw)
        blk = {"type": b[0], "name": BLOCK_NAMES.get(b[0], "unknown"), "number": b[1],
               "flags": b[2], "crc_type": b[3], "crc_ok": check_crc(raw, b, b[3]),
               "data_len": len(b[4]) if isinstance(b[4], bytes) else None,
               "raw_len": len(raw), "raw_sha256": hashlib.sha256(raw).hexdigest()}
        data = b[4] if isinstance(b[4], bytes) else b""
        try:
            if b[0] == 6:
                blk["previous_node"] = eid_from_cbor(dec(data)[0])
            elif b[0] == 10:
                blk["hop_limit"], blk["hop_count"] = dec(data)[0]
            elif b[0] == 7:
                blk["bundle_age_ms"] = dec(data)[0]
        except (CborError, IndexError, TypeError, ValueError):
            blk["undecodable"] = True
        if b[0] == 1:
            blk["data_sha256"] = hashlib.sha256(data).hexdigest()
        blocks.append(blk)
    return prim, blocks, {"indefinite": indefinite, "trailing": len(buf) - end_all,
                          "payload": next((dec(buf[s:e])[0][4] for (s, e) in spans[1:]
                                           if dec(buf[s:e])[0][0] == 1), None)}


def bundle_id(prim):
    bid = "%s-%d-%d" % (prim["source"], prim["creation_ms"], prim["seq"])
    if prim["is_fragment"]:
        bid += "-%d" % prim["fragment_offset"]
    return bid


def summary(buf):
    prim, blocks, extra = parse(buf)
    payload = extra["payload"]
    return {
        "size": len(buf), "id": bundle_id(prim), "primary": prim, "blocks": blocks,
        "indefinite_array": extra["indefinite"], "trailing_bytes": extra["trailing"],
        "payload_len": None if payload is None else len(payload),
        "payload_sha256": None if payload is None else hashlib.sha256(payload).hexdigest(),
    }


# --- commands --------------------------------------------------------------


def cmd_build(a):
    if a.payload_file:
        with open(a.payload_file, "rb") as f:
            adu = f.read()
    else:
        adu = bytes((i * 131 + 7) & 0xFF for i in range(a.payload_size))
    crc = {"0": 0, "16": 1, "32": 2}[a.crc]
    ctime = a.creation_ms if a.creation_ms is not None else dtn_now_ms()
    report_to = a.report_to or a.src
    out = []
    if a.fragments <= 1:
        flags = a.flags
        blocks = [primary_block(flags, a.dst, a.src, report_to, ctime, a.seq, a.lifetime_ms, crc)]
        num = 2
        if a.hop_limit:
            blocks.append(canonical_block(10, num, 0, crc, enc([a.hop_limit, 0])))
            num += 1
        for spec in a.extra_block or []:
            btype, bflags, data = spec.split(":", 2)
            blocks.append(canonical_block(int(btype, 0), num, int(bflags, 0), crc,
                                          bytes.fromhex(data)))
            num += 1
        blocks.append(canonical_block(1, 1, 0, crc, adu))
        out.append((a.out, bundle(blocks)))
    else:
        k = a.fragments
        size = -(-len(adu) // k)
        for i in range(k):
            off = i * size
            part = adu[off:off + size]
            flags = a.flags | 0x01
            blocks = [primary_block(flags, a.dst, a.src, report_to, ctime, a.seq,
                                    a.lifetime_ms, crc, off, len(adu)),
                      canonical_block(1, 1, 0, crc, part)]
            out.append(("%s.%d.cbor" % (a.out, i), bundle(blocks)))
    for path, data in out:
        with open(path, "wb") as f:
            f.write(data)
        s = summary(data)
        print(json.dumps({"path": path, "size": len(data), "id": s["id"],
                          "payload_len": s["payload_len"],
                          "adu_len": len(adu), "adu_sha256": hashlib.sha256(adu).hexdigest()},
                         sort_keys=True))
    return 0


def cmd_dump(a):
    rc = 0
    for path in a.files:
        with open(path, "rb") as f:
            data = f.read()
        try:
            s = summary(data)
            s["path"] = path
            print(json.dumps(s, sort_keys=True))
        except (CborError, IndexError, TypeError, ValueError) as e:
            print(json.dumps({"path": path, "size": len(data), "error": str(e)}))
            rc = 2
    return rc


def cmd_compare(a):
    with open(a.original, "rb") as f:
        x = summary(f.read())
    with open(a.forwarded, "rb") as f:
        y = summary(f.read())
    same_primary = x["primary"]["raw_sha256"] == y["primary"]["raw_sha256"]
    same_payload = x["payload_sha256"] == y["payload_sha256"]
    xb = {(b["type"], b["number"]): b for b in x["blocks"]}
    yb = {(b["type"], b["number"]): b for b in y["blocks"]}
    res = {
        "id": [x["id"], y["id"]], "size": [x["size"], y["size"]],
        "primary_identical": same_primary, "payload_identical": same_payload,
        "added_blocks": [yb[k] for k in sorted(yb) if k not in xb],
        "removed_blocks": [xb[k] for k in sorted(xb) if k not in yb],
        "changed_blocks": [{"type": k[0], "number": k[1],
                            "before": {f: xb[k].get(f) for f in ("raw_len", "crc_type", "crc_ok", "flags", "hop_count")},
                            "after": {f: yb[k].get(f) for f in ("raw_len", "crc_type", "crc_ok", "flags", "hop_count")}}
                           for k in sorted(xb) if k in yb and xb[k]["raw_sha256"] != yb[k]["raw_sha256"]],
    }
    print(json.dumps(res, sort_keys=True))
    return 0 if same_primary and same_payload else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--src", required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--report-to")
    g = b.add_mutually_exclusive_group(required=True)
    g.add_argument("--payload-file")
    g.add_argument("--payload-size", type=int)
    b.add_argument("--fragments", type=int, default=1)
    b.add_argument("--crc", choices=["0", "16", "32"], default="32")
    b.add_argument("--flags", type=lambda s: int(s, 0), default=0,
                   help="bundle processing control flags (0x01 is added for fragments)")
    b.add_argument("--lifetime-ms", type=int, default=3600 * 1000)
    b.add_argument("--creation-ms", type=int)
    b.add_argument("--seq", type=int, default=0)
    b.add_argument("--hop-limit", type=int, default=0,
                   help="add a hop-count block with this limit (unfragmented only)")
    b.add_argument("--extra-block", action="append",
                   help="TYPE:FLAGS:HEXDATA, an extension block (unfragmented only; repeatable)")
    b.add_argument("--out", required=True, help="file (or prefix with --fragments)")
    d = sub.add_parser("dump")
    d.add_argument("files", nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("original")
    c.add_argument("forwarded")
    a = ap.parse_args()
    return {"build": cmd_build, "dump": cmd_dump, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
