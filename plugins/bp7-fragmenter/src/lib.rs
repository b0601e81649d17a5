//! Default `fragmenter-plugin` component: the `deepmail-bundle` library
//! behind the `deepmail:stages/fragmenter` WIT interface (RFC 9171 bundles,
//! §5.8 fragmentation, §5.9 reassembly) and `deepmail:stages/bpsec` (BIB
//! signing and verification, RFC 9172 / RFC 9173 §3). It computes CRC-32C
//! through the host's `host-checksum` import, so its world is
//! `accelerated-fragmenter-plugin`. Built for `wasm32-wasip2` and
//! embedded in the `deepmail` binary as `builtin:bp7-fragmenter`.
//!
//! Only type conversion lives here; the protocol logic is the sans-IO
//! library, shared with native callers and benchmarks.

wit_bindgen::generate!({
    path: "../../wit",
    world: "accelerated-fragmenter-plugin",
});

/// CRC-32C through the host (`host-checksum`, in hardware there): table
/// code in WebAssembly is several times slower. Set before any work.
fn accelerate() {
    bundle::provide_crc32c(deepmail::stages::host_checksum::crc32c);
}

use std::cell::RefCell;

use deepmail::stages::types::StageError;
use deepmail_bundle as bundle;
use exports::deepmail::stages::fragmenter::{
    BlockInfo, BundleId, BundleInfo, BundleSpec, CrcType, DeliveredAdu, PendingStats,
    ReassemblyLimits,
};
use exports::deepmail::stages::plugin_info::Info;

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "bp7-fragmenter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "deepmail's BPv7 bundle builder, fragmenter and reassembler (deepmail-bundle)"
                    .into(),
        }
    }
}

fn stage_error(e: bundle::BundleError) -> StageError {
    StageError {
        code: e.code().into(),
        message: e.to_string(),
        offset: e.offset,
    }
}

fn crc_from_wit(c: CrcType) -> bundle::CrcType {
    match c {
        CrcType::None => bundle::CrcType::None,
        CrcType::Crc16 => bundle::CrcType::Crc16,
        CrcType::Crc32c => bundle::CrcType::Crc32c,
    }
}

fn crc_to_wit(c: bundle::CrcType) -> CrcType {
    match c {
        bundle::CrcType::None => CrcType::None,
        bundle::CrcType::Crc16 => CrcType::Crc16,
        bundle::CrcType::Crc32c => CrcType::Crc32c,
    }
}

fn eid(field: &str, text: &str) -> Result<bundle::Eid, StageError> {
    text.parse().map_err(|e: bundle::BundleError| StageError {
        code: "invalid-spec".into(),
        message: format!("{field}: {e}"),
        offset: None,
    })
}

fn spec_from_wit(s: BundleSpec) -> Result<bundle::BundleSpec, StageError> {
    Ok(bundle::BundleSpec {
        source: eid("source", &s.source)?,
        destination: eid("destination", &s.destination)?,
        report_to: eid("report-to", &s.report_to)?,
        creation_time: s.creation_time,
        sequence_number: s.sequence_number,
        lifetime_ms: s.lifetime_ms,
        crc: crc_from_wit(s.crc),
        block_crc: crc_from_wit(s.block_crc),
        must_not_fragment: s.must_not_fragment,
    })
}

fn mtu(mtu: u64) -> usize {
    usize::try_from(mtu).unwrap_or(usize::MAX)
}

fn id_to_wit(id: bundle::BundleId) -> BundleId {
    BundleId {
        source: id.source.to_string(),
        creation_time: id.creation_time,
        sequence_number: id.sequence_number,
    }
}

impl exports::deepmail::stages::fragmenter::Guest for Plugin {
    type Reassembler = Reassembler;

    fn build(adu: Vec<u8>, spec: BundleSpec) -> Result<Vec<u8>, StageError> {
        accelerate();
        bundle::build(&adu, &spec_from_wit(spec)?).map_err(stage_error)
    }

    fn fragment_adu(
        adu: Vec<u8>,
        spec: BundleSpec,
        mtu_bytes: u64,
    ) -> Result<Vec<Vec<u8>>, StageError> {
        accelerate();
        bundle::fragment_adu(&adu, &spec_from_wit(spec)?, mtu(mtu_bytes)).map_err(stage_error)
    }

    fn fragment(bundle_bytes: Vec<u8>, mtu_bytes: u64) -> Result<Vec<Vec<u8>>, StageError> {
        accelerate();
        bundle::fragment(&bundle_bytes, mtu(mtu_bytes)).map_err(stage_error)
    }

    fn inspect(bundle_bytes: Vec<u8>) -> Result<BundleInfo, StageError> {
        accelerate();
        let info = bundle::inspect(&bundle_bytes).map_err(stage_error)?;
        Ok(BundleInfo {
            version: info.version,
            flags: info.flags,
            is_fragment: info.is_fragment,
            must_not_fragment: info.must_not_fragment,
            crc: crc_to_wit(info.crc),
            destination: info.destination.to_string(),
            source: info.source.to_string(),
            report_to: info.report_to.to_string(),
            creation_time: info.creation_time,
            sequence_number: info.sequence_number,
            lifetime_ms: info.lifetime_ms,
            fragment_offset: info.fragment_offset,
            total_adu_length: info.total_adu_length,
            payload_length: info.payload_length,
            blocks: info
                .blocks
                .into_iter()
                .map(|b| BlockInfo {
                    block_type: b.block_type,
                    block_number: b.block_number,
                    flags: b.flags,
                    crc: crc_to_wit(b.crc),
                    data_length: b.data_length,
                })
                .collect(),
        })
    }
}

/// The `reassembler` resource: one `deepmail_bundle::Reassembler`.
struct Reassembler(RefCell<bundle::Reassembler>);

impl exports::deepmail::stages::fragmenter::GuestReassembler for Reassembler {
    fn new(limits: ReassemblyLimits) -> Self {
        accelerate();
        Reassembler(RefCell::new(bundle::Reassembler::new(
            bundle::ReassemblyLimits {
                max_adu_bytes: limits.max_adu_bytes,
                max_pending_bytes: limits.max_pending_bytes,
                max_pending_bundles: limits.max_pending_bundles,
            },
        )))
    }

    fn push(&self, bundle_bytes: Vec<u8>, now: u64) -> Result<Option<DeliveredAdu>, StageError> {
        accelerate();
        let delivered = self
            .0
            .borrow_mut()
            .push(&bundle_bytes, now)
            .map_err(stage_error)?;
        Ok(delivered.map(|d| DeliveredAdu {
            source: d.id.source.to_string(),
            destination: d.destination.to_string(),
            creation_time: d.id.creation_time,
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

use exports::deepmail::stages::bpsec::{BibCheck, BibKey, ShaVariant};

fn variant_from_wit(v: ShaVariant) -> bundle::ShaVariant {
    match v {
        ShaVariant::HmacSha256 => bundle::ShaVariant::HmacSha256,
        ShaVariant::HmacSha384 => bundle::ShaVariant::HmacSha384,
        ShaVariant::HmacSha512 => bundle::ShaVariant::HmacSha512,
    }
}

fn variant_to_wit(v: bundle::ShaVariant) -> ShaVariant {
    match v {
        bundle::ShaVariant::HmacSha256 => ShaVariant::HmacSha256,
        bundle::ShaVariant::HmacSha384 => ShaVariant::HmacSha384,
        bundle::ShaVariant::HmacSha512 => ShaVariant::HmacSha512,
    }
}

fn key_from_wit(k: BibKey) -> Result<bundle::BibKey, StageError> {
    Ok(bundle::BibKey {
        source: eid("key source", &k.source)?,
        key: k.key,
    })
}

fn signer(key: BibKey, variant: ShaVariant) -> Result<bundle::BibSigner, StageError> {
    Ok(bundle::BibSigner {
        key: key_from_wit(key)?,
        variant: variant_from_wit(variant),
    })
}

impl exports::deepmail::stages::bpsec::Guest for Plugin {
    fn add_bib(
        bundle_bytes: Vec<u8>,
        key: BibKey,
        variant: ShaVariant,
    ) -> Result<Vec<u8>, StageError> {
        accelerate();
        bundle::add_bib(&bundle_bytes, &signer(key, variant)?).map_err(stage_error)
    }

    fn fragment_adu_signed(
        adu: Vec<u8>,
        spec: BundleSpec,
        mtu_bytes: u64,
        key: BibKey,
        variant: ShaVariant,
    ) -> Result<Vec<Vec<u8>>, StageError> {
        accelerate();
        bundle::fragment_adu_signed(
            &adu,
            &spec_from_wit(spec)?,
            mtu(mtu_bytes),
            &signer(key, variant)?,
        )
        .map_err(stage_error)
    }

    fn verify_bibs(
        bundle_bytes: Vec<u8>,
        keys: Vec<BibKey>,
        require: bool,
        lenient: bool,
    ) -> Result<Vec<BibCheck>, StageError> {
        accelerate();
        let keys = keys
            .into_iter()
            .map(key_from_wit)
            .collect::<Result<Vec<_>, _>>()?;
        let options = bundle::ParseOptions {
            allow_missing_primary_crc: lenient,
            allow_missing_bundle_age: lenient,
        };
        let parsed =
            bundle::Bundle::parse_with_options(&bundle_bytes, &options).map_err(stage_error)?;
        let checks = bundle::verify_bibs(&parsed, &keys, require).map_err(stage_error)?;
        Ok(checks
            .into_iter()
            .map(|c| BibCheck {
                block_number: c.block_number,
                source: c.source.to_string(),
                targets: c.targets,
                variant: c.variant.map(variant_to_wit),
                scope: c.scope,
                verified: c.verified,
            })
            .collect())
    }
}

export!(Plugin);
