//! Property tests: fragmentation and reassembly round trips for arbitrary
//! ADUs and MTUs, re-fragmentation, and hostile input that must never panic.

use deepmail_bundle::{
    build, fragment, fragment_adu, inspect, Bundle, BundleSpec, CrcType, Eid, ErrorKind,
    Reassembler, ReassemblyLimits,
};
use proptest::prelude::*;

const NOW: u64 = 815_000_000_001;

fn crc_type() -> impl Strategy<Value = CrcType> {
    prop_oneof![
        Just(CrcType::None),
        Just(CrcType::Crc16),
        Just(CrcType::Crc32c)
    ]
}

fn spec_strategy() -> impl Strategy<Value = BundleSpec> {
    (
        prop_oneof![
            Just("ipn:1.0"),
            Just("dtn://earth-gw/"),
            Just("ipn:4294967296.0")
        ],
        prop_oneof![Just(0u64), Just(815_000_000_000u64)],
        any::<u64>(),
        prop_oneof![Just(CrcType::Crc16), Just(CrcType::Crc32c)],
        crc_type(),
    )
        .prop_map(|(src, ct, seq, crc, block_crc)| BundleSpec {
            source: src.parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: ct,
            sequence_number: seq,
            lifetime_ms: 86_400_000,
            crc,
            block_crc,
            must_not_fragment: false,
        })
}

/// The smallest MTU that can carry this ADU, found by bisection.
fn min_mtu(adu: &[u8], spec: &BundleSpec) -> usize {
    let (mut lo, mut hi) = (1usize, 200usize);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fragment_adu(adu, spec, mid).is_ok() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Small deterministic shuffle (xorshift), so failures reproduce.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fragment_shuffle_duplicate_reassemble(
        adu in prop::collection::vec(any::<u8>(), 0..200 * 1024),
        spec in spec_strategy(),
        extra in prop_oneof![0usize..64, 64usize..4096, 4096usize..70_000],
        seed in any::<u64>().prop_map(|s| s | 1),
        dup_every in 2usize..6,
    ) {
        prop_assume!(!adu.is_empty());
        let min = min_mtu(&adu, &spec);
        let mtu = min + extra;
        // Keep the fragment count sane for tiny MTUs.
        prop_assume!(adu.len() / (mtu - min + 1) < 20_000);
        let frags = fragment_adu(&adu, &spec, mtu).unwrap();
        let mut pushes: Vec<&Vec<u8>> = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            prop_assert!(f.len() <= mtu);
            pushes.push(f);
            if i % dup_every == 0 {
                pushes.push(f);
            }
        }
        shuffle(&mut pushes, seed);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut delivered = 0;
        for p in pushes {
            if let Some(d) = r.push(p, NOW).unwrap() {
                // Duplicates arriving after completion may complete the ADU
                // again (delivery is at-least-once; the gateway dedupes by
                // bundle id); every delivery is the intact ADU.
                prop_assert_eq!(&d.adu, &adu);
                prop_assert_eq!(&d.destination, &spec.destination);
                delivered += 1;
            }
        }
        prop_assert!(delivered >= 1, "ADU never completed");
    }

    #[test]
    fn refragmenting_preserves_offsets_and_content(
        adu in prop::collection::vec(any::<u8>(), 1..20_000),
        first in 300usize..4000,
        second in 150usize..1000,
    ) {
        let spec = BundleSpec {
            source: "ipn:1.0".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: 815_000_000_000,
            sequence_number: 1,
            lifetime_ms: 1_000,
            crc: CrcType::Crc32c,
            block_crc: CrcType::Crc16,
            must_not_fragment: false,
        };
        let frags = fragment_adu(&adu, &spec, first).unwrap();
        let mut all = Vec::new();
        for f in &frags {
            let outer = Bundle::parse(f).unwrap();
            let base = outer.info().fragment_offset.unwrap_or(0);
            let mut at = base;
            for piece in fragment(f, second).unwrap() {
                let b = Bundle::parse(&piece).unwrap();
                prop_assert!(piece.len() <= second.max(f.len()));
                let off = b.info().fragment_offset.unwrap_or(0);
                prop_assert_eq!(off, at);
                prop_assert_eq!(b.payload(), &adu[off as usize..off as usize + b.payload().len()]);
                at += b.payload().len() as u64;
                all.push(piece);
            }
            prop_assert_eq!(at, base + outer.info().payload_length);
        }
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut out = None;
        for p in all.iter().rev() {
            if let Some(d) = r.push(p, NOW).unwrap() {
                out = Some(d.adu);
            }
        }
        prop_assert_eq!(out.unwrap(), adu);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect(&bytes);
        let _ = fragment(&bytes, 64);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let _ = r.push(&bytes, NOW);
        let _ = r.expire(NOW);
    }

    #[test]
    fn mutated_bundles_never_panic_and_fail_cleanly(
        adu in prop::collection::vec(any::<u8>(), 0..300),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let spec = BundleSpec {
            source: "dtn://a/b".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: 0,
            sequence_number: 1,
            lifetime_ms: 1_000,
            crc: CrcType::Crc16,
            block_crc: CrcType::None,
            must_not_fragment: false,
        };
        let mut bytes = build(&adu, &spec).unwrap();
        for (i, v) in edits {
            let at = i.index(bytes.len());
            bytes[at] = v;
        }
        match inspect(&bytes) {
            Ok(info) => prop_assert!(info.payload_length as usize <= bytes.len()),
            Err(e) => prop_assert!(ErrorKind::ALL.contains(&e.kind) && !e.code().is_empty()),
        }
        let _ = fragment(&bytes, 40);
    }

    #[test]
    fn every_truncation_is_an_error(adu in prop::collection::vec(any::<u8>(), 0..100), spec in spec_strategy()) {
        let bytes = build(&adu, &spec).unwrap();
        prop_assert!(inspect(&bytes).is_ok());
        for n in 0..bytes.len() {
            prop_assert_eq!(inspect(&bytes[..n]).unwrap_err().kind, ErrorKind::Truncated);
        }
    }
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // Primary block then a payload block whose byte string claims 2^63 (and
    // 2^64-1) bytes: rejected as truncated, instantly, nothing allocated.
    let good = build(
        b"x",
        &BundleSpec {
            source: "ipn:1.0".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: 1,
            sequence_number: 1,
            lifetime_ms: 1,
            crc: CrcType::Crc16,
            block_crc: CrcType::None,
            must_not_fragment: false,
        },
    )
    .unwrap();
    let payload_at = good
        .windows(5)
        .rposition(|w| w == [0x85, 0x01, 0x01, 0x00, 0x00])
        .unwrap()
        + 5;
    for claim in [
        [0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0],
        [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut b = good[..payload_at].to_vec();
        b.extend_from_slice(&claim);
        b.extend_from_slice(b"x\xff");
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.offset, Some(payload_at as u64));
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert_eq!(r.push(&b, NOW).unwrap_err().kind, ErrorKind::Truncated);
    }
    // An indefinite array announcing an absurd number of EID items.
    let mut b = good[..2].to_vec();
    b.extend_from_slice(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(inspect(&b).is_err());
}
