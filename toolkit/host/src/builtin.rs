//! The plugins embedded in this binary, built for `wasm32-wasip2` by
//! `build.rs` from the crates under `plugins/`.

use crate::plugin::Stage;

/// One embedded plugin.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Name after `builtin:`.
    pub name: &'static str,
    /// The stage it implements.
    pub stage: Stage,
    /// Whether it is the stage's default.
    pub default: bool,
    /// Whether it exists only for deepmail's own tests.
    pub test_only: bool,
    /// The component.
    pub wasm: &'static [u8],
}

/// Every embedded plugin. `misbehaving` exists for the tests (it traps,
/// loops or balloons on request), is never a default, and is embedded only
/// with the `test-plugins` feature.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "bsmtp-codec",
        stage: Stage::Codec,
        default: true,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_BSMTP_CODEC")),
    },
    Builtin {
        name: "bp7-fragmenter",
        stage: Stage::Fragmenter,
        default: true,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_BP7_FRAGMENTER")),
    },
    Builtin {
        name: "dns-resolver",
        stage: Stage::Resolver,
        default: true,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_DNS_RESOLVER")),
    },
    Builtin {
        name: "static-resolver",
        stage: Stage::Resolver,
        default: false,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_STATIC_RESOLVER")),
    },
    Builtin {
        name: "https-sender",
        stage: Stage::Sender,
        default: true,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_HTTPS_SENDER")),
    },
    Builtin {
        name: "quic-sender",
        stage: Stage::Sender,
        default: false,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_QUIC_SENDER")),
    },
    Builtin {
        name: "tcpcl-sender",
        stage: Stage::Sender,
        default: false,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_TCPCL_SENDER")),
    },
    Builtin {
        name: "basic-policy",
        stage: Stage::Policy,
        default: true,
        test_only: false,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_BASIC_POLICY")),
    },
    // Only in builds with the `test-plugins` feature (the tests'), never in
    // a release binary.
    #[cfg(feature = "test-plugins")]
    Builtin {
        name: "misbehaving",
        stage: Stage::Codec,
        default: false,
        test_only: true,
        wasm: include_bytes!(env!("DEEPMAIL_PLUGIN_MISBEHAVING")),
    },
];

/// The embedded plugin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The default embedded plugin for `stage`, if any.
pub fn default_for(stage: Stage) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.stage == stage && b.default)
}

/// Names of all embedded plugins.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}
