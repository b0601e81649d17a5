//! A URI query for `_bsmtp._https.moon.example` with an EDNS(0) OPT record
//! advertising 1232 octets.
//! Run with `cargo run -p deepmail-uri-rr --example build_query`.
use deepmail_uri_rr::{bsmtp_service_name, build_query, TYPE_URI};

fn main() -> Result<(), deepmail_uri_rr::NameError> {
    let name = bsmtp_service_name("moon.example")?;
    let query = build_query(0xbeef, &name, TYPE_URI, Some(1232));
    assert_eq!(&query[..4], &[0xbe, 0xef, 0x01, 0x20]); // ID, RD + AD
    assert_eq!(query.len(), 12 + 28 + 4 + 11);
    Ok(())
}
