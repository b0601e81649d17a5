#!/usr/bin/env python3
"""Generate the BPv7 fragmenter vectors (RFC 9171 §4.1-4.4, §5.8, §5.9).

Writes vectors/bundle/{build,inspect,fragment,reassemble}.json. Every bundle
is produced by the CBOR encoder, CRC-16/X.25 and CRC-32C code in this file
(stdlib only, nothing shared with deepmail's Rust crates). Expectations come
from the RFC text; where the RFC leaves a choice open the case is
`acceptable` and its comment says why. Deterministic: run it twice, get the
same bytes.

    python3 vectors/tools/gen_bundle_vectors.py [--out DIR]
"""

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vectorlib as V  # noqa: E402

GENERATOR = "vectors/tools/gen_bundle_vectors.py"

# ---------------------------------------------------------------------------
# CRCs (RFC 9171 §4.2.1): CRC-16/X.25 and CRC-32C, both reflected.
# ---------------------------------------------------------------------------


def _reflected_table(poly):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC16_TABLE = _reflected_table(0x8408)        # 0x1021 reflected
_CRC32C_TABLE = _reflected_table(0x82F63B78)   # 0x1EDC6F41 reflected


def crc16_x25(data):
    """CRC-16/X-25: poly 0x1021, init 0xFFFF, reflected, xorout 0xFFFF."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC16_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def crc32c(data):
    """CRC-32C (Castagnoli): poly 0x1EDC6F41, init 0xFFFFFFFF, reflected, xorout 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC32C_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


# Standard check values ("123456789"); refuse to generate anything if wrong.
assert crc16_x25(b"123456789") == 0x906E, hex(crc16_x25(b"123456789"))
assert crc32c(b"123456789") == 0xE3069283, hex(crc32c(b"123456789"))

CRC_NAMES = {0: "none", 1: "crc16", 2: "crc32c"}
CRC_CODES = {v: k for k, v in CRC_NAMES.items()}
CRC_LEN = {1: 2, 2: 4}


def crc_value(crc_type, data):
    if crc_type == 1:
        return crc16_x25(data).to_bytes(2, "big")
    if crc_type == 2:
        return crc32c(data).to_bytes(4, "big")
    raise ValueError(crc_type)

# ---------------------------------------------------------------------------
# Minimal CBOR encoder (RFC 8949): shortest-form heads, definite arrays,
# byte and text strings. The outer indefinite array is written by hand.
# ---------------------------------------------------------------------------


def head(major, n):
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    if n < 0x10000000000000000:
        return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")
    raise ValueError("integer too large for CBOR: %d" % n)


def u(n):
    return head(0, n)


def bs(b):
    return head(2, len(b)) + bytes(b)


def ts(s):
    b = s.encode("utf-8")
    return head(3, len(b)) + b


def arr(items):
    return head(4, len(items)) + b"".join(items)


INDEF_ARRAY = b"\x9f"
BREAK = b"\xff"

# ---------------------------------------------------------------------------
# Endpoint IDs (RFC 9171 §4.2.5.1)
# ---------------------------------------------------------------------------

U64_MAX = 2 ** 64 - 1
_REG_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%")


class BadEid(ValueError):
    pass


def eid_cbor(s):
    """CBOR encoding of an EID string; BadEid for anything §4.2.5.1 does not allow."""
    if s == "dtn:none":
        return arr([u(1), u(0)])
    if s.startswith("dtn:"):
        ssp = s[4:]
        if not ssp.startswith("//"):
            raise BadEid(s)
        rest = ssp[2:]
        if "/" not in rest:
            raise BadEid(s)                      # name-delim is required
        node, demux = rest.split("/", 1)
        if not node or any(c not in _REG_NAME for c in node):
            raise BadEid(s)
        if any(not (0x21 <= ord(c) <= 0x7E) for c in demux):
            raise BadEid(s)                      # demux = *VCHAR
        return arr([u(1), ts(ssp)])
    if s.startswith("ipn:"):
        parts = s[4:].split(".")
        if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
            raise BadEid(s)
        node, svc = int(parts[0]), int(parts[1])
        if node > U64_MAX or svc > U64_MAX:
            raise BadEid(s)
        return arr([u(2), arr([u(node), u(svc)])])
    raise BadEid(s)

# ---------------------------------------------------------------------------
# Blocks and bundles (RFC 9171 §4.3)
# ---------------------------------------------------------------------------


def seal(fields, crc_type, corrupt=False):
    """Encode a block (definite array of encoded fields) with its CRC (§4.2.1, §4.3)."""
    if crc_type not in CRC_LEN:
        return arr(fields)
    n = CRC_LEN[crc_type]
    block = arr(fields + [bs(b"\x00" * n)])
    value = crc_value(crc_type, block)
    if corrupt:
        value = bytes([value[0] ^ 0x01]) + value[1:]
    return block[:-n] + value


T0 = 815000000000          # DTN time (ms since 2000-01-01): 2025-10-28
DAY = 86400000
FLAG_FRAGMENT = 0x01
FLAG_ADMIN = 0x02
FLAG_MNF = 0x04
BLK_REPLICATE = 0x01
BLK_REPORT = 0x02
BLK_DELETE = 0x04
BLK_DISCARD = 0x10


class Ext:
    """A canonical (extension) block."""

    def __init__(self, type, number, data, flags=0, crc=0, corrupt=False):
        self.type, self.number, self.data = type, number, data
        self.flags, self.crc, self.corrupt = flags, crc, corrupt

    def encode(self):
        return seal([u(self.type), u(self.number), u(self.flags), u(self.crc), bs(self.data)],
                    self.crc, self.corrupt)

    def info(self):
        return {"block_type": self.type, "block_number": self.number, "flags": self.flags,
                "crc": CRC_NAMES[self.crc], "data_length": len(self.data)}


def previous_node(number, eid="ipn:5.0", flags=0, crc=0):
    return Ext(6, number, eid_cbor(eid), flags, crc)


def bundle_age(number, age_ms, flags=0, crc=0):
    return Ext(7, number, u(age_ms), flags, crc)


def hop_count(number, limit=30, count=2, flags=0, crc=0):
    return Ext(10, number, arr([u(limit), u(count)]), flags, crc)


class Bundle:
    """A bundle described field by field; `encode` gives the canonical bytes."""

    def __init__(self, payload=b"", destination="ipn:2.25", source="ipn:1.0",
                 report_to="dtn:none", creation_time=T0, sequence_number=0,
                 lifetime_ms=DAY, flags=0, crc=2, frag=None, exts=(),
                 payload_crc=1, payload_flags=0, version=7):
        self.payload = bytes(payload)
        self.destination, self.source, self.report_to = destination, source, report_to
        self.creation_time, self.sequence_number = creation_time, sequence_number
        self.lifetime_ms, self.flags, self.crc = lifetime_ms, flags, crc
        self.frag = frag                   # (offset, total ADU length) or None
        if frag is not None:
            self.flags |= FLAG_FRAGMENT
        self.exts = list(exts)
        self.payload_crc, self.payload_flags, self.version = payload_crc, payload_flags, version
        self.corrupt_primary = False
        self.corrupt_payload = False
        # field name -> encoded EID written instead of eid_cbor(string), for
        # encodings eid_cbor cannot produce (RFC 9758 three-element ipn)
        self.raw_eids = {}

    # -- encoding --
    def primary_fields(self):
        def e(field):
            return self.raw_eids[field] if field in self.raw_eids else eid_cbor(getattr(self, field))
        f = [u(self.version), u(self.flags), u(self.crc),
             e("destination"), e("source"), e("report_to"),
             arr([u(self.creation_time), u(self.sequence_number)]), u(self.lifetime_ms)]
        if self.frag is not None:
            f += [u(self.frag[0]), u(self.frag[1])]
        return f

    def primary(self):
        return seal(self.primary_fields(), self.crc, self.corrupt_primary)

    def payload_block(self):
        return seal([u(1), u(1), u(self.payload_flags), u(self.payload_crc), bs(self.payload)],
                    self.payload_crc, self.corrupt_payload)

    def encode(self):
        return (INDEF_ARRAY + self.primary() + b"".join(e.encode() for e in self.exts)
                + self.payload_block() + BREAK)

    # -- what inspect reports --
    def info(self):
        blocks = [e.info() for e in self.exts]
        blocks.append({"block_type": 1, "block_number": 1, "flags": self.payload_flags,
                       "crc": CRC_NAMES[self.payload_crc], "data_length": len(self.payload)})
        return {
            "version": self.version,
            "flags": self.flags,
            "is_fragment": bool(self.flags & FLAG_FRAGMENT),
            "must_not_fragment": bool(self.flags & FLAG_MNF),
            "crc": CRC_NAMES[self.crc],
            "destination": self.destination,
            "source": self.source,
            "report_to": self.report_to,
            "creation_time": self.creation_time,
            "sequence_number": self.sequence_number,
            "lifetime_ms": self.lifetime_ms,
            "fragment_offset": self.frag[0] if self.frag else None,
            "total_adu_length": self.frag[1] if self.frag else None,
            "payload_length": len(self.payload),
            "blocks": blocks,
        }

    def adu_total(self):
        return self.frag[1] if self.frag else len(self.payload)

    def base_offset(self):
        return self.frag[0] if self.frag else 0


def default_spec(**over):
    spec = {"source": "ipn:1.0", "destination": "ipn:2.25", "report_to": "dtn:none",
            "creation_time": T0, "sequence_number": 0, "lifetime_ms": DAY,
            "crc": "crc32c", "block_crc": "crc16", "must_not_fragment": False}
    spec.update(over)
    return spec


def bundle_from_spec(adu, spec):
    return Bundle(adu, destination=spec["destination"], source=spec["source"],
                  report_to=spec["report_to"], creation_time=spec["creation_time"],
                  sequence_number=spec["sequence_number"], lifetime_ms=spec["lifetime_ms"],
                  flags=FLAG_MNF if spec["must_not_fragment"] else 0,
                  crc=CRC_CODES[spec["crc"]], payload_crc=CRC_CODES[spec["block_crc"]])


def B(b):
    return V.as_bytes(b)


def pattern(n, seed=0):
    """n deterministic, varied bytes."""
    return bytes(((i * 151) + (i >> 8) * 7 + seed) & 0xFF for i in range(n))


PATTERN256 = bytes(range(256))

# ---------------------------------------------------------------------------
# Reference fragmenter (RFC 9171 §5.8), used to prove every valid `fragment`
# case is feasible and every mtu-too-small case is not.
# ---------------------------------------------------------------------------


def make_fragment(orig, start, n):
    f = copy.copy(orig)
    f.exts = list(orig.exts) if start == 0 else [e for e in orig.exts if e.flags & BLK_REPLICATE]
    f.flags = orig.flags | FLAG_FRAGMENT
    f.frag = (orig.base_offset() + start, orig.adu_total())
    f.payload = orig.payload[start:start + n]
    return f


def reference_fragment(orig, mtu):
    """Greedy: each piece as large as fits. Returns list of Bundles or an error class."""
    if len(orig.encode()) <= mtu:
        return [orig]
    if orig.flags & FLAG_MNF:
        return "must-not-fragment"
    M = len(orig.payload)
    out, pos = [], 0
    while pos < M:
        lo, hi = 0, M - pos
        while lo < hi:                       # largest n with size <= mtu
            mid = (lo + hi + 1) // 2
            if len(make_fragment(orig, pos, mid).encode()) <= mtu:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            return "mtu-too-small"
        out.append(make_fragment(orig, pos, lo))
        pos += lo
    if len(out) < 2:
        return "mtu-too-small"
    return out


def fragment_size(orig, start, n):
    return len(make_fragment(orig, start, n).encode())

# ---------------------------------------------------------------------------
# Reference reassembler (RFC 9171 §5.9) over Bundle objects.
# ---------------------------------------------------------------------------


class RefReassembler:
    def __init__(self, limits):
        self.limits = limits
        self.pending = {}          # key -> {"total", "held": {offset: byte}, "expires"}

    def held_bytes(self):
        return sum(len(p["held"]) for p in self.pending.values())

    def push(self, b, now, error=None):
        if error:                                  # a bundle built to fail parsing
            return {"status": "error", "error": error}
        if b.creation_time + b.lifetime_ms < now:
            return {"status": "error", "error": "expired"}
        if not (b.flags & FLAG_FRAGMENT):
            return {"status": "adu", "adu": B(b.payload)}
        off, total = b.frag
        if total > self.limits["max_adu_bytes"]:
            return {"status": "error", "error": "limit-exceeded"}
        if off + len(b.payload) > total:
            return {"status": "error", "error": "offset-out-of-range"}
        key = (b.source, b.creation_time, b.sequence_number)
        p = self.pending.get(key)
        if p is not None and p["total"] != total:
            return {"status": "error", "error": "inconsistent-total-length"}
        held = p["held"] if p else {}
        new = 0
        for i, byte in enumerate(b.payload):
            if off + i in held:
                if held[off + i] != byte:
                    return {"status": "error", "error": "overlap-mismatch"}
            else:
                new += 1
        if p is None and len(self.pending) >= self.limits["max_pending_bundles"]:
            return {"status": "error", "error": "limit-exceeded"}
        if self.held_bytes() + new > self.limits["max_pending_bytes"]:
            return {"status": "error", "error": "limit-exceeded"}
        if p is None:
            p = self.pending[key] = {"total": total, "held": {},
                                     "expires": b.creation_time + b.lifetime_ms}
        for i, byte in enumerate(b.payload):
            p["held"][off + i] = byte
        if len(p["held"]) == total:
            del self.pending[key]
            return {"status": "adu", "adu": B(bytes(p["held"][i] for i in range(total)))}
        return {"status": "pending"}

    def expire(self, now):
        gone = [k for k, p in self.pending.items() if p["expires"] < now]
        for k in gone:
            del self.pending[k]
        return len(gone)

# ---------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------


FLAG_NOTES = {
    "crc16": "uses CRC-16/X.25 on at least one block",
    "crc32c": "uses CRC-32C on at least one block",
    "no-block-crc": "canonical blocks carry no CRC",
    "ipn": "ipn-scheme EIDs",
    "dtn": "dtn-scheme EIDs",
    "null-eid": "involves the null endpoint dtn:none",
    "must-not-fragment": "bundle flagged 'must not be fragmented'",
    "cbor-length-boundary": "a CBOR head changes size here (23/24, 255/256, 65535/65536)",
    "large": "input built with \"repeat\" (> 64 KiB)",
    "eid-syntax": "EID string or encoding syntax",
    "fragment": "a fragment (offset and total ADU length present)",
    "extension-block": "carries extension blocks (previous node 6, bundle age 7, hop count 10, or unknown)",
    "unknown-block": "carries a block type this suite treats as unknown (192..255, private use)",
    "truncated": "input cut short",
    "non-canonical": "not in the deterministic CBOR encoding §4.1 asks for",
    "flags": "bundle or block processing control flags",
    "crc-type": "CRC type code",
    "crc-mismatch": "a CRC value that does not match",
    "structure": "block structure or element count",
    "clock-less": "creation time 0 (no clock), bundle age block",
    "block-number": "block numbering",
    "refragment": "input is itself a fragment",
    "replicate": "extension blocks with/without 'replicate in every fragment'",
    "mtu-boundary": "MTU just at / just below a size where the output must change",
    "limits": "reassembly limits",
    "expiry": "bundle lifetime",
    "order": "fragment arrival order",
    "overlap": "overlapping fragments",
    "duplicate": "the same bundle pushed more than once",
    "interleaved": "fragments of two ADUs interleaved",
    "rfc9758": "ipn EIDs that RFC 9758 (Updates to the 'ipn' URI Scheme, which updates RFC 9171) reads "
               "differently: node number 0 (the Null ipn URI ipn:0.0 and ipn:0.x), allocator.node.service "
               "and the three-element CBOR encoding, 32-bit allocator and node numbers",
    "rfc-open": "the RFC leaves this to the implementation: on an `acceptable` case either outcome "
                "conforms; on a `valid` or `invalid` case the suite takes a position (usually the "
                "stricter one) that the RFC does not require, and the comment says which",
}


def manifest(operation, title, prefix):
    return V.Manifest("fragmenter", operation, title, ["RFC 9171"], GENERATOR,
                      FLAG_NOTES, prefix)


ADU = b"Hello, Moon! This is deepmail.\r\n"


def gen_build():
    m = manifest("build", "Building one BPv7 bundle from an ADU and a spec (canonical encoding)",
                 "bundle-build")

    def ok(comment, flags, refs, adu, spec, adu_bytes=None):
        b = bundle_from_spec(adu, spec)
        m.add(comment, flags, refs, "valid",
              {"adu": adu_bytes or V.as_bytes(adu, prefer_text=True), "spec": spec},
              expected={"bundle": B(b.encode())})

    def bad(comment, flags, refs, spec, adu=ADU):
        m.add(comment, flags, refs, "invalid",
              {"adu": V.as_bytes(adu, prefer_text=True), "spec": spec}, error="invalid-spec")

    eid_forms = [("ipn", "ipn EIDs", {}, ["RFC 9171 §4.2.5.1.2"]),
                 ("dtn", "dtn EIDs encoded as [1, \"//node/demux\"]",
                  dict(source="dtn://earth-gw/", destination="dtn://moon-gw/mail", report_to="dtn://earth-gw/"),
                  ["RFC 9171 §4.2.5.1.1"])]
    for form, label, eids, eref in eid_forms:
        for crc in ("crc16", "crc32c"):
            for bcrc in ("none", "crc16", "crc32c"):
                fl = [form] + sorted({crc, bcrc} - {"none"}) + (["no-block-crc"] if bcrc == "none" else [])
                ok("%s, primary CRC %s, payload CRC %s" % (label, crc, bcrc), fl,
                   ["RFC 9171 §4.2.1", "RFC 9171 §4.3.1", "RFC 9171 §4.3.2"] + eref,
                   ADU, default_spec(crc=crc, block_crc=bcrc, **eids))
    # RFC 9758 (which updates RFC 9171) has 32-bit node numbers in the text
    # form; ipn:4294967296.25 is RFC 9171's reading. A builder that follows
    # RFC 9758 refuses the string: flagged rfc-open, kept valid.
    ok("ipn report-to and a node number of 2^32 (RFC 9171 §4.2.5.1.2: any unsigned integer; RFC 9758's "
       "text form has 32-bit node numbers, so refusing the string is not wrong by it)",
       ["ipn", "crc32c", "crc16", "rfc9758", "rfc-open"],
       ["RFC 9171 §4.2.5.1.2", "RFC 9758"], ADU,
       default_spec(report_to="ipn:1.0", destination="ipn:4294967296.25"))
    ok("dtn destination with an empty demux (administrative endpoint form)", ["dtn", "crc16"],
       ["RFC 9171 §4.2.5.1.1"], ADU,
       default_spec(destination="dtn://moon-gw/", crc="crc16", block_crc="none"))
    ok("must-not-fragment sets bundle flag 0x04", ["must-not-fragment", "crc32c", "crc16"],
       ["RFC 9171 §4.2.3"], ADU, default_spec(must_not_fragment=True))
    ok("anonymous source dtn:none with must-not-fragment is allowed", ["null-eid", "must-not-fragment", "crc32c", "crc16"],
       ["RFC 9171 §4.2.3", "RFC 9171 §4.3.1"], ADU,
       default_spec(source="dtn:none", must_not_fragment=True))
    ok("empty ADU: payload is the empty byte string 0x40", ["crc32c", "crc16"],
       ["RFC 9171 §4.3.2"], b"", default_spec())
    for n in (23, 24, 255, 256):
        ok("ADU of %d bytes: payload byte-string head is %d byte(s)" % (n, len(head(2, n))),
           ["cbor-length-boundary", "crc32c"], ["RFC 8949 §3", "RFC 9171 §4.3.2"],
           pattern(n), default_spec(block_crc="crc32c"), adu_bytes=B(pattern(n)))
    for n, unit in ((65535, b"\x5a"), (65536, PATTERN256)):
        ok("ADU of %d bytes: payload byte-string head is %d bytes" % (n, len(head(2, n))),
           ["cbor-length-boundary", "large", "crc32c"], ["RFC 8949 §3", "RFC 9171 §4.3.2"],
           unit * (n // len(unit)), default_spec(block_crc="crc32c"),
           adu_bytes=V.repeated(unit, n // len(unit)))
    for seq in (23, 24, 255, 256, 65535, 65536, 4294967295, 4294967296):
        ok("sequence number %d in shortest form" % seq, ["cbor-length-boundary", "crc16"],
           ["RFC 8949 §4.2.1", "RFC 9171 §4.1", "RFC 9171 §4.2.7"], b"x",
           default_spec(sequence_number=seq, crc="crc16", block_crc="none"))
    ok("largest creation time, node number and lifetime (2^64-1); the node number is RFC 9171's reading "
       "(RFC 9758's text form has 32-bit node numbers)", ["cbor-length-boundary", "crc32c", "rfc9758", "rfc-open"],
       ["RFC 9171 §4.2.6", "RFC 9171 §4.3.1", "RFC 9758"], b"x",
       default_spec(creation_time=U64_MAX, lifetime_ms=U64_MAX,
                    destination="ipn:18446744073709551615.25", block_crc="crc32c"))
    m.add("creation time 0 (no clock) needs a Bundle Age block (§4.4.2), which the canonical "
          "two-block encoding lacks: an implementation may refuse (invalid-spec) or add a "
          "Bundle Age block", ["clock-less", "rfc-open"], ["RFC 9171 §4.2.7", "RFC 9171 §4.4.2"],
          "acceptable", {"adu": V.as_text("x"), "spec": default_spec(creation_time=0)})
    m.add("source dtn://earth-gw/mail has a non-empty demux, which §4.2.5.1.1 says cannot serve "
          "as a node ID while §4.2.5.2 allows any singleton EID to", ["dtn", "rfc-open"],
          ["RFC 9171 §4.2.5.1.1", "RFC 9171 §4.2.5.2"], "acceptable",
          {"adu": V.as_text("x"), "spec": default_spec(source="dtn://earth-gw/mail")})

    bad("primary CRC type none without a BPSec integrity block", ["crc-type"],
        ["RFC 9171 §4.3.1"], default_spec(crc="none"))
    bad("primary CRC none even with block CRCs", ["crc-type"],
        ["RFC 9171 §4.3.1"], default_spec(crc="none", block_crc="crc32c"))
    bad("anonymous source dtn:none without must-not-fragment", ["null-eid", "flags"],
        ["RFC 9171 §4.2.3"], default_spec(source="dtn:none"))
    for field, value, why in [
        ("destination", "ipn:2", "ipn EID without a service number"),
        ("destination", "ipn:2.x", "ipn service number not decimal"),
        ("destination", "ipn:1.2.3", "three-part ipn EID"),
        ("destination", "ipn:-1.25", "negative ipn node number"),
        ("destination", "ipn:18446744073709551616.25", "ipn node number above 2^64-1"),
        ("destination", "dtn:moon-gw", "dtn EID without //"),
        ("destination", "dtn://moon-gw", "dtn EID without the name delimiter /"),
        ("destination", "dtn://moon gw/mail", "space in a dtn node name"),
        ("destination", "mailto:bob@moon.example", "URI scheme without a BP encoding"),
        ("source", "", "empty source EID"),
        ("report_to", "dtn:none ", "trailing space after dtn:none"),
        ("report_to", "ipn:1.0\r\n", "CRLF in an EID"),
    ]:
        if value == "ipn:1.2.3":
            # RFC 9758 adds ipn:allocator.node.service: the suite keeps
            # RFC 9171's two-part syntax here (rfc-open, see the RFC 9758
            # cases below, where a three-part EID is acceptable).
            bad("%s %r: %s (RFC 9171 §4.2.5.1.2; RFC 9758 reads allocator 1, node 2, service 3, so "
                "accepting it is not wrong by RFC 9758)" % (field, value, why), ["eid-syntax", "rfc9758", "rfc-open"],
                ["RFC 9171 §4.2.5.1.1", "RFC 9171 §4.2.5.1.2", "RFC 9758"], default_spec(**{field: value}))
            continue
        bad("%s %r: %s" % (field, value, why), ["eid-syntax"],
            ["RFC 9171 §4.2.5.1.1", "RFC 9171 §4.2.5.1.2"], default_spec(**{field: value}))

    # ---- ipn node number 0 and RFC 9758 (issue 16; new ids only after the existing ones) ----
    # RFC 9171 §4.2.5.1.2 knows only ipn:node.service, any node number,
    # encoded [2, [node, service]]. RFC 9758, which updates RFC 9171, makes
    # ipn:0.0 (and ipn:0.0.0) the Null ipn URI: "dtn:none ..., ipn:0.0, and
    # ipn:0.0.0 all refer to the BPv7 'null' endpoint"; an ipn URI with
    # allocator 0 and node 0 but a non-zero service number "is invalid.
    # Such ipn URIs MUST NOT be composed, and processors of such ipn URIs
    # MUST consider them as the Null ipn URI". It adds the text form
    # ipn:allocator.node.service with 32-bit allocator and node numbers.
    # Where the two RFCs give different outcomes the case is acceptable
    # (rfc-open); where both refuse, invalid. What a builder writes for the
    # Null ipn URI ([2, [0, 0]] as given, or [1, 0] for dtn:none, the same
    # endpoint) is open too, so no build case here compares bytes.
    R9758 = "RFC 9758"
    R_IPN = "RFC 9171 §4.2.5.1.2"

    def acc(comment, refs, spec, flags=()):
        m.add(comment, ["ipn", "rfc9758"] + list(flags) + ["rfc-open"], refs, "acceptable",
              {"adu": V.as_bytes(ADU, prefer_text=True), "spec": spec})

    acc("report-to ipn:0.0: RFC 9171 encodes it [2, [0, 0]], RFC 9758 makes it the Null ipn URI, the "
        "endpoint dtn:none names, so [1, 0] is as right (bytes not compared)", [R_IPN, R9758],
        default_spec(report_to="ipn:0.0"), ["null-eid"])
    acc("anonymous source given as ipn:0.0 with must-not-fragment: [2, [0, 0]] by RFC 9171, the null "
        "endpoint by RFC 9758 ([1, 0] as right)", [R_IPN, R9758, "RFC 9171 §4.2.3"],
        default_spec(source="ipn:0.0", must_not_fragment=True), ["null-eid", "must-not-fragment"])
    acc("source ipn:0.0 without must-not-fragment: an ordinary ipn source by RFC 9171, but the null "
        "endpoint by RFC 9758, and §4.2.3 then wants must-not-fragment (invalid-spec)",
        [R_IPN, R9758, "RFC 9171 §4.2.3"], default_spec(source="ipn:0.0"), ["null-eid", "flags"])
    acc("report-to ipn:0.7: an ordinary EID by RFC 9171; by RFC 9758 an ipn URI with node 0 and a "
        "non-zero service number MUST NOT be composed (invalid-spec)", [R_IPN, R9758],
        default_spec(report_to="ipn:0.7"), ["null-eid"])
    acc("report-to ipn:0.0.0: three parts, refused by RFC 9171 (invalid-spec); the Null ipn URI by "
        "RFC 9758", [R_IPN, R9758], default_spec(report_to="ipn:0.0.0"), ["null-eid", "eid-syntax"])
    acc("destination ipn:0.2.25: three parts, refused by RFC 9171 (invalid-spec); allocator 0, the "
        "same EID as ipn:2.25 by RFC 9758", [R_IPN, R9758], default_spec(destination="ipn:0.2.25"),
        ["eid-syntax"])
    for field, value, why in [
        ("destination", "ipn:0.0.7", "allocator 0, node 0, service 7: three parts for RFC 9171, and an ipn "
         "URI RFC 9758 says MUST NOT be composed"),
        ("destination", "ipn:4294967296.2.25", "allocator 2^32: three parts for RFC 9171, over RFC 9758's "
         "32-bit allocator identifier"),
        ("destination", "ipn:1.4294967296.25", "node number 2^32 after an allocator: three parts for "
         "RFC 9171, over RFC 9758's 32-bit node number"),
        ("report_to", "ipn:0.0.0.0", "four parts: neither RFC has them"),
        ("destination", "ipn:.2.25", "empty allocator part"),
    ]:
        bad("%s %r: %s" % (field, value, why), ["eid-syntax", "ipn", "rfc9758"], [R_IPN, R9758],
            default_spec(**{field: value}))
    return m


def inspect_case(m, comment, flags, refs, bundle, expected=None, result="valid", error=None):
    """bundle: a Bundle (expected defaults to its info) or raw bytes."""
    raw = bundle.encode() if isinstance(bundle, Bundle) else bundle
    if result == "valid" and expected is None:
        expected = bundle.info()
    m.add(comment, flags, refs, result, {"bundle": B(raw)},
          expected=expected if result == "valid" else None, error=error)


def primary_raw(fields, crc_type=2):
    return seal(fields, crc_type)


def std_fields(version=7, flags=0, crc=2, dest=None, src=None, rpt=None, ts_=None, lifetime=None):
    return [u(version), u(flags), u(crc),
            dest if dest is not None else eid_cbor("ipn:2.25"),
            src if src is not None else eid_cbor("ipn:1.0"),
            rpt if rpt is not None else eid_cbor("dtn:none"),
            ts_ if ts_ is not None else arr([u(T0), u(0)]),
            lifetime if lifetime is not None else u(DAY)]


def payload_raw(data=b"hello", crc=1, flags=0, number=1, btype=1):
    return seal([u(btype), u(number), u(flags), u(crc), bs(data)], crc)


def wrap(*blocks):
    return INDEF_ARRAY + b"".join(blocks) + BREAK


def gen_inspect():
    m = manifest("inspect", "Parsing and validating one BPv7 bundle", "bundle-inspect")
    R41, R4211, R4212 = "RFC 9171 §4.1", "RFC 9171 §4.2.1", "RFC 9171 §4.2.2"
    R423, R424, R425 = "RFC 9171 §4.2.3", "RFC 9171 §4.2.4", "RFC 9171 §4.2.5.1"
    R431, R432 = "RFC 9171 §4.3.1", "RFC 9171 §4.3.2"
    R44 = "RFC 9171 §4.4"

    # ---- valid ----
    inspect_case(m, "minimal ipn bundle, CRC-32C primary, CRC-16 payload", ["ipn", "crc32c", "crc16"],
                 [R41, R431, R432], Bundle(b"hello"))
    inspect_case(m, "CRC-16 primary, no payload CRC", ["ipn", "crc16", "no-block-crc"],
                 [R4211, R431], Bundle(b"hello", crc=1, payload_crc=0))
    inspect_case(m, "CRC-32C on every block", ["ipn", "crc32c"], [R4211],
                 Bundle(b"hello", crc=2, payload_crc=2))
    inspect_case(m, "dtn-scheme EIDs and a dtn report-to", ["dtn", "crc32c", "crc16"], [R425],
                 Bundle(b"hello", destination="dtn://moon-gw/mail", source="dtn://earth-gw/",
                        report_to="dtn://earth-gw/"))
    inspect_case(m, "anonymous source dtn:none with must-not-fragment set", ["null-eid", "must-not-fragment"],
                 [R423], Bundle(b"hello", source="dtn:none", flags=FLAG_MNF))
    inspect_case(m, "first fragment: offset 0, total ADU length 20", ["fragment"], [R431],
                 Bundle(b"0123456789", frag=(0, 20)))
    inspect_case(m, "last fragment: offset 10 of 20", ["fragment"], [R431],
                 Bundle(b"abcdefghij", frag=(10, 20)))
    inspect_case(m, "fragment whose offset needs a two-byte CBOR head", ["fragment", "cbor-length-boundary"],
                 [R431], Bundle(b"z" * 8, frag=(300, 308), crc=1))
    inspect_case(m, "previous node (6), bundle age (7) and hop count (10) before the payload",
                 ["extension-block"], [R44, "RFC 9171 §4.4.1", "RFC 9171 §4.4.2", "RFC 9171 §4.4.3"],
                 Bundle(b"hello", exts=[previous_node(2), bundle_age(3, 1500), hop_count(4, 30, 2)]))
    inspect_case(m, "extension blocks with their own CRCs and non-sequential block numbers",
                 ["extension-block", "crc16", "crc32c", "block-number"], [R41, R432],
                 Bundle(b"hello", exts=[hop_count(7, 10, 0, flags=BLK_REPLICATE, crc=2),
                                         previous_node(3, "dtn://relay/", crc=1)]))
    inspect_case(m, "unknown block type 192 with flags 0 is kept and reported", ["unknown-block", "extension-block"],
                 [R424, "RFC 9171 §5.6"], Bundle(b"hello", exts=[Ext(192, 2, b"\x01\x02\x03")]))
    ub = Bundle(b"hello", exts=[Ext(200, 2, b"\xaa", flags=BLK_DISCARD)])
    exp = ub.info()
    del exp["blocks"]
    inspect_case(m, "unknown block flagged 'discard block if unprocessable' does not fail the bundle "
                 "(whether it is listed in blocks is left open)", ["unknown-block", "flags"],
                 [R424, "RFC 9171 §5.6"], ub, expected=exp)
    inspect_case(m, "creation time 0 with a bundle age block", ["clock-less", "extension-block"],
                 ["RFC 9171 §4.2.7", "RFC 9171 §4.4.2"],
                 Bundle(b"hello", creation_time=0, sequence_number=42, exts=[bundle_age(2, 60000)]))
    inspect_case(m, "reserved and unassigned bundle flags are ignored, not refused", ["flags"],
                 [R423], Bundle(b"hello", flags=0x08 | 0x100000 | (1 << 40)))
    inspect_case(m, "status report request flags and ack request on a normal bundle", ["flags"],
                 [R423], Bundle(b"hello", flags=0x20 | 0x40 | 0x4000 | 0x10000 | 0x20000 | 0x40000))
    inspect_case(m, "reserved block flag bits are ignored", ["flags", "extension-block"], [R424],
                 Bundle(b"hello", exts=[hop_count(2, flags=0x08 | 0x20)], payload_flags=0x40))
    inspect_case(m, "empty payload", ["structure"], [R432], Bundle(b""))
    inspect_case(m, "payload of 24 bytes (two-byte byte-string head)", ["cbor-length-boundary"],
                 [R432], Bundle(pattern(24)))
    inspect_case(m, "creation time and lifetime at 2^64-1", ["cbor-length-boundary"], ["RFC 9171 §4.2.6"],
                 Bundle(b"x", creation_time=U64_MAX, lifetime_ms=U64_MAX, sequence_number=U64_MAX))
    inspect_case(m, "administrative record flag without status requests", ["flags"], [R423],
                 Bundle(b"\x82\x01\x80", flags=FLAG_ADMIN))

    # ---- acceptable ----
    def acc(comment, flags, refs, raw):
        m.add(comment, flags + ["rfc-open"], refs, "acceptable", {"bundle": B(raw)})

    good_primary = Bundle(b"hello").primary()
    acc("outer array of definite length (0x83) instead of indefinite: §4.1 lets a node accept and "
        "transform such input", ["non-canonical"], [R41],
        b"\x82" + good_primary + payload_raw())
    acc("lifetime 86400000 written with an 8-byte head (0x1b) where 4 bytes suffice: not deterministic "
        "CBOR, but §4.1 allows accepting non-conformant input", ["non-canonical"], [R41],
        wrap(seal(std_fields(lifetime=b"\x1b" + DAY.to_bytes(8, "big")), 2), payload_raw()))
    acc("sequence number 5 written as 0x18 0x05 (non-shortest)", ["non-canonical"], [R41],
        wrap(seal(std_fields(ts_=arr([u(T0), b"\x18\x05"])), 2), payload_raw()))
    acc("source ipn:1.25 (non-zero service) as source node ID", ["ipn"],
        ["RFC 9171 §4.2.5.1.2", "RFC 9171 §4.2.5.2"], Bundle(b"hello", source="ipn:1.25").encode())
    acc("unknown URI scheme code 3 in the destination EID; §4.2.5.1 allows schemes beyond dtn and ipn",
        ["eid-syntax"], [R425], wrap(seal(std_fields(dest=arr([u(3), ts("x")])), 2), payload_raw()))
    # §5.8 fragments a payload of M bytes into N and M - N with 0 < N < M. A
    # fragment carrying the whole ADU (N = M, here) and one carrying nothing
    # (N = 0, bundle-inspect-099 below) break that rule alike, yet both are
    # self-consistent (offset + length <= total) and §5.9 can reassemble
    # with them. Both are acceptable: refusing gives invalid-fragment.
    acc("fragment whose payload is the whole ADU (offset 0, length = total): §5.8's 0 < N < M is broken, "
        "as by an empty fragment; accepting it or refusing it (invalid-fragment) both conform", ["fragment"],
        ["RFC 9171 §5.8"], Bundle(b"hello", frag=(0, 5)).encode())
    acc("fragment flag together with must-not-fragment", ["fragment", "flags"], [R423],
        Bundle(b"hello", frag=(0, 10), flags=FLAG_MNF).encode())
    bib = Ext(11, 2, b"\x81\x00\x01\x01\x82\x02\x82\x01\x00\x80\x81\x80", flags=0)
    acc("primary CRC type 0 with a BPSec block integrity block (type 11): CRC may be absent if the "
        "BIB targets the primary block", ["crc-type", "extension-block"], [R431, "RFC 9172"],
        Bundle(b"hello", crc=0, exts=[bib]).encode())
    acc("hop count above hop limit: §4.4.3 says SHOULD be deleted", ["extension-block"],
        ["RFC 9171 §4.4.3"], Bundle(b"hello", exts=[hop_count(2, 3, 4)]).encode())

    # ---- invalid ----
    def bad(comment, flags, refs, raw, error):
        inspect_case(m, comment, flags, refs, raw, result="invalid", error=error)

    good = Bundle(b"hello").encode()
    # malformed-cbor
    bad("not an array: a CBOR unsigned integer", ["structure"], [R41], b"\x07", "malformed-cbor")
    bad("reserved CBOR additional information 28 in the first byte", ["structure"], ["RFC 8949 §3"],
        b"\x1c" + good[1:], "malformed-cbor")
    bad("empty indefinite array: no primary block", ["structure"], [R41], b"\x9f\xff", "malformed-cbor")
    bad("primary block is a map, not an array", ["structure"], [R431],
        wrap(b"\xa0", payload_raw()), "malformed-cbor")
    bad("primary block with 7 elements", ["structure"], [R431],
        wrap(arr(std_fields()[:7]), payload_raw()), "malformed-cbor")
    bad("primary block with the fragment flag but only 9 elements (no offset/total)", ["structure", "fragment"],
        [R431], wrap(seal(std_fields(flags=FLAG_FRAGMENT), 2), payload_raw()), "malformed-cbor")
    bad("primary block without the fragment flag but 11 elements", ["structure", "fragment"], [R431],
        wrap(seal(std_fields() + [u(0), u(10)], 2), payload_raw()), "malformed-cbor")
    bad("version as a text string", ["structure"], [R431],
        wrap(seal([ts("7")] + std_fields()[1:], 2), payload_raw()), "malformed-cbor")
    bad("creation timestamp with three items", ["structure"], ["RFC 9171 §4.2.7"],
        wrap(seal(std_fields(ts_=arr([u(T0), u(0), u(0)])), 2), payload_raw()), "malformed-cbor")
    bad("bundle processing flags as a negative integer", ["structure", "flags"], [R423],
        wrap(seal([u(7), b"\x20"] + std_fields()[2:], 2), payload_raw()), "malformed-cbor")
    bad("canonical block with 4 elements", ["structure"], [R432],
        wrap(good_primary, arr([u(1), u(1), u(0), u(0)])), "malformed-cbor")
    bad("canonical block with CRC type 0 but 6 elements", ["structure"], [R432, R4212],
        wrap(good_primary, arr([u(1), u(1), u(0), u(0), bs(b"hello"), bs(b"\x00\x00")])), "malformed-cbor")
    bad("payload data as a text string instead of a byte string", ["structure"], [R432],
        wrap(good_primary, seal([u(1), u(1), u(0), u(1), ts("hello")], 1)), "malformed-cbor")
    # §4.3.2 asks for a definite-length byte string, but §4.1 lets a node
    # accept non-conforming encodings it can transform losslessly (its own
    # example is the outer array's length, accepted above): either outcome.
    acc("payload data as an indefinite-length byte string: §4.3.2 wants definite length, §4.1 lets a "
        "node accept and transform such input", ["structure"], [R432, R41],
        wrap(good_primary, seal([u(1), u(1), u(0), u(1), b"\x5f\x45hello\xff"], 1)))
    bad("CRC-16 value of 4 bytes", ["structure", "crc16"], [R4212],
        wrap(good_primary, arr([u(1), u(1), u(0), u(1), bs(b"hello"), bs(b"\x00\x00\x00\x00")])),
        "malformed-cbor")
    bad("CRC value as an integer instead of a byte string", ["structure", "crc32c"], [R4212],
        wrap(arr(std_fields() + [u(0)]), payload_raw()), "malformed-cbor")
    bad("bundle age block whose data is not a CBOR unsigned integer", ["structure", "extension-block"],
        ["RFC 9171 §4.4.2"], Bundle(b"hello", exts=[Ext(7, 2, ts("old"))]).encode(), "malformed-cbor")
    bad("hop count block whose data is a one-item array", ["structure", "extension-block"],
        ["RFC 9171 §4.4.3"], Bundle(b"hello", exts=[Ext(10, 2, arr([u(5)]))]).encode(), "malformed-cbor")
    # truncated
    cuts = [(0, "empty input"), (1, "after the opening 0x9f"), (len(good_primary) // 2 + 1, "inside the primary block"),
            (1 + len(good_primary) + 2, "inside the payload block header"),
            (len(good) - 6, "inside the payload data"), (len(good) - 2, "inside the payload CRC"),
            (len(good) - 1, "before the closing break")]
    for cut, where in cuts:
        bad("truncated %s (%d of %d bytes)" % (where, cut, len(good)), ["truncated"], [R41],
            good[:cut], "truncated")
    # trailing bytes
    bad("one zero byte after the closing break", ["structure"], [R41], good + b"\x00", "trailing-bytes")
    bad("a second bundle after the first", ["structure"], [R41], good + good, "trailing-bytes")
    # version
    bad("primary block version 6", ["structure"], [R431, "RFC 9171 §9.2"],
        Bundle(b"hello", version=6).encode(), "unsupported-version")
    bad("primary block version 8", ["structure"], [R431],
        Bundle(b"hello", version=8).encode(), "unsupported-version")
    # invalid-eid
    for comment, dest in [
        ("dtn SSP text 'none' (must be the integer 0)", arr([u(1), ts("none")])),
        ("dtn SSP integer other than 0", arr([u(1), u(1)])),
        ("dtn SSP without leading //", arr([u(1), ts("moon-gw/mail")])),
        ("dtn SSP without the name delimiter", arr([u(1), ts("//moon-gw")])),
        ("ipn SSP with one number", arr([u(2), arr([u(2)])])),
        ("ipn SSP as a text string", arr([u(2), ts("2.25")])),
        ("ipn node number negative", arr([u(2), arr([b"\x20", u(25)])])),
        ("URI scheme code 0 (reserved)", arr([u(0), u(0)])),
        ("EID array with one item", arr([u(1)])),
    ]:
        bad("destination EID: " + comment, ["eid-syntax"], [R425, "RFC 9171 §4.2.5.1.1", "RFC 9171 §4.2.5.1.2"],
            wrap(seal(std_fields(dest=dest), 2), payload_raw()), "invalid-eid")
    bad("previous node block holding an invalid EID", ["eid-syntax", "extension-block"],
        ["RFC 9171 §4.4.1"], Bundle(b"hello", exts=[Ext(6, 2, arr([u(1), ts("x")]))]).encode(), "invalid-eid")
    # invalid-flags
    bad("administrative record with 'report reception' requested", ["flags"], [R423],
        Bundle(b"\x82\x01\x80", flags=FLAG_ADMIN | 0x4000).encode(), "invalid-flags")
    bad("source dtn:none without must-not-fragment", ["flags", "null-eid"], [R423],
        Bundle(b"hello", source="dtn:none").encode(), "invalid-flags")
    bad("source dtn:none with must-not-fragment but 'report delivery' requested", ["flags", "null-eid"], [R423],
        Bundle(b"hello", source="dtn:none", flags=FLAG_MNF | 0x20000).encode(), "invalid-flags")
    bad("administrative record with a block flagged 'transmit status report if unprocessable'",
        ["flags", "extension-block"], [R424],
        Bundle(b"\x82\x01\x80", flags=FLAG_ADMIN, exts=[hop_count(2, flags=BLK_REPORT)]).encode(), "invalid-flags")
    bad("source dtn:none with a payload flagged 'transmit status report if unprocessable'",
        ["flags", "null-eid"], [R424],
        Bundle(b"hello", source="dtn:none", flags=FLAG_MNF, payload_flags=BLK_REPORT).encode(), "invalid-flags")
    # invalid-crc-type
    bad("primary CRC type 3", ["crc-type"], [R4211],
        wrap(arr(std_fields(crc=3) + [bs(b"\x00\x00\x00\x00")]), payload_raw()), "invalid-crc-type")
    bad("payload CRC type 3", ["crc-type"], [R4211],
        wrap(good_primary, arr([u(1), u(1), u(0), u(3), bs(b"hello"), bs(b"\x00\x00")])), "invalid-crc-type")
    bad("extension block CRC type 255", ["crc-type", "extension-block"], [R4211],
        wrap(good_primary, arr([u(10), u(2), u(0), u(255), bs(arr([u(30), u(0)])), bs(b"\x00\x00")]),
             payload_raw()), "invalid-crc-type")
    # missing-primary-crc
    bad("primary CRC type 0 and no block integrity block", ["crc-type"], [R431],
        Bundle(b"hello", crc=0).encode(), "missing-primary-crc")
    bad("primary CRC type 0 on a fragment, payload with CRC", ["crc-type", "fragment"], [R431],
        Bundle(b"hello", crc=0, frag=(0, 10), payload_crc=2).encode(), "missing-primary-crc")
    # crc-mismatch
    for crc in (1, 2):
        b = Bundle(b"hello", crc=crc)
        b.corrupt_primary = True
        bad("primary %s value off by one bit" % CRC_NAMES[crc], ["crc-mismatch", CRC_NAMES[crc]], [R4211, R431],
            b.encode(), "crc-mismatch")
        b = Bundle(b"hello", payload_crc=crc)
        b.corrupt_payload = True
        bad("payload %s value off by one bit" % CRC_NAMES[crc], ["crc-mismatch", CRC_NAMES[crc]], [R4211, R432],
            b.encode(), "crc-mismatch")
    flipped = bytearray(Bundle(b"hello", payload_crc=2).encode())
    flipped[-8] ^= 0x20                     # a payload byte, CRC left as it was
    bad("payload byte changed after the CRC was computed", ["crc-mismatch", "crc32c"], [R432],
        bytes(flipped), "crc-mismatch")
    e = hop_count(2, crc=1)
    e.corrupt = True
    bad("extension block CRC-16 mismatch", ["crc-mismatch", "extension-block", "crc16"], [R432],
        Bundle(b"hello", exts=[e]).encode(), "crc-mismatch")
    # missing-payload / payload-not-last
    bad("primary block only", ["structure"], [R41], wrap(good_primary), "missing-payload")
    bad("primary and a hop count block, no payload", ["structure", "extension-block"], [R41],
        wrap(good_primary, hop_count(2).encode()), "missing-payload")
    bad("hop count block after the payload block", ["structure", "extension-block"], [R41],
        wrap(good_primary, payload_raw(), hop_count(2).encode()), "payload-not-last")
    # block numbers
    bad("extension block numbered 0", ["block-number", "extension-block"], [R41],
        Bundle(b"hello", exts=[hop_count(0)]).encode(), "invalid-block-number")
    bad("payload block numbered 2", ["block-number"], [R41],
        wrap(good_primary, payload_raw(number=2)), "invalid-block-number")
    bad("extension block numbered 1", ["block-number", "extension-block"], [R41],
        wrap(good_primary, hop_count(1).encode(), payload_raw()), "invalid-block-number")
    # duplicates
    bad("a previous node block and a hop count block both numbered 2", ["block-number", "extension-block"], [R41],
        Bundle(b"hello", exts=[previous_node(2), hop_count(2)]).encode(), "duplicate-block")
    bad("two hop count blocks", ["extension-block"], ["RFC 9171 §4.4.3"],
        Bundle(b"hello", exts=[hop_count(2), hop_count(3)]).encode(), "duplicate-block")
    bad("two previous node blocks", ["extension-block"], ["RFC 9171 §4.4.1"],
        Bundle(b"hello", exts=[previous_node(2), previous_node(3, "ipn:6.0")]).encode(), "duplicate-block")
    bad("two bundle age blocks", ["extension-block", "clock-less"], ["RFC 9171 §4.4.2"],
        Bundle(b"hello", creation_time=0, exts=[bundle_age(2, 10), bundle_age(3, 10)]).encode(), "duplicate-block")
    # missing-bundle-age
    bad("creation time 0 without a bundle age block", ["clock-less"], ["RFC 9171 §4.4.2"],
        Bundle(b"hello", creation_time=0).encode(), "missing-bundle-age")
    bad("creation time 0 with only a hop count block", ["clock-less", "extension-block"], ["RFC 9171 §4.4.2"],
        Bundle(b"hello", creation_time=0, exts=[hop_count(2)]).encode(), "missing-bundle-age")
    # unprocessable-block
    bad("unknown block type 192 flagged 'delete bundle if unprocessable'", ["unknown-block", "flags"],
        [R424, "RFC 9171 §5.6"], Bundle(b"hello", exts=[Ext(192, 2, b"x", flags=BLK_DELETE)]).encode(),
        "unprocessable-block")
    bad("unknown block flagged both 'delete bundle' and 'discard block': delete wins",
        ["unknown-block", "flags"], ["RFC 9171 §5.6"],
        Bundle(b"hello", exts=[Ext(255, 5, b"", flags=BLK_DELETE | BLK_DISCARD)]).encode(), "unprocessable-block")
    # fragments
    # Was invalid-fragment; now acceptable, alike with the whole-ADU fragment
    # (bundle-inspect-026, see there).
    m.add("fragment with an empty payload: §5.8's 0 < N < M is broken, as by a whole-ADU fragment "
          "(bundle-inspect-026); accepting it or refusing it (invalid-fragment) both conform",
          ["fragment", "rfc-open"], ["RFC 9171 §5.8", "RFC 9171 §5.9"], "acceptable",
          {"bundle": B(Bundle(b"", frag=(0, 10)).encode())})
    bad("fragment whose offset equals the total ADU length", ["fragment"], [R431, "RFC 9171 §5.8"],
        Bundle(b"abc", frag=(10, 10)).encode(), "invalid-fragment")
    bad("fragment with total ADU length 0", ["fragment"], [R431],
        Bundle(b"abc", frag=(0, 0)).encode(), "invalid-fragment")
    bad("fragment running past the total ADU length (offset 8 + 5 bytes > 10)", ["fragment"],
        [R431, "RFC 9171 §5.9"], Bundle(b"hello", frag=(8, 10)).encode(), "offset-out-of-range")

    # ---- added after the RFC audit (new ids only after the existing ones) ----
    # §4.4.3: "The hop limit MUST be in the range 1 through 255." A value
    # outside it is not the structure §4.4.3 requires: malformed-cbor, as
    # for a hop count block whose data is not a two-item array.
    bad("hop count block with hop limit 0 (§4.4.3: 1 through 255)", ["structure", "extension-block"],
        ["RFC 9171 §4.4.3"], Bundle(b"hello", exts=[hop_count(2, 0, 0)]).encode(), "malformed-cbor")
    bad("hop count block with hop limit 256 (§4.4.3: 1 through 255)", ["structure", "extension-block"],
        ["RFC 9171 §4.4.3"], Bundle(b"hello", exts=[hop_count(2, 256, 0)]).encode(), "malformed-cbor")
    inspect_case(m, "hop count block with hop limit 255, the top of the §4.4.3 range",
                 ["extension-block"], ["RFC 9171 §4.4.3"],
                 Bundle(b"hello", exts=[hop_count(2, 255, 0)]))
    inspect_case(m, "hop count block with hop limit 1 and hop count 0", ["extension-block"],
                 ["RFC 9171 §4.4.3"], Bundle(b"hello", exts=[hop_count(2, 1, 0)]))
    # §4.4.1: the Previous Node block holds "the node ID of the node that
    # forwarded this bundle". dtn:none names no node (§4.2.5.1.1: the null
    # endpoint has no members), so it cannot be one: invalid-eid. An ipn EID
    # with a non-zero service number is not a node ID by §4.2.5.1.2, but
    # §4.2.5.2 lets a node ID be any singleton EID: open, as for the source
    # (bundle-inspect-024).
    bad("previous node block holding dtn:none, which is no node's ID", ["eid-syntax", "extension-block", "null-eid"],
        ["RFC 9171 §4.4.1", "RFC 9171 §4.2.5.2"],
        Bundle(b"hello", exts=[Ext(6, 2, eid_cbor("dtn:none"))]).encode(), "invalid-eid")
    acc("previous node block holding ipn:5.1 (service number not 0): not a node ID by §4.2.5.1.2, but "
        "§4.2.5.2 allows any singleton EID as a node ID", ["ipn", "extension-block"],
        ["RFC 9171 §4.4.1", "RFC 9171 §4.2.5.1.2", "RFC 9171 §4.2.5.2"],
        Bundle(b"hello", exts=[Ext(6, 2, eid_cbor("ipn:5.1"))]).encode())
    # §5.6 step 4 applies to every block type the node cannot process, not
    # only the private-use range 192..255: an unassigned type (100, 191) is
    # handled by its flags the same way.
    inspect_case(m, "unassigned block type 100 (not private use) with flags 0 is kept and reported",
                 ["unknown-block", "extension-block"], [R424, "RFC 9171 §5.6", "RFC 9171 §9.1"],
                 Bundle(b"hello", exts=[Ext(100, 2, b"\x01\x02")]))
    bad("unassigned block type 191 flagged 'delete bundle if unprocessable'", ["unknown-block", "flags"],
        [R424, "RFC 9171 §5.6", "RFC 9171 §9.1"],
        Bundle(b"hello", exts=[Ext(191, 2, b"x", flags=BLK_DELETE)]).encode(), "unprocessable-block")

    # ---- ipn node number 0 and RFC 9758 (issue 16) ----
    # See gen_build for the RFC 9758 text. A received [2, [0, 0]] is the ipn
    # EID ipn:0.0 by RFC 9171 §4.2.5.1.2 and the null endpoint by RFC 9758:
    # accepted either way, and reported as "ipn:0.0" or "dtn:none", so the
    # field holding it is left out of `expected` (README: a runner compares
    # only the fields present). A received [2, [0, 7]] is an ordinary EID
    # for RFC 9171, and RFC 9758 says processors "MUST consider them as the
    # Null ipn URI": accepted either way too. The three-element encoding
    # [2, [allocator, node, service]] is RFC 9758's; RFC 9171 has only two
    # elements: acceptable unless both refuse.
    R9758 = "RFC 9758"
    R_IPN = "RFC 9171 §4.2.5.1.2"

    def ipn_raw(*nums):
        return arr([u(2), arr([u(n) for n in nums])])

    def eid_bundle(raw_eids, **kw):
        b = Bundle(b"hello", **kw)
        b.raw_eids = dict(raw_eids)
        return b

    def ok_eid(comment, cflags, refs, raw_eids, **kw):
        b = eid_bundle(raw_eids, **kw)
        exp = b.info()
        for field in raw_eids:
            del exp[field]
        inspect_case(m, comment, ["ipn", "rfc9758"] + cflags, refs, b, expected=exp)

    def acc_eid(comment, cflags, refs, raw_eids, exts=(), **kw):
        b = eid_bundle(raw_eids, exts=exts, **kw)
        m.add(comment, ["ipn", "rfc9758"] + cflags + ["rfc-open"], refs, "acceptable", {"bundle": B(b.encode())})

    def bad_eid(comment, cflags, refs, raw_eids, error="invalid-eid"):
        inspect_case(m, comment, ["ipn", "rfc9758", "eid-syntax"] + cflags, refs,
                     eid_bundle(raw_eids).encode(), result="invalid", error=error)

    ok_eid("report-to [2, [0, 0]]: ipn:0.0 by RFC 9171, the Null ipn URI (dtn:none) by RFC 9758; accepted "
           "either way, report_to not compared", ["null-eid"], [R_IPN, R9758],
           {"report_to": ipn_raw(0, 0)})
    ok_eid("source [2, [0, 0]] with must-not-fragment: accepted whether it is read as ipn:0.0 or as the "
           "null endpoint (source not compared)", ["null-eid", "must-not-fragment"],
           [R_IPN, R9758, R423], {"source": ipn_raw(0, 0)}, flags=FLAG_MNF)
    acc_eid("source [2, [0, 0]] without must-not-fragment: fine for RFC 9171, but the null endpoint for "
            "RFC 9758, which §4.2.3 then requires must-not-fragment of (invalid-flags)",
            ["null-eid", "flags"], [R_IPN, R9758, R423], {"source": ipn_raw(0, 0)})
    acc_eid("source [2, [0, 0]] with must-not-fragment and 'report delivery' requested: fine for RFC "
            "9171; for RFC 9758 an anonymous source, whose status report flags §4.2.3 wants zero "
            "(invalid-flags)", ["null-eid", "flags"], [R_IPN, R9758, R423],
            {"source": ipn_raw(0, 0)}, flags=FLAG_MNF | 0x20000)
    ok_eid("report-to [2, [0, 7]]: an ordinary EID for RFC 9171; RFC 9758 says processors MUST consider "
           "node 0 with a non-zero service number the Null ipn URI, not refuse it (report_to not compared)",
           ["null-eid"], [R_IPN, R9758], {"report_to": ipn_raw(0, 7)})
    acc_eid("previous node block holding [2, [0, 0]]: a node ID (service 0) for RFC 9171, the null "
            "endpoint, which is no node's ID (as bundle-inspect-107), for RFC 9758", ["null-eid", "extension-block"],
            [R_IPN, R9758, "RFC 9171 §4.4.1"], {}, exts=[Ext(6, 2, ipn_raw(0, 0))])
    acc_eid("report-to [2, [0, 0, 0]]: three elements, malformed for RFC 9171 (invalid-eid), RFC 9758's "
            "three-element Null ipn URI", ["null-eid", "eid-syntax"], [R_IPN, R9758],
            {"report_to": ipn_raw(0, 0, 0)})
    acc_eid("report-to [2, [0, 0, 7]]: three elements, malformed for RFC 9171; the Null ipn URI for RFC 9758 "
            "(node 0, non-zero service)", ["null-eid", "eid-syntax"], [R_IPN, R9758],
            {"report_to": ipn_raw(0, 0, 7)})
    acc_eid("destination [2, [1, 2, 3]]: RFC 9758's three-element encoding of ipn:1.2.3 (allocator 1); "
            "malformed for RFC 9171", ["eid-syntax"], [R_IPN, R9758], {"destination": ipn_raw(1, 2, 3)})
    acc_eid("destination [2, [0, 2, 25]]: three-element encoding with allocator 0, ipn:2.25 for RFC 9758 "
            "(which recommends the two-element form there); malformed for RFC 9171", ["eid-syntax"],
            [R_IPN, R9758], {"destination": ipn_raw(0, 2, 25)})
    ok_eid("destination [2, [2^32 + 2, 3]]: node number 4294967298 for RFC 9171, allocator 1 node 2 packed "
           "in the two-element encoding for RFC 9758; accepted either way (destination not compared)",
           [], [R_IPN, R9758], {"destination": ipn_raw((1 << 32) | 2, 3)})
    bad_eid("destination [2, [2^32, 2, 25]]: three elements (RFC 9171) and an allocator over RFC 9758's "
            "32 bits", [], [R_IPN, R9758], {"destination": ipn_raw(1 << 32, 2, 25)})
    bad_eid("destination [2, [1, 2^32, 25]]: three elements (RFC 9171) and a node number over RFC 9758's "
            "32 bits", [], [R_IPN, R9758], {"destination": ipn_raw(1, 1 << 32, 25)})
    bad_eid("report-to [2, [0, 0, 0, 0]]: four elements, in neither RFC", ["null-eid"], [R_IPN, R9758],
            {"report_to": ipn_raw(0, 0, 0, 0)})
    bad_eid("destination [2, []]: an empty ipn array", [], [R_IPN, R9758], {"destination": arr([u(2), arr([])])})
    return m


def frag_input_bundle(b, mtu):
    return {"bundle": B(b.encode()), "mtu": mtu}


def gen_fragment():
    m = manifest("fragment", "Fragmenting a bundle to fit an MTU (properties checked, not bytes)",
                 "bundle-fragment")
    R58 = "RFC 9171 §5.8"

    def case(comment, flags, refs, orig, mtu, inp, expect_adu=None, expect_count=None):
        res = reference_fragment(orig, mtu)
        if isinstance(res, str):
            raise AssertionError("fragment case not feasible (%s): %s" % (res, comment))
        for f in res:
            assert len(f.encode()) <= mtu
        if expect_count is not None:
            assert len(res) == expect_count, (comment, len(res))
        m.add(comment, flags, refs, "valid", inp,
              expected={"adu": expect_adu if expect_adu is not None else B(orig.payload)})
        return res

    def fail(comment, flags, refs, orig, mtu, inp, error):
        res = reference_fragment(orig, mtu)
        assert res == error, (comment, res)
        m.add(comment, flags, refs, "invalid", inp, error=error)

    # spec-input cases: ADU sizes x MTUs around CBOR head growth
    for M, bcrc in ((24, "crc32c"), (256, "crc16"), (1000, "none")):
        spec = default_spec(block_crc=bcrc, sequence_number=M)
        orig = bundle_from_spec(pattern(M), spec)
        W = len(orig.encode())
        case("ADU %d bytes, MTU = bundle size %d: one bundle, unfragmented" % (M, W),
             ["mtu-boundary", "cbor-length-boundary"], [R58, "RFC 9171 §4.1"], orig, W,
             {"adu": B(pattern(M)), "spec": spec, "mtu": W}, expect_count=1)
        case("ADU %d bytes, MTU = bundle size - 1 = %d: must fragment" % (M, W - 1),
             ["mtu-boundary"], [R58], orig, W - 1, {"adu": B(pattern(M)), "spec": spec, "mtu": W - 1})
    spec = default_spec(sequence_number=7)
    for M, sizes in ((100, (23, 24)), (700, (255, 256))):
        orig = bundle_from_spec(pattern(M, 3), spec)
        for n in sizes:
            s = fragment_size(orig, 0, n)
            for mtu, what in ((s - 1, "1 below"), (s, "exactly")):
                case("ADU %d bytes, MTU %s the size of a first fragment carrying %d bytes "
                     "(payload head %d byte(s))" % (M, what, n, len(head(2, n))),
                     ["mtu-boundary", "cbor-length-boundary"], [R58, "RFC 8949 §3"], orig, mtu,
                     {"adu": B(orig.payload), "spec": spec, "mtu": mtu})
    orig = bundle_from_spec(pattern(300, 5), spec)
    mtu = fragment_size(orig, 0, 23)
    case("ADU 300 bytes, MTU fits 23 bytes at offset 0: offsets past 23 and 255 need longer heads, "
         "so later pieces must carry fewer bytes", ["mtu-boundary", "cbor-length-boundary"], [R58],
         orig, mtu, {"adu": B(orig.payload), "spec": spec, "mtu": mtu})
    big_spec = default_spec(block_crc="crc32c", sequence_number=65536)
    for units, label in ((256, "65536"), (274, "70144")):
        M = 256 * units
        orig = bundle_from_spec(PATTERN256 * units, big_spec)
        W = len(orig.encode())
        inp = lambda mtu: {"adu": V.repeated(PATTERN256, units), "spec": big_spec, "mtu": mtu}  # noqa: E731
        if M == 65536:
            case("ADU 65536 bytes, MTU = bundle size: one bundle", ["large", "mtu-boundary", "cbor-length-boundary"],
                 [R58], orig, W, inp(W), expect_adu=V.repeated(PATTERN256, units), expect_count=1)
            case("ADU 65536 bytes, MTU = bundle size - 1", ["large", "mtu-boundary"], [R58], orig, W - 1,
                 inp(W - 1), expect_adu=V.repeated(PATTERN256, units))
        else:
            for n, what in ((65535, "exactly"), (65536, "1 below")):
                s = fragment_size(orig, 0, n)
                mtu = s if what == "exactly" else s - 1
                case("ADU %s bytes, MTU %s the size of a first fragment of %d bytes" % (label, what, n),
                     ["large", "mtu-boundary", "cbor-length-boundary"], [R58, "RFC 8949 §3"], orig, mtu,
                     inp(mtu), expect_adu=V.repeated(PATTERN256, units))
    orig = bundle_from_spec(PATTERN256 * 512, big_spec)
    mtu = fragment_size(orig, 0, 30000)
    case("ADU 131072 bytes in ~30000-byte pieces: offsets cross 65535/65536", ["large", "cbor-length-boundary"],
         [R58], orig, mtu, {"adu": V.repeated(PATTERN256, 512), "spec": big_spec, "mtu": mtu},
         expect_adu=V.repeated(PATTERN256, 512))
    for mtu in (120, 200, 512, 1280):
        orig = bundle_from_spec(pattern(3000, mtu), default_spec(sequence_number=mtu))
        case("ADU 3000 bytes, MTU %d" % mtu, [], [R58], orig, mtu,
             {"adu": B(orig.payload), "spec": default_spec(sequence_number=mtu), "mtu": mtu})
    dspec = default_spec(source="dtn://earth-gw/", destination="dtn://moon-gw/mail", crc="crc16",
                         block_crc="none")
    orig = bundle_from_spec(pattern(500, 9), dspec)
    case("dtn EIDs, CRC-16 primary, no payload CRC, MTU 150", ["dtn", "crc16", "no-block-crc"], [R58],
         orig, 150, {"adu": B(orig.payload), "spec": dspec, "mtu": 150})
    # tightest MTU: one payload byte per fragment
    tspec = default_spec(block_crc="none", crc="crc16", sequence_number=1)
    orig = bundle_from_spec(b"0123456789", tspec)
    s1 = fragment_size(orig, 0, 1)
    case("MTU = size of a 1-byte fragment: ten 1-byte fragments", ["mtu-boundary"], [R58], orig, s1,
         {"adu": V.as_text("0123456789"), "spec": tspec, "mtu": s1}, expect_count=10)
    fail("MTU one below the size of a 1-byte fragment", ["mtu-boundary"], [R58], orig, s1 - 1,
         {"adu": V.as_text("0123456789"), "spec": tspec, "mtu": s1 - 1}, "mtu-too-small")
    fail("MTU 0", [], [R58], orig, 0, {"adu": V.as_text("0123456789"), "spec": tspec, "mtu": 0}, "mtu-too-small")
    o1 = bundle_from_spec(b"x", tspec)
    w1 = len(o1.encode())
    fail("1-byte ADU, MTU one below the bundle size: a 1-byte payload cannot be split (0 < N < M)",
         ["mtu-boundary"], [R58], o1, w1 - 1, {"adu": V.as_text("x"), "spec": tspec, "mtu": w1 - 1},
         "mtu-too-small")
    mspec = default_spec(must_not_fragment=True)
    orig = bundle_from_spec(pattern(400), mspec)
    fail("spec with must-not-fragment and an MTU smaller than the bundle", ["must-not-fragment"],
         [R58, "RFC 9171 §4.2.3"], orig, 200, {"adu": B(orig.payload), "spec": mspec, "mtu": 200},
         "must-not-fragment")

    # bundle-input cases
    b = Bundle(pattern(600, 1), sequence_number=11,
               exts=[previous_node(2), hop_count(3, flags=BLK_REPLICATE), bundle_age(4, 500, flags=BLK_REPLICATE)])
    # §5.8: blocks flagged "replicate" go in every fragment, and every other
    # extension block MUST be in the offset-0 fragment. §5.8 forbids nothing
    # more: copying a non-replicated block into later fragments too is not
    # an error, and the runner must not fail it (README, `fragment`). The
    # reference fragmenter puts them in the first piece only, the smallest
    # output, to prove the MTU feasible.
    case("extension blocks: hop count and bundle age replicated in every fragment, previous node in the "
         "offset-0 fragment (later fragments may carry it too)",
         ["extension-block", "replicate"], [R58], b, 200, frag_input_bundle(b, 200))
    b = Bundle(pattern(600, 2), sequence_number=12, exts=[Ext(192, 5, b"\x00" * 40), hop_count(3)])
    case("non-replicated unknown block (40 bytes) and hop count must be in the offset-0 fragment "
         "(§5.8 does not forbid them in later ones)",
         ["extension-block", "unknown-block", "replicate"], [R58], b, 160, frag_input_bundle(b, 160))
    b = Bundle(pattern(600, 3), sequence_number=13, exts=[Ext(192, 5, b"\x11" * 40, flags=BLK_REPLICATE)])
    case("40-byte unknown block flagged replicate appears in every fragment", ["extension-block", "unknown-block", "replicate"],
         [R58], b, 160, frag_input_bundle(b, 160))
    b = Bundle(pattern(200, 4), sequence_number=14, crc=1, payload_crc=2, exts=[hop_count(2, crc=2)])
    case("block CRCs are recomputed for every fragment", ["crc16", "crc32c", "extension-block"],
         [R58, "RFC 9171 §4.2.1"], b, 90, frag_input_bundle(b, 90))
    b = Bundle(pattern(200, 5), frag=(100, 400), sequence_number=15)
    case("re-fragmenting a fragment (offset 100 of 400): pieces keep offsets relative to the original ADU",
         ["refragment", "fragment"], [R58], b, 100, frag_input_bundle(b, 100), expect_adu=B(b.payload))
    b = Bundle(pattern(40, 6), frag=(360, 400), sequence_number=15, exts=[hop_count(2, flags=BLK_REPLICATE)])
    case("re-fragmenting the last fragment of a 400-byte ADU", ["refragment", "fragment", "replicate"], [R58],
         b, 70, frag_input_bundle(b, 70), expect_adu=B(b.payload))
    b = Bundle(pattern(100, 7), frag=(0, 400), sequence_number=16, exts=[previous_node(2)])
    case("re-fragmenting the offset-0 fragment: its extension blocks go to the new offset-0 piece",
         ["refragment", "fragment", "extension-block"], [R58], b, 90, frag_input_bundle(b, 90),
         expect_adu=B(b.payload))
    b = Bundle(pattern(100, 8), flags=FLAG_MNF, sequence_number=17)
    W = len(b.encode())
    case("must-not-fragment bundle that already fits is returned as one bundle", ["must-not-fragment"],
         [R58], b, W, frag_input_bundle(b, W), expect_count=1)
    fail("must-not-fragment bundle one byte over the MTU", ["must-not-fragment", "mtu-boundary"],
         [R58, "RFC 9171 §4.2.3"], b, W - 1, frag_input_bundle(b, W - 1), "must-not-fragment")
    b = Bundle(pattern(100, 9), creation_time=0, sequence_number=18,
               exts=[bundle_age(2, 1000, flags=BLK_REPLICATE)])
    case("clock-less bundle (creation time 0): every fragment is a bundle and so needs the bundle age "
         "block (§4.4.2); here it is flagged replicate", ["clock-less", "extension-block", "replicate"],
         [R58, "RFC 9171 §4.4.2"], b, 80, frag_input_bundle(b, 80))
    b = Bundle(b"0123456789", crc=1, payload_crc=0, sequence_number=19, exts=[Ext(192, 2, b"\x00" * 30)])
    s_first = fragment_size(b, 0, 1)
    s_later = fragment_size(b, 1, 1)
    assert s_later < s_first - 1
    fail("MTU fits 1-byte later fragments but not the offset-0 fragment that must carry a 30-byte block",
         ["extension-block", "mtu-boundary"], [R58], b, s_first - 1, frag_input_bundle(b, s_first - 1),
         "mtu-too-small")
    return m


def gen_reassemble():
    m = manifest("reassemble", "Reassembling ADUs from bundles and fragments", "bundle-reassemble")
    R59 = "RFC 9171 §5.9"
    LIM = {"max_adu_bytes": 1 << 20, "max_pending_bytes": 1 << 22, "max_pending_bundles": 64}
    NOW = T0 + 60000

    def frags(adu, cuts, **kw):
        """Fragments of adu at the given cut points (list of (start, end))."""
        return [Bundle(adu[s:e], frag=(s, len(adu)), **kw) for s, e in cuts]

    def case(comment, flags, refs, pushes, limits=LIM, expire_at=None):
        """pushes: list of (Bundle, now) or (raw_bytes, now, error)."""
        r = RefReassembler(limits)
        outcomes, inp_pushes = [], []
        for p in pushes:
            if isinstance(p[0], Bundle):
                outcomes.append(r.push(p[0], p[1]))
                inp_pushes.append({"bundle": B(p[0].encode()), "now": p[1]})
            else:
                outcomes.append(r.push(None, p[1], error=p[2]))
                inp_pushes.append({"bundle": B(p[0]), "now": p[1]})
        expected = {"outcomes": outcomes}
        inp = {"limits": limits, "pushes": inp_pushes}
        if expire_at is not None:
            inp["expire_at"] = expire_at
            expected["expired"] = r.expire(expire_at)
        expected["pending_bundles"] = len(r.pending)
        errors = [o["error"] for o in outcomes if o["status"] == "error"]
        if "rfc-open" in flags and not errors:
            raise ValueError("rfc-open reassemble case that takes no position: " + comment)
        if errors:
            m.add(comment, flags, refs, "invalid", inp, expected=expected, error=errors[0])
        else:
            m.add(comment, flags, refs, "valid", inp, expected=expected)

    adu = pattern(300, 11)
    thirds = [(0, 100), (100, 200), (200, 300)]
    f = frags(adu, thirds, sequence_number=1)
    case("three fragments in order", ["order"], [R59], [(x, NOW) for x in f])
    case("three fragments in reverse order", ["order"], [R59], [(x, NOW) for x in reversed(f)])
    case("three fragments shuffled (middle, last, first)", ["order"], [R59], [(f[1], NOW), (f[2], NOW), (f[0], NOW)])
    case("a non-fragment bundle is delivered at once", [], [R59, "RFC 9171 §5.7"],
         [(Bundle(b"whole ADU", sequence_number=2), NOW)])
    case("duplicate fragment is accepted and changes nothing", ["duplicate"], [R59],
         [(f[0], NOW), (f[0], NOW), (f[1], NOW), (f[2], NOW)])
    case("duplicate of every fragment before the last", ["duplicate", "order"], [R59],
         [(f[2], NOW), (f[0], NOW), (f[2], NOW), (f[0], NOW), (f[1], NOW)])
    ov = frags(adu, [(0, 150), (100, 250), (200, 300)], sequence_number=1)
    case("overlapping fragments whose bytes agree (from different fragmentation episodes)", ["overlap"],
         [R59, "RFC 9171 §5.8"], [(x, NOW) for x in ov])
    ov2 = frags(adu, [(50, 300), (0, 100)], sequence_number=1)
    case("a large fragment then one that overlaps its start", ["overlap"], [R59], [(x, NOW) for x in ov2])
    inner = frags(adu, [(0, 200), (50, 150), (150, 300)], sequence_number=3)
    case("a fragment wholly inside one already held", ["overlap"], [R59], [(x, NOW) for x in inner])
    ga, gb = pattern(120, 21), pattern(90, 22)
    fa = frags(ga, [(0, 60), (60, 120)], sequence_number=4)
    fb = frags(gb, [(0, 45), (45, 90)], sequence_number=5)
    case("two ADUs interleaved (same source, different sequence numbers)", ["interleaved"], [R59],
         [(fa[0], NOW), (fb[0], NOW), (fa[1], NOW), (fb[1], NOW)])
    fc = frags(gb, [(0, 45), (45, 90)], sequence_number=4, source="ipn:9.0")
    case("same creation timestamp, different source: two separate ADUs", ["interleaved"], [R59],
         [(fa[0], NOW), (fc[0], NOW), (fc[1], NOW), (fa[1], NOW)])
    fd = frags(gb, [(0, 45), (45, 90)], sequence_number=4, creation_time=T0 + 1)
    case("same source and sequence number, different creation time: two separate ADUs", ["interleaved"],
         [R59], [(fa[0], NOW), (fd[0], NOW), (fa[1], NOW), (fd[1], NOW)])
    fe = frags(adu, thirds, sequence_number=6)
    fe[0].exts = [previous_node(2), hop_count(3, flags=BLK_REPLICATE)]
    fe[1].exts = [hop_count(3, flags=BLK_REPLICATE)]
    fe[2].exts = [hop_count(3, flags=BLK_REPLICATE)]
    case("fragments carrying extension blocks reassemble to the ADU alone", ["extension-block"], [R59],
         [(x, NOW) for x in fe])
    fx = frags(adu, thirds, sequence_number=7, crc=1, payload_crc=2)
    case("fragments with CRC-16 primary and CRC-32C payload", ["crc16", "crc32c"], [R59], [(x, NOW) for x in fx])
    one = frags(b"0123456789", [(i, i + 1) for i in range(10)], sequence_number=8)
    case("ten 1-byte fragments, odd offsets first", ["order"], [R59],
         [(x, NOW) for x in one[1::2] + one[0::2]])
    f1 = frags(adu, thirds, sequence_number=9)
    case("pending fragments of an unfinished ADU are reported", [], [R59], [(f1[0], NOW), (f1[2], NOW)])
    exp_end = T0 + DAY
    case("now equal to creation time + lifetime: age equals lifetime, not yet expired", ["expiry"],
         ["RFC 9171 §4.3.1", "RFC 9171 §5.5"], [(f1[0], exp_end), (f1[1], exp_end), (f1[2], exp_end)])
    short = frags(adu, thirds, sequence_number=10, lifetime_ms=1000)
    longer = frags(adu, thirds, sequence_number=11)
    case("expire_at past one ADU's lifetime drops it and keeps the other", ["expiry"],
         [R59, "RFC 9171 §5.5"], [(short[0], T0 + 500), (longer[0], T0 + 500)], expire_at=T0 + 1001)
    case("expire_at exactly at the end of the lifetime drops nothing", ["expiry"], ["RFC 9171 §5.5"],
         [(short[0], T0 + 500)], expire_at=T0 + 1000)

    # ---- invalid ----
    case("a fragment pushed after its lifetime ended is refused", ["expiry"], ["RFC 9171 §5.5"],
         [(short[0], T0 + 1001), (longer[0], T0 + 1001)])
    case("an unfragmented bundle pushed after its lifetime ended is refused", ["expiry"], ["RFC 9171 §5.5"],
         [(Bundle(b"late", sequence_number=12, lifetime_ms=5000), T0 + 5001)])
    bad_ov = frags(pattern(300, 99), [(50, 150)], sequence_number=1)[0]
    # §5.9 reassembles from the "material extents" of the fragments and says
    # nothing about overlaps whose bytes disagree. Refusing the fragment
    # that contradicts bytes already held (overlap-mismatch) is the suite's
    # hardening, not an RFC rule: flagged rfc-open.
    case("overlap whose bytes disagree is refused; the held state is kept and the right fragment completes it "
         "(§5.9 does not say what to do with disagreeing overlaps: refusing is the suite's hardening)",
         ["overlap", "rfc-open"], [R59], [(f[0], NOW), (bad_ov, NOW), (f[1], NOW), (f[2], NOW)])
    wrong_total = Bundle(adu[100:200], frag=(100, 400), sequence_number=1)
    # §4.3.1 defines the total ADU length as that of the original ADU, so two
    # fragments of one bundle (same source and creation timestamp) cannot
    # both be right, and §5.9's completion test ("length ... equal to the
    # total application data unit length in the fragment's primary block")
    # has no single answer. The RFC does not say to refuse the newcomer;
    # refusing it is the suite's position: flagged rfc-open.
    case("fragment disagreeing on the total ADU length is refused (§5.9 names no rule for this; "
         "refusing the newcomer is the suite's position)", ["rfc-open"], [R59, "RFC 9171 §4.3.1"],
         [(f[0], NOW), (wrong_total, NOW), (f[1], NOW), (f[2], NOW)])
    past_end = Bundle(b"x" * 20, frag=(290, 300), sequence_number=1)
    case("fragment running past the total ADU length is refused", [], [R59, "RFC 9171 §4.3.1"],
         [(f[0], NOW), (past_end.encode(), NOW, "offset-out-of-range"), (f[1], NOW), (f[2], NOW)])
    corrupt = Bundle(adu[100:200], frag=(100, 300), sequence_number=1, payload_crc=2)
    corrupt.corrupt_payload = True
    case("fragment with a bad payload CRC is refused, then the good copy completes the ADU", ["crc-mismatch"],
         ["RFC 9171 §5.6", R59], [(f[0], NOW), (corrupt.encode(), NOW, "crc-mismatch"), (f[1], NOW), (f[2], NOW)])
    case("a truncated bundle is refused and does not disturb what is held", ["truncated"], [R59],
         [(f[0], NOW), (f[1].encode()[:40], NOW, "truncated"), (f[1], NOW), (f[2], NOW)])
    lim = dict(LIM, max_adu_bytes=1000)
    big = Bundle(b"y" * 10, frag=(0, 1001), sequence_number=13)
    ok_small = frags(pattern(1000, 1), [(0, 500), (500, 1000)], sequence_number=14)
    case("fragment of an ADU larger than max_adu_bytes is refused; one of exactly max_adu_bytes is reassembled",
         ["limits"], [R59], [(big, NOW)] + [(x, NOW) for x in ok_small], limits=lim)
    lim = dict(LIM, max_pending_bundles=1)
    a2 = frags(pattern(100, 31), [(0, 50), (50, 100)], sequence_number=15)
    b2 = frags(pattern(100, 32), [(0, 50), (50, 100)], sequence_number=16)
    case("a second incomplete ADU over max_pending_bundles = 1 is refused; after the first completes it is taken",
         ["limits"], [R59], [(a2[0], NOW), (b2[0], NOW), (a2[1], NOW), (b2[0], NOW), (b2[1], NOW)], limits=lim)
    lim = dict(LIM, max_pending_bytes=100)
    c3 = frags(pattern(300, 41), [(0, 150)], sequence_number=17)
    d3 = frags(pattern(80, 42), [(0, 40), (40, 80)], sequence_number=18)
    case("a fragment of 150 bytes over max_pending_bytes = 100 is refused; a smaller ADU still reassembles",
         ["limits"], [R59], [(c3[0], NOW), (d3[0], NOW), (d3[1], NOW)], limits=lim)
    lim = dict(LIM, max_pending_bytes=170)
    pa = frags(pattern(80, 51), [(0, 60), (60, 80)], sequence_number=19)
    pb = frags(pattern(80, 52), [(0, 60), (60, 80)], sequence_number=20)
    pc = frags(pattern(80, 53), [(0, 60)], sequence_number=21)
    case("held bytes 120 + 60 would pass max_pending_bytes = 170: the third ADU's fragment is refused",
         ["limits"], [R59], [(pa[0], NOW), (pb[0], NOW), (pc[0], NOW), (pa[1], NOW)], limits=lim)
    return m


def main():
    out, quiet = V.out_dir_from_args(__doc__.splitlines()[0])
    manifests = [("bundle/build.json", gen_build()), ("bundle/inspect.json", gen_inspect()),
                 ("bundle/fragment.json", gen_fragment()), ("bundle/reassemble.json", gen_reassemble())]
    for rel, m in manifests:
        m.write(os.path.join(out, rel))
    V.report(manifests, quiet)


if __name__ == "__main__":
    main()
