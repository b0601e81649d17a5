//! `deepmail bench queue` and `bench compress` run end to end on small
//! inputs and report numbers that make sense; a corpus that is not there
//! is an error naming it.

mod common;

use common::{fails, ok};
use serde_json::Value;

#[test]
fn bench_queue_measures_each_queue_length() {
    let stdout = ok(&[
        "bench",
        "queue",
        "--queued",
        "0,300",
        "--messages",
        "40",
        "--connections",
        "2",
        "--idle-secs",
        "1",
        "--json",
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["queued"], 0);
    assert_eq!(runs[1]["queued"], 300);
    for r in runs {
        assert!(r["accepted_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["idle_cpu_percent"].as_f64().unwrap() < 100.0, "{r}");
        assert!(r["cpu_ms_per_message"].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[test]
fn bench_compress_reports_link_bytes_per_message_byte() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("msg_01.txt"),
        "From: a@earth.example\nTo: b@moon.example\nSubject: hello\n\n".to_string()
            + &"all systems nominal\n".repeat(200),
    )
    .unwrap();
    // Incompressible bytes, as an image would be.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(dir.path().join("photo.jpg"), noise).unwrap();
    let stdout = ok(&[
        "bench",
        "compress",
        "--json",
        "--corpus",
        dir.path().to_str().unwrap(),
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let rows = doc["rows"].as_array().unwrap();
    // The text message, the attachment, and the two generated messages.
    assert_eq!(rows.len(), 4, "{doc}");
    let ratio = |i: usize| rows[i]["link_bytes_per_message_byte"].as_f64().unwrap();
    assert!(ratio(0) < 0.2, "repetitive text compresses: {doc}");
    assert!(
        ratio(1) > 0.7 && ratio(1) < 0.8,
        "noise gains only base64 back: {doc}"
    );
    let total = &doc["total"];
    assert!(total["gzip_bytes"].as_u64() < total["bsmtp_bytes"].as_u64());

    let err = fails(&["bench", "compress", "--corpus", "/nonexistent/corpus"]);
    assert!(err.contains("/nonexistent/corpus"), "{err}");
}
