#!/usr/bin/env python3
"""Seed each fuzz target's corpus from the conformance vectors.

    python3 fuzz/seed_corpora.py        # writes fuzz/corpus/<target>/

Every input a vector gives (valid, invalid and acceptable cases) becomes a
seed: Batch SMTP batches for the decoders, bundles for the parser and the
reassembler (one length-prefixed sequence per reassembly case), DNS
responses for the answer parser. The protocol sessions and the
Authentication-Results parser get a few hand-written seeds; the gateway
configuration loader gets the documented example configurations, the contact
plan parser an ION file and the plans of its tests. Deterministic.
"""

import base64
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VECTORS = os.path.join(ROOT, "vectors")


def as_bytes(value, base):
    if isinstance(value, str):
        return value.encode("utf-8")
    if "text" in value:
        return value["text"].encode("utf-8")
    if "hex" in value:
        return bytes.fromhex(value["hex"])
    if "base64" in value:
        return base64.b64decode(value["base64"])
    if "file" in value:
        with open(os.path.join(base, value["file"]), "rb") as f:
            return f.read()
    raise ValueError("unknown byte form %r" % (value,))


def cases(path):
    with open(os.path.join(VECTORS, path)) as f:
        return json.load(f)["cases"]


def write(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    base = os.path.join(VECTORS, "bsmtp")
    for c in cases("bsmtp/decode.json"):
        data = as_bytes(c["input"]["batch"], base)
        write("bsmtp_decode", data)
    base = os.path.join(VECTORS, "bundle")
    for c in cases("bundle/inspect.json"):
        write("bundle_parse", as_bytes(c["input"]["bundle"], base))
    for c in cases("bundle/reassemble.json"):
        seq = b""
        for push in c["input"].get("pushes", []):
            data = as_bytes(push["bundle"], base)
            write("bundle_parse", data)
            seq += struct.pack(">H", min(len(data), 0xFFFF)) + data[:0xFFFF]
        write("bundle_reassemble", seq)
    for c in cases("bundle/verify-bib.json"):
        i = c["input"]
        mode = (1 if i.get("require") else 0) | (2 if i.get("lenient") else 0)
        write("bib_verify", bytes([mode]) + as_bytes(i["bundle"], base))
    base = os.path.join(VECTORS, "resolver")
    for c in cases("resolver/parse-answer.json"):
        resp = c["input"].get("response")
        if resp is not None:
            write("dns_answer", as_bytes(resp, base))
    # TCPCLv4: a contact header, SESS_INIT, one segment, SESS_TERM.
    contact = b"dtn!\x04\x00"
    node = b"ipn:1.0"
    sess_init = b"\x07" + struct.pack(">HQQ", 30, 1 << 20, 1 << 20) + struct.pack(">H", len(node)) + node + struct.pack(">I", 0)
    segment = b"\x01\x03" + struct.pack(">Q", 0) + struct.pack(">Q", 5) + b"hello"
    sess_term = b"\x05\x00\x00"
    write("tcpcl_message", contact + sess_init + segment + sess_term)
    write("tcpcl_passive_session", contact + sess_init + segment + sess_term)
    write("smtp_server_session",
          b"EHLO earth.example\r\nMAIL FROM:<a@earth.example> SIZE=10\r\n"
          b"RCPT TO:<b@moon.example>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nSTARTTLS\r\nQUIT\r\n")
    # Gateway configurations: the documented examples, and each test
    # configuration of the config crate (raw strings in its tests).
    for name in sorted(os.listdir(os.path.join(ROOT, "docs", "gateway"))):
        if name.endswith(".toml"):
            with open(os.path.join(ROOT, "docs", "gateway", name), "rb") as f:
                write("gateway_config", f.read())
    with open(os.path.join(ROOT, "toolkit", "gateway-config", "src", "tests.rs")) as f:
        for chunk in f.read().split('r#"')[1:]:
            write("gateway_config", chunk.split('"#')[0].encode("utf-8"))
    # Contact plans: an ION start-up file and the plans in the crate's tests.
    write("contact_plan",
          b"1 1 ''\ns\n@ 2026/12/07-00:00:00\na contact +0 +28800 1 2 250000\n"
          b"a contact +44400 +73200 1 2 250000 0.9\na range +0 +2592000 1 2 750\nm horizon +0\n")
    with open(os.path.join(ROOT, "toolkit", "contact-plan", "src", "tests.rs")) as f:
        for chunk in f.read().split('("')[1:]:
            text = chunk.split('"')[0]
            if "contact" in text or "range" in text:
                write("contact_plan", text.encode("utf-8").decode("unicode_escape").encode("utf-8"))
    write("auth_results",
          b"mx.earth.example; spf=pass smtp.mailfrom=a@earth.example; "
          b"dkim=fail (bad sig) header.d=earth.example; dmarc=fail (p=reject) header.from=earth.example")


if __name__ == "__main__":
    main()
