//! Errors: [`StageError`] for a call that failed (the plugin said no, or
//! misbehaved), [`LoadError`] for a plugin that could not be loaded at all,
//! [`HostError`] for a host that could not start.

use std::fmt;
use std::path::PathBuf;

/// A stage call that failed. `code` is the plugin's machine-readable class
/// (see `vectors/README.md`), or one of the host's own:
/// `plugin-trap`, `plugin-timeout`, `plugin-out-of-memory`, `plugin-failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    /// Stable error class.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Byte offset into the input, when the plugin gave one.
    pub offset: Option<u64>,
    /// The plugin that reported it (`builtin:bsmtp-codec`, a path, ...).
    pub plugin: String,
}

impl StageError {
    /// True for the errors the host raises when a plugin misbehaves, as
    /// opposed to a plugin rejecting its input.
    pub fn is_plugin_fault(&self) -> bool {
        matches!(
            self.code.as_str(),
            "plugin-trap" | "plugin-timeout" | "plugin-out-of-memory" | "plugin-failed"
        )
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        write!(f, " (plugin {})", self.plugin)
    }
}

impl std::error::Error for StageError {}

/// A plugin that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The `.wasm` file could not be read.
    #[error("cannot read plugin {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `builtin:<name>` names no embedded plugin.
    #[error("there is no built-in plugin called `{name}`; built-in plugins: {known}")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The bytes are not a WebAssembly component wasmtime can compile.
    #[error("{plugin} is not a usable WebAssembly component: {detail}\n(plugins are components for wasm32-wasip2, e.g. `cargo build --target wasm32-wasip2`)")]
    Compile {
        /// The plugin.
        plugin: String,
        /// wasmtime's explanation.
        detail: String,
    },
    /// The component does not export the interface this stage needs.
    #[error("{plugin} cannot serve as the {stage} stage: it does not export `{interface}` (it exports: {exports})")]
    WrongWorld {
        /// The plugin.
        plugin: String,
        /// The stage it was asked to be.
        stage: &'static str,
        /// The interface that stage needs.
        interface: String,
        /// What the component exports instead.
        exports: String,
    },
    /// The network or HTTP grant given to the plugin is unusable.
    #[error("{plugin}: {detail}")]
    Grant {
        /// The plugin.
        plugin: String,
        /// What is wrong (e.g. a trust-root file that holds no certificate).
        detail: String,
    },
    /// The component imports something the host does not provide.
    #[error("{plugin} cannot be linked: {detail}\n(plugins may import only WASI 0.2 interfaces)")]
    Link {
        /// The plugin.
        plugin: String,
        /// wasmtime's explanation.
        detail: String,
    },
}

/// The host could not start: what it was doing and wasmtime's reason.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what}: {detail}")]
pub struct HostError {
    /// What failed, e.g. `create the wasmtime engine`.
    pub what: &'static str,
    /// wasmtime's explanation, with its causes.
    pub detail: String,
}

impl HostError {
    pub(crate) fn new(what: &'static str, e: impl fmt::Display) -> HostError {
        HostError {
            what,
            detail: format!("{e:#}"),
        }
    }
}
