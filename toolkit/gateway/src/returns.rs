//! Mail that cannot be delivered goes back to its sender as a delivery
//! status notification (RFC 3464), queued like any other message: to the
//! local MTA when the sender is local, else across the link "the same way"
//! the mail came (Batch SMTP to the gateway found for the sender's domain).
//! Mail with no sender to return it to (the null reverse path `<>`, a DSN
//! itself, or no route back) is kept in `SPOOL/dead-letter/`, logged with
//! its id, and never dropped silently.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use deepmail_smtp::dsn::{build_dsn, should_send_dsn, Action, DsnRecipient, DsnRequest};
use tokio::sync::Notify;

use crate::config::{domain_listed, GatewayConfig};
use crate::metrics::Metrics;
use crate::queue::{Destination, Queue};
use crate::spool::{SpoolError, SpooledEnvelope, SpooledRecipient};

/// What a DSN says of one recipient: why it failed, is delayed, or was
/// relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `failed`, `delayed` or `relayed`.
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code`, e.g. `smtp; 550 5.1.1 no such user`.
    pub diagnostic: Option<String>,
    /// `Remote-MTA`, when a remote MTA said it.
    pub remote_mta: Option<String>,
    /// Human-readable reason for the text part and the logs.
    pub reason: String,
}

impl Failure {
    /// The next hop refused for good.
    pub(crate) fn permanent(why: &str) -> Failure {
        Failure {
            action: Action::Failed,
            status: "5.0.0".into(),
            diagnostic: Some(format!("X-deepmail; {why}")),
            remote_mta: None,
            reason: why.to_string(),
        }
    }

    /// Retried until the maximum age.
    pub(crate) fn expired(last: &str) -> Failure {
        Failure {
            action: Action::Failed,
            status: "4.4.7".into(),
            diagnostic: Some(format!(
                "X-deepmail; delivery time expired; last error: {last}"
            )),
            remote_mta: None,
            reason: format!("not delivered before the maximum queue age; last error: {last}"),
        }
    }

    /// Still queued after the delay-warning time (`Action: delayed`,
    /// RFC 3464); `why` says what it waits for.
    pub(crate) fn delayed(why: &str) -> Failure {
        Failure {
            action: Action::Delayed,
            status: "4.4.7".into(),
            diagnostic: Some(format!(
                "X-deepmail; not yet delivered, still trying: {why}"
            )),
            remote_mta: None,
            reason: format!("not yet delivered; it stays queued and will be sent: {why}"),
        }
    }

    /// Handed to an MTA that does not offer DSN (`Action: relayed`, RFC
    /// 3464 §2.3.3): no further report will come.
    pub(crate) fn relayed(mta: &str) -> Failure {
        Failure {
            action: Action::Relayed,
            status: "2.0.0".into(),
            diagnostic: None,
            remote_mta: Some(mta.to_string()),
            reason: format!(
                "relayed to {mta}, which does not offer delivery status notifications; no further report will come"
            ),
        }
    }

    /// The far MTA refused the recipient with `reply`.
    pub(crate) fn smtp(reply: &deepmail_smtp::Reply, mta: &str) -> Failure {
        let status = reply.enhanced.clone().unwrap_or_else(|| {
            if reply.is_permanent() {
                "5.0.0".into()
            } else {
                "4.0.0".into()
            }
        });
        Failure {
            action: Action::Failed,
            status,
            diagnostic: Some(format!("smtp; {reply}")),
            remote_mta: Some(mta.to_string()),
            reason: format!("{mta} said: {reply}"),
        }
    }
}

/// Generates DSNs and keeps dead letters.
pub(crate) struct Returns {
    config: Arc<GatewayConfig>,
    queue: Arc<Queue>,
    dead: PathBuf,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    counter: AtomicU64,
}

/// The domain of `mailbox` (after the last `@`), lower case.
pub(crate) fn domain_of(mailbox: &str) -> Option<String> {
    mailbox
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

impl Returns {
    /// DSNs go into `queue`; dead letters into `SPOOL/dead-letter/`.
    pub(crate) fn new(
        config: Arc<GatewayConfig>,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Result<Returns, SpoolError> {
        let dead = config.spool.join("dead-letter");
        fs::create_dir_all(&dead).map_err(|error| SpoolError::Io {
            op: "create",
            path: dead.clone(),
            error,
        })?;
        Ok(Returns {
            config,
            queue,
            dead,
            metrics,
            wake,
            counter: AtomicU64::new(0),
        })
    }

    /// Where mail to `domain` goes from here: the local MTA for the relay's
    /// own domains, else the domain's route, else the local MTA if there
    /// is one.
    pub(crate) fn destination_for(&self, domain: &str) -> Option<Destination> {
        if let Some(relay) = &self.config.relay {
            if domain_listed(&relay.domains, domain) {
                return Some(Destination::Local);
            }
        }
        if self.config.route_for(domain).is_some() {
            return Some(Destination::Remote(domain.to_string()));
        }
        self.config.relay.as_ref().map(|_| Destination::Local)
    }

    /// Sends a DSN for `failures` (recipient, why) of the message with
    /// `envelope` and `content` to its reverse path; `context` (a batch or
    /// queue id) goes into the logs. Keeps the message as a dead letter
    /// when it cannot be returned. `Ok` means the DSN (or the dead letter)
    /// is durably stored, so the caller may drop the message; its value
    /// says whether a DSN was queued (not when every recipient's `NOTIFY`
    /// declined it, nor for a dead letter).
    pub(crate) fn return_to_sender(
        &self,
        envelope: &SpooledEnvelope,
        content: &[u8],
        failures: &[(String, Failure)],
        context: &str,
    ) -> Result<bool, SpoolError> {
        let smtp = deepmail_smtp::Envelope::from(envelope);
        if envelope.reverse_path.is_empty() {
            let reasons: Vec<String> = failures
                .iter()
                .map(|(r, f)| format!("{r}: {}", f.reason))
                .collect();
            self.dead_letter(
                envelope,
                content,
                &format!(
                    "undeliverable and the reverse path is null (<>), so no DSN: {}",
                    reasons.join("; ")
                ),
                context,
            );
            Metrics::inc(&self.metrics.dead_letters);
            return Ok(false);
        }
        let now = SystemTime::now();
        let mut recipients = Vec::new();
        for (mailbox, f) in failures {
            let rcpt = smtp
                .recipients
                .iter()
                .find(|r| r.mailbox == *mailbox)
                .cloned()
                .unwrap_or_else(|| deepmail_smtp::Recipient {
                    mailbox: mailbox.clone(),
                    params: Vec::new(),
                });
            if !should_send_dsn(&smtp, &rcpt, f.action) {
                tracing::info!(stage = "dsn", context, recipient = %mailbox, reason = %f.reason, "failed; the sender asked for no DSN (NOTIFY)");
                continue;
            }
            let orcpt = rcpt
                .params
                .iter()
                .find(|p| p.keyword.eq_ignore_ascii_case("ORCPT"))
                .and_then(|p| p.value.clone());
            recipients.push(DsnRecipient {
                original_recipient: orcpt,
                final_recipient: mailbox.clone(),
                action: f.action,
                status: f.status.clone(),
                remote_mta: f.remote_mta.clone(),
                diagnostic_code: f.diagnostic.clone(),
                last_attempt: Some(now),
            });
        }
        if recipients.is_empty() {
            return Ok(false);
        }
        let sender = envelope.reverse_path.clone();
        let Some(destination) = domain_of(&sender).and_then(|d| self.destination_for(&d)) else {
            self.dead_letter(
                envelope,
                content,
                &format!("undeliverable, and there is no way back to the sender {sender}"),
                context,
            );
            Metrics::inc(&self.metrics.dead_letters);
            return Ok(false);
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let message_id = format!(
            "<dsn.{}.{}.{n}@{}>",
            crate::queue::now_ms(),
            std::process::id(),
            self.config.name
        );
        let ret_headers = envelope.mail_parameters.iter().any(|p| {
            p.keyword.eq_ignore_ascii_case("RET")
                && p.value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("HDRS"))
        });
        let request = DsnRequest {
            reporting_mta: self.config.name.clone(),
            from: format!("MAILER-DAEMON@{}", self.config.name),
            to: sender.clone(),
            original_envelope_id: envelope
                .mail_parameters
                .iter()
                .find(|p| p.keyword.eq_ignore_ascii_case("ENVID"))
                .and_then(|p| p.value.clone()),
            arrival_date: None,
            date: now,
            message_id: message_id.clone(),
            recipients,
            return_content: if ret_headers {
                deepmail_smtp::dsn::ReturnContent::HeadersOnly
            } else {
                deepmail_smtp::dsn::ReturnContent::Full
            },
        };
        let dsn = build_dsn(&request, content);
        let dsn_envelope = SpooledEnvelope {
            reverse_path: String::new(),
            mail_parameters: Vec::new(),
            forward_paths: vec![SpooledRecipient {
                mailbox: sender.clone(),
                parameters: Vec::new(),
            }],
        };
        let entry = self.queue.enqueue(
            destination.clone(),
            dsn_envelope,
            &dsn,
            format!("dsn for {context}"),
        )?;
        Metrics::inc(&self.metrics.dsns_generated);
        Metrics::inc(&self.metrics.queue_enqueued);
        tracing::info!(stage = "dsn", context, msg = %entry.id, to = %sender, via = %destination, message_id = %message_id, "DSN queued");
        self.wake.notify_one();
        Ok(true)
    }

    /// Keeps a message that cannot be delivered or returned in
    /// `SPOOL/dead-letter/<context>.<n>/` with the reason, and logs it.
    pub(crate) fn dead_letter(
        &self,
        envelope: &SpooledEnvelope,
        content: &[u8],
        reason: &str,
        context: &str,
    ) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self.dead.join(format!(
            "{}.{}.{n}",
            context.replace(['/', '\\'], "_"),
            crate::queue::now_ms()
        ));
        let result = (|| -> std::io::Result<()> {
            fs::create_dir_all(&dir)?;
            crate::spool::overwrite_synced(&dir.join("message.eml"), content)?;
            crate::spool::overwrite_synced(
                &dir.join("envelope.json"),
                &serde_json::to_vec_pretty(envelope).unwrap_or_default(),
            )?;
            crate::spool::overwrite_synced(
                &dir.join("reason.txt"),
                format!("{reason}\n").as_bytes(),
            )?;
            File::open(&dir)?.sync_all()?;
            File::open(&self.dead)?.sync_all()
        })();
        match result {
            Ok(()) => {
                tracing::error!(stage = "dead-letter", context, path = %dir.display(), reason, "kept as a dead letter")
            }
            Err(e) => {
                tracing::error!(stage = "dead-letter", context, path = %dir.display(), reason, error = %e, "cannot write the dead letter")
            }
        }
    }
}
