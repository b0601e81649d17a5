//! The content fast path: whole runs of ordinary content lines at once.
//!
//! Most of a batch is content lines that need nothing but copying: each
//! ends in CRLF, holds no other CR, LF or NUL, is within the line limit and
//! is not the final `.`. [`ordinary_lines`] finds where such a run ends
//! with vector instructions (run-time detection), copies it into the
//! message as it goes and drops the stuffing dots (RFC 5321 §4.5.2). It
//! stops at the start of the first line that is anything else: the final
//! dot, a bare CR or LF, a NUL, a line that may be over the limit, or a
//! line whose end has not arrived. The per-line state machine in
//! `decode.rs` takes that line, with its exact errors; so the fast path
//! decides nothing the slow one would not, and where AVX2 is missing (or on
//! other architectures, wasm included) it simply consumes nothing.
//!
//! With AVX2, each 64-octet block is classified and its lines are consumed
//! one block at a time (the line start and the line limit checked in each).
//! With AVX-512 (F and BW), groups of four blocks go whole: one branch per
//! 256 octets, the lines counted, the line start found only when something
//! needs it, the line limit judged for the group at once (no line ending in
//! it can be longer than the distance from the last group with an LF), and
//! stuffing dots dropped by a second pass over just that group. A group
//! with anything else, or where a line might be too long, goes block by
//! block as with AVX2.

/// What [`ordinary_lines`] consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Position after the last line consumed (a line start), `>= start`.
    pub(crate) consumed: usize,
    /// Lines consumed.
    pub(crate) lines: u64,
}

/// The environment variable that lowers the fast path's instruction set
/// for the whole process: `avx2` (no AVX-512), `none` (line by line
/// only). Read once; unset or any other value: the best the CPU has. For
/// comparing the levels on one machine, and for a CPU whose AVX-512 is
/// slower than its AVX2.
pub const SIMD_VAR: &str = "DEEPMAIL_BSMTP_SIMD";

/// The first piece of output reserved for a message: most mail is
/// smaller.
const MIN_WINDOW: usize = 8 << 10;

/// The most reserved at once for a message that outgrew [`MIN_WINDOW`]:
/// the rest of the input, up to this (the decoder trims what is left
/// over when the message ends).
const MAX_WINDOW: usize = 64 << 20;

/// Consumes the ordinary content lines of `data` from `start`, appending
/// them, without their stuffing dots, to `content`.
///
/// `start` must be a line start with the line end of the previous line
/// just before it (`data[start - 1] == b'\n'`). `limit` is the longest
/// content line allowed, stuffing dot excepted (`None`: no limit). A line
/// that might exceed it is left to the caller, as is everything after it.
pub(crate) fn ordinary_lines(
    data: &[u8],
    start: usize,
    limit: Option<usize>,
    content: &mut Vec<u8>,
) -> Scanned {
    let nothing = Scanned {
        consumed: start,
        lines: 0,
    };
    if start == 0 || data.get(start - 1) != Some(&b'\n') || limit.is_some_and(|m| m < 64) {
        return nothing;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(level) = x86::Level::detect() {
        let mut out = Scanned {
            consumed: start,
            lines: 0,
        };
        // Windows of output, growing with the message, so a batch of
        // many small messages does not reserve its whole length for each.
        loop {
            // 8 KiB first; a message larger than that gets room for
            // the rest of the input at once (one allocation instead of
            // a doubling series, each copying what came before).
            let window = if content.len() < MIN_WINDOW {
                MIN_WINDOW
            } else {
                (data.len() - out.consumed).clamp(MIN_WINDOW, MAX_WINDOW)
            };
            let before = out.consumed;
            // SAFETY: the CPU has the level's features (detected); `before`
            // is a line start preceded by LF (the precondition, or the last
            // window's end).
            let (consumed, lines, done) =
                unsafe { x86::window(level, data, before, window, limit, content) };
            out.consumed = consumed;
            out.lines += lines;
            if done || consumed == before {
                return out;
            }
        }
    }
    let _ = content;
    nothing
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_storeu_si256, _mm256_testz_si256, _mm256_xor_si256, _mm512_cmpeq_epi8_mask,
        _mm512_loadu_si512, _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_min_epu8,
        _mm512_set1_epi8, _mm512_storeu_si512, _mm512_testn_epi8_mask,
    };

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

    /// One window of at most `window` octets of input from `start` (a line
    /// start after LF): returns the new line start, the lines consumed and
    /// whether the run of ordinary lines ended (rather than the window or
    /// the input).
    ///
    /// # Safety
    /// The CPU has `level`'s features ([`Level::detect`]); `1 <= start`,
    /// `data[start - 1] == b'\n'`.
    pub(super) unsafe fn window(
        level: Level,
        data: &[u8],
        start: usize,
        window: usize,
        limit: Option<usize>,
        content: &mut Vec<u8>,
    ) -> (usize, u64, bool) {
        let blocks = ((data.len() - start) / 64).min(window.div_ceil(64));
        if blocks == 0 {
            return (start, 0, true);
        }
        // Room for the window's blocks, and for the rest of the window
        // past its last whole block: a later window takes those octets,
        // and if the room for them were not here already, reserving it
        // would double a large message's output at its end.
        content.reserve((blocks * 64).max((data.len() - start).min(window)));
        let base = content.len();
        let mut run = Run {
            start,
            out: content.as_mut_ptr().add(base),
            limit,
            lines: 0,
            line_start: start,
            cuts: 0,
            last_cut: None,
        };
        let done = match level {
            Level::Avx512 => avx512::blocks(data, &mut run, blocks),
            Level::Avx2 => avx2::blocks(data, &mut run, blocks),
        };
        // Cuts at or after the line start belong to the unfinished line.
        let dropped = run.cuts - usize::from(run.last_cut.is_some_and(|q| q >= run.line_start));
        content.set_len(base + (run.line_start - start) - dropped);
        (run.line_start, run.lines, done)
    }

    /// Where a window's run stands.
    struct Run {
        /// The window's first octet: a line start.
        start: usize,
        /// Where the window's output begins.
        out: *mut u8,
        /// The longest line allowed (as [`super::ordinary_lines`]).
        limit: Option<usize>,
        /// Lines consumed.
        lines: u64,
        /// The line being read starts here; every line before it is
        /// consumed.
        line_start: usize,
        /// Stuffing dots dropped so far.
        cuts: usize,
        /// Where the last one was.
        last_cut: Option<usize>,
    }

    impl Run {
        /// Where the octet at `p` goes: `p`, less the dots dropped.
        ///
        /// # Safety
        /// `p` is in the window, at or after every dot dropped.
        unsafe fn dest(&self, p: usize) -> *mut u8 {
            self.out.add(p - self.start - self.cuts)
        }
    }

    mod avx2 {
        use super::*;

        /// The octets [`block`] looks for, each in every lane.
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

        /// One 64-octet block at `p`: bit `i` of each mask is about `p + i`.
        struct Masks {
            /// LF.
            lf: u64,
            /// Not part of an ordinary line: LF without CR before it, CR
            /// without LF after it (seen at the octet after), NUL.
            bad: u64,
            /// A `.` that starts a line.
            dot_line: u64,
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
            let dot_line =
                _mm256_and_si256(_mm256_cmpeq_epi8(v, n.dot), _mm256_cmpeq_epi8(prev, n.lf));
            (
                _mm256_movemask_epi8(is_lf) as u32,
                _mm256_movemask_epi8(bad) as u32,
                _mm256_movemask_epi8(dot_line) as u32,
            )
        }

        /// The common case first: stores the block at `p` at `out` and
        /// returns its LF mask if it holds nothing but ordinary octets (no
        /// bad octet, no dot-line); `None` sends it to [`block`].
        ///
        /// # Safety
        /// As [`block`].
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

        /// Reads the block at `p` (and the octet before it) and stores its
        /// 64 octets at `out`.
        ///
        /// # Safety
        /// AVX2; `p >= 1`, `p + 64 <= data.len()`; `out` valid for 64
        /// writes.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn block(n: Needles, data: &[u8], p: usize, out: *mut u8) -> Masks {
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

        /// Bits of `mask` below bit `n` (`n <= 64`).
        fn below(mask: u64, n: u32) -> u64 {
            if n >= 64 {
                mask
            } else {
                mask & ((1u64 << n) - 1)
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
            if let Some(lf) = plain(n, data, p, dest) {
                // Only whole ordinary lines end here; the one still open
                // may grow past the limit.
                if let Some(max) = run.limit {
                    let end = if lf != 0 {
                        p + lf.trailing_zeros() as usize
                    } else {
                        p + 64
                    };
                    if end - run.line_start > max {
                        return true;
                    }
                }
                run.lines += u64::from(lf.count_ones());
                if lf != 0 {
                    run.line_start = p + 63 - lf.leading_zeros() as usize + 1;
                }
                return false;
            }
            let m = block(n, data, p, dest);
            // The first octet of this block that ends the run, as a bit.
            let mut stop: u32 = 64;
            let mut done = false;
            if m.bad != 0 {
                stop = m.bad.trailing_zeros();
            }
            if let Some(max) = run.limit {
                // A line may be too long: leave it to the exact check.
                let first_lf = below(m.lf, stop);
                let end = if first_lf != 0 {
                    p + first_lf.trailing_zeros() as usize
                } else {
                    p + stop as usize
                };
                if end - run.line_start > max {
                    stop = stop.min((run.line_start.max(p) - p) as u32);
                    done = true;
                }
            }
            // Dot-lines before the stop: a stuffing dot to drop, or the
            // final dot (which ends the run).
            let mut dots = below(m.dot_line, stop);
            while dots != 0 {
                let bit = dots.trailing_zeros();
                dots &= dots - 1;
                let q = p + bit as usize;
                match (data.get(q + 1), data.get(q + 2)) {
                    (Some(b'\r'), Some(b'\n')) | (Some(b'\r'), None) | (None, _) => {
                        stop = bit;
                        break;
                    }
                    _ => {
                        // Shift the rest of the block's output left over
                        // the dot.
                        let here = run.dest(q);
                        let tail = p + 64 - (q + 1);
                        std::ptr::copy(here.add(1), here, tail);
                        run.cuts += 1;
                        run.last_cut = Some(q);
                    }
                }
            }
            let lfs = below(m.lf, stop);
            run.lines += u64::from(lfs.count_ones());
            if lfs != 0 {
                run.line_start = p + 63 - lfs.leading_zeros() as usize + 1;
            }
            done || stop < 64
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
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::decode_line_by_line;
    use crate::{decode, DecodeMode, DecodeOptions, Decoder};

    const HEAD: &[u8] = b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n";
    const HEAD_8BIT: &[u8] =
        b"MAIL FROM:<a@earth.example> BODY=8BITMIME\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n";

    #[cfg(target_arch = "x86_64")]
    thread_local! {
        /// The level [`super::x86::Level::detect`] answers on this thread
        /// (never above the CPU's), when set.
        pub(super) static FORCED: std::cell::Cell<Option<Option<super::x86::Level>>> =
            const { std::cell::Cell::new(None) };
    }

    /// Runs `f` at every level of the fast path this CPU has, and without
    /// it.
    fn at_every_level(mut f: impl FnMut(&str)) {
        #[cfg(target_arch = "x86_64")]
        {
            use super::x86::Level;
            let best = Level::detect();
            for level in [Some(Level::Avx512), Some(Level::Avx2), None] {
                if level > best {
                    continue;
                }
                FORCED.with(|f| f.set(Some(level)));
                f(&format!("{level:?}"));
            }
            FORCED.with(|f| f.set(None));
        }
        #[cfg(not(target_arch = "x86_64"))]
        f("portable");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_environment_only_lowers_the_level() {
        use super::x86::Level;
        let avx512 = Some(Level::Avx512);
        let avx2 = Some(Level::Avx2);
        assert_eq!(Level::choose(avx512, None), avx512);
        assert_eq!(Level::choose(avx512, Some("avx2")), avx2);
        assert_eq!(Level::choose(avx512, Some("none")), None);
        assert_eq!(Level::choose(avx512, Some("avx512")), avx512);
        assert_eq!(Level::choose(avx2, Some("avx512")), avx2);
        assert_eq!(Level::choose(avx2, Some("AVX-9000")), avx2);
        assert_eq!(Level::choose(None, Some("avx2")), None);
    }

    /// `batch` decodes to the same messages, or fails with the same error
    /// (class, line, offset, text), with and without the fast path (at
    /// every level), whole and fed in chunks of `chunk` octets.
    fn same_as_line_by_line(batch: &[u8], chunk: usize) {
        at_every_level(|level| same_at_this_level(batch, chunk, level));
    }

    fn same_at_this_level(batch: &[u8], chunk: usize, level: &str) {
        for mode in [DecodeMode::Strict, DecodeMode::Lenient] {
            let options = DecodeOptions { mode };
            let reference = decode_line_by_line(batch, &options);
            assert_eq!(
                decode(batch, &options),
                reference,
                "{level}, {mode:?}, whole"
            );
            let mut decoder = Decoder::new(options);
            let mut streamed = Ok(());
            for piece in batch.chunks(chunk.max(1)) {
                streamed = decoder.feed(piece);
                if streamed.is_err() {
                    break;
                }
            }
            let streamed = streamed.and_then(|()| decoder.finish());
            assert_eq!(streamed, reference, "{level}, {mode:?}, chunks of {chunk}");
        }
    }

    /// Content of `lines`, each `len` octets of text (dot first when
    /// `dot`), with CRLF.
    fn text(lines: &[(usize, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, &(len, dot)) in lines.iter().enumerate() {
            if dot {
                out.push(b'.');
            }
            out.extend((0..len).map(|i| b'a' + ((n + i) % 26) as u8));
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn a_long_message_with_stuffing_is_copied_exactly() {
        let lines: Vec<(usize, bool)> = (0..20_000).map(|n| (n % 120 + 1, n % 7 == 0)).collect();
        let body = text(&lines);
        let mut batch = HEAD.to_vec();
        batch.extend_from_slice(&body);
        batch.extend_from_slice(b".\r\nQUIT\r\n");
        let messages = decode(&batch, &DecodeOptions::default()).unwrap();
        assert_eq!(messages.len(), 1);
        let unstuffed: Vec<u8> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .flat_map(|l| {
                let l = l.strip_prefix(b".").unwrap_or(l);
                l.iter().copied().chain([b'\n'])
            })
            .collect();
        assert_eq!(messages[0].content, unstuffed);
        same_as_line_by_line(&batch, 4093);
    }

    /// A large message reserves room for the rest of the input at once;
    /// what it does not use is given back when it ends, so a large message
    /// before many small ones holds no more than its own size, and each
    /// small one no more than the first window.
    #[test]
    fn a_message_keeps_no_more_room_than_it_needs() {
        let big = text(&vec![(70, false); 3_000]);
        let small = text(&[(40, false); 3]);
        let mut batch = HEAD.to_vec();
        batch.extend_from_slice(&big);
        batch.extend_from_slice(b".\r\n");
        for _ in 0..2_000 {
            batch.extend_from_slice(HEAD);
            batch.extend_from_slice(&small);
            batch.extend_from_slice(b".\r\n");
        }
        at_every_level(|level| {
            let messages = decode(&batch, &DecodeOptions::default()).unwrap();
            assert_eq!(messages.len(), 2_001, "{level}");
            assert_eq!(messages[0].content, big, "{level}");
            assert!(
                messages[0].content.capacity() <= big.len() + (64 << 10),
                "{level}: {} for {}",
                messages[0].content.capacity(),
                big.len()
            );
            for m in &messages[1..] {
                assert_eq!(m.content, small, "{level}");
                assert!(
                    m.content.capacity() <= 64 << 10,
                    "{level}: {}",
                    m.content.capacity()
                );
            }
        });
    }

    /// Consuming a large message window by window reserves its output
    /// once: the windows after the large one (the input's last octets,
    /// short of a whole block) fit in what it reserved.
    #[test]
    fn the_output_of_a_large_run_is_reserved_once() {
        for line in [74, 100, 200, 990] {
            let body = text(&vec![(line, false); (1 << 20) / line]);
            let mut data = HEAD.to_vec();
            let start = data.len();
            data.extend_from_slice(&body);
            at_every_level(|level| {
                let mut content = Vec::new();
                let mut pos = start;
                loop {
                    let run = super::ordinary_lines(&data, pos, Some(998), &mut content);
                    if run.consumed == pos {
                        break;
                    }
                    pos = run.consumed;
                }
                if level != "None" {
                    // All but what ends in the last part-block.
                    assert!(data.len() - pos < 64 + line + 2, "{level}, {line}: {pos}");
                }
                assert!(
                    content.capacity() <= body.len() + 64,
                    "{level}, lines of {line}: {} reserved for {}",
                    content.capacity(),
                    body.len()
                );
            });
        }
    }

    #[test]
    fn every_anomaly_is_left_to_the_line_by_line_decoder() {
        let lines: Vec<(usize, bool)> = (0..300).map(|n| (n % 90 + 1, n % 5 == 0)).collect();
        let body = text(&lines);
        // An anomaly at every position of the first 5,000 octets in turn.
        for at in (0..5_000.min(body.len())).step_by(7) {
            for bad in [&b"\r"[..], b"\n", b"\0", b".\r\n", b"\r\r\n", b"."] {
                let mut content = body[..at].to_vec();
                content.extend_from_slice(bad);
                content.extend_from_slice(&body[at..]);
                let mut batch = HEAD.to_vec();
                batch.extend_from_slice(&content);
                batch.extend_from_slice(b".\r\n");
                same_as_line_by_line(&batch, 1000);
            }
        }
    }

    #[test]
    fn lines_at_the_limit_are_judged_exactly() {
        for len in 990..1010 {
            for dot in [false, true] {
                for head in [HEAD, HEAD_8BIT] {
                    let mut lines = vec![(70, false); 40];
                    lines.insert(17, (len, dot));
                    let mut batch = head.to_vec();
                    batch.extend_from_slice(&text(&lines));
                    batch.extend_from_slice(b".\r\n");
                    same_as_line_by_line(&batch, 333);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random content over the octets that matter (CR, LF, NUL, dot)
        /// and text, in runs long enough to cross blocks and windows.
        #[test]
        fn fast_and_line_by_line_agree(
            pieces in proptest::collection::vec(
                prop_oneof![
                    8 => "[a-z ]{1,140}".prop_map(String::into_bytes),
                    6 => Just(b"\r\n".to_vec()),
                    2 => Just(b"\r\n.".to_vec()),
                    1 => Just(b"\r\n.\r\n".to_vec()),
                    1 => Just(b"\r".to_vec()),
                    1 => Just(b"\n".to_vec()),
                    1 => Just(b"\0".to_vec()),
                    1 => "[a-z]{900,1100}".prop_map(String::into_bytes),
                ],
                0..400,
            ),
            eight_bit in any::<bool>(),
            tail in prop_oneof![Just(&b".\r\n"[..]), Just(&b""[..]), Just(&b".\r\nQUIT\r\n"[..]), Just(&b"."[..])],
            chunk in 1usize..5000,
        ) {
            let mut batch = if eight_bit { HEAD_8BIT } else { HEAD }.to_vec();
            for p in &pieces {
                batch.extend_from_slice(p);
            }
            batch.extend_from_slice(b"\r\n");
            batch.extend_from_slice(tail);
            same_as_line_by_line(&batch, chunk);
        }
    }
}
