//! The BIB verifier (RFC 9172 §3.6 abstract security blocks, RFC 9173 §3
//! BIB-HMAC-SHA2): any bytes as a bundle, checked with a fixed keyring.
//! The first byte picks `require` (bit 0) and lenient parsing (bit 1).
#![no_main]
use deepmail_bundle::{verify_bibs, BibKey, Bundle, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bundle)) = data.split_first() else {
        return;
    };
    let lenient = mode & 2 != 0;
    let options = ParseOptions {
        allow_missing_primary_crc: lenient,
        allow_missing_bundle_age: lenient,
    };
    let Ok(parsed) = Bundle::parse_with_options(bundle, &options) else {
        return;
    };
    let key = |source: &str| BibKey {
        source: source.parse().unwrap(),
        key: vec![0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b, 0x1a, 0x2b],
    };
    let keys = [key("ipn:2.1"), key("ipn:3.0"), key("ipn:1.0")];
    if let Ok(checks) = verify_bibs(&parsed, &keys, mode & 1 != 0) {
        // Whatever verified names blocks that are in the bundle.
        for c in checks.iter().filter(|c| c.verified) {
            assert!(!c.targets.is_empty());
        }
    }
});
