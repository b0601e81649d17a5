//! Cross-checks against the independent `bp7` crate (dtn7-rs): it parses
//! what we build and fragment, and we parse what it builds. Where bp7 and
//! RFC 9171 disagree, the tests pin down both behaviours and we follow the
//! RFC.

use std::time::Duration;

use bp7::flags::{BlockControlFlags, BundleControlFlags};
use bp7::{
    bundle::Bundle as Bp7Bundle, canonical, crc, dtntime::CreationTimestamp, eid::EndpointID,
    primary,
};
use deepmail_bundle::{build, fragment_adu, inspect, Bundle, BundleSpec, CrcType, Eid, ErrorKind};

fn spec(source: &str, destination: &str) -> BundleSpec {
    BundleSpec {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: 815_000_000_000,
        sequence_number: 42,
        lifetime_ms: 3_600_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc16,
        must_not_fragment: false,
    }
}

fn bp7_parse(bytes: &[u8]) -> Bp7Bundle {
    let mut b = Bp7Bundle::try_from(bytes).expect("bp7 parses it");
    b.validate().expect("bp7 validates it");
    assert!(b.crc_valid(), "bp7 checks the CRCs");
    b
}

fn bp7_bundle(
    src: &str,
    dst: &str,
    payload: &[u8],
    crc_type: u8,
    flags: BundleControlFlags,
) -> Vec<u8> {
    let p = primary::PrimaryBlockBuilder::default()
        .bundle_control_flags(flags.bits())
        .destination(EndpointID::try_from(dst).unwrap())
        .source(EndpointID::try_from(src).unwrap())
        .report_to(EndpointID::try_from(src).unwrap())
        .creation_timestamp(CreationTimestamp::with_time_and_seq(815_000_000_000, 7))
        .lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut b = bp7::bundle::BundleBuilder::default()
        .primary(p)
        .canonicals(vec![
            canonical::new_hop_count_block(2, BlockControlFlags::empty(), 32),
            canonical::new_payload_block(BlockControlFlags::empty(), payload.to_vec()),
        ])
        .build()
        .unwrap();
    b.set_crc(crc_type);
    b.to_cbor()
}

#[test]
fn bp7_parses_what_we_build() {
    for (src, dst) in [
        ("ipn:1.0", "ipn:2.25"),
        ("dtn://earth-gw/", "dtn://moon-gw/mail"),
    ] {
        for (crc, block_crc) in [
            (CrcType::Crc16, CrcType::None),
            (CrcType::Crc32c, CrcType::Crc16),
            (CrcType::Crc16, CrcType::Crc32c),
        ] {
            let s = BundleSpec {
                crc,
                block_crc,
                ..spec(src, dst)
            };
            let bytes = build(b"Subject: hi\r\n\r\nhello\r\n", &s).unwrap();
            let b = bp7_parse(&bytes);
            assert_eq!(b.primary.source.to_string(), src);
            assert_eq!(b.primary.destination.to_string(), dst);
            assert_eq!(b.primary.creation_timestamp.dtntime(), 815_000_000_000);
            assert_eq!(b.primary.creation_timestamp.seqno(), 42);
            assert_eq!(b.primary.lifetime, Duration::from_millis(3_600_000));
            assert_eq!(
                b.payload().unwrap().as_slice(),
                b"Subject: hi\r\n\r\nhello\r\n"
            );
        }
    }
}

#[test]
fn bp7_parses_our_fragments_with_their_offsets() {
    let adu: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let frags = fragment_adu(&adu, &spec("ipn:1.0", "ipn:2.25"), 1_000).unwrap();
    let mut joined = Vec::new();
    for f in &frags {
        let b = bp7_parse(f);
        assert!(b.primary.has_fragmentation());
        assert_eq!(b.primary.fragmentation_offset, joined.len() as u64);
        assert_eq!(b.primary.total_data_length, adu.len() as u64);
        joined.extend_from_slice(b.payload().unwrap());
    }
    assert_eq!(joined, adu);
}

#[test]
fn we_parse_what_bp7_builds() {
    for crc_type in [crc::CRC_16, crc::CRC_32] {
        let flags = || {
            BundleControlFlags::BUNDLE_MUST_NOT_FRAGMENTED
                | BundleControlFlags::BUNDLE_STATUS_REQUEST_DELIVERY
        };
        let bytes = bp7_bundle(
            "dtn://node1/",
            "dtn://node2/inbox",
            b"ABC",
            crc_type,
            flags(),
        );
        let b = Bundle::parse(&bytes).unwrap();
        let i = b.info();
        assert_eq!(i.source, Eid::Dtn("//node1/".into()));
        assert_eq!(i.destination.to_string(), "dtn://node2/inbox");
        assert_eq!(i.flags, flags().bits());
        assert!(i.must_not_fragment);
        assert_eq!(
            (i.creation_time, i.sequence_number, i.lifetime_ms),
            (815_000_000_000, 7, 3_600_000)
        );
        assert_eq!(
            i.crc,
            if crc_type == crc::CRC_16 {
                CrcType::Crc16
            } else {
                CrcType::Crc32c
            }
        );
        assert_eq!(
            i.blocks.iter().map(|b| b.block_type).collect::<Vec<_>>(),
            [10, 1]
        );
        assert_eq!(b.payload(), b"ABC");
    }
    // bp7's own documented example bundle (bp7 lib.rs doc test).
    let example = [
        159, 137, 7, 26, 0, 2, 0, 4, 1, 130, 1, 109, 47, 47, 110, 111, 100, 101, 50, 47, 105, 110,
        98, 111, 120, 130, 1, 110, 47, 47, 110, 111, 100, 101, 49, 47, 49, 50, 51, 52, 53, 54, 130,
        1, 110, 47, 47, 110, 111, 100, 101, 49, 47, 49, 50, 51, 52, 53, 54, 130, 0, 0, 26, 0, 54,
        238, 128, 66, 188, 152, 134, 1, 1, 0, 1, 67, 65, 66, 67, 66, 15, 86, 255,
    ];
    // Creation time 0 without a bundle age block: RFC 9171 §4.4.2 requires
    // one; bp7 builds it without (its validate() flags it too).
    assert_eq!(
        inspect(&example).unwrap_err().kind,
        ErrorKind::MissingBundleAge
    );
}

#[test]
fn we_reassemble_what_bp7_parsed_from_our_fragments_byte_for_byte() {
    // bp7 re-encodes a parsed fragment identically (both use shortest-form
    // integers and definite block arrays), so its output is ours again.
    let frags = fragment_adu(&[1u8; 5_000], &spec("ipn:1.0", "ipn:2.25"), 700).unwrap();
    for f in &frags {
        let mut b = bp7_parse(f);
        assert_eq!(&b.to_cbor(), f);
    }
}

// ---- Where bp7 0.12.1 disagrees with RFC 9171 -------------------------

#[test]
fn divergence_primary_without_crc() {
    // §4.3.1: the primary CRC type MUST be non-zero unless a BIB targets the
    // primary block. bp7 (without its bpsec feature) accepts it.
    let bytes = bp7_bundle(
        "dtn://node1/",
        "dtn://node2/inbox",
        b"ABC",
        crc::CRC_NO,
        BundleControlFlags::empty(),
    );
    let b = Bp7Bundle::try_from(bytes.as_slice()).unwrap();
    assert!(
        b.validate().is_ok(),
        "bp7 accepts a primary block without CRC"
    );
    assert_eq!(
        inspect(&bytes).unwrap_err().kind,
        ErrorKind::MissingPrimaryCrc
    );
}

#[test]
fn divergence_unrecognized_flags_must_be_ignored() {
    // §4.2.3 / §4.2.4: "flags that are unrecognized MUST be ignored".
    // bp7 rejects reserved bundle flag bits in validate() ...
    let s = spec("ipn:1.0", "ipn:2.25");
    // primary flags 0 -> 0x80 (bit 7, reserved), CRCs recomputed by bp7.
    let bytes = reflag(&build(b"x", &s).unwrap(), 0x80);
    assert!(inspect(&bytes).is_ok());
    let b = Bp7Bundle::try_from(bytes.as_slice()).unwrap();
    assert!(
        b.validate().is_err(),
        "bp7 rejects reserved bundle flag bits"
    );
    // ... and cannot even decode block flags above 0xff (it stores them in a u8).
    let block_flags = with_payload_flags(&build(b"x", &s).unwrap(), 0x100);
    assert!(inspect(&block_flags).is_ok());
    assert!(
        Bp7Bundle::try_from(block_flags.as_slice()).is_err(),
        "bp7 fails on block flags > 0xff"
    );
}

#[test]
fn divergence_anonymous_bundle_flags() {
    // §4.2.3: source dtn:none requires must-not-fragment and no report
    // requests. bp7's validate() does not check it.
    let bytes = bp7_bundle_anonymous();
    let b = Bp7Bundle::try_from(bytes.as_slice()).unwrap();
    assert!(
        b.validate().is_ok(),
        "bp7 accepts an anonymous bundle that may be fragmented"
    );
    assert_eq!(inspect(&bytes).unwrap_err().kind, ErrorKind::InvalidFlags);
}

#[test]
fn divergence_dtn_eid_without_name_delimiter() {
    // §4.2.5.1.1: dtn-hier-part = "//" node-name "/" demux; bp7 accepts
    // "//node2" on the wire.
    let bytes = bp7_bundle(
        "dtn://node1/",
        "dtn://node2/x",
        b"A",
        crc::CRC_32,
        BundleControlFlags::empty(),
    );
    let patched = patch_text(&bytes, "//node2/x", "//node2xx");
    let b = Bp7Bundle::try_from(patched.as_slice()).unwrap();
    assert!(b.validate().is_ok(), "bp7 accepts dtn://node2xx");
    assert_eq!(inspect(&patched).unwrap_err().kind, ErrorKind::InvalidEid);
}

#[test]
fn divergence_definite_length_bundle_array() {
    // §4.1: a bundle is an indefinite-length array; bp7 accepts a definite one.
    let mut bytes = build(b"A", &spec("ipn:1.0", "ipn:2.25")).unwrap();
    bytes[0] = 0x82;
    bytes.pop();
    assert!(
        Bp7Bundle::try_from(bytes.as_slice()).is_ok(),
        "bp7 accepts a definite-length bundle array"
    );
    assert_eq!(inspect(&bytes).unwrap_err().kind, ErrorKind::MalformedCbor);
}

// ---- helpers ------------------------------------------------------------

fn bp7_bundle_anonymous() -> Vec<u8> {
    let p = primary::PrimaryBlockBuilder::default()
        .destination(EndpointID::try_from("ipn:2.25").unwrap())
        .source(EndpointID::none())
        .report_to(EndpointID::none())
        .creation_timestamp(CreationTimestamp::with_time_and_seq(815_000_000_000, 1))
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut b = bp7::bundle::BundleBuilder::default()
        .primary(p)
        .canonicals(vec![canonical::new_payload_block(
            BlockControlFlags::empty(),
            b"x".to_vec(),
        )])
        .build()
        .unwrap();
    b.set_crc(crc::CRC_16);
    b.to_cbor()
}

/// Rebuilds a bundle through bp7 with different primary flags, CRCs fixed.
fn reflag(bytes: &[u8], flags: u64) -> Vec<u8> {
    let mut b = Bp7Bundle::try_from(bytes).unwrap();
    b.primary.bundle_control_flags = flags;
    b.set_crc(crc::CRC_16);
    b.to_cbor()
}

/// Replaces the payload block flags (0 in our canonical encoding) with
/// `flags` and recomputes nothing: then fixes the CRC-16 by rebuilding.
fn with_payload_flags(bytes: &[u8], flags: u16) -> Vec<u8> {
    // Our payload block: 86 01 01 00 01 <bstr> 42 <crc16>; flags byte is the 00.
    let at = bytes
        .windows(4)
        .rposition(|w| w == [0x86, 0x01, 0x01, 0x00])
        .unwrap()
        + 3;
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[0x19, (flags >> 8) as u8, flags as u8]);
    out.extend_from_slice(&bytes[at + 1..]);
    // Recompute the payload CRC-16 X.25 over the block with the value zeroed.
    let block_start = at - 3;
    let n = out.len();
    out[n - 3] = 0;
    out[n - 2] = 0;
    let x25 = ::crc::Crc::<u16>::new(&::crc::CRC_16_IBM_SDLC);
    let c = x25.checksum(&out[block_start..n - 1]).to_be_bytes();
    out[n - 3] = c[0];
    out[n - 2] = c[1];
    out
}

/// Swaps a text string of the same length and fixes the primary CRC-32.
fn patch_text(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut b = Bp7Bundle::try_from(bytes).unwrap();
    let mut raw = bytes.to_vec();
    let at = raw
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap();
    raw[at..at + from.len()].copy_from_slice(to.as_bytes());
    // Let bp7 re-encode with its CRCs from the patched content.
    b = Bp7Bundle::try_from(raw.as_slice()).unwrap_or(b);
    b.set_crc(crc::CRC_32);
    b.to_cbor()
}
