#!/usr/bin/env python3
"""Print the README's benchmark tables from criterion's results.

Run the benchmarks first (one run, so ratios compare like with like):

    cargo bench -p deepmail-host --bench plugins
    cargo bench -p deepmail-bundle --bench fragment
    cargo bench -p deepmail-gateway --bench transport
    python3 scripts/bench-table.py

Reads target/criterion/*/*/*/new/estimates.json (mean point estimates) and
prints Markdown: plugin vs native per operation and size, our bundle build
vs bp7's whole-bundle encode of the same payload, and the sender plugins vs
native clients over HTTPS and HTTP/3 (one new connection per request).
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


def bench_bytes(group, bench, param):
    """The Throughput::Bytes criterion recorded for a benchmark."""
    path = os.path.join(ROOT, group, bench, param, "new", "benchmark.json")
    try:
        with open(path) as f:
            return json.load(f)["throughput"]["Bytes"]
    except (FileNotFoundError, KeyError, TypeError):
        return None


def rate(ns, nbytes, label):
    """req/s for the small batch, MB/s for the large one."""
    if ns is None:
        return "-"
    if label.startswith("1KiB"):
        return f"{1e9 / ns:,.0f} req/s"
    if nbytes:
        return f"{nbytes / (ns / 1e9) / 1e6:,.0f} MB/s"
    return "-"


def transport():
    """Sender plugins vs native clients (toolkit/gateway/benches/transport.rs)."""
    groups = (("HTTPS (HTTP/2)", "transport_https"), ("HTTP/3", "transport_h3"))
    if not any(params(g, "native") for _, g in groups):
        return 0
    print()
    print("| transport | batch | native | plugin | plugin / native | native rate | plugin rate |")
    print("|---|---|---|---|---|---|---|")
    rows = 0
    for name, g in groups:
        for p in params(g, "native"):
            n = mean_ns(g, "native", p)
            w = mean_ns(g, "plugin", p)
            nb = bench_bytes(g, "native", p)
            ratio = f"{w / n:.2f}x" if n and w else "-"
            print(f"| {name} | {p} | {fmt_time(n)} | {fmt_time(w)} | {ratio} | {rate(n, nb, p)} | {rate(w, nb, p)} |")
            rows += 1
    detail = [(name, g + "-detail") for name, g in groups]
    if any(os.path.isdir(os.path.join(ROOT, g)) for _, g in detail):
        print()
        print("| transport | native variant | batch | time | rate |")
        print("|---|---|---|---|---|")
        for name, g in detail:
            d = os.path.join(ROOT, g)
            for bench in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if bench == "report":
                    continue
                for p in params(g, bench):
                    t = mean_ns(g, bench, p)
                    print(f"| {name} | {bench} | {p} | {fmt_time(t)} | {rate(t, bench_bytes(g, bench, p), p)} |")
                    rows += 1
    return rows


if __name__ == "__main__":
    if not os.path.isdir(ROOT):
        sys.exit("no target/criterion: run the benchmarks first (see this script's doc)")
    n = plugin_vs_native() + ours_vs_bp7() + transport()
    if n == 0:
        sys.exit("no matching criterion results found")
