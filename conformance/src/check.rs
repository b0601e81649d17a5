//! Judging an implementation's answer against a case.
//!
//! Byte-exact where the RFCs fix the bytes (canonical BSMTP encoding,
//! canonical bundle build), field-by-field for `inspect`, and by properties
//! for `fragment`, whose fragment boundaries are the implementation's
//! choice; those properties are checked with the reference parser of
//! `deepmail-bundle` (BPv7) or the runner's own BPv6 reader (`crate::bp6`).

use serde_json::Value;

use crate::protocol::Response;
use crate::vectors::{hex_bytes, Case};

/// The judgement on one case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Pass(Option<String>),
    Fail(String),
    Unsupported(String),
}

const HARNESS_CODES: &[&str] = &[
    "runner-error",
    "adapter-failed",
    "plugin-trap",
    "plugin-timeout",
    "plugin-out-of-memory",
    "plugin-failed",
];

/// Judges `response` to `case` of a manifest with `operation`.
pub(crate) fn judge(
    operation: &str,
    case: &Case,
    response: &Response,
    error_classes: bool,
    bundle_version: u64,
) -> Verdict {
    let (code, message) = match response {
        Response::Unsupported(why) => return Verdict::Unsupported(why.clone()),
        Response::Error { code, message } if HARNESS_CODES.contains(&code.as_str()) => {
            return Verdict::Fail(format!("{code}: {message}"));
        }
        Response::Error { code, message } => (code.as_str(), message.as_str()),
        Response::Ok(out) => {
            if operation == "reassemble" {
                return judge_reassemble(case, out, error_classes);
            }
            return match case.result.as_str() {
                "invalid" => Verdict::Fail(format!(
                    "accepted input that must be rejected with `{}`",
                    case.error.as_deref().unwrap_or("an error")
                )),
                _ => match &case.expected {
                    None => Verdict::Pass(None),
                    Some(expected) => match compare(operation, case, out, expected, bundle_version)
                    {
                        Ok(()) => Verdict::Pass(None),
                        Err(why) => Verdict::Fail(why.0),
                    },
                },
            };
        }
    };
    match case.result.as_str() {
        "invalid" => match &case.error {
            Some(expected) if error_classes && expected != code => Verdict::Fail(format!(
                "rejected, but as `{code}` instead of `{expected}`: {message}"
            )),
            _ => Verdict::Pass(None),
        },
        "acceptable" => Verdict::Pass(Some(format!("rejected ({code}), which is acceptable"))),
        _ => Verdict::Fail(format!("rejected valid input: {code}: {message}")),
    }
}

fn compare(
    operation: &str,
    case: &Case,
    out: &Value,
    expected: &Value,
    bundle_version: u64,
) -> Result<(), crate::Mismatch> {
    match operation {
        "encode" => compare_bytes("batch", out.get("batch"), expected.get("batch")),
        "build" => compare_bytes("bundle", out.get("bundle"), expected.get("bundle")),
        "decode" => compare_messages(out.get("messages"), expected.get("messages")),
        "inspect" => subset("", out, expected),
        "verify-bib" => {
            if out.get("bibs") == expected.get("bibs") {
                Ok(())
            } else {
                Err(format!(
                    "bibs: got {}, want {}",
                    out.get("bibs").unwrap_or(&Value::Null),
                    expected.get("bibs").unwrap_or(&Value::Null)
                )
                .into())
            }
        }
        "fragment" if bundle_version == 6 => crate::check::fragment6::check(case, out, expected),
        "fragment" => crate::check::fragment::check(case, out, expected),
        "parse-answer" => compare_next_hops(out.get("next_hops"), expected.get("next_hops")),
        other => Err(format!("the runner does not know operation `{other}`").into()),
    }
}

fn compare_bytes(
    name: &str,
    got: Option<&Value>,
    want: Option<&Value>,
) -> Result<(), crate::Mismatch> {
    let want = want
        .map(hex_bytes)
        .transpose()?
        .ok_or_else(|| format!("vector has no expected `{name}`"))?;
    let got = got
        .map(hex_bytes)
        .transpose()?
        .ok_or_else(|| format!("output has no `{name}`"))?;
    if got == want {
        return Ok(());
    }
    let at = got
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |b: &[u8]| {
        let lo = at.saturating_sub(16);
        let hi = (at + 24).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[lo.min(hi)..hi]))
    };
    Err(format!(
        "{name} differs at byte {at} (got {} bytes, expected {}): got …{}…, expected …{}…",
        got.len(),
        want.len(),
        show(&got),
        show(&want)
    )
    .into())
}

/// A message reduced to what the format compares.
fn message_key(m: &Value) -> Result<Value, crate::Mismatch> {
    let params = |v: Option<&Value>| -> Value {
        match v {
            Some(Value::Array(ps)) => Value::Array(
                ps.iter()
                    .map(|p| {
                        serde_json::json!({
                            "keyword": p.get("keyword").cloned().unwrap_or(Value::Null),
                            "value": p.get("value").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect(),
            ),
            _ => Value::Array(vec![]),
        }
    };
    let fps = match m.get("forward_paths") {
        Some(Value::Array(f)) => f
            .iter()
            .map(|f| serde_json::json!({"mailbox": f.get("mailbox"), "parameters": params(f.get("parameters"))}))
            .collect(),
        _ => vec![],
    };
    let content = m
        .get("content")
        .map(hex_bytes)
        .transpose()?
        .unwrap_or_default();
    Ok(serde_json::json!({
        "reverse_path": m.get("reverse_path"),
        "mail_parameters": params(m.get("mail_parameters")),
        "forward_paths": fps,
        "content": String::from_utf8_lossy(&content),
        "content_len": content.len(),
        "content_hex": hex::encode(&content),
    }))
}

fn compare_messages(got: Option<&Value>, want: Option<&Value>) -> Result<(), crate::Mismatch> {
    let list = |v: Option<&Value>, what: &str| -> Result<Vec<Value>, crate::Mismatch> {
        match v {
            Some(Value::Array(items)) => items.iter().map(message_key).collect(),
            _ => Err(format!("{what} has no `messages` array").into()),
        }
    };
    let got = list(got, "output")?;
    let want = list(want, "vector")?;
    if got.len() != want.len() {
        return Err(format!("decoded {} message(s), expected {}", got.len(), want.len()).into());
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        for key in [
            "reverse_path",
            "mail_parameters",
            "forward_paths",
            "content_hex",
        ] {
            if g[key] != w[key] {
                let (g, w) = if key == "content_hex" {
                    (&g["content"], &w["content"])
                } else {
                    (&g[key], &w[key])
                };
                return Err(format!("message {i}: {key} is {g}, expected {w}").into());
            }
        }
    }
    Ok(())
}

/// Every field present in `want` must be equal in `got` (recursively for
/// objects; arrays element by element with the same length).
pub(crate) fn subset(path: &str, got: &Value, want: &Value) -> Result<(), crate::Mismatch> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match g.get(k) {
                    Some(gv) => subset(&p, gv, wv)?,
                    None if wv.is_null() => {}
                    None => return Err(format!("`{p}` missing from output (expected {wv})").into()),
                }
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Err(
                    format!("`{path}` has {} entries, expected {}", g.len(), w.len()).into(),
                );
            }
            g.iter()
                .zip(w)
                .enumerate()
                .try_for_each(|(i, (gv, wv))| subset(&format!("{path}[{i}]"), gv, wv))
        }
        (g, w) if g == w => Ok(()),
        (Value::Number(g), Value::Number(w))
            if g.as_u64().is_some() && g.as_u64() == w.as_u64() =>
        {
            Ok(())
        }
        (g, w) => Err(format!("`{path}` is {g}, expected {w}").into()),
    }
}

/// Next hops: the same records as a multiset, priorities non-decreasing in
/// the output's order (order within a priority is random by design), and
/// `ttl` equal where the vector gives one.
fn compare_next_hops(got: Option<&Value>, want: Option<&Value>) -> Result<(), crate::Mismatch> {
    let (Some(Value::Array(got)), Some(Value::Array(want))) = (got, want) else {
        return Err("output or vector has no `next_hops` array".into());
    };
    let key = |h: &Value| {
        (
            h["priority"].as_u64(),
            h["weight"].as_u64(),
            h["uri"].as_str().map(str::to_string),
        )
    };
    let prios: Vec<Option<u64>> = got.iter().map(|h| h["priority"].as_u64()).collect();
    if prios.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("next hops are not in priority order: {prios:?}").into());
    }
    let mut g: Vec<_> = got.iter().map(key).collect();
    let mut w: Vec<_> = want.iter().map(key).collect();
    g.sort();
    w.sort();
    if g != w {
        return Err(format!("next hops {g:?}, expected {w:?}").into());
    }
    for hop in want
        .iter()
        .filter(|h| h.get("ttl").is_some_and(|t| !t.is_null()))
    {
        let found = got.iter().find(|h| key(h) == key(hop));
        if found.map(|h| &h["ttl"]) != Some(&hop["ttl"]) {
            return Err(format!(
                "{}: ttl {}, expected {}",
                hop["uri"],
                found.map(|h| h["ttl"].to_string()).unwrap_or_default(),
                hop["ttl"]
            )
            .into());
        }
    }
    Ok(())
}

fn judge_reassemble(case: &Case, out: &Value, error_classes: bool) -> Verdict {
    let Some(expected) = &case.expected else {
        return Verdict::Fail("reassemble vector without `expected`".into());
    };
    let (Some(Value::Array(got)), Some(Value::Array(want))) =
        (out.get("outcomes"), expected.get("outcomes"))
    else {
        return Verdict::Fail("output or vector has no `outcomes` array".into());
    };
    if got.len() != want.len() {
        return Verdict::Fail(format!("{} outcomes for {} pushes", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let gs = g.get("status").and_then(Value::as_str).unwrap_or("?");
        let ws = w.get("status").and_then(Value::as_str).unwrap_or("?");
        let detail = g
            .get("message")
            .and_then(Value::as_str)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        if gs != ws {
            let what = |v: &Value, s: &str| match s {
                "error" => format!(
                    "error `{}`",
                    v.get("error").and_then(Value::as_str).unwrap_or("?")
                ),
                other => other.to_string(),
            };
            return Verdict::Fail(format!(
                "push {i}: got {}{detail}, expected {}",
                what(g, gs),
                what(w, ws)
            ));
        }
        if gs == "error" && error_classes && g.get("error") != w.get("error") {
            return Verdict::Fail(format!(
                "push {i}: error {} instead of {}{detail}",
                g["error"], w["error"]
            ));
        }
        if gs == "adu" {
            if let Err(e) = compare_bytes("adu", g.get("adu"), w.get("adu")) {
                return Verdict::Fail(format!("push {i}: {e}"));
            }
        }
    }
    for key in ["expired", "pending_bundles"] {
        if let Some(w) = expected.get(key) {
            if out.get(key) != Some(w) {
                return Verdict::Fail(format!(
                    "{key} is {}, expected {w}",
                    out.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    Verdict::Pass(None)
}

pub(crate) mod fragment {
    //! Property checks for `fragment` (RFC 9171 §5.8).

    use deepmail_bundle::{Bundle, BundleInfo};
    use serde_json::Value;

    use crate::vectors::{hex_bytes, Case};

    const REPLICATE: u64 = 0x01;

    struct Original {
        info: Option<BundleInfo>,
        source: String,
        destination: String,
        report_to: String,
        creation_time: u64,
        sequence_number: u64,
        lifetime_ms: u64,
        offset: u64,
        total: u64,
        payload: Vec<u8>,
    }

    fn original(input: &Value) -> Result<Original, crate::Mismatch> {
        if let Some(b) = input.get("bundle") {
            let bytes = hex_bytes(b)?;
            let bundle = Bundle::parse(&bytes)
                .map_err(|e| format!("vector's input bundle does not parse: {e}"))?;
            let info = bundle.info().clone();
            Ok(Original {
                source: info.source.to_string(),
                destination: info.destination.to_string(),
                report_to: info.report_to.to_string(),
                creation_time: info.creation_time,
                sequence_number: info.sequence_number,
                lifetime_ms: info.lifetime_ms,
                offset: info.fragment_offset.unwrap_or(0),
                total: info.total_adu_length.unwrap_or(info.payload_length),
                payload: bundle.payload().to_vec(),
                info: Some(info),
            })
        } else {
            let spec = input
                .get("spec")
                .ok_or("fragment vector has neither `bundle` nor `spec`")?;
            let adu = hex_bytes(input.get("adu").ok_or("fragment vector has no `adu`")?)?;
            let s = |k: &str, d: &str| spec.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
            let n = |k: &str| spec.get(k).and_then(Value::as_u64).unwrap_or(0);
            let canon = |e: String| {
                e.parse::<deepmail_bundle::Eid>()
                    .map(|e| e.to_string())
                    .unwrap_or(e)
            };
            Ok(Original {
                info: None,
                source: canon(s("source", "")),
                destination: canon(s("destination", "")),
                report_to: canon(s("report_to", "dtn:none")),
                creation_time: n("creation_time"),
                sequence_number: n("sequence_number"),
                lifetime_ms: n("lifetime_ms"),
                offset: 0,
                total: adu.len() as u64,
                payload: adu,
            })
        }
    }

    /// Checks the properties listed in vectors/README.md for `fragment`.
    pub(crate) fn check(case: &Case, out: &Value, expected: &Value) -> Result<(), crate::Mismatch> {
        let orig = original(&case.input)?;
        let mtu = case
            .input
            .get("mtu")
            .and_then(Value::as_u64)
            .ok_or("fragment vector has no `mtu`")?;
        let Some(Value::Array(list)) = out.get("bundles") else {
            return Err("output has no `bundles` array".into());
        };
        if list.is_empty() {
            return Err("no bundles came out".into());
        }
        let was_fragment = orig.info.as_ref().is_some_and(|i| i.is_fragment);
        let mut pieces = Vec::new();
        for (i, b) in list.iter().enumerate() {
            let bytes = hex_bytes(b)?;
            if bytes.len() as u64 > mtu {
                return Err(
                    format!("bundle {i} is {} bytes, over the MTU of {mtu}", bytes.len()).into(),
                );
            }
            let bundle =
                Bundle::parse(&bytes).map_err(|e| format!("bundle {i} does not parse: {e}"))?;
            let info = bundle.info().clone();
            let same = [
                ("source", info.source.to_string(), orig.source.clone()),
                (
                    "destination",
                    info.destination.to_string(),
                    orig.destination.clone(),
                ),
                (
                    "report_to",
                    info.report_to.to_string(),
                    orig.report_to.clone(),
                ),
                (
                    "creation_time",
                    info.creation_time.to_string(),
                    orig.creation_time.to_string(),
                ),
                (
                    "sequence_number",
                    info.sequence_number.to_string(),
                    orig.sequence_number.to_string(),
                ),
                (
                    "lifetime_ms",
                    info.lifetime_ms.to_string(),
                    orig.lifetime_ms.to_string(),
                ),
            ];
            for (what, got, want) in same {
                if got != want {
                    return Err(format!(
                        "bundle {i}: {what} is {got}, the original's is {want} (§5.8)"
                    )
                    .into());
                }
            }
            let fragmented = list.len() > 1 || was_fragment;
            if fragmented {
                if !info.is_fragment {
                    return Err(format!(
                        "bundle {i} is one of several but is not flagged as a fragment (§5.8)"
                    )
                    .into());
                }
                if info.total_adu_length != Some(orig.total) {
                    return Err(format!(
                        "bundle {i}: total ADU length {:?}, expected {} (§5.8)",
                        info.total_adu_length, orig.total
                    )
                    .into());
                }
            }
            pieces.push((
                info.fragment_offset.unwrap_or(0),
                bundle.payload().to_vec(),
                info,
            ));
        }
        pieces.sort_by_key(|p| p.0);
        let mut cursor = orig.offset;
        let end = orig.offset + orig.payload.len() as u64;
        for (offset, payload, _) in &pieces {
            if *offset > cursor {
                return Err(format!(
                    "gap in the payload: bytes {cursor}..{offset} are in no fragment"
                )
                .into());
            }
            let rel = (*offset - orig.offset) as usize;
            let Some(want) = orig.payload.get(rel..rel + payload.len()) else {
                return Err(
                    format!("fragment at offset {offset} runs past the original payload").into(),
                );
            };
            if want != payload.as_slice() {
                return Err(format!(
                    "fragment at offset {offset} carries different bytes from the original"
                )
                .into());
            }
            cursor = cursor.max(*offset + payload.len() as u64);
        }
        if cursor != end {
            return Err(format!("fragments cover the payload only up to {cursor} of {end}").into());
        }
        if let Some(info) = &orig.info {
            let first_offset = pieces[0].0;
            for block in info.blocks.iter().filter(|b| b.block_type != 1) {
                for (offset, _, frag) in &pieces {
                    let has = frag.blocks.iter().any(|b| {
                        b.block_type == block.block_type && b.data_length == block.data_length
                    });
                    let must = block.flags & REPLICATE != 0 || *offset == first_offset;
                    // §5.8 requires replicated blocks in every fragment
                    // and the others in the first; it forbids nothing
                    // else, so a copy of a non-replicated block in a
                    // later fragment is not an error.
                    if must && !has {
                        return Err(format!(
                            "block type {} (flags {:#x}) missing from the fragment at offset {offset} (§5.8)",
                            block.block_type, block.flags
                        ).into());
                    }
                }
            }
        }
        if let Some(adu) = expected.get("adu") {
            if !was_fragment && hex_bytes(adu)? != orig.payload {
                return Err("the vector's expected ADU is not the input payload".into());
            }
        }
        Ok(())
    }
}

pub(crate) mod fragment6 {
    //! Property checks for `fragment` on BPv6 manifests (RFC 5050 §5.8),
    //! with the runner's own BPv6 reader (`crate::bp6`).

    use serde_json::Value;

    use crate::bp6::{parse, Bundle6, FRAGMENT, REPLICATE};
    use crate::vectors::{hex_bytes, Case};

    /// [`check`] for `input` fragmented at `mtu` into `out`, outside a
    /// manifest.
    pub(crate) fn judge(input: &[u8], mtu: u64, out: &[Vec<u8>]) -> Result<(), crate::Mismatch> {
        let case = Case {
            id: "t".into(),
            comment: String::new(),
            flags: vec![],
            references: vec![],
            result: "valid".into(),
            error: None,
            input: serde_json::json!({"bundle": {"hex": hex::encode(input)}, "mtu": mtu}),
            expected: None,
        };
        let bundles: Vec<Value> = out
            .iter()
            .map(|b| serde_json::json!({"hex": hex::encode(b)}))
            .collect();
        check(
            &case,
            &serde_json::json!({"bundles": bundles}),
            &serde_json::json!({}),
        )
    }

    /// Checks the properties listed in vectors/README.md ("BPv6") for `fragment`.
    pub(crate) fn check(case: &Case, out: &Value, expected: &Value) -> Result<(), crate::Mismatch> {
        let input = case
            .input
            .get("bundle")
            .ok_or("BPv6 fragment vectors give a `bundle`")?;
        let orig = parse(&hex_bytes(input)?)
            .map_err(|e| format!("vector's input bundle does not parse: {e}"))?;
        let (orig_offset, orig_total) = orig.fragment.unwrap_or((0, orig.payload().len() as u64));
        let was_fragment = orig.fragment.is_some();
        let mtu = case
            .input
            .get("mtu")
            .and_then(Value::as_u64)
            .ok_or("fragment vector has no `mtu`")?;
        let Some(Value::Array(list)) = out.get("bundles") else {
            return Err("output has no `bundles` array".into());
        };
        if list.is_empty() {
            return Err("no bundles came out".into());
        }
        let fragmented = list.len() > 1 || was_fragment;
        let mut pieces: Vec<(u64, Bundle6)> = Vec::new();
        for (i, b) in list.iter().enumerate() {
            let bytes = hex_bytes(b)?;
            if bytes.len() as u64 > mtu {
                return Err(
                    format!("bundle {i} is {} bytes, over the MTU of {mtu}", bytes.len()).into(),
                );
            }
            let got = parse(&bytes).map_err(|e| format!("bundle {i} does not parse: {e}"))?;
            let same = [
                ("source", got.source.clone(), orig.source.clone()),
                (
                    "destination",
                    got.destination.clone(),
                    orig.destination.clone(),
                ),
                ("report-to", got.report_to.clone(), orig.report_to.clone()),
                (
                    "creation time",
                    got.creation_time.to_string(),
                    orig.creation_time.to_string(),
                ),
                (
                    "sequence number",
                    got.sequence_number.to_string(),
                    orig.sequence_number.to_string(),
                ),
                (
                    "lifetime",
                    got.lifetime.to_string(),
                    orig.lifetime.to_string(),
                ),
            ];
            for (what, g, w) in same {
                if g != w {
                    return Err(
                        format!("bundle {i}: {what} is {g}, the original's is {w} (§5.8)").into(),
                    );
                }
            }
            if fragmented {
                if got.flags & FRAGMENT == 0 {
                    return Err(format!(
                        "bundle {i} is one of several but is not flagged as a fragment (§5.8)"
                    )
                    .into());
                }
                if got.fragment.map(|f| f.1) != Some(orig_total) {
                    return Err(format!(
                        "bundle {i}: total ADU length {:?}, expected {orig_total} (§5.8)",
                        got.fragment.map(|f| f.1)
                    )
                    .into());
                }
            }
            pieces.push((got.fragment.map(|f| f.0).unwrap_or(0), got));
        }
        pieces.sort_by_key(|p| p.0);
        let orig_payload = orig.payload();
        let mut cursor = orig_offset;
        let end = orig_offset + orig_payload.len() as u64;
        for (offset, piece) in &pieces {
            let payload = piece.payload();
            if *offset > cursor {
                return Err(format!(
                    "gap in the payload: bytes {cursor}..{offset} are in no fragment"
                )
                .into());
            }
            let want = offset
                .checked_sub(orig_offset)
                .and_then(|rel| usize::try_from(rel).ok())
                .and_then(|rel| orig_payload.get(rel..rel + payload.len()))
                .ok_or_else(|| {
                    format!("fragment at offset {offset} lies outside the original payload")
                })?;
            if want != payload {
                return Err(format!(
                    "fragment at offset {offset} carries different bytes from the original"
                )
                .into());
            }
            cursor = cursor.max(*offset + payload.len() as u64);
        }
        if cursor != end {
            return Err(format!("fragments cover the payload only up to {cursor} of {end}").into());
        }
        // §5.8: blocks before the payload in the first fragment, blocks after
        // it in the last, "replicate" blocks in every one, in their original
        // relative order. Blocks are matched by type and data.
        let pay = orig.payload_index();
        let (first, last) = (pieces[0].0, pieces[pieces.len() - 1].0);
        for (offset, piece) in &pieces {
            let mut used = vec![false; orig.blocks.len()];
            let mut previous: Option<usize> = None;
            for (t, _, data) in &piece.blocks {
                let at = if *t == 1 {
                    Some(pay)
                } else {
                    (0..orig.blocks.len()).find(|&j| {
                        !used[j] && j != pay && orig.blocks[j].0 == *t && &orig.blocks[j].2 == data
                    })
                };
                let Some(at) = at else { continue };
                used[at] = true;
                if previous.is_some_and(|p| p > at) {
                    return Err(format!(
                        "the fragment at offset {offset} changes the order of the blocks (§5.8)"
                    )
                    .into());
                }
                previous = Some(at);
            }
            for (j, (t, flags, _)) in orig.blocks.iter().enumerate() {
                let must = j != pay
                    && (flags & REPLICATE != 0
                        || (j < pay && *offset == first)
                        || (j > pay && *offset == last));
                if must && !used[j] {
                    let place = if flags & REPLICATE != 0 {
                        "replicated, so in every fragment"
                    } else if j < pay {
                        "before the payload, so in the first fragment"
                    } else {
                        "after the payload, so in the last fragment"
                    };
                    return Err(format!(
                        "block type {t} ({place}) missing from the fragment at offset {offset} (§5.8)"
                    ).into());
                }
            }
        }
        if let Some(adu) = expected.get("adu") {
            if !was_fragment && hex_bytes(adu)? != orig_payload {
                return Err("the vector's expected ADU is not the input payload".into());
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A CBHE bundle ipn:1.0 -> ipn:2.25 (all numbers under 128), with
        /// an unknown block 192 `ext` (flags `ext_flags`) before the payload.
        fn bundle(frag: Option<(u8, u8)>, ext: Option<(u8, &[u8])>, payload: &[u8]) -> Vec<u8> {
            let mut body = vec![2, 25, 1, 0, 0, 0, 0, 0, 100, 0, 60, 0];
            body.extend(frag.map(|(o, t)| vec![o, t]).unwrap_or_default());
            let mut b = vec![6, frag.map_or(0x10, |_| 0x11), body.len() as u8];
            b.extend(body);
            if let Some((flags, data)) = ext {
                b.extend([192, flags, data.len() as u8]);
                b.extend_from_slice(data);
            }
            b.extend([1, 0x08, payload.len() as u8]);
            b.extend_from_slice(payload);
            b
        }

        #[test]
        fn good_fragments_pass_and_each_broken_property_fails() {
            let orig = bundle(None, Some((0x00, b"ext")), b"abcdef");
            let first = bundle(Some((0, 6)), Some((0x00, b"ext")), b"abc");
            let second = bundle(Some((3, 6)), None, b"def");
            assert_eq!(judge(&orig, 100, std::slice::from_ref(&orig)), Ok(()));
            assert_eq!(judge(&orig, 30, &[second.clone(), first.clone()]), Ok(()));
            let over = judge(
                &orig,
                first.len() as u64 - 1,
                &[first.clone(), second.clone()],
            );
            assert!(over.unwrap_err().0.contains("over the MTU"));
            let gap = judge(&orig, 30, std::slice::from_ref(&first)).unwrap_err();
            assert!(gap.0.contains("cover the payload only up to 3"), "{gap}");
            let no_ext = bundle(Some((0, 6)), None, b"abc");
            let lost = judge(&orig, 30, &[no_ext, second.clone()]).unwrap_err();
            assert!(lost.0.contains("block type 192"), "{lost}");
            let wrong = bundle(Some((3, 6)), None, b"xyz");
            let bytes = judge(&orig, 30, &[first.clone(), wrong]).unwrap_err();
            assert!(bytes.0.contains("different bytes"), "{bytes}");
            let total = bundle(Some((3, 7)), None, b"def");
            let t = judge(&orig, 30, &[first.clone(), total]).unwrap_err();
            assert!(t.0.contains("total ADU length"), "{t}");
            // A replicated block must be in every fragment.
            let rep = bundle(None, Some((0x01, b"ext")), b"abcdef");
            let r = judge(&rep, 30, &[first.clone(), second.clone()]).unwrap_err();
            assert!(r.0.contains("replicated"), "{r}");
        }
    }
}
