//! The owner's in-memory index of the queue: what is waiting per
//! destination (oldest first), the batches by id, and the batches ordered
//! by their next attempt. Built once from the spool (at the first
//! [`Queue::refresh`](super::Queue::refresh), and again when a tool edited
//! the spool), then kept in step with every write the gateway makes, so
//! accepting, scheduling and expiring cost the same with 10 or 1,000,000
//! messages queued. The files stay the truth: the index is never written.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Batch, Destination, QueueEntry};

/// What the index keeps of a queued message (the envelope stays on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Indexed {
    /// Where it goes.
    pub destination: Destination,
    /// When it was accepted, Unix ms.
    pub received_ms: u64,
    /// Size of its content.
    pub bytes: u64,
    /// The batch it is in, if any.
    pub batch: Option<String>,
    /// Its `MT-PRIORITY` (RFC 6710), -9 to 9; 0 when not given.
    pub priority: i8,
}

impl Indexed {
    /// Where it stands in its destination's line.
    pub(crate) fn place(&self, id: &str) -> Place {
        Place {
            rank: -self.priority,
            class: size_class(self.bytes),
            received_ms: self.received_ms,
            id: id.to_string(),
        }
    }
}

/// A waiting message's place in line: higher `MT-PRIORITY` first, then
/// smaller before larger (by size class), then older first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Place {
    /// Minus the priority.
    pub rank: i8,
    /// [`size_class`] of its size.
    pub class: u8,
    /// When it was accepted, Unix ms.
    pub received_ms: u64,
    /// Its queue id.
    pub id: String,
}

/// Sizes that go ahead of each other: up to 64 KiB (0), 1 MiB (1),
/// 16 MiB (2), larger (3). Within a class, age decides.
pub(super) fn size_class(bytes: u64) -> u8 {
    match bytes {
        0..=65_536 => 0,
        65_537..=1_048_576 => 1,
        1_048_577..=16_777_216 => 2,
        _ => 3,
    }
}

/// The `MT-PRIORITY` of a spooled envelope, 0 when absent or invalid.
fn priority_of(e: &QueueEntry) -> i8 {
    e.envelope
        .mail_parameters
        .iter()
        .find(|p| p.keyword.eq_ignore_ascii_case("MT-PRIORITY"))
        .and_then(|p| p.value.as_deref())
        .and_then(deepmail_smtp::server::parse_mt_priority)
        .unwrap_or(0)
}

/// The index proper.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every message by id.
    pub(crate) entries: HashMap<String, Indexed>,
    /// Messages in no batch, per destination, in the order they should
    /// leave.
    pub(crate) waiting: BTreeMap<Destination, BTreeSet<Place>>,
    /// The same messages, per destination, oldest first (expiry, and the
    /// slot that keeps large or low-priority mail from starving).
    pub(crate) aged: BTreeMap<Destination, BTreeSet<(u64, String)>>,
    /// Every batch by id (members that are no longer queued left out).
    pub(crate) batches: HashMap<String, Batch>,
    /// (next_attempt_ms, batch id) of every batch.
    pub(crate) schedule: BTreeSet<(u64, String)>,
    /// (received_ms, id) of every message whose sender has not had a
    /// delay warning yet.
    pub(crate) unwarned: BTreeSet<(u64, String)>,
    /// Until when new batches to a destination wait, after a temporary
    /// failure (the route is down; the failed batch retries on its own).
    pub(crate) held_until: HashMap<Destination, u64>,
    /// Bytes of every message in `entries`.
    pub(crate) bytes: u64,
}

impl Index {
    /// The index of what `snapshot` read from disk (tests compare the live
    /// index with it).
    #[cfg(test)]
    pub(crate) fn from_snapshot(snapshot: &super::Snapshot) -> Index {
        let mut index = Index::default();
        for e in snapshot.entries.values() {
            index.add_entry_warned(e, snapshot.warned.contains(&e.id));
        }
        for b in &snapshot.batches {
            index.put_batch(b.clone());
        }
        index
    }

    pub(crate) fn add_entry(&mut self, e: &QueueEntry) {
        self.add_entry_warned(e, false);
    }

    /// Adds `e`; `warned`: its sender already had a delay warning.
    pub(crate) fn add_entry_warned(&mut self, e: &QueueEntry, warned: bool) {
        if self.entries.contains_key(&e.id) {
            return;
        }
        if !warned {
            self.unwarned.insert((e.received_ms, e.id.clone()));
        }
        let indexed = Indexed {
            destination: e.destination.clone(),
            received_ms: e.received_ms,
            bytes: e.bytes,
            batch: None,
            priority: priority_of(e),
        };
        self.wait(&e.id, &indexed);
        self.bytes += e.bytes;
        self.entries.insert(e.id.clone(), indexed);
    }

    fn wait(&mut self, id: &str, e: &Indexed) {
        self.waiting
            .entry(e.destination.clone())
            .or_default()
            .insert(e.place(id));
        self.aged
            .entry(e.destination.clone())
            .or_default()
            .insert((e.received_ms, id.to_string()));
    }

    pub(crate) fn remove_entry(&mut self, id: &str) {
        let Some(e) = self.entries.remove(id) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(e.bytes);
        self.unwarned.remove(&(e.received_ms, id.to_string()));
        match &e.batch {
            Some(b) => {
                if let Some(batch) = self.batches.get_mut(b) {
                    batch.members.retain(|m| m != id);
                }
            }
            None => self.unwait(id, &e),
        }
    }

    fn unwait(&mut self, id: &str, e: &Indexed) {
        if let Some(set) = self.waiting.get_mut(&e.destination) {
            set.remove(&e.place(id));
            if set.is_empty() {
                self.waiting.remove(&e.destination);
            }
        }
        if let Some(set) = self.aged.get_mut(&e.destination) {
            set.remove(&(e.received_ms, id.to_string()));
            if set.is_empty() {
                self.aged.remove(&e.destination);
            }
        }
    }

    /// Records `batch` (new or rewritten): its members leave the waiting
    /// sets, and it takes its place in the schedule.
    pub(crate) fn put_batch(&mut self, mut batch: Batch) {
        if let Some(old) = self.batches.remove(&batch.id) {
            self.schedule.remove(&(old.next_attempt_ms, old.id.clone()));
        }
        batch.members.retain(|m| self.entries.contains_key(m));
        for m in &batch.members {
            let Some(e) = self.entries.get_mut(m) else {
                continue;
            };
            let was_waiting = e.batch.is_none();
            e.batch = Some(batch.id.clone());
            if was_waiting {
                let e = e.clone();
                self.unwait(m, &e);
            }
        }
        if batch.last_error.is_some() && batch.attempts > 0 {
            let held = self
                .held_until
                .entry(batch.destination.clone())
                .or_insert(0);
            *held = (*held).max(batch.next_attempt_ms);
        }
        self.schedule
            .insert((batch.next_attempt_ms, batch.id.clone()));
        self.batches.insert(batch.id.clone(), batch);
    }

    /// Forgets a batch; members still queued wait again.
    pub(crate) fn remove_batch(&mut self, id: &str) {
        let Some(batch) = self.batches.remove(id) else {
            return;
        };
        self.schedule
            .remove(&(batch.next_attempt_ms, batch.id.clone()));
        for m in &batch.members {
            if let Some(e) = self.entries.get_mut(m) {
                if e.batch.as_deref() == Some(id) {
                    e.batch = None;
                    let e = e.clone();
                    self.wait(m, &e);
                }
            }
        }
    }

    /// A delivery reached `destination`: new batches go at once.
    pub(crate) fn release(&mut self, destination: &Destination) {
        self.held_until.remove(destination);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Batch, Destination, Queue};
    use super::Index;
    use crate::spool::{SpooledEnvelope, SpooledRecipient};

    fn env() -> SpooledEnvelope {
        SpooledEnvelope {
            reverse_path: "a@earth.example".into(),
            mail_parameters: vec![],
            forward_paths: vec![SpooledRecipient {
                mailbox: "b@moon.example".into(),
                parameters: vec![],
            }],
        }
    }

    /// The parts of an index that must equal a fresh read of the spool.
    fn view(i: &Index) -> String {
        let mut entries: Vec<_> = i.entries.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut batches: Vec<_> = i.batches.values().collect();
        batches.sort_by(|a, b| a.id.cmp(&b.id));
        format!(
            "{entries:?}\n{:?}\n{batches:?}\n{:?}\n{:?}\n{:?}",
            i.waiting, i.schedule, i.aged, i.unwarned
        )
    }

    /// Any sequence of the gateway's writes leaves the live index equal to
    /// the index rebuilt from disk (what a restart would see).
    #[test]
    fn the_index_stays_equal_to_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), true).unwrap();
        assert!(q.refresh().unwrap().is_empty());
        let dests = [
            Destination::Remote("moon.example".into()),
            Destination::Remote("mars.example".into()),
            Destination::Local,
        ];
        let mut ids: Vec<String> = Vec::new();
        let mut batches: Vec<Batch> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..300 {
            match next() % 6 {
                0 | 1 => {
                    let d = dests[(next() % 3) as usize].clone();
                    ids.push(q.enqueue(d, env(), b"x\r\n", "t".into()).unwrap().id);
                }
                2 if !ids.is_empty() => {
                    let id = ids.remove((next() % ids.len() as u64) as usize);
                    q.remove(&id).unwrap();
                }
                3 => {
                    // A batch of some waiting messages of one destination.
                    let index = q.index();
                    let waiting = index.as_ref().unwrap().waiting.clone();
                    drop(index);
                    if let Some((d, set)) = waiting.into_iter().next() {
                        let members: Vec<String> = set.into_iter().take(3).map(|p| p.id).collect();
                        batches.push(q.new_batch(d, members).unwrap());
                    }
                }
                4 if !batches.is_empty() => {
                    let i = (next() % batches.len() as u64) as usize;
                    let mut b = batches[i].clone();
                    b.attempts += 1;
                    b.next_attempt_ms += next() % 10_000;
                    b.last_error = Some(format!("step {step}"));
                    q.save_batch(&b).unwrap();
                    batches[i] = b;
                }
                5 if !batches.is_empty() => {
                    let b = batches.remove((next() % batches.len() as u64) as usize);
                    q.remove_batch(&b.id).unwrap();
                }
                _ => {}
            }
            let live = view(q.index().as_ref().unwrap());
            let fresh = view(&Index::from_snapshot(&q.snapshot().unwrap()));
            assert_eq!(live, fresh, "after step {step}");
        }
    }

    /// A tool's edit (here `deepmail queue retry` and `delete`) reaches a
    /// running gateway's index through the marker file.
    #[test]
    fn a_tools_edit_rebuilds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = Queue::open(dir.path(), true).unwrap();
        gateway.refresh().unwrap();
        let moon = Destination::Remote("moon.example".into());
        let a = gateway
            .enqueue(moon.clone(), env(), b"a", "t".into())
            .unwrap();
        let b = gateway
            .enqueue(moon.clone(), env(), b"b", "t".into())
            .unwrap();
        let mut batch = gateway.new_batch(moon.clone(), vec![a.id.clone()]).unwrap();
        batch.attempts = 1;
        batch.next_attempt_ms = u64::MAX / 2;
        batch.last_error = Some("503".into());
        gateway.save_batch(&batch).unwrap();
        assert_eq!(
            gateway.index().as_ref().unwrap().held_until.get(&moon),
            Some(&(u64::MAX / 2))
        );

        let tool = Queue::open(dir.path(), false).unwrap();
        let mut retried = batch.clone();
        retried.next_attempt_ms = 0;
        tool.save_batch(&retried).unwrap();
        tool.remove(&b.id).unwrap();
        // Without a refresh the gateway still has its own view.
        assert!(gateway
            .index()
            .as_ref()
            .unwrap()
            .entries
            .contains_key(&b.id));
        gateway.refresh().unwrap();
        let index = gateway.index();
        let index = index.as_ref().unwrap();
        assert!(!index.entries.contains_key(&b.id));
        assert_eq!(index.batches[&batch.id].next_attempt_ms, 0);
        assert_eq!(index.held_until.get(&moon), Some(&0));
    }
}
