//! Loading vector manifests (format `deepmail-vectors/1`) from a directory
//! or from the copy embedded at build time, with every Bytes value resolved
//! to `{"hex": ...}` so runners and adapters see one form.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One case of a manifest, with its Bytes resolved.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Unique id, e.g. `bsmtp-decode-017`.
    pub id: String,
    /// What the case checks.
    #[serde(default)]
    pub comment: String,
    /// Labels, explained by the manifest's `flag_notes`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Requirements checked, e.g. `RFC 9171 §5.8`.
    #[serde(default)]
    pub references: Vec<String>,
    /// `valid`, `invalid` or `acceptable`.
    pub result: String,
    /// Error class, for `invalid`.
    #[serde(default)]
    pub error: Option<String>,
    /// Operation input.
    pub input: Value,
    /// Operation output, for `valid`.
    #[serde(default)]
    pub expected: Option<Value>,
}

/// One manifest: one stage, one operation.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Always `deepmail-vectors/1`.
    pub format: String,
    /// `bsmtp-codec` or `fragmenter`.
    pub stage: String,
    /// `encode`, `decode`, `build`, `inspect`, `fragment`, `reassemble`.
    pub operation: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// For `fragmenter` manifests: the Bundle Protocol version the cases
    /// are written in, 7 (RFC 9171) when absent or 6 (RFC 5050).
    #[serde(default)]
    pub bundle_version: Option<u64>,
    /// The cases.
    pub cases: Vec<Case>,
    /// File the manifest came from (relative to the vectors root).
    #[serde(skip)]
    pub path: String,
}

/// All manifests of a vector suite.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// The manifests, sorted by path.
    pub manifests: Vec<Manifest>,
}

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A manifest is not valid JSON or not the format.
    #[error("{path}: {detail}")]
    Format {
        /// The manifest.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

include!(concat!(env!("OUT_DIR"), "/embedded_vectors.rs"));

impl Suite {
    /// The suite embedded in this binary at build time (from `vectors/`).
    pub fn embedded() -> Result<Suite, SuiteError> {
        let lookup = |rel: &str| -> Option<Vec<u8>> {
            EMBEDDED_VECTORS
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, b)| b.to_vec())
        };
        let mut manifests = Vec::new();
        for (path, bytes) in EMBEDDED_VECTORS.iter().filter(|(p, _)| is_manifest(p)) {
            let dir = parent(path);
            manifests.push(parse_manifest(path, bytes, &|file: &str| {
                let rel = if dir.is_empty() {
                    file.to_string()
                } else {
                    format!("{dir}/{file}")
                };
                lookup(&rel).ok_or_else(|| format!("embedded file {rel} not found").into())
            })?);
        }
        manifests.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Suite { manifests })
    }

    /// Loads every manifest below `root` (files `*/*.json` outside
    /// `schema/` and `expected-failures/`).
    pub fn load(root: &Path) -> Result<Suite, SuiteError> {
        let mut manifests = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|error| SuiteError::Io {
                path: dir.clone(),
                error,
            })?;
            for entry in entries {
                let path = entry
                    .map_err(|error| SuiteError::Io {
                        path: dir.clone(),
                        error,
                    })?
                    .path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                if path.is_dir() {
                    stack.push(path);
                } else if is_manifest(&rel) {
                    let bytes = std::fs::read(&path).map_err(|error| SuiteError::Io {
                        path: path.clone(),
                        error,
                    })?;
                    let base = path.parent().unwrap_or(root).to_path_buf();
                    manifests.push(parse_manifest(&rel, &bytes, &|file: &str| {
                        std::fs::read(base.join(file))
                            .map_err(|e| format!("{}: {e}", base.join(file).display()).into())
                    })?);
                }
            }
        }
        manifests.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Suite { manifests })
    }

    /// Number of cases in the suite.
    pub fn case_count(&self) -> usize {
        self.manifests.iter().map(|m| m.cases.len()).sum()
    }
}

fn is_manifest(rel: &str) -> bool {
    rel.ends_with(".json")
        && rel.contains('/')
        && !rel.starts_with("schema/")
        && !rel.starts_with("expected-failures/")
        && !rel.contains("/files/")
        && !rel.starts_with("tools/")
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn parse_manifest(
    path: &str,
    bytes: &[u8],
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, crate::Mismatch>,
) -> Result<Manifest, SuiteError> {
    let format_err = |detail: String| SuiteError::Format {
        path: path.to_string(),
        detail,
    };
    let mut raw: Value =
        serde_json::from_slice(bytes).map_err(|e| format_err(format!("not valid JSON: {e}")))?;
    resolve_bytes(&mut raw, read_file).map_err(|m| format_err(m.0))?;
    let mut manifest: Manifest = serde_json::from_value(raw)
        .map_err(|e| format_err(format!("not a deepmail-vectors/1 manifest: {e}")))?;
    if manifest.format != "deepmail-vectors/1" {
        return Err(format_err(format!(
            "unknown format `{}` (this runner reads deepmail-vectors/1)",
            manifest.format
        )));
    }
    manifest.path = path.to_string();
    Ok(manifest)
}

/// True for an object that is a Bytes value of the vector format.
pub(crate) fn is_bytes_object(map: &Map<String, Value>) -> bool {
    let kinds = ["text", "hex", "base64", "file"]
        .iter()
        .filter(|k| map.contains_key(**k))
        .count();
    kinds == 1
        && map
            .keys()
            .all(|k| matches!(k.as_str(), "text" | "hex" | "base64" | "file" | "repeat"))
}

/// Decodes one Bytes object.
pub(crate) fn bytes_of(
    map: &Map<String, Value>,
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, crate::Mismatch>,
) -> Result<Vec<u8>, crate::Mismatch> {
    let one = if let Some(Value::String(t)) = map.get("text") {
        t.as_bytes().to_vec()
    } else if let Some(Value::String(h)) = map.get("hex") {
        hex::decode(h).map_err(|e| format!("bad hex: {e}"))?
    } else if let Some(Value::String(b)) = map.get("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("bad base64: {e}"))?
    } else if let Some(Value::String(f)) = map.get("file") {
        read_file(f)?
    } else {
        return Err("a Bytes value needs a string `text`, `hex`, `base64` or `file`".into());
    };
    match map.get("repeat") {
        None => Ok(one),
        Some(Value::Number(n)) => {
            let n = n.as_u64().ok_or("`repeat` must be a whole number")?;
            let total = (one.len() as u64)
                .checked_mul(n)
                .filter(|t| *t <= 1 << 30)
                .ok_or("`repeat` makes more than 1 GiB")?;
            let mut out = Vec::with_capacity(total as usize);
            for _ in 0..n {
                out.extend_from_slice(&one);
            }
            Ok(out)
        }
        Some(_) => Err("`repeat` must be a number".into()),
    }
}

/// Replaces every Bytes object in `v` with `{"hex": ...}`.
fn resolve_bytes(
    v: &mut Value,
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, crate::Mismatch>,
) -> Result<(), crate::Mismatch> {
    match v {
        Value::Object(map) if is_bytes_object(map) => {
            let bytes = bytes_of(map, read_file)?;
            *v = hex_value(&bytes);
            Ok(())
        }
        Value::Object(map) => map
            .values_mut()
            .try_for_each(|x| resolve_bytes(x, read_file)),
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|x| resolve_bytes(x, read_file)),
        _ => Ok(()),
    }
}

/// `{"hex": "..."}` for `bytes`.
pub(crate) fn hex_value(bytes: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert("hex".into(), Value::String(hex::encode(bytes)));
    Value::Object(m)
}

/// The bytes of a resolved (or any) Bytes value.
pub(crate) fn hex_bytes(v: &Value) -> Result<Vec<u8>, crate::Mismatch> {
    match v {
        Value::Object(map) if is_bytes_object(map) => {
            bytes_of(map, &|f| Err(format!("file `{f}` not resolved").into()))
        }
        other => Err(format!("expected a Bytes object, found {other}").into()),
    }
}
