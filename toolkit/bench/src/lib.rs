//! `deepmail-bench`: what `deepmail bench`, `deepmail demo` and `deepmail
//! roundtrip` run, as a library the CLI calls. Each harness takes its
//! clap arguments (so `--help` is defined once, here) and the [`Stages`]
//! (the WebAssembly host and the plugin chosen for each stage), prints its
//! report, writes its files and returns an [`Outcome`] or a typed
//! [`BenchError`].
//!
//! * [`bench`]: `bench gateway`, `fragment`, `link`, `queue`, `compress`,
//!   `contact`; each bench's module documentation says what it measures
//!   and how.
//! * [`demo`]: Earth to Moon through two gateways on this machine.
//! * [`roundtrip`]: one email through every stage plugin and back.
//!
//! The helpers the CLI's other commands share with them live here too:
//! [`output`] (atomic files), [`mail`] (envelopes from headers, messages
//! as JSON), [`bundle_options`] (primary-block flags), [`logging`],
//! [`read_input`], [`bundles`] (`fragment` and `inspect` on files),
//! [`next_hops`] (`resolve`'s answer), [`reassembly`] (bundle files into
//! their ADU), [`send`] (the sender for one next hop and the retry rounds
//! of `send`), and
//! [`Stages::plugin_list`] (`deepmail plugins`).

pub mod bench;
pub mod bundle_options;
pub mod bundles;
pub mod demo;
pub mod logging;
pub mod mail;
pub mod next_hops;
pub mod output;
pub mod reassembly;
pub mod roundtrip;
pub mod send;

mod compress;
mod contact;
mod error;
mod fragment;
mod harness;
mod link;
mod plugins;
mod queue;
mod stages;
mod svg;

pub use crate::error::{BenchError, CellFailure};
pub use crate::plugins::PluginList;
pub use crate::stages::{read_input, Stages};

/// How a run that completed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything measured checked out.
    Passed,
    /// The run completed but found a failure it reports (a cell that
    /// failed its check, content changed in transit).
    Failed,
}

impl From<Outcome> for std::process::ExitCode {
    fn from(outcome: Outcome) -> std::process::ExitCode {
        match outcome {
            Outcome::Passed => std::process::ExitCode::SUCCESS,
            Outcome::Failed => std::process::ExitCode::FAILURE,
        }
    }
}
