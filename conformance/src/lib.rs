//! The deepmail conformance runner: feeds the language-neutral vectors in
//! `vectors/` to any implementation of a stage and reports, case by case,
//! what conforms.
//!
//! An implementation is anything that answers the adapter protocol of
//! `vectors/README.md` ("Adapter protocol"): one JSON request per case, one
//! JSON answer. Three kinds are built in:
//!
//! * [`WasmImplementation`]: a stage plugin (the embedded defaults or a
//!   user's `.wasm`) called through the deepmail host, limits and all;
//! * [`ExternalImplementation`]: any program speaking the protocol on
//!   stdin/stdout, so a Python or Go implementation can be checked;
//! * your own type implementing [`Implementation`].
//!
//! Where an operation's output is the implementation's choice (fragment
//! boundaries), the runner checks properties with the reference parser in
//! `deepmail-bundle` instead of comparing bytes.
//!
//! [`scaffold`] makes new plugin projects whose `make check` runs this
//! suite on them (`deepmail plugin new`).

#![warn(missing_docs)]

mod bp6;
mod check;
mod external;
mod mismatch;
mod protocol;
mod report;
mod runner;
pub mod scaffold;
mod vectors;
mod wasm;

pub use crate::external::{AdapterError, ExternalImplementation};
pub use crate::mismatch::Mismatch;
pub use crate::protocol::{Implementation, ImplementationInfo, Request, Response};
pub use crate::report::{xml_escape, CaseReport, Report, Status, Summary};
pub use crate::runner::{run, ExpectedFailures, ExpectedFailuresError, RunOptions};
pub use crate::vectors::{Case, Manifest, Suite, SuiteError};
pub use crate::wasm::{bundle_info_json, bundle_version, crc_name, WasmImplementation};

/// Checks a BPv6 (RFC 5050) fragmentation with the runner's own BPv6
/// reader, as the `fragment` vectors of `vectors/bundle6` are checked:
/// `whole` (the unfragmented bundle, whose payload must be `adu`) cut into
/// `fragments` of at most `mtu` octets that keep its header, carry the
/// §5.8 blocks where they belong and tile the payload exactly. The error
/// says which property failed, in one sentence. `deepmail bench fragment`
/// checks a BPv6 plugin's cells with it.
pub fn check_bp6_fragmentation(
    adu: &[u8],
    whole: &[u8],
    mtu: u64,
    fragments: &[Vec<u8>],
) -> Result<(), crate::Mismatch> {
    let parsed =
        bp6::parse(whole).map_err(|e| format!("the whole bundle does not parse as BPv6: {e}"))?;
    if parsed.payload() != adu {
        return Err(format!(
            "the whole bundle's payload ({} bytes) is not the ADU ({} bytes)",
            parsed.payload().len(),
            adu.len()
        )
        .into());
    }
    check::fragment6::judge(whole, mtu, fragments)
}
