#!/usr/bin/env python3
"""The interop matrix: every implementation the project can run, against
every manifest of the conformance suite (stdlib only).

    python3 conformance/matrix.py [--deepmail PATH] [--markdown OUT.md]
        [--json OUT.json] [--update-docs | --check-docs] [--require-all]

Implementations (each skipped, and said so, when not installed):

  deepmail      the default plugins, `deepmail conformance --json`
  pyD3TN        conformance/adapters/pyd3tn_adapter.py (setup-pyd3tn.sh)
  dnspython     conformance/adapters/dnspython_adapter.py (setup-dnspython.sh)
  Exim          conformance/adapters/exim_adapter.py, the system's exim4
                (scripts/peers/install-exim.sh)
  bp7, hardy-bpv7  conformance/adapters/rust-bp (setup-rust-bp.sh)
  Python codec  plugins-py/bsmtp-codec, a component built by componentize-py
                (plugins-py/build.sh), run as `--plugin codec=...`
  JS fragmenter plugins-js/fragmenter, a component built by jco
                (plugins-js/build.sh), run as `--plugin fragmenter=...`
  BPv6          plugins-standalone/bp6-fragmenter (scripts/bp6/build.sh), run
                as `--plugin fragmenter=...`: the vectors/bundle6 manifests

Each adapter runs through `deepmail conformance --adapter CMD
--expected-failures vectors/expected-failures/NAME.json --json`, so the
verdicts are the Rust runner's. A cell is `pass/total` over the cases the
implementation supports, `+N xfail` for listed departures, `N FAIL` for
unlisted ones, and `-` when it implements none of the manifest's
operation. Below the table, every listed departure with its reason (each
cites the RFC clause). `--update-docs` rewrites the block between the
`interop-matrix` markers in README.md and docs/INTEROP.md.
`--check-docs` fails when that block is not what the matrix is now (the
CLI test `the_published_interop_matrix_is_current` runs it; with an
implementation missing it says so and checks nothing, unless
`--require-all`). `--require-all` fails when an implementation is missing
(CI).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "conformance", "adapters"))
from exim_adapter import find_exim  # noqa: E402 - Exim as its adapter finds it
BEGIN = "<!-- interop-matrix:begin (python3 conformance/matrix.py --update-docs) -->"
END = "<!-- interop-matrix:end -->"


def sh(*args, env=None):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env)


def venv_python(venv_dir):
    py = os.path.join(REPO, "target", venv_dir, "bin", "python")
    return py if os.path.exists(py) else None


def rust_adapters():
    """bp7-adapter and hardy-bpv7-adapter paths from the cache (no build)."""
    script = os.path.join(REPO, "conformance", "adapters", "setup-rust-bp.sh")
    if not os.path.exists(script):
        return {}
    env = dict(os.environ, DEEPMAIL_RUST_BP_NO_BUILD="1")
    out = sh("bash", script, env=env)
    found = {}
    for line in out.stdout.splitlines():
        name, _, path = line.partition("=")
        if path and os.path.exists(path):
            found[name] = path
    return found


def implementations():
    """(label, adapter command or None for our plugins, expected-failures
    file or None, why missing or None)."""
    items = [("deepmail (plugins)", None, None, None)]
    py = venv_python("pyd3tn-venv")
    items.append(("pyD3TN 0.15.2",
                  py and "%s %s" % (py, os.path.join(REPO, "conformance/adapters/pyd3tn_adapter.py")),
                  "vectors/expected-failures/pyd3tn.json",
                  None if py else "bash conformance/adapters/setup-pyd3tn.sh"))
    py = venv_python("dnspython-venv")
    items.append(("dnspython 2.9.2",
                  py and "%s %s" % (py, os.path.join(REPO, "conformance/adapters/dnspython_adapter.py")),
                  "vectors/expected-failures/dnspython.json",
                  None if py else "bash conformance/adapters/setup-dnspython.sh"))
    exim = find_exim()
    items.append(("Exim 4.96",
                  exim and "%s %s" % (sys.executable, os.path.join(REPO, "conformance/adapters/exim_adapter.py")),
                  "vectors/expected-failures/exim.json",
                  None if exim else "bash scripts/peers/install-exim.sh"))
    wasm = os.path.join(REPO, "target", "python-plugins", "bsmtp-codec.wasm")
    items.append(("Python codec (componentize-py)",
                  ["--plugin", "codec=" + wasm, "--stage", "codec"] if os.path.exists(wasm) else None,
                  "vectors/expected-failures/python-codec.json",
                  None if os.path.exists(wasm) else "bash plugins-py/build.sh"))
    wasm = os.path.join(REPO, "target", "js-plugins", "fragmenter.wasm")
    items.append(("JavaScript fragmenter (jco)",
                  ["--plugin", "fragmenter=" + wasm, "--stage", "fragmenter"] if os.path.exists(wasm) else None,
                  "vectors/expected-failures/js-fragmenter.json",
                  None if os.path.exists(wasm) else "bash plugins-js/build.sh"))
    wasm = os.path.join(REPO, "plugins-standalone", "bp6-fragmenter", "target", "wasm32-wasip2",
                        "release", "deepmail_plugin_bp6_fragmenter.wasm")
    items.append(("deepmail BPv6 fragmenter (RFC 5050)",
                  ["--plugin", "fragmenter=" + wasm, "--stage", "fragmenter"] if os.path.exists(wasm) else None,
                  None,
                  None if os.path.exists(wasm) else "bash scripts/bp6/build.sh"))
    rust = rust_adapters()
    for name, label, xf in [("bp7-adapter", "bp7 0.12", "bp7.json"),
                            ("hardy-bpv7-adapter", "hardy-bpv7 0.6", "hardy-bpv7.json")]:
        items.append((label, rust.get(name), "vectors/expected-failures/" + xf,
                      None if name in rust else "bash conformance/adapters/setup-rust-bp.sh"))
    return items


def run(deepmail, adapter, xfail):
    cmd = [deepmail, "conformance", "--vectors", os.path.join(REPO, "vectors"), "--json"]
    if isinstance(adapter, list):
        cmd += adapter  # a plugin: --plugin STAGE=WASM --stage STAGE
    elif adapter:
        cmd += ["--adapter", adapter]
    if xfail and os.path.exists(os.path.join(REPO, xfail)):
        cmd += ["--expected-failures", os.path.join(REPO, xfail)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    try:
        return json.loads(out.stdout)
    except ValueError:
        sys.exit("matrix: %s gave no JSON report:\n%s" % (" ".join(cmd), out.stderr[-2000:]))


def cell(cases):
    counted = [c for c in cases if c["status"] != "unsupported"]
    if not counted:
        return "-"
    n = lambda s: sum(1 for c in counted if c["status"] == s)  # noqa: E731
    text = "%d/%d" % (n("pass"), len(counted))
    if n("expected-failure"):
        text += " +%d xfail" % n("expected-failure")
    bad = n("fail") + n("unexpected-pass")
    if bad:
        text += " **%d FAIL**" % bad
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deepmail", default=None, help="the deepmail binary (default: target/release, else target/debug)")
    ap.add_argument("--markdown", help="write the matrix as Markdown to this file")
    ap.add_argument("--json", help="write every report as JSON to this file")
    ap.add_argument("--update-docs", action="store_true", help="rewrite the matrix block in README.md and docs/INTEROP.md")
    ap.add_argument("--check-docs", action="store_true",
                    help="fail when the matrix block in README.md or docs/INTEROP.md is not current")
    ap.add_argument("--require-all", action="store_true", help="fail when an implementation is not installed")
    args = ap.parse_args()
    deepmail = args.deepmail
    if not deepmail:
        for d in ("release", "debug"):
            p = os.path.join(REPO, "target", d, "deepmail")
            if os.path.exists(p):
                deepmail = p
                break
        else:
            deepmail = shutil.which("deepmail") or sys.exit("matrix: build deepmail first (cargo build -p deepmail)")
    reports, missing = [], []
    for label, adapter, xfail, why in implementations():
        if why:
            missing.append((label, why))
            continue
        print("matrix: %s ..." % label, file=sys.stderr)
        reports.append((label, xfail, run(deepmail, adapter, xfail)))
    manifests = []
    for _, _, r in reports:
        for c in r["cases"]:
            if c["manifest"] not in manifests:
                manifests.append(c["manifest"])
    lines = ["| implementation | " + " | ".join("`%s`" % m for m in manifests) + " |",
             "|---|" + "---|" * len(manifests)]
    for label, _, r in reports:
        row = [cell([c for c in r["cases"] if c["manifest"] == m]) for m in manifests]
        lines.append("| %s | %s |" % (label, " | ".join(row)))
    lines.append("")
    lines.append("`pass/total` over the cases of the operations an implementation supports; "
                 "`xfail`: listed departures (below, each with the RFC clause); `-`: not implemented.")
    for label, why in missing:
        lines.append("")
        lines.append("Not run: %s (install: `%s`)." % (label, why))
    departures = []
    for label, xfail, r in reports:
        if not xfail or not os.path.exists(os.path.join(REPO, xfail)):
            continue
        listed = {e["id"]: e["reason"] for e in json.load(open(os.path.join(REPO, xfail)))["expected_failures"]}
        hit = [c["id"] for c in r["cases"] if c["status"] == "expected-failure"]
        if hit:
            departures.append("")
            departures.append("**%s** (`%s`):" % (label, xfail))
            departures.append("")
            for i in hit:
                departures.append("- `%s`: %s" % (i, listed.get(i, "")))
    if departures:
        lines.append("")
        lines.append("Departures:")
        lines += departures
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        open(args.markdown, "w").write(table)
    if args.json:
        json.dump({label: r for label, _, r in reports}, open(args.json, "w"), indent=1)
    if args.update_docs:
        for doc in ("README.md", "docs/INTEROP.md"):
            path = os.path.join(REPO, doc)
            text = open(path).read()
            if BEGIN not in text or END not in text:
                sys.exit("matrix: %s has no interop-matrix markers" % doc)
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            open(path, "w").write(head + BEGIN + "\n" + table + END + tail)
    if args.check_docs:
        if missing and not args.require_all:
            print("matrix: docs not checked: not installed: %s" % ", ".join(l for l, _ in missing),
                  file=sys.stderr)
        else:
            for doc in ("README.md", "docs/INTEROP.md"):
                text = open(os.path.join(REPO, doc)).read()
                if BEGIN + "\n" + table + END not in text:
                    sys.exit("matrix: the interop matrix in %s is not what the implementations give now; "
                             "run python3 conformance/matrix.py --update-docs (and look at the diff)" % doc)
    failed = [label for label, _, r in reports
              if r["summary"]["failed"] or r["summary"]["unexpected_passes"]]
    if failed:
        sys.exit("matrix: unexpected failures in %s" % ", ".join(failed))
    if args.require_all and missing:
        sys.exit("matrix: not installed: %s" % ", ".join(l for l, _ in missing))


if __name__ == "__main__":
    main()
