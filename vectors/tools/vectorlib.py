"""Shared helpers for the deepmail vector generators (stdlib only).

Writes manifests in the `deepmail-vectors/1` format described in
`vectors/README.md`: stable JSON (2-space indent, key order as built, one
trailing newline) so that regenerating gives byte-identical files.
"""

import argparse
import base64
import json
import os
import sys

FORMAT = "deepmail-vectors/1"
VECTORS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Bytes longer than this are written as base64 rather than hex.
BASE64_ABOVE = 4096


def as_text(s):
    """Bytes object for a JSON string (written as its UTF-8 encoding)."""
    return {"text": s}


def as_bytes(b, prefer_text=False):
    """Bytes object for raw bytes: text if asked and it round-trips, else hex or base64."""
    b = bytes(b)
    if prefer_text:
        try:
            s = b.decode("utf-8")
            return {"text": s}
        except UnicodeDecodeError:
            pass
    if len(b) > BASE64_ABOVE:
        return {"base64": base64.b64encode(b).decode("ascii")}
    return {"hex": b.hex()}


def repeated(unit, n):
    """Bytes object for `unit` concatenated n times."""
    return {"hex": bytes(unit).hex(), "repeat": n}


def resolve_bytes(obj, base_dir):
    """Turn a Bytes object back into bytes (used by checks and runners)."""
    keys = [k for k in ("text", "hex", "base64", "file") if k in obj]
    if len(keys) != 1:
        raise ValueError("Bytes object needs exactly one of text/hex/base64/file: %r" % (obj,))
    k = keys[0]
    if k == "text":
        b = obj["text"].encode("utf-8")
    elif k == "hex":
        b = bytes.fromhex(obj["hex"])
    elif k == "base64":
        b = base64.b64decode(obj["base64"], validate=True)
    else:
        with open(os.path.join(base_dir, obj["file"]), "rb") as f:
            b = f.read()
    return b * obj.get("repeat", 1)


class Manifest:
    """Collects the cases of one manifest and numbers their ids."""

    def __init__(self, stage, operation, title, references, generator, flag_notes, id_prefix):
        self.data = {
            "format": FORMAT,
            "stage": stage,
            "operation": operation,
            "title": title,
            "references": references,
            "generator": generator,
            "flag_notes": flag_notes,
            "cases": [],
        }
        self.id_prefix = id_prefix

    def add(self, comment, flags, references, result, input, expected=None, error=None):
        for f in flags:
            if f not in self.data["flag_notes"]:
                raise ValueError("flag %r has no flag_notes entry in %s" % (f, self.id_prefix))
        if result == "valid" and expected is None:
            raise ValueError("valid case without expected: " + comment)
        if result == "invalid" and error is None:
            raise ValueError("invalid case without error: " + comment)
        case = {
            "id": "%s-%03d" % (self.id_prefix, len(self.data["cases"]) + 1),
            "comment": comment,
            "flags": list(flags),
            "references": list(references),
            "result": result,
        }
        if error is not None:
            case["error"] = error
        case["input"] = input
        if expected is not None:
            case["expected"] = expected
        self.data["cases"].append(case)
        return case["id"]

    def counts(self):
        c = {"valid": 0, "invalid": 0, "acceptable": 0}
        for case in self.data["cases"]:
            c[case["result"]] += 1
        return c

    def write(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        text = json.dumps(self.data, indent=2, ensure_ascii=False) + "\n"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def out_dir_from_args(description):
    """`--out DIR` (default: the vectors/ directory this script lives in)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=VECTORS_DIR,
                   help="directory to write into (default: %(default)s)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    return args.out, args.quiet


def report(manifests, quiet):
    if quiet:
        return
    for rel, m in manifests:
        c = m.counts()
        print("%-28s %3d cases (valid %d, invalid %d, acceptable %d)"
              % (rel, len(m.data["cases"]), c["valid"], c["invalid"], c["acceptable"]),
              file=sys.stderr)
