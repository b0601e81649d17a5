//! The adapter protocol (`deepmail-adapter/1`): what the runner asks an
//! implementation and what it answers. In-process implementations use the
//! same types, so every kind of implementation is judged by the same code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request: a case's input, Bytes as `{"hex": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The case id.
    pub id: String,
    /// `bsmtp-codec` or `fragmenter`.
    pub stage: String,
    /// The operation, e.g. `decode`.
    pub operation: String,
    /// The case input.
    pub input: Value,
}

/// An implementation's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The operation succeeded with this output.
    Ok(Value),
    /// The operation failed with an error class and message.
    Error {
        /// Error class (`stage-error.code`).
        code: String,
        /// Explanation.
        message: String,
    },
    /// The implementation does not implement this operation.
    Unsupported(String),
}

/// What an implementation says about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImplementationInfo {
    /// Name, e.g. `builtin:bsmtp-codec` or `pyd3tn`.
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// `stage.operation` pairs it implements, e.g. `fragmenter.inspect`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Whether it reports the error classes of `vectors/README.md`; when
    /// false, invalid cases are judged on failing at all.
    #[serde(default)]
    pub error_classes: bool,
    /// Bundle Protocol versions its fragmenter speaks (`[7]` when empty);
    /// fragmenter manifests of another version are skipped.
    #[serde(default)]
    pub bundle_versions: Vec<u64>,
}

impl ImplementationInfo {
    /// Whether this implementation's fragmenter speaks `version`.
    pub fn speaks_bundle_version(&self, version: u64) -> bool {
        if self.bundle_versions.is_empty() {
            version == 7
        } else {
            self.bundle_versions.contains(&version)
        }
    }
}

/// Something the runner can check.
pub trait Implementation {
    /// Who it is and what it implements.
    fn info(&self) -> &ImplementationInfo;
    /// Runs one request.
    fn call(&mut self, request: &Request) -> Response;
}
