//! deepmail-adapter/1 program for `hardy-bpv7` (Hardy's BPv7 crate).
//!
//! Operations, each a direct use of the crate's public API:
//!
//! * `fragmenter.inspect`: `ParsedBundle::parse_with_keys(data,
//!   &KeySet::EMPTY)` (Preserve mode: the bundle as received, nothing
//!   rewritten or dropped; CBOR structure, EIDs, flags, CRCs, block numbers,
//!   duplicate blocks, unsupported blocks, BPSec structure). The `Bundle`
//!   is mapped to the snake_case `bundle-info`; blocks are listed in wire
//!   order (by their extent in the input).
//! * `fragmenter.build`: `Eid::from_str`, `Builder` with the spec's CRC
//!   type, and the payload added through `add_extension_block(Payload)`
//!   with flags 0 and the spec's block CRC (the spec asks for payload flags
//!   0; `Builder::with_payload` would set "delete bundle if unprocessable").
//! * `fragmenter.verify-bib`: the bundle is parsed as for inspect, every
//!   unencrypted BIB is decoded with `bpsec::bib::OperationSet` and, for
//!   BIB-HMAC-SHA2 with a key for its source, each target is checked with
//!   `Bundle::verify_block` (the key is given to Hardy as a JWK-style
//!   `Key` of type `oct` whose algorithm is the BIB's SHA variant, which is
//!   what Hardy's key model requires). The README's require policy is
//!   applied by the shared code. `lenient` changes nothing: hardy-bpv7 does
//!   not make the two RFC 9171 checks it names (they live in hardy-bpa's
//!   ingress filter).
//!
//! hardy-bpv7 has no fragmentation and no reassembly (they are in
//! hardy-bpa): those are `unsupported`.

use hardy_bpv7::block;
use hardy_bpv7::bpsec::{self, key};
use hardy_bpv7::builder::Builder;
use hardy_bpv7::bundle::{Flags, ParsedBundle};
use hardy_bpv7::creation_timestamp::CreationTimestamp;
use hardy_bpv7::crc::CrcType;
use hardy_bpv7::dtn_time::DtnTime;
use hardy_bpv7::eid::Eid;
use deepmail_rust_bp_adapters::{
    bib_policy, crc_name, serve, variant_name, BibFact, CrcKind, Failure, Implementation, Outcome,
    Spec, VerifyInput,
};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::HashSet;

const HARDY_VERSION: &str = "0.6.0";

struct Hardy;

fn lib_err(e: impl std::fmt::Display) -> Failure {
    Failure::new("hardy-bpv7-error", e.to_string())
}

fn crc_type(k: CrcKind) -> CrcType {
    match k {
        CrcKind::None => CrcType::None,
        CrcKind::Crc16 => CrcType::CRC16_X25,
        CrcKind::Crc32c => CrcType::CRC32_CASTAGNOLI,
    }
}

fn eid(s: &str) -> Result<Eid, Failure> {
    s.parse::<Eid>()
        .map_err(|e| Failure::new("hardy-bpv7-invalid-eid", format!("{s:?}: {e}")))
}

fn block_type_code(t: block::Type) -> u64 {
    u64::from(t)
}

fn parse(data: &[u8]) -> Result<ParsedBundle, Failure> {
    ParsedBundle::parse_with_keys(data, &key::KeySet::EMPTY).map_err(lib_err)
}

/// Blocks other than the primary, in wire order.
fn wire_blocks(bundle: &hardy_bpv7::bundle::Bundle) -> Vec<(u64, &block::Block)> {
    let mut v: Vec<(u64, &block::Block)> = bundle
        .blocks
        .iter()
        .filter(|(_, b)| !matches!(b.block_type, block::Type::Primary))
        .map(|(n, b)| (*n, b))
        .collect();
    v.sort_by_key(|(_, b)| b.extent.start);
    v
}

fn hmac_alg(variant: u64) -> Option<key::KeyAlgorithm> {
    match variant {
        5 => Some(key::KeyAlgorithm::HS256),
        6 => Some(key::KeyAlgorithm::HS384),
        7 => Some(key::KeyAlgorithm::HS512),
        _ => None,
    }
}

impl Implementation for Hardy {
    fn name(&self) -> &str {
        "hardy-bpv7"
    }
    fn version(&self) -> String {
        HARDY_VERSION.to_string()
    }
    fn operations(&self) -> Vec<&'static str> {
        vec!["fragmenter.build", "fragmenter.inspect", "fragmenter.verify-bib"]
    }
    fn unsupported_reason(&self, op: &str) -> String {
        match op {
            "fragmenter.fragment" | "fragmenter.reassemble" => format!(
                "hardy-bpv7 {HARDY_VERSION} has no fragmentation or reassembly API ({op}; Hardy does it in hardy-bpa)"
            ),
            _ => format!("hardy-bpv7 adapter does not implement {op}"),
        }
    }

    fn build(&self, adu: &[u8], spec: &Spec) -> Outcome {
        let flags = Flags {
            do_not_fragment: spec.must_not_fragment,
            ..Default::default()
        };
        let timestamp = CreationTimestamp::from_parts(
            (spec.creation_time != 0).then(|| DtnTime::new(spec.creation_time)),
            spec.sequence_number,
        );
        let builder = Builder::new(eid(&spec.source)?, eid(&spec.destination)?)
            .with_report_to(eid(&spec.report_to)?)
            .with_flags(flags)
            .with_crc_type(crc_type(spec.crc))
            .with_lifetime(std::time::Duration::from_millis(spec.lifetime_ms))
            .add_extension_block(block::Type::Payload)
            .map_err(lib_err)?
            .with_flags(block::Flags::default())
            .with_crc_type(crc_type(spec.block_crc))
            .build(Cow::Borrowed(adu));
        let (_bundle, data) = builder.build(timestamp).map_err(lib_err)?;
        Ok(json!({"bundle": {"hex": hex::encode(&data)}}))
    }

    fn inspect(&self, data: &[u8]) -> Outcome {
        let parsed = parse(data)?;
        let b = &parsed.bundle;
        let flags = u64::from(&b.flags);
        let frag = b.id.fragment_info.as_ref();
        let blocks: Vec<Value> = wire_blocks(b)
            .into_iter()
            .map(|(n, blk)| {
                json!({
                    "block_type": block_type_code(blk.block_type),
                    "block_number": n,
                    "flags": u64::from(&blk.flags),
                    "crc": crc_name(u64::from(blk.crc_type)),
                    "data_length": blk.data.len(),
                })
            })
            .collect();
        let payload_length = b.blocks.get(&1).map_or(0, |p| p.data.len());
        Ok(json!({
            // hardy refuses any other version while parsing; Bundle keeps none
            "version": 7,
            "flags": flags,
            "is_fragment": b.flags.is_fragment,
            "must_not_fragment": b.flags.do_not_fragment,
            "crc": crc_name(u64::from(b.crc_type)),
            "destination": b.destination.to_string(),
            "source": b.id.source.to_string(),
            "report_to": b.report_to.to_string(),
            "creation_time": b.id.timestamp.creation_time().map_or(0, |t| t.millisecs()),
            "sequence_number": b.id.timestamp.sequence_number(),
            "lifetime_ms": u64::try_from(b.lifetime.as_millis()).unwrap_or(u64::MAX),
            "fragment_offset": frag.map(|f| f.offset),
            "total_adu_length": frag.map(|f| f.total_adu_length),
            "payload_length": payload_length,
            "blocks": blocks,
        }))
    }

    fn verify_bib(&self, input: &VerifyInput) -> Outcome {
        let data = input.bundle.as_slice();
        let parsed = parse(data)?;
        let bundle = &parsed.bundle;
        let mut facts = Vec::new();
        let mut encrypted_bibs = 0;
        for (number, blk) in wire_blocks(bundle) {
            if !matches!(blk.block_type, block::Type::BlockIntegrity) {
                continue;
            }
            if blk.bcb.is_some() {
                encrypted_bibs += 1;
                continue;
            }
            let payload = blk
                .payload(data)
                .ok_or_else(|| Failure::new("hardy-bpv7-bpsec", format!("BIB {number}: no data")))?;
            let set = hardy_cbor::decode::parse::<bpsec::bib::OperationSet>(payload)
                .map_err(|e| Failure::new("hardy-bpv7-bpsec", format!("BIB {number}: {e}")))?;
            let source = set.source().to_string();
            let mut targets: Vec<u64> = set.operations().keys().copied().collect();
            // Hardy keeps the operations in a map: the wire order of the
            // targets is not kept; report them ascending.
            targets.sort_unstable();
            let first = targets
                .first()
                .and_then(|t| set.operations().get(t))
                .ok_or_else(|| Failure::new("hardy-bpv7-bpsec", format!("BIB {number}: no targets")))?;
            let (ctx, variant, scope, wrapped) = match first {
                bpsec::bib::Operation::HMAC_SHA2(op) => {
                    let p = &op.parameters;
                    // ShaVariant's type is not exported; its CBOR form is the
                    // RFC 9173 variant number.
                    let v = hardy_cbor::decode::parse::<u64>(&hardy_cbor::encode::emit(&p.variant).0)
                        .map_err(|e| Failure::new("hardy-bpv7-bpsec", format!("BIB {number}: {e}")))?;
                    let f = &p.flags;
                    let scope = f.unrecognised.unwrap_or(0)
                        | u64::from(f.include_primary_block)
                        | (u64::from(f.include_target_header) << 1)
                        | (u64::from(f.include_security_header) << 2);
                    (1i64, v, scope, p.key.is_some())
                }
                bpsec::bib::Operation::Unrecognised(id, _) => {
                    (i64::try_from(*id).unwrap_or(i64::MAX), 0, 7, false)
                }
            };
            let mut fact = BibFact {
                block_number: number,
                source: source.clone(),
                targets: targets.clone(),
                variant: variant_name(variant),
                scope,
                context_id: ctx,
                wrapped_key: wrapped,
                verified: None,
                mismatch: None,
            };
            if ctx == 1 && !wrapped {
                if let (Some(k), Some(alg)) = (input.key_for(&source), hmac_alg(variant)) {
                    let keys = key::KeySet::new(vec![key::Key {
                        key_type: key::Type::OctetSequence { key: k.into() },
                        key_algorithm: Some(alg),
                        operations: Some(HashSet::from([key::Operation::Verify])),
                        ..Default::default()
                    }]);
                    let mut ok = true;
                    for t in &targets {
                        match bundle.verify_block(*t, data, &keys) {
                            Ok(true) => {}
                            Ok(false) => {
                                ok = false;
                                fact.mismatch = Some(format!("target {t}: no BIB coverage"));
                                break;
                            }
                            Err(hardy_bpv7::Error::InvalidBPSec(
                                bpsec::Error::IntegrityCheckFailed,
                            )) => {
                                ok = false;
                                fact.mismatch = Some(format!("target {t}: integrity check failed"));
                                break;
                            }
                            Err(e) => {
                                return Err(Failure::new(
                                    "hardy-bpv7-bpsec",
                                    format!("BIB {number}, target {t}: {e}"),
                                ))
                            }
                        }
                    }
                    fact.verified = Some(ok);
                }
            }
            facts.push(fact);
        }
        bib_policy(&facts, encrypted_bibs, input.require)
    }
}

fn main() {
    serve(&Hardy);
}
