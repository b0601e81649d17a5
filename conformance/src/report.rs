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

    /// Only the cases of `stage` (`bsmtp-codec`, `fragmenter`,
    /// `resolver`), recounted.
    pub fn only_stage(mut self, stage: &str) -> Report {
        self.cases.retain(|c| c.stage == stage);
        Report::rebuild(self)
    }

    /// The report as printed: pretty JSON and a line end, or the
    /// [`Report::table`].
    pub fn render(&self, json: bool, verbose: bool) -> Result<String, serde_json::Error> {
        if json {
            Ok(serde_json::to_string_pretty(self)? + "\n")
        } else {
            Ok(self.table(verbose))
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

impl Report {
    /// The report as JUnit XML, for other projects' CI: one `<testsuite>`
    /// per manifest, one `<testcase>` per case (classname = manifest, name =
    /// case id). A failure or an unexpected pass is a `<failure>`; an
    /// expected failure and an unsupported operation are `<skipped>` with
    /// the reason.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let s = &self.summary;
        let _ = writeln!(
            out,
            "<testsuites name=\"deepmail conformance: {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            xml_escape(&self.implementation.name),
            s.total,
            s.failed + s.unexpected_passes,
            s.expected_failures + s.unsupported
        );
        let mut manifests: Vec<&str> = self.cases.iter().map(|c| c.manifest.as_str()).collect();
        manifests.dedup();
        for m in manifests {
            let cases: Vec<&CaseReport> = self.cases.iter().filter(|c| c.manifest == m).collect();
            let failures = cases
                .iter()
                .filter(|c| matches!(c.status, Status::Fail | Status::UnexpectedPass))
                .count();
            let skipped = cases
                .iter()
                .filter(|c| matches!(c.status, Status::ExpectedFailure | Status::Unsupported))
                .count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
                xml_escape(m),
                cases.len()
            );
            for c in cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml_escape(m),
                    xml_escape(&c.id)
                );
                let body = match c.status {
                    Status::Pass => None,
                    Status::Fail => Some(format!(
                        "<failure message=\"expected {}\">{}</failure>",
                        xml_escape(&c.expected),
                        xml_escape(&c.detail)
                    )),
                    Status::UnexpectedPass => Some(format!(
                        "<failure message=\"listed as an expected failure, but passes: update the expected-failures file\">{}</failure>",
                        xml_escape(&c.detail)
                    )),
                    Status::ExpectedFailure => Some(format!(
                        "<skipped message=\"expected failure: {}\"/>",
                        xml_escape(&c.detail)
                    )),
                    Status::Unsupported => Some(format!(
                        "<skipped message=\"unsupported: {}\"/>",
                        xml_escape(&c.detail)
                    )),
                };
                match body {
                    None => out.push_str("/>\n"),
                    Some(b) => {
                        let _ = writeln!(out, ">{b}</testcase>");
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text escaped for XML attributes and content (the JUnit report here,
/// the benches' SVG charts); characters XML 1.0 cannot carry at all (most
/// C0 controls) become U+FFFD.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod junit_tests {
    use super::*;

    fn case(id: &str, manifest: &str, status: Status, detail: &str) -> CaseReport {
        CaseReport {
            id: id.into(),
            manifest: manifest.into(),
            stage: "fragmenter".into(),
            operation: "inspect".into(),
            expected: "invalid:crc-mismatch".into(),
            status,
            detail: detail.into(),
        }
    }

    #[test]
    fn junit_has_a_suite_per_manifest_and_escapes_everything() {
        let report = Report::new(
            ImplementationInfo {
                name: "adapter <x>".into(),
                version: String::new(),
                operations: vec![],
                error_classes: false,
                bundle_versions: vec![],
            },
            vec![
                case("a-1", "bundle/inspect.json", Status::Pass, ""),
                case(
                    "a-2",
                    "bundle/inspect.json",
                    Status::Fail,
                    "got \"ok\" & <no> error\u{1}",
                ),
                case(
                    "b-1",
                    "bsmtp/decode.json",
                    Status::ExpectedFailure,
                    "RFC 5321 §4.5.2",
                ),
                case(
                    "b-2",
                    "bsmtp/decode.json",
                    Status::Unsupported,
                    "no decoder",
                ),
                case("b-3", "bsmtp/decode.json", Status::UnexpectedPass, ""),
            ],
        );
        let x = report.junit();
        assert!(x.starts_with("<?xml"));
        assert!(x.contains(
            "<testsuites name=\"deepmail conformance: adapter &lt;x&gt;\" tests=\"5\" failures=\"2\" skipped=\"2\">"
        ));
        assert!(x.contains(
            "<testsuite name=\"bundle/inspect.json\" tests=\"2\" failures=\"1\" skipped=\"0\">"
        ));
        assert!(x.contains(
            "<testsuite name=\"bsmtp/decode.json\" tests=\"3\" failures=\"1\" skipped=\"2\">"
        ));
        assert!(x.contains("<testcase classname=\"bundle/inspect.json\" name=\"a-1\"/>"));
        assert!(x.contains("got &quot;ok&quot; &amp; &lt;no&gt; error\u{FFFD}</failure>"));
        assert!(x.contains("<skipped message=\"expected failure: RFC 5321 §4.5.2\"/>"));
        assert!(x.contains("<skipped message=\"unsupported: no decoder\"/>"));
        assert_eq!(x.matches("<testcase ").count(), 5);
        assert_eq!(x.matches("</testsuite>").count(), 2);
        assert!(x.trim_end().ends_with("</testsuites>"));
    }
}
