//! The `fragmenter-plugin` world (wit/deepmail.wit) over the BPv6 codec.
//! Only type and unit conversion lives here: WIT times are DTN
//! milliseconds, RFC 5050's are seconds (see `Spec::from_dtn_ms`).

wit_bindgen::generate!({
    path: "../../wit",
    world: "fragmenter-plugin",
});

use std::cell::RefCell;

use crate as bp6;
use deepmail::stages::types::StageError;
use exports::deepmail::stages::fragmenter::{
    BlockInfo, BundleId, BundleInfo, BundleSpec, CrcType, DeliveredAdu, PendingStats,
    ReassemblyLimits,
};
use exports::deepmail::stages::plugin_info::Info;

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "bp6-fragmenter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "BPv6 (RFC 5050) bundle builder, fragmenter (§5.8) and reassembler (§5.9); \
                          no CRCs in BPv6, times in whole seconds"
                    .into(),
        }
    }
}

fn stage_error(e: bp6::Error) -> StageError {
    StageError {
        code: e.code.into(),
        message: e.message,
        offset: e.offset,
    }
}

/// The WIT's CRC types are RFC 9171's; RFC 5050 blocks have no CRC field,
/// so the requested types are accepted and not applied (integrity is the
/// convergence layer's, or RFC 6257 BSP's), and `inspect` reports `none`.
fn spec_from_wit(s: BundleSpec) -> Result<bp6::Spec, StageError> {
    let _ignored: (CrcType, CrcType) = (s.crc, s.block_crc);
    bp6::Spec::from_dtn_ms(
        &s.source,
        &s.destination,
        &s.report_to,
        s.creation_time,
        s.sequence_number,
        s.lifetime_ms,
        s.must_not_fragment,
    )
    .map_err(stage_error)
}

fn id_to_wit(id: bp6::BundleId) -> BundleId {
    BundleId {
        source: id.source.to_string(),
        creation_time: bp6::ms(id.creation_time),
        sequence_number: id.sequence_number,
    }
}

impl exports::deepmail::stages::fragmenter::Guest for Plugin {
    type Reassembler = Reassembler;

    fn build(adu: Vec<u8>, spec: BundleSpec) -> Result<Vec<u8>, StageError> {
        bp6::build(&adu, &spec_from_wit(spec)?).map_err(stage_error)
    }

    fn fragment_adu(adu: Vec<u8>, spec: BundleSpec, mtu: u64) -> Result<Vec<Vec<u8>>, StageError> {
        bp6::fragment_adu(&adu, &spec_from_wit(spec)?, mtu).map_err(stage_error)
    }

    fn fragment(bundle: Vec<u8>, mtu: u64) -> Result<Vec<Vec<u8>>, StageError> {
        bp6::fragment(&bundle, mtu).map_err(stage_error)
    }

    fn inspect(bundle: Vec<u8>) -> Result<BundleInfo, StageError> {
        let i = bp6::inspect(&bundle).map_err(stage_error)?;
        Ok(BundleInfo {
            version: i.version,
            flags: i.flags,
            is_fragment: i.is_fragment,
            must_not_fragment: i.must_not_fragment,
            crc: CrcType::None,
            destination: i.destination.to_string(),
            source: i.source.to_string(),
            report_to: i.report_to.to_string(),
            creation_time: bp6::ms(i.creation_time),
            sequence_number: i.sequence_number,
            lifetime_ms: bp6::ms(i.lifetime),
            fragment_offset: i.fragment_offset,
            total_adu_length: i.total_adu_length,
            payload_length: i.payload_length,
            blocks: i
                .blocks
                .into_iter()
                .map(|b| BlockInfo {
                    block_type: b.block_type,
                    block_number: b.block_number,
                    flags: b.flags,
                    crc: CrcType::None,
                    data_length: b.data_length,
                })
                .collect(),
        })
    }
}

/// The `reassembler` resource.
struct Reassembler(RefCell<bp6::Reassembler>);

impl exports::deepmail::stages::fragmenter::GuestReassembler for Reassembler {
    fn new(limits: ReassemblyLimits) -> Self {
        Reassembler(RefCell::new(bp6::Reassembler::new(bp6::Limits {
            max_adu_bytes: limits.max_adu_bytes,
            max_pending_bytes: limits.max_pending_bytes,
            max_pending_bundles: limits.max_pending_bundles,
        })))
    }

    fn push(&self, bundle: Vec<u8>, now: u64) -> Result<Option<DeliveredAdu>, StageError> {
        let delivered = self
            .0
            .borrow_mut()
            .push(&bundle, now)
            .map_err(stage_error)?;
        Ok(delivered.map(|d| DeliveredAdu {
            source: d.id.source.to_string(),
            destination: d.destination.to_string(),
            creation_time: bp6::ms(d.id.creation_time),
            sequence_number: d.id.sequence_number,
            fragments: d.fragments,
            adu: d.adu,
        }))
    }

    fn expire(&self, now: u64) -> Vec<BundleId> {
        self.0
            .borrow_mut()
            .expire(now)
            .into_iter()
            .map(id_to_wit)
            .collect()
    }

    fn pending(&self) -> PendingStats {
        let p = self.0.borrow().pending();
        PendingStats {
            bundles: p.bundles,
            bytes: p.bytes,
        }
    }
}

export!(Plugin);
