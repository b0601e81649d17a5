//! What `deepmail queue` shows and does: the listing of a gateway's
//! outbound queue (one row per message, one per destination with the next
//! contact window and what is expected to leave in it) as JSON and as a
//! text table, and making batches due now. The CLI parses the arguments
//! and prints; the rows and their rendering live here, beside the queue.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::GatewayConfig;
use crate::queue::{Queue, Snapshot};
use crate::spool::SpoolError;

/// One look at a gateway's queue, ready to print.
#[derive(Debug, Clone)]
pub struct QueueReport {
    name: String,
    spool: PathBuf,
    messages: Vec<Value>,
    destinations: Vec<Value>,
    damaged: Vec<String>,
    quarantined: Vec<(PathBuf, String)>,
}

impl QueueReport {
    /// The report of `snapshot` (taken from `queue`) at `now_ms` (Unix ms).
    pub fn new(
        config: &GatewayConfig,
        queue: &Queue,
        snapshot: &Snapshot,
        now_ms: u64,
    ) -> QueueReport {
        let batch_of = |id: &str| {
            snapshot
                .batches
                .iter()
                .find(|b| b.members.iter().any(|m| m == id))
        };
        let now = now_ms;
        let messages = snapshot
            .entries
            .values()
            .map(|e| {
                let b = batch_of(&e.id);
                json!({
                    "id": e.id,
                    "destination": e.destination.to_string(),
                    "from": e.envelope.reverse_path,
                    "to": e.envelope.forward_paths.iter().map(|f| f.mailbox.clone()).collect::<Vec<_>>(),
                    "bytes": e.bytes,
                    "age_secs": now.saturating_sub(e.received_ms) / 1000,
                    "message_id": e.message_id,
                    "batch": b.map(|b| b.id.clone()),
                    "attempts": b.map(|b| b.attempts).unwrap_or(0),
                    "next_attempt_in_secs": b.map(|b| b.next_attempt_ms.saturating_sub(now) / 1000).unwrap_or(0),
                    "last_error": b.and_then(|b| b.last_error.clone()),
                })
            })
            .collect();
        QueueReport {
            name: config.name.clone(),
            spool: config.spool.clone(),
            messages,
            destinations: destination_rows(config, snapshot, now),
            damaged: snapshot.damaged.clone(),
            quarantined: queue.quarantined(),
        }
    }

    /// The whole report as one JSON document (`queue list --json`).
    pub fn to_json(&self) -> Value {
        json!({"spool": self.spool, "messages": self.messages, "destinations": self.destinations, "damaged": self.damaged,
                "quarantined": self.quarantined.iter().map(|(p, r)| json!({"path": p, "reason": r})).collect::<Vec<_>>()})
    }

    /// Records that could not be read (path and reason), for stderr.
    pub fn damaged(&self) -> &[String] {
        &self.damaged
    }

    /// The text table (`queue list`): one line per message (and one for
    /// its last error), a count, and a line per destination with a
    /// contact plan; or a line saying the queue is empty.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.messages.is_empty() {
            let _ = writeln!(out, "queue of {} is empty", self.name);
            return out;
        }
        let _ = writeln!(
            out,
            "{:<44} {:<16} {:>9} {:>6} {:>4}  from -> to / last error",
            "id", "destination", "bytes", "age s", "try"
        );
        for r in &self.messages {
            let _ = writeln!(
                out,
                "{:<44} {:<16} {:>9} {:>6} {:>4}  {} -> {}",
                r["id"].as_str().unwrap_or(""),
                r["destination"].as_str().unwrap_or(""),
                // (A JSON value's Display ignores width: numbers.)
                r["bytes"].as_u64().unwrap_or(0),
                r["age_secs"].as_u64().unwrap_or(0),
                r["attempts"].as_u64().unwrap_or(0),
                r["from"].as_str().filter(|f| !f.is_empty()).unwrap_or("<>"),
                r["to"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default(),
            );
            if let Some(err) = r["last_error"].as_str() {
                let _ = writeln!(out, "{:>44}   last error: {err}", "");
            }
        }
        let _ = writeln!(out, "{} message(s)", self.messages.len());
        for d in &self.destinations {
            let Some(w) = d.get("next_window") else {
                continue;
            };
            let _ = writeln!(
                out,
                "{}: {} queued ({} bytes); next window {} to {} ({}), {} B/s: {} message(s), {} bytes expected to leave in it",
                d["destination"].as_str().unwrap_or(""),
                d["messages"],
                d["bytes"],
                w["opens"].as_str().unwrap_or(""),
                w["closes"].as_str().unwrap_or(""),
                if w["open_now"].as_bool() == Some(true) {
                    "open now".to_string()
                } else {
                    format!("in {} s", w["opens_in_secs"])
                },
                w["rate_bytes_per_sec"],
                d["expected_to_leave"]["messages"],
                d["expected_to_leave"]["bytes"],
            );
        }
        out
    }

    /// The damaged records moved into `quarantine/`, for the end of the
    /// text listing; empty when there are none.
    pub fn quarantine_text(&self) -> String {
        let mut out = String::new();
        if self.quarantined.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "\n{} damaged record(s) moved aside into {} (not sent; kept for you):",
            self.quarantined.len(),
            self.spool.join("quarantine").display()
        );
        for (path, reason) in &self.quarantined {
            let _ = writeln!(out, "  {}: {reason}", path.display());
        }
        out
    }
}

/// Per destination: what is queued and, for routes with a contact plan,
/// the next window and what is expected to leave in it (oldest first, as
/// much as the window carries).
fn destination_rows(config: &GatewayConfig, snapshot: &Snapshot, now: u64) -> Vec<Value> {
    let mut by_dest: BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for e in snapshot.entries.values() {
        by_dest
            .entry(e.destination.to_string())
            .or_default()
            .push((e.received_ms, e.bytes));
    }
    let at = |ms: u64| {
        deepmail_contact_plan::civil::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(ms))
    };
    by_dest
        .into_iter()
        .map(|(dest, mut msgs)| {
            msgs.sort_unstable();
            let bytes: u64 = msgs.iter().map(|m| m.1).sum();
            let mut row = json!({"destination": dest, "messages": msgs.len(), "bytes": bytes});
            let window = config
                .route_for(&dest)
                .and_then(|r| r.plan.as_ref())
                .and_then(|p| p.link.next(now).map(|w| (p, w)));
            if let Some((plan, w)) = window {
                let mut room = w.bytes_left(now.max(w.start_ms).saturating_add(w.owlt_ms));
                let (mut n, mut b) = (0u64, 0u64);
                for (_, size) in &msgs {
                    if *size > room {
                        break;
                    }
                    room -= size;
                    n += 1;
                    b += size;
                }
                row["next_window"] = json!({
                    "plan": plan.source, "from_node": plan.nodes.0, "to_node": plan.nodes.1,
                    "opens": at(w.start_ms), "closes": at(w.end_ms), "open_now": w.start_ms <= now,
                    "opens_in_secs": w.start_ms.saturating_sub(now) / 1000,
                    "rate_bytes_per_sec": w.rate, "owlt_ms": w.owlt_ms,
                });
                row["expected_to_leave"] = json!({"messages": n, "bytes": b});
            }
            row
        })
        .collect()
}

/// Makes the batches holding any of `ids` (every batch with `all`) due
/// now; a running gateway picks them up within a second. Returns how many
/// messages those batches hold.
pub fn make_due(
    queue: &Queue,
    snapshot: &Snapshot,
    ids: &[String],
    all: bool,
) -> Result<usize, SpoolError> {
    let mut touched = 0;
    for mut b in snapshot.batches.clone() {
        if all || b.members.iter().any(|m| ids.contains(m)) {
            b.next_attempt_ms = 0;
            queue.save_batch(&b)?;
            touched += b.members.len();
        }
    }
    Ok(touched)
}
