//! The durable spool: where the receiving endpoint puts every batch it
//! accepts, before it says 200 ("nothing accepted is lost").
//!
//! ```text
//! SPOOL/
//!   tmp/<batch_id>.<pid>.<n>/     being written; removed at startup if a crash left it
//!   incoming/<batch_id>/          complete batches, appear atomically (rename)
//!     batch.bsmtp                 the request body, byte for byte
//!     0001.eml                    message 1: RFC 5322 content as decoded
//!     0001.envelope.json          message 1: reverse_path, mail_parameters, forward_paths
//!     ...
//!     meta.json                   batch_id, received_at, peer, identity, transport, messages, bytes, sha256
//!     0001.progress.json          written by the inbound relay: recipients already settled
//!   relayed/<batch_id>/           relayed batches (meta and progress only): dedupe across restarts
//! ```
//!
//! A batch is written into its own `tmp/` directory, every file and the
//! directory are fsynced, the directory is renamed into `incoming/`, and
//! `incoming/` is fsynced. The batch id is the deduplication key: a batch
//! whose `incoming/<batch_id>` exists is a duplicate, and when two writers
//! race, the loser's rename fails (the target is a non-empty directory) and
//! it reports a duplicate too, so a batch is stored once.
//!
//! One process owns a spool at a time: [`Spool::open`] removes whatever
//! `tmp/` holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use deepmail_host::types::Message;
use serde::{Deserialize, Serialize};

/// Spool failures. Any of them means the batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file-system operation failed.
    #[error("spool {op} {path}: {error}")]
    Io {
        /// What was being done (`create`, `write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The batch id cannot name a directory (see [`is_valid_batch_id`]).
    #[error(
        "invalid batch id {0:?}: 1 to 128 characters of A-Z a-z 0-9 . _ : - and not `.` or `..`"
    )]
    InvalidBatchId(String),
    /// A spooled file did not parse (`list` on a damaged spool).
    #[error("spool file {path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why it did not parse.
        detail: String,
    },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |error| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// Whether `id` may be a batch id: 1..=128 characters of `[A-Za-z0-9._:-]`,
/// other than `.` and `..` (which would not name a directory of its own).
pub(crate) fn is_valid_batch_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        && id != "."
        && id != ".."
}

/// What the spool records about a batch (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// The batch id: the `Idempotency-Key`, else the SHA-256 of the body.
    pub batch_id: String,
    /// When it was received, RFC 3339 UTC with milliseconds.
    pub received_at: String,
    /// The peer's socket address.
    pub peer: String,
    /// Who sent it: the client certificate's subject (RFC 4514), `token`
    /// for a bearer token, `anonymous` when no authentication is configured.
    pub identity: String,
    /// `https` (HTTP/1.1 or HTTP/2 over TLS) or `h3`.
    pub transport: String,
    /// Number of messages in the batch.
    pub messages: usize,
    /// Size of the batch in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the batch.
    pub sha256: String,
}

/// One ESMTP parameter, as spooled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledParam {
    /// e.g. `BODY`.
    pub keyword: String,
    /// e.g. `8BITMIME`; absent for a keyword alone.
    pub value: Option<String>,
}

/// One recipient, as spooled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledRecipient {
    /// The mailbox, without angle brackets.
    pub mailbox: String,
    /// RCPT parameters.
    pub parameters: Vec<SpooledParam>,
}

/// A message's envelope (`NNNN.envelope.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledEnvelope {
    /// MAIL FROM path without brackets; empty for the null path `<>`.
    pub reverse_path: String,
    /// MAIL parameters.
    pub mail_parameters: Vec<SpooledParam>,
    /// Recipients in RCPT order.
    pub forward_paths: Vec<SpooledRecipient>,
}

impl From<&Message> for SpooledEnvelope {
    fn from(m: &Message) -> Self {
        let param = |p: &deepmail_host::types::SmtpParam| SpooledParam {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        };
        SpooledEnvelope {
            reverse_path: m.envelope.reverse_path.clone(),
            mail_parameters: m.envelope.mail_parameters.iter().map(param).collect(),
            forward_paths: m
                .envelope
                .forward_paths
                .iter()
                .map(|f| SpooledRecipient {
                    mailbox: f.mailbox.clone(),
                    parameters: f.parameters.iter().map(param).collect(),
                })
                .collect(),
        }
    }
}

/// A batch to store.
pub struct NewBatch<'a> {
    /// Its metadata; `meta.batch_id` names the directory.
    pub meta: BatchMeta,
    /// The raw body.
    pub raw: &'a [u8],
    /// The decoded messages.
    pub messages: &'a [Message],
}

/// What [`Spool::store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Written and durable.
    Stored,
    /// A batch with this id and the same bytes was already there; nothing
    /// was written.
    Duplicate,
    /// A batch with this id but *other* bytes was already there: the sender
    /// reused an id for a different batch (a client bug). Nothing was
    /// written; the stored batch is kept.
    Conflict {
        /// SHA-256 (hex) of the batch stored under this id.
        stored_sha256: String,
    },
}

/// A batch in `incoming/`.
#[derive(Debug, Clone)]
pub struct SpooledBatch {
    /// Its directory.
    pub dir: PathBuf,
    /// Its `meta.json`.
    pub meta: BatchMeta,
}

impl SpooledBatch {
    /// The raw batch (`batch.bsmtp`).
    pub fn raw(&self) -> Result<Vec<u8>, SpoolError> {
        let path = self.dir.join("batch.bsmtp");
        fs::read(&path).map_err(io_err("read", &path))
    }

    /// The messages: envelope and content, in batch order.
    pub fn messages(&self) -> Result<Vec<(SpooledEnvelope, Vec<u8>)>, SpoolError> {
        (1..=self.meta.messages)
            .map(|n| {
                let env_path = self.dir.join(format!("{n:04}.envelope.json"));
                let eml_path = self.dir.join(format!("{n:04}.eml"));
                let env = fs::read(&env_path).map_err(io_err("read", &env_path))?;
                let env = serde_json::from_slice(&env).map_err(|e| SpoolError::Damaged {
                    path: env_path.clone(),
                    detail: e.to_string(),
                })?;
                let eml = fs::read(&eml_path).map_err(io_err("read", &eml_path))?;
                Ok((env, eml))
            })
            .collect()
    }
}

/// A spool directory. `Sync`: share one between request handlers.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    incoming: PathBuf,
    relayed: PathBuf,
    tmp: PathBuf,
    cleaned: usize,
    counter: AtomicU64,
    #[cfg(test)]
    fail_after_files: std::sync::atomic::AtomicUsize,
}

impl Spool {
    /// Opens (creating if needed) the spool at `root` and removes what a
    /// crash left in `tmp/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Spool, SpoolError> {
        let root = root.into();
        let incoming = root.join("incoming");
        let tmp = root.join("tmp");
        let relayed = root.join("relayed");
        for dir in [&root, &incoming, &tmp, &relayed] {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let mut cleaned = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err("list", &tmp))? {
            let entry = entry.map_err(io_err("list", &tmp))?;
            let path = entry.path();
            let removed = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(io_err("remove leftover", &path))?;
            cleaned += 1;
        }
        sync_dir(&tmp)?;
        sync_dir(&root)?;
        Ok(Spool {
            root,
            incoming,
            relayed,
            tmp,
            cleaned,
            counter: AtomicU64::new(0),
            #[cfg(test)]
            fail_after_files: std::sync::atomic::AtomicUsize::new(usize::MAX),
        })
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many leftovers of an interrupted write [`Spool::open`] removed.
    pub fn cleaned_leftovers(&self) -> usize {
        self.cleaned
    }

    /// Whether a batch with this id is stored, or was stored and relayed.
    pub fn contains(&self, batch_id: &str) -> bool {
        is_valid_batch_id(batch_id)
            && (self.incoming.join(batch_id).is_dir() || self.relayed.join(batch_id).is_dir())
    }

    /// Forgets relayed batches last touched before `cutoff` (their ids no
    /// longer deduplicate); returns how many. A sender retries for at most
    /// its maximum queue age, so a retention longer than that is safe.
    pub fn prune_relayed(&self, cutoff: SystemTime) -> Result<usize, SpoolError> {
        let mut pruned = 0;
        for entry in fs::read_dir(&self.relayed).map_err(io_err("list", &self.relayed))? {
            let path = entry.map_err(io_err("list", &self.relayed))?.path();
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old {
                fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                pruned += 1;
            }
        }
        if pruned > 0 {
            sync_dir(&self.relayed)?;
        }
        Ok(pruned)
    }

    /// Moves a fully relayed batch to `relayed/`, where only its
    /// `meta.json` and progress records stay (for deduplication and
    /// audit); the message files are removed.
    pub fn mark_relayed(&self, batch: &SpooledBatch) -> Result<(), SpoolError> {
        let id = &batch.meta.batch_id;
        if !is_valid_batch_id(id) {
            return Err(SpoolError::InvalidBatchId(id.clone()));
        }
        let target = self.relayed.join(id);
        fs::rename(&batch.dir, &target).map_err(io_err("rename", &target))?;
        sync_dir(&self.relayed)?;
        sync_dir(&self.incoming)?;
        for entry in fs::read_dir(&target).map_err(io_err("list", &target))? {
            let path = entry.map_err(io_err("list", &target))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".eml") || name == "batch.bsmtp" {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        Ok(())
    }

    /// Stores a batch durably, or reports it as a duplicate. When this
    /// returns `Stored`, every file, the batch directory and `incoming/`
    /// have been fsynced.
    pub fn store(&self, batch: &NewBatch<'_>) -> Result<StoreOutcome, SpoolError> {
        let id = &batch.meta.batch_id;
        if !is_valid_batch_id(id) {
            return Err(SpoolError::InvalidBatchId(id.clone()));
        }
        let target = self.incoming.join(id);
        if target.exists() || self.relayed.join(id).exists() {
            return Ok(self.same_id_outcome(id, &batch.meta.sha256));
        }
        let work = self.tmp.join(format!(
            "{id}.{}.{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&work).map_err(io_err("create", &work))?;
        let written = self
            .write_batch(&work, batch)
            .and_then(|()| sync_dir(&work));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&work);
            return Err(e);
        }
        match fs::rename(&work, &target) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                ) =>
            {
                let _ = fs::remove_dir_all(&work);
                return Ok(self.same_id_outcome(id, &batch.meta.sha256));
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&work);
                return Err(SpoolError::Io {
                    op: "rename",
                    path: target,
                    error: e,
                });
            }
        }
        sync_dir(&self.incoming)?;
        Ok(StoreOutcome::Stored)
    }

    /// A batch `id` is already stored (in `incoming/` or `relayed/`): a
    /// duplicate when its bytes hash to `sha256`, else a conflict. A stored
    /// meta that cannot be read (never expected: it is written before the
    /// batch appears) counts as a duplicate, the outcome that loses nothing.
    fn same_id_outcome(&self, id: &str, sha256: &str) -> StoreOutcome {
        let stored = [&self.incoming, &self.relayed].into_iter().find_map(|dir| {
            let bytes = fs::read(dir.join(id).join("meta.json")).ok()?;
            serde_json::from_slice::<BatchMeta>(&bytes).ok()
        });
        match stored {
            Some(meta) if !meta.sha256.eq_ignore_ascii_case(sha256) => StoreOutcome::Conflict {
                stored_sha256: meta.sha256,
            },
            _ => StoreOutcome::Duplicate,
        }
    }

    fn write_batch(&self, dir: &Path, batch: &NewBatch<'_>) -> Result<(), SpoolError> {
        let mut files = 0usize;
        let mut write = |name: String, bytes: &[u8]| -> Result<(), SpoolError> {
            if self.injected_failure(files) {
                return Err(SpoolError::Io {
                    op: "write",
                    path: dir.join(&name),
                    error: io::Error::other("injected failure"),
                });
            }
            files += 1;
            write_synced(&dir.join(name), bytes)
        };
        write("batch.bsmtp".into(), batch.raw)?;
        for (i, message) in batch.messages.iter().enumerate() {
            let n = i + 1;
            write(format!("{n:04}.eml"), &message.content)?;
            let envelope = SpooledEnvelope::from(message);
            write(format!("{n:04}.envelope.json"), &to_json(&envelope))?;
        }
        write("meta.json".into(), &to_json(&batch.meta))
    }

    /// The complete batches in `incoming/`, oldest first (by
    /// `received_at`, then id).
    pub fn list(&self) -> Result<Vec<SpooledBatch>, SpoolError> {
        let mut batches = Vec::new();
        for entry in fs::read_dir(&self.incoming).map_err(io_err("list", &self.incoming))? {
            let entry = entry.map_err(io_err("list", &self.incoming))?;
            let dir = entry.path();
            let meta_path = dir.join("meta.json");
            let meta = fs::read(&meta_path).map_err(io_err("read", &meta_path))?;
            let meta: BatchMeta =
                serde_json::from_slice(&meta).map_err(|e| SpoolError::Damaged {
                    path: meta_path.clone(),
                    detail: e.to_string(),
                })?;
            batches.push(SpooledBatch { dir, meta });
        }
        batches.sort_by(|a, b| {
            (&a.meta.received_at, &a.meta.batch_id).cmp(&(&b.meta.received_at, &b.meta.batch_id))
        });
        Ok(batches)
    }

    #[cfg(test)]
    fn injected_failure(&self, files: usize) -> bool {
        files >= self.fail_after_files.load(Ordering::Relaxed)
    }

    #[cfg(not(test))]
    fn injected_failure(&self, _files: usize) -> bool {
        false
    }

    #[cfg(test)]
    fn fail_after(&self, files: usize) {
        self.fail_after_files.store(files, Ordering::Relaxed);
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Creates `path` (it must not exist), writes `bytes` and fsyncs the data.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    // fdatasync: the data and the size; the name is made durable by the
    // directory fsyncs.
    file.sync_data().map_err(io_err("fsync", path))
}

/// fsyncs a directory (makes the names in it durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// Creates or replaces `path` with `bytes` and fsyncs the data (for
/// records whose name is made durable by the caller).
pub(crate) fn overwrite_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

/// `time` as RFC 3339 UTC with milliseconds (the one copy is in
/// `deepmail_contact_plan::civil`).
pub(crate) use deepmail_contact_plan::civil::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;
    use deepmail_host::types::{Envelope, ForwardPath, SmtpParam};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    fn message(n: u8) -> Message {
        Message {
            envelope: Envelope {
                reverse_path: "ops@earth.example".into(),
                mail_parameters: vec![SmtpParam {
                    keyword: "BODY".into(),
                    value: Some("8BITMIME".into()),
                }],
                forward_paths: vec![ForwardPath {
                    mailbox: format!("user{n}@moon.example"),
                    parameters: vec![],
                }],
            },
            content: format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes(),
        }
    }

    fn meta(id: &str, messages: usize) -> BatchMeta {
        BatchMeta {
            batch_id: id.into(),
            received_at: rfc3339(SystemTime::now()),
            peer: "127.0.0.1:1".into(),
            identity: "token".into(),
            transport: "https".into(),
            messages,
            bytes: 3,
            sha256: "00".into(),
        }
    }

    fn tmp_entries(spool: &Spool) -> usize {
        fs::read_dir(spool.root().join("tmp")).unwrap().count()
    }

    #[test]
    fn relayed_batches_deduplicate_until_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let raw = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n";
        let batch = NewBatch {
            meta: meta("dedupe-1", 0),
            raw,
            messages: &[],
        };
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Stored);
        let stored = spool.list().unwrap().remove(0);
        spool.mark_relayed(&stored).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert!(spool.contains("dedupe-1"));
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Duplicate);
        let future = SystemTime::now() + std::time::Duration::from_secs(60);
        assert_eq!(spool.prune_relayed(SystemTime::UNIX_EPOCH).unwrap(), 0);
        assert_eq!(spool.prune_relayed(future).unwrap(), 1);
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Stored);
    }

    #[test]
    fn stores_every_file_and_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let msgs = [message(1), message(2)];
        let batch = NewBatch {
            meta: meta("abc", 2),
            raw: b"raw",
            messages: &msgs,
        };
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Stored);
        let d = dir.path().join("incoming/abc");
        let mut names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "0001.eml",
                "0001.envelope.json",
                "0002.eml",
                "0002.envelope.json",
                "batch.bsmtp",
                "meta.json"
            ]
        );
        let listed = spool.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].meta, batch.meta);
        assert_eq!(listed[0].raw().unwrap(), b"raw");
        let got = listed[0].messages().unwrap();
        assert_eq!(got[1].0.forward_paths[0].mailbox, "user2@moon.example");
        assert_eq!(got[1].1, msgs[1].content);
        assert_eq!(
            got[0].0.mail_parameters[0].value.as_deref(),
            Some("8BITMIME")
        );
        assert_eq!(tmp_entries(&spool), 0);
        assert!(spool.contains("abc"));
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Duplicate);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let msgs = [message(1), message(2)];
        for fail_at in 0..6 {
            spool.fail_after(fail_at);
            let batch = NewBatch {
                meta: meta("half", 2),
                raw: b"raw",
                messages: &msgs,
            };
            assert!(spool.store(&batch).is_err(), "fail at file {fail_at}");
            assert!(!spool.contains("half"));
            assert!(spool.list().unwrap().is_empty());
            assert_eq!(tmp_entries(&spool), 0);
        }
        spool.fail_after(usize::MAX);
        let batch = NewBatch {
            meta: meta("half", 2),
            raw: b"raw",
            messages: &msgs,
        };
        assert_eq!(spool.store(&batch).unwrap(), StoreOutcome::Stored);
    }

    #[test]
    fn crash_leftovers_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(Spool::open(dir.path()).unwrap());
        // What a crash between write and rename leaves.
        let leftover = dir.path().join("tmp/abc.123.0");
        fs::create_dir(&leftover).unwrap();
        fs::write(leftover.join("batch.bsmtp"), b"half").unwrap();
        fs::write(dir.path().join("tmp/stray"), b"x").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.cleaned_leftovers(), 2);
        assert_eq!(tmp_entries(&spool), 0);
        assert!(spool.list().unwrap().is_empty());
        assert!(!spool.contains("abc"));
    }

    #[test]
    fn concurrent_identical_stores_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        for round in 0..20 {
            let id = format!("race-{round}");
            let threads = 8;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (spool, barrier, id) = (spool.clone(), barrier.clone(), id.clone());
                    std::thread::spawn(move || {
                        let msgs = [message(1)];
                        barrier.wait();
                        spool
                            .store(&NewBatch {
                                meta: meta(&id, 1),
                                raw: b"raw",
                                messages: &msgs,
                            })
                            .unwrap()
                    })
                })
                .collect();
            let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let stored = outcomes
                .iter()
                .filter(|o| **o == StoreOutcome::Stored)
                .count();
            assert_eq!(stored, 1, "round {round}: {outcomes:?}");
        }
        assert_eq!(spool.list().unwrap().len(), 20);
        assert_eq!(tmp_entries(&spool), 0);
    }

    #[test]
    fn batch_ids_are_checked() {
        for ok in ["a", "A-z_0.9:x", &"f".repeat(128), "..."] {
            assert!(is_valid_batch_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"f".repeat(129), "a\0"] {
            assert!(!is_valid_batch_id(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let err = spool
            .store(&NewBatch {
                meta: meta("..", 0),
                raw: b"",
                messages: &[],
            })
            .unwrap_err();
        assert!(matches!(err, SpoolError::InvalidBatchId(_)));
    }

    #[test]
    fn rfc3339_formats_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_294_400_250);
        assert_eq!(rfc3339(t), "2024-03-01T12:00:00.250Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
