//! The reassembler (RFC 9171 §5.9) fed a sequence of pushes: the input is
//! split into bundles by 2-byte big-endian length prefixes, each pushed at a
//! clock that moves forward, with small limits; expiry runs between pushes.
//! Memory must stay within the limits whatever arrives.
#![no_main]
use deepmail_bundle::{Reassembler, ReassemblyLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReassemblyLimits {
        max_adu_bytes: 1 << 16,
        max_pending_bytes: 1 << 17,
        max_pending_bundles: 64,
    };
    let mut r = Reassembler::new(limits);
    let mut rest = data;
    let mut now = 800_000_000_000u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (bundle, tail) = rest.split_at(take);
        rest = tail;
        if let Ok(Some(adu)) = r.push(bundle, now) {
            assert!(adu.adu.len() as u64 <= limits.max_adu_bytes);
        }
        let pending = r.pending();
        assert!(pending.bytes <= limits.max_pending_bytes);
        assert!(pending.bundles <= limits.max_pending_bundles);
        now += u64::from(len as u8) * 1000;
        let _ = r.expire(now);
    }
});
