//! Parsing and validating bundles (RFC 9171 §4.1–§4.4): the primary block
//! (§4.3.1), canonical blocks (§4.3.2), the extension blocks every BPv7
//! implementation must understand (§4.4.1–§4.4.3), CRCs (§4.2.1–§4.2.2) and
//! the reception checks of §5.6 steps 3 and 4.

use core::ops::Range;
use std::collections::BTreeSet;

use crate::cbor::{Reader, BREAK, INDEFINITE_ARRAY, MAJOR_ARRAY};
use crate::checksum::{self, CrcType};
use crate::eid::Eid;
use crate::error::{BundleError, ErrorKind, Result};

/// Bundle processing control flag: the bundle is a fragment (§4.2.3).
pub const FLAG_IS_FRAGMENT: u64 = 0x01;
/// Bundle processing control flag: the ADU is an administrative record.
pub const FLAG_ADMIN_RECORD: u64 = 0x02;
/// Bundle processing control flag: the bundle must not be fragmented.
pub const FLAG_MUST_NOT_FRAGMENT: u64 = 0x04;
/// The four status-report request flags (reception, forwarding, delivery,
/// deletion).
pub const FLAGS_STATUS_REPORTS: u64 = 0x004000 | 0x010000 | 0x020000 | 0x040000;

/// Block processing control flag: replicate the block in every fragment (§4.2.4).
pub const BLOCK_REPLICATE: u64 = 0x01;
/// Block processing control flag: status report if the block can't be processed.
pub const BLOCK_REPORT_IF_UNPROCESSABLE: u64 = 0x02;
/// Block processing control flag: delete the bundle if the block can't be processed.
pub const BLOCK_DELETE_IF_UNPROCESSABLE: u64 = 0x04;

/// Block type codes (§4.3.2, §4.4, RFC 9172).
pub(crate) const PAYLOAD_BLOCK: u64 = 1;
pub(crate) const PREVIOUS_NODE_BLOCK: u64 = 6;
pub(crate) const BUNDLE_AGE_BLOCK: u64 = 7;
pub(crate) const HOP_COUNT_BLOCK: u64 = 10;
pub(crate) const INTEGRITY_BLOCK: u64 = 11;
pub(crate) const CONFIDENTIALITY_BLOCK: u64 = 12;

/// The identity of an original bundle (§5.9): its source and creation
/// timestamp. Fragments of one bundle share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    /// Source node ID.
    pub source: Eid,
    /// Creation timestamp time, DTN milliseconds (0: no clock).
    pub creation_time: u64,
    /// Creation timestamp sequence number.
    pub sequence_number: u64,
}

/// One canonical block (§4.3.2), as `inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block type code: 1 payload, 6 previous node, 7 bundle age, 10 hop count.
    pub block_type: u64,
    /// Block number, unique within the bundle; the payload block is 1.
    pub block_number: u64,
    /// Block processing control flags (§4.2.4).
    pub flags: u64,
    /// CRC type of the block.
    pub crc: CrcType,
    /// Length of the block-type-specific data, in bytes.
    pub data_length: u64,
}

/// The fields of a bundle (the WIT `bundle-info` record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleInfo {
    /// Bundle Protocol version; always 7.
    pub version: u64,
    /// Bundle processing control flags (§4.2.3).
    pub flags: u64,
    /// The "bundle is a fragment" flag.
    pub is_fragment: bool,
    /// The "bundle must not be fragmented" flag.
    pub must_not_fragment: bool,
    /// CRC type of the primary block.
    pub crc: CrcType,
    /// Destination EID.
    pub destination: Eid,
    /// Source node ID.
    pub source: Eid,
    /// Report-to EID.
    pub report_to: Eid,
    /// Creation timestamp time, DTN milliseconds.
    pub creation_time: u64,
    /// Creation timestamp sequence number.
    pub sequence_number: u64,
    /// Lifetime in milliseconds after the creation time.
    pub lifetime_ms: u64,
    /// Offset of this fragment's payload in the original ADU (fragments only).
    pub fragment_offset: Option<u64>,
    /// Length of the whole original ADU (fragments only).
    pub total_adu_length: Option<u64>,
    /// Length of this bundle's payload.
    pub payload_length: u64,
    /// Every canonical block, payload included, in the order they appear.
    pub blocks: Vec<BlockInfo>,
}

/// Where one canonical block (payload included) sits in the bundle's
/// bytes, for BPSec: its header fields and its block-type-specific data.
#[derive(Clone, Debug)]
pub(crate) struct BlockRef {
    pub block_type: u64,
    pub number: u64,
    pub flags: u64,
    /// The whole encoded block.
    pub range: Range<usize>,
    /// The content of its block-type-specific data byte string.
    pub data: Range<usize>,
}

/// Checks [`Bundle::parse_with_options`] may skip, for interoperating with
/// nodes (and RFC examples) that leave out what RFC 9171 requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept a primary block with CRC type 0 and no block integrity block
    /// targeting it (RFC 9171 §4.3.1 forbids it; dtn7-rs's REST `/send`
    /// and the examples of RFC 9173 Appendix A write it).
    pub allow_missing_primary_crc: bool,
    /// Accept creation time 0 without a bundle age block (RFC 9171 §4.2.7
    /// forbids it; the examples of RFC 9173 Appendix A do it).
    pub allow_missing_bundle_age: bool,
}

/// A non-payload block, kept as its encoded bytes.
#[derive(Clone, Debug)]
pub(crate) struct RawBlock {
    pub range: Range<usize>,
    pub block_type: u64,
    pub flags: u64,
}

/// A parsed and validated bundle: a view into the bytes it was parsed from.
#[derive(Clone, Debug)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    info: BundleInfo,
    payload: &'a [u8],
    /// Encoded destination, source, report-to, creation timestamp and
    /// lifetime: the primary block fields fragmentation copies unchanged.
    pub(crate) primary_fields: Range<usize>,
    /// Extension blocks, in order.
    pub(crate) extensions: Vec<RawBlock>,
    /// Flags and CRC type of the payload block.
    pub(crate) payload_flags: u64,
    pub(crate) payload_crc: CrcType,
    /// Value of the bundle age block, if there is one.
    pub(crate) bundle_age: Option<u64>,
    /// The whole encoded primary block.
    pub(crate) primary_range: Range<usize>,
    /// Every canonical block, payload included, in order.
    pub(crate) block_refs: Vec<BlockRef>,
    /// The payload block's CRC-32C, when its check was deferred.
    pub(crate) payload_check: Option<PayloadCrc>,
}

/// A payload block's CRC-32C left to be checked: the block, its payload
/// and its CRC value (offsets into the bundle).
#[derive(Clone, Debug)]
pub(crate) struct PayloadCrc {
    pub block: Range<usize>,
    /// The payload bytes inside the block.
    pub data: Range<usize>,
    pub value: Range<usize>,
}

impl<'a> Bundle<'a> {
    /// Parses and validates one bundle, borrowing the payload from `bytes`.
    pub fn parse(bytes: &'a [u8]) -> core::result::Result<Self, BundleError> {
        parse(bytes)
    }

    /// Like [`Bundle::parse`], with the checks `options` turns off skipped.
    pub fn parse_with_options(
        bytes: &'a [u8],
        options: &ParseOptions,
    ) -> core::result::Result<Self, BundleError> {
        parse_with(bytes, options)
    }

    /// The bundle's fields.
    pub fn info(&self) -> &BundleInfo {
        &self.info
    }

    /// The payload (the ADU, or a fragment of it), borrowed from the input.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The encoded bundle this view was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The identity of the original bundle (§5.9).
    pub fn id(&self) -> BundleId {
        BundleId {
            source: self.info.source.clone(),
            creation_time: self.info.creation_time,
            sequence_number: self.info.sequence_number,
        }
    }

    /// The bundle age block's value in milliseconds, if there is one (§4.4.2).
    pub fn bundle_age(&self) -> Option<u64> {
        self.bundle_age
    }

    /// Appends the payload to `out`, checking the payload block's CRC as it
    /// copies when the parse deferred it. On a mismatch `out` is left as it
    /// was and the error is the one [`Bundle::parse`] gives.
    pub(crate) fn copy_payload_checked(&self, out: &mut Vec<u8>) -> Result<()> {
        let Some(check) = &self.payload_check else {
            out.extend_from_slice(self.payload);
            return Ok(());
        };
        let bytes = self.bytes;
        let data = &check.data;
        let before = out.len();
        let crc = crate::crc32c::update(!0, &bytes[check.block.start..data.start]);
        let crc = crate::crc32c::extend_update(crc, out, self.payload);
        let crc = crate::crc32c::update(crc, &bytes[data.end..check.value.start]);
        let crc = crate::crc32c::update(crc, &[0u8; 4][..check.value.len()]);
        let computed = !crate::crc32c::update(crc, &bytes[check.value.end..check.block.end]);
        if checksum::read_value(&bytes[check.value.clone()]) == computed {
            return Ok(());
        }
        out.truncate(before);
        self.check_deferred_payload_crc()
    }

    /// Checks a deferred payload CRC without copying.
    pub(crate) fn check_deferred_payload_crc(&self) -> Result<()> {
        match &self.payload_check {
            None => Ok(()),
            Some(check) => verify_crc(
                self.bytes,
                CrcType::Crc32c,
                check.block.clone(),
                check.value.clone(),
                &format!(
                    "block {} (type {PAYLOAD_BLOCK})",
                    self.block_refs
                        .iter()
                        .find(|b| b.block_type == PAYLOAD_BLOCK)
                        .map_or(1, |b| b.number)
                ),
            ),
        }
    }
}

/// Parses and validates a bundle and reports its fields.
pub fn inspect(bundle: &[u8]) -> core::result::Result<BundleInfo, BundleError> {
    Ok(parse(bundle)?.info)
}

fn malformed(offset: usize, detail: impl Into<String>) -> BundleError {
    BundleError::at(ErrorKind::MalformedCbor, offset, detail)
}

/// Verifies the CRC of the block at `block` whose value sits at `value`.
fn verify_crc(
    bytes: &[u8],
    kind: CrcType,
    block: Range<usize>,
    value: Range<usize>,
    what: &str,
) -> Result<()> {
    if kind == CrcType::None {
        return Ok(());
    }
    let carried = checksum::read_value(&bytes[value.clone()]);
    let rel = value.start - block.start..value.end - block.start;
    let computed = checksum::compute(kind, &bytes[block], rel);
    if carried != computed {
        return Err(BundleError::at(
            ErrorKind::CrcMismatch,
            value.start,
            format!(
                "{what} carries {} 0x{carried:0w$x} but its bytes give 0x{computed:0w$x}",
                kind.name(),
                w = kind.value_len() * 2
            ),
        ));
    }
    Ok(())
}

/// Reads a CRC field (a byte string of exactly the type's length).
fn read_crc(r: &mut Reader<'_>, kind: CrcType, what: &str) -> Result<Range<usize>> {
    let (value, at) = r.bytes(what)?;
    if value.len() != kind.value_len() {
        return Err(malformed(
            at.saturating_sub(1),
            format!(
                "{what}: a {} is a {}-byte string, found {} bytes",
                kind.name(),
                kind.value_len(),
                value.len()
            ),
        ));
    }
    Ok(at..at + value.len())
}

fn read_crc_type(r: &mut Reader<'_>, what: &str) -> Result<CrcType> {
    let at = r.pos();
    let code = r.uint(what)?;
    CrcType::from_code(code).ok_or_else(|| {
        BundleError::at(
            ErrorKind::InvalidCrcType,
            at,
            format!("{what} is {code}; only 0, 1 and 2 are defined"),
        )
    })
}

struct Primary {
    info: BundleInfo,
    fields: Range<usize>,
    /// Offset of the fragment offset field, for `invalid-fragment`.
    fragment_at: usize,
}

fn parse_primary(bytes: &[u8], r: &mut Reader<'_>) -> Result<Primary> {
    const W: &str = "primary block";
    let start = r.pos();
    let mut items = r.array(W)?;
    if let Some(n) = items.declared() {
        if !(8..=11).contains(&n) {
            return Err(malformed(
                start,
                format!("{W} has {n} items; §4.3.1 allows 8 to 11"),
            ));
        }
    }
    items.need(r, W, "version")?;
    let version_at = r.pos();
    let version = r.uint("primary block version")?;
    if version != 7 {
        return Err(BundleError::at(
            ErrorKind::UnsupportedVersion,
            version_at,
            format!("primary block says version {version}"),
        ));
    }
    items.need(r, W, "bundle processing control flags")?;
    let flags = r.uint("bundle processing control flags")?;
    items.need(r, W, "CRC type")?;
    let crc = read_crc_type(r, "primary block CRC type")?;
    let is_fragment = flags & FLAG_IS_FRAGMENT != 0;
    let expected = 8 + if is_fragment { 2 } else { 0 } + u64::from(crc != CrcType::None);
    if let Some(n) = items.declared() {
        if n != expected {
            return Err(malformed(
                start,
                format!(
                    "{W} has {n} items but its flags ({}) and CRC type ({}) call for {expected}",
                    if is_fragment {
                        "fragment"
                    } else {
                        "not a fragment"
                    },
                    crc.code()
                ),
            ));
        }
    }
    let fields_start = r.pos();
    items.need(r, W, "destination EID")?;
    let destination = Eid::decode(r, "destination EID")?;
    items.need(r, W, "source node ID")?;
    let source = Eid::decode(r, "source node ID")?;
    items.need(r, W, "report-to EID")?;
    let report_to = Eid::decode(r, "report-to EID")?;
    items.need(r, W, "creation timestamp")?;
    let mut ts = r.array("creation timestamp")?;
    if let Some(n) = ts.declared() {
        if n != 2 {
            return Err(malformed(
                ts.offset,
                format!("creation timestamp has {n} items, not 2"),
            ));
        }
    }
    ts.need(r, "creation timestamp", "time")?;
    let creation_time = r.uint("creation timestamp time")?;
    ts.need(r, "creation timestamp", "sequence number")?;
    let sequence_number = r.uint("creation timestamp sequence number")?;
    ts.end(r, "creation timestamp")?;
    items.need(r, W, "lifetime")?;
    let lifetime_ms = r.uint("lifetime")?;
    let fields = fields_start..r.pos();
    let mut fragment_at = 0;
    let (mut fragment_offset, mut total_adu_length) = (None, None);
    if is_fragment {
        items.need(r, W, "fragment offset")?;
        fragment_at = r.pos();
        fragment_offset = Some(r.uint("fragment offset")?);
        items.need(r, W, "total ADU length")?;
        let total_at = r.pos();
        let total = r.uint("total application data unit length")?;
        if total == 0 {
            return Err(BundleError::at(
                ErrorKind::InvalidFragment,
                total_at,
                "fragment declares a total ADU length of 0",
            ));
        }
        total_adu_length = Some(total);
    }
    let mut crc_value = 0..0;
    if crc != CrcType::None {
        items.need(r, W, "CRC")?;
        crc_value = read_crc(r, crc, "primary block CRC")?;
    }
    items.end(r, W)?;
    verify_crc(bytes, crc, start..r.pos(), crc_value, W)?;

    // §4.2.3: administrative records and anonymous bundles request no reports.
    if flags & FLAG_ADMIN_RECORD != 0 && flags & FLAGS_STATUS_REPORTS != 0 {
        return Err(BundleError::at(
            ErrorKind::InvalidFlags,
            start,
            format!(
                "flags 0x{flags:x} mark an administrative record but also request status reports"
            ),
        ));
    }
    if source == Eid::Null {
        if flags & FLAG_MUST_NOT_FRAGMENT == 0 {
            return Err(BundleError::at(
                ErrorKind::InvalidFlags,
                start,
                format!("source is dtn:none but flags 0x{flags:x} do not set must-not-fragment"),
            ));
        }
        if flags & FLAGS_STATUS_REPORTS != 0 {
            return Err(BundleError::at(
                ErrorKind::InvalidFlags,
                start,
                format!("source is dtn:none but flags 0x{flags:x} request status reports"),
            ));
        }
    }
    Ok(Primary {
        info: BundleInfo {
            version,
            flags,
            is_fragment,
            must_not_fragment: flags & FLAG_MUST_NOT_FRAGMENT != 0,
            crc,
            destination,
            source,
            report_to,
            creation_time,
            sequence_number,
            lifetime_ms,
            fragment_offset,
            total_adu_length,
            payload_length: 0,
            blocks: Vec::new(),
        },
        fields,
        fragment_at,
    })
}

struct Canonical {
    info: BlockInfo,
    range: Range<usize>,
    data: Range<usize>,
    /// Where its CRC value is, when its check was deferred.
    deferred: Option<Range<usize>>,
}

/// Parses one canonical block. With `defer_payload` a payload block's
/// CRC-32C is not checked here: the caller checks it as it copies the
/// payload (see [`Bundle::copy_payload_checked`]).
fn parse_canonical(bytes: &[u8], r: &mut Reader<'_>, defer_payload: bool) -> Result<Canonical> {
    const W: &str = "canonical block";
    let start = r.pos();
    let mut items = r.array(W)?;
    if let Some(n) = items.declared() {
        if !(5..=6).contains(&n) {
            return Err(malformed(
                start,
                format!("{W} has {n} items; §4.3.2 allows 5 or 6"),
            ));
        }
    }
    items.need(r, W, "block type")?;
    let block_type = r.uint("block type code")?;
    items.need(r, W, "block number")?;
    let block_number = r.uint("block number")?;
    items.need(r, W, "block processing control flags")?;
    let flags = r.uint("block processing control flags")?;
    items.need(r, W, "CRC type")?;
    let crc = read_crc_type(r, "block CRC type")?;
    if let Some(n) = items.declared() {
        let expected = 5 + u64::from(crc != CrcType::None);
        if n != expected {
            return Err(malformed(
                start,
                format!(
                    "block {block_number} has {n} items but CRC type {} calls for {expected}",
                    crc.code()
                ),
            ));
        }
    }
    items.need(r, W, "block-type-specific data")?;
    let (data, data_at) = r.bytes("block-type-specific data")?;
    let mut crc_value = 0..0;
    if crc != CrcType::None {
        items.need(r, W, "CRC")?;
        crc_value = read_crc(r, crc, "block CRC")?;
    }
    items.end(r, W)?;
    let range = start..r.pos();
    let deferred = (defer_payload && block_type == PAYLOAD_BLOCK && crc == CrcType::Crc32c)
        .then(|| crc_value.clone());
    if deferred.is_none() {
        verify_crc(
            bytes,
            crc,
            range.clone(),
            crc_value,
            &format!("block {block_number} (type {block_type})"),
        )?;
    }
    Ok(Canonical {
        info: BlockInfo {
            block_type,
            block_number,
            flags,
            crc,
            data_length: data.len() as u64,
        },
        range,
        data: data_at..data_at + data.len(),
        deferred,
    })
}

/// Reads the block-type-specific data of a known extension block: it must
/// be exactly one CBOR item of the right shape.
fn check_extension(bytes: &[u8], block: &Canonical) -> Result<Option<u64>> {
    let data = &bytes[block.data.clone()];
    let base = block.data.start;
    let rebase = |mut e: BundleError| {
        e.offset = e.offset.map(|o| o + base as u64);
        if e.kind == ErrorKind::Truncated {
            e.kind = ErrorKind::MalformedCbor;
            e.detail = format!("block {}: {}", block.info.block_number, e.detail);
        }
        e
    };
    let mut r = Reader::new(data);
    let mut age = None;
    match block.info.block_type {
        BUNDLE_AGE_BLOCK => {
            age = Some(r.uint("bundle age").map_err(rebase)?);
        }
        HOP_COUNT_BLOCK => {
            let mut items = r.array("hop count").map_err(rebase)?;
            items
                .need(&mut r, "hop count", "hop limit")
                .map_err(rebase)?;
            let limit = r.uint("hop limit").map_err(rebase)?;
            items
                .need(&mut r, "hop count", "hop count")
                .map_err(rebase)?;
            r.uint("hop count").map_err(rebase)?;
            items.end(&mut r, "hop count").map_err(rebase)?;
            if !(1..=255).contains(&limit) {
                return Err(malformed(
                    base,
                    format!("hop limit {limit} is outside 1..=255 (§4.4.3)"),
                ));
            }
        }
        PREVIOUS_NODE_BLOCK => {
            let start = r.pos();
            let node = Eid::decode(&mut r, "previous node ID").map_err(rebase)?;
            // §4.4.1: the node ID of the forwarder; the null endpoint
            // (§4.2.5.2) names no node.
            if node == Eid::Null {
                return Err(BundleError::at(
                    ErrorKind::InvalidEid,
                    base + start,
                    "previous node ID is dtn:none, which is not a node ID (RFC 9171 §4.4.1, §4.2.5.2)",
                ));
            }
        }
        _ => return Ok(None),
    }
    if r.remaining() != 0 {
        return Err(malformed(
            base + r.pos(),
            format!(
                "block {} has bytes after its data item",
                block.info.block_number
            ),
        ));
    }
    Ok(age)
}

/// Whether a BIB's security targets (the first item of its abstract
/// security block, RFC 9172 §3.6) include the primary block (number 0).
fn bib_targets_primary(data: &[u8]) -> bool {
    let mut r = Reader::new(data);
    let Ok(mut items) = r.array("security targets") else {
        return false;
    };
    while let Ok(true) = items.more(&mut r, "security targets") {
        match r.uint("security target") {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Bundle<'_>> {
    parse_with(bytes, &ParseOptions::default())
}

/// Like [`Bundle::parse`], but accepts a primary block without a CRC and
/// without a BIB protecting it (which RFC 9171 §4.3.1 forbids). For a
/// receiver that must interoperate with nodes that send such bundles
/// (dtn7-rs's REST `/send` writes CRC type 0); every other check stays.
pub fn parse_allowing_missing_primary_crc(
    bytes: &[u8],
) -> core::result::Result<Bundle<'_>, BundleError> {
    parse_with(
        bytes,
        &ParseOptions {
            allow_missing_primary_crc: true,
            ..ParseOptions::default()
        },
    )
}

fn parse_with<'a>(bytes: &'a [u8], options: &ParseOptions) -> Result<Bundle<'a>> {
    parse_inner(bytes, options, false)
}

/// Parses as [`parse`] does but leaves a CRC-32C payload block's check to
/// the caller ([`Bundle::copy_payload_checked`]), who checks it while
/// copying the payload: one pass over the bytes instead of two. A bundle
/// that fails any other check is reported exactly as [`parse`] reports it.
pub(crate) fn parse_deferring_payload_crc(bytes: &[u8]) -> Result<Bundle<'_>> {
    match parse_inner(bytes, &ParseOptions::default(), true) {
        Ok(b) => Ok(b),
        // The error parse gives (a bad payload CRC may come first).
        Err(_) => parse(bytes),
    }
}

fn parse_inner<'a>(
    bytes: &'a [u8],
    options: &ParseOptions,
    defer_payload: bool,
) -> Result<Bundle<'a>> {
    let Some(&first) = bytes.first() else {
        return Err(BundleError::at(ErrorKind::Truncated, 0, "input is empty"));
    };
    if first != INDEFINITE_ARRAY {
        let detail = if first >> 5 == MAJOR_ARRAY {
            "a bundle is an indefinite-length array (0x9f ... 0xff); found a definite-length array"
                .to_string()
        } else {
            format!("a bundle is an indefinite-length array starting 0x9f; found initial byte 0x{first:02x}")
        };
        return Err(malformed(0, detail));
    }
    let mut r = Reader::new(bytes);
    r.head("bundle")?;
    match r.peek() {
        None => {
            return Err(BundleError::at(
                ErrorKind::Truncated,
                bytes.len(),
                "input ends before the primary block",
            ))
        }
        Some(BREAK) => {
            return Err(BundleError::at(
                ErrorKind::MalformedCbor,
                r.pos(),
                "bundle has no primary block (§4.1: the first item must be one)",
            ))
        }
        Some(_) => {}
    }
    let primary_start = r.pos();
    let primary = parse_primary(bytes, &mut r)?;
    let primary_range = primary_start..r.pos();
    let mut block_refs = Vec::new();
    let mut info = primary.info;
    let admin_or_anonymous = info.flags & FLAG_ADMIN_RECORD != 0 || info.source == Eid::Null;

    let mut numbers = BTreeSet::new();
    let mut extensions = Vec::new();
    let (mut seen_previous, mut seen_age, mut seen_hops) = (false, false, false);
    let mut bundle_age = None;
    let mut bib_protects_primary = false;
    let mut payload: Option<(Range<usize>, u64, CrcType)> = None;
    let mut payload_check = None;
    loop {
        let at = r.pos();
        match r.peek() {
            None => {
                return Err(BundleError::at(
                    ErrorKind::Truncated,
                    bytes.len(),
                    "input ends before the bundle's closing break",
                ))
            }
            Some(BREAK) => {
                r.head("bundle")?;
                break;
            }
            Some(_) => {}
        }
        if payload.is_some() {
            return Err(BundleError::at(
                ErrorKind::PayloadNotLast,
                at,
                "a block follows the payload block",
            ));
        }
        let block = parse_canonical(bytes, &mut r, defer_payload)?;
        let b = &block.info;
        let n = b.block_number;
        if n == 0 {
            return Err(BundleError::at(
                ErrorKind::InvalidBlockNumber,
                at,
                format!(
                    "block of type {} has number 0, which is the primary block's",
                    b.block_type
                ),
            ));
        }
        if b.block_type == PAYLOAD_BLOCK && n != 1 {
            return Err(BundleError::at(
                ErrorKind::InvalidBlockNumber,
                at,
                format!("payload block has number {n}; it must be 1"),
            ));
        }
        if b.block_type != PAYLOAD_BLOCK && n == 1 {
            return Err(BundleError::at(
                ErrorKind::InvalidBlockNumber,
                at,
                format!(
                    "block of type {} has number 1, which is the payload block's",
                    b.block_type
                ),
            ));
        }
        if !numbers.insert(n) {
            return Err(BundleError::at(
                ErrorKind::DuplicateBlock,
                at,
                format!("block number {n} appears twice"),
            ));
        }
        let once = match b.block_type {
            PREVIOUS_NODE_BLOCK => Some((&mut seen_previous, "previous node")),
            BUNDLE_AGE_BLOCK => Some((&mut seen_age, "bundle age")),
            HOP_COUNT_BLOCK => Some((&mut seen_hops, "hop count")),
            _ => None,
        };
        if let Some((seen, name)) = once {
            if *seen {
                return Err(BundleError::at(
                    ErrorKind::DuplicateBlock,
                    at,
                    format!(
                        "a second {name} block (type {}); §4.4 allows one",
                        b.block_type
                    ),
                ));
            }
            *seen = true;
        }
        if admin_or_anonymous && b.flags & BLOCK_REPORT_IF_UNPROCESSABLE != 0 {
            return Err(BundleError::at(
                ErrorKind::InvalidFlags,
                at,
                format!(
                    "block {n} asks for a status report, but the bundle is {}",
                    if info.source == Eid::Null {
                        "anonymous"
                    } else {
                        "an administrative record"
                    }
                ),
            ));
        }
        let known = matches!(
            b.block_type,
            PAYLOAD_BLOCK
                | PREVIOUS_NODE_BLOCK
                | BUNDLE_AGE_BLOCK
                | HOP_COUNT_BLOCK
                | INTEGRITY_BLOCK
                | CONFIDENTIALITY_BLOCK
        );
        if !known && b.flags & BLOCK_DELETE_IF_UNPROCESSABLE != 0 {
            return Err(BundleError::at(
                ErrorKind::UnprocessableBlock,
                at,
                format!(
                    "block {n} has unknown type {} and flags 0x{:x} ask to delete the bundle if it can't be processed",
                    b.block_type, b.flags
                ),
            ));
        }
        if let Some(age) = check_extension(bytes, &block)? {
            bundle_age = Some(age);
        }
        if b.block_type == INTEGRITY_BLOCK && bib_targets_primary(&bytes[block.data.clone()]) {
            bib_protects_primary = true;
        }
        block_refs.push(BlockRef {
            block_type: b.block_type,
            number: n,
            flags: b.flags,
            range: block.range.clone(),
            data: block.data.clone(),
        });
        if b.block_type == PAYLOAD_BLOCK {
            payload = Some((block.data.clone(), b.flags, b.crc));
            payload_check = block.deferred.clone().map(|value| PayloadCrc {
                block: block.range.clone(),
                data: block.data.clone(),
                value,
            });
        } else {
            extensions.push(RawBlock {
                range: block.range.clone(),
                block_type: b.block_type,
                flags: b.flags,
            });
        }
        info.blocks.push(block.info);
    }
    if r.remaining() != 0 {
        return Err(BundleError::at(
            ErrorKind::TrailingBytes,
            r.pos(),
            format!("{} bytes follow the bundle's closing break", r.remaining()),
        ));
    }
    let Some((payload_range, payload_flags, payload_crc)) = payload else {
        return Err(BundleError::at(
            ErrorKind::MissingPayload,
            bytes.len() - 1,
            "the bundle has no payload block (type 1)",
        ));
    };
    if info.crc == CrcType::None && !bib_protects_primary && !options.allow_missing_primary_crc {
        return Err(BundleError::at(
            ErrorKind::MissingPrimaryCrc,
            1,
            "primary block has CRC type 0 and no block integrity block targets it",
        ));
    }
    if info.creation_time == 0 && !seen_age && !options.allow_missing_bundle_age {
        return Err(BundleError::at(
            ErrorKind::MissingBundleAge,
            1,
            "creation time is 0 (no clock) but there is no bundle age block",
        ));
    }
    info.payload_length = payload_range.len() as u64;
    if let (Some(offset), Some(total)) = (info.fragment_offset, info.total_adu_length) {
        // A fragment whose own fields contradict each other is
        // `invalid-fragment` (§5.8 needs 0 < N; the offset must be inside
        // the ADU); one that starts inside the ADU but runs past its end is
        // `offset-out-of-range` (vectors/README.md, "Clarifications").
        let len = info.payload_length;
        let problem = if len == 0 {
            Some((
                ErrorKind::InvalidFragment,
                "a fragment's payload is empty".to_string(),
            ))
        } else if offset >= total {
            Some((
                ErrorKind::InvalidFragment,
                format!("fragment offset {offset} is not inside the total ADU length {total}"),
            ))
        } else if offset.checked_add(len).is_none_or(|end| end > total) {
            Some((
                ErrorKind::OffsetOutOfRange,
                format!("fragment at offset {offset} with {len} payload bytes runs past the total ADU length {total}"),
            ))
        } else {
            None
        };
        if let Some((kind, detail)) = problem {
            return Err(BundleError::at(kind, primary.fragment_at, detail));
        }
    }
    Ok(Bundle {
        bytes,
        payload: &bytes[payload_range],
        info,
        primary_fields: primary.fields,
        extensions,
        payload_flags,
        payload_crc,
        bundle_age,
        primary_range,
        block_refs,
        payload_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bundle, eid, sample, B, P};

    fn kind(bytes: &[u8]) -> ErrorKind {
        match inspect(bytes) {
            Ok(info) => panic!("expected an error, parsed {info:?}"),
            Err(e) => {
                // Every error renders with its class, section and offset.
                let shown = e.to_string();
                assert!(shown.starts_with(e.code()), "{shown}");
                assert!(shown.contains("RFC"), "{shown}");
                e.kind
            }
        }
    }

    #[test]
    fn sample_parses_with_every_field() {
        let bytes = sample();
        let b = Bundle::parse(&bytes).unwrap();
        let i = b.info();
        assert_eq!(i.version, 7);
        assert_eq!(i.crc, CrcType::Crc32c);
        assert_eq!(i.destination.to_string(), "ipn:2.25");
        assert_eq!(i.source.to_string(), "ipn:1.0");
        assert_eq!(i.report_to, Eid::Null);
        assert_eq!(
            (i.creation_time, i.sequence_number, i.lifetime_ms),
            (815_000_000_000, 3, 86_400_000)
        );
        assert_eq!((i.fragment_offset, i.total_adu_length), (None, None));
        assert_eq!(i.payload_length, 11);
        assert_eq!(b.payload(), b"hello, moon");
        assert_eq!(
            i.blocks,
            vec![
                BlockInfo {
                    block_type: 10,
                    block_number: 2,
                    flags: 0,
                    crc: CrcType::None,
                    data_length: 4
                },
                BlockInfo {
                    block_type: 1,
                    block_number: 1,
                    flags: 0,
                    crc: CrcType::Crc16,
                    data_length: 11
                },
            ]
        );
        assert_eq!(
            b.id(),
            BundleId {
                source: "ipn:1.0".parse().unwrap(),
                creation_time: 815_000_000_000,
                sequence_number: 3
            }
        );
    }

    #[test]
    fn payload_is_borrowed_not_copied() {
        let bytes = sample();
        let b = Bundle::parse(&bytes).unwrap();
        let range = bytes.as_ptr_range();
        assert!(range.contains(&b.payload().as_ptr()));
    }

    #[test]
    fn malformed_cbor() {
        // Definite-length outer array.
        let mut b = sample();
        b[0] = 0x83;
        assert_eq!(kind(&b), ErrorKind::MalformedCbor);
        // Not an array at all.
        assert_eq!(kind(&[0x01]), ErrorKind::MalformedCbor);
        // Primary block with 12 items.
        let mut b = sample();
        b[1] = 0x8c;
        assert_eq!(kind(&b), ErrorKind::MalformedCbor);
        // Primary item count disagrees with the CRC type (9 items, type 0).
        let p = P {
            crc: 0,
            ..P::default()
        };
        let mut enc = p.encode();
        enc[0] = 0x89;
        let mut b = vec![0x9f];
        b.extend(enc);
        b.extend(B::payload(b"x").encode());
        b.push(0xff);
        assert_eq!(kind(&b), ErrorKind::MalformedCbor);
        // Canonical block with a 3-byte CRC-16.
        let mut blk = B::payload(b"x").encode();
        let n = blk.len();
        blk[n - 3] = 0x43;
        blk.push(0);
        let mut b = vec![0x9f];
        b.extend(P::default().encode());
        b.extend(blk);
        b.push(0xff);
        assert_eq!(kind(&b), ErrorKind::MalformedCbor);
        // Non-shortest integer (lifetime as 0x1b 00..).
        let mut p = P::default().encode();
        let at = p
            .windows(5)
            .position(|w| w == [0x1a, 0x05, 0x26, 0x5c, 0x00])
            .unwrap();
        p.splice(at..at + 5, [0x1b, 0, 0, 0, 0, 0x05, 0x26, 0x5c, 0x00]);
        let mut b = vec![0x9f];
        b.extend(p);
        b.extend(B::payload(b"x").encode());
        b.push(0xff);
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedCbor, "{e}");
        // Bad hop limit and bad bundle age data.
        assert_eq!(
            kind(&bundle(
                &P::default(),
                &[B::hops(2, 0, 0), B::payload(b"x")]
            )),
            ErrorKind::MalformedCbor
        );
        let mut age = B::age(2, 5);
        age.data = vec![0x41, 0x00];
        assert_eq!(
            kind(&bundle(&P::default(), &[age, B::payload(b"x")])),
            ErrorKind::MalformedCbor
        );
        let mut age = B::age(2, 5);
        age.data.push(0x00);
        assert_eq!(
            kind(&bundle(&P::default(), &[age, B::payload(b"x")])),
            ErrorKind::MalformedCbor
        );
        // Indefinite-length payload byte string.
        let mut b = vec![0x9f];
        b.extend(P::default().encode());
        b.extend([0x85, 0x01, 0x01, 0x00, 0x00, 0x5f, 0x41, 0x00, 0xff]);
        b.push(0xff);
        assert_eq!(kind(&b), ErrorKind::MalformedCbor);
    }

    #[test]
    fn indefinite_length_blocks_are_allowed() {
        // RFC 9171 §4.1: "indefinite-length items are not prohibited".
        let mut b = vec![0x9f];
        b.extend(P::default().encode());
        // [1, 1, 0, 0, h'41'] as an indefinite array.
        b.extend([0x9f, 0x01, 0x01, 0x00, 0x00, 0x41, 0x41, 0xff]);
        b.push(0xff);
        assert_eq!(Bundle::parse(&b).unwrap().payload(), b"A");
    }

    #[test]
    fn every_prefix_is_truncated() {
        let b = sample();
        for n in 0..b.len() {
            let e = inspect(&b[..n]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Truncated, "prefix {n}: {e}");
        }
        assert!(inspect(&b).is_ok());
    }

    #[test]
    fn huge_declared_payload_length_is_truncated() {
        let mut b = vec![0x9f];
        b.extend(P::default().encode());
        b.extend([
            0x85, 0x01, 0x01, 0x00, 0x00, 0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, b'x', 0xff,
        ]);
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert!(e.to_string().contains("9223372036854775808"), "{e}");
    }

    #[test]
    fn trailing_bytes() {
        let mut b = sample();
        let end = b.len();
        b.push(0x00);
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingBytes);
        assert_eq!(e.offset, Some(end as u64));
    }

    #[test]
    fn unsupported_version() {
        let b = bundle(
            &P {
                version: 6,
                ..P::default()
            },
            &[B::payload(b"x")],
        );
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedVersion);
        assert_eq!(e.offset, Some(2));
    }

    #[test]
    fn invalid_eid() {
        let mut dest = vec![0x82, 0x01, 0x68];
        dest.extend(b"node/inb");
        let b = bundle(
            &P {
                dest,
                ..P::default()
            },
            &[B::payload(b"x")],
        );
        assert_eq!(kind(&b), ErrorKind::InvalidEid);
        let b = bundle(
            &P {
                src: vec![0x82, 0x07, 0x00],
                ..P::default()
            },
            &[B::payload(b"x")],
        );
        assert_eq!(kind(&b), ErrorKind::InvalidEid);
        let mut prev = B::other(6, 2, 0, &[0x82, 0x01, 0x05]);
        prev.crc = 1;
        assert_eq!(
            kind(&bundle(&P::default(), &[prev, B::payload(b"x")])),
            ErrorKind::InvalidEid
        );
        let prev = B::other(6, 2, 0, &eid("ipn:9.0"));
        assert!(inspect(&bundle(&P::default(), &[prev, B::payload(b"x")])).is_ok());
    }

    #[test]
    fn invalid_flags() {
        let admin_with_reports = P {
            flags: FLAG_ADMIN_RECORD | 0x020000,
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&admin_with_reports, &[B::payload(b"x")])),
            ErrorKind::InvalidFlags
        );
        let anonymous = P {
            src: eid("dtn:none"),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&anonymous, &[B::payload(b"x")])),
            ErrorKind::InvalidFlags
        );
        let anonymous_reports = P {
            src: eid("dtn:none"),
            flags: FLAG_MUST_NOT_FRAGMENT | 0x004000,
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&anonymous_reports, &[B::payload(b"x")])),
            ErrorKind::InvalidFlags
        );
        let anonymous_ok = P {
            src: eid("dtn:none"),
            flags: FLAG_MUST_NOT_FRAGMENT,
            ..P::default()
        };
        assert!(inspect(&bundle(&anonymous_ok, &[B::payload(b"x")])).is_ok());
        // §4.2.4: no "report if unprocessable" in an administrative record.
        let admin = P {
            flags: FLAG_ADMIN_RECORD,
            ..P::default()
        };
        let mut pay = B::payload(b"x");
        pay.flags = BLOCK_REPORT_IF_UNPROCESSABLE;
        assert_eq!(kind(&bundle(&admin, &[pay])), ErrorKind::InvalidFlags);
        // Unknown and reserved flag bits are ignored (§4.2.3, §4.2.4).
        let mut pay = B::payload(b"x");
        pay.flags = 0x1_0000_0008;
        assert!(inspect(&bundle(
            &P {
                flags: 0x8000_0000_0088,
                ..P::default()
            },
            &[pay]
        ))
        .is_ok());
    }

    #[test]
    fn invalid_crc_type() {
        assert_eq!(
            kind(&bundle(
                &P {
                    crc: 3,
                    ..P::default()
                },
                &[B::payload(b"x")]
            )),
            ErrorKind::InvalidCrcType
        );
        let mut pay = B::payload(b"x");
        pay.crc = 7;
        assert_eq!(
            kind(&bundle(&P::default(), &[pay])),
            ErrorKind::InvalidCrcType
        );
    }

    #[test]
    fn missing_primary_crc_unless_a_bib_targets_the_primary() {
        let p = P {
            crc: 0,
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&p, &[B::payload(b"x")])),
            ErrorKind::MissingPrimaryCrc
        );
        // BIB whose security targets are [0]: allowed without a CRC.
        let bib = B::other(11, 2, 0, &[0x81, 0x00, 0x01, 0x00]);
        assert!(inspect(&bundle(&p, &[bib, B::payload(b"x")])).is_ok());
        // BIB targeting only the payload does not excuse it.
        let bib = B::other(11, 2, 0, &[0x81, 0x01, 0x01, 0x00]);
        assert_eq!(
            kind(&bundle(&p, &[bib, B::payload(b"x")])),
            ErrorKind::MissingPrimaryCrc
        );
        // The interop escape hatch accepts it, and nothing else changes.
        let bytes = bundle(&p, &[B::payload(b"x")]);
        let lenient = super::parse_allowing_missing_primary_crc(&bytes).unwrap();
        assert_eq!(lenient.payload(), b"x");
        assert_eq!(lenient.info().crc, CrcType::None);
    }

    #[test]
    fn crc_mismatch_in_any_block() {
        let good = sample();
        let payload_at = good.len() - 5;
        let mut b = good.clone();
        b[payload_at] ^= 0x01;
        let e = inspect(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::CrcMismatch, "{e}");
        let mut b = good.clone();
        b[8] ^= 0x01; // inside the destination EID
        assert_eq!(kind(&b), ErrorKind::CrcMismatch);
        // CRC-32C on an extension block, too.
        let mut age = bundle(&P::default(), &[B::age(2, 1000), B::payload(b"x")]);
        let at = age.len() - 16;
        age[at] ^= 0x80;
        let k = kind(&age);
        assert!(
            k == ErrorKind::CrcMismatch || k == ErrorKind::MalformedCbor,
            "{k:?}"
        );
    }

    #[test]
    fn missing_payload() {
        let mut b = vec![0x9f];
        b.extend(P::default().encode());
        b.push(0xff);
        assert_eq!(kind(&b), ErrorKind::MissingPayload);
        assert_eq!(
            kind(&bundle(&P::default(), &[B::hops(2, 5, 0)])),
            ErrorKind::MissingPayload
        );
        assert_eq!(kind(&[0x9f, 0xff]), ErrorKind::MalformedCbor);
    }

    #[test]
    fn payload_not_last() {
        let b = bundle(&P::default(), &[B::payload(b"x"), B::hops(2, 5, 0)]);
        assert_eq!(kind(&b), ErrorKind::PayloadNotLast);
    }

    #[test]
    fn invalid_block_numbers() {
        let zero = bundle(&P::default(), &[B::hops(0, 5, 0), B::payload(b"x")]);
        assert_eq!(kind(&zero), ErrorKind::InvalidBlockNumber);
        let mut pay = B::payload(b"x");
        pay.number = 2;
        assert_eq!(
            kind(&bundle(&P::default(), &[pay])),
            ErrorKind::InvalidBlockNumber
        );
        let one = bundle(&P::default(), &[B::hops(1, 5, 0), B::payload(b"x")]);
        assert_eq!(kind(&one), ErrorKind::InvalidBlockNumber);
    }

    #[test]
    fn duplicate_blocks() {
        let same_number = bundle(
            &P::default(),
            &[B::hops(2, 5, 0), B::age(2, 0), B::payload(b"x")],
        );
        assert_eq!(kind(&same_number), ErrorKind::DuplicateBlock);
        for twice in [
            [B::age(2, 0), B::age(3, 0)],
            [B::hops(2, 5, 0), B::hops(3, 5, 0)],
            [
                B::other(6, 2, 0, &eid("ipn:9.0")),
                B::other(6, 3, 0, &eid("ipn:9.0")),
            ],
        ] {
            let b = bundle(
                &P::default(),
                &[twice[0].clone(), twice[1].clone(), B::payload(b"x")],
            );
            assert_eq!(kind(&b), ErrorKind::DuplicateBlock);
        }
        // Unknown types may repeat.
        let b = bundle(
            &P::default(),
            &[
                B::other(200, 2, 0, b""),
                B::other(200, 3, 0, b""),
                B::payload(b"x"),
            ],
        );
        assert!(inspect(&b).is_ok());
    }

    #[test]
    fn missing_bundle_age() {
        let p = P {
            time: 0,
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&p, &[B::payload(b"x")])),
            ErrorKind::MissingBundleAge
        );
        let b = bundle(&p, &[B::age(2, 10), B::payload(b"x")]);
        assert_eq!(Bundle::parse(&b).unwrap().bundle_age(), Some(10));
    }

    #[test]
    fn unknown_blocks_kept_unless_flagged_delete() {
        let keep = bundle(
            &P::default(),
            &[B::other(193, 5, 0x10, b"\x01\x02"), B::payload(b"x")],
        );
        let info = inspect(&keep).unwrap();
        assert_eq!(info.blocks[0].block_type, 193);
        assert_eq!(info.blocks[0].data_length, 2);
        let delete = bundle(
            &P::default(),
            &[B::other(193, 5, 0x04, b""), B::payload(b"x")],
        );
        assert_eq!(kind(&delete), ErrorKind::UnprocessableBlock);
    }

    #[test]
    fn invalid_fragment() {
        let zero_total = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((0, 0)),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&zero_total, &[B::payload(b"")])),
            ErrorKind::InvalidFragment
        );
        let empty = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((2, 10)),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&empty, &[B::payload(b"")])),
            ErrorKind::InvalidFragment
        );
        let outside = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((10, 10)),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&outside, &[B::payload(b"ab")])),
            ErrorKind::InvalidFragment
        );
        // Starts inside the ADU but runs past its end.
        let past_end = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((9, 10)),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&past_end, &[B::payload(b"ab")])),
            ErrorKind::OffsetOutOfRange
        );
        let overflow = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((u64::MAX, 10)),
            ..P::default()
        };
        assert_eq!(
            kind(&bundle(&overflow, &[B::payload(b"ab")])),
            ErrorKind::InvalidFragment
        );
        let ok = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((8, 10)),
            ..P::default()
        };
        let info = inspect(&bundle(&ok, &[B::payload(b"ab")])).unwrap();
        assert_eq!(
            (
                info.fragment_offset,
                info.total_adu_length,
                info.is_fragment
            ),
            (Some(8), Some(10), true)
        );
    }

    #[test]
    fn error_display_names_problem_offset_section_and_fix() {
        let mut b = sample();
        b.push(0);
        let shown = inspect(&b).unwrap_err().to_string();
        assert!(shown.starts_with("trailing-bytes at byte"), "{shown}");
        assert!(shown.contains("RFC 9171 §4.1"), "{shown}");
        assert!(shown.contains("one bundle per buffer"), "{shown}");
    }
}
