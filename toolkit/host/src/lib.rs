//! The deepmail plugin host: loads stage plugins (WebAssembly components
//! exporting a `deepmail:stages` interface) into one shared wasmtime engine
//! and calls them under limits.
//!
//! What it guarantees, whatever the plugin does:
//!
//! * every call runs with a memory cap and an epoch deadline, so a plugin
//!   that traps, spins or allocates without end returns a [`StageError`]
//!   (`plugin-trap`, `plugin-timeout`, `plugin-out-of-memory`) and the host
//!   carries on with a fresh instance;
//! * plugins get no ambient capability: WASI is linked because every
//!   `wasm32-wasip2` component imports it, but with no files, sockets,
//!   environment or arguments, and stderr captured into the error message;
//! * each component is compiled once per process (and cached on disk, keyed
//!   by its bytes and the engine's compatibility hash), then instantiated
//!   from a pre-linked `InstancePre`; clean instances are pooled.
//!
//! Stages are chosen with a [`PluginSource`]: `builtin:<name>` for the
//! plugins embedded in this crate ([`builtin`]), or a path to a `.wasm`.

#![warn(missing_docs)]

mod bindings;
pub mod builtin;
mod codec;
mod engine;
mod error;
mod fragmenter;
mod http;
mod plugin;
mod policy;
mod resolver;
mod sender;

pub use crate::codec::Codec;
pub use crate::engine::{Host, HostConfig};
pub use crate::error::{HostError, LoadError, StageError};
pub use crate::fragmenter::{Fragmenter, ReassemblerSession};
pub use crate::http::{system_roots_pem, HttpGrant, SYSTEM_ROOTS};
pub use crate::plugin::{NetworkGrant, PluginInfo, PluginSource, Stage, UnknownStage};
pub use crate::policy::{Policy, Refusal, Verdict};
pub use crate::resolver::{Resolved, Resolver};
pub use crate::sender::Sender;

/// Types of the `deepmail:stages` WIT package, as the host sees them.
pub mod types {
    pub use crate::bindings::deepmail::stages::types::{Envelope, ForwardPath, Message, SmtpParam};
    pub use crate::bindings::exports::deepmail::stages::bpsec::{BibCheck, BibKey, ShaVariant};
    pub use crate::bindings::exports::deepmail::stages::bsmtp_codec::{
        DecodeMode, DecodeOptions, EncodeOptions, Greeting,
    };
    pub use crate::bindings::exports::deepmail::stages::fragmenter::{
        BlockInfo, BundleId, BundleInfo, BundleSpec, CrcType, DeliveredAdu, PendingStats,
        ReassemblyLimits,
    };
    pub use crate::bindings::exports::deepmail::stages::resolver::NextHop;
    pub use crate::bindings::exports::deepmail::stages::sender::{Delivery, Outcome, Payload};
}

/// Version of the WIT package this host speaks.
pub const WIT_PACKAGE: &str = "deepmail:stages@0.1.0";
