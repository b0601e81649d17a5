//! Reassembly of ADUs from fragments (RFC 9171 §5.9), bounded by limits.
//!
//! Fragments are keyed by source node ID and creation timestamp. The bytes
//! held for one ADU are its "material extents": non-overlapping chunks kept
//! in an ordered map by offset, so a fragment is placed with one range
//! lookup (no per-byte bitmap, no merging passes), overlaps are compared
//! byte for byte, and the ADU is complete when the chunks cover its total
//! length. Every check runs before anything is allocated or changed, so a
//! push that fails leaves the reassembler exactly as it was.

use std::collections::BTreeMap;

use crate::bundle::{parse_deferring_payload_crc, Bundle, BundleId};
use crate::eid::Eid;
use crate::error::{BundleError, ErrorKind, Result};

/// Limits that bound the memory a [`Reassembler`] may use. Nothing is
/// allocated from a length field in a bundle before it is checked against
/// these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Largest ADU that will be reassembled (or delivered whole).
    pub max_adu_bytes: u64,
    /// Largest total of payload bytes held for incomplete ADUs.
    pub max_pending_bytes: u64,
    /// Largest number of incomplete ADUs held at once.
    pub max_pending_bundles: u32,
}

impl Default for ReassemblyLimits {
    /// 64 MiB per ADU, 256 MiB pending, 1024 pending ADUs.
    fn default() -> Self {
        ReassemblyLimits {
            max_adu_bytes: 64 << 20,
            max_pending_bytes: 256 << 20,
            max_pending_bundles: 1024,
        }
    }
}

/// A complete application data unit: a bundle that was never fragmented,
/// or the reassembly of all fragments of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredAdu {
    /// The original bundle's identity.
    pub id: BundleId,
    /// Its destination EID.
    pub destination: Eid,
    /// Number of bundles that contributed bytes to it (1 when not fragmented).
    pub fragments: u32,
    /// The ADU.
    pub adu: Vec<u8>,
}

/// What a reassembler is holding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingStats {
    /// Incomplete ADUs held.
    pub bundles: u32,
    /// Payload bytes held for them.
    pub bytes: u64,
}

/// One incomplete ADU.
#[derive(Debug)]
struct Pending {
    destination: Eid,
    total: u64,
    /// DTN time after which the ADU is dropped by [`Reassembler::expire`].
    deadline: u64,
    /// Material extents: offset -> bytes; never overlapping.
    chunks: BTreeMap<u64, Vec<u8>>,
    /// Bytes covered by `chunks`.
    held: u64,
    fragments: u32,
    /// The chunk whose capacity was reserved up to the ADU's end when the
    /// ADU was first seen (fragments in order fill it without a copy), and
    /// how much of that capacity is still empty.
    reserved_at: Option<u64>,
    reserved: u64,
}

impl Pending {
    /// Compares `data` at `offset` with the chunks it overlaps and returns
    /// the gaps it fills, as (start, end) offsets into the ADU.
    fn gaps(&self, offset: u64, data: &[u8]) -> Result<Vec<(u64, u64)>> {
        let end = offset + data.len() as u64;
        // Chunks starting before `end`, walked backwards while they reach
        // past `offset`: exactly the overlapping ones.
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
                return Err(BundleError::new(
                    ErrorKind::OverlapMismatch,
                    format!("fragment disagrees with bytes already held at ADU offset {at}"),
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

    /// Whether `len` bytes at `offset` continue a chunk held and overlap
    /// nothing held.
    fn extends(&self, offset: u64, len: u64) -> bool {
        let follows = self
            .chunks
            .range(..offset)
            .next_back()
            .is_some_and(|(&start, chunk)| {
                Some(start) == self.reserved_at && start + chunk.len() as u64 == offset
            });
        let clear = self
            .chunks
            .range(offset..)
            .next()
            .is_none_or(|(&start, _)| start >= offset.saturating_add(len));
        follows && clear
    }

    /// Counts `n` bytes copied into the reserved chunk; returns how much of
    /// the reservation they used.
    fn fill(&mut self, n: u64) -> u64 {
        let filled = n.min(self.reserved);
        self.reserved -= filled;
        filled
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
///
/// Time is an input: every call takes `now`, a DTN time (milliseconds since
/// 2000-01-01T00:00:00Z); the reassembler never reads a clock.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    pending: BTreeMap<BundleId, Pending>,
    bytes: u64,
    /// Capacity reserved for fragments still to come (within
    /// `max_pending_bytes` together with `bytes`).
    reserved: u64,
    /// Fragmented ADUs already delivered, with the deadline of their
    /// lifetime: a late duplicate fragment of one is absorbed instead of
    /// opening a new incomplete ADU that could only waste memory (or, if
    /// every fragment came again, deliver the ADU twice).
    delivered: BTreeMap<BundleId, u64>,
}

impl Reassembler {
    /// A reassembler holding nothing, bounded by `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            pending: BTreeMap::new(),
            bytes: 0,
            reserved: 0,
            delivered: BTreeMap::new(),
        }
    }

    /// The limits this reassembler enforces.
    pub fn limits(&self) -> ReassemblyLimits {
        self.limits
    }

    /// What is held now.
    pub fn pending(&self) -> PendingStats {
        PendingStats {
            bundles: self.pending.len() as u32,
            bytes: self.bytes,
        }
    }

    /// Takes one bundle (whole or a fragment) received at DTN time `now`.
    /// Returns the ADU when this bundle completes one. Duplicates and
    /// overlaps whose bytes agree are accepted; a bundle that fails any
    /// check is rejected and the reassembler is left as it was.
    pub fn push(
        &mut self,
        bundle: &[u8],
        now: u64,
    ) -> core::result::Result<Option<DeliveredAdu>, BundleError> {
        // The payload's CRC-32C is checked as it is copied when the
        // fragment extends what is held (the common, in-order case): one
        // pass over its bytes. Every other bundle is checked first, so
        // errors come as `parse` gives them.
        let parsed = parse_deferring_payload_crc(bundle)?;
        let info = parsed.info();
        let deadline = deadline(
            info.creation_time,
            info.lifetime_ms,
            parsed.bundle_age(),
            now,
        );
        let payload = parsed.payload();
        let id = parsed.id();
        let appends = match (&deadline, info.fragment_offset, info.total_adu_length) {
            (Ok(_), Some(offset), Some(total)) if !self.delivered.contains_key(&id) => self
                .pending
                .get(&id)
                .is_some_and(|p| p.total == total && p.extends(offset, payload.len() as u64)),
            _ => false,
        };
        if appends {
            return self.append(&parsed, deadline?);
        }
        parsed.check_deferred_payload_crc()?;
        let deadline = deadline?;
        let (offset, total) = match (info.fragment_offset, info.total_adu_length) {
            (Some(offset), Some(total)) => (offset, total),
            _ => {
                self.check_adu_size(payload.len() as u64)?;
                return Ok(Some(DeliveredAdu {
                    id,
                    destination: info.destination.clone(),
                    fragments: 1,
                    adu: payload.to_vec(),
                }));
            }
        };
        self.check_adu_size(total)?;
        // Parsing guarantees 0 < len and offset + len <= total.
        let len = payload.len() as u64;
        if self.delivered.contains_key(&id) {
            // A late duplicate of an ADU already delivered: nothing to do.
            return Ok(None);
        }
        let Some(entry) = self.pending.get(&id) else {
            if len == total {
                // One fragment holding the whole ADU: nothing to wait for.
                return Ok(Some(DeliveredAdu {
                    id,
                    destination: info.destination.clone(),
                    fragments: 1,
                    adu: payload.to_vec(),
                }));
            }
            if self.pending.len() >= self.limits.max_pending_bundles as usize {
                return Err(BundleError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "already holding {} incomplete ADUs, the max_pending_bundles limit",
                        self.pending.len()
                    ),
                ));
            }
            self.check_pending_bytes(len)?;
            // Room up to the ADU's end, so fragments that follow in order
            // are copied once, if that fits the pending budget with
            // everything held and reserved (memory stays bounded by it).
            let want = total - offset;
            let reserve = self
                .bytes
                .saturating_add(self.reserved)
                .saturating_add(want)
                <= self.limits.max_pending_bytes;
            let mut first = Vec::with_capacity(if reserve { want } else { len } as usize);
            first.extend_from_slice(payload);
            let reserved = if reserve { want - len } else { 0 };
            let mut chunks = BTreeMap::new();
            chunks.insert(offset, first);
            self.bytes += len;
            self.reserved += reserved;
            self.pending.insert(
                id,
                Pending {
                    destination: info.destination.clone(),
                    total,
                    deadline,
                    chunks,
                    held: len,
                    fragments: 1,
                    reserved_at: reserve.then_some(offset),
                    reserved,
                },
            );
            return Ok(None);
        };
        if entry.total != total {
            return Err(BundleError::new(
                ErrorKind::InconsistentTotalLength,
                format!(
                    "fragment says the ADU is {total} bytes but earlier fragments of {} said {}",
                    describe(&id),
                    entry.total
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
        let Some(entry) = self.pending.get_mut(&id) else {
            return Ok(None);
        };
        for &(a, b) in &gaps {
            let piece = &payload[(a - offset) as usize..(b - offset) as usize];
            // Fragments in order (the common case) extend the chunk they
            // follow, so the ADU is copied once and handed over as it is.
            match entry.chunks.range_mut(..a).next_back() {
                Some((&start, chunk))
                    if Some(start) == entry.reserved_at && start + chunk.len() as u64 == a =>
                {
                    chunk.extend_from_slice(piece);
                    self.reserved -= entry.fill(piece.len() as u64);
                }
                _ => {
                    entry.chunks.insert(a, piece.to_vec());
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
        Ok(self.deliver(id))
    }

    /// Removes the complete ADU `id` from what is held and hands it over.
    fn deliver(&mut self, id: BundleId) -> Option<DeliveredAdu> {
        let done = self.pending.remove(&id)?;
        self.bytes -= done.held;
        self.reserved -= done.reserved;
        self.remember_delivered(id.clone(), done.deadline);
        Some(DeliveredAdu {
            id,
            destination: done.destination.clone(),
            fragments: done.fragments,
            adu: done.assemble(),
        })
    }

    /// Takes a fragment that continues a chunk of a pending ADU
    /// ([`Pending::extends`]): copies it onto the chunk, checking its
    /// payload CRC as it goes, and delivers the ADU if it is complete. On
    /// any error the reassembler is left as it was.
    fn append(&mut self, parsed: &Bundle<'_>, deadline: u64) -> Result<Option<DeliveredAdu>> {
        let info = parsed.info();
        let id = parsed.id();
        let (Some(offset), Some(total)) = (info.fragment_offset, info.total_adu_length) else {
            return Ok(None);
        };
        let len = parsed.payload().len() as u64;
        let limit = match self.pending.get(&id) {
            Some(p) if p.held + len == total => Ok(()),
            Some(_) => self.check_pending_bytes(len),
            None => return Ok(None),
        };
        let Some(entry) = self.pending.get_mut(&id) else {
            return Ok(None);
        };
        let Some((_, chunk)) = entry.chunks.range_mut(..offset).next_back() else {
            return Ok(None);
        };
        let before = chunk.len();
        parsed.copy_payload_checked(chunk)?;
        if let Err(e) = limit {
            chunk.truncate(before);
            return Err(e);
        }
        self.reserved -= entry.fill(len);
        entry.held += len;
        entry.deadline = entry.deadline.min(deadline);
        entry.fragments = entry.fragments.saturating_add(1);
        self.bytes += len;
        if entry.held < total {
            return Ok(None);
        }
        Ok(self.deliver(id))
    }

    /// Drops every incomplete ADU whose lifetime ended before `now` and
    /// returns their ids, in order.
    pub fn expire(&mut self, now: u64) -> Vec<BundleId> {
        let gone: Vec<BundleId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(p) = self.pending.remove(id) {
                self.bytes -= p.held;
                self.reserved -= p.reserved;
            }
        }
        self.delivered.retain(|_, deadline| *deadline >= now);
        gone
    }

    /// How many delivered ADU ids are remembered at most: enough to cover
    /// every ADU that can be in flight, bounded so memory stays bounded.
    fn delivered_capacity(&self) -> usize {
        (self.limits.max_pending_bundles as usize)
            .saturating_mul(4)
            .max(64)
    }

    fn remember_delivered(&mut self, id: BundleId, deadline: u64) {
        if self.delivered.len() >= self.delivered_capacity() {
            // Forget the one whose lifetime ends first.
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

    fn check_adu_size(&self, total: u64) -> Result<()> {
        if total > self.limits.max_adu_bytes || usize::try_from(total).is_err() {
            return Err(BundleError::new(
                ErrorKind::LimitExceeded,
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
            return Err(BundleError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "holding {} more bytes would take pending data from {} past the max_pending_bytes limit of {}",
                    more, self.bytes, self.limits.max_pending_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn describe(id: &BundleId) -> String {
    format!("{} {}.{}", id.source, id.creation_time, id.sequence_number)
}

/// The DTN time after which a bundle has expired (§4.3.1 lifetime, §5.5):
/// creation time + lifetime, or without a clock (creation time 0) `now`
/// plus what the bundle age block says is left of the lifetime. Errors with
/// `expired` when that is before `now`.
fn deadline(creation_time: u64, lifetime: u64, age: Option<u64>, now: u64) -> Result<u64> {
    if creation_time != 0 {
        let end = creation_time.saturating_add(lifetime);
        if end < now {
            return Err(BundleError::new(
                ErrorKind::Expired,
                format!("created at {creation_time} with lifetime {lifetime} ms, so it expired at {end}, before now ({now})"),
            ));
        }
        return Ok(end);
    }
    // Parsing guarantees a bundle age block when the creation time is 0.
    let age = age.unwrap_or(0);
    if age > lifetime {
        return Err(BundleError::new(
            ErrorKind::Expired,
            format!("bundle age {age} ms exceeds its lifetime of {lifetime} ms"),
        ));
    }
    Ok(now.saturating_add(lifetime - age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FLAG_IS_FRAGMENT;
    use crate::testutil::{bundle, B, P};
    use crate::{build, fragment_adu, BundleSpec, CrcType};

    const NOW: u64 = 815_000_000_500;

    fn spec() -> BundleSpec {
        BundleSpec {
            source: "ipn:1.0".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: Eid::Null,
            creation_time: 815_000_000_000,
            sequence_number: 0,
            lifetime_ms: 1_000,
            crc: CrcType::Crc32c,
            block_crc: CrcType::Crc32c,
            must_not_fragment: false,
        }
    }

    fn frag(offset: u64, total: u64, data: &[u8]) -> Vec<u8> {
        let p = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((offset, total)),
            time: 815_000_000_000,
            lifetime: 1_000,
            ..P::default()
        };
        bundle(&p, &[B::payload(data)])
    }

    fn snapshot(r: &Reassembler) -> String {
        format!("{:?}", r)
    }

    #[test]
    fn late_duplicates_after_delivery_are_absorbed() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let a = frag(0, 6, b"abc");
        let b = frag(3, 6, b"def");
        assert!(r.push(&a, 1).unwrap().is_none());
        assert_eq!(r.push(&b, 1).unwrap().unwrap().adu, b"abcdef");
        // The link delivers both fragments again: no new pending ADU, no second delivery.
        assert!(r.push(&b, 2).unwrap().is_none());
        assert!(r.push(&a, 2).unwrap().is_none());
        assert_eq!(
            r.pending(),
            PendingStats {
                bundles: 0,
                bytes: 0
            }
        );
        // Once the lifetime is over, the id is forgotten.
        let end = spec().creation_time + spec().lifetime_ms + 1;
        r.expire(end);
        assert!(r.delivered.is_empty());
    }

    #[test]
    fn whole_bundle_is_delivered_at_once() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let got = r
            .push(&build(b"mail", &spec()).unwrap(), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(got.adu, b"mail");
        assert_eq!(got.fragments, 1);
        assert_eq!(got.destination.to_string(), "ipn:2.25");
        assert_eq!(r.pending(), PendingStats::default());
    }

    #[test]
    fn out_of_order_duplicates_and_consistent_overlaps() {
        let adu = b"0123456789abcdef";
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert_eq!(r.push(&frag(10, 16, &adu[10..]), NOW).unwrap(), None);
        assert_eq!(r.push(&frag(10, 16, &adu[10..]), NOW).unwrap(), None);
        assert_eq!(r.push(&frag(2, 16, &adu[2..12]), NOW).unwrap(), None);
        assert_eq!(
            r.pending(),
            PendingStats {
                bundles: 1,
                bytes: 14
            }
        );
        let done = r.push(&frag(0, 16, &adu[..4]), NOW).unwrap().unwrap();
        assert_eq!(done.adu, adu);
        assert_eq!(done.fragments, 3);
        assert_eq!(r.pending(), PendingStats::default());
    }

    #[test]
    fn inconsistent_total_length() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&frag(0, 10, b"abc"), NOW).unwrap();
        let before = snapshot(&r);
        let e = r.push(&frag(3, 11, b"def"), NOW).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InconsistentTotalLength);
        assert_eq!(snapshot(&r), before);
    }

    #[test]
    fn offset_out_of_range() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert_eq!(
            r.push(&frag(8, 10, b"abc"), NOW).unwrap_err().kind,
            ErrorKind::OffsetOutOfRange
        );
        assert_eq!(
            r.push(&frag(10, 10, b"a"), NOW).unwrap_err().kind,
            ErrorKind::InvalidFragment
        );
        assert_eq!(
            r.push(&frag(3, 10, b""), NOW).unwrap_err().kind,
            ErrorKind::InvalidFragment
        );
        assert_eq!(r.pending(), PendingStats::default());
    }

    #[test]
    fn overlap_mismatch_leaves_state_untouched() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&frag(0, 10, b"abcd"), NOW).unwrap();
        r.push(&frag(6, 10, b"ghij"), NOW).unwrap();
        let before = snapshot(&r);
        let e = r.push(&frag(2, 10, b"cdefXh"), NOW).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OverlapMismatch);
        assert!(e.detail.contains("offset 6"), "{e}");
        assert_eq!(snapshot(&r), before);
        let e = r.push(&frag(5, 10, b"fgXi"), NOW).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OverlapMismatch);
        assert_eq!(snapshot(&r), before);
        assert_eq!(
            r.push(&frag(2, 10, b"cdefgh"), NOW).unwrap().unwrap().adu,
            b"abcdefghij"
        );
    }

    #[test]
    fn crc_failure_is_rejected() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut f = frag(0, 10, b"abcd");
        let n = f.len();
        f[n - 6] ^= 1;
        assert_eq!(r.push(&f, NOW).unwrap_err().kind, ErrorKind::CrcMismatch);
        assert_eq!(r.pending(), PendingStats::default());
    }

    /// Fragments in order are copied onto what is held with their
    /// payload CRC checked as they are copied: a damaged one is refused
    /// with the parser's error and leaves nothing behind, the good one
    /// after it completes the ADU byte for byte.
    #[test]
    fn a_damaged_fragment_in_order_is_refused_and_leaves_nothing() {
        let adu: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let frags = fragment_adu(&adu, &spec(), 4_096).unwrap();
        assert!(frags.len() > 5);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        for f in &frags[..3] {
            assert!(r.push(f, NOW).unwrap().is_none());
        }
        let before = snapshot(&r);
        let held = r.pending();
        // A flipped payload byte, then a flipped CRC byte.
        for at in [frags[3].len() / 2, frags[3].len() - 2] {
            let mut bad = frags[3].clone();
            bad[at] ^= 0x20;
            let e = r.push(&bad, NOW).unwrap_err();
            let want = crate::bundle::parse(&bad).map(|_| ()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::CrcMismatch);
            assert_eq!(
                (e.kind, e.offset, e.to_string()),
                (want.kind, want.offset, want.to_string())
            );
            assert_eq!(r.pending(), held);
            assert_eq!(snapshot(&r), before, "nothing held changed");
        }
        let mut out = None;
        for f in &frags[3..] {
            out = r.push(f, NOW).unwrap();
        }
        let done = out.expect("the ADU is complete");
        assert_eq!(done.adu, adu);
        assert_eq!(done.fragments, frags.len() as u32);
        assert_eq!(r.pending(), PendingStats::default());
        assert_eq!(r.reserved, 0);
    }

    /// A damaged fragment that would also go over the pending budget is
    /// reported as damaged, as the parser sees it first; a good one is
    /// refused for the budget and leaves nothing behind.
    #[test]
    fn an_in_order_fragment_over_the_budget_is_refused_after_its_crc() {
        let adu = vec![7u8; 10_000];
        let frags = fragment_adu(&adu, &spec(), 2_000).unwrap();
        let limits = ReassemblyLimits {
            max_pending_bytes: 4_000,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        assert!(r.push(&frags[0], NOW).unwrap().is_none());
        assert!(r.push(&frags[1], NOW).unwrap().is_none());
        let held = r.pending();
        let mut bad = frags[2].clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        assert_eq!(r.push(&bad, NOW).unwrap_err().kind, ErrorKind::CrcMismatch);
        assert_eq!(
            r.push(&frags[2], NOW).unwrap_err().kind,
            ErrorKind::LimitExceeded
        );
        assert_eq!(r.pending(), held);
    }

    /// Room reserved for fragments still to come counts against the
    /// pending budget with what is held: an ADU that would not fit is
    /// held as it comes, without a reservation.
    #[test]
    fn reservations_stay_within_the_pending_budget() {
        let limits = ReassemblyLimits {
            max_pending_bytes: 1_000,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        assert!(r.push(&frag(0, 800, &[1; 100]), NOW).unwrap().is_none());
        assert_eq!(r.reserved, 700);
        // Another ADU: a different creation time.
        let mut p = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((0, 800)),
            time: 815_000_000_001,
            lifetime: 1_000,
            ..P::default()
        };
        let other = bundle(&p, &[B::payload(&[2; 100])]);
        assert!(r.push(&other, NOW).unwrap().is_none());
        assert_eq!(r.reserved, 700, "the second ADU is not reserved for");
        assert!(r.reserved + r.pending().bytes <= 1_000);
        // Filling the first gives its room back.
        assert!(r.push(&frag(100, 800, &[1; 700]), NOW).unwrap().is_some());
        assert_eq!(r.reserved, 0);
        p.frag = Some((100, 800));
        assert!(r
            .push(&bundle(&p, &[B::payload(&[2; 700])]), NOW)
            .unwrap()
            .is_some());
        assert_eq!((r.reserved, r.pending()), (0, PendingStats::default()));
    }

    #[test]
    fn limit_max_adu_is_checked_before_allocating() {
        let limits = ReassemblyLimits {
            max_adu_bytes: 100,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        // A 2^62-byte ADU announced by a 1-byte fragment.
        let e = r.push(&frag(0, 1 << 62, b"x"), NOW).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert_eq!(
            r.push(&build(&[0u8; 101], &spec()).unwrap(), NOW)
                .unwrap_err()
                .kind,
            ErrorKind::LimitExceeded
        );
        assert!(r.push(&frag(0, 100, b"x"), NOW).unwrap().is_none());
    }

    #[test]
    fn limit_max_pending_bundles() {
        let limits = ReassemblyLimits {
            max_pending_bundles: 2,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        for seq in 0..2 {
            let p = P {
                flags: FLAG_IS_FRAGMENT,
                frag: Some((0, 10)),
                seq,
                ..P::default()
            };
            r.push(&bundle(&p, &[B::payload(b"ab")]), NOW).unwrap();
        }
        let p = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((0, 10)),
            seq: 9,
            ..P::default()
        };
        let e = r.push(&bundle(&p, &[B::payload(b"ab")]), NOW).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert_eq!(r.pending().bundles, 2);
        // More fragments of a held ADU are still accepted.
        let p = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((2, 10)),
            seq: 1,
            ..P::default()
        };
        r.push(&bundle(&p, &[B::payload(b"cd")]), NOW).unwrap();
        assert_eq!(
            r.pending(),
            PendingStats {
                bundles: 2,
                bytes: 6
            }
        );
    }

    #[test]
    fn limit_max_pending_bytes() {
        let limits = ReassemblyLimits {
            max_pending_bytes: 5,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        r.push(&frag(0, 10, b"abc"), NOW).unwrap();
        let before = snapshot(&r);
        assert_eq!(
            r.push(&frag(3, 10, b"def"), NOW).unwrap_err().kind,
            ErrorKind::LimitExceeded
        );
        assert_eq!(snapshot(&r), before);
        // Overlapping bytes are not counted twice.
        r.push(&frag(1, 10, b"bcde"), NOW).unwrap();
        assert_eq!(r.pending().bytes, 5);
        // The push that completes an ADU holds nothing afterwards: accepted.
        assert_eq!(
            r.push(&frag(5, 10, b"fghij"), NOW).unwrap().unwrap().adu,
            b"abcdefghij"
        );
    }

    #[test]
    fn expired_on_push() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let f = frag(0, 10, b"abc");
        assert!(r.push(&f, 815_000_001_000).is_ok()); // exactly at the end: still alive
        let e = r.push(&frag(3, 10, b"def"), 815_000_001_001).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Expired);
        assert_eq!(
            r.push(&build(b"x", &spec()).unwrap(), 815_000_001_001)
                .unwrap_err()
                .kind,
            ErrorKind::Expired
        );
    }

    #[test]
    fn expired_by_bundle_age_without_a_clock() {
        let no_clock = P {
            time: 0,
            lifetime: 1_000,
            flags: FLAG_IS_FRAGMENT,
            frag: Some((0, 4)),
            ..P::default()
        };
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let old = bundle(&no_clock, &[B::age(2, 1_001), B::payload(b"ab")]);
        assert_eq!(r.push(&old, 5).unwrap_err().kind, ErrorKind::Expired);
        let young = bundle(&no_clock, &[B::age(2, 400), B::payload(b"ab")]);
        assert!(r.push(&young, 5).unwrap().is_none());
        // 600 ms of lifetime were left at time 5.
        assert!(r.expire(605).is_empty());
        assert_eq!(r.expire(606).len(), 1);
    }

    #[test]
    fn expire_drops_only_incomplete_adus_past_lifetime() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&frag(0, 10, b"abc"), NOW).unwrap();
        let long = P {
            flags: FLAG_IS_FRAGMENT,
            frag: Some((0, 10)),
            seq: 7,
            lifetime: 10_000,
            ..P::default()
        };
        r.push(&bundle(&long, &[B::payload(b"xyz")]), NOW).unwrap();
        assert!(r.expire(815_000_001_000).is_empty());
        let gone = r.expire(815_000_001_001);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].sequence_number, 3);
        assert_eq!(
            r.pending(),
            PendingStats {
                bundles: 1,
                bytes: 3
            }
        );
    }

    #[test]
    fn fragment_adu_round_trip_in_reverse() {
        let adu: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let frags = fragment_adu(&adu, &spec(), 1_024).unwrap();
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut out = None;
        for f in frags.iter().rev() {
            assert!(out.is_none());
            out = r.push(f, NOW).unwrap();
        }
        let out = out.unwrap();
        assert_eq!(out.adu, adu);
        assert_eq!(out.fragments as usize, frags.len());
    }
}
