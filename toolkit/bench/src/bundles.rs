//! `deepmail fragment` and `inspect` on files: a payload or a bundle cut
//! into numbered bundle files with a one-line summary of the overhead, and
//! bundle files parsed into JSON (one object, or an array for several).

use std::path::{Path, PathBuf};

use deepmail_host::types::BundleSpec;
use deepmail_host::{Fragmenter, StageError};
use serde_json::{json, Value};

use crate::{read_input, BenchError};

/// Cuts `input` (read from `name`) into bundles of at most `mtu` bytes:
/// as the ADU of new bundles described by `spec`, or, with `as_bundle`,
/// as a bundle fragmented further (keeping its offsets).
pub fn fragment(
    fragmenter: &Fragmenter,
    input: &[u8],
    as_bundle: bool,
    spec: &BundleSpec,
    mtu: u64,
    name: &Path,
) -> Result<Vec<Vec<u8>>, BenchError> {
    if as_bundle {
        fragmenter.fragment(input, mtu)
    } else {
        fragmenter.fragment_adu(input, spec, mtu)
    }
    .map_err(BenchError::plugin(format!(
        "fragmenting {} failed",
        name.display()
    )))
}

/// The bundles as `NNNN.bundle` files (from `0001.bundle`), for
/// [`crate::output::write_directory`].
pub fn bundle_files(bundles: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    bundles
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("{:04}.bundle", i + 1), b.clone()))
        .collect()
}

/// One line on a fragmentation of `input_len` bytes into `bundles`
/// written to `dir`: how many, the bytes on the wire, the overhead.
pub fn fragment_summary(input_len: usize, bundles: &[Vec<u8>], dir: &Path) -> String {
    let total: usize = bundles.iter().map(Vec::len).sum();
    format!(
        "{} bytes -> {} bundle(s), {} bytes on the wire ({:.2}% overhead), in {}",
        input_len,
        bundles.len(),
        total,
        if input_len == 0 {
            0.0
        } else {
            (total as f64 / input_len as f64 - 1.0) * 100.0
        },
        dir.display()
    )
}

/// What [`inspect_files`] found.
#[derive(Debug)]
pub struct Inspection {
    /// The fields of each bundle (or its error), with its `file` and
    /// `size`: one object for one file, else an array.
    pub doc: Value,
    /// How many files did not parse or validate.
    pub invalid: usize,
}

/// Parses and validates each bundle file of `paths`; tells `on_invalid`
/// about each one that fails as it goes. A file that cannot be read is
/// an error.
pub fn inspect_files(
    fragmenter: &Fragmenter,
    paths: &[PathBuf],
    mut on_invalid: impl FnMut(&Path, &StageError),
) -> Result<Inspection, BenchError> {
    let mut out = Vec::new();
    let mut invalid = 0;
    for path in paths {
        let bytes = read_input(path).map_err(|source| BenchError::Reading {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let mut v = match fragmenter.inspect(&bytes) {
            Ok(info) => deepmail_conformance::bundle_info_json(&info),
            Err(e) => {
                invalid += 1;
                on_invalid(path, &e);
                json!({"error": {"code": e.code, "message": e.message, "offset": e.offset}})
            }
        };
        v["file"] = json!(path.display().to_string());
        v["size"] = json!(bytes.len());
        out.push(v);
    }
    let doc = if out.len() == 1 {
        out.remove(0)
    } else {
        Value::Array(out)
    };
    Ok(Inspection { doc, invalid })
}
