//! `deepmail bench fragment`: the quick grid runs for both implementations
//! with sane numbers, the JSON and SVG outputs are well formed, and bad
//! input (a size, a CRC, a plugin that is not a fragmenter) is refused with
//! an error that names it.

mod common;

use common::{fails, ok};
use serde_json::Value;

/// Runs the quick grid with JSON on stdout and returns the document.
fn quick_json(extra: &[&str]) -> Value {
    let mut args = vec!["bench", "fragment", "--quick", "--json", "-"];
    args.extend_from_slice(extra);
    let stdout = ok(&args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

#[test]
fn quick_json_has_every_cell_for_both_implementations() {
    let doc = quick_json(&[]);
    assert_eq!(doc["benchmark"], "fragment");
    assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(doc["plugin"]["source"], "builtin:bp7-fragmenter");
    let settings = &doc["settings"];
    let sizes = numbers(&settings["sizes"]);
    let mtus = numbers(&settings["mtus"]);
    let crcs: Vec<&str> = settings["crcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(!sizes.is_empty() && !mtus.is_empty() && !crcs.is_empty());
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), sizes.len() * mtus.len() * crcs.len() * 2);
    for imp in ["native", "plugin"] {
        for &size in &sizes {
            for &mtu in &mtus {
                for crc in &crcs {
                    let cell = cells
                        .iter()
                        .find(|c| {
                            c["impl"] == imp
                                && c["adu_bytes"] == size
                                && c["mtu"] == mtu
                                && c["crc"] == *crc
                        })
                        .unwrap_or_else(|| panic!("no cell {imp} {size} {mtu} {crc}"));
                    assert_eq!(cell["status"], "ok", "{cell}");
                    let bundles = cell["bundles"].as_u64().unwrap();
                    assert!(bundles >= size.div_ceil(mtu), "{cell}");
                    assert!(cell["largest_bundle"].as_u64().unwrap() <= mtu, "{cell}");
                    assert!(cell["wire_bytes"].as_u64().unwrap() > size, "{cell}");
                    let overhead = cell["overhead"].as_f64().unwrap();
                    assert!(overhead > 0.0 && overhead < 1.0, "{cell}");
                    assert!(cell["samples"].as_u64().unwrap() >= 3, "{cell}");
                    assert!(
                        cell["iterations"].as_u64().unwrap() >= cell["samples"].as_u64().unwrap(),
                        "{cell}"
                    );
                    let f = &cell["fragment"];
                    let median = f["median_ns"].as_f64().unwrap();
                    assert!(median > 0.0, "{cell}");
                    assert!(f["min_ns"].as_f64().unwrap() <= median, "{cell}");
                    assert!(f["max_ns"].as_f64().unwrap() >= median, "{cell}");
                    assert!(f["mb_per_s"].as_f64().unwrap() > 0.0, "{cell}");
                    assert!(cell["bundles_per_s"].as_f64().unwrap() > 0.0, "{cell}");
                    assert!(cell["reassemble"].is_null(), "{cell}");
                    if imp == "plugin" {
                        assert!(cell["plugin_vs_native"].as_f64().unwrap() > 0.0);
                    } else {
                        assert!(cell["plugin_vs_native"].is_null());
                    }
                }
            }
        }
    }
}

#[test]
fn reassembly_is_timed_on_request() {
    let doc = quick_json(&[
        "--reassemble",
        "--sizes",
        "3000",
        "--mtus",
        "1KiB",
        "--crcs",
        "crc16,crc32c",
    ]);
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for cell in cells {
        assert_eq!(cell["status"], "ok", "{cell}");
        assert_eq!(cell["adu_bytes"], 3000);
        assert!(cell["bundles"].as_u64().unwrap() >= 3, "{cell}");
        assert!(
            cell["reassemble"]["median_ns"].as_f64().unwrap() > 0.0,
            "{cell}"
        );
    }
}

/// Checks tags balance: every `<name ...>` is closed by `</name>` in order,
/// `<name .../>` closes itself.
fn assert_balanced(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .unwrap_or_else(|| panic!("unclosed `<` at {start}"))
            + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap().to_string();
            stack.push(name);
        }
        assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root: {rest}");
}

#[test]
fn svg_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fragment.svg");
    let table = ok(&[
        "bench",
        "fragment",
        "--quick",
        "--quiet",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert!(table.contains("plugin/native"), "{table}");
    assert!(
        table.contains("native") && table.contains("plugin"),
        "{table}"
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert_balanced(&svg);
    for needle in [
        "fragment throughput",
        "ADU size (log scale)",
        "MB/s",
        "MTU",
        "<polyline",
    ] {
        assert!(svg.contains(needle), "no {needle} in the chart");
    }
    // Text content has its `&` and `<` escaped: no stray ampersands.
    for (i, _) in svg.match_indices('&') {
        let entity = &svg[i..svg[i..].find(';').map_or(svg.len(), |e| i + e + 1)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
            "bare & at {i}"
        );
    }
}

#[test]
fn a_bad_size_is_refused_naming_the_flag() {
    let err = fails(&["bench", "fragment", "--quick", "--sizes", "1KiB,12XB"]);
    assert!(err.contains("--sizes"), "{err}");
    assert!(err.contains("12XB"), "{err}");
    let err = fails(&["bench", "fragment", "--quick", "--mtus", "0"]);
    assert!(err.contains("--mtus"), "{err}");
}

#[test]
fn a_primary_block_without_crc_is_refused() {
    let err = fails(&["bench", "fragment", "--quick", "--crcs", "none"]);
    assert!(err.contains("--crcs") && err.contains("4.3.1"), "{err}");
}

#[test]
fn a_plugin_that_is_not_a_fragmenter_is_refused() {
    let err = fails(&[
        "--plugin",
        "fragmenter=builtin:misbehaving",
        "bench",
        "fragment",
        "--quick",
    ]);
    assert!(err.contains("builtin:misbehaving"), "{err}");
    assert!(err.contains("fragmenter"), "{err}");
    assert!(err.contains("does not export"), "{err}");
}
