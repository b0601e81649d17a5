//! The inbound relay: every batch the receiving endpoint spooled is handed,
//! message by message and with its original envelope, to the local MTA by
//! SMTP. Recipients the MTA accepts are done; recipients it refuses (5xx)
//! go back to the sender as a DSN; a temporary failure (4xx, MTA down) is
//! retried with backoff. Progress is recorded per message
//! (`NNNN.progress.json`), so a restart never loses a recipient (one killed
//! between the MTA's 250 and that record relays the message once more:
//! SMTP's at-least-once hand-off), and a relayed batch moves to `relayed/`,
//! so a retransmission of the same batch id is not relayed twice.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepmail_smtp::client::{self, TlsMode};
use deepmail_smtp::Reply;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::config::{domain_listed, GatewayConfig, RelayConfig};
use crate::deliver::backoff;
use crate::metrics::Metrics;
use crate::queue::now_ms;
use crate::returns::{Failure, Returns};
use crate::spool::{Spool, SpoolError, SpooledBatch, SpooledEnvelope};

/// What the local MTA said about one message.
#[derive(Debug, Default)]
pub(crate) struct RelayResult {
    /// Recipients accepted.
    pub accepted: Vec<String>,
    /// Recipients refused for good, with the reply.
    pub refused: Vec<(String, Reply)>,
    /// Recipients refused for now (retry them).
    pub deferred: Vec<String>,
    /// One line for the logs.
    pub summary: String,
    /// Whether the MTA offered DSN (RFC 3461): then it reports success
    /// itself, and `NOTIFY` was passed on to it.
    pub mta_offers_dsn: bool,
}

/// The session with the MTA could not be used at all.
#[derive(Debug)]
pub(crate) struct RelayFailure {
    /// Worth retrying.
    pub transient: bool,
    /// What happened.
    pub message: String,
}

/// The `relayed` reports owed for `result`'s accepted recipients that asked
/// for `NOTIFY=SUCCESS`, when the MTA does not offer DSN (when it does, it
/// was told and reports itself). `return_to_sender` then applies `NOTIFY`.
pub(crate) fn success_reports(
    envelope: &SpooledEnvelope,
    result: &RelayResult,
    mta: &str,
) -> Vec<(String, Failure)> {
    if result.mta_offers_dsn {
        return Vec::new();
    }
    // The same NOTIFY rule (RFC 3461 §4.1) every DSN here follows.
    let smtp = deepmail_smtp::Envelope::from(envelope);
    result
        .accepted
        .iter()
        .filter(|r| {
            smtp.recipients.iter().any(|f| {
                &f.mailbox == *r
                    && deepmail_smtp::dsn::should_send_dsn(
                        &smtp,
                        f,
                        deepmail_smtp::dsn::Action::Relayed,
                    )
            })
        })
        .map(|r| (r.clone(), Failure::relayed(mta)))
        .collect()
}

/// Hands one message to the local MTA with its envelope.
pub(crate) async fn relay_message(
    relay: &RelayConfig,
    envelope: &SpooledEnvelope,
    content: &[u8],
) -> Result<RelayResult, RelayFailure> {
    let config = client::RelayConfig {
        connect_timeout: Duration::from_secs(30).min(relay.timeout),
        command_timeout: relay.timeout,
        data_timeout: relay.timeout.max(Duration::from_secs(600)),
        tls: TlsMode::Never,
        ..client::RelayConfig::new(relay.helo.clone())
    };
    let smtp = deepmail_smtp::Envelope::from(envelope);
    let failure = |e: client::RelayError| RelayFailure {
        transient: e.is_transient(),
        message: format!("relay to {}: {e}", relay.smtp),
    };
    let mut session = client::SmtpClient::connect(relay.smtp, &config)
        .await
        .map_err(failure)?;
    let mta_offers_dsn = session.extensions().dsn;
    let delivery = session.send(&smtp, content).await;
    let _ = session.quit().await;
    let delivery = delivery.map_err(failure)?;
    let mut result = RelayResult {
        mta_offers_dsn,
        ..RelayResult::default()
    };
    for r in delivery.recipients {
        if r.accepted {
            result.accepted.push(r.recipient.mailbox);
        } else if r.reply.is_permanent() {
            result.refused.push((r.recipient.mailbox, r.reply));
        } else {
            result.deferred.push(r.recipient.mailbox);
        }
    }
    result.summary = format!(
        "{}: {} accepted, {} refused, {} deferred{}",
        relay.smtp,
        result.accepted.len(),
        result.refused.len(),
        result.deferred.len(),
        delivery
            .data_reply
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    Ok(result)
}

/// Why a spooled batch waits for another relay attempt.
#[derive(Debug, thiserror::Error)]
enum RelayLater {
    /// The local MTA failed temporarily (connection, 4xx to the
    /// transaction).
    #[error("{0}")]
    Mta(String),
    /// The local MTA deferred these recipients (4xx at RCPT or after DATA).
    #[error("the local MTA deferred {}", .0.join(", "))]
    Deferred(Vec<String>),
    /// A DSN for refused recipients could not be queued.
    #[error("cannot queue the DSN: {0}")]
    Dsn(SpoolError),
    /// The batch's progress could not be recorded.
    #[error("cannot record progress in {}: {error}", path.display())]
    Progress {
        /// The progress file.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Recipients of one message already settled (accepted, or returned with a
/// DSN).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    settled: Vec<String>,
}

/// The inbound side of a gateway.
pub(crate) struct Inbound {
    config: Arc<GatewayConfig>,
    relay: RelayConfig,
    spool: Arc<Spool>,
    returns: Arc<Returns>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    retry: Mutex<HashMap<String, (u32, u64)>>,
    last_prune: Mutex<Option<std::time::Instant>>,
}

impl Inbound {
    /// The relay for `spool`'s incoming batches.
    pub(crate) fn new(
        config: Arc<GatewayConfig>,
        relay: RelayConfig,
        spool: Arc<Spool>,
        returns: Arc<Returns>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Inbound {
        Inbound {
            config,
            relay,
            spool,
            returns,
            metrics,
            wake,
            retry: Mutex::new(HashMap::new()),
            last_prune: Mutex::new(None),
        }
    }

    /// Runs until `stop` turns true; the batch in hand is finished first.
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = self.pass().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Forgets relayed batch ids older than the retention, once an hour.
    fn prune(&self) {
        let Some(receive) = &self.config.receive else {
            return;
        };
        let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(3600)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let cutoff = std::time::SystemTime::now() - receive.dedupe_retention;
        match self.spool.prune_relayed(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                stage = "relay",
                pruned = n,
                "forgot relayed batch ids past the retention"
            ),
            Err(e) => tracing::warn!(stage = "relay", error = %e, "cannot prune relayed/"),
        }
    }

    /// One pass over `incoming/`; returns how long to wait.
    async fn pass(&self) -> Duration {
        self.prune();
        let batches = match self.spool.list() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(stage = "relay", error = %e, "cannot list incoming batches; retrying in 5 s");
                return Duration::from_secs(5);
            }
        };
        let now = now_ms();
        let mut wait = Duration::from_secs(1);
        for batch in batches {
            let id = batch.meta.batch_id.clone();
            let due = self
                .retry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .map(|(_, at)| *at);
            if let Some(at) = due.filter(|at| *at > now) {
                wait = wait.min(Duration::from_millis(at - now));
                continue;
            }
            match self.relay_batch(&batch).await {
                Ok(()) => {
                    self.retry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Err(e) = self.spool.mark_relayed(&batch) {
                        tracing::error!(stage = "relay", batch = %id, error = %e, "relayed but cannot move to relayed/");
                    }
                }
                Err(why) => {
                    Metrics::inc(&self.metrics.relay_attempts_failed);
                    let mut retry = self.retry.lock().unwrap_or_else(|e| e.into_inner());
                    let attempts = retry.get(&id).map(|(n, _)| n + 1).unwrap_or(1);
                    let delay = backoff(
                        self.config.delivery.retry_initial,
                        self.config.delivery.retry_max,
                        attempts,
                        (now as u32).wrapping_mul(2_654_435_761),
                    );
                    retry.insert(id.clone(), (attempts, now + delay.as_millis() as u64));
                    tracing::warn!(stage = "relay", batch = %id, attempts, retry_in_ms = delay.as_millis() as u64, error = %why, "temporary failure");
                    wait = wait.min(delay);
                }
            }
        }
        wait
    }

    /// Relays every unsettled recipient of every message of `batch`.
    /// `Err` means try again later (progress so far is kept).
    async fn relay_batch(&self, batch: &SpooledBatch) -> Result<(), RelayLater> {
        let id = &batch.meta.batch_id;
        let messages = match batch.messages() {
            Ok(m) => m,
            Err(e) => {
                // Damaged on disk: keep what there is for a person to look at.
                let raw = batch.raw().unwrap_or_default();
                self.returns.dead_letter(
                    &SpooledEnvelope {
                        reverse_path: String::new(),
                        mail_parameters: Vec::new(),
                        forward_paths: Vec::new(),
                    },
                    &raw,
                    &format!("batch {id} cannot be read back from the spool: {e}"),
                    id,
                );
                Metrics::inc(&self.metrics.dead_letters);
                return Ok(());
            }
        };
        for (i, (envelope, content)) in messages.into_iter().enumerate() {
            let n = i + 1;
            let progress_path = batch.dir.join(format!("{n:04}.progress.json"));
            let mut progress: Progress = fs::read(&progress_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let mut pending = envelope.clone();
            pending
                .forward_paths
                .retain(|f| !progress.settled.contains(&f.mailbox));
            if pending.forward_paths.is_empty() {
                continue;
            }
            // No open relay: a peer may put any recipient in a batch, but
            // only `[relay] domains` reach the local MTA; the rest are
            // refused here and go back to the sender in the DSN below.
            let (local, foreign): (Vec<_>, Vec<_>) = std::mem::take(&mut pending.forward_paths)
                .into_iter()
                .partition(|f| {
                    crate::returns::domain_of(&f.mailbox)
                        .is_some_and(|d| domain_listed(&self.relay.domains, &d))
                });
            pending.forward_paths = local;
            let not_ours: Vec<(String, Reply)> = foreign
                .into_iter()
                .map(|f| {
                    let reply = Reply::new(
                        550,
                        Some("5.7.1"),
                        format!(
                            "relaying to <{}> denied: this gateway delivers only to {}",
                            f.mailbox,
                            self.relay.domains.join(", ")
                        ),
                    );
                    (f.mailbox, reply)
                })
                .collect();
            let message_id = crate::queue::header_value(&content, "message-id").unwrap_or_default();
            let started = std::time::Instant::now();
            let relayed = if pending.forward_paths.is_empty() {
                Ok(RelayResult {
                    summary: "no recipient in a relay domain".into(),
                    ..RelayResult::default()
                })
            } else {
                relay_message(&self.relay, &pending, &content).await
            };
            let mut result = match relayed {
                Ok(r) => r,
                Err(f) if f.transient => return Err(RelayLater::Mta(f.message)),
                Err(f) => {
                    // The MTA refused the transaction itself (e.g. MAIL
                    // FROM): every pending recipient fails.
                    let reply = Reply::new(550, Some("5.0.0"), f.message.clone());
                    RelayResult {
                        refused: pending
                            .forward_paths
                            .iter()
                            .map(|r| (r.mailbox.clone(), reply.clone()))
                            .collect(),
                        summary: f.message,
                        ..RelayResult::default()
                    }
                }
            };
            if !not_ours.is_empty() {
                tracing::warn!(stage = "relay", batch = %id, message = n, refused = not_ours.len(), domains = ?self.relay.domains, "recipients outside [relay] domains refused (no open relay); a DSN goes back");
                result.refused.extend(not_ours);
            }
            tracing::info!(stage = "relay", batch = %id, message = n, message_id = %message_id, elapsed_ms = started.elapsed().as_millis() as u64, result = %result.summary, "relayed to the local MTA");
            if !result.accepted.is_empty() {
                Metrics::inc(&self.metrics.relay_messages_delivered);
            }
            if !result.refused.is_empty() {
                self.metrics.relay_recipients_refused.fetch_add(
                    result.refused.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                let mta = self.relay.smtp.to_string();
                let failures: Vec<(String, Failure)> = result
                    .refused
                    .iter()
                    .map(|(r, reply)| (r.clone(), Failure::smtp(reply, &mta)))
                    .collect();
                self.returns
                    .return_to_sender(&envelope, &content, &failures, id)
                    .map_err(RelayLater::Dsn)?;
            }
            // NOTIFY=SUCCESS (RFC 3461 §5.2.2): an MTA that offers DSN got
            // the NOTIFY and reports delivery itself; to one that does not,
            // this gateway reports "relayed".
            let relayed = success_reports(&envelope, &result, &self.relay.smtp.to_string());
            if !relayed.is_empty() {
                self.returns
                    .return_to_sender(&envelope, &content, &relayed, id)
                    .map_err(RelayLater::Dsn)?;
            }
            progress.settled.extend(result.accepted);
            progress
                .settled
                .extend(result.refused.into_iter().map(|(r, _)| r));
            write_atomic(
                &progress_path,
                &serde_json::to_vec(&progress).unwrap_or_default(),
            )
            .map_err(|error| RelayLater::Progress {
                path: progress_path.clone(),
                error,
            })?;
            if !result.deferred.is_empty() {
                return Err(RelayLater::Deferred(result.deferred));
            }
        }
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    crate::spool::overwrite_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{SpooledParam, SpooledRecipient};

    /// RFC 3461: a relayed report for NOTIFY=SUCCESS recipients only, and
    /// only when the MTA does not offer DSN (when it does it was told).
    #[test]
    fn success_is_reported_as_relayed_only_past_a_non_dsn_mta() {
        let rcpt = |m: &str, notify: Option<&str>| SpooledRecipient {
            mailbox: m.into(),
            parameters: notify
                .map(|n| {
                    vec![SpooledParam {
                        keyword: "NOTIFY".into(),
                        value: Some(n.into()),
                    }]
                })
                .unwrap_or_default(),
        };
        let envelope = SpooledEnvelope {
            reverse_path: "ops@earth.example".into(),
            mail_parameters: vec![],
            forward_paths: vec![
                rcpt("a@moon.example", Some("SUCCESS,FAILURE")),
                rcpt("b@moon.example", Some("FAILURE")),
                rcpt("c@moon.example", None),
                rcpt("d@moon.example", Some("success")),
            ],
        };
        let mut result = RelayResult {
            accepted: vec![
                "a@moon.example".into(),
                "b@moon.example".into(),
                "c@moon.example".into(),
            ],
            refused: vec![("d@moon.example".into(), Reply::new(550, None, "no"))],
            ..RelayResult::default()
        };
        let reports = success_reports(&envelope, &result, "127.0.0.1:25");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].0, "a@moon.example");
        assert_eq!(reports[0].1.action, deepmail_smtp::dsn::Action::Relayed);
        assert_eq!(reports[0].1.status, "2.0.0");
        result.mta_offers_dsn = true;
        assert!(success_reports(&envelope, &result, "127.0.0.1:25").is_empty());
    }
}
