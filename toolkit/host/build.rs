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

/// Plugins built only with the `test-plugins` feature (the host's and the
/// CLI's tests turn it on): they never ship in a release binary.
const TEST_ONLY: &[&str] = &["misbehaving"];

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

    // What the plugins are built from: their own crates, the WIT, the
    // lock file; the library sources they use are read from the wasm
    // build's dep-info below (as wasmtime's artifacts/build.rs does), so
    // no list here goes stale when a plugin starts using another crate.
    for path in ["plugins", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=DEEPMAIL_PLUGIN_TARGET_DIR");
    let test_plugins = env::var_os("CARGO_FEATURE_TEST_PLUGINS").is_some();
    let plugins: Vec<_> = PLUGINS
        .iter()
        .filter(|(dir, _, _)| test_plugins || !TEST_ONLY.contains(dir))
        .collect();

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
    for (_, package, _) in &plugins {
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
    for (dir, package, var) in plugins {
        let file = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        if !file.is_file() {
            panic!(
                "expected plugin {dir} at {}, but it is not there",
                file.display()
            );
        }
        println!("cargo:rustc-env=DEEPMAIL_PLUGIN_{var}={}", file.display());
        rerun_if_sources_change(&root, &file.with_extension("d"));
    }
}

/// Emits `rerun-if-changed` for every workspace source file the wasm build
/// of a plugin read (its dep-info file `dep_info`), and each of their
/// crates' `Cargo.toml`.
fn rerun_if_sources_change(root: &Path, dep_info: &Path) {
    let Ok(text) = std::fs::read_to_string(dep_info) else {
        return;
    };
    let Some((_, deps)) = text.split_once(": ") else {
        return;
    };
    // Paths are separated by spaces; a space inside one is escaped.
    let deps = deps.lines().next().unwrap_or("").replace("\\ ", "\0");
    for dep in deps.split(' ').filter(|d| !d.is_empty()) {
        let path = PathBuf::from(dep.replace('\0', " "));
        if !path.starts_with(root) || path.starts_with(root.join("target")) {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        // The crate's manifest: features and dependencies matter too.
        if let Some(manifest) = path
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(root) && *a != root)
            .map(|a| a.join("Cargo.toml"))
            .find(|m| m.is_file())
        {
            println!("cargo:rerun-if-changed={}", manifest.display());
        }
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
