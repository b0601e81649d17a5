//! BIB-HMAC-SHA2 interop with hardy-bpv7, an independent BPSec
//! implementation: it verifies the BIBs we add (whole bundles and each
//! signed fragment), and we verify the BIBs it adds.
//!
//! hardy-bpv7 refuses to sign a fragment ("Signing fragmented bundles is
//! not supported (RFC 9172 Section 5)"), so BIBs it makes are checked on
//! whole bundles; fragments it checks are ours.

use base64::Engine;
use deepmail_bundle::{
    add_bib, build, fragment_adu_signed, verify_bibs, BibKey, BibSigner, Bundle, BundleSpec,
    CrcType, ErrorKind, ShaVariant,
};
use hardy_bpv7::bpsec::{key, rfc9173::ScopeFlags, signer};

const KEY: &[u8] = b"a key shared by Earth and Moon..";

fn hardy_key(source: &str, alg: &str, secret: &[u8]) -> key::Key {
    serde_json::from_value(serde_json::json!({
        "kid": source,
        "kty": "oct",
        "alg": alg,
        "key_ops": ["sign", "verify"],
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    }))
    .unwrap()
}

fn spec(source: &str) -> BundleSpec {
    BundleSpec {
        source: source.parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: 815_000_000_000,
        sequence_number: 3,
        lifetime_ms: 3_600_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc32c,
        must_not_fragment: false,
    }
}

fn ours(variant: ShaVariant) -> BibSigner {
    BibSigner {
        key: BibKey {
            source: "ipn:1.0".parse().unwrap(),
            key: KEY.to_vec(),
        },
        variant,
    }
}

/// hardy's verdict on the payload's BIB: Ok(true) verified, Ok(false) no
/// BIB, Err on a bad one.
fn hardy_verifies(bytes: &[u8], keys: &key::KeySet) -> Result<bool, String> {
    let parsed = hardy_bpv7::bundle::ParsedBundle::parse_with_keys(bytes, keys)
        .map_err(|e| format!("hardy parse: {e}"))?;
    parsed
        .bundle
        .verify_block(1, bytes, keys)
        .map_err(|e| format!("hardy verify: {e}"))
}

#[test]
fn hardy_verifies_our_bibs_in_every_variant() {
    for (variant, alg) in [
        (ShaVariant::HmacSha256, "HS256"),
        (ShaVariant::HmacSha384, "HS384"),
        (ShaVariant::HmacSha512, "HS512"),
    ] {
        let signed = add_bib(
            &build(b"Subject: hi\r\n\r\nfrom Earth\r\n", &spec("ipn:1.0")).unwrap(),
            &ours(variant),
        )
        .unwrap();
        let keys = key::KeySet::new(vec![hardy_key("ipn:1.0", alg, KEY)]);
        assert_eq!(hardy_verifies(&signed, &keys), Ok(true), "{variant:?}");
        // With another key hardy refuses it too.
        let wrong = key::KeySet::new(vec![hardy_key(
            "ipn:1.0",
            alg,
            b"another key entirely.....",
        )]);
        assert!(
            hardy_verifies(&signed, &wrong).is_err(),
            "{variant:?} verified with the wrong key"
        );
    }
}

#[test]
fn hardy_verifies_each_of_our_signed_fragments() {
    let adu: Vec<u8> = (0..9_000u32).map(|i| (i % 251) as u8).collect();
    let frags =
        fragment_adu_signed(&adu, &spec("ipn:1.0"), 1_024, &ours(ShaVariant::HmacSha384)).unwrap();
    assert!(frags.len() > 5);
    let keys = key::KeySet::new(vec![hardy_key("ipn:1.0", "HS384", KEY)]);
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(hardy_verifies(f, &keys), Ok(true), "fragment {i}");
    }
}

fn hardy_signed(payload: &[u8], alg: &str, scope: ScopeFlags) -> Vec<u8> {
    // The bundle is ours (built, not yet signed); the BIB is hardy's.
    let unsigned = build(payload, &spec("ipn:7.0")).unwrap();
    let parsed =
        hardy_bpv7::bundle::ParsedBundle::parse_with_keys(&unsigned, &key::KeySet::new(vec![]))
            .unwrap();
    let k = hardy_key("ipn:7.0", alg, KEY);
    signer::Signer::new(&parsed.bundle, &unsigned)
        .sign_block(
            1,
            signer::Context::HMAC_SHA2(scope),
            "ipn:7.0".parse().unwrap(),
            &k,
        )
        .map_err(|(_, e)| e)
        .unwrap()
        .rebuild()
        .unwrap()
        .into_vec()
}

#[test]
fn we_verify_hardys_bibs() {
    let theirs = BibKey {
        source: "ipn:7.0".parse().unwrap(),
        key: KEY.to_vec(),
    };
    for (alg, variant) in [
        ("HS256", ShaVariant::HmacSha256),
        ("HS384", ShaVariant::HmacSha384),
        ("HS512", ShaVariant::HmacSha512),
    ] {
        let signed = hardy_signed(
            b"Subject: hi\r\n\r\nfrom hardy\r\n",
            alg,
            ScopeFlags::default(),
        );
        let b = Bundle::parse(&signed).unwrap();
        let checks = verify_bibs(&b, std::slice::from_ref(&theirs), true).unwrap();
        assert_eq!(checks.len(), 1, "{alg}");
        assert!(checks[0].verified);
        assert_eq!(checks[0].variant, Some(variant));
        assert_eq!(checks[0].targets, vec![1]);

        // The same bundle with one payload bit changed, and with a wrong key.
        let mut altered = signed.clone();
        let at = altered.len() - 4;
        altered[at] ^= 0x04;
        if let Ok(b) = Bundle::parse(&altered) {
            let e = verify_bibs(&b, std::slice::from_ref(&theirs), true).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BibMismatch, "{alg}: {e}");
        }
        let mut wrong = theirs.clone();
        wrong.key[0] ^= 1;
        let e = verify_bibs(&b, &[wrong], true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BibMismatch, "{alg}: {e}");
    }
}

#[test]
fn we_verify_hardys_bibs_with_a_partial_scope_but_require_the_primary_block() {
    let theirs = BibKey {
        source: "ipn:7.0".parse().unwrap(),
        key: KEY.to_vec(),
    };
    let scope = ScopeFlags {
        include_primary_block: false,
        include_target_header: true,
        include_security_header: false,
        ..Default::default()
    };
    let signed = hardy_signed(b"partial scope", "HS256", scope);
    let b = Bundle::parse(&signed).unwrap();
    let checks = verify_bibs(&b, std::slice::from_ref(&theirs), false).unwrap();
    assert!(checks[0].verified);
    assert_eq!(checks[0].scope, 0x2);
    let e = verify_bibs(&b, &[theirs], true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BibMissing, "{e}");
}
