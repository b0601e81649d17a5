#!/usr/bin/env python3
"""deepmail-adapter/1 adapter for pyD3TN's BPv7 parser (`pyd3tn.bundle7`).

Speaks the line protocol of vectors/README.md ("Adapter protocol") on
stdin/stdout and implements one operation, `fragmenter.inspect`:

  1. `pyd3tn.bundle7.Bundle.parse(data)` (cbor2 decoding, field checks,
     `BlockType(...)` on every extension block, the `Bundle` constructor's
     checks for duplicate block numbers / repeated extension block types and
     for a Bundle Age block when the creation time is 0);
  2. pyD3TN does not verify CRCs while parsing, but exposes them: every block
     whose CRC type is not 0 has `crc_provided` compared with pyD3TN's own
     `calculate_crc()`;
  3. the parsed objects are mapped to the snake_case `bundle-info` fields.

pyD3TN raises plain exceptions, so errors are reported without the README's
classes (`error_classes: false`). Every other operation answers
`unsupported`. Run it with the interpreter of the venv that
`setup-pyd3tn.sh` creates.
"""

import json
import sys

try:
    import pyd3tn
    from pyd3tn import bundle7
    IMPORT_ERROR = None
except Exception as e:  # noqa: BLE001 - report, don't crash
    IMPORT_ERROR = e

FORMAT = "deepmail-adapter/1"
CRC_NAMES = {0: "none", 1: "crc16", 2: "crc32c"}


def pyd3tn_version():
    try:
        from importlib.metadata import version
        return version("pyD3TN")
    except Exception:  # noqa: BLE001
        return getattr(pyd3tn, "__version__", "unknown")


def block_info(block):
    return {
        "block_type": int(block.block_type),
        "block_number": int(block.block_number),
        "flags": int(block.block_proc_flags),
        "crc": CRC_NAMES[int(block.crc_type)],
        "data_length": len(block.data),
    }


def inspect(data):
    bundle = bundle7.Bundle.parse(data)
    for block in bundle:
        if int(block.crc_type) != 0 and block.calculate_crc() != block.crc_provided:
            raise ValueError("CRC mismatch in block %s" % block.block_number)
    p = bundle.primary_block
    flags = int(p.bundle_proc_flags)
    fragment = bool(flags & 0x01)
    return {
        "version": int(p.version),
        "flags": flags,
        "is_fragment": fragment,
        "must_not_fragment": bool(flags & 0x04),
        "crc": CRC_NAMES[int(p.crc_type)],
        "destination": str(p.destination),
        "source": str(p.source),
        "report_to": str(p.report_to),
        "creation_time": int(p.creation_time[0]),
        "sequence_number": int(p.creation_time[1]),
        "lifetime_ms": int(p.lifetime),
        "fragment_offset": int(p.fragment_offset) if fragment else None,
        "total_adu_length": int(p.total_payload_length) if fragment else None,
        "payload_length": len(bundle.payload_block.data),
        "blocks": [block_info(b) for b in list(bundle.blocks) + [bundle.payload_block]],
    }


def handle(req):
    rid = req.get("id")
    op = req.get("operation")
    if op == "hello":
        return {"id": rid, "result": "ok", "output": {
            "name": "pyd3tn",
            "version": pyd3tn_version() if IMPORT_ERROR is None else "unavailable",
            "operations": ["fragmenter.inspect"] if IMPORT_ERROR is None else [],
            "error_classes": False,
        }}
    if (req.get("stage"), op) != ("fragmenter", "inspect"):
        return {"id": rid, "result": "unsupported", "reason": "pyD3TN adapter implements fragmenter.inspect only"}
    if IMPORT_ERROR is not None:
        return {"id": rid, "result": "unsupported", "reason": "pyd3tn not importable: %s" % IMPORT_ERROR}
    try:
        data = bytes.fromhex(req["input"]["bundle"]["hex"])
    except Exception as e:  # noqa: BLE001
        return {"id": rid, "result": "error", "error": {"code": "bad-request", "message": str(e)}}
    try:
        return {"id": rid, "result": "ok", "output": inspect(data)}
    except Exception as e:  # noqa: BLE001 - any pyD3TN exception is a refusal
        return {"id": rid, "result": "error",
                "error": {"code": "pyd3tn-error", "message": "%s: %s" % (type(e).__name__, e)}}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            resp = handle(req)
        except Exception as e:  # noqa: BLE001
            resp = {"id": None, "result": "error", "error": {"code": "bad-request", "message": str(e)}}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
