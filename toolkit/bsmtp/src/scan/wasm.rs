//! WebAssembly's 128-bit SIMD, for builds that enable it (the plugins are
//! built with `+simd128`): the AVX2 path's blocks, 16 octets a vector.

use core::arch::wasm32::{
    i8x16_bitmask, i8x16_eq, u8x16_splat, v128, v128_and, v128_any_true, v128_load, v128_or,
    v128_store, v128_xor,
};

use super::run::{Masks, Run};

/// The octets a block is classified by, each in every lane.
#[derive(Clone, Copy)]
struct Needles {
    cr: v128,
    lf: v128,
    dot: v128,
    zero: v128,
}

/// The four vectors of the block at `at` (and the octet before each),
/// stored at `out`: their LF vectors, and whether anything in them is not
/// ordinary (a bad octet, a dot-line).
///
/// # Safety
/// `at - 1 .. at + 64` readable, `out .. out + 64` writable.
#[inline(always)]
unsafe fn classify(n: Needles, at: *const u8, out: *mut u8) -> ([v128; 4], bool) {
    let mut lf = [n.zero; 4];
    let mut odd = n.zero;
    for (i, lf) in lf.iter_mut().enumerate() {
        let v = v128_load(at.add(16 * i) as *const v128);
        let prev = v128_load(at.add(16 * i).sub(1) as *const v128);
        v128_store(out.add(16 * i) as *mut v128, v);
        *lf = i8x16_eq(v, n.lf);
        let bad = v128_or(v128_xor(*lf, i8x16_eq(prev, n.cr)), i8x16_eq(v, n.zero));
        let dot_line = v128_and(i8x16_eq(v, n.dot), i8x16_eq(prev, n.lf));
        odd = v128_or(odd, v128_or(bad, dot_line));
    }
    (lf, v128_any_true(odd))
}

/// The 64-bit mask of four vectors' lanes.
#[inline(always)]
fn join(v: [v128; 4]) -> u64 {
    v.iter()
        .enumerate()
        .fold(0, |m, (i, &v)| m | u64::from(i8x16_bitmask(v)) << (16 * i))
}

/// The block at `p`: copies it, drops its stuffing dots and consumes its
/// ordinary lines. Returns whether the run of ordinary lines ends in it.
///
/// # Safety
/// `p` in `run`'s window, `p >= 1`, `p + 64 <= data.len()`.
#[inline(always)]
unsafe fn exact(n: Needles, data: &[u8], p: usize, run: &mut Run) -> bool {
    let at = data.as_ptr().add(p);
    let (lf, odd) = classify(n, at, run.dest(p));
    if !odd {
        return run.plain_block(join(lf), p);
    }
    // The rare block again, for the bad octets and the dot-lines apart.
    let mut bad = [n.zero; 4];
    let mut dot_line = [n.zero; 4];
    for i in 0..4 {
        let v = v128_load(at.add(16 * i) as *const v128);
        let prev = v128_load(at.add(16 * i).sub(1) as *const v128);
        bad[i] = v128_or(v128_xor(lf[i], i8x16_eq(prev, n.cr)), i8x16_eq(v, n.zero));
        dot_line[i] = v128_and(i8x16_eq(v, n.dot), i8x16_eq(prev, n.lf));
    }
    let m = Masks {
        lf: join(lf),
        bad: join(bad),
        dot_line: join(dot_line),
    };
    run.block(m, data, p)
}

/// `blocks` blocks from `run.start`, each on its own; returns whether the
/// run of ordinary lines ended.
///
/// # Safety
/// The window holds `blocks` blocks of input and of output.
pub(super) unsafe fn blocks(data: &[u8], run: &mut Run, blocks: usize) -> bool {
    let n = Needles {
        cr: u8x16_splat(b'\r'),
        lf: u8x16_splat(b'\n'),
        dot: u8x16_splat(b'.'),
        zero: u8x16_splat(0),
    };
    (0..blocks).any(|b| exact(n, data, run.start + 64 * b, run))
}
