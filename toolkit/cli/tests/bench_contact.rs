//! The Mars-month benchmark, scaled down for CI: four sols with a
//! blackout of a sol and a half, mail arriving all the time. With the
//! contact plan everything is delivered once: nothing lost, nothing
//! expired, nothing bounced, and mail that arrived in the blackout waited
//! it out.

mod common;

use common::ok;
use serde_json::Value;

#[test]
fn a_scaled_down_month_loses_nothing_and_nothing_expires_across_a_blackout() {
    let stdout = ok(&[
        "bench",
        "contact",
        "--sols",
        "4",
        "--blackout-start",
        "1",
        "--blackout-sols",
        "1.5",
        "--drain-sols",
        "3",
        "--scale",
        "28800",
        "--runs",
        "plan",
        "--json",
        "-",
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let messages = doc["scenario"]["messages"].as_u64().unwrap();
    assert!(messages >= 30, "{}", doc["scenario"]);
    let run = &doc["runs"][0];
    assert_eq!(run["run"], "plan");
    assert_eq!(run["sent"].as_u64(), Some(messages), "{run}");
    assert_eq!(run["delivered"].as_u64(), Some(messages), "{run}");
    for zero in ["lost", "expired", "bounced", "duplicates", "still_queued"] {
        assert_eq!(run[zero].as_u64(), Some(0), "{zero}: {run}");
    }
    // Mail that arrived as the blackout began waited it out (1.5 sols,
    // about 37 hours) and was still delivered.
    let longest = run["delivery_hours"]["all"]["max"].as_f64().unwrap();
    assert!(longest > 30.0, "{run}");
    assert!(run["peak_queue"].as_u64().unwrap() > 0, "{run}");
    // Compressed Batch SMTP in bundles: fewer link bytes than message
    // bytes on this mix of text and random attachments.
    let ratio = run["link_bytes_per_message_byte"].as_f64().unwrap();
    assert!(ratio > 0.3 && ratio < 1.0, "{run}");
}
