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

#![warn(missing_docs)]

mod bp6;
mod check;
mod external;
mod protocol;
mod report;
mod runner;
mod vectors;
mod wasm;

pub use crate::external::ExternalImplementation;
pub use crate::protocol::{Implementation, ImplementationInfo, Request, Response};
pub use crate::report::{CaseReport, Report, Status, Summary};
pub use crate::runner::{run, ExpectedFailures, RunOptions};
pub use crate::vectors::{Case, Manifest, Suite, SuiteError};
pub use crate::wasm::{bundle_info_json, crc_name, WasmImplementation};
