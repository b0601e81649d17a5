//! BPv6 (RFC 5050) bundles behind deepmail's `fragmenter` contract.
//!
//! A pure, sans-IO codec: SDNVs (§4.1), the primary bundle block (§4.5.1)
//! with its dictionary of EID strings (§4.4, and the RFC 6260 CBHE
//! compressed form when the dictionary is empty), canonical blocks
//! (§4.5.2, the payload block and extension blocks kept verbatim),
//! fragmentation (§5.8) and reassembly (§5.9) bounded by limits.
//!
//! Time is an input. The `fragmenter` WIT speaks DTN milliseconds (since
//! 2000-01-01T00:00:00Z); RFC 5050 creation timestamps and lifetimes are
//! whole seconds since the same epoch. [`Spec`] and [`Primary`] carry
//! seconds; the conversions live in [`Spec::from_dtn_ms`] and
//! [`ms`]. Nothing here panics on any input: every length read from a
//! bundle is checked against the bytes present before it is used.
//!
//! `src/component.rs` (compiled for `wasm32` only) maps this onto the WIT.

use std::collections::BTreeMap;
use std::fmt;

mod bundle;
#[cfg(target_arch = "wasm32")]
mod component;
mod eid;
mod fragment;
mod inspect;
mod reassemble;
mod spec;

pub use bundle::*;
pub use eid::*;
pub use fragment::*;
pub use inspect::*;
pub use reassemble::*;
pub use spec::*;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure, with the kebab-case class the WIT's `stage-error.code`
/// carries (the fragmenter classes of `vectors/README.md`, plus
/// `malformed-sdnv` and `malformed-bundle` for BPv6's own encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: &'static str,
    pub message: String,
    /// Byte offset into the input, when there is one.
    pub offset: Option<u64>,
}

impl Error {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            offset: None,
        }
    }

    fn at(code: &'static str, offset: usize, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            offset: Some(offset as u64),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------
// SDNV (RFC 5050 §4.1, RFC 6256)
// ---------------------------------------------------------------------------

/// Self-delimiting numeric values: 7 bits per byte, most significant group
/// first, the top bit set on every byte but the last.
pub mod sdnv {
    use super::{Error, Result};

    /// Bytes `value` takes as an SDNV (at least 1, at most 10).
    pub fn len(value: u64) -> usize {
        let bits = 64 - value.leading_zeros() as usize;
        bits.div_ceil(7).max(1)
    }

    /// Appends `value` as an SDNV (shortest form).
    pub fn encode(value: u64, out: &mut Vec<u8>) {
        let n = len(value);
        for i in (0..n).rev() {
            let group = ((value >> (7 * i)) & 0x7f) as u8;
            out.push(if i == 0 { group } else { group | 0x80 });
        }
    }

    /// Reads the SDNV at `buf[at..]`: its value and the offset after it.
    /// Fails with `truncated` when the input ends inside it and with
    /// `malformed-sdnv` when its value does not fit in 64 bits. Leading
    /// zero groups (0x80) are accepted, as RFC 6256 lets decoders do.
    pub fn decode(buf: &[u8], at: usize) -> Result<(u64, usize)> {
        let mut value: u64 = 0;
        let mut i = at;
        loop {
            let Some(&byte) = buf.get(i) else {
                return Err(Error::at(
                    "truncated",
                    buf.len(),
                    format!("input ends inside the SDNV that starts at byte {at}"),
                ));
            };
            if value >> 57 != 0 {
                return Err(Error::at(
                    "malformed-sdnv",
                    at,
                    "SDNV value does not fit in 64 bits",
                ));
            }
            value = (value << 7) | u64::from(byte & 0x7f);
            i += 1;
            if byte & 0x80 == 0 {
                return Ok((value, i));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Flags (RFC 5050 §4.2, §4.3)
// ---------------------------------------------------------------------------

/// Bundle processing control flags (§4.2).
pub mod flags {
    pub const IS_FRAGMENT: u64 = 0x01;
    pub const ADMIN_RECORD: u64 = 0x02;
    pub const MUST_NOT_FRAGMENT: u64 = 0x04;
    pub const CUSTODY_REQUESTED: u64 = 0x08;
    pub const SINGLETON: u64 = 0x10;
    pub const APP_ACK: u64 = 0x20;
    /// Class of service (bits 7-8): 01 = normal priority.
    pub const PRIORITY_NORMAL: u64 = 0x80;
    pub const PRIORITY_MASK: u64 = 0x180;
    /// What [`crate::build`] sets: destination is a singleton, normal
    /// priority (pyD3TN's `DEFAULT_OUTGOING` too).
    pub const DEFAULT_OUTGOING: u64 = SINGLETON | PRIORITY_NORMAL;
}

/// Block processing control flags (§4.3).
pub mod block_flags {
    pub const REPLICATE: u64 = 0x01;
    pub const REPORT_IF_UNPROCESSABLE: u64 = 0x02;
    pub const DELETE_BUNDLE_IF_UNPROCESSABLE: u64 = 0x04;
    pub const LAST_BLOCK: u64 = 0x08;
    pub const DISCARD_IF_UNPROCESSABLE: u64 = 0x10;
    pub const FORWARDED_UNPROCESSED: u64 = 0x20;
    pub const HAS_EID_REFERENCES: u64 = 0x40;
}

/// Block type of the payload block (§4.5.2).
pub const PAYLOAD_BLOCK: u8 = 1;

// ---------------------------------------------------------------------------
// Time (RFC 5050 §4.5.1: seconds since 2000-01-01T00:00:00Z)
// ---------------------------------------------------------------------------

/// BPv6 seconds as DTN milliseconds (saturating: a hostile bundle can say
/// any 64-bit number of seconds).
pub fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

#[cfg(test)]
mod tests;
