//! Builds the default stage plugins for `wasm32-wasip2` and exports their
//! paths to the crate as `DEEPMAIL_PLUGIN_<NAME>` environment constants, so
//! `src/builtin.rs` can embed them with `include_bytes!`.
//!
//! This is the pattern of wasmtime's `crates/test-programs/artifacts/build.rs`:
//! a nested `cargo build` of workspace members for another target, into a
//! target directory of its own so it never waits on the outer build's lock.
//! The `wasm32-wasip2` target is installed with rustup when it is missing;
//! when that is impossible the build stops and says what to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm-plugin";

/// (crate directory under plugins/, package name, env var suffix)
const PLUGINS: &[(&str, &str, &str)] = &[
    ("bsmtp-codec", "deepmail-plugin-bsmtp-codec", "BSMTP_CODEC"),
    (
        "bp7-fragmenter",
        "deepmail-plugin-bp7-fragmenter",
        "BP7_FRAGMENTER",
    ),
    ("misbehaving", "deepmail-plugin-misbehaving", "MISBEHAVING"),
    (
        "dns-resolver",
        "deepmail-plugin-dns-resolver",
        "DNS_RESOLVER",
    ),
    (
        "static-resolver",
        "deepmail-plugin-static-resolver",
        "STATIC_RESOLVER",
    ),
    (
        "https-sender",
        "deepmail-plugin-https-sender",
        "HTTPS_SENDER",
    ),
    (
        "basic-policy",
        "deepmail-plugin-basic-policy",
        "BASIC_POLICY",
    ),
    (
        "tcpcl-sender",
        "deepmail-plugin-tcpcl-sender",
        "TCPCL_SENDER",
    ),
    // Pure Rust since its TLS moved to toolkit/rustcrypto: no clang needed.
    ("quic-sender", "deepmail-plugin-quic-sender", "QUIC_SENDER"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("toolkit/host sits two levels below the workspace root")
        .to_path_buf();

    for dir in [
        "plugins",
        "wit",
        "toolkit/bsmtp/src",
        "toolkit/bundle/src",
        "toolkit/uri-rr/src",
        "toolkit/tcpcl/src",
        "toolkit/rustcrypto/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "toolkit/bsmtp/Cargo.toml",
        "toolkit/bundle/Cargo.toml",
        "toolkit/tcpcl/Cargo.toml",
        "toolkit/rustcrypto/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=DEEPMAIL_PLUGIN_TARGET_DIR");

    ensure_wasm_target();

    // Outside OUT_DIR on purpose: one plugin build serves debug, release,
    // clippy and test builds of the host alike.
    let target_dir = env::var_os("DEEPMAIL_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-plugins"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .arg("build")
        .arg("--locked")
        .arg("--quiet")
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package, _) in PLUGINS {
        cmd.arg("-p").arg(package);
    }
    // The outer build's settings are for the host, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
        "CARGO_LLVM_COV_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    // SIMD128 lets memchr (line scanning in the codec) use vector
    // instructions inside the component; wasmtime supports it everywhere.
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the wasm plugins: {e}"));
    if !status.success() {
        panic!("building the deepmail plugins for {TARGET} failed (see the cargo output above)");
    }

    let out_dir = target_dir.join(TARGET).join(PROFILE);
    for (dir, package, var) in PLUGINS {
        let file = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        if !file.is_file() {
            panic!(
                "expected plugin {dir} at {}, but it is not there",
                file.display()
            );
        }
        println!("cargo:rustc-env=DEEPMAIL_PLUGIN_{var}={}", file.display());
    }
}

/// Makes sure the wasm32-wasip2 standard library is installed.
fn ensure_wasm_target() {
    let sysroot = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).is_dir();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (needed to build the plugins)"
    );
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        panic!(
            "the Rust target {TARGET} is not installed and `rustup target add {TARGET}` failed.\n\
             deepmail builds its default plugins as WebAssembly components for it.\n\
             Run `rustup target add {TARGET}` yourself (it needs rustup and network access \
             to the Rust distribution server), then build again."
        );
    }
}
