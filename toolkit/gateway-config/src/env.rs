//! What loading a configuration reads from outside the text: files (keys,
//! certificates, plugins) and socket addresses. Start-up and
//! `deepmail gateway --check` load through [`Disk`]; a fuzzer or a test
//! can load through an [`Environment`] that touches nothing.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The outside world as the loader sees it.
pub trait Environment {
    /// The bytes of the file at `path` (already made absolute).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` names a regular file.
    fn is_file(&self, path: &Path) -> bool;
    /// The addresses `ADDRESS:PORT` names (a host name may be looked up).
    fn resolve(&self, text: &str) -> io::Result<Vec<SocketAddr>>;
    /// Now, Unix ms: what `+relative` times of a contact plan count from
    /// (unless the plan sets its own reference with `@`).
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The real file system and the system's resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

/// The largest file the loader reads (keys and certificates are a few KiB;
/// this keeps `bib-key-file = "/dev/zero"` from eating memory).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

impl Environment for Disk {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {MAX_FILE_BYTES} bytes; not a key or certificate"),
            ));
        }
        Ok(bytes)
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn resolve(&self, text: &str) -> io::Result<Vec<SocketAddr>> {
        Ok(text.to_socket_addrs()?.collect())
    }
}
