//! RFC 7553 §4.4 ordering with a seeded generator: priority first, then
//! weighted random choice; schemes the caller cannot use are dropped.
//! Run with `cargo run -p deepmail-uri-rr --example order_records`.
use deepmail_uri_rr::{order_records, UriRecord};

fn main() {
    let uri = |priority, weight, target: &str| UriRecord {
        priority,
        weight,
        target: target.into(),
        ttl: 300,
    };
    let records = [
        uri(20, 1, "https://backup.moon.example/inboundmail"),
        uri(10, 1, "https://gw.moon.example/inboundmail"),
        uri(10, 0, "ftp://gw.moon.example/"),
    ];
    let mut state = 42u64;
    let mut random = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        state
    };
    let ordered = order_records(&records, &mut random, &["https"]);
    assert_eq!(ordered.len(), 2);
    assert_eq!(ordered[0].target, "https://gw.moon.example/inboundmail");
}
