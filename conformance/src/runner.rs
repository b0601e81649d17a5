//! Running a suite against an implementation.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::check::{judge, Verdict};
use crate::protocol::{Implementation, Request};
use crate::report::{CaseReport, Report, Status};
use crate::vectors::Suite;

/// Known gaps of one implementation: case id -> reason.
#[derive(Debug, Clone, Default)]
pub struct ExpectedFailures {
    /// Case id -> why it is expected to fail.
    pub reasons: HashMap<String, String>,
}

#[derive(Deserialize)]
struct ExpectedFailuresFile {
    #[serde(default)]
    expected_failures: Vec<ExpectedFailureEntry>,
}

#[derive(Deserialize)]
struct ExpectedFailureEntry {
    id: String,
    #[serde(default)]
    reason: String,
}

/// Why an expected-failures file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedFailuresError {
    /// It could not be read.
    #[error("cannot read expected-failures file {}: {error}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It is not `{"expected_failures": [{"id", "reason"}]}` JSON.
    #[error("{} is not an expected-failures file: {error}", path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: serde_json::Error,
    },
}

impl ExpectedFailures {
    /// Reads `{"implementation": ..., "expected_failures": [{"id", "reason"}]}`.
    pub fn load(path: &Path) -> Result<ExpectedFailures, ExpectedFailuresError> {
        let text = std::fs::read_to_string(path).map_err(|error| ExpectedFailuresError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let file: ExpectedFailuresFile =
            serde_json::from_str(&text).map_err(|error| ExpectedFailuresError::Parse {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(ExpectedFailures {
            reasons: file
                .expected_failures
                .into_iter()
                .map(|e| (e.id, e.reason))
                .collect(),
        })
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only cases whose id, manifest, stage or operation contains this.
    pub filter: Option<String>,
    /// Known gaps.
    pub expected_failures: ExpectedFailures,
}

/// Runs every case of `suite` against `implementation`.
pub fn run(suite: &Suite, implementation: &mut dyn Implementation, options: &RunOptions) -> Report {
    let info = implementation.info().clone();
    let mut cases = Vec::new();
    for manifest in &suite.manifests {
        let op_name = format!("{}.{}", manifest.stage, manifest.operation);
        let bundle_version = manifest.bundle_version.unwrap_or(7);
        let other_version =
            manifest.stage == "fragmenter" && !info.speaks_bundle_version(bundle_version);
        let supported = info.operations.iter().any(|o| o == &op_name) && !other_version;
        for case in &manifest.cases {
            if let Some(f) = &options.filter {
                let hay = [
                    &case.id,
                    &manifest.path,
                    &manifest.stage,
                    &manifest.operation,
                ];
                if !hay.iter().any(|h| h.contains(f.as_str())) {
                    continue;
                }
            }
            let verdict = if supported {
                let request = Request {
                    id: case.id.clone(),
                    stage: manifest.stage.clone(),
                    operation: manifest.operation.clone(),
                    input: case.input.clone(),
                };
                let response = implementation.call(&request);
                judge(
                    &manifest.operation,
                    case,
                    &response,
                    info.error_classes,
                    bundle_version,
                )
            } else if other_version {
                Verdict::Unsupported(format!(
                    "BPv{bundle_version} vectors; {} speaks BPv{}",
                    info.name,
                    if info.bundle_versions.is_empty() {
                        "7".to_string()
                    } else {
                        info.bundle_versions
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join("/")
                    }
                ))
            } else {
                Verdict::Unsupported(format!("{} does not implement {op_name}", info.name))
            };
            let xfail = options.expected_failures.reasons.get(&case.id);
            let (status, detail) = match (verdict, xfail) {
                (Verdict::Pass(note), None) => (Status::Pass, note.unwrap_or_default()),
                (Verdict::Pass(_), Some(reason)) => (
                    Status::UnexpectedPass,
                    format!("passes, but is listed as an expected failure ({reason})"),
                ),
                (Verdict::Fail(why), None) => (Status::Fail, why),
                (Verdict::Fail(why), Some(reason)) => {
                    (Status::ExpectedFailure, format!("{reason} — {why}"))
                }
                (Verdict::Unsupported(why), _) => (Status::Unsupported, why),
            };
            let expected = match (case.result.as_str(), &case.error) {
                ("invalid", Some(e)) => format!("invalid:{e}"),
                (r, _) => r.to_string(),
            };
            cases.push(CaseReport {
                id: case.id.clone(),
                manifest: manifest.path.clone(),
                stage: manifest.stage.clone(),
                operation: manifest.operation.clone(),
                expected,
                status,
                detail,
            });
        }
    }
    Report::new(info, cases)
}
