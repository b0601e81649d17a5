use super::*;
use crate::bundle::{Bundle, ParseOptions};
use crate::encode::build;
use crate::reassembly::{Reassembler, ReassemblyLimits};
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 9173 Appendix A bundles leave out the primary CRC and the bundle
/// age block; parse them with those two checks off.
fn lenient(bytes: &[u8]) -> Bundle<'_> {
    Bundle::parse_with_options(
        bytes,
        &ParseOptions {
            allow_missing_primary_crc: true,
            allow_missing_bundle_age: true,
        },
    )
    .unwrap()
}

/// The key of Appendix A.1 and A.3: 1a2b repeated, 16 bytes.
fn rfc_key(source: &str) -> BibKey {
    BibKey {
        source: source.parse().unwrap(),
        key: unhex("1a2b1a2b1a2b1a2b1a2b1a2b1a2b1a2b"),
    }
}

// RFC 9173 A.1.4: one BIB (block 2, source ipn:2.1, HMAC 512/512, scope 0)
// over the payload "Ready to generate a 32-byte payload".
const A1: &str = "9f88070000820282010282028202018202820201820018281a000f4240850b0200
005856810101018202820201828201078203008181820158403bdc69b3a34a2b5d3a
8554368bd1e808f606219d2a10a846eae3886ae4ecc83c4ee550fdfb1cc636b904e2
f1a73e303dcd4b6ccece003e95e8164dcc89a156e185010100005823526561647920
746f2067656e657261746520612033322d62797465207061796c6f6164ff";
// A.2.4: a BCB over the payload, no BIB.
const A2: &str = "9f88070000820282010282028202018202820201820018281a000f4240850c0201
0058508101020182028202018482014c5477656c7665313231323132820201820358
1869c411276fecddc4780df42c8a2af89296fabf34d7fae7008204008181820150ef
a4b5ac0108e3816c5606479801bc04850101000058233a09c1e63fe23a7f66a59c73
03837241e070b02619fc59c5214a22f08cd70795e73e9aff";
// A.3.5: a BIB from ipn:3.0 (HMAC 256/256, scope 0) over the primary block
// and the bundle age block, and a BCB over the payload.
const A3: &str = "9f88070000820282010282028202018202820201820018281a000f4240850b0300
00585c8200020101820282030082820105820300828182015820cac6ce8e4c5dae57
988b757e49a6dd1431dc04763541b2845098265bc817241b81820158203ed614c0d9
7f49b3633627779aa18a338d212bf3c92b97759d9739cd50725596850c0401005834
8101020182028202018382014c5477656c7665313231323132820201820400818182
0150efa4b5ac0108e3816c5606479801bc0485070200004319012c85010100005823
3a09c1e63fe23a7f66a59c7303837241e070b02619fc59c5214a22f08cd70795e73e
9aff";
// A.4.5: a BIB (full scope) over the payload, itself encrypted by a BCB.
const A4: &str = "9f88070000820282010282028202018202820201820018281a000f4240850b0300
005846438ed6208eb1c1ffb94d952175167df0902902064a2983910c4fb2340790bf
420a7d1921d5bf7c4721e02ab87a93ab1e0b75cf62e4948727c8b5dae46ed2af0543
9b88029191850c0201005849820301020182028202018382014c5477656c76653132
313231328202038204078281820150220ffc45c8a901999ecc60991dd78b29818201
50d2c51cb2481792dae8b21d848cede99b8501010000582390eab6457593379298a8
724e16e61f837488e127212b59ac91f8a86287b7d07630a122ff";

#[test]
fn rfc9173_a1_bib_over_the_payload_verifies() {
    let bytes = unhex(A1);
    let b = lenient(&bytes);
    let checks = verify_bibs(&b, &[rfc_key("ipn:2.1")], false).unwrap();
    assert_eq!(checks.len(), 1);
    let c = &checks[0];
    assert!(c.verified);
    assert_eq!(
        (c.block_number, c.targets.as_slice(), c.scope),
        (2, &[1u64][..], 0)
    );
    assert_eq!(c.variant, Some(ShaVariant::HmacSha512));
    assert_eq!(c.source, "ipn:2.1".parse().unwrap());
}

#[test]
fn rfc9173_a1_scope_without_the_primary_block_is_not_enough_when_required() {
    // Scope 0 leaves the primary block (destination, lifetime, fragment
    // offsets) unauthenticated; a gateway that requires integrity refuses.
    let bytes = unhex(A1);
    let e = verify_bibs(&lenient(&bytes), &[rfc_key("ipn:2.1")], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMissing, "{e}");
    assert!(e.detail.contains("primary block"), "{e}");
}

#[test]
fn rfc9173_a1_wrong_key_and_altered_payload_are_mismatches() {
    let bytes = unhex(A1);
    let mut wrong = rfc_key("ipn:2.1");
    wrong.key[0] ^= 1;
    let e = verify_bibs(&lenient(&bytes), &[wrong], false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMismatch, "{e}");

    let mut altered = bytes.clone();
    let at = altered.len() - 3; // inside "payload"
    altered[at] ^= 0x20;
    let e = verify_bibs(&lenient(&altered), &[rfc_key("ipn:2.1")], false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMismatch, "{e}");
}

#[test]
fn rfc9173_a1_unknown_source() {
    let bytes = unhex(A1);
    let b = lenient(&bytes);
    let other = rfc_key("ipn:9.1");
    let checks = verify_bibs(&b, std::slice::from_ref(&other), false).unwrap();
    assert!(!checks[0].verified);
    let e = verify_bibs(&b, &[other], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibUnknownKey, "{e}");
    assert!(e.detail.contains("ipn:2.1"), "{e}");
}

#[test]
fn rfc9173_a2_has_no_bib() {
    let bytes = unhex(A2);
    let b = lenient(&bytes);
    assert_eq!(verify_bibs(&b, &[], false).unwrap(), vec![]);
    let e = verify_bibs(&b, &[], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMissing);
}

#[test]
fn rfc9173_a3_bib_over_the_primary_and_bundle_age_blocks_verifies() {
    let bytes = unhex(A3);
    let b = lenient(&bytes);
    let checks = verify_bibs(&b, &[rfc_key("ipn:3.0")], false).unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].verified);
    assert_eq!(checks[0].targets, vec![0, 2]);
    assert_eq!(checks[0].variant, Some(ShaVariant::HmacSha256));
    // The payload is under a BCB, not a BIB.
    let e = verify_bibs(&b, &[rfc_key("ipn:3.0")], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMissing, "{e}");
    // One bit off in the bundle age block's value breaks its HMAC.
    let mut altered = bytes.clone();
    let age = altered
        .windows(3)
        .position(|w| w == [0x19, 0x01, 0x2c])
        .unwrap();
    altered[age + 2] ^= 1;
    let e = verify_bibs(&lenient(&altered), &[rfc_key("ipn:3.0")], false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMismatch, "{e}");
}

#[test]
fn rfc9173_a4_bib_under_a_bcb_is_unsupported() {
    let bytes = unhex(A4);
    let b = lenient(&bytes);
    assert_eq!(
        verify_bibs(&b, &[rfc_key("ipn:2.1")], false).unwrap(),
        vec![]
    );
    let e = verify_bibs(&b, &[rfc_key("ipn:2.1")], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedSecurityContext, "{e}");
    assert!(e.detail.contains("BCB 2"), "{e}");
}

fn spec() -> BundleSpec {
    BundleSpec {
        source: "ipn:1.0".parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: 815_000_000_000,
        sequence_number: 7,
        lifetime_ms: 86_400_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc32c,
        must_not_fragment: false,
    }
}

fn signer(variant: ShaVariant) -> BibSigner {
    BibSigner {
        key: BibKey {
            source: "ipn:1.0".parse().unwrap(),
            key: b"earth-moon shared secret, 32 b!!".to_vec(),
        },
        variant,
    }
}

#[test]
fn a_signed_bundle_verifies_with_its_key_only() {
    for variant in [
        ShaVariant::HmacSha256,
        ShaVariant::HmacSha384,
        ShaVariant::HmacSha512,
    ] {
        let s = signer(variant);
        let signed = add_bib(&build(b"hello moon", &spec()).unwrap(), &s).unwrap();
        let b = Bundle::parse(&signed).unwrap();
        assert_eq!(b.payload(), b"hello moon");
        let checks = verify_bibs(&b, std::slice::from_ref(&s.key), true).unwrap();
        assert_eq!(checks.len(), 1);
        assert!(checks[0].verified && checks[0].scope == SCOPE_ALL);
        assert_eq!(checks[0].variant, Some(variant));
        // The BIB sits before the payload, numbered 2; the payload lost its CRC.
        let blocks = &b.info().blocks;
        assert_eq!(
            blocks
                .iter()
                .map(|x| (x.block_type, x.block_number))
                .collect::<Vec<_>>(),
            vec![(11, 2), (1, 1)]
        );
        assert_eq!(blocks[1].crc, CrcType::None);

        // (Appending a zero byte would not do: HMAC pads short keys with
        // zeros, so that key is the same key.)
        let mut wrong = s.key.clone();
        wrong.key[5] ^= 0x10;
        let e = verify_bibs(&b, &[wrong], true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BibMismatch, "{e}");
    }
}

#[test]
fn an_unsigned_bundle_is_refused_only_when_integrity_is_required() {
    let bytes = build(b"hello moon", &spec()).unwrap();
    let b = Bundle::parse(&bytes).unwrap();
    let key = signer(ShaVariant::HmacSha384).key;
    assert!(verify_bibs(&b, std::slice::from_ref(&key), false)
        .unwrap()
        .is_empty());
    let e = verify_bibs(&b, &[key], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMissing);
    assert!(
        e.to_string()
            .contains("bib-missing: the bundle has no block integrity block"),
        "{e}"
    );
}

#[test]
fn signing_twice_is_refused() {
    let s = signer(ShaVariant::HmacSha256);
    let signed = add_bib(&build(b"x", &spec()).unwrap(), &s).unwrap();
    let e = add_bib(&signed, &s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidSecurityBlock, "{e}");
}

/// Puts `block` (an encoded canonical block) just before the payload.
fn insert_before_payload(bundle: &[u8], block: &[u8]) -> Vec<u8> {
    let b = Bundle::parse(bundle).unwrap();
    let at = b
        .block_refs
        .iter()
        .find(|x| x.block_type == 1)
        .unwrap()
        .range
        .start;
    [&bundle[..at], block, &bundle[at..]].concat()
}

/// A BIB block (no CRC) numbered `number` with `asb` as its data.
fn bib_block(number: u64, asb: &[u8]) -> Vec<u8> {
    let mut out = vec![0x85, 0x0b];
    put_uint(&mut out, number);
    out.extend_from_slice(&[0x00, 0x00]);
    put_head(&mut out, MAJOR_BYTES, asb.len() as u64);
    out.extend_from_slice(asb);
    out
}

/// The ASB of a BIB from ipn:1.0 over `targets`, HMAC-256, scope 7, with
/// zero HMACs.
fn asb(targets: &[u64]) -> Vec<u8> {
    let mut a = Vec::new();
    put_head(&mut a, MAJOR_ARRAY, targets.len() as u64);
    for t in targets {
        put_uint(&mut a, *t);
    }
    a.extend_from_slice(&[0x01, 0x01, 0x82, 0x02, 0x82, 0x01, 0x00]); // ctx 1, params, ipn:1.0
    a.extend_from_slice(&[0x82, 0x82, 0x01, 0x05, 0x82, 0x03, 0x07]);
    put_head(&mut a, MAJOR_ARRAY, targets.len() as u64);
    for _ in targets {
        a.extend_from_slice(&[0x81, 0x82, 0x01, 0x58, 0x20]);
        a.extend_from_slice(&[0; 32]);
    }
    a
}

#[test]
fn a_bib_targeting_a_missing_block_is_invalid() {
    let bytes = insert_before_payload(&build(b"x", &spec()).unwrap(), &bib_block(2, &asb(&[5])));
    let e = verify_bibs(
        &Bundle::parse(&bytes).unwrap(),
        &[signer(ShaVariant::HmacSha256).key],
        false,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidSecurityBlock, "{e}");
    assert!(
        e.detail
            .contains("targets block 5, which is not in the bundle"),
        "{e}"
    );
}

#[test]
fn a_bib_targeting_a_bib_or_twice_the_same_block_is_invalid() {
    let base = build(b"x", &spec()).unwrap();
    let two = insert_before_payload(
        &insert_before_payload(&base, &bib_block(2, &asb(&[1]))),
        &bib_block(3, &asb(&[2])),
    );
    let e = verify_bibs(&Bundle::parse(&two).unwrap(), &[], false).unwrap_err();
    assert!(e.detail.contains("a security block"), "{e}");
    let dup = insert_before_payload(
        &insert_before_payload(&base, &bib_block(2, &asb(&[1]))),
        &bib_block(3, &asb(&[1])),
    );
    let e = verify_bibs(&Bundle::parse(&dup).unwrap(), &[], false).unwrap_err();
    assert!(e.detail.contains("is the target of BIB 2 and BIB 3"), "{e}");
}

#[test]
fn malformed_and_truncated_asbs_are_invalid_not_panics() {
    let base = build(b"x", &spec()).unwrap();
    let good = asb(&[1]);
    for cut in 0..good.len() {
        let bytes = insert_before_payload(&base, &bib_block(2, &good[..cut]));
        let e = verify_bibs(&Bundle::parse(&bytes).unwrap(), &[], false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidSecurityBlock, "cut at {cut}: {e}");
    }
    // Results that do not match the targets.
    let mut two_targets_one_result = asb(&[1]);
    two_targets_one_result[0] = 0x82;
    two_targets_one_result.insert(2, 0x00);
    let bytes = insert_before_payload(&base, &bib_block(2, &two_targets_one_result));
    let e = verify_bibs(&Bundle::parse(&bytes).unwrap(), &[], false).unwrap_err();
    assert!(e.detail.contains("2 targets but 1 result sets"), "{e}");
    // A context we do not know.
    let mut other = asb(&[1]);
    other[2] = 0x19; // context id 0x19xx: two more bytes
    other.splice(3..3, [0x01, 0x00]);
    let bytes = insert_before_payload(&base, &bib_block(2, &other));
    let b = Bundle::parse(&bytes).unwrap();
    assert!(!verify_bibs(&b, &[], false).unwrap()[0].verified);
    let e = verify_bibs(&b, &[], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedSecurityContext, "{e}");
}

#[test]
fn signed_fragments_fit_the_mtu_verify_one_by_one_and_reassemble() {
    let s = signer(ShaVariant::HmacSha384);
    let adu: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    let frags = fragment_adu_signed(&adu, &spec(), 1_500, &s).unwrap();
    assert!(frags.len() > 10);
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut done = None;
    for f in &frags {
        assert!(f.len() <= 1_500, "{}", f.len());
        let b = Bundle::parse(f).unwrap();
        assert!(b.info().is_fragment);
        verify_bibs(&b, std::slice::from_ref(&s.key), true).unwrap();
        done = r.push(f, 815_000_000_001).unwrap();
    }
    assert_eq!(done.unwrap().adu, adu);
    // Exactly at the limit: an MTU that leaves no room after the BIB.
    let e = fragment_adu_signed(&adu, &spec(), 60, &s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MtuTooSmall, "{e}");
}

proptest! {
    #[test]
    fn any_single_bit_flip_in_a_signed_bundle_is_caught(
        payload in proptest::collection::vec(any::<u8>(), 1..300),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let s = signer(ShaVariant::HmacSha256);
        let signed = add_bib(&build(&payload, &spec()).unwrap(), &s).unwrap();
        let mut bad = signed.clone();
        let i = at.index(bad.len());
        bad[i] ^= 1 << bit;
        // Either the bundle no longer parses (CRC, CBOR) or its BIB fails.
        if let Ok(b) = Bundle::parse(&bad) {
            prop_assert!(verify_bibs(&b, std::slice::from_ref(&s.key), true).is_err(), "flip at {i} bit {bit} passed");
        }
    }

    #[test]
    fn verify_never_panics_on_any_bib_data(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        let bytes = insert_before_payload(&build(b"x", &spec()).unwrap(), &bib_block(2, &data));
        if let Ok(b) = Bundle::parse(&bytes) {
            let _ = verify_bibs(&b, &[signer(ShaVariant::HmacSha256).key], true);
        }
    }
}
