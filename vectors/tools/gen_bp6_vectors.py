#!/usr/bin/env python3
"""Generate the BPv6 fragmenter vectors (RFC 5050 §4, §5.8, §5.9; RFC 6260).

Writes vectors/bundle6/{build,inspect,fragment,reassemble}.json: the cases a
BPv6 implementation of the `fragmenter` contract (wit/deepmail.wit) must
pass. Every bundle is produced by the SDNV, dictionary and block encoder in
this file and re-read by the independent reference reader below it (stdlib
only, nothing shared with deepmail's Rust crates or the bp6 plugin).
Expectations come from the RFC text; where the RFC leaves a choice open the
case is `acceptable` or flagged `rfc-open`, and where the contract's WIT
mapping decides (times in milliseconds, no CRCs, block numbers) the case is
flagged `wit-mapping`. Deterministic: run it twice, get the same bytes.

    python3 vectors/tools/gen_bp6_vectors.py [--out DIR]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vectorlib as V  # noqa: E402

GENERATOR = "vectors/tools/gen_bp6_vectors.py"
U64_MAX = (1 << 64) - 1

# RFC 5050 §4.2 bundle processing control flags.
F_FRAGMENT = 0x01
F_ADMIN = 0x02
F_MNF = 0x04
F_CUSTODY = 0x08
F_SINGLETON = 0x10
F_APP_ACK = 0x20
F_PRIO_NORMAL = 0x80          # class of service bits 7-8 = 01
F_REPORT_RECEPTION = 1 << 14
F_REPORT_DELIVERY = 1 << 17
# RFC 5050 §4.3 block processing control flags.
B_REPLICATE = 0x01
B_REPORT = 0x02
B_DELETE = 0x04
B_LAST = 0x08
B_DISCARD = 0x10
B_FORWARDED = 0x20
B_EIDREF = 0x40

# ---------------------------------------------------------------------------
# SDNV (RFC 5050 §4.1)
# ---------------------------------------------------------------------------


def sdnv(n):
    """Shortest SDNV of n: base 128, most significant group first, the top
    bit set on every octet but the last."""
    if n < 0:
        raise ValueError("SDNV of a negative number")
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


class ReadError(Exception):
    """The reference reader's verdict: an error class of vectors/README.md."""

    def __init__(self, cls, why):
        super().__init__("%s: %s" % (cls, why))
        self.cls = cls


def read_sdnv(buf, pos, end, past_end_class):
    """(value, new pos). Values over 64 bits are `malformed-sdnv` (the suite's
    bound); running past `end` gives `past_end_class`."""
    value = 0
    while True:
        if pos >= end:
            raise ReadError(past_end_class, "SDNV runs past the end")
        b = buf[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if value > U64_MAX:
            raise ReadError("malformed-sdnv", "SDNV value over 64 bits")
        if not b & 0x80:
            return value, pos

# ---------------------------------------------------------------------------
# Encoder: primary block with dictionary (§4.5.1, §4.4) or CBHE (RFC 6260),
# canonical blocks (§4.5.2).
# ---------------------------------------------------------------------------


def split_eid(eid):
    scheme, sep, ssp = eid.partition(":")
    if not sep:
        raise ValueError("EID without ':': %r" % eid)
    return scheme, ssp


def ipn_numbers(eid):
    if eid == "dtn:none":
        return 0, 0
    scheme, ssp = split_eid(eid)
    node, _, service = ssp.partition(".")
    assert scheme == "ipn"
    return int(node), int(service)


class Block:
    """A canonical block. `flags` without the last-block bit (the bundle sets
    it on its last block unless `raw_flags` overrides)."""

    def __init__(self, type, data, flags=0, eid_refs=None, raw_flags=None, raw_len=None):
        self.type, self.data, self.flags = type, bytes(data), flags
        self.eid_refs = eid_refs           # list of (scheme offset, ssp offset) or None
        self.raw_flags, self.raw_len = raw_flags, raw_len

    def wire_flags(self, last):
        if self.raw_flags is not None:
            return self.raw_flags
        f = self.flags | (B_LAST if last else 0)
        if self.eid_refs is not None:
            f |= B_EIDREF
        return f

    def encode(self, last):
        out = bytes([self.type]) + sdnv(self.wire_flags(last))
        if self.eid_refs is not None:
            out += sdnv(len(self.eid_refs))
            for s, p in self.eid_refs:
                out += sdnv(s) + sdnv(p)
        n = len(self.data) if self.raw_len is None else self.raw_len
        return out + sdnv(n) + self.data


def payload(data, flags=0, **kw):
    return Block(1, data, flags, **kw)


class Bundle:
    """A BPv6 bundle. `dictionary`: "plain" (each EID's scheme and SSP written
    in field order, no sharing), "shared" (each distinct string once) or
    "cbhe" (RFC 6260: empty dictionary, offsets carry ipn numbers).
    `overrides` replaces the encoded primary fields by name with raw bytes."""

    def __init__(self, adu=b"", destination="ipn:2.25", source="ipn:1.0", report_to="dtn:none",
                 custodian="dtn:none", creation=815000000, sequence=0, lifetime=86400,
                 flags=F_SINGLETON | F_PRIO_NORMAL, frag=None, blocks_before=(), blocks_after=(),
                 dictionary="plain", version=6, overrides=None, payload_flags=0, extra_dict=b""):
        self.adu = bytes(adu)
        self.destination, self.source, self.report_to, self.custodian = (
            destination, source, report_to, custodian)
        self.creation, self.sequence, self.lifetime = creation, sequence, lifetime
        self.flags, self.frag = flags, frag
        self.before, self.after = list(blocks_before), list(blocks_after)
        self.dictionary, self.version = dictionary, version
        self.overrides = dict(overrides or {})
        self.payload_flags, self.extra_dict = payload_flags, extra_dict

    def copy(self, **over):
        b = Bundle.__new__(Bundle)
        b.__dict__ = dict(self.__dict__)
        b.before, b.after, b.overrides = list(self.before), list(self.after), dict(self.overrides)
        for k, v in over.items():
            setattr(b, k, v)
        return b

    def eids(self):
        return [self.destination, self.source, self.report_to, self.custodian]

    def dict_and_offsets(self):
        if self.dictionary == "cbhe":
            offs = []
            for e in self.eids():
                offs += list(ipn_numbers(e))
            return b"", offs
        strings, offs, d = {}, [], bytearray()
        for e in self.eids():
            for part in split_eid(e):
                raw = part.encode("utf-8")
                if self.dictionary == "shared" and raw in strings:
                    offs.append(strings[raw])
                    continue
                strings.setdefault(raw, len(d))
                offs.append(len(d))
                d += raw + b"\0"
        return bytes(d) + self.extra_dict, offs

    def primary(self):
        d, offs = self.dict_and_offsets()
        names = ["dst_scheme", "dst_ssp", "src_scheme", "src_ssp", "rpt_scheme", "rpt_ssp",
                 "cust_scheme", "cust_ssp"]
        fields = [(n, sdnv(o)) for n, o in zip(names, offs)]
        fields += [("creation", sdnv(self.creation)), ("sequence", sdnv(self.sequence)),
                   ("lifetime", sdnv(self.lifetime)), ("dict_len", sdnv(len(d))), ("dict", d)]
        if self.frag is not None:
            fields += [("frag_offset", sdnv(self.frag[0])), ("total", sdnv(self.frag[1]))]
        body = b"".join(self.overrides.get(n, v) for n, v in fields)
        self._body_len = len(body)
        flags = self.overrides.get("flags", sdnv(self.flags))
        blen = self.overrides.get("block_len", sdnv(len(body)))
        return bytes([self.version]) + flags + blen + body

    def body_len(self):
        """Length of the primary block after the block-length field."""
        self.primary()
        return self._body_len

    def blocks(self):
        return self.before + [payload(self.adu, self.payload_flags)] + self.after

    def encode(self):
        blocks = self.blocks()
        return self.primary() + b"".join(
            b.encode(i == len(blocks) - 1) for i, b in enumerate(blocks))

    # What `inspect` reports (WIT field names, snake_case).
    def info(self):
        blocks, numbers, next_no = [], [], 2
        for b in self.blocks():
            if b.type == 1:
                numbers.append(1)
            else:
                numbers.append(next_no)
                next_no += 1
        for i, (b, no) in enumerate(zip(self.blocks(), numbers)):
            blocks.append({"block_type": b.type, "block_number": no,
                           "flags": b.wire_flags(i == len(numbers) - 1), "crc": "none",
                           "data_length": len(b.data)})
        return {
            "version": 6, "flags": self.flags,
            "is_fragment": bool(self.flags & F_FRAGMENT),
            "must_not_fragment": bool(self.flags & F_MNF), "crc": "none",
            "destination": self.destination, "source": self.source, "report_to": self.report_to,
            "creation_time": self.creation * 1000, "sequence_number": self.sequence,
            "lifetime_ms": self.lifetime * 1000,
            "fragment_offset": self.frag[0] if self.frag else None,
            "total_adu_length": self.frag[1] if self.frag else None,
            "payload_length": len(self.adu), "blocks": blocks,
        }

    def offset(self):
        return self.frag[0] if self.frag else 0

    def total(self):
        return self.frag[1] if self.frag else len(self.adu)

# ---------------------------------------------------------------------------
# Reference reader: RFC 5050 §4.5 read from the bytes alone, independent of
# the encoder above (it shares only `read_sdnv`). Every case's expectation is
# checked against it before the manifest is written.
# ---------------------------------------------------------------------------


def _scheme_ok(s):
    # RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    return bool(s) and s[0].isascii() and s[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c in "+-.") for c in s)


def _check_eid(eid):
    scheme, _, ssp = eid.partition(":")
    if not _scheme_ok(scheme):
        raise ReadError("invalid-eid", "bad scheme in %r" % eid)
    if scheme == "ipn":
        node, dot, service = ssp.partition(".")
        if not (dot and node.isdigit() and service.isdigit() and node.isascii()
                and service.isascii()) or int(node) > U64_MAX or int(service) > U64_MAX:
            raise ReadError("invalid-eid", "bad ipn SSP in %r" % eid)
    if scheme == "dtn" and not ssp:
        raise ReadError("invalid-eid", "empty dtn SSP")
    return eid


def _dict_string(d, off):
    # An EID whose dictionary reference does not resolve is an EID encoded
    # wrongly: `invalid-eid`, as the BPv7 suite classes a malformed EID array.
    if off >= len(d):
        raise ReadError("invalid-eid", "dictionary offset %d past %d bytes" % (off, len(d)))
    end = d.find(b"\0", off)
    if end < 0:
        raise ReadError("invalid-eid", "dictionary string at %d not NUL-terminated" % off)
    try:
        return d[off:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ReadError("invalid-eid", "dictionary string is not UTF-8")


def read_bundle(buf):
    """Parse a BPv6 bundle; returns (info dict, payload bytes, blocks) or
    raises ReadError with the error class."""
    n = len(buf)
    if n == 0:
        raise ReadError("truncated", "empty input")
    if buf[0] != 6:
        raise ReadError("unsupported-version", "version %d" % buf[0])
    flags, pos = read_sdnv(buf, 1, n, "truncated")
    blen, pos = read_sdnv(buf, pos, n, "truncated")
    if pos + blen > n:
        raise ReadError("truncated", "primary block runs past the input")
    end = pos + blen
    mb = "malformed-bundle"
    offs = []
    for _ in range(8):
        v, pos = read_sdnv(buf, pos, end, mb)
        offs.append(v)
    creation, pos = read_sdnv(buf, pos, end, mb)
    sequence, pos = read_sdnv(buf, pos, end, mb)
    lifetime, pos = read_sdnv(buf, pos, end, mb)
    dlen, pos = read_sdnv(buf, pos, end, mb)
    if pos + dlen > end:
        raise ReadError(mb, "dictionary overruns the primary block")
    d = bytes(buf[pos:pos + dlen])
    pos += dlen
    frag = None
    if flags & F_FRAGMENT:
        fo, pos = read_sdnv(buf, pos, end, mb)
        total, pos = read_sdnv(buf, pos, end, mb)
        frag = (fo, total)
    if pos != end:
        raise ReadError(mb, "primary block length %d, fields end %d bytes earlier" % (blen, end - pos))
    if dlen == 0:                                    # RFC 6260 CBHE
        eids = []
        for i in range(0, 8, 2):
            node, svc = offs[i], offs[i + 1]
            eids.append("dtn:none" if (node, svc) == (0, 0) else "ipn:%d.%d" % (node, svc))
    else:
        eids = [_check_eid(_dict_string(d, offs[i]) + ":" + _dict_string(d, offs[i + 1]))
                for i in range(0, 8, 2)]
    dst, src, rpt, _cust = eids
    blocks, payloads = [], []
    while True:
        if pos >= n:
            raise ReadError("truncated", "input ends before the last block")
        btype = buf[pos]
        bflags, pos = read_sdnv(buf, pos + 1, n, "truncated")
        if bflags & B_EIDREF:
            count, pos = read_sdnv(buf, pos, n, "truncated")
            for _ in range(count):
                s, pos = read_sdnv(buf, pos, n, "truncated")
                p, pos = read_sdnv(buf, pos, n, "truncated")
                if dlen == 0:
                    raise ReadError(mb, "EID reference with an empty dictionary")
                _check_eid(_dict_string(d, s) + ":" + _dict_string(d, p))
        length, pos = read_sdnv(buf, pos, n, "truncated")
        if pos + length > n:
            raise ReadError("truncated", "block data runs past the input")
        data = bytes(buf[pos:pos + length])
        pos += length
        blocks.append((btype, bflags, data))
        if btype == 1:
            payloads.append(data)
        if bflags & B_LAST:
            break
    if pos != n:
        raise ReadError("trailing-bytes", "%d bytes after the last block" % (n - pos))
    if not payloads:
        raise ReadError("missing-payload", "no payload block")
    if len(payloads) > 1:
        raise ReadError("duplicate-block", "two payload blocks")
    for btype, bflags, _ in blocks:
        if btype != 1 and bflags & B_DELETE:
            raise ReadError("unprocessable-block", "block type %d flagged delete-bundle" % btype)
    pl = payloads[0]
    if frag is not None:
        if flags & F_MNF:
            raise ReadError("invalid-flags", "fragment flagged must-not-fragment")
        if src == "dtn:none":
            raise ReadError("invalid-flags", "fragment of an anonymous bundle")
        if frag[1] == 0 or frag[0] >= frag[1]:
            raise ReadError("invalid-fragment", "offset %d, total %d" % frag)
        if frag[0] + len(pl) > frag[1]:
            raise ReadError("offset-out-of-range", "fragment runs past the ADU")
    numbers, nxt = [], 2
    for btype, _, _ in blocks:
        if btype == 1:
            numbers.append(1)
        else:
            numbers.append(nxt)
            nxt += 1
    info = {
        "version": 6, "flags": flags, "is_fragment": bool(flags & F_FRAGMENT),
        "must_not_fragment": bool(flags & F_MNF), "crc": "none",
        "destination": dst, "source": src, "report_to": rpt,
        "creation_time": creation * 1000, "sequence_number": sequence,
        "lifetime_ms": lifetime * 1000,
        "fragment_offset": frag[0] if frag else None,
        "total_adu_length": frag[1] if frag else None,
        "payload_length": len(pl),
        "blocks": [{"block_type": t, "block_number": no, "flags": f, "crc": "none",
                    "data_length": len(dt)} for (t, f, dt), no in zip(blocks, numbers)],
    }
    return info, pl, blocks


def expect_read(raw, info=None, error=None):
    """Assert the reference reader agrees with what the encoder meant."""
    try:
        got, _, _ = read_bundle(raw)
    except ReadError as e:
        if error is None or e.cls != error:
            raise AssertionError("reader says %s, expected %s: %s" % (e.cls, error or "valid", raw.hex()))
        return None
    if error is not None:
        raise AssertionError("reader accepts a bundle meant to fail with %s: %s" % (error, raw.hex()))
    if info is not None and got != info:
        raise AssertionError("reader disagrees:\n%r\n%r" % (got, info))
    return got

# ---------------------------------------------------------------------------
# Reference fragmenter (RFC 5050 §5.8), to prove each valid `fragment` case
# feasible and each `mtu-too-small` case infeasible.
# ---------------------------------------------------------------------------


def make_fragment(orig, start, n):
    """The fragment of orig's payload [start, start+n): blocks before the
    payload go to the first fragment, blocks after it to the last, blocks
    flagged 'replicate' to every one (§5.8)."""
    first, last = start == 0, start + n == len(orig.adu)
    keep = lambda b, edge: edge or (b.flags & B_REPLICATE)  # noqa: E731
    return orig.copy(adu=orig.adu[start:start + n], flags=orig.flags | F_FRAGMENT,
                     frag=(orig.offset() + start, orig.total()),
                     before=[b for b in orig.before if keep(b, first)],
                     after=[b for b in orig.after if keep(b, last)])


def reference_fragment(orig, mtu):
    if len(orig.encode()) <= mtu:
        return [orig]
    if orig.flags & F_MNF:
        return "must-not-fragment"
    M, out, pos = len(orig.adu), [], 0
    while pos < M:
        if len(make_fragment(orig, pos, M - pos).encode()) <= mtu:
            out.append(make_fragment(orig, pos, M - pos))
            break
        lo, hi = 0, M - pos - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(make_fragment(orig, pos, mid).encode()) <= mtu:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            return "mtu-too-small"
        out.append(make_fragment(orig, pos, lo))
        pos += lo
    return out

# ---------------------------------------------------------------------------
# Reference reassembler (RFC 5050 §5.9): keyed by source EID and creation
# timestamp (time, sequence number); times in the WIT's milliseconds.
# ---------------------------------------------------------------------------


class RefReassembler:
    def __init__(self, limits):
        self.limits, self.pending = limits, {}

    def held(self):
        return sum(len(p["held"]) for p in self.pending.values())

    def push(self, raw, now):
        try:
            info, pl, _ = read_bundle(raw)
        except ReadError as e:
            return {"status": "error", "error": e.cls}
        expires = info["creation_time"] + info["lifetime_ms"]
        if expires < now:                                  # §5.5: age past lifetime
            return {"status": "error", "error": "expired"}
        if not info["is_fragment"]:
            return {"status": "adu", "adu": B(pl)}
        off, total = info["fragment_offset"], info["total_adu_length"]
        if total > self.limits["max_adu_bytes"]:
            return {"status": "error", "error": "limit-exceeded"}
        key = (info["source"], info["creation_time"], info["sequence_number"])
        p = self.pending.get(key)
        if p is not None and p["total"] != total:
            return {"status": "error", "error": "inconsistent-total-length"}
        held = p["held"] if p else {}
        new = 0
        for i, byte in enumerate(pl):
            if off + i in held:
                if held[off + i] != byte:
                    return {"status": "error", "error": "overlap-mismatch"}
            else:
                new += 1
        if p is None and len(self.pending) >= self.limits["max_pending_bundles"]:
            return {"status": "error", "error": "limit-exceeded"}
        if self.held() + new > self.limits["max_pending_bytes"]:
            return {"status": "error", "error": "limit-exceeded"}
        if p is None:
            p = self.pending[key] = {"total": total, "held": {}, "expires": expires}
        for i, byte in enumerate(pl):
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


def B(b):
    return V.as_bytes(b)


def pattern(n, seed=0):
    """n deterministic, varied bytes."""
    return bytes(((i * 167) + (i >> 7) * 13 + seed * 29) & 0xFF for i in range(n))


FLAG_NOTES = {
    "ipn": "ipn-scheme EIDs",
    "dtn": "dtn-scheme EIDs",
    "null-eid": "involves the null endpoint dtn:none",
    "cbhe": "RFC 6260 compressed (CBHE) primary block: empty dictionary, ipn numbers in the offset fields",
    "dictionary": "dictionary layout: shared strings, unused strings, offsets",
    "sdnv-boundary": "an SDNV changes size here (127/128, 16383/16384, 2^64-1)",
    "sdnv": "SDNV encoding (RFC 5050 §4.1)",
    "eid-syntax": "EID string syntax",
    "fragment": "a fragment (offset and total ADU length present)",
    "extension-block": "carries extension blocks besides the payload",
    "unknown-block": "carries a block type this suite treats as unknown (192..255, private use)",
    "eid-reference": "a block with an EID-reference list (block flag 0x40)",
    "truncated": "input cut short",
    "hostile": "lengths or offsets that point outside the input, the block or the dictionary",
    "flags": "bundle or block processing control flags",
    "structure": "block structure",
    "must-not-fragment": "bundle flagged 'must not be fragmented'",
    "refragment": "input is itself a fragment",
    "replicate": "extension blocks with/without 'replicate in every fragment', before and after the payload",
    "mtu-boundary": "MTU just at / just below a size where the output must change",
    "limits": "reassembly limits",
    "expiry": "bundle lifetime",
    "order": "fragment arrival order",
    "overlap": "overlapping fragments",
    "duplicate": "the same bundle pushed more than once",
    "interleaved": "fragments of two ADUs interleaved",
    "large": "input over 16 KiB",
    "canonical-form": "byte-exact `build` output: the suite's canonical BPv6 encoding (see the manifest "
                      "title and vectors/README.md); RFC 5050 allows other dictionary layouts and flag "
                      "choices, so an implementation that writes another form is not wrong by the RFC and "
                      "may list the case in its expected-failures file",
    "wit-mapping": "decided by how the `fragmenter` WIT maps onto BPv6 (vectors/README.md, \"BPv6\"): "
                   "times as seconds x 1000, no CRCs, block numbers, creation time 0",
    "deepmail": "deepmail's own rule beyond RFC 5050 (named in the comment); an implementation without "
                "it is not wrong by the RFC",
    "rfc-open": "the RFC leaves this to the implementation: on an `acceptable` case either outcome "
                "conforms; on a `valid` or `invalid` case the suite takes a position (usually the "
                "stricter one) that the RFC does not require, and the comment says which",
}

R41, R42, R43, R44 = "RFC 5050 §4.1", "RFC 5050 §4.2", "RFC 5050 §4.3", "RFC 5050 §4.4"
R451, R452, R58, R59 = "RFC 5050 §4.5.1", "RFC 5050 §4.5.2", "RFC 5050 §5.8", "RFC 5050 §5.9"
R55, CBHE = "RFC 5050 §5.5", "RFC 6260 §2"


def manifest(operation, title, prefix):
    m = V.Manifest("fragmenter", operation, title, ["RFC 5050", "RFC 6260"], GENERATOR,
                   FLAG_NOTES, prefix)
    m.data["bundle_version"] = 6
    return m


ADU = b"Hello, Moon! This is deepmail over BPv6.\r\n"
T0 = 815000000                      # creation time, s since 2000-01-01
NOW = (T0 + 60) * 1000              # WIT ms


def spec(**over):
    s = {"source": "ipn:1.0", "destination": "ipn:2.25", "report_to": "dtn:none",
         "creation_time": T0 * 1000, "sequence_number": 0, "lifetime_ms": 86400 * 1000,
         "crc": "crc32c", "block_crc": "crc16", "must_not_fragment": False}
    s.update(over)
    return s


def gen_build():
    m = manifest("build", "Building one BPv6 bundle from an ADU and a spec. Canonical form: version 6; "
                 "flags 0x90 (destination is a singleton, normal priority), | 0x04 for must-not-fragment; "
                 "custodian dtn:none; the dictionary holds scheme and SSP of destination, source, "
                 "report-to and custodian in that order, each NUL-terminated, none shared; creation time "
                 "= floor(ms / 1000) s, lifetime = ceil(ms / 1000) s; one payload block, flags 0x08 "
                 "(last block); SDNVs in shortest form", "bundle6-build")

    def ok(comment, flags, refs, adu, sp):
        ct = sp["creation_time"] // 1000
        lt = -(-sp["lifetime_ms"] // 1000)
        f = F_SINGLETON | F_PRIO_NORMAL | (F_MNF if sp["must_not_fragment"] else 0)
        b = Bundle(adu, destination=sp["destination"], source=sp["source"],
                   report_to=sp["report_to"], creation=ct, sequence=sp["sequence_number"],
                   lifetime=lt, flags=f)
        raw = b.encode()
        expect_read(raw, b.info())
        m.add(comment, ["canonical-form"] + flags, [R451, R452] + refs, "valid",
              {"adu": B(adu), "spec": sp}, expected={"bundle": B(raw)})

    def bad(comment, flags, refs, sp, adu=ADU):
        m.add(comment, flags, refs, "invalid", {"adu": B(adu), "spec": sp}, error="invalid-spec")

    ok("ipn EIDs, report-to dtn:none", ["ipn", "null-eid"], [R44], ADU, spec())
    ok("report-to an ipn EID", ["ipn"], [R44], ADU, spec(report_to="ipn:1.7"))
    ok("dtn-scheme EIDs", ["dtn"], [R44], ADU,
       spec(source="dtn://earth-gw/mail", destination="dtn://moon-gw/mail", report_to="dtn://earth-gw/"))
    ok("mixed ipn and dtn EIDs", ["ipn", "dtn"], [R44], ADU,
       spec(destination="dtn://moon-gw/mail", report_to="ipn:1.1"))
    ok("must-not-fragment sets flag 0x04", ["must-not-fragment", "flags"], [R42], ADU,
       spec(must_not_fragment=True))
    ok("anonymous source dtn:none with must-not-fragment", ["null-eid", "must-not-fragment"], [R44],
       ADU, spec(source="dtn:none", must_not_fragment=True))
    ok("the CRC types of the spec have no BPv6 field and change nothing (crc none, block_crc none)",
       ["wit-mapping"], [R451], ADU, spec(crc="none", block_crc="none"))
    ok("crc16 on the primary block requested: not applied", ["wit-mapping"], [R451], ADU,
       spec(crc="crc16", block_crc="crc32c"))
    ok("creation time 815000000999 ms is written as 815000000 s (truncated)", ["wit-mapping"], [R451],
       ADU, spec(creation_time=T0 * 1000 + 999))
    ok("creation time 1 s (1000 ms), the smallest the mapping accepts", ["wit-mapping"], [R451], ADU,
       spec(creation_time=1000))
    ok("lifetime 1 ms is written as 1 s (rounded up: never expires earlier than asked)",
       ["wit-mapping"], [R451], ADU, spec(lifetime_ms=1))
    ok("lifetime 86400001 ms is written as 86401 s", ["wit-mapping"], [R451], ADU,
       spec(lifetime_ms=86400001))
    ok("lifetime 0", ["wit-mapping"], [R451], ADU, spec(lifetime_ms=0))
    ok("sequence number 127 (one-octet SDNV)", ["sdnv-boundary"], [R41], ADU, spec(sequence_number=127))
    ok("sequence number 128 (two-octet SDNV)", ["sdnv-boundary"], [R41], ADU, spec(sequence_number=128))
    ok("sequence number 2^64-1 (ten-octet SDNV)", ["sdnv-boundary"], [R41], ADU,
       spec(sequence_number=U64_MAX))
    ok("empty ADU", [], [R452], b"", spec())
    for n in (127, 128, 16383, 16384):
        ok("ADU of %d bytes: payload length SDNV at its size boundary" % n, ["sdnv-boundary"]
           + (["large"] if n > 16000 else []), [R41], pattern(n, n), spec())
    ok("ipn node and service numbers up to 2^64-1", ["ipn"], [R44], ADU,
       spec(destination="ipn:%d.%d" % (U64_MAX, U64_MAX)))
    m.add("creation time 0 ('no clock' in the WIT) has no BPv6 form: RFC 5050 §4.5.1 needs a creation "
          "time and BPv6 has no bundle age block", ["wit-mapping"], [R451], "invalid",
          {"adu": B(ADU), "spec": spec(creation_time=0)}, error="invalid-spec")
    m.add("creation time 999 ms truncates to 0 s: a clock reading (not the WIT's 'no clock' 0), and "
          "2000-01-01T00:00:00 is a creation time RFC 5050 allows; refusing it as 0 is conforming too",
          ["wit-mapping", "rfc-open"], [R451], "acceptable",
          {"adu": B(ADU), "spec": spec(creation_time=999)})
    bad("anonymous source without must-not-fragment (deepmail: an anonymous bundle cannot be "
        "reassembled, RFC 5050 §5.9 keys on the source)", ["deepmail", "null-eid"], [R59],
        spec(source="dtn:none"))
    for eid, why in (("ipn:1", "ipn SSP without service number"), ("ipn:a.b", "ipn SSP not numeric"),
                     ("nocolon", "no scheme separator"), ("", "empty string"),
                     ("1pn:1.0", "scheme starting with a digit"), ("d n:x", "space in the scheme"),
                     ("ipn:18446744073709551616.0", "ipn node number over 2^64-1 (the suite's bound: "
                      "no SDNV of CBHE or the WIT holds it)")):
        bad("destination %r: %s" % (eid, why), ["eid-syntax"] + (["rfc-open"] if "bound" in why else []),
            [R44], spec(destination=eid))
    bad("source 'ipn:1.0.0': three components", ["eid-syntax"], [R44], spec(source="ipn:1.0.0"))
    return m


def gen_inspect():
    m = manifest("inspect", "Reading the fields of a BPv6 bundle (inspect)", "bundle6-inspect")

    def ok(comment, flags, refs, b, compare_blocks=True):
        raw = b.encode()
        info = b.info()
        expect_read(raw, info)
        if not compare_blocks:
            info = {k: v for k, v in info.items() if k != "blocks"}
        m.add(comment, flags, refs, "valid", {"bundle": B(raw)}, expected=info)

    def bad(comment, flags, refs, raw, error):
        expect_read(raw, error=error)
        m.add(comment, flags, refs, "invalid", {"bundle": B(raw)}, error=error)

    def acc(comment, flags, refs, raw):
        m.add(comment, flags + ["rfc-open"], refs, "acceptable", {"bundle": B(raw)})

    base = Bundle(ADU)
    ok("a minimal bundle: ipn EIDs, dictionary, one payload block", ["ipn", "wit-mapping"],
       [R451, R452], base)
    ok("dtn-scheme EIDs", ["dtn"], [R44], Bundle(ADU, destination="dtn://moon-gw/mail",
                                               source="dtn://earth-gw/mail", report_to="dtn://earth-gw/"))
    ok("dictionary with shared strings (one 'ipn', one 'dtn', one 'none')", ["dictionary"], [R44],
       Bundle(ADU, report_to="ipn:1.0", dictionary="shared"))
    ok("dictionary with an unused string after the referenced ones", ["dictionary"], [R44],
       Bundle(ADU, extra_dict=b"unused\0"))
    ok("custodian set (no WIT field; read and ignored)", ["dictionary"], [R44],
       Bundle(ADU, custodian="ipn:7.0"))
    ok("CBHE: empty dictionary, EIDs ipn:2.25, ipn:1.0, dtn:none (node 0 service 0)", ["cbhe", "null-eid"],
       [CBHE, R451], Bundle(ADU, dictionary="cbhe"))
    ok("CBHE with large node and service numbers", ["cbhe", "sdnv-boundary"], [CBHE],
       Bundle(ADU, dictionary="cbhe", destination="ipn:%d.%d" % (U64_MAX, 1 << 40),
              report_to="ipn:1.1", custodian="ipn:3.0"))
    ok("report-to an ipn EID", ["ipn"], [R44], Bundle(ADU, report_to="ipn:1.7"))
    ok("bundle flags: admin record, custody, app ack, reception and delivery reports",
       ["flags"], [R42], Bundle(ADU, flags=F_ADMIN | F_CUSTODY | F_APP_ACK | F_SINGLETON | F_PRIO_NORMAL
                                | F_REPORT_RECEPTION | F_REPORT_DELIVERY))
    ok("reserved bundle flag bits 6 and 9-13 set: reported as received", ["flags", "rfc-open"], [R42],
       Bundle(ADU, flags=F_SINGLETON | 0x40 | (0x1F << 9)))
    ok("flags 0 (bulk priority, not a singleton)", ["flags"], [R42], Bundle(ADU, flags=0))
    ok("must-not-fragment", ["must-not-fragment", "flags"], [R42],
       Bundle(ADU, flags=F_SINGLETON | F_MNF))
    ok("sequence number 2^64-1 (ten-octet SDNV)", ["sdnv-boundary"], [R41], Bundle(ADU, sequence=U64_MAX))
    ok("lifetime 0", [], [R451], Bundle(ADU, lifetime=0))
    ok("empty payload", [], [R452], Bundle(b""))
    ok("payload of 16384 bytes (three-octet length SDNV)", ["sdnv-boundary", "large"], [R41],
       Bundle(pattern(16384, 3)))
    ok("fragment: offset 0, total 100", ["fragment"], [R451, R58],
       Bundle(pattern(40), flags=F_SINGLETON | F_FRAGMENT, frag=(0, 100)))
    ok("fragment: the last piece (offset 60, total 100)", ["fragment"], [R451, R58],
       Bundle(pattern(40), flags=F_SINGLETON | F_FRAGMENT, frag=(60, 100)))
    ok("fragment with offset and total at an SDNV boundary (128, 16384)", ["fragment", "sdnv-boundary"],
       [R41, R58], Bundle(pattern(10), flags=F_FRAGMENT, frag=(128, 16384)))
    ok("CBHE fragment", ["fragment", "cbhe"], [CBHE, R58],
       Bundle(pattern(30), flags=F_FRAGMENT, frag=(30, 90), dictionary="cbhe"))
    ext_a = Block(192, b"before", flags=B_REPLICATE)
    ext_b = Block(193, b"after-the-payload")
    ok("an unknown block before the payload (replicate flag) and one after it: kept and listed, "
       "numbered 2 and 3 around the payload's 1", ["extension-block", "unknown-block", "wit-mapping"],
       [R452, R43], Bundle(ADU, blocks_before=[ext_a], blocks_after=[ext_b]))
    ok("unknown block with 'report if unprocessable' and 'forwarded without processing' flags",
       ["unknown-block", "flags"], [R43],
       Bundle(ADU, blocks_before=[Block(200, b"x", flags=B_REPORT | B_FORWARDED)]))
    ok("unknown block with 'discard block if unprocessable' (0x10): accepted, blocks not compared",
       ["unknown-block", "flags"], [R43], Bundle(ADU, blocks_before=[Block(201, b"drop me", flags=B_DISCARD)]),
       compare_blocks=False)
    ok("a block with an EID-reference list into the dictionary (flag 0x40)", ["eid-reference", "dictionary"],
       [R43, R452], Bundle(ADU, blocks_before=[Block(202, b"r", eid_refs=[(0, 4)])]))
    ok("an empty unknown block", ["unknown-block"], [R452], Bundle(ADU, blocks_after=[Block(210, b"")]))

    # --- invalid --------------------------------------------------------
    raw = base.encode()
    bad("empty input", ["truncated"], [R451], b"", "truncated")
    bad("version 5", [], [R451], b"\x05" + raw[1:], "unsupported-version")
    bad("version 7 byte in an otherwise BPv6 bundle", [], [R451], b"\x07" + raw[1:], "unsupported-version")
    bad("input beginning as a BPv7 bundle does (CBOR indefinite array 0x9f, version 7)", [], [R451],
        bytes.fromhex("9f89070000820282021982028201008201008218c8000019012c85010100004568656c6c6fff"),
        "unsupported-version")
    # Cut points: after the version, inside the flags SDNV, after block length, in the
    # offsets, in the dictionary, at the end of the primary block, in the payload header,
    # one byte short of the end.
    prim = base.primary()
    d, _ = base.dict_and_offsets()
    cuts = sorted({1, 2, 3, 5, 12, len(prim) - len(d) // 2, len(prim) - 1, len(prim), len(prim) + 1,
                   len(prim) + 2, len(raw) - len(ADU), len(raw) - 1})
    for c in cuts:
        bad("cut to %d of %d bytes" % (c, len(raw)), ["truncated"], [R451, R452], raw[:c], "truncated")
    bad("flags SDNV with the continuation bit on its last input octet", ["truncated", "sdnv"], [R41],
        b"\x06\x81", "truncated")
    over = bytes([0x82] + [0x80] * 8 + [0x00])            # 2^64
    bad("bundle flags SDNV of value 2^64 (over 64 bits)", ["sdnv", "hostile", "rfc-open"], [R41],
        base.copy(overrides={"flags": over}).encode(), "malformed-sdnv")
    bad("block length SDNV of 20 octets", ["sdnv", "hostile", "rfc-open"], [R41],
        base.copy(overrides={"block_len": b"\xff" * 19 + b"\x7f"}).encode(), "malformed-sdnv")
    bad("creation timestamp SDNV of value 2^64", ["sdnv", "hostile", "rfc-open"], [R41],
        base.copy(overrides={"creation": over}).encode(), "malformed-sdnv")
    bad("dictionary length SDNV of value 2^64", ["sdnv", "hostile", "rfc-open"], [R41],
        base.copy(overrides={"dict_len": over}).encode(), "malformed-sdnv")
    bad("payload length SDNV of value 2^70", ["sdnv", "hostile", "rfc-open"], [R41],
        base.copy(after=[], before=[]).primary() + b"\x01\x08" + bytes([0x81] + [0x80] * 9 + [0x00]) + ADU,
        "malformed-sdnv")
    fb = Bundle(pattern(20), flags=F_FRAGMENT, frag=(0, 40))
    bad("fragment offset SDNV of value 2^64", ["sdnv", "hostile", "fragment", "rfc-open"], [R41],
        fb.copy(overrides={"frag_offset": over}).encode(), "malformed-sdnv")
    acc("flags SDNV with a leading 0x80 octet (not the shortest form; same value)", ["sdnv"], [R41],
        base.copy(overrides={"flags": b"\x80" + sdnv(base.flags)}).encode())
    body_len = base.body_len()
    bad("primary block length one more than its fields (the payload block's type octet is "
        "swallowed)", ["hostile", "structure"], [R451],
        base.copy(overrides={"block_len": sdnv(body_len + 1)}).encode(), "malformed-bundle")
    bad("primary block length one less than its fields", ["hostile", "structure"], [R451],
        base.copy(overrides={"block_len": sdnv(body_len - 1)}).encode(), "malformed-bundle")
    bad("primary block length past the end of the input", ["hostile", "truncated"], [R451],
        base.copy(overrides={"block_len": sdnv(100000)}).encode(), "truncated")
    bad("dictionary length larger than the rest of the primary block", ["hostile", "dictionary"], [R451],
        base.copy(overrides={"dict_len": sdnv(len(d) + 5)}).encode(), "malformed-bundle")
    bad("destination scheme offset past the dictionary", ["hostile", "dictionary"], [R44, R451],
        base.copy(overrides={"dst_scheme": sdnv(len(d))}).encode(), "invalid-eid")
    bad("source SSP offset 2^40 (far past the dictionary)", ["hostile", "dictionary"], [R44, R451],
        base.copy(overrides={"src_ssp": sdnv(1 << 40)}).encode(), "invalid-eid")
    cut_dict = d[:-1]                      # the custodian's SSP "none" loses its NUL
    bad("custodian SSP offset at the last string, whose NUL is missing", ["hostile", "dictionary"], [R44],
        Bundle(ADU, overrides={"dict": cut_dict, "dict_len": sdnv(len(cut_dict))}).encode(),
        "invalid-eid")
    bad("report-to scheme offset pointing at an empty string", ["eid-syntax", "dictionary"], [R44],
        Bundle(ADU, overrides={"rpt_scheme": sdnv(len(d) - 1)}).encode(), "invalid-eid")
    bad("dictionary EID scheme with a space ('d n:none')", ["eid-syntax"], [R44],
        Bundle(ADU, report_to="d n:none").encode(), "invalid-eid")
    bad("dictionary EID scheme starting with a digit ('1pn:1.0')", ["eid-syntax"], [R44],
        Bundle(ADU, source="1pn:1.0").encode(), "invalid-eid")
    bad("ipn EID without service number ('ipn:2')", ["eid-syntax", "ipn"], [R44],
        Bundle(ADU, destination="ipn:2").encode(), "invalid-eid")
    bad("ipn EID with letters ('ipn:a.b')", ["eid-syntax", "ipn"], [R44],
        Bundle(ADU, destination="ipn:a.b").encode(), "invalid-eid")
    bad("no payload block: one unknown block flagged last", ["structure"], [R452],
        base.primary() + Block(192, b"x").encode(True), "missing-payload")
    bad("two payload blocks", ["structure"], [R452],
        Bundle(ADU, blocks_after=[payload(b"again")]).encode(), "duplicate-block")
    bad("payload length past the end of the input", ["hostile", "truncated"], [R452],
        base.primary() + payload(ADU, raw_len=len(ADU) + 1).encode(True), "truncated")
    bad("payload length 2^40", ["hostile", "truncated"], [R452],
        base.primary() + payload(ADU, raw_len=1 << 40).encode(True), "truncated")
    bad("no block is flagged 'last block': the bundle never ends", ["structure", "truncated"], [R43, R452],
        base.primary() + payload(ADU).encode(False), "truncated")
    bad("a byte after the last block", ["structure"], [R43], raw + b"\x00", "trailing-bytes")
    bad("'last block' on the payload, an unknown block after it", ["structure", "unknown-block"], [R43],
        base.primary() + payload(ADU).encode(True) + Block(192, b"x").encode(True), "trailing-bytes")
    bad("unknown block flagged 'delete bundle if unprocessable' (0x04)", ["unknown-block", "flags"], [R43],
        Bundle(ADU, blocks_before=[Block(192, b"x", flags=B_DELETE)]).encode(), "unprocessable-block")
    bad("unknown block flagged both delete-bundle and discard-block: deleting the bundle wins",
        ["unknown-block", "flags", "rfc-open"], [R43],
        Bundle(ADU, blocks_after=[Block(193, b"x", flags=B_DELETE | B_DISCARD)]).encode(),
        "unprocessable-block")
    bad("EID reference past the dictionary", ["eid-reference", "hostile"], [R43, R452],
        Bundle(ADU, blocks_before=[Block(202, b"r", eid_refs=[(0, 200)])]).encode(), "invalid-eid")
    bad("EID-reference count 2^40 with no references following", ["eid-reference", "hostile", "truncated"],
        [R452], base.primary() + b"\xc0\x40" + sdnv(1 << 40),
        "truncated")
    frag = lambda pl, off, total, **kw: Bundle(pl, flags=kw.pop("flags", F_FRAGMENT), frag=(off, total), **kw)  # noqa: E731
    bad("fragment with total ADU length 0", ["fragment"], [R451, R58],
        frag(b"", 0, 0).encode(), "invalid-fragment")
    bad("fragment offset equal to the total ADU length", ["fragment"], [R58],
        frag(b"x", 40, 40).encode(), "invalid-fragment")
    bad("fragment offset 2^63 past a total of 40", ["fragment", "hostile"], [R58],
        frag(b"x", 1 << 63, 40).encode(), "invalid-fragment")
    bad("fragment whose payload runs past the total ADU length (offset 30 + 20 > 40)", ["fragment"], [R58],
        frag(pattern(20), 30, 40).encode(), "offset-out-of-range")
    bad("fragment flagged must-not-fragment (deepmail: the flags contradict each other)",
        ["fragment", "deepmail", "flags"], [R42], frag(b"x", 0, 40, flags=F_FRAGMENT | F_MNF).encode(),
        "invalid-flags")
    bad("fragment of an anonymous (dtn:none) bundle (deepmail: it cannot be reassembled, §5.9 keys on "
        "the source)", ["fragment", "deepmail", "null-eid"], [R59],
        frag(b"x", 0, 40, source="dtn:none").encode(), "invalid-flags")
    acc("fragment with an empty payload: §5.8 makes fragments with 0 < N < M, a receiver may still "
        "accept one (invalid-fragment when refused)", ["fragment"], [R58], frag(b"", 10, 40).encode())
    acc("fragment carrying the whole ADU (offset 0, length = total): self-consistent, but no "
        "fragmentation made it (invalid-fragment when refused)", ["fragment"], [R58],
        frag(pattern(40), 0, 40).encode())
    return m


def gen_fragment():
    m = manifest("fragment", "Fragmenting BPv6 bundles (RFC 5050 §5.8); the runner checks properties, "
                 "not bytes: see vectors/README.md, \"BPv6\"", "bundle6-fragment")

    def case(comment, flags, refs, orig, mtu, expect_many=None):
        raw = orig.encode()
        expect_read(raw)
        ref = reference_fragment(orig, mtu)
        if isinstance(ref, str):
            raise AssertionError("%s: infeasible (%s)" % (comment, ref))
        if expect_many is not None and (len(ref) > 1) != expect_many:
            raise AssertionError("%s: reference gives %d bundles" % (comment, len(ref)))
        for f in ref:
            expect_read(f.encode())
            assert len(f.encode()) <= mtu
        m.add(comment, flags, [R58] + refs, "valid", {"bundle": B(raw), "mtu": mtu},
              expected={"adu": B(orig.adu)})

    def fail(comment, flags, refs, orig, mtu, error):
        raw = orig.encode()
        expect_read(raw)
        ref = reference_fragment(orig, mtu)
        if error == "mtu-too-small":
            # The offset-0 fragment, which must exist, cannot hold one payload byte.
            assert len(make_fragment(orig, 0, 1).encode()) > mtu
        assert ref == error, (comment, ref)
        m.add(comment, flags, [R58] + refs, "invalid", {"bundle": B(raw), "mtu": mtu}, error=error)

    for n, mtu in ((300, 100), (1000, 128), (1000, 200), (4000, 1000), (20000, 1500), (20000, 16500)):
        b = Bundle(pattern(n, n % 251))
        case("ADU of %d bytes, MTU %d" % (n, mtu), ["large"] if n > 16384 else [], [], b, mtu, True)
    b = Bundle(pattern(500, 7))
    size = len(b.encode())
    case("MTU equal to the bundle's size: one bundle, not a fragment", ["mtu-boundary"], [], b, size, False)
    case("MTU one below the bundle's size: must fragment", ["mtu-boundary"], [], b, size - 1, True)
    case("CBHE bundle", ["cbhe"], [CBHE], Bundle(pattern(700, 9), dictionary="cbhe"), 150, True)
    case("dtn EIDs and a custodian", ["dtn"], [R44],
         Bundle(pattern(600, 2), source="dtn://earth-gw/mail", destination="dtn://moon-gw/mail",
                custodian="dtn://relay/"), 200, True)
    case("offsets cross the SDNV boundary at 128 and 16384 inside one ADU", ["sdnv-boundary", "large"],
         [R41], Bundle(pattern(17000, 5)), 1000, True)
    case("must-not-fragment bundle that fits the MTU: one bundle", ["must-not-fragment"], [R42],
         Bundle(ADU, flags=F_SINGLETON | F_MNF), 1000, False)
    ext = [Block(192, b"replicated-before", flags=B_REPLICATE), Block(193, b"first-only")]
    post = [Block(194, b"last-only"), Block(195, b"replicated-after", flags=B_REPLICATE)]
    case("blocks before the payload (one replicated) go to the first fragment, blocks after it (one "
         "replicated) to the last, replicated ones to every fragment, in their original order",
         ["replicate", "extension-block", "unknown-block"], [R43, R452],
         Bundle(pattern(900, 4), blocks_before=ext, blocks_after=post), 200, True)
    case("EID-reference block before the payload", ["eid-reference", "replicate"], [R43],
         Bundle(pattern(400, 8), blocks_before=[Block(202, b"r", flags=B_REPLICATE, eid_refs=[(0, 4)])]),
         150, True)
    fr = Bundle(pattern(300, 11), flags=F_SINGLETON | F_FRAGMENT, frag=(100, 1000))
    case("re-fragmenting a fragment (offset 100 of 1000): offsets stay relative to the original ADU",
         ["refragment", "fragment"], [R451], fr, 120, True)
    fr = Bundle(pattern(250, 12), flags=F_FRAGMENT, frag=(750, 1000), blocks_after=[Block(194, b"tail")])
    case("re-fragmenting the last fragment with a block after the payload", ["refragment", "fragment",
                                                                             "replicate"], [R451],
         fr, 100, True)
    fr = Bundle(pattern(200, 13), flags=F_FRAGMENT, frag=(200, 400), dictionary="cbhe")
    case("re-fragmenting a CBHE fragment", ["refragment", "cbhe"], [CBHE], fr, 90, True)
    mnf = Bundle(pattern(500), flags=F_SINGLETON | F_MNF)
    fail("must-not-fragment bundle over the MTU", ["must-not-fragment"], [R42], mnf, 200,
         "must-not-fragment")
    small = Bundle(pattern(500, 1))
    need = len(make_fragment(small, 0, 1).encode())
    fail("MTU one below the smallest first fragment (primary block with offset and total, one payload byte)",
         ["mtu-boundary"], [], small, need - 1, "mtu-too-small")
    fail("MTU 10", [], [], small, 10, "mtu-too-small")
    big = Bundle(pattern(500, 1), blocks_before=[Block(192, b"x" * 300)])
    fail("a 300-byte block that must travel in the first fragment does not fit MTU 250",
         ["extension-block", "mtu-boundary"], [R43], big, 250, "mtu-too-small")
    return m


def gen_reassemble():
    m = manifest("reassemble", "Reassembling ADUs from BPv6 bundles and fragments (RFC 5050 §5.9)",
                 "bundle6-reassemble")
    LIM = {"max_adu_bytes": 1 << 20, "max_pending_bytes": 1 << 22, "max_pending_bundles": 64}

    def frags(adu, cuts, **kw):
        flags = kw.pop("flags", F_SINGLETON) | F_FRAGMENT
        return [Bundle(adu[s:e], flags=flags, frag=(s, len(adu)), **kw) for s, e in cuts]

    def case(comment, flags, refs, pushes, limits=LIM, expire_at=None):
        """pushes: list of (Bundle or raw bytes, now)."""
        r = RefReassembler(limits)
        outcomes, inp = [], []
        for b, now in pushes:
            raw = b.encode() if isinstance(b, Bundle) else b
            outcomes.append(r.push(raw, now))
            inp.append({"bundle": B(raw), "now": now})
        expected = {"outcomes": outcomes}
        inp = {"limits": limits, "pushes": inp}
        if expire_at is not None:
            inp["expire_at"] = expire_at
            expected["expired"] = r.expire(expire_at)
        expected["pending_bundles"] = len(r.pending)
        errors = [o["error"] for o in outcomes if o["status"] == "error"]
        if "rfc-open" in flags and not errors:
            raise ValueError("rfc-open reassemble case that takes no position: " + comment)
        if errors:
            m.add(comment, flags, [R59] + refs, "invalid", inp, expected=expected, error=errors[0])
        else:
            m.add(comment, flags, [R59] + refs, "valid", inp, expected=expected)

    a = pattern(300, 21)
    f3 = frags(a, [(0, 100), (100, 200), (200, 300)])
    case("three fragments in order", ["order"], [], [(f, NOW) for f in f3])
    case("three fragments in reverse order", ["order"], [], [(f, NOW) for f in reversed(f3)])
    case("three fragments shuffled (middle, last, first)", ["order"], [],
         [(f3[1], NOW), (f3[2], NOW), (f3[0], NOW)])
    case("a bundle that is not a fragment is delivered at once", [], [R58], [(Bundle(ADU), NOW)])
    case("a duplicate fragment before completion", ["duplicate"], [],
         [(f3[0], NOW), (f3[0], NOW), (f3[2], NOW), (f3[1], NOW)])
    ov = frags(a, [(0, 150), (100, 250), (200, 300)])
    case("overlapping fragments that agree", ["overlap"], [], [(f, NOW) for f in ov])
    ov2 = frags(a, [(0, 300)])[0].copy(adu=a[50:250], frag=(50, 300))
    case("a fragment inside another's extent", ["overlap"], [], [(ov[0], NOW), (ov2, NOW), (f3[2], NOW)])
    b = pattern(200, 22)
    g = frags(b, [(0, 120), (120, 200)], sequence=1)
    case("fragments of two ADUs (different sequence numbers) interleaved", ["interleaved"], [],
         [(f3[0], NOW), (g[1], NOW), (f3[2], NOW), (g[0], NOW), (f3[1], NOW)])
    h = frags(b, [(0, 120), (120, 200)], creation=T0 + 1)
    case("same source and sequence number, creation times 1 s apart: two ADUs", ["interleaved"], [],
         [(f3[0], NOW), (h[0], NOW), (f3[1], NOW), (h[1], NOW), (f3[2], NOW)])
    k = frags(b, [(0, 120), (120, 200)], source="ipn:9.0")
    case("same creation timestamp, another source: two ADUs", ["interleaved"], [],
         [(k[0], NOW), (f3[0], NOW), (k[1], NOW), (f3[1], NOW), (f3[2], NOW)])
    c = frags(a, [(0, 100), (100, 200), (200, 300)], dictionary="cbhe")
    case("CBHE fragments and dictionary fragments of one bundle reassemble together (RFC 6260: CBHE is "
         "opaque to bundle processing)", ["cbhe"], [CBHE], [(f3[0], NOW), (c[1], NOW), (f3[2], NOW)])
    cust = f3[1].copy(custodian="ipn:77.0")
    case("a fragment whose custodian changed on the way still belongs to the ADU", ["dictionary"], [R44],
         [(f3[0], NOW), (cust, NOW), (f3[2], NOW)])
    ex = frags(a, [(0, 100), (100, 300)], blocks_before=[Block(192, b"ext", flags=B_REPLICATE)])
    case("fragments carrying extension blocks", ["extension-block"], [R452], [(f, NOW) for f in ex])
    whole = Bundle(a)
    sub = reference_fragment(whole, 120)
    assert len(sub) >= 3
    resub = reference_fragment(sub[1], 90)
    assert isinstance(resub, list) and len(resub) >= 2
    case("fragments of a re-fragmented fragment mixed with first-generation fragments", ["refragment",
                                                                                      "order"], [R58],
         [(sub[0], NOW)] + [(f, NOW) for f in reversed(resub)] + [(f, NOW) for f in sub[2:]])
    big = pattern(20000, 23)
    pieces = reference_fragment(Bundle(big), 1400)
    order = pieces[1::2] + pieces[0::2]
    case("a 20000-byte ADU from %d fragments, odd ones first" % len(pieces), ["large", "order"], [],
         [(f, NOW) for f in order])
    # Expiry (§5.5): expired when now > creation + lifetime; times s x 1000 in the WIT.
    live_until = (T0 + 3600) * 1000
    e = frags(a, [(0, 150), (150, 300)], lifetime=3600)
    case("a fragment pushed at exactly creation + lifetime is still live", ["expiry", "wit-mapping"], [R55],
         [(e[0], live_until), (e[1], live_until)])
    case("a fragment pushed 1 ms after creation + lifetime is expired", ["expiry", "wit-mapping"], [R55],
         [(e[0], NOW), (e[1], live_until + 1)])
    case("a whole bundle pushed after its lifetime is expired", ["expiry"], [R55],
         [(Bundle(ADU, lifetime=10), (T0 + 11) * 1000)])
    case("expire_at after the lifetime drops the pending ADU", ["expiry"], [R55],
         [(e[0], NOW)], expire_at=live_until + 1)
    case("expire_at at exactly creation + lifetime keeps it", ["expiry"], [R55],
         [(e[0], NOW)], expire_at=live_until)
    case("expire_at drops only the ADU whose lifetime ended", ["expiry", "interleaved"], [R55],
         [(e[0], NOW), (g[0], NOW)], expire_at=live_until + 1)
    # Errors; a failing push changes nothing and later pushes go on.
    bad_total = f3[1].copy(frag=(100, 301))
    case("a fragment disagreeing on the total ADU length is refused (suite's hardening: §5.9 names no "
         "rule); the ADU still completes", ["rfc-open"], [R451],
         [(f3[0], NOW), (bad_total, NOW), (f3[1], NOW), (f3[2], NOW)])
    wrong = ov[1].copy(adu=bytes(x ^ 0xFF for x in ov[1].adu))
    case("overlapping fragments that disagree on bytes are refused (suite's hardening); the ADU still "
         "completes", ["overlap", "rfc-open"], [],
         [(ov[0], NOW), (wrong, NOW), (ov[1], NOW), (ov[2], NOW)])
    case("a fragment running past the total ADU length", ["hostile"], [R58],
         [(f3[0], NOW), (f3[2].copy(frag=(250, 300)), NOW), (f3[1], NOW), (f3[2], NOW)])
    case("a fragment with total ADU length 0", ["hostile"], [R58],
         [(f3[0].copy(adu=b"", frag=(0, 0)), NOW), (Bundle(ADU), NOW)])
    case("a cut bundle, then whole fragments", ["truncated"], [R451],
         [(f3[0].encode()[:-5], NOW), (f3[0], NOW), (f3[1], NOW), (f3[2], NOW)])
    case("a bundle with an over-long SDNV, then a valid one", ["sdnv", "hostile", "rfc-open"], [R41],
         [(f3[0].copy(overrides={"flags": bytes([0x82] + [0x80] * 8 + [0x01])}).encode(), NOW),
          (Bundle(ADU), NOW)])
    lim = dict(LIM, max_adu_bytes=250)
    case("total ADU length 300 over max_adu_bytes = 250; a smaller ADU still reassembles", ["limits"], [],
         [(f3[0], NOW), (g[0], NOW), (g[1], NOW)], limits=lim)
    lim = dict(LIM, max_pending_bundles=1)
    case("a second incomplete ADU over max_pending_bundles = 1; the first completes", ["limits"], [],
         [(f3[0], NOW), (g[0], NOW), (f3[1], NOW), (f3[2], NOW)], limits=lim)
    lim = dict(LIM, max_pending_bytes=100)
    big_first = frags(a, [(0, 150), (150, 300)])
    small = frags(pattern(80, 24), [(0, 40), (40, 80)], sequence=5)
    case("a fragment of 150 bytes over max_pending_bytes = 100; a smaller ADU still reassembles",
         ["limits"], [], [(big_first[0], NOW), (small[0], NOW), (small[1], NOW)], limits=lim)
    return m


def main():
    out, quiet = V.out_dir_from_args(__doc__.splitlines()[0])
    manifests = [("bundle6/build.json", gen_build()), ("bundle6/inspect.json", gen_inspect()),
                 ("bundle6/fragment.json", gen_fragment()), ("bundle6/reassemble.json", gen_reassemble())]
    for rel, m in manifests:
        m.write(os.path.join(out, rel))
    V.report(manifests, quiet)


if __name__ == "__main__":
    main()
