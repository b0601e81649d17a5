//! The outbound queue: messages accepted from the local MTA (SMTP ingress,
//! `deepmail submit`) or generated here (DSNs), waiting to leave, and the
//! batches they leave in. Every file is fsynced before the caller
//! acknowledges anything; nothing is deleted before the next hop said 2xx.
//!
//! ```text
//! SPOOL/
//!   queue/<msg_id>/          one message for one destination (appears atomically)
//!     message.eml            RFC 5322 content, byte for byte
//!     entry.json             envelope, destination, received_at, size, sha256, origin
//!   batches/<batch_id>.json  a batch: its members, attempts, next attempt, last error
//!   tmp/                     partial writes (removed at start)
//! ```
//!
//! A message belongs to at most one batch. A batch is written before its
//! first send and keeps its id across retries and restarts, so the far
//! side deduplicates by that id (the `Idempotency-Key`) and a message sent
//! twice around a crash is stored once.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::spool::{io_err, sync_dir, to_json, write_synced, SpoolError, SpooledEnvelope};

/// Where a queued message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "domain")]
pub enum Destination {
    /// Across the link, to the gateway of this mail domain (lower case).
    Remote(String),
    /// To the local MTA by SMTP (DSNs to local senders).
    Local,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Remote(d) => write!(f, "{d}"),
            Destination::Local => write!(f, "local MTA"),
        }
    }
}

/// What `entry.json` records about a queued message. Never rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The queue id (directory name).
    pub id: String,
    /// Where it goes.
    pub destination: Destination,
    /// Its envelope (only the recipients for `destination`).
    pub envelope: SpooledEnvelope,
    /// When it was accepted, Unix milliseconds.
    pub received_ms: u64,
    /// Size of `message.eml`.
    pub bytes: u64,
    /// Where it came from, e.g. `smtp [127.0.0.1:40000] helo=mta.earth.example`.
    pub origin: String,
    /// Its `Message-ID` header, for logs (may be empty).
    pub message_id: String,
}

/// A batch: messages for one destination sent as one object under one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The batch id: the `Idempotency-Key` on the wire.
    pub id: String,
    /// Where it goes.
    pub destination: Destination,
    /// Queue ids, in batch order.
    pub members: Vec<String>,
    /// When it was formed, Unix ms.
    pub created_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// Not before this, Unix ms.
    pub next_attempt_ms: u64,
    /// What went wrong last time.
    pub last_error: Option<String>,
}

/// The queue directories. Any number of handles may read; one gateway
/// process writes (see [`crate::lock`]).
#[derive(Debug)]
pub struct Queue {
    queue: PathBuf,
    batches: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh id: time, process and counter plus 32 random bits, so ids do not
/// repeat across restarts or between gateways.
fn fresh_id(prefix: &str, counter: &AtomicU64) -> String {
    let mut random = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    format!(
        "{prefix}{:011x}-{:x}-{}-{}",
        now_ms(),
        std::process::id(),
        counter.fetch_add(1, Ordering::Relaxed),
        hex::encode(random)
    )
}

impl Queue {
    /// The queue under `spool_root`, creating its directories. With
    /// `owner` (the gateway itself), partial writes a crash left in `tmp/`
    /// are removed; tools that only read or edit pass `false`.
    pub fn open(spool_root: &Path, owner: bool) -> Result<Queue, SpoolError> {
        let queue = spool_root.join("queue");
        let batches = spool_root.join("batches");
        let tmp = spool_root.join("tmp");
        for dir in [&queue, &batches, &tmp] {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        if owner {
            for entry in fs::read_dir(&tmp).map_err(io_err("list", &tmp))? {
                let path = entry.map_err(io_err("list", &tmp))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("q-") || name.starts_with("b-") {
                    let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
                }
            }
        }
        Ok(Queue {
            queue,
            batches,
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// Adds a message durably and returns its entry. When this returns, the
    /// files and the directory entry are on disk.
    pub fn enqueue(
        &self,
        destination: Destination,
        envelope: SpooledEnvelope,
        content: &[u8],
        origin: String,
    ) -> Result<QueueEntry, SpoolError> {
        let id = fresh_id("", &self.counter);
        let entry = QueueEntry {
            id: id.clone(),
            destination,
            envelope,
            received_ms: now_ms(),
            bytes: content.len() as u64,
            origin,
            message_id: header_value(content, "message-id").unwrap_or_default(),
        };
        let work = self.tmp.join(format!("q-{id}"));
        fs::create_dir(&work).map_err(io_err("create", &work))?;
        let written = write_synced(&work.join("message.eml"), content)
            .and_then(|()| write_synced(&work.join("entry.json"), &to_json(&entry)))
            .and_then(|()| sync_dir(&work));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&work);
            return Err(e);
        }
        let target = self.queue.join(&id);
        fs::rename(&work, &target).map_err(io_err("rename", &target))?;
        sync_dir(&self.queue)?;
        Ok(entry)
    }

    /// Every queued message, oldest first. Damaged entries are reported,
    /// not skipped silently: they come back as errors with their path.
    pub fn entries(&self) -> Result<Vec<Result<QueueEntry, SpoolError>>, SpoolError> {
        let mut out = Vec::new();
        for dirent in fs::read_dir(&self.queue).map_err(io_err("list", &self.queue))? {
            let dir = dirent.map_err(io_err("list", &self.queue))?.path();
            let path = dir.join("entry.json");
            out.push(read_json::<QueueEntry>(&path));
        }
        out.sort_by_key(|e| match e {
            Ok(e) => (e.received_ms, e.id.clone()),
            Err(_) => (0, String::new()),
        });
        Ok(out)
    }

    /// One entry.
    pub fn entry(&self, id: &str) -> Result<QueueEntry, SpoolError> {
        valid_id(id)?;
        read_json(&self.queue.join(id).join("entry.json"))
    }

    /// Whether message `id` is still queued.
    pub fn contains(&self, id: &str) -> bool {
        valid_id(id).is_ok() && self.queue.join(id).join("entry.json").is_file()
    }

    /// A message's content.
    pub fn content(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        valid_id(id)?;
        let path = self.queue.join(id).join("message.eml");
        fs::read(&path).map_err(io_err("read", &path))
    }

    /// Removes a message (delivered, returned with a DSN, or deleted by
    /// the operator).
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let dir = self.queue.join(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.queue),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::Io {
                op: "remove",
                path: dir,
                error: e,
            }),
        }
    }

    /// Forms and durably records a new batch of `members` for `destination`.
    pub fn new_batch(
        &self,
        destination: Destination,
        members: Vec<String>,
    ) -> Result<Batch, SpoolError> {
        let now = now_ms();
        let batch = Batch {
            id: fresh_id("b", &self.counter),
            destination,
            members,
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
        };
        self.save_batch(&batch)?;
        Ok(batch)
    }

    /// Rewrites a batch's record atomically (temporary file, fsync, rename).
    pub fn save_batch(&self, batch: &Batch) -> Result<(), SpoolError> {
        valid_id(&batch.id)?;
        let tmp = self.tmp.join(format!("b-{}.json", batch.id));
        let _ = fs::remove_file(&tmp);
        write_synced(&tmp, &to_json(batch))?;
        let target = self.batches.join(format!("{}.json", batch.id));
        fs::rename(&tmp, &target).map_err(io_err("rename", &target))?;
        sync_dir(&self.batches)
    }

    /// Forgets a batch (after its members were removed).
    pub fn remove_batch(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let path = self.batches.join(format!("{id}.json"));
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.batches),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::Io {
                op: "remove",
                path,
                error: e,
            }),
        }
    }

    /// Every recorded batch.
    pub fn batches(&self) -> Result<Vec<Batch>, SpoolError> {
        let mut out = Vec::new();
        for dirent in fs::read_dir(&self.batches).map_err(io_err("list", &self.batches))? {
            let path = dirent.map_err(io_err("list", &self.batches))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(read_json::<Batch>(&path)?);
            }
        }
        out.sort_by_key(|b| (b.created_ms, b.id.clone()));
        Ok(out)
    }

    /// A snapshot: batches (with members that still exist) and the
    /// messages in none, grouped by destination, oldest first.
    pub fn snapshot(&self) -> Result<Snapshot, SpoolError> {
        let mut entries = BTreeMap::new();
        let mut damaged = Vec::new();
        for e in self.entries()? {
            match e {
                Ok(e) => {
                    entries.insert(e.id.clone(), e);
                }
                Err(e) => damaged.push(e.to_string()),
            }
        }
        let mut batched = HashSet::new();
        let mut batches = Vec::new();
        for mut b in self.batches()? {
            b.members.retain(|m| entries.contains_key(m));
            batched.extend(b.members.iter().cloned());
            batches.push(b);
        }
        let mut unbatched: BTreeMap<Destination, Vec<QueueEntry>> = BTreeMap::new();
        let mut loose: Vec<&QueueEntry> = entries
            .values()
            .filter(|e| !batched.contains(&e.id))
            .collect();
        loose.sort_by_key(|e| (e.received_ms, e.id.clone()));
        for e in loose {
            unbatched
                .entry(e.destination.clone())
                .or_default()
                .push(e.clone());
        }
        Ok(Snapshot {
            entries,
            batches,
            unbatched,
            damaged,
        })
    }
}

/// What the queue holds at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every readable entry by id.
    pub entries: BTreeMap<String, QueueEntry>,
    /// Recorded batches; members no longer queued are left out.
    pub batches: Vec<Batch>,
    /// Messages in no batch, per destination, oldest first.
    pub unbatched: BTreeMap<Destination, Vec<QueueEntry>>,
    /// Entries that could not be read (path and reason).
    pub damaged: Vec<String>,
}

fn valid_id(id: &str) -> Result<(), SpoolError> {
    if crate::spool::is_valid_batch_id(id) {
        Ok(())
    } else {
        Err(SpoolError::InvalidBatchId(id.to_string()))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, SpoolError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| SpoolError::Damaged {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The unfolded value of the first header field `name` (lower case) in
/// `content`'s header section, if any.
pub fn header_value(content: &[u8], name: &str) -> Option<String> {
    let end = memchr_header_end(content);
    let head = String::from_utf8_lossy(&content[..end]);
    let mut value: Option<String> = None;
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((field, rest)) = line.split_once(':') {
            if field.trim().eq_ignore_ascii_case(name) {
                value = Some(rest.trim().to_string());
            }
        }
    }
    value
}

fn memchr_header_end(content: &[u8]) -> usize {
    let limit = content.len().min(256 << 10);
    let head = &content[..limit];
    head.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| head.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpooledRecipient;

    fn env(to: &str) -> SpooledEnvelope {
        SpooledEnvelope {
            reverse_path: "alice@earth.example".into(),
            mail_parameters: vec![],
            forward_paths: vec![SpooledRecipient {
                mailbox: to.into(),
                parameters: vec![],
            }],
        }
    }

    #[test]
    fn enqueue_batch_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let moon = Destination::Remote("moon.example".into());
        let a = q
            .enqueue(
                moon.clone(),
                env("bob@moon.example"),
                b"Message-ID: <1@x>\r\n\r\nhi\r\n",
                "t".into(),
            )
            .unwrap();
        assert_eq!(a.message_id, "<1@x>");
        let b = q
            .enqueue(
                moon.clone(),
                env("eve@moon.example"),
                b"\r\nyo\r\n",
                "t".into(),
            )
            .unwrap();
        let s = q.snapshot().unwrap();
        assert_eq!(s.unbatched[&moon].len(), 2);
        let batch = q.new_batch(moon.clone(), vec![a.id.clone()]).unwrap();
        // Reopened (as after a restart): the batch and its member survive.
        let q = Queue::open(dir.path(), true).unwrap();
        let s = q.snapshot().unwrap();
        assert_eq!(s.batches, vec![batch.clone()]);
        assert_eq!(s.unbatched[&moon].len(), 1);
        assert_eq!(s.unbatched[&moon][0].id, b.id);
        assert_eq!(
            q.content(&a.id).unwrap(),
            b"Message-ID: <1@x>\r\n\r\nhi\r\n"
        );
        q.remove(&a.id).unwrap();
        let s = q.snapshot().unwrap();
        assert!(s.batches[0].members.is_empty());
        q.remove_batch(&batch.id).unwrap();
        assert!(q.batches().unwrap().is_empty());
    }

    #[test]
    fn damaged_entry_is_reported_not_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let e = q
            .enqueue(Destination::Local, env("a@b"), b"x", "t".into())
            .unwrap();
        fs::write(
            dir.path().join("queue").join(&e.id).join("entry.json"),
            b"{",
        )
        .unwrap();
        let s = q.snapshot().unwrap();
        assert!(s.entries.is_empty());
        assert_eq!(s.damaged.len(), 1);
        assert!(s.damaged[0].contains("entry.json"), "{}", s.damaged[0]);
    }

    #[test]
    fn header_value_unfolds_and_stops_at_body() {
        let m = b"Subject: a\r\n b\r\nMessage-ID:\r\n <x@y>\r\n\r\nMessage-ID: <body>\r\n";
        assert_eq!(header_value(m, "subject").as_deref(), Some("a b"));
        assert_eq!(header_value(m, "message-id").as_deref(), Some("<x@y>"));
        assert_eq!(header_value(b"no headers", "x"), None);
    }
}
