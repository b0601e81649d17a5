//! What every instruction set shares: a window of output, where its run of
//! ordinary lines stands, and how one 64-octet block's masks move it on.

use super::Engine;

/// One window of at most `window` octets of input from `start` (a line
/// start after LF): returns the new line start, the lines consumed and
/// whether the run of ordinary lines ended (rather than the window or the
/// input).
///
/// # Safety
/// The machine runs `engine` ([`Engine::detect`]); `1 <= start`,
/// `data[start - 1] == b'\n'`.
pub(super) unsafe fn window(
    engine: Engine,
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
    // Room for the window's blocks, and for the rest of the window past its
    // last whole block: a later window takes those octets, and if the room
    // for them were not here already, reserving it would double a large
    // message's output at its end.
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
    let done = engine.blocks(data, &mut run, blocks);
    // Cuts at or after the line start belong to the unfinished line.
    let dropped = run.cuts - usize::from(run.last_cut.is_some_and(|q| q >= run.line_start));
    content.set_len(base + (run.line_start - start) - dropped);
    (run.line_start, run.lines, done)
}

/// Where a window's run stands.
pub(super) struct Run {
    /// The window's first octet: a line start.
    pub(super) start: usize,
    /// Where the window's output begins.
    pub(super) out: *mut u8,
    /// The longest line allowed (as [`super::ordinary_lines`]).
    pub(super) limit: Option<usize>,
    /// Lines consumed.
    pub(super) lines: u64,
    /// The line being read starts here; every line before it is consumed.
    pub(super) line_start: usize,
    /// Stuffing dots dropped so far.
    pub(super) cuts: usize,
    /// Where the last one was.
    pub(super) last_cut: Option<usize>,
}

impl Run {
    /// Where the octet at `p` goes: `p`, less the dots dropped.
    ///
    /// # Safety
    /// `p` is in the window, at or after every dot dropped.
    #[inline(always)]
    pub(super) unsafe fn dest(&self, p: usize) -> *mut u8 {
        self.out.add(p - self.start - self.cuts)
    }

    /// The block at `p`, stored at `self.dest(p)`, holds only ordinary
    /// octets (no bad octet, no dot-line) and its LFs are `lf`: consumes
    /// the lines that end in it. Returns whether the run ends here (the
    /// line still open may grow past the limit). What [`Run::block`] does
    /// with no bad octet and no dot-line, written out for the common case:
    /// through `block` the AVX2 path is 6 % slower (50.6 -> 53.8 µs for
    /// 1 MiB).
    #[inline(always)]
    pub(super) fn plain_block(&mut self, lf: u64, p: usize) -> bool {
        if let Some(max) = self.limit {
            let end = if lf != 0 {
                p + lf.trailing_zeros() as usize
            } else {
                p + 64
            };
            if end - self.line_start > max {
                return true;
            }
        }
        self.lines += u64::from(lf.count_ones());
        if lf != 0 {
            self.line_start = p + 63 - lf.leading_zeros() as usize + 1;
        }
        false
    }

    /// The block at `p`, stored at `self.dest(p)`, with masks `m`: drops
    /// its stuffing dots and consumes its ordinary lines, up to the first
    /// octet that ends the run. Returns whether the run ends in it.
    ///
    /// # Safety
    /// `p` in the window, `p + 64 <= data.len()`, `self.line_start` exact.
    #[inline(always)]
    pub(super) unsafe fn block(&mut self, m: Masks, data: &[u8], p: usize) -> bool {
        // The first octet of this block that ends the run, as a bit.
        let mut stop: u32 = 64;
        let mut done = false;
        if m.bad != 0 {
            stop = m.bad.trailing_zeros();
        }
        if let Some(max) = self.limit {
            // A line may be too long: leave it to the exact check.
            let first_lf = below(m.lf, stop);
            let end = if first_lf != 0 {
                p + first_lf.trailing_zeros() as usize
            } else {
                p + stop as usize
            };
            if end - self.line_start > max {
                stop = stop.min((self.line_start.max(p) - p) as u32);
                done = true;
            }
        }
        // Dot-lines before the stop: a stuffing dot to drop, or the final
        // dot (which ends the run).
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
                    // Shift the rest of the block's output left over the
                    // dot.
                    let here = self.dest(q);
                    let tail = p + 64 - (q + 1);
                    std::ptr::copy(here.add(1), here, tail);
                    self.cuts += 1;
                    self.last_cut = Some(q);
                }
            }
        }
        let lfs = below(m.lf, stop);
        self.lines += u64::from(lfs.count_ones());
        if lfs != 0 {
            self.line_start = p + 63 - lfs.leading_zeros() as usize + 1;
        }
        done || stop < 64
    }
}

/// One 64-octet block at `p`: bit `i` of each mask is about `p + i`.
#[derive(Clone, Copy)]
pub(super) struct Masks {
    /// LF.
    pub(super) lf: u64,
    /// Not part of an ordinary line: LF without CR before it, CR without
    /// LF after it (seen at the octet after), NUL.
    pub(super) bad: u64,
    /// A `.` that starts a line.
    pub(super) dot_line: u64,
}

/// Bits of `mask` below bit `n` (`n <= 64`).
#[inline(always)]
fn below(mask: u64, n: u32) -> u64 {
    if n >= 64 {
        mask
    } else {
        mask & ((1u64 << n) - 1)
    }
}
