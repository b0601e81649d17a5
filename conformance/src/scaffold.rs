//! Scaffolding (`deepmail plugin new`): a stage plugin project that builds
//! to a component, with the WIT, a README and a Makefile whose `check`
//! runs the conformance vectors on it.
//!
//! Templates live in `conformance/templates/` and are embedded in the
//! library, with the WIT of this build, so a project made here matches the
//! host that made it. With the `cli` feature the options derive
//! `clap::Args`, so the command's `--help` is defined here.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The language of the new plugin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Lang {
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum NewStage {
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

/// What to make: `plugin new STAGE --lang LANG [--dir DIR] [--name NAME]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct NewPlugin {
    /// The stage the plugin implements.
    #[cfg_attr(feature = "cli", arg(value_enum))]
    pub stage: NewStage,
    /// The language it is written in.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub lang: Lang,
    /// Directory to create (must not exist, or be empty); default
    /// `./<name>`.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub dir: Option<PathBuf>,
    /// The plugin's name: lowercase letters, digits and `-` (also the crate
    /// and component file name); default `my-<stage>`.
    #[cfg_attr(feature = "cli", arg(long))]
    pub name: Option<String>,
}

/// Why no project was made.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// The name is not lowercase letters, digits and `-`.
    #[error("--name `{0}`: use lowercase letters, digits and `-`, starting with a letter (e.g. my-codec)")]
    InvalidName(String),
    /// No template for this stage in this language.
    #[error(
        "no template for the {stage:?} stage in {lang:?}; there are: codec in rust and python, \
         fragmenter in js. Otherwise start from the world in wit/deepmail.wit and \
         docs/PLUGINS.md (plugins/ has a Rust plugin for every stage)"
    )]
    NoTemplate {
        /// The stage asked for.
        stage: NewStage,
        /// The language asked for.
        lang: Lang,
    },
    /// The directory has something in it.
    #[error("{} exists and is not empty; choose another --dir", .0.display())]
    NotEmpty(PathBuf),
    /// A directory could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
}

/// The project that was made.
#[derive(Debug, Clone)]
pub struct Created {
    /// Where.
    pub dir: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// The stage, as in `wit/deepmail.wit` (`codec`, ...).
    pub stage: &'static str,
    /// The language, for people (`Rust`, `Python`, `JavaScript`).
    pub lang_name: &'static str,
    /// The files written, relative to `dir`.
    pub files: Vec<&'static str>,
}

const WIT: &str = include_str!("../../wit/deepmail.wit");
const README: &str = include_str!("../templates/README.md.tmpl");
const RUST_CARGO: &str = include_str!("../templates/rust-codec/Cargo.toml.tmpl");
const RUST_LIB: &str = include_str!("../templates/rust-codec/lib.rs.tmpl");
const RUST_MAKEFILE: &str = include_str!("../templates/rust-codec/Makefile.tmpl");
const PYTHON_APP: &str = include_str!("../../plugins-py/bsmtp-codec/app.py");
const PYTHON_MAKEFILE: &str = include_str!("../templates/python-codec/Makefile.tmpl");
const JS_MAKEFILE: &str = include_str!("../templates/js-fragmenter/Makefile.tmpl");
/// The JavaScript fragmenter's files, as they are in plugins-js/fragmenter.
const JS_FILES: [(&str, &str); 9] = [
    ("app.js", include_str!("../../plugins-js/fragmenter/app.js")),
    (
        "package.json",
        include_str!("../../plugins-js/fragmenter/package.json"),
    ),
    (
        "package-lock.json",
        include_str!("../../plugins-js/fragmenter/package-lock.json"),
    ),
    (
        "src/bundle.js",
        include_str!("../../plugins-js/fragmenter/src/bundle.js"),
    ),
    (
        "src/cbor.js",
        include_str!("../../plugins-js/fragmenter/src/cbor.js"),
    ),
    (
        "src/crc.js",
        include_str!("../../plugins-js/fragmenter/src/crc.js"),
    ),
    (
        "src/eid.js",
        include_str!("../../plugins-js/fragmenter/src/eid.js"),
    ),
    (
        "src/errors.js",
        include_str!("../../plugins-js/fragmenter/src/errors.js"),
    ),
    (
        "src/reassembler.js",
        include_str!("../../plugins-js/fragmenter/src/reassembler.js"),
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

/// Writes the project `args` asks for into its directory, which must not
/// exist or be empty.
pub fn create(args: &NewPlugin) -> Result<Created, ScaffoldError> {
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
        return Err(ScaffoldError::InvalidName(name.to_string()));
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
        (stage, lang) => return Err(ScaffoldError::NoTemplate { stage, lang }),
    };
    let (lang, lang_name) = match args.lang {
        Lang::Rust => ("rust", "Rust"),
        Lang::Python => ("python", "Python"),
        Lang::Js => ("js", "JavaScript"),
    };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
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
            std::fs::create_dir_all(parent).map_err(|error| ScaffoldError::Create {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        std::fs::write(&path, text).map_err(|error| ScaffoldError::Write { path, error })?;
    }
    Ok(Created {
        dir,
        name: name.to_string(),
        stage,
        lang_name,
        files: files.iter().map(|(rel, _)| *rel).collect(),
    })
}

/// `dir` must not exist or be empty: nothing of the user's is overwritten.
fn prepare(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|error| ScaffoldError::Create {
                path: dir.to_path_buf(),
                error,
            })
        }
        Err(error) => Err(ScaffoldError::Read {
            path: dir.to_path_buf(),
            error,
        }),
    }
}
