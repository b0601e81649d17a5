//! The DNS answer parser (RFC 1035 §4, name compression, CNAME chains,
//! RFC 7553 URI RDATA) on hostile responses to a URI query.
#![no_main]
use deepmail_uri_rr::{bsmtp_service_name, parse_response, TYPE_URI};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(question) = bsmtp_service_name("moon.example") else {
        return;
    };
    // The query ID the parser expects is the response's own, so answers
    // that match it get past the header checks.
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let _ = parse_response(id, &question, TYPE_URI, data);
    let _ = deepmail_uri_rr::parse_uri_rdata(data);
});
