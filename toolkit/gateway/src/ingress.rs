//! Mail in from the local MTA: the SMTP ingress ([`SmtpIngress`], the
//! handler behind `deepmail_smtp::serve`) and `deepmail submit` both go
//! through [`Acceptor`]: relay rules (never an open relay), the policy
//! plugin, a `Received:` trace field, a check that the codec plugin can
//! carry the message at all, and a durable enqueue per destination domain
//! before anything answers 250.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use deepmail_host::types::{EncodeOptions, Greeting, Message};
use deepmail_host::Codec;
use deepmail_smtp::serve::{Handler, SessionInfo};
use deepmail_smtp::{Envelope, Param, Recipient, Reply};
use tokio::sync::Notify;

use crate::config::{domain_listed, GatewayConfig};
use crate::metrics::Metrics;
use crate::policy::GatewayPolicy;
use crate::queue::{Destination, Queue};
use crate::returns::domain_of;
use crate::spool::{SpooledEnvelope, SpooledParam, SpooledRecipient};

fn spooled_params(params: &[Param]) -> Vec<SpooledParam> {
    params
        .iter()
        .map(|p| SpooledParam {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        })
        .collect()
}

/// The checks and the enqueue every way in shares.
pub(crate) struct Acceptor {
    config: Arc<GatewayConfig>,
    relay_domains: Vec<String>,
    queue: Arc<Queue>,
    policy: Option<Arc<GatewayPolicy>>,
    codec: Option<Codec>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Acceptor {
    /// Mail for `relay_domains` goes into `queue`. With `codec`, a message
    /// the codec plugin could never encode is refused at end of DATA rather
    /// than accepted and returned later.
    pub(crate) fn new(
        config: Arc<GatewayConfig>,
        relay_domains: Vec<String>,
        queue: Arc<Queue>,
        policy: Option<Arc<GatewayPolicy>>,
        codec: Option<Codec>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Acceptor {
        Acceptor {
            config,
            relay_domains,
            queue,
            policy,
            codec,
            metrics,
            wake,
        }
    }

    /// `MAIL FROM`.
    pub(crate) fn check_sender(&self, reverse_path: &str, params: &[Param]) -> Reply {
        if let Some(p) = &self.policy {
            if let Some(refusal) = p.check_sender(reverse_path, params) {
                return refusal;
            }
        }
        Reply::new(250, Some("2.1.0"), "sender ok")
    }

    /// `RCPT TO`: only the relay domains, then the policy.
    pub(crate) fn check_recipient(&self, reverse_path: &str, mailbox: &str) -> Reply {
        let Some(domain) = domain_of(mailbox) else {
            return Reply::new(
                550,
                Some("5.1.3"),
                format!("<{mailbox}>: a recipient needs a domain"),
            );
        };
        if !domain_listed(&self.relay_domains, &domain) {
            return Reply::new(
                550,
                Some("5.7.1"),
                format!("<{mailbox}>: relaying to {domain} denied; this gateway carries mail for {} only", self.relay_domains.join(", ")),
            );
        }
        if let Some(p) = &self.policy {
            if let Some(refusal) = p.check_recipient(reverse_path, mailbox) {
                return refusal;
            }
        }
        Reply::new(250, Some("2.1.5"), "recipient ok")
    }

    /// The whole message: policy, then one durable queue entry per
    /// destination domain. Blocking (fsync): call from a blocking context.
    pub(crate) fn accept(&self, envelope: &Envelope, content: &[u8], origin: &str) -> Reply {
        if let Some(refusal) = self.check_message(envelope, content, origin) {
            return refusal;
        }
        self.enqueue(envelope, content, origin)
    }

    /// The verdict on the whole message, `Some(refusal)` or `None`: the
    /// policy plugin's, then whether the codec plugin can encode it (asked,
    /// not second-guessed: its rules are the codec's own).
    pub(crate) fn check_message(
        &self,
        envelope: &Envelope,
        content: &[u8],
        origin: &str,
    ) -> Option<Reply> {
        let refusal = self
            .policy
            .as_ref()
            .and_then(|p| p.check_message(envelope, content))
            .map(|r| ("policy", r))
            .or_else(|| {
                self.window_refusal(envelope, content)
                    .map(|r| ("contact plan", r))
            })
            .or_else(|| self.codec_refusal(envelope, content).map(|r| ("codec", r)))?;
        let (stage, refusal) = refusal;
        Metrics::inc(&self.metrics.smtp_messages_refused);
        tracing::warn!(stage, origin, from = %envelope.reverse_path, reply = %refusal, "message refused");
        Some(refusal)
    }

    /// `Some(refusal)` when a recipient's route has a contact plan that
    /// cannot carry a message this large (it would wait for ever, then
    /// bounce): 552 now, with the largest that fits. On an HTTP route a
    /// message must fit one window; on a BP route it crosses as fragments
    /// over as many windows as it needs, up to the route's
    /// `max-age-cap-days`.
    fn window_refusal(&self, envelope: &Envelope, content: &[u8]) -> Option<Reply> {
        let now = crate::queue::now_ms();
        for r in &envelope.recipients {
            let domain = domain_of(&r.mailbox).unwrap_or_default();
            let Some(route) = self.config.route_for(&domain) else {
                continue;
            };
            let Some(plan) = route.plan.as_ref() else {
                continue;
            };
            let link = plan.link.read();
            let room = link.windows().iter().filter(|w| w.end_ms > now).map(|w| {
                (
                    w,
                    w.bytes_left(now.max(w.start_ms).saturating_add(w.owlt_ms)),
                )
            });
            let (largest, text) = if route.bp.is_some() {
                let until = now.saturating_add(route.max_age_cap.as_millis() as u64);
                let total = room
                    .filter(|(w, _)| w.start_ms < until)
                    .map(|(_, b)| b)
                    .fold(0u64, u64::saturating_add);
                let text = format!(
                    "{} bytes is more than the windows of the contact plan for {domain} carry within max-age-cap-days ({:.0} days): {total} bytes",
                    content.len(),
                    route.max_age_cap.as_secs_f64() / 86_400.0
                );
                (total, text)
            } else {
                let largest = room.map(|(_, b)| b).max().unwrap_or(0);
                let text = format!(
                    "no window of the contact plan for {domain} can carry {} bytes (the largest carries {largest})",
                    content.len()
                );
                (largest, text)
            };
            if content.len() as u64 > largest {
                return Some(Reply::new(552, Some("5.3.4"), text));
            }
        }
        None
    }

    /// `Some(refusal)` when the codec plugin cannot encode the message
    /// (a 200 KB header line, a NUL in the content, ...): mail it could
    /// never send must not get a 250.
    fn codec_refusal(&self, envelope: &Envelope, content: &[u8]) -> Option<Reply> {
        let codec = self.codec.as_ref()?;
        let message = Message {
            envelope: crate::envelope::host_envelope(envelope),
            content: content.to_vec(),
        };
        let options = EncodeOptions {
            greeting: Greeting::None,
            quit: false,
        };
        match codec.encode(std::slice::from_ref(&message), &options) {
            Ok(_) => None,
            Err(e) if e.is_plugin_fault() => Some(Reply::new(
                451,
                Some("4.3.0"),
                format!("cannot check the message now, try again later: {e}"),
            )),
            Err(e) => Some(Reply::new(
                554,
                Some("5.6.0"),
                format!(
                    "this message cannot be carried across the link: {} [{}]",
                    e.message, e.code
                ),
            )),
        }
    }

    /// One durable queue entry per destination domain, no checks. Blocking.
    pub(crate) fn enqueue(&self, envelope: &Envelope, content: &[u8], origin: &str) -> Reply {
        let mut by_domain: BTreeMap<String, Vec<&Recipient>> = BTreeMap::new();
        for r in &envelope.recipients {
            let domain = domain_of(&r.mailbox).unwrap_or_default();
            by_domain.entry(domain).or_default().push(r);
        }
        let mut ids = Vec::new();
        for (domain, recipients) in by_domain {
            let spooled = SpooledEnvelope {
                reverse_path: envelope.reverse_path.clone(),
                mail_parameters: spooled_params(&envelope.mail_params),
                forward_paths: recipients
                    .iter()
                    .map(|r| SpooledRecipient {
                        mailbox: r.mailbox.clone(),
                        parameters: spooled_params(&r.params),
                    })
                    .collect(),
            };
            match self.queue.enqueue(
                Destination::Remote(domain.clone()),
                spooled,
                content,
                origin.to_string(),
            ) {
                Ok(entry) => {
                    Metrics::inc(&self.metrics.queue_enqueued);
                    tracing::info!(stage = "ingress", msg = %entry.id, message_id = %entry.message_id, from = %envelope.reverse_path, to = %domain, recipients = recipients.len(), bytes = content.len(), origin, "queued");
                    ids.push(entry.id);
                }
                Err(e) => {
                    Metrics::inc(&self.metrics.smtp_messages_refused);
                    tracing::error!(stage = "ingress", error = %e, origin, "cannot spool; answering 451");
                    // Entries already written for other domains stay: the
                    // client will retry, and those recipients would get a
                    // second copy. Refusing is still right: nothing that
                    // was not durably stored may be acknowledged.
                    return Reply::new(
                        451,
                        Some("4.3.0"),
                        "cannot store the message now; try again later",
                    );
                }
            }
        }
        self.wake.notify_one();
        Reply::new(250, Some("2.0.0"), format!("queued as {}", ids.join(" ")))
    }

    /// The `Received:` field (RFC 5321 §4.4) this gateway adds.
    pub(crate) fn received_field(
        &self,
        helo: Option<&str>,
        peer: Option<SocketAddr>,
        tls: bool,
        id: &str,
        for_one: Option<&str>,
    ) -> String {
        let from = match (helo, peer) {
            (Some(h), Some(p)) => format!("from {h} ([{}])", p.ip()),
            (None, Some(p)) => format!("from [{}]", p.ip()),
            (Some(h), None) => format!("from {h}"),
            (None, None) => "from local".to_string(),
        };
        let with = if peer.is_none() {
            "local"
        } else if tls {
            "ESMTPS"
        } else {
            "ESMTP"
        };
        let rcpt = for_one.map(|r| format!(" for <{r}>")).unwrap_or_default();
        format!(
            "Received: {from}\r\n\tby {} (deepmail) with {with} id {id}{rcpt};\r\n\t{}\r\n",
            self.config.name,
            deepmail_smtp::dsn::format_date(SystemTime::now())
        )
    }
}

/// The SMTP ingress's handler.
pub(crate) struct SmtpIngress {
    acceptor: Arc<Acceptor>,
    metrics: Arc<Metrics>,
}

impl SmtpIngress {
    /// A handler over `acceptor`.
    pub(crate) fn new(acceptor: Arc<Acceptor>, metrics: Arc<Metrics>) -> SmtpIngress {
        SmtpIngress { acceptor, metrics }
    }
}

impl Handler for SmtpIngress {
    async fn mail_from(&self, _info: &SessionInfo, reverse_path: &str, params: &[Param]) -> Reply {
        self.acceptor.check_sender(reverse_path, params)
    }

    async fn rcpt_to(
        &self,
        _info: &SessionInfo,
        envelope: &Envelope,
        recipient: &Recipient,
    ) -> Reply {
        let reply = self
            .acceptor
            .check_recipient(&envelope.reverse_path, &recipient.mailbox);
        if !reply.is_positive() {
            Metrics::inc(&self.metrics.smtp_recipients_refused);
            tracing::info!(stage = "ingress", from = %envelope.reverse_path, to = %recipient.mailbox, reply = %reply, "recipient refused");
        }
        reply
    }

    async fn message(&self, info: &SessionInfo, envelope: Envelope, content: Vec<u8>) -> Reply {
        let acceptor = self.acceptor.clone();
        let metrics = self.metrics.clone();
        let session = format!("s{}", info.session_id);
        let for_one =
            (envelope.recipients.len() == 1).then(|| envelope.recipients[0].mailbox.clone());
        let received = acceptor.received_field(
            info.helo.as_deref(),
            Some(info.peer),
            info.tls,
            &session,
            for_one.as_deref(),
        );
        let origin = format!(
            "smtp [{}] helo={}",
            info.peer,
            info.helo.as_deref().unwrap_or("-")
        );
        let joined = tokio::task::spawn_blocking(move || {
            let mut full = Vec::with_capacity(received.len() + content.len());
            full.extend_from_slice(received.as_bytes());
            full.extend_from_slice(&content);
            acceptor.accept(&envelope, &full, &origin)
        })
        .await;
        let reply = joined
            .unwrap_or_else(|e| Reply::new(451, Some("4.3.0"), format!("internal error: {e}")));
        if reply.is_positive() {
            Metrics::inc(&metrics.smtp_messages_accepted);
            Metrics::stamp(&metrics.last_smtp_accept_unix_us);
        }
        reply
    }
}
