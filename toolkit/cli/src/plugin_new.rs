//! `plugin new`: scaffolds a stage plugin project that builds to a
//! component, with the WIT, a README and a Makefile whose `check` runs the
//! conformance vectors on it.
//!
//! Templates live in `toolkit/cli/templates/` and are embedded in the
//! binary, with the WIT of this build, so a project made here matches the
//! host that made it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

/// The language of the new plugin.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum Lang {
    /// Rust with wit-bindgen, built for wasm32-wasip2: a skeleton whose
    /// functions answer `not-implemented` until written.
    Rust,
    /// Python with componentize-py: starts from deepmail's Python codec,
    /// which passes every codec vector.
    Python,
    /// JavaScript with jco: starts from deepmail's JavaScript fragmenter,
    /// which passes every fragmenter vector.
    Js,
}

/// The stage the plugin implements.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum NewStage {
    /// Batch SMTP codec (world `codec-plugin`).
    Codec,
    /// BPv7 fragmenter (world `fragmenter-plugin`).
    Fragmenter,
    /// DNS URI resolver (world `resolver-plugin`).
    Resolver,
    /// Sender (world `sender-plugin`).
    Sender,
    /// Policy (world `policy-plugin`).
    Policy,
}

#[derive(Args)]
pub(crate) struct NewArgs {
    /// The stage the plugin implements.
    #[arg(value_enum)]
    stage: NewStage,
    /// The language it is written in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Directory to create (must not exist, or be empty); default
    /// `./<name>`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The plugin's name: lowercase letters, digits and `-` (also the crate
    /// and component file name); default `my-<stage>`.
    #[arg(long)]
    name: Option<String>,
}

const WIT: &str = include_str!("../../../wit/deepmail.wit");
const README: &str = include_str!("../templates/README.md.tmpl");
const RUST_CARGO: &str = include_str!("../templates/rust-codec/Cargo.toml.tmpl");
const RUST_LIB: &str = include_str!("../templates/rust-codec/lib.rs.tmpl");
const RUST_MAKEFILE: &str = include_str!("../templates/rust-codec/Makefile.tmpl");
const PYTHON_APP: &str = include_str!("../../../plugins-py/bsmtp-codec/app.py");
const PYTHON_MAKEFILE: &str = include_str!("../templates/python-codec/Makefile.tmpl");
const JS_MAKEFILE: &str = include_str!("../templates/js-fragmenter/Makefile.tmpl");
/// The JavaScript fragmenter's files, as they are in plugins-js/fragmenter.
const JS_FILES: [(&str, &str); 9] = [
    (
        "app.js",
        include_str!("../../../plugins-js/fragmenter/app.js"),
    ),
    (
        "package.json",
        include_str!("../../../plugins-js/fragmenter/package.json"),
    ),
    (
        "package-lock.json",
        include_str!("../../../plugins-js/fragmenter/package-lock.json"),
    ),
    (
        "src/bundle.js",
        include_str!("../../../plugins-js/fragmenter/src/bundle.js"),
    ),
    (
        "src/cbor.js",
        include_str!("../../../plugins-js/fragmenter/src/cbor.js"),
    ),
    (
        "src/crc.js",
        include_str!("../../../plugins-js/fragmenter/src/crc.js"),
    ),
    (
        "src/eid.js",
        include_str!("../../../plugins-js/fragmenter/src/eid.js"),
    ),
    (
        "src/errors.js",
        include_str!("../../../plugins-js/fragmenter/src/errors.js"),
    ),
    (
        "src/reassembler.js",
        include_str!("../../../plugins-js/fragmenter/src/reassembler.js"),
    ),
];

/// What was written, for the summary.
struct Project {
    files: Vec<(&'static str, String)>,
    about: &'static str,
    table: &'static str,
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

pub(crate) fn run(args: NewArgs) -> anyhow::Result<()> {
    let stage = match args.stage {
        NewStage::Codec => "codec",
        NewStage::Fragmenter => "fragmenter",
        NewStage::Resolver => "resolver",
        NewStage::Sender => "sender",
        NewStage::Policy => "policy",
    };
    let name = args.name.clone().unwrap_or_else(|| format!("my-{stage}"));
    let name = name.as_str();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("--name `{name}`: use lowercase letters, digits and `-`, starting with a letter (e.g. my-codec)");
    }
    let crate_name = name.replace('-', "_");
    let vars = [
        ("name", name),
        ("crate", crate_name.as_str()),
        ("stage", stage),
    ];
    let project = match (args.stage, args.lang) {
        (NewStage::Codec, Lang::Rust) => Project {
            files: vec![
                ("Cargo.toml", fill(RUST_CARGO, &vars)),
                ("src/lib.rs", fill(RUST_LIB, &vars)),
                ("Makefile", fill(RUST_MAKEFILE, &vars)),
            ],
            about: "Rust with wit-bindgen, built for `wasm32-wasip2`. Every function answers \
                    `not-implemented` until you write it; `make check` lists what is left.",
            table: "| `Cargo.toml`, `src/lib.rs` | the crate: `encode` and `decode` to write |",
        },
        (NewStage::Codec, Lang::Python) => Project {
            files: vec![
                ("app.py", PYTHON_APP.to_string()),
                ("Makefile", fill(PYTHON_MAKEFILE, &vars)),
            ],
            about: "Python, built into a component with componentize-py 0.25.1 (the Makefile \
                    installs it into `.venv`). `app.py` starts as deepmail's own Python codec, \
                    which passes every codec vector: change it from there.",
            table: "| `app.py` | the codec (standard library only) |",
        },
        (NewStage::Fragmenter, Lang::Js) => Project {
            files: JS_FILES
                .iter()
                .map(|(rel, text)| (*rel, text.to_string()))
                .chain(std::iter::once(("Makefile", fill(JS_MAKEFILE, &vars))))
                .collect(),
            about: "JavaScript, built into a component with jco 1.34.0 (`npm ci` installs it). \
                    It starts as deepmail's own JavaScript fragmenter (CBOR, CRC-16/32C, \
                    fragmentation and reassembly), which passes every fragmenter vector: change \
                    it from there. docs/PLUGINS.md says how the WIT maps to JavaScript.",
            table: "| `app.js`, `src/*.js`, `package.json`, `package-lock.json` | the fragmenter |",
        },
        (stage, lang) => bail!(
            "no template for the {stage:?} stage in {lang:?}; there are: codec in rust and python, \
             fragmenter in js. Otherwise start from the world in wit/deepmail.wit and \
             docs/PLUGINS.md (plugins/ has a Rust plugin for every stage)"
        ),
    };
    let (lang, lang_name) = match args.lang {
        Lang::Rust => ("rust", "Rust"),
        Lang::Python => ("python", "Python"),
        Lang::Js => ("js", "JavaScript"),
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name));
    prepare(&dir)?;
    let readme = fill(
        README,
        &[
            ("name", name),
            ("stage", stage),
            ("lang", lang),
            ("lang_name", lang_name),
            ("about", project.about),
            ("files", project.table),
        ],
    );
    let mut files = project.files;
    files.push(("README.md", readme));
    files.push(("wit/deepmail.wit", WIT.to_string()));
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created {} ({lang_name} {stage} plugin `{name}`):",
        dir.display()
    );
    for (rel, _) in &files {
        println!("  {rel}");
    }
    println!(
        "next: cd {} && make check DEEPMAIL={}",
        dir.display(),
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "deepmail".into())
    );
    Ok(())
}

/// `dir` must not exist or be empty: nothing of the user's is overwritten.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty; choose another --dir",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
