//! One queued message in one file: `queue/<shard>/<id>.msg`.
//!
//! ```text
//! deepmail-queue 1\n        the format and its version
//! {"id":...,"bytes":N,...}\n  the entry (QueueEntry) as one line of JSON
//! <N octets>                  the message, byte for byte
//! ```
//!
//! Written to `tmp/`, fdatasync'd, renamed into its shard and the shard
//! fsynced: two fsyncs a message, where the directory layout before it
//! (`<id>/message.eml` + `<id>/entry.json`) took four. The entry states
//! the content's length, so a file cut short (a power loss before the
//! fsync, a full disk) is recognised as damaged instead of being sent
//! truncated.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::spool::{io_err, SpoolError};

use super::QueueEntry;

/// The first line of every record.
const MAGIC: &[u8] = b"deepmail-queue 1\n";

/// The longest entry line read: far above any envelope the gateway
/// accepts (its recipient limit times the longest path), so a damaged or
/// hostile file cannot make the reader buffer without end.
const MAX_ENTRY: u64 = 4 << 20;

/// The name of message `id`'s record in its shard.
pub(super) fn file_name(id: &str) -> String {
    format!("{id}.msg")
}

/// The id a record's file name names, if it is one.
pub(super) fn id_of(name: &str) -> Option<&str> {
    name.strip_suffix(".msg").filter(|id| !id.is_empty())
}

/// Writes the record of `entry` with `content` to `path` (which must not
/// exist) and fdatasyncs it; the caller renames it into place and fsyncs
/// the directory.
pub(super) fn write(path: &Path, entry: &QueueEntry, content: &[u8]) -> Result<(), SpoolError> {
    let head = head(entry, 0).map_err(|e| SpoolError::Damaged {
        path: path.to_path_buf(),
        detail: format!("the entry cannot be written as JSON: {e}"),
    })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(&head)
        .and_then(|()| file.write_all(content))
        .map_err(io_err("write", path))?;
    file.sync_data().map_err(io_err("fsync", path))
}

/// The bytes of a record, unsynced: for tools that build a spool to
/// measure (`deepmail bench queue`).
pub(super) fn bytes(entry: &QueueEntry, content: &[u8]) -> Vec<u8> {
    let mut out = head(entry, content.len()).unwrap_or_default();
    out.extend_from_slice(content);
    out
}

/// The magic line and the entry line, with room for `more` octets after.
fn head(entry: &QueueEntry, more: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512 + more);
    out.extend_from_slice(MAGIC);
    // serde_json escapes control characters inside strings: one line.
    serde_json::to_writer(&mut out, entry)?;
    out.push(b'\n');
    Ok(out)
}

/// A record's entry, and the reader positioned where its content starts
/// (its buffer may already hold the first of it).
pub(super) struct Head {
    pub(super) entry: QueueEntry,
    reader: BufReader<File>,
}

fn damaged(path: &Path, detail: impl Into<String>) -> SpoolError {
    SpoolError::Damaged {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads the entry of the record at `path` (not its content) and checks
/// that the file holds exactly the content the entry announces.
pub(super) fn read_head(path: &Path) -> Result<Head, SpoolError> {
    let file = File::open(path).map_err(io_err("read", path))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::with_capacity(8 << 10, file);
    let mut magic = Vec::with_capacity(MAGIC.len());
    (&mut reader)
        .take(MAGIC.len() as u64)
        .read_to_end(&mut magic)
        .map_err(io_err("read", path))?;
    if magic != MAGIC {
        return Err(damaged(
            path,
            if magic.is_empty() {
                "empty file (not a queue record)".to_string()
            } else {
                format!(
                    "does not start with {:?} (not a queue record of this version)",
                    String::from_utf8_lossy(&MAGIC[..MAGIC.len() - 1])
                )
            },
        ));
    }
    let mut line = Vec::with_capacity(512);
    (&mut reader)
        .take(MAX_ENTRY + 1)
        .read_until(b'\n', &mut line)
        .map_err(io_err("read", path))?;
    if line.last() != Some(&b'\n') {
        return Err(damaged(
            path,
            if line.len() as u64 > MAX_ENTRY {
                format!("the entry line is longer than {MAX_ENTRY} octets")
            } else {
                "cut short inside the entry line".to_string()
            },
        ));
    }
    let entry: QueueEntry = serde_json::from_slice(&line[..line.len() - 1])
        .map_err(|e| damaged(path, format!("the entry does not parse: {e}")))?;
    let offset = (MAGIC.len() + line.len()) as u64;
    if len != offset + entry.bytes {
        return Err(damaged(
            path,
            format!(
                "holds {} octets of content where its entry says {} (cut short or appended to)",
                len.saturating_sub(offset),
                entry.bytes
            ),
        ));
    }
    Ok(Head { entry, reader })
}

impl Head {
    /// The content (exactly `entry.bytes` octets: `read_head` checked the
    /// length).
    pub(super) fn content(mut self, path: &Path) -> Result<(QueueEntry, Vec<u8>), SpoolError> {
        let mut content = Vec::new();
        content
            .try_reserve_exact(self.entry.bytes as usize)
            .map_err(|_| damaged(path, "content too large for memory"))?;
        (&mut self.reader)
            .take(self.entry.bytes)
            .read_to_end(&mut content)
            .map_err(io_err("read", path))?;
        if content.len() as u64 != self.entry.bytes {
            return Err(damaged(path, "cut short while being read"));
        }
        Ok((self.entry, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Destination;
    use crate::spool::{SpooledEnvelope, SpooledRecipient};
    use proptest::prelude::*;

    fn entry(bytes: u64, origin: &str) -> QueueEntry {
        QueueEntry {
            id: "0190-1-2-abcd".into(),
            destination: Destination::Remote("moon.example".into()),
            envelope: SpooledEnvelope {
                reverse_path: "ops@earth.example".into(),
                mail_parameters: vec![],
                forward_paths: vec![SpooledRecipient {
                    mailbox: "ada@moon.example".into(),
                    parameters: vec![],
                }],
            },
            received_ms: 1,
            bytes,
            origin: origin.into(),
            message_id: "<x@y>".into(),
        }
    }

    fn detail(e: SpoolError) -> String {
        match e {
            SpoolError::Damaged { detail, .. } => detail,
            other => panic!("expected Damaged, got {other}"),
        }
    }

    #[test]
    fn a_record_reads_back_and_its_name_names_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name("q1"));
        let content = b"Subject: x\r\n\r\n.\r\nbody\r\n";
        write(&path, &entry(content.len() as u64, "t"), content).unwrap();
        let (e, c) = read_head(&path).unwrap().content(&path).unwrap();
        assert_eq!(e, entry(content.len() as u64, "t"));
        assert_eq!(c, content);
        assert_eq!(std::fs::read(&path).unwrap(), bytes(&e, content));
        assert_eq!(id_of("q1.msg"), Some("q1"));
        assert_eq!(id_of(".msg"), None);
        assert_eq!(id_of("q1.warned"), None);
        assert!(write(&path, &e, content).is_err(), "never overwrites");
    }

    #[test]
    fn damaged_records_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let good = bytes(&entry(4, "t"), b"abcd");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "empty file"),
            ("other", b"{\"id\":1}\n".to_vec(), "not a queue record"),
            ("magic only", MAGIC.to_vec(), "cut short inside the entry"),
            (
                "half entry",
                good[..MAGIC.len() + 10].to_vec(),
                "cut short inside the entry",
            ),
            (
                "bad json",
                [MAGIC, b"{nope}\n"].concat(),
                "the entry does not parse",
            ),
            (
                "truncated content",
                good[..good.len() - 1].to_vec(),
                "holds 3 octets of content where its entry says 4",
            ),
            (
                "appended",
                [&good[..], b"x"].concat(),
                "holds 5 octets of content where its entry says 4",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let got = detail(read_head(&path).err().expect(name));
            assert!(got.contains(want), "{name}: {got}");
        }
    }

    #[test]
    fn an_endless_entry_line_is_refused_after_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        let mut f = File::create(&path).unwrap();
        f.write_all(MAGIC).unwrap();
        f.write_all(&vec![b'x'; MAX_ENTRY as usize + 10]).unwrap();
        drop(f);
        let got = detail(read_head(&path).err().unwrap());
        assert!(got.contains("longer than"), "{got}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_content_and_origin_round_trip(
            content in proptest::collection::vec(any::<u8>(), 0..2048),
            origin in "(?s).{0,40}",
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.msg");
            let e = entry(content.len() as u64, &origin);
            write(&path, &e, &content).unwrap();
            let (back, c) = read_head(&path).unwrap().content(&path).unwrap();
            prop_assert_eq!(back, e.clone());
            prop_assert_eq!(c, content.clone());
            // Any proper prefix of the file is damaged, never a message.
            let full = std::fs::read(&path).unwrap();
            let n = cut.index(full.len());
            std::fs::write(&path, &full[..n]).unwrap();
            let damaged = matches!(read_head(&path), Err(SpoolError::Damaged { .. }));
            prop_assert!(damaged, "a prefix of {} octets read as a message", n);
        }
    }
}
