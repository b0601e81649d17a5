//! The conformance report: a table for people, JSON for tools.

use std::fmt::Write as _;

use serde::Serialize;

use crate::protocol::ImplementationInfo;

/// Outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Conforms.
    Pass,
    /// Does not conform.
    Fail,
    /// Does not conform, and the expected-failures file says so.
    ExpectedFailure,
    /// Listed as an expected failure, but conforms now: update the file.
    UnexpectedPass,
    /// The implementation does not implement the operation.
    Unsupported,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::ExpectedFailure => "xfail",
            Status::UnexpectedPass => "XPASS",
            Status::Unsupported => "skip",
        }
    }
}

/// One case's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// Case id.
    pub id: String,
    /// Manifest it belongs to.
    pub manifest: String,
    /// Stage.
    pub stage: String,
    /// Operation.
    pub operation: String,
    /// `valid`, `invalid:<class>` or `acceptable`.
    pub expected: String,
    /// Verdict.
    pub status: Status,
    /// Why, for anything but a plain pass.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Counts per status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Cases run or skipped.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed (not expected).
    pub failed: usize,
    /// Failed as the expected-failures file says.
    pub expected_failures: usize,
    /// Listed as expected failures but passed.
    pub unexpected_passes: usize,
    /// Not implemented by the implementation.
    pub unsupported: usize,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The implementation checked.
    pub implementation: ImplementationInfo,
    /// Counts.
    pub summary: Summary,
    /// Per case, in suite order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Recounts the summary after `cases` was filtered.
    pub fn rebuild(report: Report) -> Report {
        Report::new(report.implementation, report.cases)
    }

    pub(crate) fn new(implementation: ImplementationInfo, cases: Vec<CaseReport>) -> Report {
        let mut s = Summary {
            total: cases.len(),
            ..Summary::default()
        };
        for c in &cases {
            match c.status {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::ExpectedFailure => s.expected_failures += 1,
                Status::UnexpectedPass => s.unexpected_passes += 1,
                Status::Unsupported => s.unsupported += 1,
            }
        }
        Report {
            implementation,
            summary: s,
            cases,
        }
    }

    /// True when nothing failed unexpectedly (unexpected passes count as
    /// failures only with `strict`).
    pub fn conforms(&self, strict: bool) -> bool {
        self.summary.failed == 0 && (!strict || self.summary.unexpected_passes == 0)
    }

    /// A table: one line per case (or only the non-passes with
    /// `verbose == false`), then per-manifest counts and a summary line.
    pub fn table(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "implementation: {}", self.implementation.name);
        let width = self
            .cases
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        let shown: Vec<&CaseReport> = self
            .cases
            .iter()
            .filter(|c| verbose || !matches!(c.status, Status::Pass | Status::Unsupported))
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<width$}  {:<5}  {:<28}  detail",
                "id", "", "expected"
            );
            for c in shown {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:<5}  {:<28}  {}",
                    c.id,
                    c.status.label(),
                    c.expected,
                    c.detail
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{:<28} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "manifest", "cases", "pass", "fail", "xfail", "skip"
        );
        let mut manifests: Vec<&str> = self.cases.iter().map(|c| c.manifest.as_str()).collect();
        manifests.dedup();
        for m in manifests {
            let of = |s: Status| {
                self.cases
                    .iter()
                    .filter(|c| c.manifest == m && c.status == s)
                    .count()
            };
            let total = self.cases.iter().filter(|c| c.manifest == m).count();
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>6} {:>6} {:>6} {:>6}",
                m,
                total,
                of(Status::Pass),
                of(Status::Fail) + of(Status::UnexpectedPass),
                of(Status::ExpectedFailure),
                of(Status::Unsupported)
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\nconformance: {} passed, {} failed, {} skipped ({} expected failures, {} unexpected passes)",
            s.passed, s.failed, s.unsupported, s.expected_failures, s.unexpected_passes
        );
        out
    }
}
