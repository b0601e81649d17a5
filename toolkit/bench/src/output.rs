//! Writing results so that nothing is left half-written: files go to a
//! temporary name in the same directory, are flushed to disk and renamed;
//! a set of files goes to a temporary directory renamed into place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::BenchError;

/// Writes `doc` as pretty JSON with a final newline to `path` (`-`:
/// stdout), when the user asked for it (`--json FILE`).
pub(crate) fn write_json(path: Option<&str>, doc: &serde_json::Value) -> Result<(), BenchError> {
    match path {
        Some(path) => write_output(
            Some(Path::new(path)),
            (serde_json::to_string_pretty(doc)? + "\n").as_bytes(),
        ),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` (or stdout for `-`/`None`) atomically.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), BenchError> {
    match path {
        None => stdout(bytes),
        Some(p) if p.as_os_str() == "-" => stdout(bytes),
        Some(p) => write_file_atomically(p, bytes),
    }
}

fn stdout(bytes: &[u8]) -> Result<(), BenchError> {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
    match written {
        // The reader went away (`| head`): stop quietly, as `cat` does.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.map_err(BenchError::system("writing to standard output")),
    }
}

/// Writes a file via a temporary sibling, fsync, rename.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    let dir = parent_dir(path);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(BenchError::io("cannot write", path)(e));
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `files` (name, bytes) into a new directory `dir`. The directory
/// must not exist, or be empty; it appears complete or not at all.
pub fn write_directory(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), BenchError> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .map_err(BenchError::io("cannot read", dir))?
            .next()
            .is_none();
        if !empty {
            return Err(BenchError::DirectoryNotEmpty(dir.to_path_buf()));
        }
        fs::remove_dir(dir).map_err(BenchError::io("cannot replace empty directory", dir))?;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = parent_dir(dir).join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        fs::create_dir_all(&tmp)?;
        for (file, bytes) in files {
            let mut f = File::create(tmp.join(file))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(BenchError::io("cannot write directory", dir)(e));
    }
    Ok(())
}
