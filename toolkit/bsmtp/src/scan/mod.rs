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
//! decides nothing the slow one would not, and where there is no vector
//! engine (x86-64 without AVX2, other architectures, wasm built without
//! SIMD) it simply consumes nothing.
//!
//! With AVX2 (`x86.rs`), and with WebAssembly SIMD in the plugin build
//! (`wasm.rs`), each 64-octet block is classified and its lines are
//! consumed one block at a time (the line start and the line limit checked
//! in each; `run.rs`).
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
    if let Some(engine) = Engine::detect() {
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
            // SAFETY: the machine runs the engine (detected); `before` is
            // a line start preceded by LF (the precondition, or the last
            // window's end).
            let (consumed, lines, done) =
                unsafe { run::window(engine, data, before, window, limit, content) };
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

/// The vector instructions the fast path runs on.
#[derive(Debug, Clone, Copy)]
enum Engine {
    /// x86-64 at this level.
    #[cfg(target_arch = "x86_64")]
    X86(x86::Level),
    /// WebAssembly's 128-bit SIMD, which the build enabled.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Wasm,
}

impl Engine {
    /// What this machine runs, if anything.
    fn detect() -> Option<Engine> {
        #[cfg(target_arch = "x86_64")]
        return x86::Level::detect().map(Engine::X86);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Some(Engine::Wasm);
        #[allow(unreachable_code)]
        None
    }

    /// `blocks` blocks from `run.start`; returns whether the run of
    /// ordinary lines ended.
    ///
    /// # Safety
    /// The machine runs `self`; the window holds `blocks` blocks of input
    /// and of output.
    #[cfg_attr(
        not(any(
            target_arch = "x86_64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )),
        allow(unused_variables)
    )]
    unsafe fn blocks(self, data: &[u8], run: &mut run::Run, blocks: usize) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::X86(level) => x86::blocks(level, data, run, blocks),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Engine::Wasm => wasm::blocks(data, run, blocks),
        }
    }
}

// Without a vector engine (other architectures, wasm without SIMD),
// nothing calls into it.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )),
    allow(dead_code)
)]
mod run;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;
