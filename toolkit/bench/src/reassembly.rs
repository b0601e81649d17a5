//! `deepmail reassemble`: bundle files, in any order and with duplicates,
//! through the fragmenter plugin's reassembler into the one ADU they
//! complete; when they complete none, which byte ranges are missing.

use std::path::PathBuf;

use deepmail_host::types::ReassemblyLimits;
use deepmail_host::Fragmenter;

use crate::{read_input, BenchError};

/// The limits for ADUs of at most `max_adu_mib` MiB: twice that held
/// pending, in at most 64 bundles.
pub fn limits_for(max_adu_mib: u64) -> ReassemblyLimits {
    let max = max_adu_mib.saturating_mul(1 << 20);
    ReassemblyLimits {
        max_adu_bytes: max,
        max_pending_bytes: max.saturating_mul(2),
        max_pending_bundles: 64,
    }
}

/// Byte ranges of `0..total` that no fragment covers.
fn missing_ranges(total: u64, mut have: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    have.sort();
    let mut missing = Vec::new();
    let mut cursor = 0;
    for (start, len) in have {
        if start > cursor {
            missing.push((cursor, start));
        }
        cursor = cursor.max(start + len);
    }
    if cursor < total {
        missing.push((cursor, total));
    }
    missing
}

/// Pushes the bundles in `paths` at `now` (DTN ms) and returns the ADU
/// they complete; more or fewer than one is an error that says what was
/// completed or what is missing.
pub fn reassemble_files(
    fragmenter: &Fragmenter,
    paths: &[PathBuf],
    limits: ReassemblyLimits,
    now: u64,
) -> Result<Vec<u8>, BenchError> {
    let mut session = fragmenter.reassembler(limits).map_err(BenchError::Stage)?;
    let mut delivered = Vec::new();
    let mut coverage: Vec<(u64, u64)> = Vec::new();
    let mut total_len = None;
    for path in paths {
        let bytes = read_input(path)?;
        if let Ok(info) = fragmenter.inspect(&bytes) {
            coverage.push((info.fragment_offset.unwrap_or(0), info.payload_length));
            total_len = total_len.or(info.total_adu_length);
        }
        match session.push(&bytes, now) {
            Ok(Some(adu)) => delivered.push(adu),
            Ok(None) => {}
            Err(e) => {
                return Err(BenchError::BadArgument(format!("{}: {e}", path.display())));
            }
        }
    }
    match delivered.len() {
        1 => Ok(delivered.remove(0).adu),
        0 => {
            let pending = session.pending().map_err(BenchError::Stage)?;
            let gaps = total_len
                .map(|t| {
                    missing_ranges(t, coverage)
                        .iter()
                        .map(|(a, b)| format!("{a}..{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            Err(BenchError::BadArgument(format!(
                "incomplete: {} bundle(s) read, {} ADU(s) still pending with {} bytes held; missing byte ranges: {}",
                paths.len(),
                pending.bundles,
                pending.bytes,
                if gaps.is_empty() { "unknown".into() } else { gaps }
            )))
        }
        n => Err(BenchError::BadArgument(format!(
            "these files complete {n} different ADUs ({}); reassemble each one's bundles separately",
            delivered
                .iter()
                .map(|d| format!("{} #{}.{}", d.source, d.creation_time, d.sequence_number))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
