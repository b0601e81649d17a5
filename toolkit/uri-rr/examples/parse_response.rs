//! Parse the answer to query ID 0x0d0b; `resolver_answer` stands in for
//! the bytes that came back.
//! Run with `cargo run -p deepmail-uri-rr --example parse_response`.
use deepmail_uri_rr::{bsmtp_service_name, build_query, parse_response, Name, TYPE_URI};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = bsmtp_service_name("moon.example")?;
    // `response`: the bytes that came back for query ID 0x0d0b.
    let response = resolver_answer(&name);
    let answer = parse_response(0x0d0b, &name, TYPE_URI, &response)?;
    assert_eq!(
        answer.records[0].target,
        "https://gw.moon.example/inboundmail"
    );
    assert_eq!((answer.records[0].priority, answer.ttl), (10, 3600));
    Ok(())
}

/// The query echoed with QR RD RA set and one URI record (TTL 3600).
fn resolver_answer(name: &Name) -> Vec<u8> {
    let mut m = build_query(0x0d0b, name, TYPE_URI, None);
    m[2] = 0x81; // QR, RD
    m[3] = 0x80; // RA
    m[7] = 1; // ANCOUNT 1
    m.extend_from_slice(&[0xc0, 0x0c, 0x01, 0x00, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0, 39]);
    m.extend_from_slice(&[0, 10, 0, 1]); // priority 10, weight 1
    m.extend_from_slice(b"https://gw.moon.example/inboundmail");
    m
}
