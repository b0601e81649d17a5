//! The content fast path: whole runs of ordinary content lines at once.
//!
//! Most of a batch is content lines that need nothing but copying: each
//! ends in CRLF, holds no other CR, LF or NUL, is within the line limit and
//! is not the final `.`. [`ordinary_lines`] finds where such a run ends 64
//! octets at a time with AVX2 (run-time detection), copies it into the
//! message as it goes and drops the stuffing dots (RFC 5321 §4.5.2). It
//! stops at the start of the first line that is anything else: the final
//! dot, a bare CR or LF, a NUL, a line that may be over the limit, or a
//! line whose end has not arrived. The per-line state machine in
//! `decode.rs` takes that line, with its exact errors; so the fast path
//! decides nothing the slow one would not, and where AVX2 is missing (or on
//! other architectures, wasm included) it simply consumes nothing.

/// What [`ordinary_lines`] consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Position after the last line consumed (a line start), `>= start`.
    pub(crate) consumed: usize,
    /// Lines consumed.
    pub(crate) lines: u64,
}

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
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("lzcnt")
        {
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
                // SAFETY: the CPU has the features (checked above); `before` is a
                // line start preceded by LF (the precondition, or the last
                // window's end).
                let (consumed, lines, done) =
                    unsafe { avx2::window(data, before, window, limit, content) };
                out.consumed = consumed;
                out.lines += lines;
                if done || consumed == before {
                    return out;
                }
            }
        }
    }
    let _ = content;
    nothing
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_storeu_si256,
        _mm256_testz_si256, _mm256_xor_si256,
    };

    /// The octets [`block`] looks for, each in every lane.
    #[derive(Clone, Copy)]
    struct Needles {
        cr: __m256i,
        lf: __m256i,
        dot: __m256i,
        zero: __m256i,
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
        let dot_line = _mm256_and_si256(_mm256_cmpeq_epi8(v, n.dot), _mm256_cmpeq_epi8(prev, n.lf));
        (
            _mm256_movemask_epi8(is_lf) as u32,
            _mm256_movemask_epi8(bad) as u32,
            _mm256_movemask_epi8(dot_line) as u32,
        )
    }

    /// The common case first: stores the block at `p` at `out` and returns
    /// its LF mask if it holds nothing but ordinary octets (no bad octet,
    /// no dot-line); `None` sends it to [`block`].
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

    /// Reads the block at `p` (and the octet before it) and stores its 64
    /// octets at `out`.
    ///
    /// # Safety
    /// AVX2; `p >= 1`, `p + 64 <= data.len()`; `out` valid for 64 writes.
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

    /// One window of at most `window` octets of input from `start` (a line
    /// start after LF): returns the new line start, the lines consumed and
    /// whether the run of ordinary lines ended (rather than the window or
    /// the input).
    ///
    /// # Safety
    /// AVX2, POPCNT, BMI1 and LZCNT; `1 <= start`,
    /// `data[start - 1] == b'\n'`.
    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    pub(super) unsafe fn window(
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
        content.reserve(blocks * 64);
        let base = content.len();
        let out = content.as_mut_ptr().add(base);
        let mut lines = 0u64;
        // The line being read starts at `line_start`; every line before it
        // is consumed.
        let mut line_start = start;
        // Stuffing dots dropped so far, and where the last one was.
        let mut cuts = 0usize;
        let mut last_cut = None;
        let mut done = false;
        let needles = Needles {
            cr: _mm256_set1_epi8(b'\r' as i8),
            lf: _mm256_set1_epi8(b'\n' as i8),
            dot: _mm256_set1_epi8(b'.' as i8),
            zero: _mm256_setzero_si256(),
        };
        for b in 0..blocks {
            let p = start + 64 * b;
            // Where this block's octets go: `p`, less the dots dropped.
            let dest = out.add(p - start - cuts);
            if let Some(lf) = plain(needles, data, p, dest) {
                // Only whole ordinary lines end here; the one still open
                // may grow past the limit.
                if let Some(max) = limit {
                    let end = if lf != 0 {
                        p + lf.trailing_zeros() as usize
                    } else {
                        p + 64
                    };
                    if end - line_start > max {
                        done = true;
                        break;
                    }
                }
                lines += u64::from(lf.count_ones());
                if lf != 0 {
                    line_start = p + 63 - lf.leading_zeros() as usize + 1;
                }
                continue;
            }
            let m = block(needles, data, p, dest);
            // The first octet of this block that ends the run, as a bit.
            let mut stop: u32 = 64;
            if m.bad != 0 {
                stop = m.bad.trailing_zeros();
            }
            if let Some(max) = limit {
                // A line may be too long: leave it to the exact check.
                let first_lf = below(m.lf, stop);
                let end = if first_lf != 0 {
                    p + first_lf.trailing_zeros() as usize
                } else {
                    p + stop as usize
                };
                if end - line_start > max {
                    stop = stop.min((line_start.max(p) - p) as u32);
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
                        let here = out.add(q - start - cuts);
                        let tail = p + 64 - (q + 1);
                        std::ptr::copy(here.add(1), here, tail);
                        cuts += 1;
                        last_cut = Some(q);
                    }
                }
            }
            let lfs = below(m.lf, stop);
            lines += u64::from(lfs.count_ones());
            if lfs != 0 {
                line_start = p + 63 - lfs.leading_zeros() as usize + 1;
            }
            if stop < 64 {
                done = true;
            }
            if done {
                break;
            }
        }
        // Cuts at or after the line start belong to the unfinished line.
        let dropped = cuts - usize::from(last_cut.is_some_and(|q| q >= line_start));
        content.set_len(base + (line_start - start) - dropped);
        (line_start, lines, done)
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

    /// `batch` decodes to the same messages, or fails with the same error
    /// (class, line, offset, text), with and without the fast path, whole
    /// and fed in chunks of `chunk` octets.
    fn same_as_line_by_line(batch: &[u8], chunk: usize) {
        for mode in [DecodeMode::Strict, DecodeMode::Lenient] {
            let options = DecodeOptions { mode };
            let reference = decode_line_by_line(batch, &options);
            assert_eq!(decode(batch, &options), reference, "{mode:?}, whole");
            let mut decoder = Decoder::new(options);
            let mut streamed = Ok(());
            for piece in batch.chunks(chunk.max(1)) {
                streamed = decoder.feed(piece);
                if streamed.is_err() {
                    break;
                }
            }
            let streamed = streamed.and_then(|()| decoder.finish());
            assert_eq!(streamed, reference, "{mode:?}, chunks of {chunk}");
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
        let messages = decode(&batch, &DecodeOptions::default()).unwrap();
        assert_eq!(messages.len(), 2_001);
        assert_eq!(messages[0].content, big);
        assert!(
            messages[0].content.capacity() <= big.len() + (64 << 10),
            "{} for {}",
            messages[0].content.capacity(),
            big.len()
        );
        for m in &messages[1..] {
            assert_eq!(m.content, small);
            assert!(m.content.capacity() <= 64 << 10, "{}", m.content.capacity());
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
