//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), in hardware where
//! the CPU has it.
//!
//! On x86_64 with SSE4.2 the `crc32` instruction does 8 bytes per step; its
//! latency is three cycles and its throughput one a cycle, so long inputs
//! run as three independent streams over adjacent blocks whose results are
//! then combined (the method of Intel's white paper and Mark Adler's
//! `crc32c.c`): the CRC of `A || B` is the CRC of `A` shifted over
//! `len(B)` zero bytes, XOR the CRC of `B` from a zero register. Shifting
//! over a fixed number of zero bytes is linear in the register, so it is
//! four table lookups. Elsewhere (and in WebAssembly) the portable
//! slice-by-16 tables of the `crc` crate. The choice is made once, at run time.
//!
//! The functions here take and return the raw register (the complement of
//! the value carried in a block), so a CRC can be computed over pieces.

/// The portable CRC-32C: the `crc` crate's slice-by-16 tables.
const CASTAGNOLI: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The register after `data`, from `crc` (portable). The crate takes an
/// initial value as the algorithm states it (bit-reversed for a reflected
/// CRC) and gives the final value (the register XOR 0xFFFFFFFF).
fn update_portable(crc: u32, data: &[u8]) -> u32 {
    let mut d = CASTAGNOLI.digest_with_initial(crc.reverse_bits());
    d.update(data);
    !d.finalize()
}

#[cfg(target_arch = "x86_64")]
/// A linear operator on the register, as four byte tables: the register
/// after `n` zero bytes (fixed per operator).
struct Shift([[u32; 256]; 4]);

#[cfg(target_arch = "x86_64")]
impl Shift {
    /// The operator for `n` zero bytes, built from its action on the 32
    /// single-bit registers.
    fn zeros(n: usize) -> Shift {
        let zeros = vec![0u8; n];
        let mut basis = [0u32; 32];
        for (bit, b) in basis.iter_mut().enumerate() {
            *b = update_portable(1 << bit, &zeros);
        }
        let mut t = [[0u32; 256]; 4];
        for (k, table) in t.iter_mut().enumerate() {
            for (v, e) in table.iter_mut().enumerate() {
                *e = (0..8)
                    .filter(|i| v & (1 << i) != 0)
                    .fold(0, |acc, i| acc ^ basis[k * 8 + i]);
            }
        }
        Shift(t)
    }

    fn apply(&self, crc: u32) -> u32 {
        self.0[0][(crc & 0xff) as usize]
            ^ self.0[1][((crc >> 8) & 0xff) as usize]
            ^ self.0[2][((crc >> 16) & 0xff) as usize]
            ^ self.0[3][(crc >> 24) as usize]
    }
}

/// Block lengths of the three-stream loop: long blocks for long inputs,
/// short ones for what is left.
#[cfg(target_arch = "x86_64")]
const LONG: usize = 8192;
#[cfg(target_arch = "x86_64")]
const SHORT: usize = 256;

#[cfg(target_arch = "x86_64")]
struct Hardware {
    long: Shift,
    short: Shift,
    /// AVX-512 with VPCLMULQDQ: [`fold`] runs 256 bytes a step.
    fold: bool,
}

#[cfg(target_arch = "x86_64")]
fn hardware() -> Option<&'static Hardware> {
    use std::sync::OnceLock;
    static HW: OnceLock<Option<Hardware>> = OnceLock::new();
    HW.get_or_init(|| {
        std::arch::is_x86_feature_detected!("sse4.2").then(|| Hardware {
            long: Shift::zeros(LONG),
            short: Shift::zeros(SHORT),
            fold: std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("vpclmulqdq")
                && std::arch::is_x86_feature_detected!("pclmulqdq"),
        })
    })
    .as_ref()
}

/// CRC-32C by carry-less multiplication (Intel, "Fast CRC Computation for
/// Generic Polynomials Using PCLMULQDQ"), 256 bytes a step with AVX-512's
/// VPCLMULQDQ: four 64-byte accumulators, each 128-bit lane folded forward
/// over 2048 bits and XORed with the data there; at the end the sixteen
/// lanes are folded into one, whose CRC the `crc32` instruction takes.
/// About 2.5 times the three `crc32` streams on this project's CPU (16 MiB
/// in 0.38 ms against 0.9), which are bound by one 8-byte step a cycle.
///
/// The constants are `reflect32(x^e mod P) << 1` for the reflected
/// polynomial: `e` = distance + 32 for the low 64 bits of a lane,
/// distance - 32 for the high ones (checked against a bitwise CRC by
/// searching `e`, and here by the tests against the `crc` crate).
#[cfg(target_arch = "x86_64")]
mod fold {
    use std::arch::x86_64::{
        __m128i, __m512i, _mm512_castsi128_si512, _mm512_clmulepi64_epi128,
        _mm512_extracti32x4_epi32, _mm512_loadu_si512, _mm512_set_epi64, _mm512_stream_si512,
        _mm512_xor_si512, _mm_clmulepi64_si128, _mm_crc32_u64, _mm_cvtsi128_si64,
        _mm_cvtsi32_si128, _mm_extract_epi64, _mm_set_epi64x, _mm_xor_si128,
    };

    /// Fold by 2048 bits (x^2080, x^2016).
    const K2048: (i64, i64) = (0xdcb1_7aa4, 0xb9e0_2b86);
    /// Fold by 128 bits (x^160, x^96).
    const K128: (i64, i64) = (0xf20c_0dfe, 0x1_4cd0_0bd6);

    /// The bytes one step takes.
    pub(super) const STEP: usize = 256;

    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2")]
    fn lanes(x: __m512i, k: __m512i) -> __m512i {
        _mm512_xor_si512(
            _mm512_clmulepi64_epi128(x, k, 0x00),
            _mm512_clmulepi64_epi128(x, k, 0x11),
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2")]
    fn lane(x: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128(x, k, 0x00),
            _mm_clmulepi64_si128(x, k, 0x11),
        )
    }

    /// The register after `data[..n]` (`n` a multiple of [`STEP`], at
    /// least one step), from `crc`, writing each 64 bytes to `dst` with
    /// a non-temporal store when `dst` is given.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, VPCLMULQDQ, PCLMULQDQ and SSE4.2; `n <=
    /// data.len()`; `dst`, when given, is 64-byte aligned, valid for `n`
    /// bytes of writes and does not overlap `data`.
    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2")]
    #[allow(unsafe_code)]
    pub(super) unsafe fn steps(crc: u32, data: &[u8], n: usize, dst: Option<*mut u8>) -> u32 {
        debug_assert!(n >= STEP && n.is_multiple_of(STEP) && n <= data.len());
        let p = data.as_ptr().cast::<__m512i>();
        // SAFETY (every load): `i * 64 + 64 <= n <= data.len()`.
        let load = |i: usize| unsafe { _mm512_loadu_si512(p.add(i)) };
        // SAFETY (every store): the caller's promise on `dst`.
        let store = |i: usize, v: __m512i| {
            if let Some(d) = dst {
                unsafe { _mm512_stream_si512(d.cast::<__m512i>().add(i), v) }
            }
        };
        let k = _mm512_set_epi64(
            K2048.1, K2048.0, K2048.1, K2048.0, K2048.1, K2048.0, K2048.1, K2048.0,
        );
        let mut x = [load(0), load(1), load(2), load(3)];
        for (i, v) in x.iter().enumerate() {
            store(i, *v);
        }
        // The register enters as the first 32 bits of the data.
        x[0] = _mm512_xor_si512(x[0], _mm512_castsi128_si512(_mm_cvtsi32_si128(crc as i32)));
        let mut i = 4;
        while i * 64 < n {
            for (j, acc) in x.iter_mut().enumerate() {
                let v = load(i + j);
                store(i + j, v);
                *acc = _mm512_xor_si512(lanes(*acc, k), v);
            }
            i += 4;
        }
        // Sixteen lanes, in data order, folded each into the next.
        let k = _mm_set_epi64x(K128.1, K128.0);
        let mut acc = _mm512_extracti32x4_epi32::<0>(x[0]);
        for (j, v) in x.iter().enumerate() {
            let parts = [
                _mm512_extracti32x4_epi32::<0>(*v),
                _mm512_extracti32x4_epi32::<1>(*v),
                _mm512_extracti32x4_epi32::<2>(*v),
                _mm512_extracti32x4_epi32::<3>(*v),
            ];
            for part in parts.into_iter().skip(usize::from(j == 0)) {
                acc = _mm_xor_si128(part, lane(acc, k));
            }
        }
        let lo = _mm_cvtsi128_si64(acc) as u64;
        let hi = _mm_extract_epi64::<1>(acc) as u64;
        _mm_crc32_u64(_mm_crc32_u64(0, lo), hi) as u32
    }
}

/// From this many bytes [`update`] folds with VPCLMULQDQ where it can.
#[cfg(target_arch = "x86_64")]
const FOLD_FROM: usize = 1024;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn update_sse42(hw: &Hardware, crc: u32, data: &[u8]) -> u32 {
    if hw.fold && data.len() >= FOLD_FROM {
        let n = data.len() / fold::STEP * fold::STEP;
        // SAFETY: `hw.fold` says the CPU has the features; `n` is a
        // multiple of the step, at least one, within `data`; no store.
        #[allow(unsafe_code)]
        let crc = unsafe { fold::steps(crc, data, n, None) };
        return update_three(hw, crc, &data[n..]);
    }
    update_three(hw, crc, data)
}

/// The three `crc32` streams.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn update_three(hw: &Hardware, crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};

    #[inline(always)]
    fn word(data: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
    }

    /// Three streams over `data` in blocks of `block` bytes, combined with
    /// `shift` (the operator for `block` zero bytes).
    #[inline]
    #[target_feature(enable = "sse4.2")]
    fn three(crc: u64, data: &[u8], block: usize, shift: &Shift) -> (u64, usize) {
        let mut crc0 = crc;
        let mut done = 0;
        while data.len() - done >= 3 * block {
            let (a, rest) = data[done..].split_at(block);
            let (b, c) = rest.split_at(block);
            let (mut crc1, mut crc2) = (0u64, 0u64);
            let mut i = 0;
            while i < block {
                crc0 = _mm_crc32_u64(crc0, word(a, i));
                crc1 = _mm_crc32_u64(crc1, word(b, i));
                crc2 = _mm_crc32_u64(crc2, word(c, i));
                i += 8;
            }
            crc0 = u64::from(shift.apply(crc0 as u32)) ^ crc1;
            crc0 = u64::from(shift.apply(crc0 as u32)) ^ crc2;
            done += 3 * block;
        }
        (crc0, done)
    }

    let (crc, done) = three(u64::from(crc), data, LONG, &hw.long);
    let (mut crc, more) = three(crc, &data[done..], SHORT, &hw.short);
    let rest = &data[done + more..];
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut crc = crc as u32;
    for &b in words.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    crc
}

/// A CRC-32C offered from outside (a WebAssembly plugin's host), used for
/// inputs of [`PROVIDED_FROM`] bytes or more where there is no hardware
/// CRC here.
static PROVIDER: std::sync::OnceLock<fn(u32, &[u8]) -> u32> = std::sync::OnceLock::new();

/// Shorter inputs stay in the portable code (a call out costs more).
const PROVIDED_FROM: usize = 256;

/// Has `provider` compute CRC-32C (the register after the data, from the
/// register given) where this process has no hardware CRC: a fragmenter
/// plugin passes the host's `host-checksum.crc32c`. The first call wins.
pub fn provide_crc32c(provider: fn(u32, &[u8]) -> u32) {
    let _ = PROVIDER.set(provider);
}

/// The register after `data`, from `crc` (start from `0xffffffff`; the
/// CRC-32C is the final register XOR `0xffffffff`), so a CRC can be taken
/// over pieces: in hardware when the CPU has it. Exported as
/// `crc32c_update` (a host offers it to plugins).
pub fn update(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(hw) = hardware() {
        // SAFETY: `hardware()` is `Some` only when the CPU has SSE4.2.
        #[allow(unsafe_code)]
        return unsafe { update_sse42(hw, crc, data) };
    }
    if data.len() >= PROVIDED_FROM {
        if let Some(provider) = PROVIDER.get() {
            return provider(crc, data);
        }
    }
    update_portable(crc, data)
}

/// From this many bytes, [`extend_update`] copies with non-temporal
/// stores in the same loop as the CRC (x86_64 with SSE4.2).
#[cfg(target_arch = "x86_64")]
const STREAM_FROM: usize = 16 * 1024;

/// Copies `src` to `dst` and returns the register after `src`, from
/// `crc`, in one pass: each 8-byte word is loaded once, fed to the
/// `crc32` instruction (three streams, as [`update_sse42`]) and written
/// with a non-temporal store (`movnti`), which goes to memory without
/// first reading the destination line into the cache. A plain copy of a
/// large payload into fresh memory reads every destination line first
/// (read for ownership): twice the memory traffic of the copy itself.
///
/// # Safety
///
/// The CPU has SSE4.2 (`hw` exists); `dst` is valid for `src.len()`
/// bytes of writes and does not overlap `src`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[allow(unsafe_code)]
unsafe fn copy_update_sse42(hw: &Hardware, crc: u32, src: &[u8], dst: *mut u8) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_sfence, _mm_stream_si64};

    if hw.fold {
        // Up to 63 bytes, so the 64-byte stores below are aligned.
        let head = ((dst as usize).wrapping_neg() % 64).min(src.len());
        // SAFETY: `dst` is valid for `src.len()` >= `head` bytes (caller).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, head) };
        let mut crc = update_three(hw, crc, &src[..head]);
        let body = &src[head..];
        let n = body.len() / fold::STEP * fold::STEP;
        if n > 0 {
            // SAFETY: the features (`hw.fold`); `dst + head` is 64-byte
            // aligned and valid for the `n <= body.len()` bytes written.
            crc = unsafe { fold::steps(crc, body, n, Some(dst.add(head))) };
            _mm_sfence();
        }
        let done = head + n;
        let rest = &src[done..];
        // SAFETY: the last `rest.len()` bytes of the `src.len()` at `dst`.
        unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(done), rest.len()) };
        return update_three(hw, crc, rest);
    }

    #[inline(always)]
    fn word(data: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
    }

    // Up to 7 bytes, so the stores below are 8-byte aligned.
    let head = (dst as usize).wrapping_neg() % 8;
    let head = head.min(src.len());
    // SAFETY: `dst` is valid for `src.len()` >= `head` bytes (caller).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, head) };
    let mut crc0 = u64::from(update_three(hw, crc, &src[..head]));
    let mut done = head;
    for (block, shift) in [(LONG, &hw.long), (SHORT, &hw.short)] {
        while src.len() - done >= 3 * block {
            let (a, rest) = src[done..].split_at(block);
            let (b, c) = rest.split_at(block);
            // SAFETY: `done + 3 * block <= src.len()`, so these and every
            // store below stay within the `src.len()` bytes at `dst`.
            let (da, db, dc) = unsafe {
                let da = dst.add(done).cast::<i64>();
                (da, da.add(block / 8), da.add(2 * block / 8))
            };
            let (mut crc1, mut crc2) = (0u64, 0u64);
            let mut i = 0;
            while i < block {
                let (wa, wb, wc) = (word(a, i), word(b, i), word(c, i));
                crc0 = _mm_crc32_u64(crc0, wa);
                crc1 = _mm_crc32_u64(crc1, wb);
                crc2 = _mm_crc32_u64(crc2, wc);
                // SAFETY: in bounds (above) and 8-byte aligned (`head`).
                unsafe {
                    _mm_stream_si64(da.add(i / 8), wa as i64);
                    _mm_stream_si64(db.add(i / 8), wb as i64);
                    _mm_stream_si64(dc.add(i / 8), wc as i64);
                }
                i += 8;
            }
            crc0 = u64::from(shift.apply(crc0 as u32)) ^ crc1;
            crc0 = u64::from(shift.apply(crc0 as u32)) ^ crc2;
            done += 3 * block;
        }
    }
    // Non-temporal stores are weakly ordered: make them visible before
    // anything this thread does next (handing the buffer to another).
    _mm_sfence();
    let rest = &src[done..];
    // SAFETY: the last `rest.len()` bytes of the `src.len()` at `dst`.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(done), rest.len()) };
    update_three(hw, crc0 as u32, rest)
}

/// Whether a copy from `src` to `dst` would load, again and again, from
/// addresses that agree in their low 12 bits with stores still waiting in
/// the store buffer ("4K aliasing"): the CPU then holds each load until
/// the store drains, and the streaming loop runs at a fraction of its
/// speed (33 ms instead of 1.5 ms for 16 MiB, when both buffers start a
/// page apart plus a bundle header). The cached copy handles it.
#[cfg(target_arch = "x86_64")]
fn aliases_4k(src: *const u8, dst: *const u8) -> bool {
    let ahead = (dst as usize).wrapping_sub(src as usize) % 4096;
    ahead != 0 && ahead < 512
}

/// Appends `data` to `out` and returns the register after it, from `crc`:
/// one pass over `data` in memory. Large inputs on x86_64 with SSE4.2 are
/// copied and checked in one loop with non-temporal stores
/// ([`copy_update_sse42`]); otherwise each piece is copied, then checked
/// while it is still in the first-level cache.
pub(crate) fn extend_update(mut crc: u32, out: &mut Vec<u8>, data: &[u8]) -> u32 {
    const PIECE: usize = 16 * 1024;
    out.reserve(data.len());
    #[cfg(target_arch = "x86_64")]
    if data.len() >= STREAM_FROM && !aliases_4k(data.as_ptr(), out.as_ptr().wrapping_add(out.len()))
    {
        if let Some(hw) = hardware() {
            let start = out.len();
            // SAFETY: `hardware()` is `Some` only with SSE4.2; `reserve`
            // left room for `data.len()` bytes after `start`, which the
            // call writes, every one, before `set_len` exposes them; `out`
            // and `data` cannot overlap (one is borrowed mutably).
            #[allow(unsafe_code)]
            unsafe {
                let crc = copy_update_sse42(hw, crc, data, out.as_mut_ptr().add(start));
                out.set_len(start + data.len());
                return crc;
            }
        }
    }
    for piece in data.chunks(PIECE) {
        out.extend_from_slice(piece);
        crc = update(crc, piece);
    }
    crc
}

/// Which implementation this process uses, for benchmark reports.
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some(hw) = hardware() {
        return if hw.fold {
            "vpclmulqdq folding, 256 bytes a step (sse4.2 three streams below 1 KiB)"
        } else {
            "sse4.2, three streams"
        };
    }
    if PROVIDER.get().is_some() {
        return "provided by the host (portable slice-by-16 under 256 bytes)";
    }
    "portable slice-by-16"
}

/// The CRC-32C of `data` (init and final XOR 0xFFFFFFFF).
pub fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REFERENCE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

    #[test]
    fn check_values() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(!update_portable(!0, b"123456789"), 0xe306_9283);
    }

    /// Every length around the block sizes of the three-stream loop, every
    /// implementation, against the `crc` crate.
    #[test]
    fn every_path_agrees_with_the_reference_around_block_edges() {
        let data: Vec<u8> = (0..3 * 8192 * 2 + 3 * 256 * 2 + 64)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut lens: Vec<usize> = (0..80).collect();
        for edge in [3 * 256, 3 * 8192, 2 * 3 * 8192 + 3 * 256] {
            lens.extend(edge - 9..edge + 9);
        }
        lens.push(data.len());
        for len in lens {
            let want = REFERENCE.checksum(&data[..len]);
            assert_eq!(crc32c(&data[..len]), want, "len {len}");
            #[cfg(target_arch = "x86_64")]
            if let Some(hw) = hardware() {
                // SAFETY: `hardware()` is `Some` only with SSE4.2.
                #[allow(unsafe_code)]
                let three = unsafe { update_three(hw, !0, &data[..len]) };
                assert_eq!(!three, want, "three streams, len {len}");
            }
            assert_eq!(
                !update_portable(!0, &data[..len]),
                want,
                "portable, len {len}"
            );
        }
    }

    /// The streaming copy: every destination alignment, lengths around
    /// the threshold and the block edges, bytes and CRC exact, and
    /// nothing written past the end.
    #[test]
    fn extend_update_copies_and_checks_at_every_alignment_and_edge() {
        let data: Vec<u8> = (0..2 * 3 * 8192 + 3 * 256 * 3 + 64)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut lens = vec![data.len()];
        for edge in [
            16 * 1024,
            3 * 8192,
            3 * 8192 + 3 * 256,
            2 * 3 * 8192 + 3 * 256,
        ] {
            lens.extend(edge - 9..edge + 9);
        }
        for len in lens {
            for prefix in 0..9 {
                let mut out = vec![0xa5u8; prefix];
                out.reserve(len + 64);
                let crc = extend_update(!0, &mut out, &data[..len]);
                assert_eq!(
                    !crc,
                    REFERENCE.checksum(&data[..len]),
                    "len {len}, prefix {prefix}"
                );
                assert_eq!(&out[prefix..], &data[..len], "len {len}, prefix {prefix}");
                assert!(out[..prefix].iter().all(|&b| b == 0xa5));
            }
        }
    }

    proptest! {
        /// A CRC over pieces is the CRC over the whole, on every path.
        #[test]
        fn pieces_make_the_whole(data in proptest::collection::vec(any::<u8>(), 0..60_000),
                                 cut in any::<prop::sample::Index>()) {
            let at = cut.index(data.len() + 1);
            let want = REFERENCE.checksum(&data);
            prop_assert_eq!(!update(update(!0, &data[..at]), &data[at..]), want);
            prop_assert_eq!(!update_portable(update_portable(!0, &data[..at]), &data[at..]), want);
            let mut out = data[..at].to_vec();
            let crc = extend_update(update(!0, &data[..at]), &mut out, &data[at..]);
            prop_assert_eq!(!crc, want);
            prop_assert_eq!(out, data);
        }
    }
}
