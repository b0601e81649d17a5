//! BPv6 (RFC 5050) bundles behind deepmail's `fragmenter` contract.
//!
//! A pure, sans-IO codec: SDNVs (§4.1), the primary bundle block (§4.5.1)
//! with its dictionary of EID strings (§4.4, and the RFC 6260 CBHE
//! compressed form when the dictionary is empty), canonical blocks
//! (§4.5.2, the payload block and extension blocks kept verbatim),
//! fragmentation (§5.8) and reassembly (§5.9) bounded by limits.
//!
//! Time is an input. The `fragmenter` WIT speaks DTN milliseconds (since
//! 2000-01-01T00:00:00Z); RFC 5050 creation timestamps and lifetimes are
//! whole seconds since the same epoch. [`Spec`] and [`Primary`] carry
//! seconds; the conversions live in [`Spec::from_dtn_ms`] and
//! [`ms`]. Nothing here panics on any input: every length read from a
//! bundle is checked against the bytes present before it is used.
//!
//! `src/component.rs` (compiled for `wasm32` only) maps this onto the WIT.

use std::collections::BTreeMap;
use std::fmt;

#[cfg(target_arch = "wasm32")]
mod component;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure, with the kebab-case class the WIT's `stage-error.code`
/// carries (the fragmenter classes of `vectors/README.md`, plus
/// `malformed-sdnv` and `malformed-bundle` for BPv6's own encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: &'static str,
    pub message: String,
    /// Byte offset into the input, when there is one.
    pub offset: Option<u64>,
}

impl Error {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            offset: None,
        }
    }

    fn at(code: &'static str, offset: usize, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            offset: Some(offset as u64),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------
// SDNV (RFC 5050 §4.1, RFC 6256)
// ---------------------------------------------------------------------------

/// Self-delimiting numeric values: 7 bits per byte, most significant group
/// first, the top bit set on every byte but the last.
pub mod sdnv {
    use super::{Error, Result};

    /// Bytes `value` takes as an SDNV (at least 1, at most 10).
    pub fn len(value: u64) -> usize {
        let bits = 64 - value.leading_zeros() as usize;
        bits.div_ceil(7).max(1)
    }

    /// Appends `value` as an SDNV (shortest form).
    pub fn encode(value: u64, out: &mut Vec<u8>) {
        let n = len(value);
        for i in (0..n).rev() {
            let group = ((value >> (7 * i)) & 0x7f) as u8;
            out.push(if i == 0 { group } else { group | 0x80 });
        }
    }

    /// Reads the SDNV at `buf[at..]`: its value and the offset after it.
    /// Fails with `truncated` when the input ends inside it and with
    /// `malformed-sdnv` when its value does not fit in 64 bits. Leading
    /// zero groups (0x80) are accepted, as RFC 6256 lets decoders do.
    pub fn decode(buf: &[u8], at: usize) -> Result<(u64, usize)> {
        let mut value: u64 = 0;
        let mut i = at;
        loop {
            let Some(&byte) = buf.get(i) else {
                return Err(Error::at(
                    "truncated",
                    buf.len(),
                    format!("input ends inside the SDNV that starts at byte {at}"),
                ));
            };
            if value >> 57 != 0 {
                return Err(Error::at(
                    "malformed-sdnv",
                    at,
                    "SDNV value does not fit in 64 bits",
                ));
            }
            value = (value << 7) | u64::from(byte & 0x7f);
            i += 1;
            if byte & 0x80 == 0 {
                return Ok((value, i));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Flags (RFC 5050 §4.2, §4.3)
// ---------------------------------------------------------------------------

/// Bundle processing control flags (§4.2).
pub mod flags {
    pub const IS_FRAGMENT: u64 = 0x01;
    pub const ADMIN_RECORD: u64 = 0x02;
    pub const MUST_NOT_FRAGMENT: u64 = 0x04;
    pub const CUSTODY_REQUESTED: u64 = 0x08;
    pub const SINGLETON: u64 = 0x10;
    pub const APP_ACK: u64 = 0x20;
    /// Class of service (bits 7-8): 01 = normal priority.
    pub const PRIORITY_NORMAL: u64 = 0x80;
    pub const PRIORITY_MASK: u64 = 0x180;
    /// What [`crate::build`] sets: destination is a singleton, normal
    /// priority (pyD3TN's `DEFAULT_OUTGOING` too).
    pub const DEFAULT_OUTGOING: u64 = SINGLETON | PRIORITY_NORMAL;
}

/// Block processing control flags (§4.3).
pub mod block_flags {
    pub const REPLICATE: u64 = 0x01;
    pub const REPORT_IF_UNPROCESSABLE: u64 = 0x02;
    pub const DELETE_BUNDLE_IF_UNPROCESSABLE: u64 = 0x04;
    pub const LAST_BLOCK: u64 = 0x08;
    pub const DISCARD_IF_UNPROCESSABLE: u64 = 0x10;
    pub const FORWARDED_UNPROCESSED: u64 = 0x20;
    pub const HAS_EID_REFERENCES: u64 = 0x40;
}

/// Block type of the payload block (§4.5.2).
pub const PAYLOAD_BLOCK: u8 = 1;

// ---------------------------------------------------------------------------
// Time (RFC 5050 §4.5.1: seconds since 2000-01-01T00:00:00Z)
// ---------------------------------------------------------------------------

/// BPv6 seconds as DTN milliseconds (saturating: a hostile bundle can say
/// any 64-bit number of seconds).
pub fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

// ---------------------------------------------------------------------------
// Endpoint IDs (§4.4)
// ---------------------------------------------------------------------------

/// Longest scheme name or SSP RFC 5050 §4.4 allows, in bytes.
pub const MAX_EID_PART: usize = 1023;

/// An endpoint ID: a URI, `scheme:ssp`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Eid {
    pub scheme: String,
    pub ssp: String,
}

impl Eid {
    /// `dtn:none`, the null endpoint.
    pub fn null() -> Eid {
        Eid {
            scheme: "dtn".into(),
            ssp: "none".into(),
        }
    }

    pub fn is_null(&self) -> bool {
        self.scheme == "dtn" && self.ssp == "none"
    }

    /// `ipn:node.service` (RFC 6260).
    pub fn ipn(node: u64, service: u64) -> Eid {
        Eid {
            scheme: "ipn".into(),
            ssp: format!("{node}.{service}"),
        }
    }

    /// Node and service numbers of an `ipn` EID whose SSP is `N.S`.
    pub fn ipn_numbers(&self) -> Option<(u64, u64)> {
        if self.scheme != "ipn" {
            return None;
        }
        let (n, s) = self.ssp.split_once('.')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(n) || !digits(s) {
            return None;
        }
        Some((n.parse().ok()?, s.parse().ok()?))
    }

    /// Checks a scheme name and SSP as they may appear in a dictionary:
    /// a URI scheme (RFC 3986 §3.1), a non-empty SSP of printable
    /// characters without NUL, each at most 1023 bytes; `ipn` SSPs must be
    /// `node.service`.
    fn check(&self) -> std::result::Result<(), String> {
        let s = self.scheme.as_bytes();
        if s.is_empty() || !s[0].is_ascii_alphabetic() {
            return Err(format!("scheme `{}` does not start with a letter", self.scheme));
        }
        if !s
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(format!("scheme `{}` has characters RFC 3986 §3.1 does not allow", self.scheme));
        }
        if s.len() > MAX_EID_PART || self.ssp.len() > MAX_EID_PART {
            return Err(format!("scheme and SSP are limited to {MAX_EID_PART} bytes each (§4.4)"));
        }
        if self.ssp.is_empty() {
            return Err("empty scheme-specific part".into());
        }
        if self.ssp.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return Err("SSP contains NUL or control characters".into());
        }
        if self.scheme == "ipn" && self.ipn_numbers().is_none() {
            return Err(format!("`ipn:{}` is not ipn:NODE.SERVICE (RFC 6260)", self.ssp));
        }
        Ok(())
    }
}

impl std::str::FromStr for Eid {
    type Err = Error;

    fn from_str(text: &str) -> Result<Eid> {
        let Some((scheme, ssp)) = text.split_once(':') else {
            return Err(Error::new("invalid-eid", format!("`{text}` is not scheme:ssp")));
        };
        let eid = Eid {
            scheme: scheme.into(),
            ssp: ssp.into(),
        };
        eid.check()
            .map_err(|e| Error::new("invalid-eid", format!("`{text}`: {e}")))?;
        Ok(eid)
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.ssp)
    }
}

// ---------------------------------------------------------------------------
// Primary block (§4.5.1)
// ---------------------------------------------------------------------------

/// The primary bundle block as it is on the wire: EIDs are offsets into
/// the dictionary (or, in CBHE form with an empty dictionary, node and
/// service numbers), kept verbatim so that extension blocks' EID
/// references stay valid in fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primary {
    /// Bundle processing control flags (§4.2).
    pub flags: u64,
    /// Scheme and SSP offsets of destination, source, report-to and
    /// custodian, in that order (the wire order).
    pub offsets: [u64; 8],
    /// Creation timestamp time, seconds since 2000.
    pub creation_time: u64,
    pub sequence_number: u64,
    /// Seconds after the creation time.
    pub lifetime: u64,
    pub dictionary: Vec<u8>,
    /// Fragment offset and total application data unit length.
    pub fragment: Option<(u64, u64)>,
}

impl Primary {
    /// From four EIDs (destination, source, report-to, custodian), with a
    /// dictionary written the way RFC 5050 §4.5.1 describes it and pyD3TN
    /// writes it: each EID's scheme and SSP, NUL-terminated, no sharing.
    pub fn with_eids(
        flags: u64,
        eids: [&Eid; 4],
        creation_time: u64,
        sequence_number: u64,
        lifetime: u64,
    ) -> Primary {
        let mut dictionary = Vec::new();
        let mut offsets = [0u64; 8];
        for (i, eid) in eids.iter().enumerate() {
            offsets[2 * i] = dictionary.len() as u64;
            dictionary.extend_from_slice(eid.scheme.as_bytes());
            dictionary.push(0);
            offsets[2 * i + 1] = dictionary.len() as u64;
            dictionary.extend_from_slice(eid.ssp.as_bytes());
            dictionary.push(0);
        }
        Primary {
            flags,
            offsets,
            creation_time,
            sequence_number,
            lifetime,
            dictionary,
            fragment: None,
        }
    }

    /// Bytes after the block length field.
    fn body_len(&self) -> usize {
        let mut n: usize = self.offsets.iter().map(|&o| sdnv::len(o)).sum();
        n += sdnv::len(self.creation_time) + sdnv::len(self.sequence_number);
        n += sdnv::len(self.lifetime);
        n += sdnv::len(self.dictionary.len() as u64) + self.dictionary.len();
        if let Some((o, t)) = self.fragment {
            n += sdnv::len(o) + sdnv::len(t);
        }
        n
    }

    /// Encoded length of the whole block.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        1 + sdnv::len(self.flags) + sdnv::len(body as u64) + body
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(6);
        sdnv::encode(self.flags, out);
        sdnv::encode(self.body_len() as u64, out);
        for &o in &self.offsets {
            sdnv::encode(o, out);
        }
        sdnv::encode(self.creation_time, out);
        sdnv::encode(self.sequence_number, out);
        sdnv::encode(self.lifetime, out);
        sdnv::encode(self.dictionary.len() as u64, out);
        out.extend_from_slice(&self.dictionary);
        if let Some((o, t)) = self.fragment {
            sdnv::encode(o, out);
            sdnv::encode(t, out);
        }
    }

    /// The EID at offsets `2i`, `2i+1`: read from the dictionary, or in
    /// CBHE form (empty dictionary, RFC 6260 §2.2) `ipn:N.S` with `0.0`
    /// meaning `dtn:none`.
    fn eid(&self, i: usize) -> std::result::Result<Eid, String> {
        let (a, b) = (self.offsets[2 * i], self.offsets[2 * i + 1]);
        if self.dictionary.is_empty() {
            return Ok(if (a, b) == (0, 0) {
                Eid::null()
            } else {
                Eid::ipn(a, b)
            });
        }
        let eid = Eid {
            scheme: dict_string(&self.dictionary, a)?,
            ssp: dict_string(&self.dictionary, b)?,
        };
        eid.check()?;
        Ok(eid)
    }
}

/// The NUL-terminated string at `offset` in `dictionary`.
fn dict_string(dictionary: &[u8], offset: u64) -> std::result::Result<String, String> {
    let start = usize::try_from(offset)
        .ok()
        .filter(|&s| s < dictionary.len())
        .ok_or_else(|| {
            format!(
                "dictionary offset {offset} is outside the {}-byte dictionary",
                dictionary.len()
            )
        })?;
    let rest = &dictionary[start..];
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("string at dictionary offset {offset} is not NUL-terminated"))?;
    String::from_utf8(rest[..end].to_vec())
        .map_err(|_| format!("string at dictionary offset {offset} is not UTF-8"))
}

// ---------------------------------------------------------------------------
// Canonical blocks (§4.5.2) and whole bundles
// ---------------------------------------------------------------------------

/// One canonical block, borrowing its data from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    pub block_type: u8,
    /// Block processing control flags (§4.3) as received.
    pub flags: u64,
    /// EID references (scheme offset, SSP offset), present when flag 0x40 is set.
    pub eid_refs: Vec<(u64, u64)>,
    pub data: &'a [u8],
}

impl Block<'_> {
    /// Encoded length with the "last block" flag set or not.
    fn encoded_len(&self, last: bool) -> usize {
        let mut n = 1 + sdnv::len(block_flags_for(self.flags, last));
        if self.flags & block_flags::HAS_EID_REFERENCES != 0 {
            n += sdnv::len(self.eid_refs.len() as u64);
            n += self
                .eid_refs
                .iter()
                .map(|&(a, b)| sdnv::len(a) + sdnv::len(b))
                .sum::<usize>();
        }
        n + sdnv::len(self.data.len() as u64) + self.data.len()
    }

    fn encode(&self, last: bool, out: &mut Vec<u8>) {
        encode_block_head(self.block_type, self.flags, &self.eid_refs, self.data.len(), last, out);
        out.extend_from_slice(self.data);
    }
}

fn block_flags_for(flags: u64, last: bool) -> u64 {
    if last {
        flags | block_flags::LAST_BLOCK
    } else {
        flags & !block_flags::LAST_BLOCK
    }
}

fn encode_block_head(
    block_type: u8,
    flags: u64,
    eid_refs: &[(u64, u64)],
    data_len: usize,
    last: bool,
    out: &mut Vec<u8>,
) {
    out.push(block_type);
    sdnv::encode(block_flags_for(flags, last), out);
    if flags & block_flags::HAS_EID_REFERENCES != 0 {
        sdnv::encode(eid_refs.len() as u64, out);
        for &(a, b) in eid_refs {
            sdnv::encode(a, out);
            sdnv::encode(b, out);
        }
    }
    sdnv::encode(data_len as u64, out);
}

/// A parsed bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    pub primary: Primary,
    pub destination: Eid,
    pub source: Eid,
    pub report_to: Eid,
    pub custodian: Eid,
    /// Every canonical block in wire order, payload included.
    pub blocks: Vec<Block<'a>>,
    /// Index of the payload block in `blocks`.
    pub payload_index: usize,
}

/// The identity of an original bundle (§5.9's source EID and creation
/// timestamp), times in BPv6 seconds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleId {
    pub source: Eid,
    pub creation_time: u64,
    pub sequence_number: u64,
}

impl<'a> Bundle<'a> {
    pub fn payload(&self) -> &'a [u8] {
        self.blocks[self.payload_index].data
    }

    pub fn id(&self) -> BundleId {
        BundleId {
            source: self.source.clone(),
            creation_time: self.primary.creation_time,
            sequence_number: self.primary.sequence_number,
        }
    }

    /// Parses and validates one whole bundle; bytes after it are an error.
    pub fn parse(buf: &'a [u8]) -> Result<Bundle<'a>> {
        let (bundle, end) = Bundle::parse_prefix(buf)?;
        if end != buf.len() {
            return Err(Error::at(
                "trailing-bytes",
                end,
                format!("{} bytes after the block flagged last", buf.len() - end),
            ));
        }
        Ok(bundle)
    }

    /// Parses one bundle at the start of `buf`; returns it and where it ends.
    pub fn parse_prefix(buf: &'a [u8]) -> Result<(Bundle<'a>, usize)> {
        let Some(&version) = buf.first() else {
            return Err(Error::at("truncated", 0, "empty input: no primary block"));
        };
        if version != 6 {
            return Err(Error::at(
                "unsupported-version",
                0,
                format!("primary block version is {version}; this plugin reads BPv6 (RFC 5050) bundles, version 6"),
            ));
        }
        let (bundle_flags, at) = sdnv::decode(buf, 1)?;
        let (block_len, body_start) = sdnv::decode(buf, at)?;
        let body_end = usize::try_from(block_len)
            .ok()
            .and_then(|l| body_start.checked_add(l))
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                Error::at(
                    "truncated",
                    buf.len(),
                    format!("primary block length {block_len} runs past the end of the input"),
                )
            })?;
        // Fields are read within the block only.
        let body = &buf[..body_end];
        let inside = |e: Error| -> Error {
            if e.code == "truncated" {
                Error::at(
                    "malformed-bundle",
                    body_start,
                    format!("primary block fields run past its length field ({block_len} bytes)"),
                )
            } else {
                e
            }
        };
        let mut at = body_start;
        let mut next = || -> Result<u64> {
            let (v, n) = sdnv::decode(body, at).map_err(inside)?;
            at = n;
            Ok(v)
        };
        let mut offsets = [0u64; 8];
        for o in offsets.iter_mut() {
            *o = next()?;
        }
        let creation_time = next()?;
        let sequence_number = next()?;
        let lifetime = next()?;
        let dict_len = next()?;
        let dict_start = at;
        let dict_end = usize::try_from(dict_len)
            .ok()
            .and_then(|l| dict_start.checked_add(l))
            .filter(|&e| e <= body_end)
            .ok_or_else(|| {
                Error::at(
                    "malformed-bundle",
                    dict_start,
                    format!("dictionary length {dict_len} runs past the primary block"),
                )
            })?;
        let dictionary = body[dict_start..dict_end].to_vec();
        at = dict_end;
        let fragment = if bundle_flags & flags::IS_FRAGMENT != 0 {
            let (offset, n) = sdnv::decode(body, at).map_err(inside)?;
            let (total, n) = sdnv::decode(body, n).map_err(inside)?;
            at = n;
            Some((offset, total))
        } else {
            None
        };
        if at != body_end {
            return Err(Error::at(
                "malformed-bundle",
                at,
                format!(
                    "primary block length says {block_len} bytes but its fields take {}",
                    at - body_start
                ),
            ));
        }
        let primary = Primary {
            flags: bundle_flags,
            offsets,
            creation_time,
            sequence_number,
            lifetime,
            dictionary,
            fragment,
        };
        let eid = |i: usize, name: &str| {
            primary
                .eid(i)
                .map_err(|e| Error::at("invalid-eid", dict_start, format!("{name}: {e}")))
        };
        let destination = eid(0, "destination")?;
        let source = eid(1, "source")?;
        let report_to = eid(2, "report-to")?;
        let custodian = eid(3, "custodian")?;

        if bundle_flags & flags::IS_FRAGMENT != 0 && bundle_flags & flags::MUST_NOT_FRAGMENT != 0 {
            return Err(Error::at(
                "invalid-flags",
                1,
                "flags say both \"is a fragment\" and \"must not be fragmented\"",
            ));
        }
        if fragment.is_some() && source.is_null() {
            return Err(Error::at(
                "invalid-flags",
                1,
                "a fragment from the null source dtn:none cannot be reassembled: §5.9 identifies the original bundle by its source",
            ));
        }

        // Canonical blocks until the one flagged "last block".
        let mut blocks: Vec<Block<'a>> = Vec::new();
        let mut payload_index = None;
        let mut at = body_end;
        loop {
            let start = at;
            let Some(&block_type) = buf.get(at) else {
                return Err(Error::at(
                    "truncated",
                    buf.len(),
                    "input ends before a block flagged \"last block\"",
                ));
            };
            let (bflags, n) = sdnv::decode(buf, at + 1)?;
            at = n;
            let mut eid_refs = Vec::new();
            if bflags & block_flags::HAS_EID_REFERENCES != 0 {
                let (count, n) = sdnv::decode(buf, at)?;
                at = n;
                // Each reference takes at least two bytes: check before allocating.
                if count > ((buf.len() - at) / 2) as u64 {
                    return Err(Error::at(
                        "truncated",
                        buf.len(),
                        format!("block at byte {start} claims {count} EID references, more than the input holds"),
                    ));
                }
                eid_refs.reserve(count as usize);
                for _ in 0..count {
                    let (a, n) = sdnv::decode(buf, at)?;
                    let (b, n) = sdnv::decode(buf, n)?;
                    at = n;
                    if !primary.dictionary.is_empty() {
                        for o in [a, b] {
                            dict_string(&primary.dictionary, o).map_err(|e| {
                                Error::at("invalid-eid", start, format!("EID reference of block at byte {start}: {e}"))
                            })?;
                        }
                    }
                    eid_refs.push((a, b));
                }
            }
            let (data_len, data_start) = sdnv::decode(buf, at)?;
            let data_end = usize::try_from(data_len)
                .ok()
                .and_then(|l| data_start.checked_add(l))
                .filter(|&e| e <= buf.len())
                .ok_or_else(|| {
                    Error::at(
                        "truncated",
                        buf.len(),
                        format!("block at byte {start} says {data_len} data bytes, more than the input holds"),
                    )
                })?;
            at = data_end;
            if block_type == PAYLOAD_BLOCK {
                if payload_index.is_some() {
                    return Err(Error::at("duplicate-block", start, "a second payload block"));
                }
                payload_index = Some(blocks.len());
            } else if bflags & block_flags::DELETE_BUNDLE_IF_UNPROCESSABLE != 0 {
                return Err(Error::at(
                    "unprocessable-block",
                    start,
                    format!("block type {block_type} is not processed here and is flagged \"delete bundle if block can't be processed\" (§4.3)"),
                ));
            }
            blocks.push(Block {
                block_type,
                flags: bflags,
                eid_refs,
                data: &buf[data_start..data_end],
            });
            if bflags & block_flags::LAST_BLOCK != 0 {
                break;
            }
        }
        let Some(payload_index) = payload_index else {
            return Err(Error::at("missing-payload", body_end, "no payload block (type 1)"));
        };
        let bundle = Bundle {
            primary,
            destination,
            source,
            report_to,
            custodian,
            blocks,
            payload_index,
        };
        if let Some((offset, total)) = bundle.primary.fragment {
            let len = bundle.payload().len() as u64;
            if total == 0 || offset >= total {
                return Err(Error::at(
                    "invalid-fragment",
                    body_start,
                    format!("fragment offset {offset} is not inside the total ADU length {total}"),
                ));
            }
            if len == 0 {
                return Err(Error::at(
                    "invalid-fragment",
                    body_end,
                    "fragment with an empty payload (§5.8 fragments carry at least one byte)",
                ));
            }
            if offset.checked_add(len).is_none_or(|e| e > total) {
                return Err(Error::at(
                    "offset-out-of-range",
                    body_start,
                    format!("fragment at offset {offset} with {len} payload bytes runs past the total ADU length {total}"),
                ));
            }
        }
        Ok((bundle, at))
    }

    /// Encodes with `payload` in place of the payload block's data, keeping
    /// the blocks selected by `keep` (the payload is always kept); the last
    /// block written gets the "last block" flag.
    fn encode_with(&self, primary: &Primary, payload: &[u8], keep: &[bool], out: &mut Vec<u8>) {
        primary.encode(out);
        let last = (0..self.blocks.len()).rev().find(|&i| keep[i] || i == self.payload_index);
        for (i, block) in self.blocks.iter().enumerate() {
            let is_last = Some(i) == last;
            if i == self.payload_index {
                encode_block_head(block.block_type, block.flags, &block.eid_refs, payload.len(), is_last, out);
                out.extend_from_slice(payload);
            } else if keep[i] {
                block.encode(is_last, out);
            }
        }
    }

    /// Re-encodes the bundle as it is.
    pub fn encode(&self) -> Vec<u8> {
        let keep = vec![true; self.blocks.len()];
        let mut out = Vec::new();
        self.encode_with(&self.primary, self.payload(), &keep, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------
// Building (§4.5)
// ---------------------------------------------------------------------------

/// What to put in the primary block of a new bundle, BPv6 units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub source: Eid,
    pub destination: Eid,
    pub report_to: Eid,
    /// Seconds since 2000-01-01T00:00:00Z.
    pub creation_time: u64,
    pub sequence_number: u64,
    /// Seconds.
    pub lifetime: u64,
    pub must_not_fragment: bool,
}

impl Spec {
    /// From the WIT's fields: EIDs as text, times in DTN milliseconds.
    /// The creation time is truncated to whole seconds (RFC 5050 has no
    /// finer clock) and the lifetime rounded up, so the bundle never
    /// expires before the time asked for. A creation time of 0 ("no
    /// clock" in the WIT, RFC 9171 §4.2.7) is refused: RFC 5050 needs a
    /// clock and has no Bundle Age block to stand in for one.
    pub fn from_dtn_ms(
        source: &str,
        destination: &str,
        report_to: &str,
        creation_time_ms: u64,
        sequence_number: u64,
        lifetime_ms: u64,
        must_not_fragment: bool,
    ) -> Result<Spec> {
        let eid = |name: &str, text: &str| {
            text.parse::<Eid>()
                .map_err(|e| Error::new("invalid-spec", format!("{name}: {}", e.message)))
        };
        if creation_time_ms == 0 {
            return Err(Error::new(
                "invalid-spec",
                "creation time 0 (no clock) cannot be expressed in BPv6: RFC 5050 §4.5.1 needs a creation time and defines no Bundle Age block",
            ));
        }
        Ok(Spec {
            source: eid("source", source)?,
            destination: eid("destination", destination)?,
            report_to: eid("report-to", report_to)?,
            creation_time: creation_time_ms / 1000,
            sequence_number,
            lifetime: lifetime_ms.div_ceil(1000),
            must_not_fragment,
        })
    }

    fn check(&self) -> Result<()> {
        if self.source.is_null() && !self.must_not_fragment {
            return Err(Error::new(
                "invalid-spec",
                "anonymous source dtn:none without must-not-fragment: fragments of it could not be reassembled (§5.9 identifies bundles by source)",
            ));
        }
        Ok(())
    }

    fn primary(&self) -> Primary {
        let mut f = flags::DEFAULT_OUTGOING;
        if self.must_not_fragment {
            f |= flags::MUST_NOT_FRAGMENT;
        }
        Primary::with_eids(
            f,
            [&self.destination, &self.source, &self.report_to, &Eid::null()],
            self.creation_time,
            self.sequence_number,
            self.lifetime,
        )
    }
}

/// One bundle: the primary block from `spec`, then a payload block
/// holding `adu`, flagged last. Never fragmented, whatever its size.
pub fn build(adu: &[u8], spec: &Spec) -> Result<Vec<u8>> {
    spec.check()?;
    let primary = spec.primary();
    let mut out = Vec::with_capacity(primary.encoded_len() + adu.len() + 12);
    primary.encode(&mut out);
    encode_block_head(PAYLOAD_BLOCK, 0, &[], adu.len(), true, &mut out);
    out.extend_from_slice(adu);
    Ok(out)
}

/// [`build`], then [`fragment`] so no bundle is larger than `mtu`.
pub fn fragment_adu(adu: &[u8], spec: &Spec, mtu: u64) -> Result<Vec<Vec<u8>>> {
    spec.check()?;
    let primary = spec.primary();
    let whole = primary.encoded_len() + 2 + sdnv::len(adu.len() as u64) + adu.len();
    if whole as u64 <= mtu {
        return Ok(vec![build(adu, spec)?]);
    }
    // The bundle `build` would write, not written: its payload is `adu`.
    let bundle = Bundle {
        primary,
        destination: spec.destination.clone(),
        source: spec.source.clone(),
        report_to: spec.report_to.clone(),
        custodian: Eid::null(),
        blocks: vec![Block {
            block_type: PAYLOAD_BLOCK,
            flags: 0,
            eid_refs: Vec::new(),
            data: adu,
        }],
        payload_index: 0,
    };
    fragment_parsed(&bundle, mtu)
}

// ---------------------------------------------------------------------------
// Fragmentation (§5.8)
// ---------------------------------------------------------------------------

/// Largest `len` with `sdnv::len(len) + len <= room`.
fn max_fit(room: u64) -> u64 {
    if room < 2 {
        return 0;
    }
    let mut len = room - 1;
    while sdnv::len(len) as u64 + len > room {
        len -= 1;
    }
    len
}

/// Fragments a bundle (itself maybe a fragment: offsets stay relative to
/// the original ADU) into bundles of at most `mtu` bytes. A bundle that
/// fits already is returned unchanged.
pub fn fragment(bundle: &[u8], mtu: u64) -> Result<Vec<Vec<u8>>> {
    let parsed = Bundle::parse(bundle)?;
    if bundle.len() as u64 <= mtu {
        return Ok(vec![bundle.to_vec()]);
    }
    fragment_parsed(&parsed, mtu)
}

/// §5.8: every fragment has the primary block with the fragment flag, its
/// offset in the original ADU and the ADU's total length; blocks before
/// the payload go in the first fragment, blocks after it in the last, and
/// blocks flagged "replicate in every fragment" in all of them.
fn fragment_parsed(b: &Bundle<'_>, mtu: u64) -> Result<Vec<Vec<u8>>> {
    if b.primary.flags & flags::MUST_NOT_FRAGMENT != 0 {
        return Err(Error::new(
            "must-not-fragment",
            format!("the bundle is flagged \"must not be fragmented\" and is larger than the MTU of {mtu} bytes"),
        ));
    }
    let payload = b.payload();
    let len = payload.len() as u64;
    if len == 0 {
        return Err(Error::new(
            "mtu-too-small",
            format!("the bundle is larger than the MTU of {mtu} bytes and has no payload bytes to split"),
        ));
    }
    let (base, total) = b.primary.fragment.unwrap_or((0, len));
    let mut primary = b.primary.clone();
    primary.flags |= flags::IS_FRAGMENT;
    let p = b.payload_index;
    let replicated = |i: usize| b.blocks[i].flags & block_flags::REPLICATE != 0;
    // Which extension blocks a fragment carries, by position.
    let keep = |first: bool, last: bool| -> Vec<bool> {
        (0..b.blocks.len())
            .map(|i| i == p || replicated(i) || (i < p && first) || (i > p && last))
            .collect()
    };
    // Bytes of the kept extension blocks; the "last block" flag sits on the
    // payload block unless a block after it is kept.
    let ext_len = |keep: &[bool]| -> (u64, bool) {
        let last_kept = (0..b.blocks.len()).rev().find(|&i| keep[i]);
        let bytes = b
            .blocks
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != p && keep[i])
            .map(|(i, blk)| blk.encoded_len(Some(i) == last_kept) as u64)
            .sum();
        (bytes, last_kept == Some(p))
    };
    let pflags = b.blocks[p].flags;
    let head_extra = |payload_last: bool| -> u64 {
        // Type byte, flags and EID references; the length SDNV is added by max_fit.
        let blk = &b.blocks[p];
        let mut n = 1 + sdnv::len(block_flags_for(pflags, payload_last)) as u64;
        if blk.flags & block_flags::HAS_EID_REFERENCES != 0 {
            n += sdnv::len(blk.eid_refs.len() as u64) as u64;
            n += blk
                .eid_refs
                .iter()
                .map(|&(x, y)| (sdnv::len(x) + sdnv::len(y)) as u64)
                .sum::<u64>();
        }
        n
    };

    let mut out = Vec::new();
    let mut pos: u64 = 0;
    while pos < len {
        primary.fragment = Some((base + pos, total));
        let prim = primary.encoded_len() as u64;
        let first = pos == 0;
        let remaining = len - pos;
        // As the last piece: everything that is left.
        let k_last = keep(first, true);
        let (ext, payload_last) = ext_len(&k_last);
        let need = prim + ext + head_extra(payload_last) + sdnv::len(remaining) as u64 + remaining;
        let (take, k) = if need <= mtu {
            (remaining, k_last)
        } else {
            let k_mid = keep(first, false);
            let (ext, payload_last) = ext_len(&k_mid);
            let fixed = prim + ext + head_extra(payload_last);
            let take = max_fit(mtu.saturating_sub(fixed)).min(remaining - 1);
            if take == 0 {
                return Err(Error::new(
                    "mtu-too-small",
                    format!("an MTU of {mtu} bytes cannot hold a fragment's blocks and one payload byte (fragment at ADU offset {})", base + pos),
                ));
            }
            (take, k_mid)
        };
        let piece = &payload[pos as usize..(pos + take) as usize];
        let mut bytes = Vec::with_capacity(mtu.min(prim + take + 64 + b.blocks.len() as u64 * 16) as usize);
        b.encode_with(&primary, piece, &k, &mut bytes);
        debug_assert!(bytes.len() as u64 <= mtu);
        out.push(bytes);
        pos += take;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------

/// One canonical block as `inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub block_type: u64,
    /// BPv6 blocks have no numbers: the payload block is reported as 1 and
    /// the others as 2, 3, … in wire order.
    pub block_number: u64,
    pub flags: u64,
    pub data_length: u64,
}

/// The fields of a bundle, BPv6 units (seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub version: u64,
    pub flags: u64,
    pub is_fragment: bool,
    pub must_not_fragment: bool,
    pub destination: Eid,
    pub source: Eid,
    pub report_to: Eid,
    pub custodian: Eid,
    pub creation_time: u64,
    pub sequence_number: u64,
    pub lifetime: u64,
    pub fragment_offset: Option<u64>,
    pub total_adu_length: Option<u64>,
    pub payload_length: u64,
    pub blocks: Vec<BlockInfo>,
}

/// Parses and validates one bundle and reports its fields.
pub fn inspect(bundle: &[u8]) -> Result<Info> {
    let b = Bundle::parse(bundle)?;
    let mut next = 2;
    let blocks = b
        .blocks
        .iter()
        .enumerate()
        .map(|(i, blk)| BlockInfo {
            block_type: u64::from(blk.block_type),
            block_number: if i == b.payload_index {
                1
            } else {
                next += 1;
                next - 1
            },
            flags: blk.flags,
            data_length: blk.data.len() as u64,
        })
        .collect();
    Ok(Info {
        version: 6,
        flags: b.primary.flags,
        is_fragment: b.primary.flags & flags::IS_FRAGMENT != 0,
        must_not_fragment: b.primary.flags & flags::MUST_NOT_FRAGMENT != 0,
        destination: b.destination.clone(),
        source: b.source.clone(),
        report_to: b.report_to.clone(),
        custodian: b.custodian.clone(),
        creation_time: b.primary.creation_time,
        sequence_number: b.primary.sequence_number,
        lifetime: b.primary.lifetime,
        fragment_offset: b.primary.fragment.map(|f| f.0),
        total_adu_length: b.primary.fragment.map(|f| f.1),
        payload_length: b.payload().len() as u64,
        blocks,
    })
}

// ---------------------------------------------------------------------------
// Reassembly (§5.9)
// ---------------------------------------------------------------------------

/// Limits that bound a [`Reassembler`]'s memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_adu_bytes: u64,
    pub max_pending_bytes: u64,
    pub max_pending_bundles: u32,
}

/// A complete ADU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub id: BundleId,
    pub destination: Eid,
    pub fragments: u32,
    pub adu: Vec<u8>,
}

/// What a reassembler holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub bundles: u32,
    pub bytes: u64,
}

#[derive(Debug)]
struct Partial {
    destination: Eid,
    total: u64,
    /// DTN ms after which the ADU is dropped.
    deadline: u64,
    /// Non-overlapping material extents, offset -> bytes.
    chunks: BTreeMap<u64, Vec<u8>>,
    held: u64,
    fragments: u32,
}

impl Partial {
    /// Compares `data` at `offset` with what is held; returns the gaps it
    /// fills as (start, end) ADU offsets.
    fn gaps(&self, offset: u64, data: &[u8]) -> Result<Vec<(u64, u64)>> {
        let end = offset + data.len() as u64;
        let mut overlapping = Vec::new();
        for (&start, chunk) in self.chunks.range(..end).rev() {
            let chunk_end = start + chunk.len() as u64;
            if chunk_end <= offset {
                break;
            }
            let lo = start.max(offset);
            let hi = chunk_end.min(end);
            let held = &chunk[(lo - start) as usize..(hi - start) as usize];
            let new = &data[(lo - offset) as usize..(hi - offset) as usize];
            if held != new {
                let at = lo + held.iter().zip(new).take_while(|(a, b)| a == b).count() as u64;
                return Err(Error::new(
                    "overlap-mismatch",
                    format!("fragment disagrees with the bytes already held at ADU offset {at}"),
                ));
            }
            overlapping.push((start, chunk_end));
        }
        let mut gaps = Vec::new();
        let mut cursor = offset;
        for &(start, chunk_end) in overlapping.iter().rev() {
            if start > cursor {
                gaps.push((cursor, start));
            }
            cursor = cursor.max(chunk_end);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        Ok(gaps)
    }

    fn assemble(mut self) -> Vec<u8> {
        if self.chunks.len() == 1 {
            if let Some((_, adu)) = self.chunks.pop_first() {
                return adu;
            }
        }
        let mut adu = Vec::with_capacity(self.total as usize);
        for chunk in self.chunks.into_values() {
            adu.extend_from_slice(&chunk);
        }
        adu
    }
}

/// Collects bundles and fragments in any order and yields complete ADUs.
/// Every check runs before anything changes, so a push that fails leaves
/// the reassembler as it was.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    partial: BTreeMap<BundleId, Partial>,
    bytes: u64,
    /// Fragmented ADUs delivered, with their deadline: late duplicates are
    /// absorbed until then.
    delivered: BTreeMap<BundleId, u64>,
}

/// The DTN ms time a bundle expires: (creation + lifetime) seconds.
/// `expired` when that is before `now`.
fn deadline(p: &Primary, now: u64) -> Result<u64> {
    let end = ms(p.creation_time.saturating_add(p.lifetime));
    if end < now {
        return Err(Error::new(
            "expired",
            format!(
                "created at {} s with a lifetime of {} s (DTN time), so it expired at {end} ms, before now ({now} ms)",
                p.creation_time, p.lifetime
            ),
        ));
    }
    Ok(end)
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            partial: BTreeMap::new(),
            bytes: 0,
            delivered: BTreeMap::new(),
        }
    }

    pub fn pending(&self) -> Pending {
        Pending {
            bundles: self.partial.len() as u32,
            bytes: self.bytes,
        }
    }

    fn check_adu_size(&self, total: u64) -> Result<()> {
        if total > self.limits.max_adu_bytes || usize::try_from(total).is_err() {
            return Err(Error::new(
                "limit-exceeded",
                format!(
                    "ADU of {total} bytes is larger than the max_adu_bytes limit of {}",
                    self.limits.max_adu_bytes
                ),
            ));
        }
        Ok(())
    }

    fn check_pending_bytes(&self, more: u64) -> Result<()> {
        if self.bytes.saturating_add(more) > self.limits.max_pending_bytes {
            return Err(Error::new(
                "limit-exceeded",
                format!(
                    "holding {more} more bytes would take pending data from {} past the max_pending_bytes limit of {}",
                    self.bytes, self.limits.max_pending_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Takes one bundle received at DTN time `now` (ms); returns the ADU
    /// when this bundle completes one.
    pub fn push(&mut self, bundle: &[u8], now: u64) -> Result<Option<Delivered>> {
        let b = Bundle::parse(bundle)?;
        let deadline = deadline(&b.primary, now)?;
        let payload = b.payload();
        let id = b.id();
        let Some((offset, total)) = b.primary.fragment else {
            self.check_adu_size(payload.len() as u64)?;
            return Ok(Some(Delivered {
                id,
                destination: b.destination,
                fragments: 1,
                adu: payload.to_vec(),
            }));
        };
        self.check_adu_size(total)?;
        if self.delivered.contains_key(&id) {
            return Ok(None);
        }
        let len = payload.len() as u64;
        let Some(entry) = self.partial.get(&id) else {
            if len == total {
                return Ok(Some(Delivered {
                    id,
                    destination: b.destination,
                    fragments: 1,
                    adu: payload.to_vec(),
                }));
            }
            if self.partial.len() >= self.limits.max_pending_bundles as usize {
                return Err(Error::new(
                    "limit-exceeded",
                    format!(
                        "already holding {} incomplete ADUs, the max_pending_bundles limit",
                        self.partial.len()
                    ),
                ));
            }
            self.check_pending_bytes(len)?;
            let mut chunks = BTreeMap::new();
            chunks.insert(offset, payload.to_vec());
            self.bytes += len;
            self.partial.insert(
                id,
                Partial {
                    destination: b.destination,
                    total,
                    deadline,
                    chunks,
                    held: len,
                    fragments: 1,
                },
            );
            return Ok(None);
        };
        if entry.total != total {
            return Err(Error::new(
                "inconsistent-total-length",
                format!(
                    "fragment says the ADU is {total} bytes but earlier fragments of {} {}.{} said {}",
                    id.source, id.creation_time, id.sequence_number, entry.total
                ),
            ));
        }
        let gaps = entry.gaps(offset, payload)?;
        let new: u64 = gaps.iter().map(|(a, b)| b - a).sum();
        let completes = entry.held + new == total;
        if !completes {
            self.check_pending_bytes(new)?;
        }
        // All checks passed: from here on the state changes.
        let Some(entry) = self.partial.get_mut(&id) else {
            return Ok(None);
        };
        for &(a, e) in &gaps {
            let piece = &payload[(a - offset) as usize..(e - offset) as usize];
            // In-order pieces extend the chunk they follow.
            match entry.chunks.range_mut(..a).next_back() {
                Some((&start, chunk)) if start + chunk.len() as u64 == a => {
                    chunk.extend_from_slice(piece)
                }
                _ => {
                    entry.chunks.insert(a, piece.to_vec());
                }
            }
        }
        // A piece that ends where the next chunk starts: merge them.
        if let Some(&(_, e)) = gaps.last() {
            if let Some(next) = entry.chunks.remove(&e) {
                if let Some((_, chunk)) = entry.chunks.range_mut(..e).next_back() {
                    chunk.extend_from_slice(&next);
                }
            }
        }
        entry.held += new;
        entry.deadline = entry.deadline.min(deadline);
        if new > 0 {
            entry.fragments = entry.fragments.saturating_add(1);
        }
        self.bytes += new;
        if !completes {
            return Ok(None);
        }
        let Some(done) = self.partial.remove(&id) else {
            return Ok(None);
        };
        self.bytes -= done.held;
        self.remember_delivered(id.clone(), done.deadline);
        let destination = done.destination.clone();
        let fragments = done.fragments;
        Ok(Some(Delivered {
            id,
            destination,
            fragments,
            adu: done.assemble(),
        }))
    }

    fn remember_delivered(&mut self, id: BundleId, deadline: u64) {
        let cap = (self.limits.max_pending_bundles as usize).saturating_mul(4).max(64);
        if self.delivered.len() >= cap {
            if let Some(oldest) = self
                .delivered
                .iter()
                .min_by_key(|(_, d)| **d)
                .map(|(id, _)| id.clone())
            {
                self.delivered.remove(&oldest);
            }
        }
        self.delivered.insert(id, deadline);
    }

    /// Drops every incomplete ADU whose lifetime ended before `now` (DTN
    /// ms) and returns their ids.
    pub fn expire(&mut self, now: u64) -> Vec<BundleId> {
        let gone: Vec<BundleId> = self
            .partial
            .iter()
            .filter(|(_, p)| p.deadline < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(p) = self.partial.remove(id) {
                self.bytes -= p.held;
            }
        }
        self.delivered.retain(|_, d| *d >= now);
        gone
    }
}

#[cfg(test)]
mod tests;
