//! Block CRCs (RFC 9171 §4.2.1, §4.2.2): CRC-16 X.25 and CRC-32C, computed
//! over a block's whole encoding with the CRC value bytes set to zero (the
//! byte-string head before them stays as it is, RFC 9171 erratum 8043).
//! CRC-32C runs in hardware where the CPU has it (`crate::crc32c`).

use core::ops::Range;
use crc::{Crc, Table, CRC_16_IBM_SDLC};

use crate::cbor::{put_head, MAJOR_BYTES};

/// CRC-16 X.25 (poly 0x1021 reflected, init and xorout 0xffff), slice-by-16.
const X25: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_IBM_SDLC);

/// CRC type of a block (RFC 9171 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrcType {
    /// No CRC (type code 0).
    None,
    /// CRC-16 X.25 (type code 1).
    Crc16,
    /// CRC-32C, Castagnoli (type code 2).
    Crc32c,
}

impl CrcType {
    /// The type code carried in a block.
    pub fn code(self) -> u64 {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 1,
            CrcType::Crc32c => 2,
        }
    }

    /// The CRC type for a type code, if the code is one RFC 9171 defines.
    pub fn from_code(code: u64) -> Option<CrcType> {
        match code {
            0 => Some(CrcType::None),
            1 => Some(CrcType::Crc16),
            2 => Some(CrcType::Crc32c),
            _ => None,
        }
    }

    /// Length of the CRC value in bytes: 0, 2 or 4.
    pub fn value_len(self) -> usize {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 2,
            CrcType::Crc32c => 4,
        }
    }

    /// Encoded length of the CRC field (byte-string head plus value).
    pub(crate) fn field_len(self) -> usize {
        match self {
            CrcType::None => 0,
            n => 1 + n.value_len(),
        }
    }

    /// Name for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CrcType::None => "no CRC",
            CrcType::Crc16 => "CRC-16 X.25",
            CrcType::Crc32c => "CRC-32C",
        }
    }
}

/// The CRC of `block` with `value` (the CRC value bytes inside it) counted
/// as zeros, big-endian in the low `value_len` bytes of the result.
pub(crate) fn compute(kind: CrcType, block: &[u8], value: Range<usize>) -> u32 {
    const ZEROS: [u8; 4] = [0; 4];
    let zeros = &ZEROS[..value.len().min(4)];
    match kind {
        CrcType::None => 0,
        CrcType::Crc16 => {
            let mut d = X25.digest();
            d.update(&block[..value.start]);
            d.update(zeros);
            d.update(&block[value.end..]);
            u32::from(d.finalize())
        }
        CrcType::Crc32c => {
            let crc = crate::crc32c::update(!0, &block[..value.start]);
            let crc = crate::crc32c::update(crc, zeros);
            !crate::crc32c::update(crc, &block[value.end..])
        }
    }
}

/// The CRC value as the bytes a block carries.
pub(crate) fn value_bytes(kind: CrcType, crc: u32) -> ([u8; 4], usize) {
    match kind {
        CrcType::None => ([0; 4], 0),
        CrcType::Crc16 => {
            let b = (crc as u16).to_be_bytes();
            ([b[0], b[1], 0, 0], 2)
        }
        CrcType::Crc32c => (crc.to_be_bytes(), 4),
    }
}

/// Reads the CRC carried in `value` as a number.
pub(crate) fn read_value(value: &[u8]) -> u32 {
    value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

/// Finishes a block being written into `out` from `start`: appends the CRC
/// field (if any) and patches in the CRC computed over the block. The block
/// must be a definite-length array whose last item is the CRC.
pub(crate) fn seal(out: &mut Vec<u8>, start: usize, kind: CrcType) {
    if kind == CrcType::None {
        return;
    }
    let n = kind.value_len();
    put_head(out, MAJOR_BYTES, n as u64);
    let at = out.len();
    out.extend_from_slice(&[0u8; 4][..n]);
    let crc = compute(kind, &out[start..], at - start..at - start + n);
    let (bytes, len) = value_bytes(kind, crc);
    out[at..at + n].copy_from_slice(&bytes[..len]);
}

/// Appends `data` to the block being written into `out` from `start`,
/// then finishes it as [`seal`] does. With CRC-32C the checksum is taken
/// as the data is copied (one pass over it), not over the block after.
pub(crate) fn extend_and_seal(out: &mut Vec<u8>, start: usize, data: &[u8], kind: CrcType) {
    if kind != CrcType::Crc32c {
        out.extend_from_slice(data);
        seal(out, start, kind);
        return;
    }
    let crc = crate::crc32c::update(!0, &out[start..]);
    let crc = crate::crc32c::extend_update(crc, out, data);
    let field = out.len();
    put_head(out, MAJOR_BYTES, 4);
    out.extend_from_slice(&[0u8; 4]);
    let crc = !crate::crc32c::update(crc, &out[field..]);
    let at = out.len() - 4;
    out[at..].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_from_the_crc_catalogue() {
        // "123456789" check values: X.25 0x906E, CRC-32C 0xE3069283.
        let data = b"123456789";
        assert_eq!(compute(CrcType::Crc16, data, 9..9), 0x906e);
        assert_eq!(compute(CrcType::Crc32c, data, 9..9), 0xe306_9283);
    }

    #[test]
    fn crc32c_of_32_zero_bytes_matches_rfc_7143_appendix_a4() {
        assert_eq!(compute(CrcType::Crc32c, &[0u8; 32], 0..0), 0x8a91_36aa);
    }

    /// Sealing while copying gives the bytes sealing after copying gives.
    #[test]
    fn extend_and_seal_is_seal() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for kind in [CrcType::None, CrcType::Crc16, CrcType::Crc32c] {
            for len in [0, 1, 7, 8, 9, 4095, 16 * 1024 + 3, data.len()] {
                let mut a = b"xx\x86\x01\x01\x00\x02\x5a".to_vec();
                let mut b = a.clone();
                a.extend_from_slice(&data[..len]);
                seal(&mut a, 2, kind);
                extend_and_seal(&mut b, 2, &data[..len], kind);
                assert_eq!(a, b, "{kind:?}, {len} bytes");
            }
        }
    }

    #[test]
    fn value_bytes_are_zeroed_for_the_computation() {
        let mut block = b"abc\x42\x11\x22".to_vec();
        let a = compute(CrcType::Crc16, &block, 4..6);
        block[4] = 0;
        block[5] = 0;
        assert_eq!(a, compute(CrcType::Crc16, &block, 6..6));
    }
}
