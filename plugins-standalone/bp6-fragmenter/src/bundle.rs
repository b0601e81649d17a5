//! The primary block (RFC 5050 §4.5.1), canonical blocks (§4.5.2) and whole bundles.

use crate::*;

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
    pub(crate) fn body_len(&self) -> usize {
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
    pub(crate) fn eid(&self, i: usize) -> std::result::Result<Eid, String> {
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
pub(crate) fn dict_string(dictionary: &[u8], offset: u64) -> std::result::Result<String, String> {
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
    pub(crate) fn encoded_len(&self, last: bool) -> usize {
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

    pub(crate) fn encode(&self, last: bool, out: &mut Vec<u8>) {
        encode_block_head(
            self.block_type,
            self.flags,
            &self.eid_refs,
            self.data.len(),
            last,
            out,
        );
        out.extend_from_slice(self.data);
    }
}

pub(crate) fn block_flags_for(flags: u64, last: bool) -> u64 {
    if last {
        flags | block_flags::LAST_BLOCK
    } else {
        flags & !block_flags::LAST_BLOCK
    }
}

pub(crate) fn encode_block_head(
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
                                Error::at(
                                    "invalid-eid",
                                    start,
                                    format!("EID reference of block at byte {start}: {e}"),
                                )
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
                    return Err(Error::at(
                        "duplicate-block",
                        start,
                        "a second payload block",
                    ));
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
            return Err(Error::at(
                "missing-payload",
                body_end,
                "no payload block (type 1)",
            ));
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
    pub(crate) fn encode_with(
        &self,
        primary: &Primary,
        payload: &[u8],
        keep: &[bool],
        out: &mut Vec<u8>,
    ) {
        primary.encode(out);
        let last = (0..self.blocks.len())
            .rev()
            .find(|&i| keep[i] || i == self.payload_index);
        for (i, block) in self.blocks.iter().enumerate() {
            let is_last = Some(i) == last;
            if i == self.payload_index {
                encode_block_head(
                    block.block_type,
                    block.flags,
                    &block.eid_refs,
                    payload.len(),
                    is_last,
                    out,
                );
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
