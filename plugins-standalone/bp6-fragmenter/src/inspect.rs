//! Inspection: what a bundle says, for the WIT `inspect`.

use crate::*;

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
