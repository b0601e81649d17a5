//! Bundle Protocol version 7 ([RFC 9171]) bundles carrying one application
//! data unit (ADU) each: building, parsing and validating, fragmentation
//! (§5.8) and reassembly (§5.9) with memory limits.
//! Bundles are authenticated with BPSec block integrity blocks ([RFC 9172])
//! in the BIB-HMAC-SHA2 context ([RFC 9173] §3): [`add_bib`],
//! [`fragment_adu_signed`] (a BIB on every fragment) and [`verify_bibs`].
//!
//! This crate is fully deterministic: it contains no networking code and
//! reads no clock. Time is an argument (`now`, a DTN time in milliseconds
//! since 2000-01-01T00:00:00Z), the reassembler's memory is bounded by
//! [`ReassemblyLimits`] given to it, and the same input always gives the same
//! output. It has no file system, thread or randomness needs either, so it
//! compiles unchanged for `wasm32-wasip2`, where deepmail's default
//! `fragmenter` plugin runs it.
//!
//! Bundles are read with a small CBOR reader of its own that never
//! allocates from a length in the input before checking it against what
//! remains, returns payloads as slices of the input, and reports every
//! problem as a [`BundleError`] with a stable class ([`BundleError::code`],
//! the `fragmenter` classes of `vectors/README.md`), the byte offset and the
//! RFC section.
//!
//! ```
#![doc = include_str!("../examples/fragment_reassemble.rs")]
//! ```
//!
//! [RFC 9171]: https://www.rfc-editor.org/rfc/rfc9171
//! [RFC 9172]: https://www.rfc-editor.org/rfc/rfc9172
//! [RFC 9173]: https://www.rfc-editor.org/rfc/rfc9173

#![warn(missing_docs)]
// One `unsafe` in the crate: the call into the SSE4.2 CRC-32C, made only
// after run-time detection (`crc32c.rs`).
#![deny(unsafe_code)]

mod bpsec;
mod bundle;
mod cbor;
mod checksum;
mod crc32c;
mod eid;
mod encode;
mod error;
mod reassembly;
#[cfg(test)]
mod testutil;

pub use crate::bpsec::{
    add_bib, fragment_adu_signed, verify_bibs, BibCheck, BibKey, BibSigner, ShaVariant,
    UnknownShaVariant, CONTEXT_BIB_HMAC_SHA2, SCOPE_ALL, SCOPE_PRIMARY, SCOPE_SECURITY_HEADER,
    SCOPE_TARGET_HEADER,
};
pub use crate::bundle::{
    inspect, parse_allowing_missing_primary_crc, BlockInfo, Bundle, BundleId, BundleInfo,
    ParseOptions,
};
pub use crate::bundle::{
    BLOCK_DELETE_IF_UNPROCESSABLE, BLOCK_REPLICATE, BLOCK_REPORT_IF_UNPROCESSABLE,
    FLAGS_STATUS_REPORTS, FLAG_ADMIN_RECORD, FLAG_IS_FRAGMENT, FLAG_MUST_NOT_FRAGMENT,
};
pub use crate::checksum::CrcType;
pub use crate::crc32c::{
    crc32c, implementation as crc32c_implementation, provide_crc32c, update as crc32c_update,
};
pub use crate::eid::Eid;
pub use crate::encode::{build, fragment, fragment_adu, BundleSpec};
pub use crate::error::{BundleError, ErrorKind};
pub use crate::reassembly::{DeliveredAdu, PendingStats, Reassembler, ReassemblyLimits};

/// DTN time (RFC 9171 §4.2.6): milliseconds since 2000-01-01T00:00:00Z,
/// not counting leap seconds.
pub mod dtn_time {
    /// Milliseconds from the Unix epoch to the DTN epoch.
    pub const UNIX_EPOCH_OFFSET_MS: u64 = 946_684_800_000;

    /// DTN time for a Unix time in milliseconds; 0 (the "unknown time"
    /// value) for instants before the DTN epoch.
    pub fn from_unix_ms(ms: u64) -> u64 {
        ms.saturating_sub(UNIX_EPOCH_OFFSET_MS)
    }

    /// Unix time in milliseconds for a DTN time.
    pub fn to_unix_ms(dtn_ms: u64) -> u64 {
        dtn_ms.saturating_add(UNIX_EPOCH_OFFSET_MS)
    }
}
