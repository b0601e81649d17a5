#!/usr/bin/env python3
"""Run an external implementation against the deepmail vectors (stdlib only).

Starts an adapter program speaking `deepmail-adapter/1` (vectors/README.md,
"Adapter protocol"), sends it every case of the manifests it supports and
compares its answers with the expectations:

  valid      the answer must be `ok` and its output must match `expected`
             (encode/build: byte for byte; decode: every message; inspect:
             the fields present in `expected`; reassemble: every outcome,
             `expired`, `pending_bundles`; fragment: every output bundle is at
             most `mtu` bytes - the full property check needs a BPv7 parser
             and is left to `deepmail conformance`; parse-answer: the same
             next hops as a multiset, priorities non-decreasing, `ttl` where
             `expected` has one);
  invalid    the answer must be `error` (and, if the adapter said
             `error_classes: true`, carry the case's class as `code`);
  acceptable any `ok` or `error` answer passes.

An expected-failures file (`vectors/expected-failures/NAME.json`) turns the
listed failures into XFAIL; a listed case that passes is reported as XPASS
and fails the run, so the list stays honest.

    python3 conformance/adapters/run_adapter.py --adapter "PYTHON conformance/adapters/pyd3tn_adapter.py" \
        [--expected-failures vectors/expected-failures/pyd3tn.json] [--write-failures OUT.json] \
        [-v] [MANIFEST.json ...]
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "vectors", "tools"))
import vectorlib as V  # noqa: E402

BYTES_KEYS = {"text", "hex", "base64", "file"}


def is_bytes(obj):
    return (isinstance(obj, dict) and obj and set(obj) <= BYTES_KEYS | {"repeat"}
            and len(set(obj) & BYTES_KEYS) == 1)


def normalise(value, base_dir):
    """Every Bytes object in value becomes {"hex": ...}."""
    if is_bytes(value):
        return {"hex": V.resolve_bytes(value, base_dir).hex()}
    if isinstance(value, dict):
        return {k: normalise(v, base_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, base_dir) for v in value]
    return value


def as_bytes(obj, base_dir):
    return V.resolve_bytes(obj, base_dir)


class Adapter:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, encoding="utf-8", bufsize=1)

    def ask(self, request):
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            return {"result": "crash", "reason": str(e)}
        if not line:
            return {"result": "crash", "reason": "adapter closed its output (exit %s)" % self.proc.poll()}
        try:
            return json.loads(line)
        except ValueError:
            return {"result": "crash", "reason": "not JSON: %r" % line[:200]}

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def compare_next_hops(got, want):
    """None if `got` holds the records of `want` (a multiset; ttl only where
    `want` has one) in non-decreasing priority order, else a reason. The
    order within one priority is the implementation's (RFC 2782)."""
    prios = [h["priority"] for h in got]
    if prios != sorted(prios):
        return "priorities not in ascending order: %r" % prios
    key = lambda h: (h["uri"], h["priority"], h["weight"])  # noqa: E731
    if sorted(map(key, got)) != sorted(map(key, want)):
        return "next hops differ: got %r" % [key(h) for h in got][:8]
    unmatched = list(got)
    for w in sorted(want, key=lambda h: "ttl" not in h):   # hops with a ttl claim their match first
        same = [g for g in unmatched if key(g) == key(w) and ("ttl" not in w or g.get("ttl") == w["ttl"])]
        if not same:
            return "ttl of %r: got %r, expected %r" % (
                w["uri"], [g.get("ttl") for g in unmatched if key(g) == key(w)], w["ttl"])
        unmatched.remove(same[0])
    return None


def compare(operation, case, output, base_dir, classes):
    """None if output matches the case's expectation, else a reason."""
    exp = case["expected"]
    try:
        if operation == "encode":
            got, want = as_bytes(output["batch"], base_dir), as_bytes(exp["batch"], base_dir)
            return None if got == want else "batch differs: got %r" % got[:120]
        if operation == "build":
            got, want = as_bytes(output["bundle"], base_dir), as_bytes(exp["bundle"], base_dir)
            return None if got == want else "bundle differs: got %s" % got.hex()[:120]
        if operation == "decode":
            got, want = output["messages"], exp["messages"]
            if len(got) != len(want):
                return "%d messages, expected %d" % (len(got), len(want))
            for i, (g, w) in enumerate(zip(got, want)):
                for k in ("reverse_path", "mail_parameters", "forward_paths"):
                    if g.get(k) != w[k]:
                        return "message %d %s: got %r, expected %r" % (i, k, g.get(k), w[k])
                if as_bytes(g["content"], base_dir) != as_bytes(w["content"], base_dir):
                    return "message %d content differs" % i
            return None
        if operation == "inspect":
            for k, w in exp.items():
                if output.get(k, "<absent>") != w:
                    return "%s: got %r, expected %r" % (k, output.get(k, "<absent>"), w)
            return None
        if operation == "fragment":
            mtu = case["input"]["mtu"]
            sizes = [len(as_bytes(b, base_dir)) for b in output["bundles"]]
            if not sizes:
                return "no bundles"
            if max(sizes) > mtu:
                return "a bundle of %d bytes exceeds mtu %d" % (max(sizes), mtu)
            return None
        if operation == "verify-bib":
            # Every BIB in bundle order, every field (as the Rust runner).
            if output.get("bibs") == exp["bibs"]:
                return None
            return "bibs: got %r, expected %r" % (output.get("bibs"), exp["bibs"])
        if operation == "parse-answer":
            return compare_next_hops(output["next_hops"], exp["next_hops"])
        if operation == "reassemble":
            got, want = output["outcomes"], exp["outcomes"]
            if len(got) != len(want):
                return "%d outcomes, expected %d" % (len(got), len(want))
            for i, (g, w) in enumerate(zip(got, want)):
                if g.get("status") != w["status"]:
                    return "push %d: status %r, expected %r" % (i, g.get("status"), w["status"])
                if w["status"] == "adu" and as_bytes(g["adu"], base_dir) != as_bytes(w["adu"], base_dir):
                    return "push %d: ADU differs" % i
                if w["status"] == "error" and classes and g.get("error") != w["error"]:
                    return "push %d: error %r, expected %r" % (i, g.get("error"), w["error"])
            for k in ("expired", "pending_bundles"):
                if k in exp and output.get(k) != exp[k]:
                    return "%s: got %r, expected %r" % (k, output.get(k), exp[k])
            return None
    except (KeyError, TypeError, ValueError) as e:
        return "malformed output: %s: %s" % (type(e).__name__, e)
    return "runner does not know operation %r" % operation


def judge(manifest, case, resp, classes):
    """(verdict, reason): verdict in pass / fail / skip."""
    r = resp.get("result")
    if r == "unsupported":
        return "skip", resp.get("reason", "unsupported")
    if r not in ("ok", "error"):
        return "fail", "bad answer: %s" % resp.get("reason", resp)
    result = case["result"]
    if result == "acceptable":
        return "pass", None
    if result == "invalid":
        if r == "ok":
            return "fail", "accepted; expected error %s" % case["error"]
        code = (resp.get("error") or {}).get("code")
        if classes and code != case["error"]:
            return "fail", "error class %r, expected %r" % (code, case["error"])
        return "pass", None
    if r == "error":
        err = resp.get("error") or {}
        return "fail", "refused: %s %s" % (err.get("code"), err.get("message", ""))
    why = compare(manifest["operation"], case, resp.get("output") or {}, manifest["_dir"], classes)
    return ("pass", None) if why is None else ("fail", why)


def default_manifests():
    out = []
    for d in ("bsmtp", "bundle", "resolver"):
        full = os.path.join(REPO, "vectors", d)
        out += [os.path.join(full, f) for f in sorted(os.listdir(full)) if f.endswith(".json")]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", required=True, help="command line of the adapter program")
    ap.add_argument("--expected-failures", help="expected-failures JSON file")
    ap.add_argument("--write-failures", help="write the failures seen to this JSON file")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("manifests", nargs="*")
    args = ap.parse_args()

    xfail = {}
    if args.expected_failures:
        ef = json.load(open(args.expected_failures, encoding="utf-8"))
        xfail = {x["id"]: x["reason"] for x in ef["expected_failures"]}

    adapter = Adapter(shlex.split(args.adapter))
    hello = adapter.ask({"id": "hello", "operation": "hello", "format": "deepmail-adapter/1"})
    if hello.get("result") != "ok":
        print("adapter did not answer hello: %r" % hello, file=sys.stderr)
        sys.exit(2)
    info = hello["output"]
    ops, classes = set(info.get("operations", [])), bool(info.get("error_classes"))
    versions = info.get("bundle_versions") or [7]
    print("adapter %s %s: %s (error classes: %s)" % (info.get("name"), info.get("version"),
                                                   ", ".join(sorted(ops)), classes))

    tally = {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0}
    failures = []
    for path in args.manifests or default_manifests():
        manifest = json.load(open(path, encoding="utf-8"))
        manifest["_dir"] = os.path.dirname(os.path.abspath(path))
        op = "%s.%s" % (manifest["stage"], manifest["operation"])
        for case in manifest["cases"]:
            if op not in ops or (manifest["stage"] == "fragmenter"
                                 and manifest.get("bundle_version", 7) not in versions):
                tally["skip"] += 1
                continue
            req = {"id": case["id"], "stage": manifest["stage"], "operation": manifest["operation"],
                   "input": normalise(case["input"], manifest["_dir"])}
            resp = adapter.ask(req)
            if resp.get("result") == "crash":
                print("adapter crashed at %s: %s" % (case["id"], resp.get("reason")), file=sys.stderr)
                adapter = Adapter(shlex.split(args.adapter))
                adapter.ask({"id": "hello", "operation": "hello", "format": "deepmail-adapter/1"})
            verdict, why = judge(manifest, case, resp, classes)
            if verdict == "fail":
                failures.append({"id": case["id"], "reason": why})
                if case["id"] in xfail:
                    verdict = "xfail"
            elif verdict == "pass" and case["id"] in xfail:
                verdict, why = "xpass", "listed as expected failure but passed"
            tally[verdict] += 1
            if verdict in ("fail", "xpass") or (args.verbose and verdict != "pass"):
                print("%-5s %s  %s  (%s)" % (verdict.upper(), case["id"], why or "", case["comment"]))
    adapter.close()
    if args.write_failures:
        with open(args.write_failures, "w", encoding="utf-8") as f:
            json.dump({"implementation": info.get("name"), "expected_failures": failures}, f, indent=2)
            f.write("\n")
    print("xfail %d, xpass %d, skipped %d" % (tally["xfail"], tally["xpass"], tally["skip"]))
    print("%d passed, %d failed" % (tally["pass"] + tally["xfail"], tally["fail"] + tally["xpass"]))
    sys.exit(1 if tally["fail"] or tally["xpass"] else 0)


if __name__ == "__main__":
    main()
