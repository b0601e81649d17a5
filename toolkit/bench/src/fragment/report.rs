//! The results as a table on stdout and as JSON.

use super::*;

/// The same cell measured natively, for the ratio column.
pub(super) fn native_twin<'a>(cells: &'a [Cell], c: &Cell) -> Option<&'a Measured> {
    cells
        .iter()
        .find(|n| {
            n.implementation == Impl::Native
                && n.adu_bytes == c.adu_bytes
                && n.mtu == c.mtu
                && n.crc == c.crc
        })
        .and_then(|n| n.outcome.as_ref().ok())
}

/// Plugin median time over native median time, for fragment and reassembly.
pub(super) fn ratios(cells: &[Cell], c: &Cell) -> (Option<f64>, Option<f64>) {
    if c.implementation != Impl::Plugin {
        return (None, None);
    }
    let (Ok(p), Some(n)) = (c.outcome.as_ref(), native_twin(cells, c)) else {
        return (None, None);
    };
    let fragment = p.fragment.median_ns / n.fragment.median_ns;
    let reassemble = match (&p.reassemble, &n.reassemble) {
        (Some(p), Some(n)) => Some(p.median_ns / n.median_ns),
        _ => None,
    };
    (Some(fragment), reassemble)
}

pub(super) fn render_table(
    cells: &[Cell],
    plan: &Plan,
    plugin_label: &str,
    plugin_bp_version: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fragment ADU -> BPv7 bundles <= MTU (RFC 9171 §5.8){}; median of >= {} samples and >= {} ms per cell",
        if plan.reassemble { ", then reassemble (§5.9)" } else { "" },
        plan.min_samples,
        plan.min_time.as_millis()
    );
    if plan.impls.contains(&Impl::Plugin) {
        let _ = writeln!(
            out,
            "plugin = {plugin_label}; native = deepmail-bundle in this process"
        );
        if plugin_bp_version == 6 {
            let _ = writeln!(
                out,
                "the plugin speaks BPv6 (RFC 5050 §5.8): its cells are checked with the conformance runner's BPv6 reader; \
                 BPv6 has no CRCs, so its crc16 and crc32c cells are the same work"
            );
        }
    }
    let _ = writeln!(
        out,
        "MB/s = 10^6 ADU bytes per second; overhead = (bundle bytes - ADU bytes) / ADU bytes; plugin/native = time ratio\n"
    );
    let mut header = format!(
        "{:>8} {:>6} {:<6} {:<6} {:>7} {:>8} {:>8} {:>10} {:>9} {:>10}",
        "ADU",
        "MTU",
        "CRC",
        "impl",
        "bundles",
        "overhead",
        "iters",
        "fragment",
        "MB/s",
        "bundles/s"
    );
    if plan.reassemble {
        let _ = write!(header, " {:>10} {:>9}", "reassemble", "MB/s");
    }
    if plan.impls.len() > 1 {
        let _ = write!(header, " {:>13}", "plugin/native");
        if plan.reassemble {
            let _ = write!(header, " {:>12}", "(reassemble)");
        }
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
    let mut failures = Vec::new();
    for c in cells {
        let _ = write!(
            out,
            "{:>8} {:>6} {:<6} {:<6}",
            human_bytes(c.adu_bytes),
            c.mtu,
            c.crc.name(),
            c.implementation.name()
        );
        match &c.outcome {
            Ok(m) => {
                let _ = write!(
                    out,
                    " {:>7} {:>8.4} {:>8} {:>10} {:>9.1} {:>10.0}",
                    m.bundles,
                    m.overhead(c.adu_bytes),
                    m.iterations(),
                    human_time(m.fragment.median_ns),
                    m.fragment.mb_per_s(c.adu_bytes),
                    m.bundles_per_s()
                );
                if let Some(r) = &m.reassemble {
                    let _ = write!(
                        out,
                        " {:>10} {:>9.1}",
                        human_time(r.median_ns),
                        r.mb_per_s(c.adu_bytes)
                    );
                }
                let (fragment, reassemble) = ratios(cells, c);
                if let Some(f) = fragment {
                    let _ = write!(out, " {:>12.2}x", f);
                }
                if let Some(r) = reassemble {
                    let _ = write!(out, " {:>11.2}x", r);
                }
            }
            Err(e) => {
                failures.push(format!(
                    "{} {} MTU {} {}: {e}",
                    c.implementation.name(),
                    human_bytes(c.adu_bytes),
                    c.mtu,
                    c.crc.name()
                ));
                let _ = write!(out, "  FAILED ({})", failures.len());
            }
        }
        out.push('\n');
    }
    if !failures.is_empty() {
        out.push('\n');
    }
    for (i, f) in failures.iter().enumerate() {
        let _ = writeln!(out, "FAILED ({}): {f}", i + 1);
    }
    out
}

/// What the machine is, as far as the numbers depend on it.
pub(super) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

pub(super) fn stats_json(s: Option<&Stats>, adu_bytes: u64) -> Value {
    match s {
        Some(s) => json!({
            "median_ns": s.median_ns, "min_ns": s.min_ns, "max_ns": s.max_ns,
            "mb_per_s": s.mb_per_s(adu_bytes),
        }),
        None => Value::Null,
    }
}

pub(super) fn render_json(
    cells: &[Cell],
    plan: &Plan,
    source: &str,
    plugin: Option<&Fragmenter>,
    plugin_bp_version: u64,
) -> Value {
    let cells: Vec<Value> = cells
        .iter()
        .map(|c| {
            let (fragment_ratio, reassemble_ratio) = ratios(cells, c);
            let mut v = json!({
                "impl": c.implementation.name(),
                "adu_bytes": c.adu_bytes,
                "mtu": c.mtu,
                "crc": c.crc.name(),
            });
            match &c.outcome {
                Ok(m) => {
                    v["status"] = json!("ok");
                    v["bundles"] = json!(m.bundles);
                    v["wire_bytes"] = json!(m.wire_bytes);
                    v["largest_bundle"] = json!(m.largest_bundle);
                    v["overhead"] = json!(m.overhead(c.adu_bytes));
                    v["iterations"] = json!(m.iterations());
                    v["samples"] = json!(m.samples);
                    v["calls_per_sample"] = json!(m.calls_per_sample);
                    v["fragment"] = stats_json(Some(&m.fragment), c.adu_bytes);
                    v["bundles_per_s"] = json!(m.bundles_per_s());
                    v["reassemble"] = stats_json(m.reassemble.as_ref(), c.adu_bytes);
                    v["plugin_vs_native"] = json!(fragment_ratio);
                    v["plugin_vs_native_reassemble"] = json!(reassemble_ratio);
                }
                Err(e) => {
                    v["status"] = json!("failed");
                    v["error"] = json!(e.to_string());
                }
            }
            v
        })
        .collect();
    json!({
        "benchmark": "fragment",
        "deepmail": env!("CARGO_PKG_VERSION"),
        "machine": machine(),
        "plugin": match plugin {
            Some(f) => {
                let i = f.info();
                json!({"source": i.source, "name": i.name, "version": i.version, "size_bytes": i.size_bytes, "bundle_protocol_version": plugin_bp_version})
            }
            None => json!({"source": source}),
        },
        "settings": {
            "sizes": plan.sizes, "mtus": plan.mtus,
            "crcs": plan.crcs.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "impls": plan.impls.iter().map(|i| i.name()).collect::<Vec<_>>(),
            "min_time_ms": plan.min_time.as_millis() as u64,
            "min_samples": plan.min_samples,
            "reassemble": plan.reassemble,
        },
        "overhead": "(sum of bundle bytes - ADU bytes) / ADU bytes",
        "mb_per_s": "10^6 ADU bytes per second at the median time",
        "plugin_vs_native": "plugin median time / native median time for the same cell",
        "cells": cells,
    })
}
