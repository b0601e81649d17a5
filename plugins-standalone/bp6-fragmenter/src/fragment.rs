//! Fragmentation (RFC 5050 §5.8).

use crate::*;

/// Largest `len` with `sdnv::len(len) + len <= room`.
pub(crate) fn max_fit(room: u64) -> u64 {
    if room < 2 {
        return 0;
    }
    let mut len = room - 1;
    while sdnv::len(len) as u64 + len > room {
        len -= 1;
    }
    len
}

/// Fragments a bundle (itself maybe a fragment: offsets stay relative to
/// the original ADU) into bundles of at most `mtu` bytes. A bundle that
/// fits already is returned unchanged.
pub fn fragment(bundle: &[u8], mtu: u64) -> Result<Vec<Vec<u8>>> {
    let parsed = Bundle::parse(bundle)?;
    if bundle.len() as u64 <= mtu {
        return Ok(vec![bundle.to_vec()]);
    }
    fragment_parsed(&parsed, mtu)
}

/// §5.8: every fragment has the primary block with the fragment flag, its
/// offset in the original ADU and the ADU's total length; blocks before
/// the payload go in the first fragment, blocks after it in the last, and
/// blocks flagged "replicate in every fragment" in all of them.
pub(crate) fn fragment_parsed(b: &Bundle<'_>, mtu: u64) -> Result<Vec<Vec<u8>>> {
    if b.primary.flags & flags::MUST_NOT_FRAGMENT != 0 {
        return Err(Error::new(
            "must-not-fragment",
            format!("the bundle is flagged \"must not be fragmented\" and is larger than the MTU of {mtu} bytes"),
        ));
    }
    let payload = b.payload();
    let len = payload.len() as u64;
    if len == 0 {
        return Err(Error::new(
            "mtu-too-small",
            format!("the bundle is larger than the MTU of {mtu} bytes and has no payload bytes to split"),
        ));
    }
    let (base, total) = b.primary.fragment.unwrap_or((0, len));
    let mut primary = b.primary.clone();
    primary.flags |= flags::IS_FRAGMENT;
    let p = b.payload_index;
    let replicated = |i: usize| b.blocks[i].flags & block_flags::REPLICATE != 0;
    // Which extension blocks a fragment carries, by position.
    let keep = |first: bool, last: bool| -> Vec<bool> {
        (0..b.blocks.len())
            .map(|i| i == p || replicated(i) || (i < p && first) || (i > p && last))
            .collect()
    };
    // Bytes of the kept extension blocks; the "last block" flag sits on the
    // payload block unless a block after it is kept.
    let ext_len = |keep: &[bool]| -> (u64, bool) {
        let last_kept = (0..b.blocks.len()).rev().find(|&i| keep[i]);
        let bytes = b
            .blocks
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != p && keep[i])
            .map(|(i, blk)| blk.encoded_len(Some(i) == last_kept) as u64)
            .sum();
        (bytes, last_kept == Some(p))
    };
    let pflags = b.blocks[p].flags;
    let head_extra = |payload_last: bool| -> u64 {
        // Type byte, flags and EID references; the length SDNV is added by max_fit.
        let blk = &b.blocks[p];
        let mut n = 1 + sdnv::len(block_flags_for(pflags, payload_last)) as u64;
        if blk.flags & block_flags::HAS_EID_REFERENCES != 0 {
            n += sdnv::len(blk.eid_refs.len() as u64) as u64;
            n += blk
                .eid_refs
                .iter()
                .map(|&(x, y)| (sdnv::len(x) + sdnv::len(y)) as u64)
                .sum::<u64>();
        }
        n
    };

    let mut out = Vec::new();
    let mut pos: u64 = 0;
    while pos < len {
        primary.fragment = Some((base + pos, total));
        let prim = primary.encoded_len() as u64;
        let first = pos == 0;
        let remaining = len - pos;
        // As the last piece: everything that is left.
        let k_last = keep(first, true);
        let (ext, payload_last) = ext_len(&k_last);
        let need = prim + ext + head_extra(payload_last) + sdnv::len(remaining) as u64 + remaining;
        let (take, k) = if need <= mtu {
            (remaining, k_last)
        } else {
            let k_mid = keep(first, false);
            let (ext, payload_last) = ext_len(&k_mid);
            let fixed = prim + ext + head_extra(payload_last);
            let take = max_fit(mtu.saturating_sub(fixed)).min(remaining - 1);
            if take == 0 {
                return Err(Error::new(
                    "mtu-too-small",
                    format!("an MTU of {mtu} bytes cannot hold a fragment's blocks and one payload byte (fragment at ADU offset {})", base + pos),
                ));
            }
            (take, k_mid)
        };
        let piece = &payload[pos as usize..(pos + take) as usize];
        let mut bytes =
            Vec::with_capacity(mtu.min(prim + take + 64 + b.blocks.len() as u64 * 16) as usize);
        b.encode_with(&primary, piece, &k, &mut bytes);
        debug_assert!(bytes.len() as u64 <= mtu);
        out.push(bytes);
        pos += take;
    }
    Ok(out)
}
