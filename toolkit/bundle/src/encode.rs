//! Building bundles (RFC 9171 §4.3, canonical form of `vectors/README.md`)
//! and fragmenting them (§5.8).
//!
//! Both go through one [`Template`]: the primary block fields that never
//! change, the extension blocks as encoded bytes, and the payload block's
//! flags and CRC type. A fragment is the template plus fragment offset, total
//! ADU length and a slice of the payload; its exact encoded size is known
//! before it is written, so each fragment carries as many payload bytes as
//! the MTU allows.

use std::borrow::Cow;

use crate::bundle::{
    Bundle, BLOCK_REPLICATE, BUNDLE_AGE_BLOCK, FLAG_IS_FRAGMENT, FLAG_MUST_NOT_FRAGMENT,
    PAYLOAD_BLOCK,
};
use crate::cbor::{
    head_len, put_head, put_uint, BREAK, INDEFINITE_ARRAY, MAJOR_ARRAY, MAJOR_BYTES,
};
use crate::checksum::{extend_and_seal, seal, CrcType};
use crate::eid::Eid;
use crate::error::{BundleError, ErrorKind, Result};

/// What to put in the primary block of a new bundle (the WIT `bundle-spec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSpec {
    /// Source node ID, e.g. `ipn:1.0`; `dtn:none` for an anonymous bundle
    /// (which must then set `must_not_fragment`, §4.2.3).
    pub source: Eid,
    /// Destination EID; mail goes to service 25, e.g. `ipn:2.25`.
    pub destination: Eid,
    /// Report-to EID; `dtn:none` when no reports are wanted.
    pub report_to: Eid,
    /// Creation timestamp time, DTN milliseconds. 0 means "no clock"
    /// (§4.2.7); the bundle then gets a bundle age block (§4.4.2).
    pub creation_time: u64,
    /// Creation timestamp sequence number.
    pub sequence_number: u64,
    /// Lifetime in milliseconds after the creation time.
    pub lifetime_ms: u64,
    /// CRC type of the primary block; `None` is refused (`invalid-spec`),
    /// as §4.3.1 requires a CRC absent a block integrity block.
    pub crc: CrcType,
    /// CRC type of the payload block (and the bundle age block, if any).
    pub block_crc: CrcType,
    /// Set the "bundle must not be fragmented" flag.
    pub must_not_fragment: bool,
}

/// An extension block carried through unchanged.
#[derive(Clone, Debug)]
struct Extension<'a> {
    raw: Cow<'a, [u8]>,
    /// Goes into every fragment, not only the first.
    replicate: bool,
}

/// Everything about a bundle except its payload and fragment fields.
#[derive(Clone, Debug)]
pub(crate) struct Template<'a> {
    /// Bundle processing control flags (the fragment bit is added per fragment).
    flags: u64,
    crc: CrcType,
    /// Encoded destination, source, report-to, creation timestamp, lifetime.
    fields: Cow<'a, [u8]>,
    extensions: Vec<Extension<'a>>,
    payload_flags: u64,
    payload_crc: CrcType,
}

fn invalid_spec(detail: impl Into<String>) -> BundleError {
    BundleError::new(ErrorKind::InvalidSpec, detail)
}

impl Template<'static> {
    pub(crate) fn from_spec(spec: &BundleSpec) -> Result<Self> {
        if spec.crc == CrcType::None {
            return Err(invalid_spec(
                "the primary block needs a CRC (crc16 or crc32c); none is allowed only with a block integrity block",
            ));
        }
        for (name, eid) in [
            ("source", &spec.source),
            ("destination", &spec.destination),
            ("report-to", &spec.report_to),
        ] {
            eid.validate()
                .map_err(|e| invalid_spec(format!("{name} EID {}", e.detail)))?;
        }
        if spec.source == Eid::Null && !spec.must_not_fragment {
            return Err(invalid_spec(
                "an anonymous bundle (source dtn:none) must set must-not-fragment",
            ));
        }
        let mut fields = Vec::with_capacity(64);
        spec.destination.encode(&mut fields);
        spec.source.encode(&mut fields);
        spec.report_to.encode(&mut fields);
        put_head(&mut fields, MAJOR_ARRAY, 2);
        put_uint(&mut fields, spec.creation_time);
        put_uint(&mut fields, spec.sequence_number);
        put_uint(&mut fields, spec.lifetime_ms);
        let mut extensions = Vec::new();
        if spec.creation_time == 0 {
            // §4.4.2: without a clock the bundle carries its age, in every
            // fragment (block number 2, replicated, age 0 at creation).
            let mut raw = Vec::with_capacity(12);
            put_head(
                &mut raw,
                MAJOR_ARRAY,
                5 + u64::from(spec.block_crc != CrcType::None),
            );
            put_uint(&mut raw, BUNDLE_AGE_BLOCK);
            put_uint(&mut raw, 2);
            put_uint(&mut raw, BLOCK_REPLICATE);
            put_uint(&mut raw, spec.block_crc.code());
            put_head(&mut raw, MAJOR_BYTES, 1);
            put_uint(&mut raw, 0);
            seal(&mut raw, 0, spec.block_crc);
            extensions.push(Extension {
                raw: Cow::Owned(raw),
                replicate: true,
            });
        }
        Ok(Template {
            flags: if spec.must_not_fragment {
                FLAG_MUST_NOT_FRAGMENT
            } else {
                0
            },
            crc: spec.crc,
            fields: Cow::Owned(fields),
            extensions,
            payload_flags: 0,
            payload_crc: spec.block_crc,
        })
    }
}

impl<'a> Template<'a> {
    pub(crate) fn from_bundle(b: &Bundle<'a>) -> Self {
        let bytes = b.as_bytes();
        let no_clock = b.info().creation_time == 0;
        Template {
            flags: b.info().flags,
            crc: b.info().crc,
            fields: Cow::Borrowed(&bytes[b.primary_fields.clone()]),
            extensions: b
                .extensions
                .iter()
                .map(|x| Extension {
                    raw: Cow::Borrowed(&bytes[x.range.clone()]),
                    // The bundle age block must be in every fragment of a
                    // bundle without a clock (§4.4.2), flagged or not.
                    replicate: x.flags & BLOCK_REPLICATE != 0
                        || (no_clock && x.block_type == BUNDLE_AGE_BLOCK),
                })
                .collect(),
            payload_flags: b.payload_flags,
            payload_crc: b.payload_crc,
        }
    }

    fn primary_flags(&self, fragment: Option<(u64, u64)>) -> u64 {
        if fragment.is_some() {
            self.flags | FLAG_IS_FRAGMENT
        } else {
            self.flags & !FLAG_IS_FRAGMENT
        }
    }

    fn primary_len(&self, fragment: Option<(u64, u64)>) -> usize {
        let mut n = 1 + 1 + head_len(self.primary_flags(fragment)) + 1 + self.fields.len();
        if let Some((offset, total)) = fragment {
            n += head_len(offset) + head_len(total);
        }
        n + self.crc.field_len()
    }

    fn write_primary(&self, out: &mut Vec<u8>, fragment: Option<(u64, u64)>) {
        let start = out.len();
        let items =
            8 + if fragment.is_some() { 2 } else { 0 } + u64::from(self.crc != CrcType::None);
        put_head(out, MAJOR_ARRAY, items);
        put_uint(out, 7);
        put_uint(out, self.primary_flags(fragment));
        put_uint(out, self.crc.code());
        out.extend_from_slice(&self.fields);
        if let Some((offset, total)) = fragment {
            put_uint(out, offset);
            put_uint(out, total);
        }
        seal(out, start, self.crc);
    }

    /// Payload block length for `len` payload bytes.
    fn payload_len(&self, len: usize) -> usize {
        1 + 1
            + 1
            + head_len(self.payload_flags)
            + 1
            + head_len(len as u64)
            + len
            + self.payload_crc.field_len()
    }

    fn write_payload(&self, out: &mut Vec<u8>, data: &[u8]) {
        let start = out.len();
        put_head(
            out,
            MAJOR_ARRAY,
            5 + u64::from(self.payload_crc != CrcType::None),
        );
        put_uint(out, PAYLOAD_BLOCK);
        put_uint(out, 1);
        put_uint(out, self.payload_flags);
        put_uint(out, self.payload_crc.code());
        put_head(out, MAJOR_BYTES, data.len() as u64);
        extend_and_seal(out, start, data, self.payload_crc);
    }

    fn extensions(&self, all: bool) -> impl Iterator<Item = &[u8]> + '_ {
        self.extensions
            .iter()
            .filter(move |x| all || x.replicate)
            .map(|x| &*x.raw)
    }

    /// Encoded size of a bundle with `len` payload bytes.
    fn bundle_len(&self, fragment: Option<(u64, u64)>, all_extensions: bool, len: usize) -> usize {
        let ext: usize = self.extensions(all_extensions).map(<[u8]>::len).sum();
        1 + self.primary_len(fragment) + ext + self.payload_len(len) + 1
    }

    fn write_bundle(
        &self,
        fragment: Option<(u64, u64)>,
        all_extensions: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let len = self.bundle_len(fragment, all_extensions, data.len());
        let mut out = Vec::with_capacity(len);
        out.push(INDEFINITE_ARRAY);
        self.write_primary(&mut out, fragment);
        for x in self.extensions(all_extensions) {
            out.extend_from_slice(x);
        }
        self.write_payload(&mut out, data);
        out.push(BREAK);
        debug_assert_eq!(out.len(), len);
        out
    }

    /// The unfragmented bundle carrying `adu`.
    pub(crate) fn whole(&self, adu: &[u8]) -> Vec<u8> {
        self.write_bundle(None, true, adu)
    }

    /// Size of [`Template::whole`] for an ADU of `len` bytes.
    pub(crate) fn whole_len(&self, len: usize) -> usize {
        self.bundle_len(None, true, len)
    }

    /// Fragments `payload`, which starts at `base` in an original ADU of
    /// `total` bytes, into bundles of at most `mtu` bytes (§5.8).
    pub(crate) fn fragment(
        &self,
        payload: &[u8],
        base: u64,
        total: u64,
        mtu: usize,
    ) -> Result<Vec<Vec<u8>>> {
        if payload.is_empty() {
            return Err(BundleError::new(
                ErrorKind::MtuTooSmall,
                format!("the bundle is larger than the MTU of {mtu} bytes and its payload is empty, so it cannot be split"),
            ));
        }
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < payload.len() {
            let first = pos == 0;
            let offset = base + pos as u64;
            // Everything but the payload byte string, for this offset.
            let fixed = self.bundle_len(Some((offset, total)), first, 0) - 1;
            let room = mtu.saturating_sub(fixed);
            let fit = max_data(room);
            if fit == 0 {
                return Err(BundleError::new(
                    ErrorKind::MtuTooSmall,
                    format!(
                        "a fragment at offset {offset} needs {fixed} bytes of blocks and headers, so an MTU of {mtu} bytes holds no payload; use at least {}",
                        fixed + 2
                    ),
                ));
            }
            let len = fit.min(payload.len() - pos);
            let bundle = self.write_bundle(Some((offset, total)), first, &payload[pos..pos + len]);
            debug_assert!(bundle.len() <= mtu);
            out.push(bundle);
            pos += len;
        }
        Ok(out)
    }
}

/// The most payload bytes whose byte string (head plus data) fits in `room`.
fn max_data(room: usize) -> usize {
    if room < 2 {
        return 0;
    }
    let mut len = room - 1;
    while head_len(len as u64) + len > room {
        len -= 1;
    }
    len
}

/// Builds one bundle whose payload is `adu`: the primary block from `spec`
/// and a payload block (number 1), in the canonical encoding of
/// `vectors/README.md`. Never fragmented, whatever its size. With
/// `creation_time` 0 a bundle age block (type 7, number 2, age 0, flagged
/// "replicate in every fragment") precedes the payload, as §4.4.2 requires.
pub fn build(adu: &[u8], spec: &BundleSpec) -> core::result::Result<Vec<u8>, BundleError> {
    Ok(Template::from_spec(spec)?.whole(adu))
}

/// Builds the bundle for `adu` and fragments it so that no bundle is larger
/// than `mtu` bytes (§5.8). Returns the one bundle when it fits already.
pub fn fragment_adu(
    adu: &[u8],
    spec: &BundleSpec,
    mtu: usize,
) -> core::result::Result<Vec<Vec<u8>>, BundleError> {
    let template = Template::from_spec(spec)?;
    if template.whole_len(adu.len()) <= mtu {
        return Ok(vec![template.whole(adu)]);
    }
    if spec.must_not_fragment {
        return Err(BundleError::new(
            ErrorKind::MustNotFragment,
            format!(
                "the bundle is {} bytes, more than the MTU of {mtu}, and the spec sets must-not-fragment",
                template.whole_len(adu.len())
            ),
        ));
    }
    template.fragment(adu, 0, adu.len() as u64, mtu)
}

/// Fragments an existing bundle so that no piece is larger than `mtu`
/// bytes (§5.8). A bundle that fits is returned as it is. Fragmenting a
/// fragment keeps offsets relative to the original ADU. Extension blocks
/// flagged "replicate in every fragment" go into every fragment, the others
/// into the first one only.
pub fn fragment(bundle: &[u8], mtu: usize) -> core::result::Result<Vec<Vec<u8>>, BundleError> {
    let parsed = Bundle::parse(bundle)?;
    if bundle.len() <= mtu {
        return Ok(vec![bundle.to_vec()]);
    }
    let info = parsed.info();
    if info.must_not_fragment {
        return Err(BundleError::at(
            ErrorKind::MustNotFragment,
            1,
            format!(
                "the bundle is {} bytes, more than the MTU of {mtu}, and its flags 0x{:x} say it must not be fragmented",
                bundle.len(),
                info.flags
            ),
        ));
    }
    let (base, total) = match (info.fragment_offset, info.total_adu_length) {
        (Some(offset), Some(total)) => (offset, total),
        _ => (0, info.payload_length),
    };
    Template::from_bundle(&parsed).fragment(parsed.payload(), base, total, mtu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::inspect;
    use crate::testutil::{bundle, eid, B, P};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    pub(crate) fn spec() -> BundleSpec {
        BundleSpec {
            source: "ipn:1.0".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: 815_000_000_000,
            sequence_number: 0,
            lifetime_ms: 86_400_000,
            crc: CrcType::Crc32c,
            block_crc: CrcType::Crc16,
            must_not_fragment: false,
        }
    }

    // Expected bytes from an independent Python encoder (bitwise CRCs).
    #[test]
    fn build_is_byte_exact_for_the_readme_spec() {
        let got = build(b"Subject: hi\r\n\r\nhello\r\n", &spec()).unwrap();
        let want = hex("9f890700028202820218198202820100820100821b000000bdc1c91600001a05265c0044eba49f8e8601010001565375626a6563743a2068690d0a0d0a68656c6c6f0d0a42c9a6ff");
        assert_eq!(got, want);
    }

    #[test]
    fn build_is_byte_exact_for_dtn_eids_and_must_not_fragment() {
        let s = BundleSpec {
            source: "dtn://earth-gw/mail".parse().unwrap(),
            destination: "dtn://moon-gw/~mail".parse().unwrap(),
            report_to: "dtn://earth-gw/".parse().unwrap(),
            creation_time: 1,
            sequence_number: 65536,
            lifetime_ms: 0,
            crc: CrcType::Crc16,
            block_crc: CrcType::None,
            must_not_fragment: true,
        };
        let want = hex("9f8907040182016f2f2f6d6f6f6e2d67772f7e6d61696c82016f2f2f65617274682d67772f6d61696c82016b2f2f65617274682d67772f82011a0001000000423608850101000040ff");
        assert_eq!(build(b"", &s).unwrap(), want);
    }

    #[test]
    fn invalid_spec() {
        let no_crc = BundleSpec {
            crc: CrcType::None,
            ..spec()
        };
        assert_eq!(
            build(b"x", &no_crc).unwrap_err().kind,
            ErrorKind::InvalidSpec
        );
        let bad_eid = BundleSpec {
            destination: Eid::Dtn("nohost".into()),
            ..spec()
        };
        assert_eq!(
            build(b"x", &bad_eid).unwrap_err().kind,
            ErrorKind::InvalidSpec
        );
        let none_text = BundleSpec {
            report_to: Eid::Dtn("none".into()),
            ..spec()
        };
        assert_eq!(
            build(b"x", &none_text).unwrap_err().kind,
            ErrorKind::InvalidSpec
        );
        let anonymous = BundleSpec {
            source: Eid::Null,
            ..spec()
        };
        assert_eq!(
            fragment_adu(b"x", &anonymous, 100).unwrap_err().kind,
            ErrorKind::InvalidSpec
        );
        let anonymous_ok = BundleSpec {
            source: Eid::Null,
            must_not_fragment: true,
            ..spec()
        };
        assert!(inspect(&build(b"x", &anonymous_ok).unwrap()).is_ok());
    }

    #[test]
    fn no_clock_gets_a_replicated_bundle_age_block() {
        let s = BundleSpec {
            creation_time: 0,
            ..spec()
        };
        let b = build(b"hello", &s).unwrap();
        let info = inspect(&b).unwrap();
        assert_eq!(info.blocks.len(), 2);
        assert_eq!(
            (
                info.blocks[0].block_type,
                info.blocks[0].block_number,
                info.blocks[0].flags
            ),
            (7, 2, BLOCK_REPLICATE)
        );
        for f in fragment_adu(&[7u8; 1000], &s, 200).unwrap() {
            let i = inspect(&f).unwrap();
            assert!(i.blocks.iter().any(|b| b.block_type == 7));
        }
    }

    #[test]
    fn fits_already_gives_one_unfragmented_bundle() {
        let whole = build(b"abc", &spec()).unwrap();
        assert_eq!(
            fragment_adu(b"abc", &spec(), whole.len()).unwrap(),
            vec![whole.clone()]
        );
        assert_eq!(fragment(&whole, whole.len()).unwrap(), vec![whole.clone()]);
        let mnf = BundleSpec {
            must_not_fragment: true,
            ..spec()
        };
        let whole = build(b"abc", &mnf).unwrap();
        assert_eq!(fragment(&whole, whole.len()).unwrap(), vec![whole]);
    }

    #[test]
    fn must_not_fragment() {
        let mnf = BundleSpec {
            must_not_fragment: true,
            ..spec()
        };
        let adu = [1u8; 500];
        assert_eq!(
            fragment_adu(&adu, &mnf, 100).unwrap_err().kind,
            ErrorKind::MustNotFragment
        );
        let whole = build(&adu, &mnf).unwrap();
        assert_eq!(
            fragment(&whole, 100).unwrap_err().kind,
            ErrorKind::MustNotFragment
        );
    }

    #[test]
    fn mtu_too_small_is_exact() {
        let adu = [9u8; 300];
        let whole = build(&adu, &spec()).unwrap();
        // Find the smallest MTU that works; one less must fail with mtu-too-small.
        let min = (1..whole.len())
            .find(|&m| fragment(&whole, m).is_ok())
            .unwrap();
        let e = fragment(&whole, min - 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MtuTooSmall, "{e}");
        assert!(e.detail.contains("use at least"), "{e}");
        // At the minimum some fragment carries exactly one byte.
        let frags = fragment(&whole, min).unwrap();
        assert!(frags
            .iter()
            .any(|f| inspect(f).unwrap().payload_length == 1));
        assert_eq!(
            fragment_adu(&adu, &spec(), min - 1).unwrap_err().kind,
            ErrorKind::MtuTooSmall
        );
        assert_eq!(
            fragment_adu(b"", &spec(), 10).unwrap_err().kind,
            ErrorKind::MtuTooSmall
        );
    }

    #[test]
    fn fragments_are_packed_to_the_mtu() {
        let adu: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        for mtu in [100, 255, 256, 300, 1024, 65_600, 65_560] {
            let frags = fragment_adu(&adu, &spec(), mtu).unwrap();
            let mut next = 0u64;
            for (i, f) in frags.iter().enumerate() {
                assert!(f.len() <= mtu);
                let info = inspect(f).unwrap();
                assert_eq!(info.fragment_offset, Some(next));
                assert_eq!(info.total_adu_length, Some(adu.len() as u64));
                next += info.payload_length;
                if i + 1 < frags.len() {
                    // One more payload byte would not have fitted: at most the
                    // byte-string head could have grown.
                    assert!(
                        mtu - f.len() <= 8,
                        "mtu {mtu} fragment {i} is {} bytes",
                        f.len()
                    );
                    let one_more = Template::from_spec(&spec()).unwrap().bundle_len(
                        Some((info.fragment_offset.unwrap(), adu.len() as u64)),
                        true,
                        info.payload_length as usize + 1,
                    );
                    assert!(one_more > mtu);
                }
            }
            assert_eq!(next, adu.len() as u64);
        }
    }

    #[test]
    fn extension_blocks_first_fragment_only_unless_replicated() {
        let mut replicated = B::other(192, 3, BLOCK_REPLICATE, b"everywhere");
        replicated.crc = 2;
        let b = bundle(
            &P::default(),
            &[
                B::hops(2, 9, 1),
                replicated,
                B::other(200, 4, 0, b"first"),
                B::payload(&[5u8; 600]),
            ],
        );
        let frags = fragment(&b, 250).unwrap();
        assert!(frags.len() > 2);
        for (i, f) in frags.iter().enumerate() {
            let types: Vec<u64> = inspect(f)
                .unwrap()
                .blocks
                .iter()
                .map(|b| b.block_type)
                .collect();
            if i == 0 {
                assert_eq!(types, [10, 192, 200, 1]);
            } else {
                assert_eq!(types, [192, 1]);
            }
            // Extension blocks are copied byte for byte.
            let needle = B::other(192, 3, BLOCK_REPLICATE, b"everywhere");
            let mut needle = needle;
            needle.crc = 2;
            let enc = needle.encode();
            assert!(f.windows(enc.len()).any(|w| w == enc.as_slice()));
        }
    }

    #[test]
    fn refragmenting_a_fragment_keeps_original_offsets() {
        let adu: Vec<u8> = (0..5_000u32).map(|i| (i * 7) as u8).collect();
        let frags = fragment_adu(&adu, &spec(), 2_000).unwrap();
        let second = inspect(&frags[1]).unwrap();
        let base = second.fragment_offset.unwrap();
        let pieces = fragment(&frags[1], 400).unwrap();
        assert!(pieces.len() > 1);
        let mut at = base;
        for p in &pieces {
            let b = crate::Bundle::parse(p).unwrap();
            assert_eq!(b.info().fragment_offset, Some(at));
            assert_eq!(b.info().total_adu_length, Some(adu.len() as u64));
            assert_eq!(
                b.payload(),
                &adu[at as usize..at as usize + b.payload().len()]
            );
            at += b.payload().len() as u64;
        }
        assert_eq!(at, base + second.payload_length);
    }

    #[test]
    fn fragments_keep_the_primary_fields() {
        let s = BundleSpec {
            report_to: "dtn://earth-gw/".parse().unwrap(),
            ..spec()
        };
        for f in fragment_adu(&[3u8; 3000], &s, 500).unwrap() {
            let i = inspect(&f).unwrap();
            assert_eq!(i.source, s.source);
            assert_eq!(i.destination, s.destination);
            assert_eq!(i.report_to, s.report_to);
            assert_eq!(
                (i.creation_time, i.sequence_number, i.lifetime_ms),
                (s.creation_time, 0, s.lifetime_ms)
            );
            assert_eq!(i.flags, FLAG_IS_FRAGMENT);
            assert_eq!(i.crc, CrcType::Crc32c);
            assert_eq!(i.blocks.last().unwrap().crc, CrcType::Crc16);
        }
        let _ = eid("ipn:1.0");
    }
}
