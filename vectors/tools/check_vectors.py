#!/usr/bin/env python3
"""Validate every manifest under vectors/ (stdlib only).

Checks, for each `*.json` manifest in vectors/bsmtp, vectors/bundle,
vectors/bundle6 and vectors/resolver:
  - it conforms to vectors/schema/vectors.schema.json (with the small
    JSON Schema 2020-12 validator below; `jsonschema` is used as well when it
    happens to be installed, never required);
  - case ids are unique across the whole suite;
  - every `invalid` case names an error class from the README's table for its
    stage, and every error outcome of a `reassemble` case does too (the
    case's `error` being the first of them);
  - every flag is explained in the manifest's flag_notes;
  - every valid `parse-answer` case lists at least one next hop, in
    non-decreasing priority order;
  - every Bytes object resolves (hex/base64 decode, files exist);
  - expected-failures files name existing case ids;
  - the schema's error-class enums equal the README table.
With --check it also regenerates everything into a temporary directory and
exits 1 if any committed file differs (drift).

    python3 vectors/tools/check_vectors.py [--check]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vectorlib as V  # noqa: E402

VECTORS = V.VECTORS_DIR
TOOLS = os.path.join(VECTORS, "tools")
MANIFEST_DIRS = ("bsmtp", "bundle", "bundle6", "resolver")

# ---------------------------------------------------------------------------
# A small JSON Schema (2020-12) validator: the keywords the schema uses.
# ---------------------------------------------------------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class MiniValidator:
    SUPPORTED = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "const", "enum",
                 "properties", "required", "additionalProperties", "items", "minItems", "minLength",
                 "minimum", "maximum", "pattern", "oneOf", "anyOf", "allOf", "not", "if", "then", "else"}

    def __init__(self, root):
        self.root = root
        self._check_keywords(root)

    def _check_keywords(self, s):
        if isinstance(s, dict):
            for k, v in s.items():
                if k in ("properties", "$defs"):
                    for sub in v.values():
                        self._check_keywords(sub)
                    continue
                if k not in self.SUPPORTED:
                    raise ValueError("schema keyword %r not supported by the mini validator" % k)
                if isinstance(v, (dict, list)) and k not in ("enum", "const", "required"):
                    self._check_keywords(v)
        elif isinstance(s, list):
            for x in s:
                self._check_keywords(x)

    def _resolve(self, ref):
        if not ref.startswith("#/"):
            raise ValueError("only local $ref supported: " + ref)
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def errors(self, value, schema=None, path="$"):
        """Yield (path, message) for every violation."""
        s = self.root if schema is None else schema
        if s is True or s == {}:
            return
        if s is False:
            yield path, "no value allowed here"
            return
        if "$ref" in s:
            yield from self.errors(value, self._resolve(s["$ref"]), path)
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not any(_TYPES[t](value) for t in types):
                yield path, "expected type %s, got %s" % ("/".join(types), type(value).__name__)
                return
        if "const" in s and not _same(value, s["const"]):
            yield path, "expected %r" % (s["const"],)
        if "enum" in s and not any(_same(value, e) for e in s["enum"]):
            yield path, "%r is not one of %s" % (value, s["enum"])
        if isinstance(value, str):
            if "minLength" in s and len(value) < s["minLength"]:
                yield path, "shorter than %d" % s["minLength"]
            if "pattern" in s and not re.search(s["pattern"], value):
                yield path, "does not match %s" % s["pattern"]
        if _TYPES["number"](value):
            if "minimum" in s and value < s["minimum"]:
                yield path, "below minimum %s" % s["minimum"]
            if "maximum" in s and value > s["maximum"]:
                yield path, "above maximum %s" % s["maximum"]
        if isinstance(value, dict):
            for k in s.get("required", []):
                if k not in value:
                    yield path, "missing required %r" % k
            props = s.get("properties", {})
            for k, v in value.items():
                if k in props:
                    yield from self.errors(v, props[k], "%s.%s" % (path, k))
                elif "additionalProperties" in s:
                    yield from self.errors(v, s["additionalProperties"], "%s.%s" % (path, k))
        if isinstance(value, list):
            if "minItems" in s and len(value) < s["minItems"]:
                yield path, "fewer than %d items" % s["minItems"]
            if "items" in s:
                for i, v in enumerate(value):
                    yield from self.errors(v, s["items"], "%s[%d]" % (path, i))
        for sub in s.get("allOf", []):
            yield from self.errors(value, sub, path)
        if "anyOf" in s and not any(self.valid(value, sub) for sub in s["anyOf"]):
            yield path, "matches none of anyOf"
        if "oneOf" in s:
            n = sum(1 for sub in s["oneOf"] if self.valid(value, sub))
            if n != 1:
                yield path, "matches %d of oneOf (need exactly 1)" % n
        if "not" in s and self.valid(value, s["not"]):
            yield path, "matches a schema it must not"
        if "if" in s:
            if self.valid(value, s["if"]):
                if "then" in s:
                    yield from self.errors(value, s["then"], path)
            elif "else" in s:
                yield from self.errors(value, s["else"], path)

    def valid(self, value, schema):
        for _ in self.errors(value, schema):
            return False
        return True


def _same(a, b):
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b

# ---------------------------------------------------------------------------
# Suite checks
# ---------------------------------------------------------------------------


def readme_error_classes():
    """{stage: set(classes)} from the README's 'Error classes' table."""
    text = open(os.path.join(VECTORS, "README.md"), encoding="utf-8").read()
    section = text.split("## Error classes", 1)[1].split("\n## ", 1)[0]
    classes = {"codec": set(), "fragmenter": set(), "resolver": set()}
    for m in re.finditer(r"^\|\s*(codec|fragmenter|resolver)\s*\|\s*`([a-z0-9-]+)`\s*\|", section, re.M):
        classes[m.group(1)].add(m.group(2))
    return {"bsmtp-codec": classes["codec"], "fragmenter": classes["fragmenter"],
            "resolver": classes["resolver"]}


def manifest_paths(root):
    out = []
    for d in MANIFEST_DIRS:
        full = os.path.join(root, d)
        if os.path.isdir(full):
            out += [os.path.join(full, f) for f in sorted(os.listdir(full)) if f.endswith(".json")]
    return out


def walk_bytes(value, path, expect_bytes_keys=("adu", "bundle", "batch", "content", "response", "key")):
    """Yield (path, Bytes object) for every Bytes in a case's input/expected."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in expect_bytes_keys and isinstance(v, dict):
                yield "%s.%s" % (path, k), v
            elif k == "bundles" and isinstance(v, list):
                for i, b in enumerate(v):
                    yield "%s.%s[%d]" % (path, k, i), b
            else:
                yield from walk_bytes(v, "%s.%s" % (path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_bytes(v, "%s[%d]" % (path, i))


def check_suite(root=VECTORS):
    problems = []
    schema = json.load(open(os.path.join(root, "schema", "vectors.schema.json"), encoding="utf-8"))
    validator = MiniValidator(schema)
    try:
        import jsonschema  # type: ignore
        external = jsonschema.Draft202012Validator(schema)
    except Exception:
        external = None
    classes = readme_error_classes()
    for stage, key in (("bsmtp-codec", "codecError"), ("fragmenter", "fragmenterError"),
                       ("resolver", "resolverError")):
        if set(schema["$defs"][key]["enum"]) != classes[stage]:
            problems.append("schema $defs.%s differs from the README table: %s"
                            % (key, sorted(set(schema["$defs"][key]["enum"]) ^ classes[stage])))
    ids, counts = {}, {}
    paths = manifest_paths(root)
    if not paths:
        problems.append("no manifests found")
    for p in paths:
        rel = os.path.relpath(p, root)
        try:
            data = json.load(open(p, encoding="utf-8"))
        except ValueError as e:
            problems.append("%s: not JSON: %s" % (rel, e))
            continue
        for where, msg in validator.errors(data):
            problems.append("%s: %s: %s" % (rel, where, msg))
        if external is not None:
            for e in external.iter_errors(data):
                problems.append("%s: jsonschema: %s: %s" % (rel, "/".join(map(str, e.path)), e.message))
        stage_classes = classes.get(data.get("stage"), set())
        c = counts.setdefault(rel, {"valid": 0, "invalid": 0, "acceptable": 0})
        for case in data.get("cases", []):
            cid = case.get("id")
            if cid in ids:
                problems.append("%s: duplicate id %s (also in %s)" % (rel, cid, ids[cid]))
            ids[cid] = rel
            c[case.get("result", "?")] = c.get(case.get("result", "?"), 0) + 1
            if case.get("result") == "invalid" and case.get("error") not in stage_classes:
                problems.append("%s: %s: error %r is not a %s class in the README"
                                % (rel, cid, case.get("error"), data.get("stage")))
            for f in case.get("flags", []):
                if f not in data.get("flag_notes", {}):
                    problems.append("%s: %s: flag %r not in flag_notes" % (rel, cid, f))
            if data.get("operation") == "reassemble" and "expected" in case:
                errs = [o.get("error") for o in case["expected"].get("outcomes", []) if o.get("status") == "error"]
                for e in errs:
                    if e not in stage_classes:
                        problems.append("%s: %s: outcome error %r not a README class" % (rel, cid, e))
                if errs and (case.get("result") != "invalid" or case.get("error") != errs[0]):
                    problems.append("%s: %s: has failing pushes, so result must be invalid with error %r"
                                    % (rel, cid, errs[0]))
                if not errs and case.get("result") == "invalid":
                    problems.append("%s: %s: invalid but no push fails" % (rel, cid))
            if data.get("operation") == "parse-answer" and "expected" in case:
                prios = [h.get("priority") for h in case["expected"].get("next_hops", [])]
                if not prios:
                    problems.append("%s: %s: valid parse-answer case without next_hops" % (rel, cid))
                if prios != sorted(prios):
                    problems.append("%s: %s: next_hops not in priority order" % (rel, cid))
            for where, b in walk_bytes({"input": case.get("input"), "expected": case.get("expected")}, cid):
                try:
                    V.resolve_bytes(b, os.path.dirname(p))
                except Exception as e:  # noqa: BLE001
                    problems.append("%s: %s: bad Bytes: %s" % (rel, where, e))
    ef_dir = os.path.join(root, "expected-failures")
    if os.path.isdir(ef_dir):
        for f in sorted(os.listdir(ef_dir)):
            if not f.endswith(".json"):
                continue
            ef = json.load(open(os.path.join(ef_dir, f), encoding="utf-8"))
            for item in ef.get("expected_failures", []):
                if item.get("id") not in ids:
                    problems.append("expected-failures/%s: unknown case id %r" % (f, item.get("id")))
                if not item.get("reason"):
                    problems.append("expected-failures/%s: %s has no reason" % (f, item.get("id")))
    return problems, counts


def check_drift():
    """Regenerate into a temp dir; list files that differ from the committed ones."""
    tmp = tempfile.mkdtemp(prefix="deepmail-vectors-")
    try:
        shutil.copy(os.path.join(VECTORS, "README.md"), os.path.join(tmp, "README.md"))
        subprocess.run([sys.executable, os.path.join(TOOLS, "gen_all.py"), "--out", tmp, "--quiet"], check=True)
        drift = []
        for d in MANIFEST_DIRS:
            fresh_root, old_root = os.path.join(tmp, d), os.path.join(VECTORS, d)
            fresh = {os.path.relpath(os.path.join(dp, f), fresh_root)
                     for dp, _, fs in os.walk(fresh_root) for f in fs}
            old = {os.path.relpath(os.path.join(dp, f), old_root)
                   for dp, _, fs in os.walk(old_root) for f in fs} if os.path.isdir(old_root) else set()
            for rel in sorted(fresh | old):
                a, b = os.path.join(fresh_root, rel), os.path.join(old_root, rel)
                if rel not in old:
                    drift.append("%s/%s: missing (generator writes it)" % (d, rel))
                elif rel not in fresh:
                    drift.append("%s/%s: not written by any generator" % (d, rel))
                elif open(a, "rb").read() != open(b, "rb").read():
                    drift.append("%s/%s: differs from a fresh generation" % (d, rel))
        return drift
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="Validate the deepmail conformance vectors.")
    ap.add_argument("--check", action="store_true", help="also fail if regenerating changes any file")
    args = ap.parse_args()
    problems, counts = check_suite()
    total = {"valid": 0, "invalid": 0, "acceptable": 0}
    for rel, c in sorted(counts.items()):
        print("%-26s valid %3d  invalid %3d  acceptable %3d" % (rel, c["valid"], c["invalid"], c["acceptable"]))
        for k in total:
            total[k] += c.get(k, 0)
    print("%-26s valid %3d  invalid %3d  acceptable %3d" % ("total", total["valid"], total["invalid"], total["acceptable"]))
    if args.check:
        drift = check_drift()
        problems += ["drift: " + d for d in drift]
    for p in problems:
        print("FAIL " + p, file=sys.stderr)
    n_cases = sum(total.values())
    if problems:
        print("%d passed, %d failed" % (n_cases, len(problems)))
        sys.exit(1)
    print("%d passed, 0 failed" % n_cases)


if __name__ == "__main__":
    main()
