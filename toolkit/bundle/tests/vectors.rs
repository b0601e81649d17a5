//! Runs the language-neutral conformance vectors of `vectors/bundle/`
//! (build, inspect, fragment, reassemble) against this crate's native API.
//! `acceptable` cases only have to not panic.

use std::path::PathBuf;

use base64::Engine;
use deepmail_bundle::{
    build, fragment, fragment_adu, inspect, Bundle, BundleError, BundleInfo, BundleSpec, CrcType,
    Reassembler, ReassemblyLimits,
};
use serde_json::{json, Value};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors/bundle")
}

fn bytes(v: &Value) -> Vec<u8> {
    let one = if let Some(h) = v.get("hex") {
        hex::decode(h.as_str().unwrap()).unwrap()
    } else if let Some(t) = v.get("text") {
        t.as_str().unwrap().as_bytes().to_vec()
    } else if let Some(b) = v.get("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(b.as_str().unwrap())
            .unwrap()
    } else if let Some(f) = v.get("file") {
        std::fs::read(vectors_dir().join(f.as_str().unwrap())).unwrap()
    } else {
        panic!("bad Bytes {v}")
    };
    let n = v.get("repeat").and_then(Value::as_u64).unwrap_or(1) as usize;
    one.repeat(n)
}

fn crc(v: &Value) -> CrcType {
    match v.as_str().unwrap() {
        "none" => CrcType::None,
        "crc16" => CrcType::Crc16,
        "crc32c" => CrcType::Crc32c,
        other => panic!("crc {other}"),
    }
}

fn crc_name(c: CrcType) -> &'static str {
    match c {
        CrcType::None => "none",
        CrcType::Crc16 => "crc16",
        CrcType::Crc32c => "crc32c",
    }
}

/// A spec; `Err` when an EID string does not parse (that is `invalid-spec`).
fn spec(v: &Value) -> Result<BundleSpec, BundleError> {
    let eid = |k: &str| {
        v[k].as_str()
            .unwrap()
            .parse()
            .map_err(|e: BundleError| BundleError {
                kind: deepmail_bundle::ErrorKind::InvalidSpec,
                ..e
            })
    };
    Ok(BundleSpec {
        source: eid("source")?,
        destination: eid("destination")?,
        report_to: eid("report_to")?,
        creation_time: v["creation_time"].as_u64().unwrap(),
        sequence_number: v["sequence_number"].as_u64().unwrap(),
        lifetime_ms: v["lifetime_ms"].as_u64().unwrap(),
        crc: crc(&v["crc"]),
        block_crc: crc(&v["block_crc"]),
        must_not_fragment: v["must_not_fragment"].as_bool().unwrap(),
    })
}

fn info_json(i: &BundleInfo) -> Value {
    json!({
        "version": i.version, "flags": i.flags, "is_fragment": i.is_fragment,
        "must_not_fragment": i.must_not_fragment, "crc": crc_name(i.crc),
        "destination": i.destination.to_string(), "source": i.source.to_string(),
        "report_to": i.report_to.to_string(), "creation_time": i.creation_time,
        "sequence_number": i.sequence_number, "lifetime_ms": i.lifetime_ms,
        "fragment_offset": i.fragment_offset, "total_adu_length": i.total_adu_length,
        "payload_length": i.payload_length,
        "blocks": i.blocks.iter().map(|b| json!({
            "block_type": b.block_type, "block_number": b.block_number, "flags": b.flags,
            "crc": crc_name(b.crc), "data_length": b.data_length})).collect::<Vec<_>>(),
    })
}

/// `verify-bib`: the BIBs found, as the vectors spell them.
fn verify_bib(input: &Value) -> Result<Value, BundleError> {
    let lenient = input["lenient"].as_bool().unwrap_or(false);
    let options = deepmail_bundle::ParseOptions {
        allow_missing_primary_crc: lenient,
        allow_missing_bundle_age: lenient,
    };
    let bytes = bytes(&input["bundle"]);
    let bundle = deepmail_bundle::Bundle::parse_with_options(&bytes, &options)?;
    let keys: Vec<deepmail_bundle::BibKey> = input["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| deepmail_bundle::BibKey {
            source: k["source"].as_str().unwrap().parse().unwrap(),
            key: self::bytes(&k["key"]),
        })
        .collect();
    let checks = deepmail_bundle::verify_bibs(&bundle, &keys, input["require"].as_bool().unwrap())?;
    Ok(json!({"bibs": checks.iter().map(|c| json!({
        "block_number": c.block_number,
        "source": c.source.to_string(),
        "targets": c.targets,
        "variant": c.variant.map(|v| v.name()),
        "scope": c.scope,
        "verified": c.verified,
    })).collect::<Vec<_>>()}))
}

/// Checks one case; `Err` describes a mismatch.
fn run(op: &str, case: &Value) -> Result<(), String> {
    let input = &case["input"];
    let expected = &case["expected"];
    let want_error = case["result"] == "invalid";
    let outcome: Result<Value, BundleError> = match op {
        "build" => spec(&input["spec"])
            .and_then(|s| build(&bytes(&input["adu"]), &s))
            .map(|b| json!(hex::encode(b))),
        "inspect" => inspect(&bytes(&input["bundle"])).map(|i| info_json(&i)),
        "fragment" => {
            let mtu = input["mtu"].as_u64().unwrap() as usize;
            let r = if input.get("bundle").is_some() {
                fragment(&bytes(&input["bundle"]), mtu)
            } else {
                spec(&input["spec"]).and_then(|s| fragment_adu(&bytes(&input["adu"]), &s, mtu))
            };
            r.map(|v| json!(v.iter().map(hex::encode).collect::<Vec<_>>()))
        }
        "reassemble" => return reassemble(case),
        "verify-bib" => verify_bib(input),
        _ => return Err(format!("unknown operation {op}")),
    };
    if case["result"] == "acceptable" {
        return Ok(());
    }
    let got = match (outcome, want_error) {
        (Err(e), true) => {
            let code = case["error"].as_str().unwrap();
            return if e.code() == code {
                Ok(())
            } else {
                Err(format!("want {code}, got {e}"))
            };
        }
        (Ok(v), true) => return Err(format!("want error {}, got {v}", case["error"])),
        (Err(e), false) => return Err(format!("unexpected error: {e}")),
        (Ok(v), false) => v,
    };
    match op {
        "verify-bib" if &got != expected => {
            return Err(format!("got {got}\nwant {expected}"));
        }
        "verify-bib" => {}
        "build" => {
            let want = hex::encode(bytes(&expected["bundle"]));
            if got != json!(want) {
                return Err(format!("bytes differ:\n got {got}\nwant {want}"));
            }
        }
        "inspect" => {
            for (k, want) in expected.as_object().unwrap() {
                if &got[k] != want {
                    return Err(format!("field {k}: got {}, want {want}", got[k]));
                }
            }
        }
        "fragment" => {
            let mtu = input["mtu"].as_u64().unwrap() as usize;
            let adu = bytes(&expected["adu"]);
            let bundles: Vec<Vec<u8>> = got
                .as_array()
                .unwrap()
                .iter()
                .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
                .collect();
            let mut pieces = Vec::new();
            for b in &bundles {
                if b.len() > mtu {
                    return Err(format!("bundle of {} bytes > mtu {mtu}", b.len()));
                }
                let p = Bundle::parse(b).map_err(|e| e.to_string())?;
                pieces.push((p.info().fragment_offset.unwrap_or(0), p.payload().to_vec()));
            }
            pieces.sort_by_key(|p| p.0);
            let base = pieces[0].0;
            let mut joined = Vec::new();
            for (off, data) in pieces {
                if off != base + joined.len() as u64 {
                    return Err(format!("gap or overlap at {off}"));
                }
                joined.extend(data);
            }
            if joined != adu {
                return Err("payloads do not tile the ADU".into());
            }
        }
        _ => {}
    }
    Ok(())
}

fn reassemble(case: &Value) -> Result<(), String> {
    let input = &case["input"];
    let l = &input["limits"];
    let mut r = Reassembler::new(ReassemblyLimits {
        max_adu_bytes: l["max_adu_bytes"].as_u64().unwrap(),
        max_pending_bytes: l["max_pending_bytes"].as_u64().unwrap(),
        max_pending_bundles: l["max_pending_bundles"].as_u64().unwrap() as u32,
    });
    let mut outcomes = Vec::new();
    for p in input["pushes"].as_array().unwrap() {
        outcomes.push(
            match r.push(&bytes(&p["bundle"]), p["now"].as_u64().unwrap()) {
                Ok(None) => json!({"status": "pending"}),
                Ok(Some(d)) => json!({"status": "adu", "adu": hex::encode(d.adu)}),
                Err(e) => json!({"status": "error", "error": e.code()}),
            },
        );
    }
    let expired = input
        .get("expire_at")
        .and_then(Value::as_u64)
        .map(|t| r.expire(t).len());
    if case["result"] == "acceptable" {
        return Ok(());
    }
    let expected = &case["expected"];
    for (i, want) in expected["outcomes"].as_array().unwrap().iter().enumerate() {
        let mut want = want.clone();
        if let Some(a) = want.get("adu") {
            want["adu"] = json!(hex::encode(bytes(a)));
        }
        if outcomes.get(i) != Some(&want) {
            return Err(format!("push {i}: got {:?}, want {want}", outcomes.get(i)));
        }
    }
    if let Some(n) = expected.get("expired").and_then(Value::as_u64) {
        if expired != Some(n as usize) {
            return Err(format!("expired: got {expired:?}, want {n}"));
        }
    }
    if let Some(n) = expected.get("pending_bundles").and_then(Value::as_u64) {
        if u64::from(r.pending().bundles) != n {
            return Err(format!(
                "pending_bundles: got {}, want {n}",
                r.pending().bundles
            ));
        }
    }
    Ok(())
}

#[test]
fn conformance_vectors() {
    let mut failures = Vec::new();
    let mut count = 0;
    for op in ["build", "inspect", "fragment", "reassemble", "verify-bib"] {
        let path = vectors_dir().join(format!("{op}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipping {}: not present", path.display());
            continue;
        };
        let manifest: Value = serde_json::from_str(&text).unwrap();
        for case in manifest["cases"].as_array().unwrap() {
            count += 1;
            if let Err(why) = run(op, case) {
                failures.push(format!(
                    "{} ({}): {why}",
                    case["id"].as_str().unwrap(),
                    case["comment"].as_str().unwrap_or("")
                ));
            }
        }
    }
    eprintln!("{count} vectors, {} failures", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {count} vectors fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
