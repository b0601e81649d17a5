//! AVX2 and AVX-512 (x86-64, detected at run time).

use std::arch::x86_64::{
    __m256i, __m512i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
    _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
    _mm256_storeu_si256, _mm256_testz_si256, _mm256_xor_si256, _mm512_cmpeq_epi8_mask,
    _mm512_loadu_si512, _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_min_epu8,
    _mm512_set1_epi8, _mm512_storeu_si512, _mm512_testn_epi8_mask,
};

use super::run::{Masks, Run};

/// The vector instructions the fast path uses, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// AVX2, 64 octets at a time.
    Avx2,
    /// AVX-512 (F and BW) for the common case, 256 octets at a time,
    /// with the AVX2 block for everything else.
    Avx512,
}

impl Level {
    /// The level to use: the best this CPU runs (`None`: neither),
    /// lowered by [`super::SIMD_VAR`] if that is set.
    pub(crate) fn detect() -> Option<Level> {
        static CHOSEN: std::sync::OnceLock<Option<Level>> = std::sync::OnceLock::new();
        let chosen = *CHOSEN.get_or_init(|| {
            Self::choose(Self::cpu(), std::env::var(super::SIMD_VAR).ok().as_deref())
        });
        #[cfg(test)]
        if let Some(forced) = super::tests::FORCED.with(std::cell::Cell::get) {
            // Never above what the CPU has.
            return forced.min(chosen);
        }
        chosen
    }

    /// `cpu`, lowered to what `wanted` names (`avx2`, `none`); any
    /// other value leaves it as it is.
    pub(crate) fn choose(cpu: Option<Level>, wanted: Option<&str>) -> Option<Level> {
        match wanted {
            Some("none") => None,
            Some("avx2") => cpu.min(Some(Level::Avx2)),
            _ => cpu,
        }
    }

    fn cpu() -> Option<Level> {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("popcnt") && has!("bmi1") && has!("lzcnt")) {
            return None;
        }
        Some(if has!("avx512f") && has!("avx512bw") {
            Level::Avx512
        } else {
            Level::Avx2
        })
    }
}

/// `blocks` blocks from `run.start` at `level`; returns whether the run
/// of ordinary lines ended.
///
/// # Safety
/// The CPU has `level`'s features; the window holds `blocks` blocks of
/// input and of output.
pub(super) unsafe fn blocks(level: Level, data: &[u8], run: &mut Run, blocks: usize) -> bool {
    match level {
        Level::Avx512 => avx512::blocks(data, run, blocks),
        Level::Avx2 => avx2::blocks(data, run, blocks),
    }
}

mod avx2 {
    use super::*;

    /// The octets [`masks`] looks for, each in every lane.
    #[derive(Clone, Copy)]
    pub(super) struct Needles {
        cr: __m256i,
        lf: __m256i,
        dot: __m256i,
        zero: __m256i,
    }

    impl Needles {
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) fn new() -> Needles {
            Needles {
                cr: _mm256_set1_epi8(b'\r' as i8),
                lf: _mm256_set1_epi8(b'\n' as i8),
                dot: _mm256_set1_epi8(b'.' as i8),
                zero: _mm256_setzero_si256(),
            }
        }
    }

    /// 32 octets at `at` (and the one before): their LF, bad and
    /// dot-line masks, the octets stored at `out`.
    ///
    /// # Safety
    /// AVX2; `at - 1 .. at + 32` readable, `out .. out + 32` writable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn half(n: Needles, at: *const u8, out: *mut u8) -> (u32, u32, u32) {
        let v = _mm256_loadu_si256(at as *const __m256i);
        let prev = _mm256_loadu_si256(at.sub(1) as *const __m256i);
        _mm256_storeu_si256(out as *mut __m256i, v);
        let is_lf = _mm256_cmpeq_epi8(v, n.lf);
        let bad = _mm256_or_si256(
            _mm256_xor_si256(is_lf, _mm256_cmpeq_epi8(prev, n.cr)),
            _mm256_cmpeq_epi8(v, n.zero),
        );
        let dot_line = _mm256_and_si256(_mm256_cmpeq_epi8(v, n.dot), _mm256_cmpeq_epi8(prev, n.lf));
        (
            _mm256_movemask_epi8(is_lf) as u32,
            _mm256_movemask_epi8(bad) as u32,
            _mm256_movemask_epi8(dot_line) as u32,
        )
    }

    /// The common case first: stores the block at `p` at `out` and
    /// returns its LF mask if it holds nothing but ordinary octets (no
    /// bad octet, no dot-line); `None` sends it to [`masks`].
    ///
    /// # Safety
    /// As [`masks`].
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn plain(n: Needles, data: &[u8], p: usize, out: *mut u8) -> Option<u64> {
        let at = data.as_ptr().add(p);
        let v0 = _mm256_loadu_si256(at as *const __m256i);
        let v1 = _mm256_loadu_si256(at.add(32) as *const __m256i);
        let p0 = _mm256_loadu_si256(at.sub(1) as *const __m256i);
        let p1 = _mm256_loadu_si256(at.add(31) as *const __m256i);
        _mm256_storeu_si256(out as *mut __m256i, v0);
        _mm256_storeu_si256(out.add(32) as *mut __m256i, v1);
        let lf0 = _mm256_cmpeq_epi8(v0, n.lf);
        let lf1 = _mm256_cmpeq_epi8(v1, n.lf);
        let odd = |v, prev, is_lf| {
            _mm256_or_si256(
                _mm256_or_si256(
                    _mm256_xor_si256(is_lf, _mm256_cmpeq_epi8(prev, n.cr)),
                    _mm256_cmpeq_epi8(v, n.zero),
                ),
                _mm256_and_si256(_mm256_cmpeq_epi8(v, n.dot), _mm256_cmpeq_epi8(prev, n.lf)),
            )
        };
        let odd = _mm256_or_si256(odd(v0, p0, lf0), odd(v1, p1, lf1));
        if _mm256_testz_si256(odd, odd) == 0 {
            return None;
        }
        Some(
            u64::from(_mm256_movemask_epi8(lf0) as u32)
                | (u64::from(_mm256_movemask_epi8(lf1) as u32) << 32),
        )
    }

    /// The masks of the block at `p` (and the octet before it); stores
    /// its 64 octets at `out`.
    ///
    /// # Safety
    /// AVX2; `p >= 1`, `p + 64 <= data.len()`; `out` valid for 64
    /// writes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn masks(n: Needles, data: &[u8], p: usize, out: *mut u8) -> Masks {
        let at = data.as_ptr().add(p);
        let (lf0, bad0, dot0) = half(n, at, out);
        let (lf1, bad1, dot1) = half(n, at.add(32), out.add(32));
        let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        Masks {
            lf: join(lf0, lf1),
            bad: join(bad0, bad1),
            dot_line: join(dot0, dot1),
        }
    }

    /// The block at `p`, line by line in its masks: copies it, drops
    /// its stuffing dots and consumes its ordinary lines. Returns
    /// whether the run of ordinary lines ends in it.
    ///
    /// # Safety
    /// AVX2, POPCNT, BMI1 and LZCNT; `p` in `run`'s window, `p >= 1`,
    /// `p + 64 <= data.len()`, `run.line_start` exact.
    #[inline]
    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    pub(super) unsafe fn exact(n: Needles, data: &[u8], p: usize, run: &mut Run) -> bool {
        let dest = run.dest(p);
        match plain(n, data, p, dest) {
            Some(lf) => run.plain_block(lf, p),
            None => run.block(masks(n, data, p, dest), data, p),
        }
    }

    /// `blocks` blocks from `run.start`, each on its own; returns
    /// whether the run of ordinary lines ended.
    ///
    /// # Safety
    /// AVX2, POPCNT, BMI1 and LZCNT; the window holds `blocks` blocks
    /// of input and of output.
    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    pub(super) unsafe fn blocks(data: &[u8], run: &mut Run, blocks: usize) -> bool {
        let n = Needles::new();
        (0..blocks).any(|b| exact(n, data, run.start + 64 * b, run))
    }
}

mod avx512 {
    use super::*;

    /// Octets a group holds: four blocks.
    const GROUP: usize = 256;

    /// The octets the group path looks for, each in every lane.
    #[derive(Clone, Copy)]
    struct Needles {
        cr: __m512i,
        lf: __m512i,
        dot: __m512i,
    }

    impl Needles {
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        fn new() -> Needles {
            Needles {
                cr: _mm512_set1_epi8(b'\r' as i8),
                lf: _mm512_set1_epi8(b'\n' as i8),
                dot: _mm512_set1_epi8(b'.' as i8),
            }
        }
    }

    /// What [`group`] found in a group of four blocks.
    struct Group {
        /// Something other than ordinary content and stuffing dots: a
        /// CR or LF not in a CRLF pair, or a NUL.
        odd: bool,
        /// A dot that starts a line: a stuffing dot or the final dot.
        dots: bool,
        /// Each block's dots that start lines (bit `i`: the block's
        /// octet `i`).
        masks: [u64; 4],
        /// LFs in the group.
        lfs: u32,
    }

    /// The group of four blocks at `at`, stored as they are at `out`.
    /// Each block's masks are its own octets'; what the octet before
    /// each was (CR, LF) comes from the previous block's masks, and
    /// from memory for the first.
    ///
    /// # Safety
    /// AVX-512 F and BW, POPCNT; `at - 1 .. at + 256` readable, `out ..
    /// out + 256` writable.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,popcnt")]
    unsafe fn group(n: Needles, at: *const u8, out: *mut u8) -> Group {
        let before = *at.sub(1);
        let mut after_cr = u64::from(before == b'\r');
        let mut after_lf = u64::from(before == b'\n');
        let mut odd = 0u64;
        let mut dots = 0u64;
        let mut masks = [0u64; 4];
        let mut lfs = 0u32;
        let mut least = _mm512_set1_epi8(-1);
        for (i, mask) in masks.iter_mut().enumerate() {
            let v = _mm512_loadu_si512(at.add(64 * i) as *const __m512i);
            _mm512_storeu_si512(out.add(64 * i) as *mut __m512i, v);
            let is_lf = _mm512_cmpeq_epi8_mask(v, n.lf);
            let is_cr = _mm512_cmpeq_epi8_mask(v, n.cr);
            let is_dot = _mm512_cmpeq_epi8_mask(v, n.dot);
            odd |= is_lf ^ (is_cr << 1 | after_cr);
            *mask = is_dot & (is_lf << 1 | after_lf);
            dots |= *mask;
            after_cr = is_cr >> 63;
            after_lf = is_lf >> 63;
            lfs += is_lf.count_ones();
            least = _mm512_min_epu8(least, v);
        }
        odd |= _mm512_testn_epi8_mask(least, least);
        Group {
            odd: odd != 0,
            dots: dots != 0,
            masks,
            lfs,
        }
    }

    /// The group at `p`, which [`group`] stored at `run.dest(p)` and
    /// found holds ordinary content and the dots that start lines in
    /// `dots`: if none of them is the final dot (a dot followed by CR)
    /// or at the end of the input, drops them from the output and
    /// returns true; otherwise changes nothing and returns false.
    ///
    /// # Safety
    /// AVX-512 F and BW; `p` in `run`'s window with the whole group
    /// after it.
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn drop_dots(dots: [u64; 4], data: &[u8], p: usize, run: &mut Run) -> bool {
        for (i, &d) in dots.iter().enumerate() {
            let mut d = d;
            while d != 0 {
                let q = p + 64 * i + d.trailing_zeros() as usize;
                d &= d - 1;
                if data.get(q + 1).is_none_or(|&c| c == b'\r') {
                    return false;
                }
            }
        }
        // Each block again, as many octets further left as there were
        // dots before it; then, for each of its dots, what follows the
        // dot in the block, one octet further left again.
        let out = run.dest(p);
        let mut cut = 0;
        for (i, &d) in dots.iter().enumerate() {
            let at = data.as_ptr().add(p + 64 * i);
            let dest = out.add(64 * i - cut);
            if cut != 0 {
                let v = _mm512_loadu_si512(at as *const __m512i);
                _mm512_storeu_si512(dest as *mut __m512i, v);
            }
            let mut d = d;
            let mut here = 0;
            while d != 0 {
                let b = d.trailing_zeros() as usize;
                d &= d - 1;
                let rest = u64::MAX.checked_shr(b as u32 + 1).unwrap_or(0);
                let tail = _mm512_maskz_loadu_epi8(rest, at.add(b + 1) as *const i8);
                _mm512_mask_storeu_epi8(dest.add(b - here) as *mut i8, rest, tail);
                here += 1;
                run.last_cut = Some(p + 64 * i + b);
            }
            cut += here;
        }
        run.cuts += cut;
        true
    }

    /// `blocks` blocks from `run.start`: groups of ordinary content and
    /// stuffing dots whole, with the line start found only when it is
    /// needed; any other group (or one a line might be too long in)
    /// block by block in [`avx2::exact`]. Returns whether the run of
    /// ordinary lines ended.
    ///
    /// # Safety
    /// AVX-512 F and BW, AVX2, POPCNT, BMI1 and LZCNT; the window holds
    /// `blocks` blocks of input and of output.
    #[target_feature(enable = "avx512f,avx512bw,avx2,popcnt,bmi1,lzcnt")]
    pub(super) unsafe fn blocks(data: &[u8], run: &mut Run, blocks: usize) -> bool {
        let narrow = avx2::Needles::new();
        let n = Needles::new();
        let end = run.start + 64 * blocks;
        let max = run.limit.unwrap_or(usize::MAX);
        // No line start is before `floor`; `run.line_start` is the line
        // start only when `exact`, and otherwise after the last LF at
        // or after `floor`, where there is one.
        let mut floor = run.start;
        let mut exact = true;
        let mut p = run.start;
        let mut done = false;
        while p < end {
            // A whole group, if every line ending in it is within the
            // limit whatever it holds: the first starts at or after
            // `floor`, the others in the group.
            if end - p >= GROUP && p + GROUP - floor <= max {
                let g = group(n, data.as_ptr().add(p), run.dest(p));
                if !g.odd && (!g.dots || drop_dots(g.masks, data, p, run)) {
                    run.lines += u64::from(g.lfs);
                    if g.lfs != 0 {
                        floor = p;
                        exact = false;
                    }
                    p += GROUP;
                    continue;
                }
            }
            if !exact {
                run.line_start = after_last_lf(data, floor, p);
                exact = true;
            }
            let stop = (p + GROUP).min(end);
            while p < stop {
                if avx2::exact(narrow, data, p, run) {
                    done = true;
                    break;
                }
                p += 64;
            }
            if done {
                break;
            }
            floor = run.line_start;
        }
        if !exact {
            run.line_start = after_last_lf(data, floor, p);
        }
        done
    }

    /// The octet after the last LF in `data[from..to]`, which has one.
    fn after_last_lf(data: &[u8], from: usize, to: usize) -> usize {
        let last = memchr::memrchr(b'\n', &data[from..to])
            .expect("a group counted as holding an LF holds one");
        from + last + 1
    }
}
