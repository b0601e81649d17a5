//! Look up where to POST mail for moon.example: build the URI query, parse
//! the answer, order the URIs (RFC 7553 §4.4). The network is left out;
//! `resolver_answer` stands in for the resolver.
//! Run with `cargo run -p deepmail-uri-rr --example lookup`.
use deepmail_uri_rr::{
    bsmtp_service_name, build_query, order_records, parse_response, DnsError,
    DEFAULT_EDNS_UDP_SIZE, TYPE_URI,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = bsmtp_service_name("moon.example")?;
    let query = build_query(0x2a2a, &name, TYPE_URI, Some(DEFAULT_EDNS_UDP_SIZE));
    // ... send `query` to the resolver over UDP, receive `response` ...
    let response = resolver_answer(&query);
    match parse_response(0x2a2a, &name, TYPE_URI, &response) {
        Ok(answer) => {
            let mut random = || 4; // the host's CSPRNG in real use
            let to_try = order_records(&answer.records, &mut random, &["https"]);
            assert_eq!(to_try[0].target, "https://gw.moon.example/inboundmail");
            assert!(answer.authenticated_data);
        }
        Err(DnsError::Truncated) => { /* repeat over TCP with frame_tcp(&query) */ }
        Err(e) => eprintln!("{}: {e}", e.code()),
    }
    Ok(())
}

/// What a validating resolver answers: the query echoed with QR RD RA AD
/// set, no OPT, and one URI record `10 1 "https://gw.moon.example/inboundmail"`
/// with TTL 3600.
fn resolver_answer(query: &[u8]) -> Vec<u8> {
    let mut m = query.to_vec();
    m.truncate(m.len() - 11); // drop our OPT
    m[2] = 0x81; // QR, RD
    m[3] = 0xa0; // RA, AD
    m[7] = 1; // ANCOUNT 1
    m[11] = 0; // ARCOUNT 0
    m.extend_from_slice(&[0xc0, 0x0c, 0x01, 0x00, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0, 39]);
    m.extend_from_slice(&[0, 10, 0, 1]); // priority 10, weight 1
    m.extend_from_slice(b"https://gw.moon.example/inboundmail");
    m
}
