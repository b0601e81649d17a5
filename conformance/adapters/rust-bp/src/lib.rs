//! Shared protocol code of the `deepmail-adapter/1` programs over two Rust
//! BPv7 crates (see vectors/README.md, "Adapter protocol"): the line loop on
//! stdin/stdout, request decoding, answers, panic containment and the
//! `verify-bib` policy of the README (rules 2-6), which is the caller's
//! policy on top of what each library parses and verifies.
//!
//! Each binary implements [`Implementation`] with calls into its library
//! only; nothing here parses or encodes BPv7.

use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};
use std::panic::{self, AssertUnwindSafe};

pub const FORMAT: &str = "deepmail-adapter/1";

/// A refusal: the library (or the request) said no. `code` is informative
/// only (the adapters declare `error_classes: false`).
#[derive(Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Failure {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

pub type Outcome = Result<Value, Failure>;

/// One implementation behind the protocol.
pub trait Implementation {
    fn name(&self) -> &str;
    fn version(&self) -> String;
    /// `stage.operation` pairs answered; every other request is `unsupported`.
    fn operations(&self) -> Vec<&'static str>;
    /// Why an operation is not offered (for the `unsupported` answer).
    fn unsupported_reason(&self, operation: &str) -> String;
    fn build(&self, adu: &[u8], spec: &Spec) -> Outcome;
    fn inspect(&self, bundle: &[u8]) -> Outcome;
    fn verify_bib(&self, input: &VerifyInput) -> Outcome;
}

/// The `Spec` object of `fragmenter.build`.
#[derive(Debug, Clone)]
pub struct Spec {
    pub source: String,
    pub destination: String,
    pub report_to: String,
    pub creation_time: u64,
    pub sequence_number: u64,
    pub lifetime_ms: u64,
    pub crc: CrcKind,
    pub block_crc: CrcKind,
    pub must_not_fragment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcKind {
    None,
    Crc16,
    Crc32c,
}

impl CrcKind {
    pub fn parse(s: &str) -> Result<Self, Failure> {
        match s {
            "none" => Ok(CrcKind::None),
            "crc16" => Ok(CrcKind::Crc16),
            "crc32c" => Ok(CrcKind::Crc32c),
            other => Err(Failure::new("bad-request", format!("unknown CRC type {other:?}"))),
        }
    }
    pub fn code(self) -> u8 {
        match self {
            CrcKind::None => 0,
            CrcKind::Crc16 => 1,
            CrcKind::Crc32c => 2,
        }
    }
}

/// The `bundle-info` name of a CRC type code.
pub fn crc_name(code: u64) -> Value {
    match code {
        0 => json!("none"),
        1 => json!("crc16"),
        2 => json!("crc32c"),
        other => json!(format!("unknown-{other}")),
    }
}

/// The input of `fragmenter.verify-bib`.
#[derive(Debug, Clone)]
pub struct VerifyInput {
    pub bundle: Vec<u8>,
    /// (security source EID as a string, HMAC key)
    pub keys: Vec<(String, Vec<u8>)>,
    pub require: bool,
    pub lenient: bool,
}

impl VerifyInput {
    pub fn key_for(&self, source: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, k)| k.as_slice())
    }
}

// --- request decoding ----------------------------------------------------------

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new("bad-request", msg)
}

pub fn bytes_field(obj: &Value, key: &str) -> Result<Vec<u8>, Failure> {
    let b = obj.get(key).ok_or_else(|| bad(format!("input has no {key:?}")))?;
    let h = b
        .get("hex")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{key:?} is not a {{\"hex\": ...}} Bytes object")))?;
    hex::decode(h).map_err(|e| bad(format!("{key:?}: bad hex: {e}")))
}

fn str_field(obj: &Value, key: &str) -> Result<String, Failure> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad(format!("spec has no string {key:?}")))
}

fn u64_field(obj: &Value, key: &str) -> Result<u64, Failure> {
    obj.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(format!("spec has no unsigned integer {key:?}")))
}

pub fn parse_spec(spec: &Value) -> Result<Spec, Failure> {
    Ok(Spec {
        source: str_field(spec, "source")?,
        destination: str_field(spec, "destination")?,
        report_to: str_field(spec, "report_to")?,
        creation_time: u64_field(spec, "creation_time")?,
        sequence_number: u64_field(spec, "sequence_number")?,
        lifetime_ms: u64_field(spec, "lifetime_ms")?,
        crc: CrcKind::parse(&str_field(spec, "crc")?)?,
        block_crc: CrcKind::parse(&str_field(spec, "block_crc")?)?,
        must_not_fragment: spec
            .get("must_not_fragment")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

pub fn parse_verify_input(input: &Value) -> Result<VerifyInput, Failure> {
    let mut keys = Vec::new();
    if let Some(list) = input.get("keys").and_then(Value::as_array) {
        for k in list {
            let source = k
                .get("source")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("key without source"))?;
            keys.push((source.to_string(), bytes_field(k, "key")?));
        }
    }
    Ok(VerifyInput {
        bundle: bytes_field(input, "bundle")?,
        keys,
        require: input.get("require").and_then(Value::as_bool).unwrap_or(false),
        lenient: input.get("lenient").and_then(Value::as_bool).unwrap_or(false),
    })
}

// --- verify-bib policy -----------------------------------------------------------

/// What a library found out about one BIB (in bundle order).
#[derive(Debug, Clone)]
pub struct BibFact {
    pub block_number: u64,
    pub source: String,
    pub targets: Vec<u64>,
    /// `hmac-sha256` / `hmac-sha384` / `hmac-sha512`, None for another context
    /// (or an unrecognised SHA variant)
    pub variant: Option<String>,
    pub scope: u64,
    pub context_id: i64,
    pub wrapped_key: bool,
    /// `Some(true)`: every target verified; `Some(false)`: an HMAC did not
    /// match; `None`: not checked (other context, wrapped key, no key)
    pub verified: Option<bool>,
    /// the library's message when `verified == Some(false)`
    pub mismatch: Option<String>,
}

pub fn variant_name(v: u64) -> Option<String> {
    match v {
        5 => Some("hmac-sha256".into()),
        6 => Some("hmac-sha384".into()),
        7 => Some("hmac-sha512".into()),
        _ => None,
    }
}

/// Rules 2-6 of vectors/README.md `fragmenter` / `verify-bib`, given the
/// BIBs the library parsed (rule 1 is the library's parse) and whether any
/// BIB is encrypted by a BCB.
pub fn bib_policy(facts: &[BibFact], encrypted_bibs: usize, require: bool) -> Outcome {
    if require && encrypted_bibs > 0 {
        return Err(Failure::new(
            "unsupported-security-context",
            format!("{encrypted_bibs} BIB(s) encrypted by a BCB cannot be verified"),
        ));
    }
    for f in facts {
        if f.context_id != 1 || f.wrapped_key {
            if require {
                return Err(Failure::new(
                    "unsupported-security-context",
                    format!(
                        "BIB {}: security context {}{}",
                        f.block_number,
                        f.context_id,
                        if f.wrapped_key { " with a wrapped key" } else { "" }
                    ),
                ));
            }
            continue;
        }
        match f.verified {
            None => {
                if require {
                    return Err(Failure::new(
                        "bib-unknown-key",
                        format!("BIB {}: no key for {}", f.block_number, f.source),
                    ));
                }
            }
            Some(false) => {
                return Err(Failure::new(
                    "bib-mismatch",
                    format!(
                        "BIB {}: {}",
                        f.block_number,
                        f.mismatch.as_deref().unwrap_or("HMAC mismatch")
                    ),
                ))
            }
            Some(true) => {}
        }
    }
    if require {
        let ok = |f: &&BibFact| f.verified == Some(true);
        let payload_bib = facts.iter().filter(ok).find(|f| f.targets.contains(&1));
        let Some(p) = payload_bib else {
            return Err(Failure::new("bib-missing", "the payload is not covered by a verified BIB"));
        };
        let primary = p.scope & 1 != 0 || facts.iter().filter(ok).any(|f| f.targets.contains(&0));
        if !primary {
            return Err(Failure::new(
                "bib-missing",
                "the primary block is not covered by a verified BIB",
            ));
        }
    }
    let bibs: Vec<Value> = facts
        .iter()
        .map(|f| {
            json!({
                "block_number": f.block_number,
                "source": f.source,
                "targets": f.targets,
                "variant": if f.context_id == 1 { json!(f.variant) } else { Value::Null },
                "scope": f.scope,
                "verified": f.verified == Some(true),
            })
        })
        .collect();
    Ok(json!({ "bibs": bibs }))
}

// --- the loop --------------------------------------------------------------------

fn answer_of(id: &Value, out: Outcome) -> Value {
    match out {
        Ok(output) => json!({"id": id, "result": "ok", "output": output}),
        Err(f) => json!({"id": id, "result": "error",
                         "error": {"code": f.code, "message": f.message}}),
    }
}

fn dispatch(imp: &dyn Implementation, req: &Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let op = req.get("operation").and_then(Value::as_str).unwrap_or("");
    if op == "hello" {
        let mut out = Map::new();
        out.insert("name".into(), json!(imp.name()));
        out.insert("version".into(), json!(imp.version()));
        out.insert("operations".into(), json!(imp.operations()));
        out.insert("error_classes".into(), json!(false));
        return json!({"id": id, "result": "ok", "output": out});
    }
    let stage = req.get("stage").and_then(Value::as_str).unwrap_or("");
    let full = format!("{stage}.{op}");
    if !imp.operations().contains(&full.as_str()) {
        return json!({"id": id, "result": "unsupported", "reason": imp.unsupported_reason(&full)});
    }
    let input = req.get("input").cloned().unwrap_or(Value::Null);
    let run = || -> Outcome {
        match op {
            "build" => {
                let adu = bytes_field(&input, "adu")?;
                let spec = parse_spec(input.get("spec").unwrap_or(&Value::Null))?;
                imp.build(&adu, &spec)
            }
            "inspect" => imp.inspect(&bytes_field(&input, "bundle")?),
            "verify-bib" => imp.verify_bib(&parse_verify_input(&input)?),
            _ => Err(Failure::new("bad-request", format!("no handler for {full}"))),
        }
    };
    let out = match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(out) => out,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(Failure::new("panic", format!("{} panicked: {msg}", imp.name())))
        }
    };
    answer_of(&id, out)
}

/// Serve requests until stdin closes. Never panics on input.
pub fn serve(imp: &dyn Implementation) {
    // A panic inside the library becomes an `error` answer; keep its report
    // on stderr short.
    panic::set_hook(Box::new(|info| {
        eprintln!("adapter: library panic caught: {info}");
    }));
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("adapter: reading stdin: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Value>(&line) {
            Ok(req) => dispatch(imp, &req),
            Err(e) => json!({"id": Value::Null, "result": "error",
                             "error": {"code": "bad-request", "message": format!("not JSON: {e}")}}),
        };
        if writeln!(out, "{resp}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
