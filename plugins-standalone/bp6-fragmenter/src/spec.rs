//! Building bundles (RFC 5050 §4.5) from an ADU and a spec.

use crate::*;

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

    pub(crate) fn check(&self) -> Result<()> {
        if self.source.is_null() && !self.must_not_fragment {
            return Err(Error::new(
                "invalid-spec",
                "anonymous source dtn:none without must-not-fragment: fragments of it could not be reassembled (§5.9 identifies bundles by source)",
            ));
        }
        Ok(())
    }

    pub(crate) fn primary(&self) -> Primary {
        let mut f = flags::DEFAULT_OUTGOING;
        if self.must_not_fragment {
            f |= flags::MUST_NOT_FRAGMENT;
        }
        Primary::with_eids(
            f,
            [
                &self.destination,
                &self.source,
                &self.report_to,
                &Eid::null(),
            ],
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
