#!/usr/bin/env python3
"""Tiny stdlib-only DNS client: test tooling for the URI-resolver tests.

Asks one server one question and prints the answer as one JSON object.
Not the product (that is `deepmail resolve`); an independent cross-check,
and the readiness probe of start-nsd.sh.

    query.py [--server 127.0.0.1] --port 53530 [--type URI] [--udp|--tcp] NAME

Transport: by default UDP with EDNS(0) (buffer 1232, --edns N, --edns 0 for
no OPT record) and, if the UDP answer has TC set, the same question again
over TCP. --udp: UDP only (a TC answer is printed as is). --tcp: TCP only.

Output (stdout, one line; keys sorted):
  name, qtype         the question
  transport           "udp" or "tcp": where the printed answer came from
  rcode               "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ...
  aa, tc              header flags of the printed answer
  udp_tc              true if a UDP answer had TC (then transport is "tcp"
                      unless --udp), false if UDP answered without TC,
                      null if UDP was not tried
  udp_size, size      octets of the UDP answer (null if not tried) and of
                      the printed answer
  answer, authority, additional
                      the records: {"name","type","class","ttl","data"};
                      data is a dict for URI/SOA/CNAME/A/AAAA/NS/OPT, hex
                      otherwise
  uri                 the URI records of the answer section, whatever their
                      owner (i.e. after CNAMEs): {"owner","priority",
                      "weight","target","ttl"}, in answer order
  cnames              [[owner, target], ...] CNAMEs of the answer section
  ede                 RFC 8914 Extended DNS Errors in the OPT record:
                      [{"info_code", "text"}] (NSD 4.6 sends 20, "Not
                      Authoritative", with REFUSED; 14, "Zone is configured
                      but not loaded", with SERVFAIL)

Exit status: 0 when an answer came (whatever its rcode), 2 when none did
(timeout, connection refused, malformed), 64 on a usage error.
"""

import argparse
import json
import random
import socket
import struct
import sys

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28, "SRV": 33, "OPT": 41, "ANY": 255, "URI": 256}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
          4: "NOTIMP", 5: "REFUSED"}


class Malformed(Exception):
    pass


def encode_name(name):
    name = name.rstrip(".")
    out = b""
    if name:
        for label in name.split("."):
            raw = label.encode("ascii")
            if not 0 < len(raw) < 64:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(qid, name, qtype, edns):
    # RD clear: we ask an authoritative server.
    header = struct.pack("!HHHHHH", qid, 0x0000, 1, 0, 0, 1 if edns else 0)
    msg = header + encode_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        # root name, type OPT, class = UDP payload size, TTL 0, RDLEN 0
        msg += b"\0" + struct.pack("!HHIH", 41, edns, 0, 0)
    return msg


def read_name(msg, off):
    labels, jumps, end = [], 0, None
    while True:
        if off >= len(msg):
            raise Malformed("name runs past the end")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise Malformed("truncated pointer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 64:
                raise Malformed("compression loop")
        elif n & 0xC0:
            raise Malformed("bad label type")
        elif n == 0:
            off += 1
            break
        else:
            labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
    return ".".join(labels) + ".", (end if end is not None else off)


def rdata(msg, rtype, off, rdlen):
    raw = msg[off:off + rdlen]
    if rtype == 256:
        if rdlen < 4:
            raise Malformed("short URI rdata")
        prio, weight = struct.unpack("!HH", raw[:4])
        return {"priority": prio, "weight": weight,
                "target": raw[4:].decode("utf-8", "replace")}
    if rtype in (2, 5, 12):
        return {"target": read_name(msg, off)[0]}
    if rtype == 6:
        mname, o = read_name(msg, off)
        rname, o = read_name(msg, o)
        serial, refresh, retry, expire, minimum = struct.unpack("!IIIII", msg[o:o + 20])
        return {"mname": mname, "rname": rname, "serial": serial,
                "refresh": refresh, "retry": retry, "expire": expire,
                "minimum": minimum}
    if rtype == 41:
        opts, o = [], 0
        while o + 4 <= len(raw):
            code, olen = struct.unpack("!HH", raw[o:o + 4])
            opts.append({"code": code, "hex": raw[o + 4:o + 4 + olen].hex()})
            o += 4 + olen
        return {"options": opts}
    if rtype == 1 and rdlen == 4:
        return {"address": socket.inet_ntop(socket.AF_INET, raw)}
    if rtype == 28 and rdlen == 16:
        return {"address": socket.inet_ntop(socket.AF_INET6, raw)}
    return {"hex": raw.hex()}


def parse(msg, qid):
    if len(msg) < 12:
        raise Malformed("short message")
    rid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        raise Malformed("id mismatch")
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    sections = []
    for count in (an, ns, ar):
        rrs = []
        for _ in range(count):
            name, off = read_name(msg, off)
            if off + 10 > len(msg):
                raise Malformed("truncated record")
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            if off + rdlen > len(msg):
                raise Malformed("truncated rdata")
            rr = {"name": name, "type": TYPE_NAMES.get(rtype, "TYPE%d" % rtype),
                  "class": rclass, "ttl": ttl}
            if rtype == 41:
                rr = {"name": name, "type": "OPT", "udp_payload_size": rclass,
                      "ext_rcode_flags": ttl}
            rr["data"] = rdata(msg, rtype, off, rdlen)
            off += rdlen
            rrs.append(rr)
        sections.append(rrs)
    ede = []
    for rr in sections[2]:
        for opt in rr["data"].get("options", []) if rr["type"] == "OPT" else []:
            if opt["code"] == 15 and len(opt["hex"]) >= 4:
                raw = bytes.fromhex(opt["hex"])
                ede.append({"info_code": struct.unpack("!H", raw[:2])[0],
                            "text": raw[2:].decode("utf-8", "replace")})
    return {
        "ede": ede,
        "rcode": RCODES.get(flags & 0xF, "RCODE%d" % (flags & 0xF)),
        "aa": bool(flags & 0x0400),
        "tc": bool(flags & 0x0200),
        "answer": sections[0],
        "authority": sections[1],
        "additional": sections[2],
        "size": len(msg),
    }


def ask_udp(server, port, query, timeout):
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, port))
        s.send(query)
        return s.recv(65535)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise Malformed("TCP connection closed early")
        buf += chunk
    return buf


def ask_tcp(server, port, query, timeout):
    with socket.create_connection((server, port), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        (n,) = struct.unpack("!H", recv_exact(s, 2))
        return recv_exact(s, n)


class UsageParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print("query.py: %s" % message, file=sys.stderr)
        sys.exit(64)


def main():
    ap = UsageParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--type", default="URI",
                    help="URI (default), SOA, A, CNAME, ... or a number")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--udp", action="store_true", help="UDP only, no TCP retry")
    mode.add_argument("--tcp", action="store_true", help="TCP only")
    ap.add_argument("--edns", type=int, default=1232,
                    help="EDNS(0) UDP payload size; 0 = no OPT record")
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()

    t = args.type.upper()
    qtype = TYPES.get(t) or (int(t[4:]) if t.startswith("TYPE") else None)
    if qtype is None:
        qtype = int(t) if t.isdigit() else None
    if qtype is None:
        ap.error("unknown type %r" % args.type)

    out = {"name": args.name if args.name.endswith(".") else args.name + ".",
           "qtype": TYPE_NAMES.get(qtype, "TYPE%d" % qtype),
           "udp_tc": None, "udp_size": None}
    try:
        res, transport = None, None
        if not args.tcp:
            qid = random.randrange(1 << 16)
            res = parse(ask_udp(args.server, args.port,
                                build_query(qid, args.name, qtype, args.edns),
                                args.timeout), qid)
            transport = "udp"
            out["udp_tc"], out["udp_size"] = res["tc"], res["size"]
        if args.tcp or (res["tc"] and not args.udp):
            qid = random.randrange(1 << 16)
            res = parse(ask_tcp(args.server, args.port,
                                build_query(qid, args.name, qtype, args.edns),
                                args.timeout), qid)
            transport = "tcp"
    except (OSError, Malformed, struct.error) as e:
        print("query.py: no answer from %s port %d: %s" % (args.server, args.port, e),
              file=sys.stderr)
        return 2

    out.update(res)
    out["transport"] = transport
    out["uri"] = [dict(owner=rr["name"], ttl=rr["ttl"], **rr["data"])
                  for rr in res["answer"] if rr["type"] == "URI"]
    out["cnames"] = [[rr["name"], rr["data"]["target"]]
                     for rr in res["answer"] if rr["type"] == "CNAME"]
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
