//! The BPv7 bundle parser (RFC 9171 §4), with and without a primary CRC.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = deepmail_bundle::inspect(data) {
        // A bundle that parses has a payload inside the input.
        assert!(info.payload_length as usize <= data.len());
    }
    let _ = deepmail_bundle::parse_allowing_missing_primary_crc(data);
});
