//! Reassembly (RFC 5050 §5.9), bounded by limits.

use crate::*;

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
pub(crate) struct Partial {
    pub(crate) destination: Eid,
    pub(crate) total: u64,
    /// DTN ms after which the ADU is dropped.
    pub(crate) deadline: u64,
    /// Non-overlapping material extents, offset -> bytes.
    pub(crate) chunks: BTreeMap<u64, Vec<u8>>,
    pub(crate) held: u64,
    pub(crate) fragments: u32,
}

impl Partial {
    /// Compares `data` at `offset` with what is held; returns the gaps it
    /// fills as (start, end) ADU offsets.
    pub(crate) fn gaps(&self, offset: u64, data: &[u8]) -> Result<Vec<(u64, u64)>> {
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

    pub(crate) fn assemble(mut self) -> Vec<u8> {
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
    pub(crate) limits: Limits,
    pub(crate) partial: BTreeMap<BundleId, Partial>,
    pub(crate) bytes: u64,
    /// Fragmented ADUs delivered, with their deadline: late duplicates are
    /// absorbed until then.
    pub(crate) delivered: BTreeMap<BundleId, u64>,
}

/// The DTN ms time a bundle expires: (creation + lifetime) seconds.
/// `expired` when that is before `now`.
pub(crate) fn deadline(p: &Primary, now: u64) -> Result<u64> {
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

    pub(crate) fn check_adu_size(&self, total: u64) -> Result<()> {
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

    pub(crate) fn check_pending_bytes(&self, more: u64) -> Result<()> {
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

    pub(crate) fn remember_delivered(&mut self, id: BundleId, deadline: u64) {
        let cap = (self.limits.max_pending_bundles as usize)
            .saturating_mul(4)
            .max(64);
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
