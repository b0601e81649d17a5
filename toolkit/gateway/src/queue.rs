//! The outbound queue: messages accepted from the local MTA (SMTP ingress,
//! `deepmail submit`) or generated here (DSNs), waiting to leave, and the
//! batches they leave in. Every file is fsynced before the caller
//! acknowledges anything; nothing is deleted before the next hop said 2xx.
//!
//! ```text
//! SPOOL/
//!   queue/<shard>/<msg_id>.msg  one message for one destination, one file (appears
//!                               atomically): its entry (envelope, destination,
//!                               received time, size, origin) as a line of JSON,
//!                               then the RFC 5322 content byte for byte (`record.rs`);
//!                               <shard> is one of 256 (`00`..`ff`, a hash of the id),
//!                               made when first needed
//!   queue/<shard>/<msg_id>.warned  the sender had its delay warning
//!   batches/<batch_id>.json     a batch: its members, attempts, next attempt, last error
//!   tmp/                        partial writes (removed at start)
//!   quarantine/                 damaged records the gateway moved aside (kept, never read again)
//!     queue/<msg_id>.msg          a message record that did not read back, with .reason beside it
//!     batches/<batch_id>.json     a batch record that did not parse, with .reason beside it
//! ```
//!
//! Spools written before the one-file record keep each message as a
//! directory (`<msg_id>/message.eml`, `<msg_id>/entry.json`, maybe
//! `delay-warned`), in its shard or directly under `queue/`. Tools read
//! them as they are; the gateway rewrites them as records as it builds its
//! index at start, in the same walk of the shards.
//!
//! A damaged record (an empty or truncated file, as a power loss can leave)
//! must not stop the queue: the gateway moves it into `quarantine/`, logs
//! it once and counts it, and everything else flows. A quarantined batch's
//! members are simply batched again under a new id; a quarantined message
//! keeps its content for the operator.
//!
//! Messages are spread over 256 shard directories, as Exim's
//! `split_spool_directory` does: with 200,000 messages in one directory,
//! creating and renaming entries in it cost twice the CPU (measured with
//! `deepmail bench queue`). A spool written before sharding (messages
//! directly under `queue/`) is still read, and the gateway moves its
//! messages into their shards when it opens the queue.
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
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::spool::{io_err, sync_dir, to_json, write_synced, SpoolError, SpooledEnvelope};

mod index;
mod record;
pub(crate) use index::Index;

/// A record that could not be read: its path and why.
type Unreadable = (PathBuf, String);

/// A damaged record the gateway moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// Why it could not be read.
    pub reason: String,
}

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
    /// On a BP route: which bundles of the batch's ADUs (one per message)
    /// the far side already acknowledged, so a later attempt sends only
    /// the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<BundleProgress>,
    /// Bytes of bundles this attempt may send before the contact window
    /// closes (set by the scheduler; not stored).
    #[serde(skip)]
    pub budget: Option<u64>,
}

/// The bundles of one ADU (a message) that crossed. Valid only for the
/// same ADU (its SHA-256) cut into the same bundles: otherwise it starts
/// over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleProgress {
    /// Lower-case hex SHA-256 of the ADU (the encoded, maybe compressed,
    /// batch).
    pub adu_sha256: String,
    /// How many bundles the ADU was cut into.
    pub bundles: u32,
    /// Bytes of those bundles in all.
    pub bytes: u64,
    /// Positions (0-based, ascending) of the bundles acknowledged.
    pub acknowledged: Vec<u32>,
    /// Bytes of the acknowledged bundles.
    pub acknowledged_bytes: u64,
}

/// The queue directories. Any number of handles may read; one gateway
/// process writes (see [`crate::lock`]).
#[derive(Debug)]
pub struct Queue {
    queue: PathBuf,
    batches: PathBuf,
    tmp: PathBuf,
    quarantine: PathBuf,
    /// The gateway itself (moves damaged records aside, keeps the index),
    /// not a tool.
    owner: bool,
    counter: AtomicU64,
    /// The owner's index; `None` until the first [`Queue::refresh`].
    index: Mutex<Option<Index>>,
    /// `SPOOL/queue.changed`: a tool that edits the queue of a running
    /// gateway rewrites it, and the gateway re-reads the spool.
    marker: PathBuf,
    /// The marker's modification time when the index was built.
    marker_seen: Mutex<Option<SystemTime>>,
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
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
            quarantine: spool_root.join("quarantine"),
            owner,
            counter: AtomicU64::new(0),
            index: Mutex::new(None),
            marker: spool_root.join("queue.changed"),
            marker_seen: Mutex::new(None),
        })
    }

    /// The index, if this is the owner and it is built.
    pub(crate) fn index(&self) -> MutexGuard<'_, Option<Index>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a write this handle made to the index (the owner), or tells
    /// a running gateway that the spool changed under it (a tool).
    fn changed(&self, apply: impl FnOnce(&mut Index)) {
        if self.owner {
            if let Some(index) = self.index().as_mut() {
                apply(index);
            }
        } else {
            let _ = fs::write(&self.marker, now_ms().to_string());
        }
    }

    fn marker_mtime(&self) -> Option<SystemTime> {
        fs::metadata(&self.marker).and_then(|m| m.modified()).ok()
    }

    /// Records durably that message `id`'s sender had its delay warning
    /// (a file beside it), so it is sent once, across restarts too.
    pub fn mark_warned(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let (marker, dir) = match self.locate(id) {
            Some(Stored::Legacy(dir)) => (dir.join(WARNED), dir),
            _ => (self.warned_marker(id), self.queue.join(shard_of(id))),
        };
        match write_synced(&marker, b"") {
            Err(SpoolError::Io { error, .. }) if error.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
        sync_dir(&dir)?;
        if let Some(index) = self.index().as_mut() {
            if let Some(e) = index.entries.get(id) {
                let key = (e.received_ms, id.to_string());
                index.unwarned.remove(&key);
            }
        }
        Ok(())
    }

    /// Drops `id` from the owner's index (its files are gone or unreadable).
    pub fn remove_from_index(&self, id: &str) {
        if let Some(index) = self.index().as_mut() {
            index.remove_entry(id);
        }
    }

    /// A delivery to `destination` succeeded: new batches to it go at once.
    pub fn release(&self, destination: &Destination) {
        if let Some(index) = self.index().as_mut() {
            index.release(destination);
        }
    }

    /// The owner's index, built from the spool the first time and again
    /// whenever a tool changed the spool (`deepmail queue retry|delete`,
    /// `deepmail submit`); otherwise one `stat`. Returns the damaged
    /// records that building moved into `quarantine/` (each once).
    pub fn refresh(&self) -> Result<Vec<Quarantined>, SpoolError> {
        if !self.owner {
            return Ok(Vec::new());
        }
        let mtime = self.marker_mtime();
        let mut seen = self.marker_seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.index();
        if index.is_some() && *seen == mtime {
            return Ok(Vec::new());
        }
        // Writers wait while the spool is read: what they write lands
        // after, in the new index.
        let (built, quarantined) = self.build_index()?;
        *index = Some(built);
        *seen = mtime;
        Ok(quarantined)
    }

    /// The index of what the spool holds, read one record at a time (no
    /// envelope is kept), quarantining what is damaged: the same view as
    /// [`Queue::snapshot`], in a fraction of its memory.
    fn build_index(&self) -> Result<(Index, Vec<Quarantined>), SpoolError> {
        let mut index = Index::default();
        let mut quarantined = Vec::new();
        let mut rewritten = 0usize;
        for mut stored in self.records()? {
            // A message of an older spool becomes a record as it is read.
            if let Stored::Legacy(dir) = &stored {
                match self.rewrite_legacy(dir)? {
                    Rewrite::Done(record) => {
                        rewritten += 1;
                        stored = record;
                    }
                    // Its record is in this listing too (a rewrite cut
                    // short by a crash): indexed from there.
                    Rewrite::AlreadyThere => continue,
                    Rewrite::Unreadable => {}
                }
            }
            match self.read_entry(&stored) {
                Ok(e) => index.add_entry_warned(&e, self.is_warned(&stored, &e.id)),
                Err(SpoolError::Damaged { path, detail }) => {
                    let reason = format!("{} is damaged: {detail}", path.display());
                    quarantined.push(self.quarantine_message(&stored, &reason)?);
                }
                // Unreadable (a directory without entry.json: a removal
                // cut short): moved aside too, content kept.
                Err(e) => {
                    let reason = format!("{} cannot be read: {e}", stored.path().display());
                    quarantined.push(self.quarantine_message(&stored, &reason)?);
                }
            }
        }
        if rewritten > 0 {
            tracing::info!(
                stage = "queue",
                messages = rewritten,
                "rewrote the messages of an older spool as one-file records"
            );
        }
        let (readable, unreadable) = self.read_batches()?;
        for (path, reason) in unreadable {
            quarantined.push(self.quarantine("batches", &path, &reason)?);
        }
        for b in readable {
            index.put_batch(b);
        }
        Ok((index, quarantined))
    }

    /// Adds a message durably and returns its entry. When this returns, the
    /// record and its name are on disk: the record fdatasync'd in `tmp/`,
    /// renamed into its shard, the shard fsynced (two fsyncs).
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
        if let Err(e) = record::write(&work, &entry, content) {
            let _ = fs::remove_file(&work);
            return Err(e);
        }
        let shard = self.queue.join(shard_of(&id));
        // Shards are made as they are first needed (a new shard is
        // durable before anything is renamed into it).
        match fs::create_dir(&shard) {
            Ok(()) => sync_dir(&self.queue)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                let _ = fs::remove_file(&work);
                return Err(SpoolError::Io {
                    op: "create",
                    path: shard,
                    error: e,
                });
            }
        }
        let target = shard.join(record::file_name(&id));
        fs::rename(&work, &target).map_err(io_err("rename", &target))?;
        sync_dir(&shard)?;
        self.changed(|i| i.add_entry(&entry));
        Ok(entry)
    }

    /// Where message `id` (valid) is: its record, or the directory of a
    /// spool written before records (in its shard, or directly under
    /// `queue/` before sharding). `None`: not queued.
    fn locate(&self, id: &str) -> Option<Stored> {
        let shard = self.queue.join(shard_of(id));
        let file = shard.join(record::file_name(id));
        if file.is_file() {
            return Some(Stored::Record(file));
        }
        [shard.join(id), self.queue.join(id)]
            .into_iter()
            .find(|dir| dir.join("entry.json").is_file())
            .map(Stored::Legacy)
    }

    /// Where message `id`'s delay-warning marker goes (beside its record).
    fn warned_marker(&self, id: &str) -> PathBuf {
        self.queue
            .join(shard_of(id))
            .join(format!("{id}.{WARNED_EXT}"))
    }

    /// Whether the sender of the message stored at `stored` had its delay
    /// warning.
    fn is_warned(&self, stored: &Stored, id: &str) -> bool {
        match stored {
            Stored::Record(_) => self.warned_marker(id).exists(),
            Stored::Legacy(dir) => dir.join(WARNED).exists(),
        }
    }

    /// The path of message `id`'s record (or, in a spool written before
    /// records, its directory), for tools and tests that look at the files.
    pub fn message_path(&self, id: &str) -> PathBuf {
        match self.locate(id) {
            Some(s) => s.path().to_path_buf(),
            None => self.queue.join(shard_of(id)).join(record::file_name(id)),
        }
    }

    /// Every stored message: the records and directories in the shards,
    /// and any directory left directly under `queue/` (a spool written
    /// before sharding). Other files (delay-warning markers) are not
    /// messages.
    fn records(&self) -> Result<Vec<Stored>, SpoolError> {
        let mut out = Vec::new();
        for dirent in fs::read_dir(&self.queue).map_err(io_err("list", &self.queue))? {
            let dir = dirent.map_err(io_err("list", &self.queue))?.path();
            if is_shard(&dir) {
                for inner in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
                    let inner = inner.map_err(io_err("list", &dir))?;
                    let name = inner.file_name();
                    let is_dir = inner.file_type().is_ok_and(|t| t.is_dir());
                    if is_dir {
                        out.push(Stored::Legacy(inner.path()));
                    } else if name.to_str().and_then(record::id_of).is_some() {
                        out.push(Stored::Record(inner.path()));
                    }
                }
            } else if dir.is_dir() {
                out.push(Stored::Legacy(dir));
            }
        }
        Ok(out)
    }

    /// Rewrites the message a spool written before records keeps in
    /// directory `dir` (in a shard, or directly under `queue/` before
    /// sharding) as one record in its shard. The record is durable before
    /// the directory is removed; a crash between leaves both, and the next
    /// index build removes the directory whose record exists. A directory
    /// whose files do not read is left as it is, for quarantine.
    fn rewrite_legacy(&self, dir: &Path) -> Result<Rewrite, SpoolError> {
        let Some(id) = dir.file_name().and_then(|n| n.to_str()) else {
            return Ok(Rewrite::Unreadable);
        };
        if valid_id(id).is_err() {
            return Ok(Rewrite::Unreadable);
        }
        let shard = self.queue.join(shard_of(id));
        let target = shard.join(record::file_name(id));
        let outcome = if target.is_file() {
            Rewrite::AlreadyThere
        } else {
            let Ok(entry) = read_json::<QueueEntry>(&dir.join("entry.json")) else {
                return Ok(Rewrite::Unreadable);
            };
            let Ok(content) = fs::read(dir.join("message.eml")) else {
                return Ok(Rewrite::Unreadable);
            };
            if entry.id != id || entry.bytes != content.len() as u64 {
                return Ok(Rewrite::Unreadable);
            }
            if !shard.is_dir() {
                fs::create_dir(&shard).map_err(io_err("create", &shard))?;
                sync_dir(&self.queue)?;
            }
            let work = self.tmp.join(format!("q-{id}"));
            let _ = fs::remove_file(&work);
            record::write(&work, &entry, &content)?;
            if dir.join(WARNED).exists() {
                let marker = self.warned_marker(id);
                let _ = fs::remove_file(&marker);
                write_synced(&marker, b"")?;
            }
            fs::rename(&work, &target).map_err(io_err("rename", &target))?;
            sync_dir(&shard)?;
            Rewrite::Done(Stored::Record(target))
        };
        fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
        sync_dir(dir.parent().unwrap_or(&self.queue))?;
        Ok(outcome)
    }

    /// The entry of a stored message.
    fn read_entry(&self, stored: &Stored) -> Result<QueueEntry, SpoolError> {
        match stored {
            Stored::Record(path) => Ok(record::read_head(path)?.entry),
            Stored::Legacy(dir) => read_json(&dir.join("entry.json")),
        }
    }

    /// Every queued message, oldest first. Damaged entries are reported,
    /// not skipped silently: they come back as errors with their path.
    pub fn entries(&self) -> Result<Vec<Result<QueueEntry, SpoolError>>, SpoolError> {
        let mut out: Vec<_> = self.records()?.iter().map(|s| self.read_entry(s)).collect();
        out.sort_by_key(|e| match e {
            Ok(e) => (e.received_ms, e.id.clone()),
            Err(_) => (0, String::new()),
        });
        Ok(out)
    }

    /// One entry.
    pub fn entry(&self, id: &str) -> Result<QueueEntry, SpoolError> {
        valid_id(id)?;
        match self.locate(id) {
            Some(stored) => self.read_entry(&stored),
            None => Err(not_queued(self.message_path(id))),
        }
    }

    /// Whether message `id` is still queued.
    pub fn contains(&self, id: &str) -> bool {
        valid_id(id).is_ok() && self.locate(id).is_some()
    }

    /// A message's content.
    pub fn content(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        Ok(self.message(id)?.1)
    }

    /// A message's entry and content, read together (one open of its
    /// record).
    pub fn message(&self, id: &str) -> Result<(QueueEntry, Vec<u8>), SpoolError> {
        valid_id(id)?;
        let path = self.queue.join(shard_of(id)).join(record::file_name(id));
        match record::read_head(&path) {
            Ok(head) => head.content(&path),
            Err(SpoolError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
                match self.locate(id) {
                    Some(Stored::Legacy(dir)) => {
                        let entry = read_json(&dir.join("entry.json"))?;
                        let path = dir.join("message.eml");
                        let content = fs::read(&path).map_err(io_err("read", &path))?;
                        Ok((entry, content))
                    }
                    Some(Stored::Record(path)) => record::read_head(&path)?.content(&path),
                    None => Err(not_queued(path)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes a message (delivered, returned with a DSN, or deleted by
    /// the operator).
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let removed = match self.locate(id) {
            None => Ok(()),
            Some(Stored::Record(path)) => {
                let shard = path.parent().unwrap_or(&self.queue).to_path_buf();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        let _ = fs::remove_file(self.warned_marker(id));
                        sync_dir(&shard)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(SpoolError::Io {
                        op: "remove",
                        path,
                        error: e,
                    }),
                }
            }
            Some(Stored::Legacy(dir)) => match fs::remove_dir_all(&dir) {
                Ok(()) => sync_dir(dir.parent().unwrap_or(&self.queue)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(SpoolError::Io {
                    op: "remove",
                    path: dir,
                    error: e,
                }),
            },
        };
        if removed.is_ok() {
            self.changed(|i| i.remove_entry(id));
        }
        removed
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
            sent: Vec::new(),
            budget: None,
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
        sync_dir(&self.batches)?;
        self.changed(|i| i.put_batch(batch.clone()));
        Ok(())
    }

    /// Forgets a batch (after its members were removed).
    pub fn remove_batch(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let path = self.batches.join(format!("{id}.json"));
        let removed = match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.batches),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::Io {
                op: "remove",
                path,
                error: e,
            }),
        };
        if removed.is_ok() {
            self.changed(|i| i.remove_batch(id));
        }
        removed
    }

    /// Every readable batch record, and what could not be read of the
    /// rest (path and reason).
    fn read_batches(&self) -> Result<(Vec<Batch>, Vec<Unreadable>), SpoolError> {
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        for dirent in fs::read_dir(&self.batches).map_err(io_err("list", &self.batches))? {
            let path = dirent.map_err(io_err("list", &self.batches))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_json::<Batch>(&path) {
                    Ok(b) => out.push(b),
                    Err(e @ SpoolError::Damaged { .. }) => damaged.push((path, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by_key(|b| (b.created_ms, b.id.clone()));
        Ok((out, damaged))
    }

    /// Every readable batch record (damaged ones are left out; see
    /// [`Queue::snapshot`]).
    pub fn batches(&self) -> Result<Vec<Batch>, SpoolError> {
        Ok(self.read_batches()?.0)
    }

    /// Moves the damaged record at `path` (a message directory, or a batch
    /// file) into `quarantine/<kind>/`, with the reason beside it.
    fn quarantine(&self, kind: &str, path: &Path, reason: &str) -> Result<Quarantined, SpoolError> {
        let dir = self.quarantine.join(kind);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let mut to = dir.join(&name);
        let mut n = 1;
        while to.exists() {
            n += 1;
            to = dir.join(format!("{name}.{n}"));
        }
        fs::rename(path, &to).map_err(io_err("rename", &to))?;
        let note = if to.is_dir() {
            to.join("reason.txt")
        } else {
            dir.join(format!(
                "{}.reason",
                to.file_name().unwrap_or_default().to_string_lossy()
            ))
        };
        write_synced(&note, format!("{reason}\n").as_bytes())?;
        sync_dir(&dir)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(Quarantined {
            from: path.to_path_buf(),
            to,
            reason: reason.to_string(),
        })
    }

    /// Moves a damaged message (record or directory) into
    /// `quarantine/queue/`; a record's delay-warning marker goes with
    /// nothing left to mark.
    fn quarantine_message(&self, stored: &Stored, reason: &str) -> Result<Quarantined, SpoolError> {
        let moved = self.quarantine("queue", stored.path(), reason)?;
        if let Stored::Record(path) = stored {
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(record::id_of)
            {
                let _ = fs::remove_file(self.warned_marker(id));
            }
        }
        Ok(moved)
    }

    /// What `quarantine/` holds: (path, reason), for `deepmail queue list`.
    pub fn quarantined(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        for kind in ["queue", "batches"] {
            let Ok(dir) = fs::read_dir(self.quarantine.join(kind)) else {
                continue;
            };
            for dirent in dir.flatten() {
                let path = dirent.path();
                if path.extension().is_some_and(|e| e == "reason") {
                    continue;
                }
                let note = if path.is_dir() {
                    path.join("reason.txt")
                } else {
                    PathBuf::from(format!("{}.reason", path.display()))
                };
                let reason = fs::read_to_string(note).unwrap_or_default();
                out.push((path, reason.trim().to_string()));
            }
        }
        out.sort();
        out
    }

    /// A snapshot: batches (with members that still exist) and the
    /// messages in none, grouped by destination, oldest first.
    pub fn snapshot(&self) -> Result<Snapshot, SpoolError> {
        let mut entries = BTreeMap::new();
        let mut damaged = Vec::new();
        let mut quarantined = Vec::new();
        let mut warned = HashSet::new();
        for stored in self.records()? {
            match self.read_entry(&stored) {
                Ok(e) => {
                    if self.is_warned(&stored, &e.id) {
                        warned.insert(e.id.clone());
                    }
                    entries.insert(e.id.clone(), e);
                }
                Err(SpoolError::Damaged { path, detail }) if self.owner => {
                    let reason = format!("{} is damaged: {detail}", path.display());
                    quarantined.push(self.quarantine_message(&stored, &reason)?);
                }
                Err(e) => damaged.push(e.to_string()),
            }
        }
        let (readable, unreadable) = self.read_batches()?;
        for (path, reason) in unreadable {
            if self.owner {
                quarantined.push(self.quarantine("batches", &path, &reason)?);
            } else {
                damaged.push(reason);
            }
        }
        let mut batched = HashSet::new();
        let mut batches = Vec::new();
        for mut b in readable {
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
            quarantined,
            warned,
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
    /// Records that could not be read (path and reason), as a tool that
    /// does not own the queue sees them; the gateway quarantines them.
    pub damaged: Vec<String>,
    /// Damaged records this snapshot moved into `quarantine/` (the gateway
    /// only): each is reported once, here.
    pub quarantined: Vec<Quarantined>,
    /// Messages whose senders had their delay warning.
    pub warned: HashSet<String>,
}

/// In a message directory of a spool written before records, beside
/// `entry.json`: the sender had its delay warning.
const WARNED: &str = "delay-warned";

/// A record's delay-warning marker: `<id>.warned` beside `<id>.msg`.
const WARNED_EXT: &str = "warned";

/// What [`Queue::rewrite_legacy`] did with an older message directory.
enum Rewrite {
    /// Rewritten as this record; the directory is gone.
    Done(Stored),
    /// Its record existed already; the directory is gone.
    AlreadyThere,
    /// Its files do not read: left as it is.
    Unreadable,
}

/// How a queued message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    /// One file, `<shard>/<id>.msg` (`record.rs`).
    Record(PathBuf),
    /// A directory with `message.eml` and `entry.json`, as spools were
    /// written before records.
    Legacy(PathBuf),
}

impl Stored {
    fn path(&self) -> &Path {
        match self {
            Stored::Record(p) | Stored::Legacy(p) => p,
        }
    }
}

/// The error for a message that is not (or no longer) queued.
fn not_queued(path: PathBuf) -> SpoolError {
    SpoolError::Io {
        op: "read",
        path,
        error: io::Error::new(io::ErrorKind::NotFound, "no such queued message"),
    }
}

/// The bytes of a queue record (entry and content) as the gateway writes
/// it, without syncing: for tools that build a spool to measure
/// (`deepmail bench queue`), which rename it to
/// `queue/<shard_of(id)>/<id>.msg`.
pub fn record_bytes(entry: &QueueEntry, content: &[u8]) -> Vec<u8> {
    record::bytes(entry, content)
}

/// Shard directories under `queue/`.
const SHARDS: u32 = 256;

/// The shard of message `id`: FNV-1a of the id, modulo 256, in hex.
pub fn shard_of(id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{:02x}", h % SHARDS)
}

/// Whether `dir` is a shard directory (two hex digits, no `entry.json`).
fn is_shard(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        && !dir.join("entry.json").exists()
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
        let path = q.message_path(&e.id);
        assert!(path.ends_with(format!("{}/{}.msg", shard_of(&e.id), e.id)));
        // Cut short, as a crash before the fsync can leave it.
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 1]).unwrap();
        // A tool (not the owner) sees it as damaged and leaves it alone.
        let tool = Queue::open(dir.path(), false).unwrap();
        let s = tool.snapshot().unwrap();
        assert!(s.entries.is_empty());
        assert_eq!(s.damaged.len(), 1);
        assert!(
            s.damaged[0].contains(".msg") && s.damaged[0].contains("0 octets of content"),
            "{}",
            s.damaged[0]
        );
        assert!(path.is_file());
        assert!(tool.content(&e.id).is_err(), "never a cut message");
    }

    #[test]
    fn the_owner_quarantines_damaged_records_once_and_the_rest_flows() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let good = q
            .enqueue(Destination::Local, env("a@b"), b"good", "t".into())
            .unwrap();
        let bad = q
            .enqueue(Destination::Local, env("c@d"), b"kept", "t".into())
            .unwrap();
        let batch = q
            .new_batch(Destination::Local, vec![good.id.clone()])
            .unwrap();
        // What a power loss can leave: an empty batch record, a truncated entry.
        fs::write(
            dir.path()
                .join("batches")
                .join(format!("{}.json", batch.id)),
            b"",
        )
        .unwrap();
        let bad_path = q.message_path(&bad.id);
        let full = fs::read(&bad_path).unwrap();
        fs::write(&bad_path, &full[..30]).unwrap();

        let s = q.snapshot().unwrap();
        assert!(s.damaged.is_empty(), "{:?}", s.damaged);
        assert_eq!(s.quarantined.len(), 2, "{:?}", s.quarantined);
        // The good message flows: unbatched again, ready for a new batch.
        assert!(s.batches.is_empty());
        assert_eq!(s.unbatched[&Destination::Local][0].id, good.id);
        // The damaged record is kept as it was, with the reason.
        let moved = dir
            .path()
            .join("quarantine/queue")
            .join(format!("{}.msg", bad.id));
        assert_eq!(fs::read(&moved).unwrap(), &full[..30]);
        let reason = fs::read_to_string(
            dir.path()
                .join("quarantine/queue")
                .join(format!("{}.msg.reason", bad.id)),
        )
        .unwrap();
        assert!(reason.contains(".msg is damaged"), "{reason}");
        let listed = q.quarantined();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed
            .iter()
            .any(|(p, r)| p.ends_with(format!("{}.json", batch.id)) && r.contains("damaged")));

        // Reported once: the next snapshot has nothing new to say.
        let again = q.snapshot().unwrap();
        assert!(again.quarantined.is_empty() && again.damaged.is_empty());
        assert_eq!(again.unbatched[&Destination::Local].len(), 1);
    }

    /// Writes message `e` with `content` as a spool written before records
    /// kept it: a directory at `dir`.
    fn legacy(dir: &Path, e: &QueueEntry, content: &[u8], warned: bool) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("message.eml"), content).unwrap();
        fs::write(dir.join("entry.json"), to_json(e)).unwrap();
        if warned {
            fs::write(dir.join(WARNED), b"").unwrap();
        }
    }

    /// Spools written before records (a directory per message, in its
    /// shard or directly under queue/ before sharding) are read by tools
    /// as they are, and rewritten as records by the gateway, delay
    /// warnings kept.
    #[test]
    fn an_older_spool_is_read_and_rewritten_as_records() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let a = q
            .enqueue(Destination::Local, env("a@b"), b"flat", "t".into())
            .unwrap();
        let b = q
            .enqueue(Destination::Local, env("c@d"), b"sharded", "t".into())
            .unwrap();
        let c = q
            .enqueue(Destination::Local, env("e@f"), b"damaged", "t".into())
            .unwrap();
        for e in [&a, &b, &c] {
            q.remove(&e.id).unwrap();
        }
        let queue = dir.path().join("queue");
        let flat = queue.join(&a.id);
        let sharded = queue.join(shard_of(&b.id)).join(&b.id);
        let broken = queue.join(shard_of(&c.id)).join(&c.id);
        legacy(&flat, &a, b"flat", false);
        legacy(&sharded, &b, b"sharded", true);
        legacy(&broken, &c, b"damaged", false);
        fs::write(broken.join("entry.json"), b"{").unwrap();

        let tool = Queue::open(dir.path(), false).unwrap();
        assert_eq!(tool.content(&a.id).unwrap(), b"flat");
        assert_eq!(
            tool.message(&b.id).unwrap(),
            (b.clone(), b"sharded".to_vec())
        );
        let s = tool.snapshot().unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.damaged.len(), 1, "{:?}", s.damaged);
        assert!(s.warned.contains(&b.id));
        assert!(flat.is_dir() && sharded.is_dir(), "a tool moves nothing");

        // The gateway rewrites them as it builds its index at start, and
        // quarantines what does not read.
        let gateway = Queue::open(dir.path(), true).unwrap();
        assert!(flat.is_dir(), "nothing moves before the index is built");
        let quarantined = gateway.refresh().unwrap();
        assert_eq!(quarantined.len(), 1, "{quarantined:?}");
        assert!(!flat.exists() && !sharded.exists() && !broken.exists());
        assert_eq!(gateway.index().as_ref().unwrap().entries.len(), 2);
        for (e, content) in [(&a, &b"flat"[..]), (&b, b"sharded")] {
            let path = gateway.message_path(&e.id);
            assert!(path.ends_with(format!("{}.msg", e.id)), "{path:?}");
            assert_eq!(
                gateway.message(&e.id).unwrap(),
                ((*e).clone(), content.to_vec())
            );
        }
        let s = gateway.snapshot().unwrap();
        assert_eq!(s.entries.len(), 2);
        assert!(s.warned.contains(&b.id) && !s.warned.contains(&a.id));
        gateway.remove(&b.id).unwrap();
        assert!(!gateway.warned_marker(&b.id).exists());
        assert!(!gateway.contains(&b.id));
    }

    /// A crash after an older message's record was written but before its
    /// directory was removed leaves both: the next start keeps the record
    /// and removes the directory.
    #[test]
    fn a_rewrite_cut_short_by_a_crash_finishes_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let e = q
            .enqueue(Destination::Local, env("a@b"), b"both", "t".into())
            .unwrap();
        let old = dir.path().join("queue").join(shard_of(&e.id)).join(&e.id);
        legacy(&old, &e, b"both", false);
        let q = Queue::open(dir.path(), true).unwrap();
        assert!(q.refresh().unwrap().is_empty());
        assert!(!old.exists());
        assert_eq!(q.index().as_ref().unwrap().entries.len(), 1, "indexed once");
        assert_eq!(q.snapshot().unwrap().entries.len(), 1);
        assert_eq!(q.content(&e.id).unwrap(), b"both");
    }

    /// One fsync'd file per message: nothing else is left in the shard or
    /// in tmp/, and a delay warning is a marker beside the record that
    /// goes with it.
    #[test]
    fn a_message_is_one_file_in_its_shard() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        let e = q
            .enqueue(Destination::Local, env("a@b"), b"one", "t".into())
            .unwrap();
        let shard = dir.path().join("queue").join(shard_of(&e.id));
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|x| x.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&shard), vec![format!("{}.msg", e.id)]);
        assert!(names(&dir.path().join("tmp")).is_empty());
        q.mark_warned(&e.id).unwrap();
        q.mark_warned(&e.id).unwrap();
        assert_eq!(
            names(&shard),
            vec![format!("{}.msg", e.id), format!("{}.warned", e.id)]
        );
        assert!(q.snapshot().unwrap().warned.contains(&e.id));
        q.remove(&e.id).unwrap();
        assert!(names(&shard).is_empty());
        assert!(q.entry(&e.id).is_err() && q.content(&e.id).is_err());
    }

    #[test]
    fn header_value_unfolds_and_stops_at_body() {
        let m = b"Subject: a\r\n b\r\nMessage-ID:\r\n <x@y>\r\n\r\nMessage-ID: <body>\r\n";
        assert_eq!(header_value(m, "subject").as_deref(), Some("a b"));
        assert_eq!(header_value(m, "message-id").as_deref(), Some("<x@y>"));
        assert_eq!(header_value(b"no headers", "x"), None);
    }
}
