//! Writing results so that nothing is left half-written: files go to a
//! temporary name in the same directory, are flushed to disk and renamed;
//! a set of files goes to a temporary directory renamed into place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Writes `bytes` to `path` (or stdout for `-`/`None`) atomically.
pub(crate) fn write_output(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        None => stdout(bytes),
        Some(p) if p.as_os_str() == "-" => stdout(bytes),
        Some(p) => write_file_atomically(p, bytes),
    }
}

fn stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
    match written {
        // The reader went away (`| head`): stop quietly, as `cat` does.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("writing to standard output"),
    }
}

/// Writes a file via a temporary sibling, fsync, rename.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
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
pub(crate) fn write_directory(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty; choose a new directory",
                dir.display()
            );
        }
        fs::remove_dir(dir)
            .with_context(|| format!("cannot replace empty directory {}", dir.display()))?;
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
        return Err(e).with_context(|| format!("cannot write directory {}", dir.display()));
    }
    Ok(())
}
