#!/usr/bin/env python3
"""Print the README's benchmark tables from criterion's results.

Run the benchmarks first (one run, so ratios compare like with like):

    cargo bench -p deepmail-host --bench plugins
    cargo bench -p deepmail-bundle --bench fragment
    python3 scripts/bench-table.py

Reads target/criterion/*/*/*/new/estimates.json (mean point estimates) and
prints Markdown: plugin vs native per operation and size, and our bundle
build vs bp7's whole-bundle encode of the same payload.
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")


def mean_ns(group, bench, param):
    path = os.path.join(ROOT, group, bench, param, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"]
    except FileNotFoundError:
        return None


def size_bytes(label):
    """'1024KiB', '16MiB' or '1024KiB@64KiB' -> bytes of the payload."""
    head = label.split("@")[0]
    for unit, mult in (("KiB", 1024), ("MiB", 1024 * 1024)):
        if head.endswith(unit) and head[:-3].isdigit():
            return int(head[:-3]) * mult
    return None


def fmt_time(ns):
    if ns is None:
        return "-"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.0f} ns"


def throughput(ns, label):
    b = size_bytes(label)
    if ns is None or not b:
        return "-"
    return f"{b / (ns / 1e9) / 1e6:,.0f} MB/s"


def params(group, bench):
    d = os.path.join(ROOT, group, bench)
    if not os.path.isdir(d):
        return []
    return sorted((p for p in os.listdir(d) if p != "report"), key=lambda p: (size_bytes(p) or 0, p))


def plugin_vs_native():
    print("| operation | size | native | plugin | plugin / native | plugin throughput |")
    print("|---|---|---|---|---|---|")
    rows = 0
    for group, ops in (("codec", ("encode", "decode")), ("fragmenter", ("fragment", "reassemble"))):
        for op in ops:
            for p in params(group, f"{op}_native"):
                n = mean_ns(group, f"{op}_native", p)
                w = mean_ns(group, f"{op}_plugin", p)
                ratio = f"{w / n:.2f}x" if n and w else "-"
                print(f"| {op} | {p} | {fmt_time(n)} | {fmt_time(w)} | {ratio} | {throughput(w, p)} |")
                rows += 1
    return rows


def ours_vs_bp7():
    """deepmail-bundle's build vs bp7's whole-bundle encode (benches/fragment.rs)."""
    g = "encode_whole_bundle"
    ours_name, theirs_name = "deepmail build", "bp7 to_cbor"
    if not params(g, ours_name):
        return 0
    print()
    print("| payload | deepmail-bundle build | bp7 to_cbor | ours / bp7 |")
    print("|---|---|---|---|")
    rows = 0
    for p in params(g, ours_name):
        ours = mean_ns(g, ours_name, p)
        theirs = mean_ns(g, theirs_name, p)
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        print(f"| {p} | {fmt_time(ours)} | {fmt_time(theirs)} | {ratio} |")
        rows += 1
    return rows


if __name__ == "__main__":
    if not os.path.isdir(ROOT):
        sys.exit("no target/criterion: run the benchmarks first (see this script's doc)")
    n = plugin_vs_native() + ours_vs_bp7()
    if n == 0:
        sys.exit("no matching criterion results found")
