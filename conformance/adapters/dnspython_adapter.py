#!/usr/bin/env python3
"""deepmail-adapter/1 adapter for dnspython's DNS message parser.

Speaks the line protocol of vectors/README.md ("Adapter protocol") on
stdin/stdout and implements one operation, `resolver.parse-answer`:

  * the 12-octet header is read here (QR, OPCODE, ID and TC are checked
    before the body, as the README's order says: a truncated response is
    `truncated` whatever follows);
  * the rest is dnspython's: `dns.message.from_wire` reads every section
    (names, compression pointers, RDLENGTH, the CNAME and URI RDATA, EDNS),
    and its exceptions are `malformed`; names are compared with dnspython's
    case-insensitive `dns.name.Name` equality (RFC 4343), the RCODE is
    dnspython's `Message.rcode()` (extended by the OPT record, RFC 6891);
  * what the operation does with the parsed message (follow the CNAME
    chain, keep the URI records of the final name, filter by scheme, TTL
    rules of RFC 2181 §5.2 and §8) follows the README's numbered rules.

Error classes are reported (`error_classes: true`). Every other operation
answers `unsupported`. Run it with the interpreter of the venv that
`setup-dnspython.sh` creates.
"""

import re
import struct

from adapterlib import serve

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.rdataclass
    import dns.rdatatype
    import dns.rcode
    IMPORT_ERROR = None
except Exception as e:  # noqa: BLE001 - report, don't crash
    IMPORT_ERROR = e

FORMAT = "deepmail-adapter/1"
URI = 256
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
MAX_CNAMES = 8


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def version():
    try:
        from importlib.metadata import version as v
        return v("dnspython")
    except Exception:  # noqa: BLE001
        return getattr(dns.version, "version", "unknown")


def parse_answer(inp):
    wire = bytes.fromhex(inp["response"]["hex"])
    domain = inp["domain"]
    schemes = {s.lower() for s in inp["schemes"]}
    if len(wire) < 12:
        raise Refused("malformed", "%d octets: shorter than a DNS header" % len(wire))
    ident, flags = struct.unpack(">HH", wire[:4])
    if not flags & dns.flags.QR or (flags >> 11) & 0xF != 0:
        raise Refused("not-a-response", "QR clear or OPCODE not QUERY")
    if ident != inp["query_id"]:
        raise Refused("id-mismatch", "ID %d, the query's was %d" % (ident, inp["query_id"]))
    if flags & dns.flags.TC:
        raise Refused("truncated", "TC set: retry over TCP")
    try:
        msg = dns.message.from_wire(
            wire, one_rr_per_rrset=True, raise_on_truncation=False, ignore_trailing=False
        )
    except Exception as e:  # noqa: BLE001 - every dnspython parse failure
        raise Refused("malformed", "dnspython: %s: %s" % (type(e).__name__, e)) from e
    qname = dns.name.from_text("_bsmtp._https." + domain)
    if (
        len(msg.question) != 1
        or msg.question[0].name != qname
        or msg.question[0].rdtype != URI
        or msg.question[0].rdclass != dns.rdataclass.IN
    ):
        raise Refused("question-mismatch", "the question is not %s URI IN" % qname)
    rcode = msg.rcode()
    if rcode != dns.rcode.NOERROR:
        raise Refused(
            {dns.rcode.NXDOMAIN: "nxdomain", dns.rcode.SERVFAIL: "servfail",
             dns.rcode.REFUSED: "refused"}.get(rcode, "other-rcode"),
            "RCODE %s" % dns.rcode.to_text(rcode),
        )
    name, seen = qname, {qname}
    while True:
        cname = [r for r in msg.answer
                 if r.rdtype == dns.rdatatype.CNAME and r.rdclass == dns.rdataclass.IN
                 and r.name == name]
        if not cname:
            break
        target = cname[0][0].target
        if target in seen or len(seen) > MAX_CNAMES:
            raise Refused("cname-chain", "CNAME loop or more than %d links" % MAX_CNAMES)
        seen.add(target)
        name = target
    records = [r for r in msg.answer
               if r.rdtype == URI and r.rdclass == dns.rdataclass.IN and r.name == name]
    if not records:
        raise Refused("no-data", "no URI record for %s" % name)
    hops, broken = [], 0
    # RFC 2181 §8: a TTL with the top bit set counts as 0; §5.2: one RRset,
    # the lowest TTL for all.
    ttl = min(0 if r.ttl & 0x80000000 else r.ttl for r in records)
    for r in records:
        rd = r[0]
        try:
            uri = rd.target.decode("utf-8") if isinstance(rd.target, bytes) else str(rd.target)
        except UnicodeDecodeError:
            broken += 1
            continue
        if not SCHEME.match(uri):
            broken += 1
            continue
        hops.append({"uri": uri, "priority": rd.priority, "weight": rd.weight, "ttl": ttl})
    if not hops:
        raise Refused("invalid-uri", "no URI record has a usable target")
    hops = [h for h in hops if h["uri"].split(":", 1)[0].lower() in schemes]
    if not hops:
        raise Refused("no-usable-target", "no target with a scheme in %s" % sorted(schemes))
    hops.sort(key=lambda h: h["priority"])
    return {"next_hops": hops}


def answer(req):
    rid = req.get("id")
    op = req.get("operation")
    if op == "hello":
        return {"id": rid, "result": "ok", "output": {
            "name": "dnspython", "version": version() if IMPORT_ERROR is None else "missing",
            "operations": ["resolver.parse-answer"], "error_classes": True}}
    if IMPORT_ERROR is not None:
        return {"id": rid, "result": "unsupported", "reason": "dnspython: %s" % IMPORT_ERROR}
    if (req.get("stage"), op) != ("resolver", "parse-answer"):
        return {"id": rid, "result": "unsupported", "reason": "dnspython parses DNS only"}
    try:
        return {"id": rid, "result": "ok", "output": parse_answer(req["input"])}
    except Refused as e:
        return {"id": rid, "result": "error", "error": {"code": e.code, "message": str(e)}}
    except Exception as e:  # noqa: BLE001 - never crash on a case
        return {"id": rid, "result": "error",
                "error": {"code": "malformed", "message": "%s: %s" % (type(e).__name__, e)}}


def main():
    serve(answer, "malformed")


if __name__ == "__main__":
    main()
