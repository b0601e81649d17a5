//! The RDATA of RFC 7553 §4.1's example record
//! `_ftp._tcp IN URI 10 1 "ftp://ftp1.example.com/public"`.
//! Run with `cargo run -p deepmail-uri-rr --example parse_uri_rdata`.
fn main() -> Result<(), deepmail_uri_rr::DnsError> {
    let rdata = b"\x00\x0a\x00\x01ftp://ftp1.example.com/public";
    let (priority, weight, target) = deepmail_uri_rr::parse_uri_rdata(rdata)?;
    assert_eq!(
        (priority, weight, target.as_str()),
        (10, 1, "ftp://ftp1.example.com/public")
    );
    Ok(())
}
