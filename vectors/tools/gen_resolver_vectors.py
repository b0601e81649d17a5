#!/usr/bin/env python3
"""Generate the resolver vectors: parsing a DNS answer for URI records.

Writes vectors/resolver/parse-answer.json. The operation is the pure half of
a DNS resolver plugin: the implementation sent a query for
`_bsmtp._https.<domain>` QTYPE URI (256, RFC 7553) class IN and got a
response; it validates the response and returns the URI records of the
queried name (after CNAMEs), filtered by scheme, ordered by priority.

Every response is built by the DNS message encoder in this file (RFC 1035
§4.1, optional name compression §4.1.4, stdlib only, nothing shared with
deepmail's Rust crates). A second, independent piece of code in this file, a
reference reader of the rules written down in vectors/README.md ("resolver /
parse-answer"), re-reads every generated response and must agree with the
expectation written by hand for each valid and invalid case, so an encoder
slip cannot silently turn into a wrong vector. Where the RFCs leave the
outcome open the case is `acceptable` and its comment says why.
Deterministic: run it twice, get the same bytes.

    python3 vectors/tools/gen_resolver_vectors.py [--out DIR]
"""

import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vectorlib as V  # noqa: E402

GENERATOR = "vectors/tools/gen_resolver_vectors.py"

T_A, T_NS, T_CNAME, T_SOA, T_TXT, T_SRV, T_OPT, T_URI = 1, 2, 5, 6, 16, 33, 41, 256
C_IN, C_CH = 1, 3
QID = 4660                     # 0x1234
DOMAIN = "moon.example"
GW = "https://gw.moon.example/inboundmail"

R_HDR, R_QST, R_RR, R_COMP = "RFC 1035 §4.1.1", "RFC 1035 §4.1.2", "RFC 1035 §4.1.3", "RFC 1035 §4.1.4"
R_SIZE, R_CASE = "RFC 1035 §2.3.4", "RFC 4343 §2"
R_URI_OWNER, R_URI_PRIO, R_URI_WEIGHT = "RFC 7553 §4.1", "RFC 7553 §4.2", "RFC 7553 §4.3"
R_URI_TARGET, R_URI_WIRE = "RFC 7553 §4.4", "RFC 7553 §4.5"
R_SRV = "RFC 2782"
R_TTL, R_TC, R_RRSET_TTL, R_RANK, R_CNAME1 = ("RFC 2181 §8", "RFC 2181 §9", "RFC 2181 §5.2",
                                            "RFC 2181 §5.4.1", "RFC 2181 §10.1")
R_NX, R_NODATA, R_NEGTTL = "RFC 2308 §2.1", "RFC 2308 §2.2", "RFC 2308 §5"
R_CNAME = "RFC 1034 §3.6.2"
R_OPT, R_EXTRCODE = "RFC 6891 §6.1.2", "RFC 6891 §6.1.3"
R_RCODE_CHAIN = "RFC 6604 §3"
R_SCHEME = "RFC 3986 §3.1"
R_IDN = "RFC 5890 §2.3.2.1"

FLAG_NOTES = {
    "compression": "names written with compression pointers (RFC 1035 §4.1.4)",
    "case": "owner or question names differ from the query in ASCII case only",
    "cname": "the answer goes through CNAME records",
    "edns": "an OPT pseudo-RR in the additional section (RFC 6891)",
    "negative": "NXDOMAIN / NODATA with the zone's SOA in the authority section",
    "priority": "several priorities or weights (RFC 2782 / RFC 7553 §4.2-4.3)",
    "scheme": "targets filtered by scheme",
    "ignored-records": "records the operation must not return (other owner, type, class or section)",
    "ttl": "TTL handling (RFC 2181 §5.2, §8)",
    "large": "a large answer (40 URI records)",
    "idn": "an internationalised domain, given as A-labels",
    "rfc-example": "the presentation example of RFC 7553 §4",
    "rcode": "a non-zero RCODE",
    "header": "header fields: QR, ID, OPCODE, TC",
    "question": "the echoed question section",
    "hostile": "crafted to break a careless parser (pointer loops, bad lengths)",
    "truncation-point": "one valid response (the first case flagged so) cut at one offset",
    "uri-rdata": "URI RDATA and target syntax (RFC 7553 §4.4-4.5)",
    "rfc-open": "the RFC leaves this to the implementation: on an `acceptable` case either outcome "
                "conforms; on a `valid` or `invalid` case the suite takes a position (usually the "
                "stricter one) that the RFC does not require, and the comment says which",
}

# ---------------------------------------------------------------------------
# DNS message encoder (RFC 1035 §4.1)
# ---------------------------------------------------------------------------


class RawName(bytes):
    """Wire bytes written verbatim where a domain name goes (hostile cases)."""


def labels_of(name):
    name = name.rstrip(".")
    if not name:
        return []
    return [lab.encode("utf-8") for lab in name.split(".")]


class Encoder:
    """Writes names, optionally compressed against every earlier name written."""

    def __init__(self, compress):
        self.buf = bytearray()
        self.compress = compress
        self.table = {}          # tuple of labels (exact bytes) -> offset

    def name(self, name, compress=None):
        if isinstance(name, RawName):
            self.buf += name
            return
        compress = self.compress if compress is None else compress
        labs = labels_of(name) if isinstance(name, str) else list(name)
        for i in range(len(labs)):
            key = tuple(labs[i:])
            if compress and key in self.table:
                self.buf += struct.pack(">H", 0xC000 | self.table[key])
                return
            if key not in self.table and len(self.buf) < 0x4000:
                self.table[key] = len(self.buf)
            if not 0 < len(labs[i]) < 64:
                raise ValueError("label length %d (use RawName for hostile labels)" % len(labs[i]))
            self.buf += bytes([len(labs[i])]) + labs[i]
        self.buf += b"\x00"


class RR:
    """One resource record. `rdata` is a function writing RDATA into an Encoder."""

    def __init__(self, owner, rtype, ttl, rdata, rclass=C_IN, rdlength=None):
        self.owner, self.rtype, self.ttl, self.rdata = owner, rtype, ttl, rdata
        self.rclass, self.rdlength = rclass, rdlength


def rd_raw(b):
    return lambda enc: enc.buf.extend(b)


def rd_uri(priority, weight, target):
    t = target.encode("utf-8") if isinstance(target, str) else bytes(target)
    return rd_raw(struct.pack(">HH", priority, weight) + t)


def rd_name(name):
    return lambda enc: enc.name(name)


def rd_soa(mname, rname, serial, refresh, retry, expire, minimum):
    def w(enc):
        enc.name(mname)
        enc.name(rname)
        enc.buf += struct.pack(">IIIII", serial, refresh, retry, expire, minimum)
    return w


def rd_a(ip):
    return rd_raw(bytes(int(x) for x in ip.split(".")))


def rd_txt(*strings):
    return rd_raw(b"".join(bytes([len(s)]) + s.encode() for s in strings))


def uri(owner, priority, weight, target, ttl=3600, **kw):
    return RR(owner, T_URI, ttl, rd_uri(priority, weight, target), **kw)


def cname(owner, target, ttl=3600, **kw):
    return RR(owner, T_CNAME, ttl, rd_name(target), **kw)


def opt(udp=1232, ext_rcode=0, version=0, do=False, options=b""):
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do else 0)
    return RR("", T_OPT, ttl, rd_raw(options), rclass=udp)


def soa(zone=DOMAIN, ttl=900, minimum=300):
    return RR(zone, T_SOA, ttl, rd_soa("ns1." + zone, "hostmaster." + zone,
                                      2024010101, 7200, 3600, 1209600, minimum))


def qname_of(domain=DOMAIN):
    return "_bsmtp._https." + domain


class Built:
    def __init__(self, wire, marks):
        self.wire, self.marks = wire, marks


def message(qid=QID, qr=1, opcode=0, aa=1, tc=0, rd=1, ra=1, ad=0, cd=0, rcode=0,
            question="default", answer=(), authority=(), additional=(), counts=None,
            compress=True, trailing=b"", domain=DOMAIN):
    """A DNS message. `marks` records where things start, for truncation cases."""
    if question == "default":
        question = [(qname_of(domain), T_URI, C_IN)]
    enc = Encoder(compress)
    flags = ((qr << 15) | (opcode << 11) | (aa << 10) | (tc << 9) | (rd << 8) | (ra << 7)
             | (ad << 5) | (cd << 4) | rcode)
    n = counts or (len(question), len(answer), len(authority), len(additional))
    enc.buf += struct.pack(">HHHHHH", qid, flags, *n)
    marks = {"question": len(enc.buf), "rrs": []}
    for qn, qt, qc in question:
        enc.name(qn)
        enc.buf += struct.pack(">HH", qt, qc)
    marks["question_end"] = len(enc.buf)
    for section, rrs in (("answer", answer), ("authority", authority), ("additional", additional)):
        for rr in rrs:
            start = len(enc.buf)
            enc.name(rr.owner)
            fixed = len(enc.buf)
            enc.buf += struct.pack(">HHIH", rr.rtype, rr.rclass, rr.ttl, 0)
            rdstart = len(enc.buf)
            rr.rdata(enc)
            rdlen = len(enc.buf) - rdstart if rr.rdlength is None else rr.rdlength
            struct.pack_into(">H", enc.buf, rdstart - 2, rdlen)
            marks["rrs"].append({"section": section, "start": start, "fixed": fixed,
                                 "rdata": rdstart, "end": len(enc.buf)})
    enc.buf += trailing
    return Built(bytes(enc.buf), marks)

# ---------------------------------------------------------------------------
# Reference reader: the README's parse-answer rules, written independently of
# the encoder above. Used only to cross-check the hand-written expectations.
# ---------------------------------------------------------------------------


class Malformed(Exception):
    pass


class Outcome(Exception):
    def __init__(self, cls):
        super().__init__(cls)
        self.cls = cls


def read_name(msg, pos):
    """(labels, position after the name). Pointers must point before the
    start of the run of labels they end (so no loop can exist)."""
    labels, total, end, run_start = [], 1, None, pos
    while True:
        if pos >= len(msg):
            raise Malformed("name runs past the end")
        b = msg[pos]
        kind = b & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(msg):
                raise Malformed("pointer cut")
            target = ((b & 0x3F) << 8) | msg[pos + 1]
            if end is None:
                end = pos + 2
            if target >= run_start:
                raise Malformed("pointer does not point to a prior name")
            pos = run_start = target
            continue
        if kind:
            raise Malformed("reserved label type %02x" % b)
        if b == 0:
            pos += 1
            break
        if pos + 1 + b > len(msg):
            raise Malformed("label runs past the end")
        labels.append(msg[pos + 1:pos + 1 + b])
        total += 1 + b
        if total > 255:
            raise Malformed("name longer than 255 octets")
        pos += 1 + b
    return labels, (pos if end is None else end)


def fold(labels):
    return tuple(lab.lower() for lab in labels)     # bytes.lower(): ASCII only (RFC 4343)


SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def reference(msg, domain, query_id, schemes):
    """('ok', [hop]) | ('error', class) | ('either', why)."""
    try:
        return ("ok", _reference(msg, domain, query_id, schemes))
    except Outcome as o:
        return ("error", o.cls) if not o.cls.startswith("either:") else ("either", o.cls)


def _reference(msg, domain, query_id, schemes):
    if len(msg) < 12:
        raise Outcome("malformed")
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    if not flags & 0x8000 or (flags >> 11) & 0xF:
        raise Outcome("not-a-response")
    if qid != query_id:
        raise Outcome("id-mismatch")
    if flags & 0x0200:
        raise Outcome("truncated")
    pos, questions, rrs = 12, [], []
    try:
        for _ in range(qd):
            name, pos = read_name(msg, pos)
            if pos + 4 > len(msg):
                raise Malformed("question cut")
            questions.append((name,) + struct.unpack(">HH", msg[pos:pos + 4]))
            pos += 4
        for section, count in (("answer", an), ("authority", ns), ("additional", ar)):
            for _ in range(count):
                owner, pos = read_name(msg, pos)
                if pos + 10 > len(msg):
                    raise Malformed("RR fixed fields cut")
                rtype, rclass, ttl, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
                pos += 10
                if pos + rdlen > len(msg):
                    raise Malformed("RDATA past the end")
                rrs.append({"section": section, "owner": owner, "type": rtype, "class": rclass,
                            "ttl": ttl, "rdata": (pos, pos + rdlen)})
                pos += rdlen
    except Malformed:
        raise Outcome("malformed")
    trailing = pos != len(msg)
    want = fold([lab.encode() for lab in qname_of(domain).split(".")])
    if len(questions) != 1 or fold(questions[0][0]) != want or questions[0][1:] != (T_URI, C_IN):
        raise Outcome("question-mismatch")
    rcode = flags & 0xF
    opts = [r for r in rrs if r["section"] == "additional" and r["type"] == T_OPT]
    if opts:
        rcode |= (opts[0]["ttl"] >> 24) << 4
    if rcode:
        raise Outcome({3: "nxdomain", 2: "servfail", 5: "refused"}.get(rcode, "other-rcode"))
    answer = [r for r in rrs if r["section"] == "answer" and r["class"] == C_IN]
    current, seen, links = want, {want}, 0
    while True:
        cn = [r for r in answer if r["type"] == T_CNAME and fold(r["owner"]) == current]
        if not cn:
            break
        start, stop = cn[0]["rdata"]
        try:
            target, after = read_name(msg, start)
        except Malformed:
            raise Outcome("malformed")
        if after != stop:
            raise Outcome("malformed")
        links += 1
        current = fold(target)
        if links > 8 or current in seen:
            raise Outcome("cname-chain")
        seen.add(current)
    found = [r for r in answer if r["type"] == T_URI and fold(r["owner"]) == current]
    if not found:
        raise Outcome("no-data")
    good, broken = [], []
    for r in found:
        start, stop = r["rdata"]
        if stop - start < 5:
            broken.append("malformed")
            continue
        prio, weight = struct.unpack(">HH", msg[start:start + 4])
        try:
            target = msg[start + 4:stop].decode("utf-8")
        except UnicodeDecodeError:
            broken.append("invalid-uri")
            continue
        if not SCHEME_RE.match(target):
            broken.append("invalid-uri")
            continue
        good.append((target, prio, weight))
    if broken and good:
        raise Outcome("either: a broken URI record next to good ones")
    if broken:
        if len(set(broken)) != 1:
            raise ValueError("vector mixes broken-record classes: %r" % broken)
        raise Outcome(broken[0])
    ttl = min(0 if r["ttl"] & 0x80000000 else r["ttl"] for r in found)   # RFC 2181 §5.2, §8
    allowed = {s.lower() for s in schemes}
    usable = [g for g in good if g[0].split(":", 1)[0].lower() in allowed]
    if not usable:
        raise Outcome("no-usable-target")
    if trailing:
        raise Outcome("either: trailing bytes")
    return sorted([(t, p, w, ttl) for t, p, w in usable], key=lambda h: h[1])

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def gen_parse_answer():
    m = V.Manifest(
        "resolver", "parse-answer",
        "Validating a DNS response and extracting URI next hops (RFC 7553)",
        ["RFC 1035", "RFC 7553", "RFC 2782", "RFC 2181", "RFC 2308", "RFC 6891", "RFC 4343", "RFC 3986"],
        GENERATOR, FLAG_NOTES, "resolver-parse-answer")

    def case(comment, flags, refs, built, want, domain=DOMAIN, qid=QID, schemes=("https",), seed=7):
        """want: error class (str), list of (uri, priority, weight, ttl|None), or 'acceptable'."""
        wire = built.wire if isinstance(built, Built) else bytes(built)
        inp = {"domain": domain, "query_id": qid, "response": V.as_bytes(wire),
               "schemes": list(schemes), "random_seed": seed}
        got = reference(wire, domain, qid, schemes)
        if want == "acceptable":
            if "rfc-open" not in flags:
                raise ValueError("acceptable case without rfc-open: " + comment)
            return m.add(comment, flags, refs, "acceptable", inp)
        if isinstance(want, str):
            if got != ("error", want):
                raise AssertionError("%s: reference says %r, case says %r" % (comment, got, want))
            return m.add(comment, flags, refs, "invalid", inp, error=want)
        if got[0] != "ok":
            raise AssertionError("%s: reference says %r, case says valid" % (comment, got))
        ref = sorted(got[1])
        mine = sorted((u, p, w, t) for u, p, w, t in want)
        if [h[:3] for h in ref] != [h[:3] for h in mine] or any(
                t is not None and t != r[3] for r, (_, _, _, t) in zip(ref, mine)):
            raise AssertionError("%s: reference %r, case %r" % (comment, ref, mine))
        hops = []
        for u, p, w, t in sorted(want, key=lambda h: h[1]):     # stable: message order within a priority
            h = {"uri": u, "priority": p, "weight": w}
            if t is not None:
                h["ttl"] = t
            hops.append(h)
        return m.add(comment, flags, refs, "valid", inp, expected={"next_hops": hops})

    Q = qname_of()
    ZONE_NS = RR(DOMAIN, T_NS, 3600, rd_name("ns1." + DOMAIN))

    # ---------------- valid ----------------
    base = message(answer=[uri(Q, 10, 1, GW)], compress=False)
    case("the deepmail record: one URI RR, no compression", [], [R_HDR, R_QST, R_RR, R_URI_WIRE],
         base, [(GW, 10, 1, 3600)])
    case("the same answer with the owner name compressed to the question (usual server output)",
         ["compression"], [R_COMP, R_URI_WIRE], message(answer=[uri(Q, 10, 1, GW)]), [(GW, 10, 1, 3600)])
    recs = [(20, 5, "https://gw3.moon.example/inboundmail"), (10, 60, "https://gw1.moon.example/inboundmail"),
            (30, 0, "https://gw5.moon.example/inboundmail"), (10, 40, "https://gw2.moon.example/inboundmail"),
            (20, 15, "https://gw4.moon.example/inboundmail")]
    case("five records over three priorities, listed out of order: output sorted by priority",
         ["compression", "priority"], [R_URI_PRIO, R_URI_WEIGHT, R_SRV],
         message(answer=[uri(Q, p, w, t, ttl=600) for p, w, t in recs]),
         [(t, p, w, 600) for p, w, t in recs])
    recs = [(5, 0, "https://a.moon.example/in"), (5, 0, "https://b.moon.example/in"),
            (7, 0, "https://c.moon.example/in")]
    case("weight 0 everywhere: every record is still returned", ["compression", "priority"],
         [R_URI_WEIGHT, R_SRV], message(answer=[uri(Q, p, w, t) for p, w, t in recs]),
         [(t, p, w, 3600) for p, w, t in recs])
    recs = [(10, 0, "https://a.moon.example/in"), (10, 100, "https://b.moon.example/in")]
    case("weight 0 next to weight 100 in one priority: both returned (selection is the caller's)",
         ["compression", "priority"], [R_URI_WEIGHT, R_SRV],
         message(answer=[uri(Q, p, w, t) for p, w, t in recs]), [(t, p, w, 3600) for p, w, t in recs])
    case("priority 0 and 65535, weight 65535: the u16 extremes", ["compression", "priority"],
         [R_URI_PRIO, R_URI_WEIGHT, R_URI_WIRE],
         message(answer=[uri(Q, 65535, 65535, "https://last.moon.example/in"),
                         uri(Q, 0, 65535, "https://first.moon.example/in")]),
         [("https://last.moon.example/in", 65535, 65535, 3600), ("https://first.moon.example/in", 0, 65535, 3600)])
    mixed = [(10, 1, "http://gw.moon.example/inboundmail"), (20, 1, GW),
             (5, 1, "mailto:postmaster@moon.example"), (30, 1, "ftp://gw.moon.example/in"),
             (40, 2, "https://gw2.moon.example/inboundmail")]
    case("mixed schemes, schemes [https]: only the https targets, priorities of the rest do not matter",
         ["compression", "scheme"], [R_URI_TARGET, R_SCHEME],
         message(answer=[uri(Q, p, w, t) for p, w, t in mixed]),
         [(GW, 20, 1, 3600), ("https://gw2.moon.example/inboundmail", 40, 2, 3600)])
    case("mixed schemes, schemes [https, http]", ["compression", "scheme"], [R_URI_TARGET, R_SCHEME],
         message(answer=[uri(Q, p, w, t) for p, w, t in mixed]),
         [("http://gw.moon.example/inboundmail", 10, 1, 3600), (GW, 20, 1, 3600),
          ("https://gw2.moon.example/inboundmail", 40, 2, 3600)], schemes=("https", "http"))
    case("scheme in upper case (HTTPS:) matches [https]: schemes are case-insensitive, the URI is returned as sent",
         ["compression", "scheme", "case"], [R_SCHEME],
         message(answer=[uri(Q, 10, 1, "HTTPS://gw.moon.example/inboundmail")]),
         [("HTTPS://gw.moon.example/inboundmail", 10, 1, 3600)])
    case("target with port, query and fragment is returned byte for byte", ["compression", "uri-rdata"],
         [R_URI_TARGET], message(answer=[uri(Q, 10, 1, "https://gw.moon.example:8443/inbound%20mail?x=1#f")]),
         [("https://gw.moon.example:8443/inbound%20mail?x=1#f", 10, 1, 3600)])
    case("shortest usable target: 'x:' (RDATA of 6 octets), schemes [x]", ["uri-rdata"],
         [R_URI_WIRE, R_SCHEME], message(answer=[uri(Q, 1, 1, "x:")]), [("x:", 1, 1, 3600)], schemes=("x",))
    upper_q = message(question=[(Q.upper(), T_URI, C_IN)], answer=[uri(Q, 10, 1, GW)], compress=False)
    case("question echoed in upper case (e.g. a DNS 0x20 resolver): names compare case-insensitively",
         ["case", "question"], [R_CASE, R_QST], upper_q, [(GW, 10, 1, 3600)])
    case("question echoed in mixed case and the URI records' owner in another mixed case",
         ["case", "question"], [R_CASE, R_QST],
         message(question=[("_BsMtP._hTtPs.MoOn.ExAmPlE", T_URI, C_IN)],
                 answer=[uri("_bsmtp._HTTPS.moon.EXAMPLE", 10, 1, GW)], compress=False), [(GW, 10, 1, 3600)])
    case("upper-case echoed question, owner names compressed to it", ["case", "compression"], [R_CASE, R_COMP],
         message(question=[(Q.upper(), T_URI, C_IN)], answer=[uri(Q.upper(), 10, 1, GW)]), [(GW, 10, 1, 3600)])
    tgt = "uri.gateways.moon.example"
    case("CNAME from the queried name to a name holding the URI RRset", ["cname", "compression"],
         [R_CNAME, R_CNAME1, R_COMP],
         message(answer=[cname(Q, tgt, ttl=7200), uri(tgt, 10, 1, GW, ttl=3600),
                         uri(tgt, 20, 1, "https://gw-b.moon.example/inboundmail", ttl=3600)]),
         [(GW, 10, 1, 3600), ("https://gw-b.moon.example/inboundmail", 20, 1, 3600)])
    case("CNAME with a shorter TTL than the URI RRset: ttl not compared (capping by the CNAME TTL is open)",
         ["cname", "ttl"], [R_CNAME, R_TTL],
         message(answer=[cname(Q, tgt, ttl=60), uri(tgt, 10, 1, GW, ttl=3600)]), [(GW, 10, 1, None)])
    case("CNAME records listed after the URI RRset they lead to: section order does not matter",
         ["cname", "compression"], [R_CNAME],
         message(answer=[uri(tgt, 10, 1, GW), cname("b." + tgt, tgt), cname(Q, "b." + tgt)]),
         [(GW, 10, 1, 3600)])
    chain = [Q] + ["c%d.moon.example" % i for i in range(1, 9)]
    case("a chain of exactly 8 CNAMEs (the limit) ends at the URI RRset", ["cname", "compression"],
         [R_CNAME],
         message(answer=[cname(a, b) for a, b in zip(chain, chain[1:])] + [uri(chain[-1], 10, 1, GW)]),
         [(GW, 10, 1, 3600)])
    # Compression everywhere: question, owners, CNAME RDATA, SOA RDATA, pointer to a pointer.
    ce = message(answer=[cname(Q, "in.moon.example"), uri("in.moon.example", 10, 1, GW),
                         uri("in.moon.example", 20, 1, "https://gw2.moon.example/inboundmail")],
                 authority=[RR(DOMAIN, T_NS, 3600, rd_name("ns1.moon.example")),
                            RR(DOMAIN, T_NS, 3600, rd_name("ns2.moon.example"))],
                 additional=[RR("ns1.moon.example", T_A, 3600, rd_a("192.0.2.53")),
                             RR("ns2.moon.example", T_A, 3600, rd_a("192.0.2.54")), opt()])
    # The second URI owner: point at the first URI owner, which is itself a pointer (pointer to a pointer).
    first_uri_owner = ce.marks["rrs"][1]["start"]
    w = bytearray(ce.wire)
    second = ce.marks["rrs"][2]["start"]
    assert w[second] & 0xC0 == 0xC0 and w[first_uri_owner] & 0xC0 == 0xC0
    struct.pack_into(">H", w, second, 0xC000 | first_uri_owner)
    case("compression everywhere: owners, CNAME RDATA, NS RDATA, additional owners, and a pointer to a pointer",
         ["compression", "cname", "edns"], [R_COMP, R_CNAME],
         bytes(w), [(GW, 10, 1, 3600), ("https://gw2.moon.example/inboundmail", 20, 1, 3600)])
    case("authoritative answer with NS records in the authority section and glue in additional",
         ["compression", "ignored-records"], [R_HDR, R_RANK],
         message(answer=[uri(Q, 10, 1, GW)], authority=[ZONE_NS],
                 additional=[RR("ns1.moon.example", T_A, 3600, rd_a("192.0.2.53"))]), [(GW, 10, 1, 3600)])
    case("EDNS: an OPT pseudo-RR (payload 1232, DO set) in the additional section is not an answer",
         ["edns", "compression"], [R_OPT, "RFC 6891 §6.1.1"],
         message(ad=1, answer=[uri(Q, 10, 1, GW)], additional=[opt(do=True)]), [(GW, 10, 1, 3600)])
    cookie = struct.pack(">HH", 10, 24) + bytes(range(24))
    pad = struct.pack(">HH", 12, 16) + bytes(16)
    case("EDNS OPT with a COOKIE and a PADDING option", ["edns", "compression"], [R_OPT, "RFC 7873", "RFC 7830"],
         message(answer=[uri(Q, 10, 1, GW)], additional=[opt(udp=4096, options=cookie + pad)]),
         [(GW, 10, 1, 3600)])
    big = [(10 * (1 + i % 5), i % 7, "https://gw%02d.moon.example/inboundmail" % i) for i in range(40)]
    case("40 URI records (a TCP-sized answer, %d priorities)" % len({p for p, _, _ in big}),
         ["large", "compression", "priority"], [R_URI_PRIO, R_SRV, R_COMP],
         message(answer=[uri(Q, p, w_, t, ttl=1800) for p, w_, t in big]), [(t, p, w_, 1800) for p, w_, t in big])
    big_mixed = [(1 + i % 3, i, ("https" if i % 4 else "http") + "://h%02d.moon.example/" % i) for i in range(40)]
    case("40 URI records without compression, a quarter of them http: filtered", ["large", "scheme"],
         [R_URI_TARGET, R_RR],
         message(answer=[uri(Q, p, w_, t) for p, w_, t in big_mixed], compress=False),
         [(t, p, w_, 3600) for p, w_, t in big_mixed if t.startswith("https:")])
    idn = "xn--bcher-kva.example"          # bücher.example
    assert "bücher".encode("idna") == b"xn--bcher-kva"
    case("IDN domain given as A-labels (bücher.example): the query name is all ASCII", ["idn", "compression"],
         [R_IDN, R_URI_OWNER],
         message(domain=idn, answer=[uri(qname_of(idn), 10, 1, "https://gw.xn--bcher-kva.example/inboundmail")]),
         [("https://gw.xn--bcher-kva.example/inboundmail", 10, 1, 3600)], domain=idn)
    idn2 = "xn--7ov.xn--mnd-sna.example"   # 月.mönd.example
    assert "月".encode("idna") == b"xn--7ov" and "mönd".encode("idna") == b"xn--mnd-sna"
    case("IDN domain with two A-labels, echoed in upper case (XN--...): still the same name",
         ["idn", "case"], [R_IDN, R_CASE],
         message(domain=idn2, question=[(qname_of(idn2).upper(), T_URI, C_IN)],
                 answer=[uri(qname_of(idn2), 10, 1, "https://xn--7ov.xn--mnd-sna.example/in")], compress=False),
         [("https://xn--7ov.xn--mnd-sna.example/in", 10, 1, 3600)], domain=idn2)
    other = [uri("_bsmtp._https.mars.example", 1, 1, "https://gw.mars.example/inboundmail"),
             uri("_bsmtp._tcp." + DOMAIN, 1, 1, "https://wrong.moon.example/in"),
             RR(Q, T_TXT, 3600, rd_txt("v=none")),
             uri(Q, 10, 1, GW),
             uri("gw." + DOMAIN, 1, 1, "https://gw.moon.example/not-this")]
    case("URI records of other owner names and a TXT record of the queried name in the answer are ignored",
         ["ignored-records", "compression"], [R_URI_OWNER, R_RR], message(answer=other), [(GW, 10, 1, 3600)])
    case("URI records of the queried name in the authority and additional sections are not answers",
         ["ignored-records", "compression"], [R_RANK],
         message(answer=[uri(Q, 10, 1, GW)], authority=[uri(Q, 1, 1, "https://auth.moon.example/in")],
                 additional=[uri(Q, 1, 1, "https://addl.moon.example/in")]), [(GW, 10, 1, 3600)])
    rfc_owner = qname_of("example.com")
    case("the RFC 7553 §4 example target ftp://ftp1.example.com/public (10 1), schemes [ftp]",
         ["rfc-example", "scheme"], ["RFC 7553 §4", R_URI_WIRE],
         message(domain="example.com", answer=[uri(rfc_owner, 10, 1, "ftp://ftp1.example.com/public")],
                 compress=False),
         [("ftp://ftp1.example.com/public", 10, 1, 3600)], domain="example.com", schemes=("ftp",))
    case("the RFC 7553 §4 example next to an https record: schemes [https] keeps only the https one",
         ["rfc-example", "scheme", "compression"], ["RFC 7553 §4", R_SCHEME],
         message(domain="example.com", answer=[uri(rfc_owner, 10, 1, "ftp://ftp1.example.com/public"),
                                               uri(rfc_owner, 20, 1, "https://www.example.com/path")]),
         [("https://www.example.com/path", 20, 1, 3600)], domain="example.com")
    case("TTL with the most significant bit set is taken as 0", ["ttl"], [R_TTL],
         message(answer=[uri(Q, 10, 1, GW, ttl=0x80000E10)]), [(GW, 10, 1, 0)])
    case("TTL 2^31 - 1, the largest positive TTL, is kept", ["ttl"], [R_TTL],
         message(answer=[uri(Q, 10, 1, GW, ttl=0x7FFFFFFF)]), [(GW, 10, 1, 0x7FFFFFFF)])
    case("TTL 0 is a valid TTL (use once, do not cache)", ["ttl"], [R_TTL, "RFC 1035 §3.2.1"],
         message(answer=[uri(Q, 10, 1, GW, ttl=0)]), [(GW, 10, 1, 0)])
    case("an RRset with differing TTLs: every record takes the lowest TTL", ["ttl", "priority"], [R_RRSET_TTL],
         message(answer=[uri(Q, 10, 1, GW, ttl=3600), uri(Q, 20, 1, "https://b.moon.example/in", ttl=300)]),
         [(GW, 10, 1, 300), ("https://b.moon.example/in", 20, 1, 300)])
    max_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])       # 255 octets on the wire
    assert sum(len(x) + 1 for x in max_name.split(".")) + 1 == 255
    case("an ignored record owned by a name of exactly 255 octets (the limit) does not break parsing",
         ["ignored-records"], [R_SIZE],
         message(answer=[uri(Q, 10, 1, GW), RR(max_name, T_TXT, 60, rd_txt("x"))], compress=False),
         [(GW, 10, 1, 3600)])
    case("response without RD/RA/AA (answer from a cache that did not recurse): flags do not matter",
         ["header"], [R_HDR], message(aa=0, rd=0, ra=0, answer=[uri(Q, 10, 1, GW)]), [(GW, 10, 1, 3600)])

    # ---------------- acceptable ----------------
    case("a valid URI record next to one with 4-octet RDATA (empty target): reject the message or skip the record",
         ["uri-rdata", "rfc-open"], [R_URI_WIRE],
         message(answer=[uri(Q, 10, 1, GW), RR(Q, T_URI, 3600, rd_raw(struct.pack(">HH", 5, 1)))]), "acceptable")
    case("a valid URI record next to one whose target is not UTF-8: reject all or skip the bad one",
         ["uri-rdata", "rfc-open"], [R_URI_TARGET],
         message(answer=[uri(Q, 10, 1, GW), uri(Q, 20, 1, b"https://gw.moon.example/\xff\xfe")]), "acceptable")
    case("a valid URI record next to one without a scheme: reject all or skip the bad one",
         ["uri-rdata", "rfc-open"], [R_URI_TARGET, R_SCHEME],
         message(answer=[uri(Q, 10, 1, GW), uri(Q, 20, 1, "gw.moon.example/inboundmail")]), "acceptable")
    case("trailing octets after the last counted RR: RFC 1035 does not say whether to ignore them",
         ["hostile", "rfc-open"], [R_HDR],
         message(answer=[uri(Q, 10, 1, GW)], trailing=b"\x00\x00\xde\xad"), "acceptable")
    case("a target that is UTF-8 but not ASCII (an IRI): RFC 7553 §4.4 asks for an RFC 3986 URI",
         ["uri-rdata", "idn", "rfc-open"], [R_URI_TARGET, "RFC 3987"],
         message(answer=[uri(Q, 10, 1, "https://gw.bücher.example/inboundmail")]), "acceptable")
    case("FORMERR without a question section: other-rcode or question-mismatch",
         ["rcode", "question", "rfc-open"], [R_HDR, R_QST],
         message(rcode=1, question=[]), "acceptable")
    case("a referral (no answer, NS but no SOA in authority, AA clear) is not NODATA (RFC 2308 §2.2); "
         "a stub cannot use it",
         ["negative", "rfc-open"], [R_NODATA],
         message(aa=0, ra=0, authority=[ZONE_NS]), "acceptable")
    case("the queried name owns both a CNAME and URI records (forbidden by RFC 1034 §3.6.2): which wins is open",
         ["cname", "rfc-open"], [R_CNAME, R_CNAME1],
         message(answer=[cname(Q, "x.moon.example"), uri(Q, 10, 1, GW),
                         uri("x.moon.example", 20, 1, "https://x.moon.example/in")]), "acceptable")

    # ---------------- invalid: RCODE / negative answers ----------------
    case("NXDOMAIN with the zone SOA in authority (negative TTL min(900, 300) = 300, not compared)",
         ["negative", "rcode", "compression"], [R_NX, R_NEGTTL],
         message(rcode=3, authority=[soa()]), "nxdomain")
    case("NXDOMAIN at the end of a CNAME chain: the RCODE applies to the last name", ["negative", "rcode", "cname"],
         [R_RCODE_CHAIN, R_NX], message(rcode=3, answer=[cname(Q, "gone.moon.example")], authority=[soa()]),
         "nxdomain")
    case("NODATA: NOERROR, empty answer, SOA in authority", ["negative", "compression"], [R_NODATA, R_NEGTTL],
         message(authority=[soa()]), "no-data")
    case("NODATA without any SOA: NOERROR and three empty sections", ["negative"], [R_NODATA],
         message(), "no-data")
    case("NODATA: the answer holds only a TXT record of the queried name and a URI record of another name",
         ["negative", "ignored-records"], [R_NODATA, R_URI_OWNER],
         message(answer=[RR(Q, T_TXT, 3600, rd_txt("hello")),
                         uri("_bsmtp._https.mars.example", 10, 1, "https://gw.mars.example/in")]), "no-data")
    case("NODATA: the URI record sits only in the additional section", ["ignored-records"], [R_RANK, R_NODATA],
         message(additional=[uri(Q, 10, 1, GW)]), "no-data")
    case("NODATA after a CNAME: the chain ends at a name without URI records", ["negative", "cname"],
         [R_NODATA, R_CNAME], message(answer=[cname(Q, "empty.moon.example")], authority=[soa()]), "no-data")
    case("URI record of class CH for the queried name is not an answer to an IN query", ["ignored-records"],
         [R_QST, R_RR], message(answer=[uri(Q, 10, 1, GW, rclass=C_CH)]), "no-data")
    case("SERVFAIL", ["rcode"], [R_HDR], message(rcode=2, aa=0), "servfail")
    case("REFUSED", ["rcode"], [R_HDR], message(rcode=5, aa=0), "refused")
    case("FORMERR (1) with the question echoed", ["rcode"], [R_HDR], message(rcode=1, aa=0), "other-rcode")
    case("NOTIMP (4)", ["rcode"], [R_HDR], message(rcode=4, aa=0), "other-rcode")
    case("RCODE 9 (NOTAUTH) even with a URI answer", ["rcode"], [R_HDR, "RFC 2136 §2.2"],
         message(rcode=9, answer=[uri(Q, 10, 1, GW)]), "other-rcode")
    case("extended RCODE: header RCODE 0 but OPT EXTENDED-RCODE 1 gives 16 (BADVERS), with an answer",
         ["rcode", "edns"], [R_EXTRCODE],
         message(answer=[uri(Q, 10, 1, GW)], additional=[opt(ext_rcode=1)]), "other-rcode")

    # ---------------- invalid: header and question ----------------
    case("TC set on a complete answer: retry over TCP, the response is not used", ["header"], [R_TC, R_HDR],
         message(tc=1, answer=[uri(Q, 10, 1, GW)]), "truncated")
    tcw = message(tc=1, answer=[uri(Q, 10, 1, GW), uri(Q, 20, 1, "https://gw2.moon.example/inboundmail")])
    case("TC set and the message really cut inside the second RR: truncated, not malformed", ["header", "hostile"],
         [R_TC], tcw.wire[:tcw.marks["rrs"][1]["rdata"] + 3], "truncated")
    case("ID differs from the query's", ["header"], [R_HDR],
         message(qid=QID + 1, answer=[uri(Q, 10, 1, GW)]), "id-mismatch")
    case("ID byte-swapped (0x3412 for 0x1234)", ["header"], [R_HDR],
         message(qid=0x3412, answer=[uri(Q, 10, 1, GW)]), "id-mismatch")
    case("QR clear: the query itself came back", ["header"], [R_HDR], message(qr=0, aa=0, ra=0), "not-a-response")
    case("QR clear even though an answer section is present", ["header"], [R_HDR],
         message(qr=0, answer=[uri(Q, 10, 1, GW)]), "not-a-response")
    case("OPCODE 4 (NOTIFY) instead of 0 (QUERY): not an answer to the query", ["header"], [R_HDR, "RFC 1996"],
         message(opcode=4, answer=[uri(Q, 10, 1, GW)]), "not-a-response")
    case("question for another domain", ["question"], [R_QST],
         message(question=[(qname_of("mars.example"), T_URI, C_IN)], answer=[uri(Q, 10, 1, GW)]),
         "question-mismatch")
    case("question _bsmtp._http instead of _bsmtp._https", ["question"], [R_QST, R_URI_OWNER],
         message(question=[("_bsmtp._http." + DOMAIN, T_URI, C_IN)], answer=[uri(Q, 10, 1, GW)]),
         "question-mismatch")
    case("question type SRV (33) instead of URI (256)", ["question"], [R_QST],
         message(question=[(Q, T_SRV, C_IN)], answer=[uri(Q, 10, 1, GW)]), "question-mismatch")
    case("question type 1 (the low octet of 256 in the wrong place)", ["question"], [R_QST],
         message(question=[(Q, 1, C_IN)], answer=[uri(Q, 10, 1, GW)]), "question-mismatch")
    case("question class CH instead of IN", ["question"], [R_QST],
         message(question=[(Q, T_URI, C_CH)], answer=[uri(Q, 10, 1, GW)]), "question-mismatch")
    case("NOERROR with QDCOUNT 0 and an answer", ["question"], [R_QST],
         message(question=[], answer=[uri(Q, 10, 1, GW)]), "question-mismatch")
    case("QDCOUNT 2: the question twice", ["question"], [R_QST],
         message(question=[(Q, T_URI, C_IN)] * 2, answer=[uri(Q, 10, 1, GW)]), "question-mismatch")
    case("question name with an extra trailing label (moon.example.com)", ["question"], [R_QST],
         message(question=[(Q + ".com", T_URI, C_IN)], answer=[uri(Q, 10, 1, GW)]), "question-mismatch")

    # ---------------- invalid: CNAME chains ----------------
    case("CNAME loop: a -> b -> a", ["cname"], [R_CNAME, R_CNAME1],
         message(answer=[cname(Q, "b.moon.example"), cname("b.moon.example", Q)]), "cname-chain")
    case("CNAME pointing to itself", ["cname"], [R_CNAME],
         message(answer=[cname(Q, Q)]), "cname-chain")
    case("CNAME loop that comes back in another case (a -> B -> A)", ["cname", "case"], [R_CNAME, R_CASE],
         message(answer=[cname(Q, "B.moon.example"), cname("b.moon.example", Q.upper())]), "cname-chain")
    chain9 = [Q] + ["c%d.moon.example" % i for i in range(1, 10)]
    # RFC 1034 §3.6.2 only asks resolvers to detect CNAME loops; the limit of
    # 8 links is deepmail's (README "The CNAME limit of 8"), a bound on work
    # per response. A resolver with a higher limit would follow this chain:
    # flagged rfc-open, kept invalid.
    case("a chain of 9 CNAMEs, one over the limit of 8, even though it ends at URI records (the limit of 8 "
         "is the suite's; RFC 1034 §3.6.2 only asks for loop detection)", ["cname", "rfc-open"],
         [R_CNAME], message(answer=[cname(a, b) for a, b in zip(chain9, chain9[1:])] + [uri(chain9[-1], 10, 1, GW)]),
         "cname-chain")

    # ---------------- invalid: URI RDATA and targets ----------------
    case("the only URI record has 4 octets of RDATA: empty target (must be non-empty)", ["uri-rdata"],
         [R_URI_WIRE], message(answer=[RR(Q, T_URI, 3600, rd_raw(struct.pack(">HH", 10, 1)))]), "malformed")
    case("the only URI record has 3 octets of RDATA", ["uri-rdata", "hostile"], [R_URI_WIRE],
         message(answer=[RR(Q, T_URI, 3600, rd_raw(b"\x00\x0a\x00"))]), "malformed")
    case("the only URI record has empty RDATA", ["uri-rdata", "hostile"], [R_URI_WIRE],
         message(answer=[RR(Q, T_URI, 3600, rd_raw(b""))]), "malformed")
    case("target not UTF-8 (Latin-1 octet)", ["uri-rdata"], [R_URI_TARGET],
         message(answer=[uri(Q, 10, 1, b"https://gw.m\xf6on.example/in")]), "invalid-uri")
    case("target with a truncated UTF-8 sequence at its end", ["uri-rdata"], [R_URI_TARGET],
         message(answer=[uri(Q, 10, 1, b"https://gw.moon.example/\xe2\x82")]), "invalid-uri")
    case("target without a scheme (a host and path)", ["uri-rdata"], [R_URI_TARGET, R_SCHEME],
         message(answer=[uri(Q, 10, 1, "gw.moon.example/inboundmail")]), "invalid-uri")
    case("target with an empty scheme ('://gw...')", ["uri-rdata"], [R_SCHEME],
         message(answer=[uri(Q, 10, 1, "://gw.moon.example/inboundmail")]), "invalid-uri")
    case("scheme starting with a digit ('1https:')", ["uri-rdata"], [R_SCHEME],
         message(answer=[uri(Q, 10, 1, "1https://gw.moon.example/inboundmail")]), "invalid-uri")
    case("scheme with a character RFC 3986 does not allow ('ht_tps:')", ["uri-rdata"], [R_SCHEME],
         message(answer=[uri(Q, 10, 1, "ht_tps://gw.moon.example/inboundmail")]), "invalid-uri")
    case("smallest well-formed RDATA, 5 octets: target 'a' has no scheme", ["uri-rdata"], [R_URI_WIRE, R_SCHEME],
         message(answer=[uri(Q, 10, 1, "a")]), "invalid-uri")
    case("target in the presentation format's quotes (the quotes are not part of the wire target)",
         ["uri-rdata"], [R_URI_WIRE, R_SCHEME], message(answer=[uri(Q, 10, 1, '"' + GW + '"')]), "invalid-uri")
    case("no allowed scheme: http, mailto and ftp targets, schemes [https]", ["scheme"], [R_URI_TARGET],
         message(answer=[uri(Q, 10, 1, "http://gw.moon.example/inboundmail"),
                         uri(Q, 20, 1, "mailto:postmaster@moon.example"),
                         uri(Q, 30, 1, "ftp://gw.moon.example/in")]), "no-usable-target")
    case("scheme is a prefix of an allowed one ('http' vs [https]) and vice versa ('httpss')", ["scheme"],
         [R_SCHEME], message(answer=[uri(Q, 10, 1, "http://a.moon.example/"),
                                     uri(Q, 20, 1, "httpss://b.moon.example/")]),
         "no-usable-target")

    # ---------------- invalid: RFC 1035 structure, hostile ----------------
    case("empty response", ["hostile"], [R_HDR], b"", "malformed")
    case("11 octets: the header is cut", ["hostile"], [R_HDR], base.wire[:11], "malformed")
    case("ANCOUNT 2 with only one RR present", ["hostile"], [R_HDR],
         message(answer=[uri(Q, 10, 1, GW)], counts=(1, 2, 0, 0)), "malformed")
    case("ARCOUNT 1 but the additional section is missing", ["hostile", "edns"], [R_HDR],
         message(answer=[uri(Q, 10, 1, GW)], counts=(1, 1, 0, 1)), "malformed")
    case("RDLENGTH runs past the end of the message", ["hostile", "uri-rdata"], [R_RR],
         message(answer=[uri(Q, 10, 1, GW, rdlength=200)]), "malformed")
    case("RDLENGTH of a CNAME longer than the name it holds (the name does not fill the RDATA)",
         ["hostile", "cname"], [R_RR, "RFC 1035 §3.3.1"],
         message(answer=[RR(Q, T_CNAME, 3600, lambda e: (e.name("in.moon.example"), e.buf.extend(b"\0\0")))
                         , uri("in.moon.example", 10, 1, GW)]), "malformed")
    hq = struct.pack(">HHHHHH", QID, 0x8580, 1, 0, 0, 0)
    case("question name is a pointer to itself (offset 12)", ["hostile", "compression"], [R_COMP],
         hq + b"\xc0\x0c" + struct.pack(">HH", T_URI, C_IN), "malformed")
    # Owner name of the answer RR: the label "x" then a pointer back to that label: an endless name.
    loop = message(answer=[uri(Q, 10, 1, GW)])
    own = loop.marks["rrs"][0]["start"]
    lw = loop.wire[:own] + b"\x01x" + struct.pack(">H", 0xC000 | own) + loop.wire[loop.marks["rrs"][0]["fixed"]:]
    case("owner name: label 'x' then a pointer back to that label (an endless name)", ["hostile", "compression"],
         [R_COMP, R_SIZE], lw, "malformed")
    # Two pointers pointing at each other: question -> answer owner, answer owner -> question.
    a = message(answer=[uri(Q, 10, 1, GW)], compress=False)
    qend = a.marks["question_end"]
    hdr = a.wire[:12]
    tail = a.wire[a.marks["rrs"][0]["fixed"]:]
    own = 12 + 2 + 4     # where the answer owner starts once the question name is a 2-octet pointer
    two = (hdr + struct.pack(">H", 0xC000 | own) + struct.pack(">HH", T_URI, C_IN)
           + struct.pack(">H", 0xC000 | 12) + tail)
    case("two pointers pointing at each other (question -> answer owner -> question)", ["hostile", "compression"],
         [R_COMP], two, "malformed")
    # Forward pointer: question name points at a copy of the name written later (in the answer owner).
    fw = hdr + struct.pack(">H", 0xC000 | own) + struct.pack(">HH", T_URI, C_IN) + a.wire[12:qend - 4] + tail
    case("forward pointer: the question points at the answer owner name written after it",
         ["hostile", "compression"], [R_COMP], fw, "malformed")
    c = message(answer=[uri(Q, 10, 1, GW)])
    own = c.marks["rrs"][0]["start"]
    oor = c.wire[:own] + b"\xff\xff" + c.wire[own + 2:]
    case("pointer out of range (offset 0x3fff in a short message)", ["hostile", "compression"], [R_COMP],
         oor, "malformed")
    cut_ptr = c.wire[:own + 1]
    case("message ends in the middle of a compression pointer", ["hostile", "compression"], [R_COMP],
         cut_ptr, "malformed")
    ext = c.wire[:own] + b"\x80\x0c" + c.wire[own + 2:]
    case("label type 10 (reserved) instead of a pointer", ["hostile"], [R_COMP, "RFC 6891 §5"],
         ext, "malformed")
    lab64 = RawName(b"\x40" + b"a" * 64 + b"\x04moon\x07example\x00")
    case("a 64-octet label (length octet 0x40, the reserved 01 type)", ["hostile"], [R_SIZE, "RFC 6891 §5"],
         message(answer=[uri(Q, 10, 1, GW), RR(lab64, T_TXT, 60, rd_txt("x"))], compress=False), "malformed")
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])        # 256 octets
    case("owner name of 256 octets, one over the limit, on an otherwise ignored record", ["hostile"], [R_SIZE],
         message(answer=[uri(Q, 10, 1, GW), RR(long_name, T_TXT, 60, rd_txt("x"))], compress=False),
         "malformed")
    # A name over 255 octets built only from pointers to shorter, valid names.
    n1 = "a" * 63 + "." + "b" * 63 + ".moon.example"
    pre = message(answer=[uri(Q, 10, 1, GW), RR(n1, T_TXT, 60, rd_txt("x"))], compress=False)
    n1_at = pre.marks["rrs"][1]["start"]
    extra = b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + struct.pack(">H", 0xC000 | n1_at)
    body = pre.wire + extra + struct.pack(">HHIH", T_TXT, C_IN, 60, 2) + b"\x01y"
    body = body[:6] + struct.pack(">H", 3) + body[8:]
    assert len(extra) - 2 + 142 == 270
    case("a name of 270 octets: two 63-octet labels, then a pointer to a valid 142-octet name",
         ["hostile", "compression"],
         [R_SIZE, R_COMP], body, "malformed")

    # ---------------- truncation points of one valid response ----------------
    tr = message(answer=[cname(Q, "in.moon.example", ttl=7200), uri("in.moon.example", 10, 1, GW),
                         uri("in.moon.example", 20, 5, "https://gw2.moon.example/inboundmail")],
                 authority=[ZONE_NS], additional=[opt()])
    case("the response whose truncations follow, complete: CNAME, two URI RRs, NS, OPT",
         ["truncation-point", "compression", "cname", "edns"], [R_HDR, R_COMP],
         tr, [(GW, 10, 1, 3600), ("https://gw2.moon.example/inboundmail", 20, 5, 3600)])
    rr = tr.marks["rrs"]
    points = [
        (1, "inside the ID"),
        (12, "right after the header"),
        (12 + 8, "inside the question name"),
        (tr.marks["question_end"] - 2, "inside QCLASS"),
        (tr.marks["question_end"], "right after the question"),
        (rr[0]["fixed"] + 5, "inside the CNAME's TTL"),
        (rr[0]["rdata"] - 1, "inside the CNAME's RDLENGTH"),
        (rr[0]["rdata"] + 4, "inside the CNAME's RDATA name"),
        (rr[1]["start"] + 1, "inside the first URI owner pointer"),
        (rr[1]["rdata"] + 2, "inside the first URI's weight"),
        (rr[2]["rdata"] + 10, "inside the second URI's target"),
        (rr[3]["start"], "at the start of the authority section"),
        (rr[4]["fixed"] + 1, "inside the OPT RR's TYPE"),
        (len(tr.wire) - 1, "one octet before the end"),
    ]
    for at, where in points:
        assert 0 < at < len(tr.wire)
        case("truncated at octet %d of %d: %s" % (at, len(tr.wire), where), ["truncation-point", "hostile"],
             [R_HDR, R_RR], tr.wire[:at], "malformed")

    # ---- added after the RFC audit (new ids only after the existing ones) ----
    # RFC 2181 §5: two records equal in owner, class, type and RDATA are
    # meaningless and "servers should suppress such duplicates". A client
    # that gets them may drop the copy or keep it (the comparison is a
    # multiset, so the two readings differ): acceptable.
    case("two identical URI records (same owner, class, type, RDATA): RFC 2181 §5 has servers suppress "
         "such duplicates; returning one hop or both conforms", ["rfc-open"], ["RFC 2181 §5"],
         message(answer=[uri(Q, 10, 1, GW), uri(Q, 10, 1, GW)]), "acceptable")
    # RFC 6672 §3.1/§3.4: a server answering through a DNAME includes the
    # DNAME and a CNAME synthesised from it; an old resolver follows the
    # CNAME and ignores the DNAME as a record of another type (step 9).
    # The DNAME's target is written uncompressed: RFC 3597 §4 forbids
    # compression inside the RDATA of types defined after RFC 1035, and
    # RFC 6672 says so for DNAME (dnspython refuses a compressed one).
    T_DNAME = 39
    case("DNAME moon.example -> mars.example with the synthesised CNAME: the CNAME is followed, the DNAME "
         "ignored", ["cname", "ignored-records"], ["RFC 6672 §3.1", "RFC 6672 §3.4", "RFC 3597 §4", R_CNAME],
         message(answer=[RR(DOMAIN, T_DNAME, 3600, lambda enc: enc.name("mars.example", compress=False)),
                         cname(Q, "_bsmtp._https.mars.example"),
                         uri("_bsmtp._https.mars.example", 10, 1, "https://gw.mars.example/inboundmail")]),
         [("https://gw.mars.example/inboundmail", 10, 1, 3600)])

    # ---- compression pointer placement (issue 16; RFC 1035 §4.1.4) ----
    # §4.1.4: a name, or the labels at its end, "is replaced with a pointer
    # to a prior occurance of the same name", the OFFSET counted "from the
    # start of the message (i.e., the first octet of the ID field in the
    # domain header)". The README's operational rule: a pointer must point
    # before the start of the run of labels it ends (so no loop can exist).
    # Pointers into the header, or into the middle of a label, that satisfy
    # it and spell a well-formed name there point at no "occurance of the
    # same name", but §4.1.4 states no rule for a receiver: acceptable
    # (rfc-open). Every case that loops or goes forward is malformed.
    def qwire(name):
        return b"".join(bytes([len(x)]) + x for x in labels_of(name)) + b"\x00"

    def patch_ptr(wire, at, target):
        w = bytearray(wire)
        struct.pack_into(">H", w, at, 0xC000 | target)
        return bytes(w)

    txt = lambda owner: RR(owner, T_TXT, 60, rd_txt("x"))          # noqa: E731
    case("an ignored record's owner points into the header, where the ID 0xC000 is itself a pointer to "
         "offset 0: a loop through the header", ["hostile", "compression", "header"], [R_COMP, R_HDR],
         message(qid=0xC000, answer=[uri(Q, 10, 1, GW), txt(RawName(b"\xc0\x00"))]), "malformed", qid=0xC000)
    case("the question name is a pointer to offset 0, where the ID 0xC00C reads as a pointer back to the "
         "question name: a loop through the header", ["hostile", "compression", "question", "header"],
         [R_COMP, R_QST], message(qid=0xC00C, question=[(RawName(b"\xc0\x00"), T_URI, C_IN)],
                                  answer=[uri(Q, 10, 1, GW)], compress=False), "malformed", qid=0xC00C)
    case("the question name's labels end in a pointer to offset 4, the high octet of QDCOUNT (0x00), read as "
         "the root: backwards and well formed, but the header holds no prior name (§4.1.4 names no rule for "
         "a receiver; refusing is as right)", ["hostile", "compression", "question", "header", "rfc-open"],
         [R_COMP, R_QST], message(question=[(RawName(qwire(Q)[:-1] + b"\xc0\x04"), T_URI, C_IN)],
                                  answer=[uri(Q, 10, 1, GW)], compress=False), "acceptable")
    case("the question name's label '_bsmtp' then a pointer back to the start of the question name: a loop "
         "inside the question", ["hostile", "compression", "question"], [R_COMP, R_QST],
         message(question=[(RawName(b"\x06_bsmtp\xc0\x0c"), T_URI, C_IN)], answer=[uri(Q, 10, 1, GW)],
                 compress=False), "malformed")
    # An ignored record owned by a one-label name whose 29 octets are 'z'
    # and the wire form of the queried name (labels may hold any octet,
    # RFC 2181 §11); the URI owner points 2 octets into that label.
    mid = message(answer=[txt(RawName(bytes([29]) + b"z" + qwire(Q) + b"\x00")),
                          uri(RawName(b"\xc0\x00"), 10, 1, GW)])
    mid_wire = patch_ptr(mid.wire, mid.marks["rrs"][1]["start"], mid.marks["rrs"][0]["start"] + 2)
    case("the URI owner points into the middle of a label, where its octets spell the queried name: "
         "backwards and well formed, but no prior occurrence of a name (§4.1.4 names no rule for a receiver)",
         ["hostile", "compression", "rfc-open"], [R_COMP, "RFC 2181 §11"], mid_wire, "acceptable")
    # A 2-octet label whose octets are a pointer to themselves, then a
    # pointer into that label.
    lp = message(answer=[uri(Q, 10, 1, GW), txt(RawName(b"\x02\xc0\x00\xc0\x00"))])
    at = lp.marks["rrs"][1]["start"]
    lp_wire = patch_ptr(patch_ptr(lp.wire, at + 1, at + 1), at + 3, at + 1)
    case("a label whose two octets are a pointer to themselves, then a pointer into the middle of that label: "
         "a loop", ["hostile", "compression"], [R_COMP], lp_wire, "malformed")
    chain_recs = [(10 * (i + 1), 1, "https://gw%d.moon.example/inboundmail" % i) for i in range(5)]
    ch = message(answer=[uri(Q, p, w_, t) for p, w_, t in chain_recs])
    ch_wire = ch.wire
    for i in range(1, 5):
        ch_wire = patch_ptr(ch_wire, ch.marks["rrs"][i]["start"], ch.marks["rrs"][i - 1]["start"])
    case("five URI records, each owner a pointer to the previous owner: a chain of 5 pointers to the question",
         ["compression", "priority"], [R_COMP], ch_wire, [(t, p, w_, 3600) for p, w_, t in chain_recs])
    # Seventeen labels, each compressed against a different earlier name:
    # ignored TXT records own x17.moon.example, x16.x17.moon.example, ...;
    # the CNAME target x1...x17.moon.example is 'x1' and a pointer, and
    # reading it follows 17 pointers (18 for the URI owner). RFC 1035 sets
    # no limit on pointers per name; a jump limit (dnspython stops after
    # 16) refuses a legitimate name: flagged rfc-open, kept valid.
    longn = ["x%d" % i for i in range(1, 18)]
    sfx = [".".join(longn[i:]) + "." + DOMAIN for i in range(len(longn))]
    case("a CNAME target of 17 labels each compressed against a different earlier name (17 pointers to "
         "follow, 18 for the URI owner): RFC 1035 sets no limit on pointers (a jump limit like dnspython's "
         "16 is an implementation's hardening)", ["compression", "cname", "ignored-records", "rfc-open"],
         [R_COMP, R_CNAME],
         message(answer=[txt(n) for n in reversed(sfx[1:])] + [cname(Q, sfx[0]), uri(sfx[0], 10, 1, GW)]),
         [(GW, 10, 1, 3600)])
    # The RDATA of an ignored TXT record, one 2-octet character-string (a
    # well-formed TXT), holds a pointer to the URI owner written later
    # (forward); a later owner points back into that RDATA (backward): the
    # chain's second link goes forward.
    fwd = message(answer=[RR(DOMAIN, T_TXT, 60, rd_raw(b"\x02\xc0\x00")), uri(Q, 10, 1, GW),
                          txt(RawName(b"\xc0\x00"))], compress=False)
    rr0, rr1, rr2 = fwd.marks["rrs"]
    fwd_wire = patch_ptr(patch_ptr(fwd.wire, rr0["rdata"] + 1, rr1["start"]), rr2["start"], rr0["rdata"] + 1)
    case("an owner points back into an ignored record's RDATA, which holds a pointer forward to a later "
         "name: a chain with a forward link", ["hostile", "compression"], [R_COMP], fwd_wire, "malformed")
    fc = message(answer=[cname(Q, RawName(b"\xc0\x00")), uri("in.moon.example", 10, 1, GW)], compress=False)
    fc_wire = patch_ptr(fc.wire, fc.marks["rrs"][0]["rdata"], fc.marks["rrs"][1]["start"] + 3)
    case("the CNAME target is a pointer forward to 'moon.example' in the URI owner written after it",
         ["hostile", "compression", "cname"], [R_COMP, "RFC 1035 §3.3.1"], fc_wire, "malformed")
    sc = message(answer=[cname(Q, RawName(b"\xc0\x00")), uri("in.moon.example", 10, 1, GW)], compress=False)
    sc_wire = patch_ptr(sc.wire, sc.marks["rrs"][0]["rdata"], sc.marks["rrs"][0]["rdata"])
    case("the CNAME target is a pointer to itself", ["hostile", "compression", "cname"],
         [R_COMP, "RFC 1035 §3.3.1"], sc_wire, "malformed")
    # RFC 7553 §4.5: the target is "a sequence of octets", not a domain
    # name, so nothing in it is a compression pointer (RFC 3597 §4 forbids
    # compression in RDATA of types after RFC 1035 anyway). An ignored TXT
    # record is owned by the name 'https://gw'.moon.example; the only URI
    # record's target is the two octets of a pointer to it. Read as octets,
    # 0xC0 is no UTF-8: invalid-uri. A reader that decompresses would find
    # "https://gw.moon.example" and return it.
    up = message(answer=[txt(RawName(b"\x0ahttps://gw\x04moon\x07example\x00")),
                         uri(Q, 10, 1, b"\xc0\x00")])
    up_wire = patch_ptr(up.wire, up.marks["rrs"][1]["rdata"] + 4, up.marks["rrs"][0]["start"])
    case("the URI target is two octets that would be a pointer to a name spelling https://gw.moon.example: "
         "a target is octets, not a compressed name (not UTF-8: invalid-uri)", ["compression", "uri-rdata"],
         [R_URI_WIRE, "RFC 3597 §4", R_COMP], up_wire, "invalid-uri")
    # Names at the 255-octet limit (RFC 1035 §2.3.4) assembled through a
    # chain of pointers, each adding one label: ignored TXT records own
    # d, c63.d, b63.c63.d and a63.b63.c63.d, each compressed to a label and a
    # pointer to the one before.
    for dlen, want in ((61, [(GW, 10, 1, 3600)]), (62, "malformed")):
        n4 = "d" * dlen
        chain_names = [n4, "c" * 63 + "." + n4, "b" * 63 + "." + "c" * 63 + "." + n4,
                       "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + n4]
        total = sum(len(x) + 1 for x in chain_names[-1].split(".")) + 1
        assert total == 194 + dlen and total in (255, 256)
        case("an ignored record owned by a name of %d octets reached through a chain of 3 pointers, each "
             "adding a 63-octet label (the limit is 255, RFC 1035 §2.3.4)" % total,
             ["compression", "ignored-records"] + (["hostile"] if total > 255 else []), [R_SIZE, R_COMP],
             message(answer=[uri(Q, 10, 1, GW)] + [txt(n) for n in chain_names]), want)
    return m


def main():
    out, quiet = V.out_dir_from_args(__doc__.splitlines()[0])
    manifests = [("resolver/parse-answer.json", gen_parse_answer())]
    for rel, m in manifests:
        m.write(os.path.join(out, rel))
    V.report(manifests, quiet)


if __name__ == "__main__":
    main()
