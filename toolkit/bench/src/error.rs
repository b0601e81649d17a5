//! What can go wrong in a benchmark, the demo or the round trip, as types
//! a caller can match. Each variant's text is the sentence the CLI has
//! always printed; where a variant wraps a cause, the cause is its
//! `source()`, so `{:#}` through anyhow prints "context: cause" as before.

use std::path::PathBuf;

use deepmail_host::{HostError, LoadError, Stage, StageError};

/// Why a benchmark, the demo, the round trip or one of the shared helpers
/// (output files, `--plugin` choices, messages from files) failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An argument or input that cannot be used: the sentence names the
    /// flag or file and what would do instead.
    #[error("{0}")]
    BadArgument(String),
    /// An address given on the command line does not parse: `what`
    /// names the flag and the value.
    #[error("{what}")]
    Address {
        /// The flag, the value and what is expected.
        what: String,
        /// Why it does not parse.
        source: std::net::AddrParseError,
    },
    /// A next hop's name could not be resolved.
    #[error("cannot resolve {authority}")]
    Lookup {
        /// `host:port`.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP/3 without `--ca` and without system trust roots.
    #[error(
        "--h3 needs trust roots: give --ca PEM (none in {})",
        deepmail_host::SYSTEM_ROOTS
    )]
    NoRoots {
        /// Why the system's could not be read.
        source: std::io::Error,
    },
    /// Reading or writing a named file or directory failed: `what` is
    /// the sentence's start (`cannot read`, `writing`, ...).
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading standard input, writing standard output, or another I/O
    /// step that has no path (the async runtime, a listening socket).
    #[error("{what}")]
    System {
        /// What was being done, e.g. `writing to standard output`.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Reading one of several named inputs failed (`inspect`).
    #[error("reading {}", path.display())]
    Reading {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<BenchError>,
    },
    /// A directory to write into already holds files.
    #[error("{} already exists and is not empty; choose a new directory", .0.display())]
    DirectoryNotEmpty(PathBuf),
    /// The WebAssembly host could not start.
    #[error("starting the WebAssembly host")]
    Host(#[source] HostError),
    /// No plugin serves a stage and none was chosen.
    #[error("no plugin for the {stage} stage: pass --plugin {stage}=PATH")]
    NoPlugin {
        /// The stage.
        stage: Stage,
    },
    /// A plugin could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin could not be loaded while warming the compile cache.
    #[error("loading {plugin}")]
    Warm {
        /// The plugin, as `builtin:<name>`.
        plugin: String,
        /// Why.
        source: LoadError,
    },
    /// A plugin could not be loaded to describe it (`plugins`).
    #[error("loading {plugin}")]
    Describe {
        /// The plugin, as `builtin:<name>` or its path.
        plugin: String,
        /// Why.
        source: LoadError,
    },
    /// The fragmenter to measure is not one (or cannot be loaded).
    #[error("{chosen}: {error}; give a component exporting the fragmenter interface, or measure only --impl native")]
    NotAFragmenter {
        /// How it was chosen: `--plugin fragmenter=...` or the default.
        chosen: String,
        /// The host's reason.
        error: LoadError,
    },
    /// A plugin call failed: `what` names the call (`encode`, ...).
    #[error("{what}")]
    Plugin {
        /// The call, with what it was given.
        what: String,
        /// The plugin's or the host's error.
        source: StageError,
    },
    /// A plugin call failed and its error says it all (the reassembler).
    #[error("{0}")]
    Stage(StageError),
    /// A gateway's configuration, written by the harness, was refused.
    #[error(transparent)]
    Config(#[from] deepmail_gateway::ConfigError),
    /// A gateway could not start.
    #[error(transparent)]
    Gateway(#[from] deepmail_gateway::StartError),
    /// A gateway started without a listener the harness needs.
    #[error("{0}")]
    NoAddress(&'static str),
    /// The test certificates could not be made.
    #[error(transparent)]
    Pki(#[from] deepmail_gateway::TlsError),
    /// The link emulator could not start.
    #[error("starting the link emulator")]
    Link(#[source] deepmail_link::LinkError),
    /// The generated contact plan does not parse.
    #[error("the generated plan")]
    Plan(#[source] deepmail_link::contact_plan::PlanError),
    /// An SMTP session with a gateway or an MTA failed: `what` says
    /// which message to whom.
    #[error("{what}")]
    Smtp {
        /// The message and the peer.
        what: String,
        /// Why.
        source: deepmail_smtp::client::RelayError,
    },
    /// A peer (a gateway, an MTA) answered with a refusal.
    #[error("{0}")]
    Refused(String),
    /// A measurement's check failed: the sentence states the measured
    /// fact (what did not arrive, in how long).
    #[error("{0}")]
    CheckFailed(String),
    /// The tracing subscriber could not be installed.
    #[error("cannot set up logging")]
    Logging(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// JSON could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A task of the harness panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl BenchError {
    /// An [`BenchError::Io`] on `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BenchError {
        let path = path.into();
        move |source| BenchError::Io { what, path, source }
    }

    /// A [`BenchError::System`] error.
    pub(crate) fn system(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
        move |source| BenchError::System { what, source }
    }

    /// A [`BenchError::Plugin`] error for the call `what`.
    pub(crate) fn plugin(what: impl Into<String>) -> impl FnOnce(StageError) -> BenchError {
        let what = what.into();
        move |source| BenchError::Plugin { what, source }
    }
}

/// Why one cell of `bench fragment` failed: it is reported in the table
/// and the JSON, never timed.
#[derive(Debug, thiserror::Error)]
pub enum CellFailure {
    /// The native fragmenter or reassembler refused.
    #[error(transparent)]
    Bundle(#[from] deepmail_bundle::BundleError),
    /// The plugin refused or misbehaved.
    #[error(transparent)]
    Plugin(#[from] StageError),
    /// A BPv6 plugin's fragments do not match its whole bundle.
    #[error(transparent)]
    Bp6(#[from] deepmail_conformance::Mismatch),
    /// The output broke a property the check requires: the measured fact.
    #[error("{0}")]
    Check(String),
}
