//! The runner's judgement, with a scripted implementation that answers
//! right, wrong, with the wrong error class, or not at all.

use deepmail_conformance::{
    run, Case, ExpectedFailures, Implementation, ImplementationInfo, Manifest, Request, Response,
    RunOptions, Status, Suite,
};
use serde_json::{json, Value};

struct Scripted {
    info: ImplementationInfo,
    answer: fn(&Request) -> Response,
}

impl Implementation for Scripted {
    fn info(&self) -> &ImplementationInfo {
        &self.info
    }
    fn call(&mut self, request: &Request) -> Response {
        (self.answer)(request)
    }
}

fn case(
    id: &str,
    result: &str,
    error: Option<&str>,
    input: Value,
    expected: Option<Value>,
) -> Case {
    Case {
        id: id.into(),
        comment: String::new(),
        flags: vec![],
        references: vec![],
        result: result.into(),
        error: error.map(str::to_string),
        input,
        expected,
    }
}

fn suite() -> Suite {
    let hex = |s: &str| json!({"hex": hex::encode(s)});
    Suite {
        manifests: vec![Manifest {
            format: "deepmail-vectors/1".into(),
            stage: "bsmtp-codec".into(),
            operation: "decode".into(),
            title: String::new(),
            bundle_version: None,
            path: "bsmtp/decode.json".into(),
            cases: vec![
                case(
                    "ok-1",
                    "valid",
                    None,
                    json!({"batch": hex("x"), "mode": "strict"}),
                    Some(
                        json!({"messages": [{"reverse_path": "a@b", "mail_parameters": [], "forward_paths": [{"mailbox": "c@d", "parameters": []}], "content": hex("hi\r\n")}]}),
                    ),
                ),
                case(
                    "bad-1",
                    "invalid",
                    Some("missing-final-dot"),
                    json!({"batch": hex("y"), "mode": "strict"}),
                    None,
                ),
                case(
                    "maybe-1",
                    "acceptable",
                    None,
                    json!({"batch": hex("z"), "mode": "strict"}),
                    None,
                ),
            ],
        }],
    }
}

fn info(error_classes: bool) -> ImplementationInfo {
    ImplementationInfo {
        name: "scripted".into(),
        version: "0".into(),
        operations: vec!["bsmtp-codec.decode".into()],
        error_classes,
        bundle_versions: vec![],
    }
}

fn statuses(answer: fn(&Request) -> Response, error_classes: bool, xfail: &[&str]) -> Vec<Status> {
    let mut imp = Scripted {
        info: info(error_classes),
        answer,
    };
    let options = RunOptions {
        filter: None,
        expected_failures: ExpectedFailures {
            reasons: xfail
                .iter()
                .map(|id| (id.to_string(), "known".to_string()))
                .collect(),
        },
    };
    run(&suite(), &mut imp, &options)
        .cases
        .iter()
        .map(|c| c.status)
        .collect()
}

fn good(r: &Request) -> Response {
    match r.id.as_str() {
        "ok-1" => Response::Ok(
            json!({"messages": [{"reverse_path": "a@b", "mail_parameters": [], "forward_paths": [{"mailbox": "c@d", "parameters": []}], "content": {"hex": hex::encode("hi\r\n")}}]}),
        ),
        "bad-1" => Response::Error {
            code: "missing-final-dot".into(),
            message: "eof in DATA".into(),
        },
        _ => Response::Error {
            code: "whatever".into(),
            message: String::new(),
        },
    }
}

fn wrong(r: &Request) -> Response {
    match r.id.as_str() {
        "ok-1" => Response::Ok(
            json!({"messages": [{"reverse_path": "a@b", "mail_parameters": [], "forward_paths": [{"mailbox": "c@d", "parameters": []}], "content": {"hex": hex::encode("hi\n")}}]}),
        ),
        "bad-1" => Response::Error {
            code: "bare-lf".into(),
            message: String::new(),
        },
        _ => Response::Error {
            code: "plugin-trap".into(),
            message: "boom".into(),
        },
    }
}

fn accepts_everything(_: &Request) -> Response {
    Response::Ok(json!({"messages": []}))
}

#[test]
fn conforming_answers_pass() {
    assert_eq!(
        statuses(good, true, &[]),
        [Status::Pass, Status::Pass, Status::Pass]
    );
}

#[test]
fn wrong_content_wrong_class_and_traps_fail() {
    assert_eq!(
        statuses(wrong, true, &[]),
        [Status::Fail, Status::Fail, Status::Fail]
    );
}

#[test]
fn error_class_is_ignored_when_the_implementation_has_none() {
    assert_eq!(statuses(wrong, false, &[])[1], Status::Pass);
}

#[test]
fn accepting_invalid_input_fails_and_expected_failures_are_visible() {
    let s = statuses(accepts_everything, true, &["bad-1", "ok-1"]);
    assert_eq!(
        s,
        [
            Status::ExpectedFailure,
            Status::ExpectedFailure,
            Status::Pass
        ]
    );
    let s = statuses(good, true, &["bad-1"]);
    assert_eq!(s[1], Status::UnexpectedPass);
}

#[test]
fn unsupported_operations_are_skipped_not_passed() {
    let mut imp = Scripted {
        info: ImplementationInfo {
            operations: vec![],
            ..info(true)
        },
        answer: good,
    };
    let report = run(&suite(), &mut imp, &RunOptions::default());
    assert_eq!(report.summary.unsupported, 3);
    assert_eq!(report.summary.passed, 0);
    assert!(report
        .table(false)
        .contains("0 passed, 0 failed, 3 skipped"));
}

/// A fragmenter manifest of another Bundle Protocol version is skipped, not
/// failed; one of the implementation's version is run.
#[test]
fn fragmenter_manifests_of_another_bundle_version_are_skipped() {
    let inspect = |version: Option<u64>| Manifest {
        format: "deepmail-vectors/1".into(),
        stage: "fragmenter".into(),
        operation: "inspect".into(),
        title: String::new(),
        bundle_version: version,
        path: "x/inspect.json".into(),
        cases: vec![case(
            "v-1",
            "invalid",
            Some("truncated"),
            json!({"bundle": {"hex": ""}}),
            None,
        )],
    };
    let suite = Suite {
        manifests: vec![inspect(None), inspect(Some(6))],
    };
    fn truncated(_: &Request) -> Response {
        Response::Error {
            code: "truncated".into(),
            message: String::new(),
        }
    }
    for (versions, want) in [
        (vec![], [Status::Pass, Status::Unsupported]),
        (vec![7], [Status::Pass, Status::Unsupported]),
        (vec![6], [Status::Unsupported, Status::Pass]),
        (vec![6, 7], [Status::Pass, Status::Pass]),
    ] {
        let mut imp = Scripted {
            info: ImplementationInfo {
                operations: vec!["fragmenter.inspect".into()],
                bundle_versions: versions.clone(),
                ..info(true)
            },
            answer: truncated,
        };
        let report = run(&suite, &mut imp, &RunOptions::default());
        let got: Vec<Status> = report.cases.iter().map(|c| c.status).collect();
        assert_eq!(got, want, "{versions:?}");
    }
    let mut imp = Scripted {
        info: ImplementationInfo {
            operations: vec!["fragmenter.inspect".into()],
            ..info(true)
        },
        answer: truncated,
    };
    let report = run(&suite, &mut imp, &RunOptions::default());
    assert!(
        report.cases[1].detail.contains("BPv6 vectors"),
        "{}",
        report.cases[1].detail
    );
}
