//! deepmail-adapter/1 program for `bp7` (dtn7-rs's BPv7 crate).
//!
//! Operations, each a direct use of the crate's public API:
//!
//! * `fragmenter.inspect`: `Bundle::try_from(&[u8])` (serde_cbor) then
//!   `Bundle::validate()` (the crate's receive-side checks: version, flags,
//!   EIDs, block numbers, duplicate blocks, CRCs, bundle age, payload last;
//!   with feature `bpsec` also the primary-CRC-or-BIB rule and RFC 9172
//!   security block constraints). The parsed fields are mapped to the
//!   snake_case `bundle-info`.
//! * `fragmenter.build`: `EndpointID::try_from(&str)`,
//!   `PrimaryBlockBuilder`, `new_payload_block`, `set_crc_type` per block,
//!   `Bundle::validate()` on the result (the crate's own correctness check
//!   before sending) and `Bundle::to_cbor()`.
//! * `fragmenter.verify-bib`: parse + validate as for inspect (with
//!   `lenient`, the two RFC 9171 findings the README lists are dropped from
//!   validate's error list), then every unencrypted BIB is decoded with
//!   `AbstractSecurityBlock::from_cbor` and, for BIB-HMAC-SHA2 with a key,
//!   checked with `bpsec::rfc9173::bib::verify`; the README's require
//!   policy is applied by the shared code.
//!
//! bp7 has no fragmentation and no reassembly: those are `unsupported`.

use bp7::bpsec::{
    self, AbstractSecurityBlock, BibSecurityContextParameter, CONFIDENTIALITY_BLOCK,
    INTEGRITY_BLOCK,
};
use bp7::canonical::{new_payload_block, CanonicalData};
use bp7::crc::CrcBlock;
use bp7::flags::{BlockControlFlags, BundleControlFlags};
use bp7::primary::PrimaryBlockBuilder;
use bp7::{Bundle, CreationTimestamp, EndpointID};
use deepmail_rust_bp_adapters::{
    bib_policy, crc_name, serve, variant_name, BibFact, Failure, Implementation, Outcome, Spec,
    VerifyInput,
};
use serde_json::{json, Value};
use std::time::Duration;

const BP7_VERSION: &str = "0.12.1";

struct Bp7;

fn lib_err(e: impl std::fmt::Display) -> Failure {
    Failure::new("bp7-error", e.to_string())
}

fn errors_text(errs: &[bp7::error::Error]) -> String {
    errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

/// Parse and validate; `lenient` drops the two findings the verify-bib
/// README turns off (primary without CRC and no BIB over it, creation time
/// 0 without bundle age block).
fn parse(data: &[u8], lenient: bool) -> Result<Bundle, Failure> {
    let bundle = Bundle::try_from(data).map_err(lib_err)?;
    if let Err(errs) = bundle.validate() {
        let errs: Vec<_> = errs
            .into_iter()
            .filter(|e| {
                let m = e.to_string();
                !(lenient
                    && (m.contains("Primary Block has no CRC")
                        || m.contains("Creation Timestamp is zero")))
            })
            .collect();
        if !errs.is_empty() {
            return Err(Failure::new("bp7-invalid", errors_text(&errs)));
        }
    }
    Ok(bundle)
}

fn data_length(data: &CanonicalData) -> usize {
    match data {
        CanonicalData::Data(b) | CanonicalData::Unknown(b) => b.len(),
        other => other.to_cbor().len(),
    }
}

fn eid(s: &str) -> Result<EndpointID, Failure> {
    EndpointID::try_from(s).map_err(|e| Failure::new("bp7-invalid-eid", format!("{s:?}: {e}")))
}

impl Implementation for Bp7 {
    fn name(&self) -> &str {
        "bp7"
    }
    fn version(&self) -> String {
        BP7_VERSION.to_string()
    }
    fn operations(&self) -> Vec<&'static str> {
        vec!["fragmenter.build", "fragmenter.inspect", "fragmenter.verify-bib"]
    }
    fn unsupported_reason(&self, op: &str) -> String {
        match op {
            "fragmenter.fragment" | "fragmenter.reassemble" => {
                format!("bp7 {BP7_VERSION} has no fragmentation or reassembly API ({op})")
            }
            _ => format!("bp7 adapter does not implement {op}"),
        }
    }

    fn build(&self, adu: &[u8], spec: &Spec) -> Outcome {
        let mut flags = BundleControlFlags::empty();
        if spec.must_not_fragment {
            flags |= BundleControlFlags::BUNDLE_MUST_NOT_FRAGMENTED;
        }
        let mut primary = PrimaryBlockBuilder::default()
            .bundle_control_flags(flags.bits())
            .destination(eid(&spec.destination)?)
            .source(eid(&spec.source)?)
            .report_to(eid(&spec.report_to)?)
            .creation_timestamp(CreationTimestamp::with_time_and_seq(
                spec.creation_time,
                spec.sequence_number,
            ))
            .lifetime(Duration::from_millis(spec.lifetime_ms))
            .build()
            .map_err(lib_err)?;
        primary.set_crc_type(spec.crc.code());
        let mut payload = new_payload_block(BlockControlFlags::empty(), adu.to_vec());
        payload.set_crc_type(spec.block_crc.code());
        let mut bundle = Bundle::new(primary, vec![payload]);
        bundle.calculate_crc();
        bundle
            .validate()
            .map_err(|errs| Failure::new("bp7-invalid", errors_text(&errs)))?;
        Ok(json!({"bundle": {"hex": hex::encode(bundle.to_cbor())}}))
    }

    fn inspect(&self, data: &[u8]) -> Outcome {
        let bundle = parse(data, false)?;
        let p = &bundle.primary;
        let flags = p.bundle_control_flags;
        let fragment = p.has_fragmentation();
        let blocks: Vec<Value> = bundle
            .canonicals
            .iter()
            .map(|b| {
                json!({
                    "block_type": b.block_type,
                    "block_number": b.block_number,
                    "flags": b.block_control_flags,
                    "crc": crc_name(b.crc_type().into()),
                    "data_length": data_length(b.data()),
                })
            })
            .collect();
        Ok(json!({
            // validate() refuses any version but 7; the field is private
            "version": bp7::bundle::DTN_VERSION,
            "flags": flags,
            "is_fragment": fragment,
            "must_not_fragment": flags & BundleControlFlags::BUNDLE_MUST_NOT_FRAGMENTED.bits() != 0,
            "crc": crc_name(p.crc_type().into()),
            "destination": p.destination.to_string(),
            "source": p.source.to_string(),
            "report_to": p.report_to.to_string(),
            "creation_time": p.creation_timestamp.dtntime(),
            "sequence_number": p.creation_timestamp.seqno(),
            "lifetime_ms": u64::try_from(p.lifetime.as_millis()).unwrap_or(u64::MAX),
            "fragment_offset": if fragment { json!(p.fragmentation_offset) } else { Value::Null },
            "total_adu_length": if fragment { json!(p.total_data_length) } else { Value::Null },
            "payload_length": bundle.payload().map_or(0, |d| d.len()),
            "blocks": blocks,
        }))
    }

    fn verify_bib(&self, input: &VerifyInput) -> Outcome {
        let bundle = parse(&input.bundle, input.lenient)?;
        // BCB targets (the crate's decoder; undecodable BCBs are skipped by it)
        let encrypted: Vec<u64> = bundle
            .decode_bcbs()
            .into_iter()
            .flat_map(|bcb| bcb.security_targets)
            .collect();
        let mut facts = Vec::new();
        let mut encrypted_bibs = 0;
        for block in bundle.canonicals.iter().filter(|b| b.block_type == INTEGRITY_BLOCK) {
            if encrypted.contains(&block.block_number) {
                encrypted_bibs += 1;
                continue;
            }
            let CanonicalData::Unknown(asb_bytes) = block.data() else {
                return Err(Failure::new("bp7-bpsec", "BIB data not decodable"));
            };
            let asb = AbstractSecurityBlock::from_cbor(asb_bytes).map_err(|e| {
                Failure::new("bp7-bpsec", format!("BIB {}: {e}", block.block_number))
            })?;
            let ctx = i64::from(asb.security_context_id);
            let (variant, scope, wrapped) = if ctx == i64::from(bpsec::BIB_HMAC_SHA2_ID) {
                let params = asb
                    .parameters::<BibSecurityContextParameter>()
                    .map_err(|e| {
                        Failure::new("bp7-bpsec", format!("BIB {}: {e}", block.block_number))
                    })?
                    .unwrap_or(BibSecurityContextParameter::new(None, None, None));
                (
                    params.sha_variant.map_or(6, |v| u64::from(v.1)),
                    params.integrity_scope_flags.map_or(7, |f| u64::from(f.1)),
                    params.wrapped_key.is_some(),
                )
            } else {
                (0, 7, false)
            };
            let source = asb.security_source.to_string();
            let mut fact = BibFact {
                block_number: block.block_number,
                source: source.clone(),
                targets: asb.security_targets.clone(),
                variant: variant_name(variant),
                scope,
                context_id: ctx,
                wrapped_key: wrapped,
                verified: None,
                mismatch: None,
            };
            if ctx == i64::from(bpsec::BIB_HMAC_SHA2_ID) && !wrapped {
                if let Some(key) = input.key_for(&source) {
                    match bpsec::rfc9173::bib::verify(&bundle, block.block_number, key) {
                        Ok(true) => fact.verified = Some(true),
                        Ok(false) => {
                            fact.verified = Some(false);
                            fact.mismatch = Some("bp7 bib::verify returned false".into());
                        }
                        Err(e) => {
                            return Err(Failure::new(
                                "bp7-bpsec",
                                format!("BIB {}: {e}", block.block_number),
                            ))
                        }
                    }
                }
            }
            facts.push(fact);
        }
        let _ = CONFIDENTIALITY_BLOCK;
        bib_policy(&facts, encrypted_bibs, input.require)
    }
}

fn main() {
    serve(&Bp7);
}
