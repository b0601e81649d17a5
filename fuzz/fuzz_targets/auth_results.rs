//! The Authentication-Results parser (RFC 8601) the policy plugin trusts
//! for SPF/DKIM/DMARC verdicts, on hostile header values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = deepmail_plugin_basic_policy::auth_results::parse(&text);
});
