//! Local submission (`deepmail submit`, as `sendmail` is to an MTA): the
//! messages a local MTA or user hands over on a pipe go through the same
//! checks as SMTP (sender, each recipient, the message and the policy
//! plugin) and into the same queue.
//!
//! Everything is checked before anything is queued, so a temporary
//! refusal anywhere makes the caller retry the whole input without
//! duplicates. A batch (Batch SMTP from an MTA's pipe transport) then
//! queues what was accepted and turns permanent refusals into DSNs to the
//! sender, so the MTA neither bounces nor resends the messages queued; a
//! single message answers with its refusals instead, as `sendmail` does.

use std::sync::Arc;

use deepmail_host::{Codec, Host};
use deepmail_smtp::{Envelope, Reply};
use tokio::sync::Notify;

use crate::config::GatewayConfig;
use crate::ingress::Acceptor;
use crate::metrics::Metrics;
use crate::policy::{GatewayPolicy, PolicyLoadError};
use crate::queue::Queue;
use crate::returns::{Failure, Returns};
use crate::spool::{SpoolError, SpooledEnvelope};

/// Why nothing (or not everything) could be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The configuration has no `[smtp]` section, whose `relay-domains`
    /// say which recipients are accepted.
    #[error("the configuration has no [smtp] section: submit needs its relay-domains")]
    NoSmtpSection,
    /// The policy plugin the configuration names does not load.
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The spool cannot be opened or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// sysexits(3) codes, what MTAs' pipe transports understand: `deepmail
/// submit` exits with them, so the MTA bounces, defers or accepts.
pub mod sysexits {
    /// The input was not a message (bad Batch SMTP, nothing on stdin).
    pub const DATAERR: u8 = 65;
    /// A recipient does not exist here (`5.1.x`).
    pub const NOUSER: u8 = 67;
    /// Try again later (any 4xx, a spool that cannot be written).
    pub const TEMPFAIL: u8 = 75;
    /// Refused by policy (`5.7.x`).
    pub const NOPERM: u8 = 77;
    /// The gateway's configuration is wrong.
    pub const CONFIG: u8 = 78;

    /// The exit code for an SMTP refusal.
    pub fn for_reply(reply: &deepmail_smtp::Reply) -> u8 {
        match reply.enhanced.as_deref() {
            _ if reply.is_transient() => TEMPFAIL,
            Some(e) if e.starts_with("5.1.") => NOUSER,
            Some(e) if e.starts_with("5.7.") => NOPERM,
            _ => DATAERR,
        }
    }
}

/// The one message `sendmail -f FROM -- RCPT...` hands over: the paths as
/// given (angle brackets optional; `<>` or empty is the null sender), the
/// content from the pipe with CRLF line ends.
pub fn pipe_message(from: &str, recipients: &[String], input: &[u8]) -> (Envelope, Vec<u8>) {
    let bare = |path: &str| {
        path.trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    };
    let envelope = Envelope {
        reverse_path: bare(from),
        mail_params: Vec::new(),
        recipients: recipients
            .iter()
            .map(|r| deepmail_smtp::Recipient {
                mailbox: bare(r),
                params: Vec::new(),
            })
            .collect(),
    };
    (envelope, deepmail_smtp::crlf_lines(input))
}

/// What became of one submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReport {
    /// The message's reverse path.
    pub sender: String,
    /// Recipients refused by the checks, with the refusal.
    pub refused: Vec<(String, Reply)>,
    /// The queue's answer for the recipients that passed, if any did and
    /// queueing was reached.
    pub queued: Option<Reply>,
    /// For a batch with refused recipients: whether a DSN was queued to
    /// the sender (`false`: the sender is null, and the message is kept as
    /// a dead letter, or every refused recipient's `NOTIFY` declined it).
    pub dsn_queued: Option<bool>,
}

/// What [`submit`] did, message by message, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    /// One entry per message checked.
    pub messages: Vec<MessageReport>,
    /// A refusal was temporary, so nothing was queued: retry the whole
    /// input later.
    pub nothing_queued: bool,
}

impl SubmitReport {
    /// The sysexits code of the worst refused recipient (0 when none was
    /// refused).
    pub fn refusals_exit(&self) -> u8 {
        self.messages
            .iter()
            .flat_map(|m| &m.refused)
            .map(|(_, reply)| sysexits::for_reply(reply))
            .max()
            .unwrap_or(0)
    }

    /// The first message whose queueing failed, with the answer: processing
    /// stopped there, and the messages after it were not queued.
    pub fn queue_failure(&self) -> Option<(usize, &Reply)> {
        self.messages.iter().enumerate().find_map(|(i, m)| {
            m.queued
                .as_ref()
                .filter(|reply| !reply.is_positive())
                .map(|reply| (i, reply))
        })
    }
}

/// Submits `messages` (envelope and content, CRLF line ends) to the
/// gateway whose configuration is `config`, as `origin` (logged, e.g.
/// `submit user=ops`). `batch`: refusals become DSNs (see the module docs).
/// `codec` is the gateway's codec stage (policy plugins may read messages
/// through it).
pub fn submit(
    host: &Host,
    config: GatewayConfig,
    codec: Codec,
    messages: Vec<(Envelope, Vec<u8>)>,
    batch: bool,
    origin: &str,
) -> Result<SubmitReport, SubmitError> {
    let smtp = config.smtp.clone().ok_or(SubmitError::NoSmtpSection)?;
    let policy = GatewayPolicy::load(host, &config)?.map(Arc::new);
    let config = Arc::new(config);
    let queue = Arc::new(Queue::open(&config.spool, false)?);
    let acceptor = Acceptor::new(
        config.clone(),
        smtp.relay_domains.clone(),
        queue.clone(),
        policy,
        Some(codec),
        Arc::new(Metrics::default()),
        Arc::new(Notify::new()),
    );
    let received = acceptor.received_field(
        None,
        None,
        false,
        &format!("submit.{}", std::process::id()),
        None,
    );
    // Every check first, nothing queued yet.
    let mut checked = Vec::with_capacity(messages.len());
    for (mut envelope, content) in messages {
        let mut full = received.clone().into_bytes();
        full.extend_from_slice(&content);
        let mut refused = Vec::new();
        let sender = acceptor.check_sender(&envelope.reverse_path, &envelope.mail_params);
        if !sender.is_positive() {
            refused = envelope
                .recipients
                .drain(..)
                .map(|r| (r.mailbox, sender.clone()))
                .collect();
        }
        envelope.recipients.retain(|r| {
            let reply = acceptor.check_recipient(&envelope.reverse_path, &r.mailbox);
            let ok = reply.is_positive();
            if !ok {
                refused.push((r.mailbox.clone(), reply));
            }
            ok
        });
        if !envelope.recipients.is_empty() {
            if let Some(reply) = acceptor.check_message(&envelope, &full, origin) {
                refused.extend(
                    envelope
                        .recipients
                        .drain(..)
                        .map(|r| (r.mailbox, reply.clone())),
                );
            }
        }
        checked.push((envelope, full, refused));
    }
    let mut report = SubmitReport {
        messages: checked
            .iter()
            .map(|(envelope, _, refused)| MessageReport {
                sender: envelope.reverse_path.clone(),
                refused: refused.clone(),
                queued: None,
                dsn_queued: None,
            })
            .collect(),
        nothing_queued: false,
    };
    if checked
        .iter()
        .any(|(_, _, refused)| refused.iter().any(|(_, r)| r.is_transient()))
    {
        report.nothing_queued = true;
        return Ok(report);
    }
    let returns = if batch {
        Some(Returns::new(
            config.clone(),
            queue.clone(),
            Arc::new(Metrics::default()),
            Arc::new(Notify::new()),
        )?)
    } else {
        None
    };
    for (n, (envelope, content, refused)) in checked.iter().enumerate() {
        if !envelope.recipients.is_empty() {
            let reply = acceptor.enqueue(envelope, content, origin);
            let failed = !reply.is_positive();
            report.messages[n].queued = Some(reply);
            if failed {
                return Ok(report);
            }
        }
        if let (Some(returns), false) = (&returns, refused.is_empty()) {
            let failures: Vec<_> = refused
                .iter()
                .map(|(r, reply)| (r.clone(), Failure::smtp(reply, &config.name)))
                .collect();
            let queued = returns.return_to_sender(
                &SpooledEnvelope::from(envelope),
                content,
                &failures,
                &format!("submit.{}", n + 1),
            )?;
            report.messages[n].dsn_queued = Some(queued);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_message_has_bare_paths_and_crlf_content() {
        let (envelope, content) = pipe_message(
            "<ops@earth.example>",
            &["ada@moon.example".into(), "<bob@moon.example>".into()],
            b"Subject: x\n\nhello\r\nbye",
        );
        assert_eq!(envelope.reverse_path, "ops@earth.example");
        let to: Vec<&str> = envelope
            .recipients
            .iter()
            .map(|r| r.mailbox.as_str())
            .collect();
        assert_eq!(to, ["ada@moon.example", "bob@moon.example"]);
        assert_eq!(content, b"Subject: x\r\n\r\nhello\r\nbye\r\n");
        assert_eq!(pipe_message("<>", &[], b"").0.reverse_path, "");
    }

    #[test]
    fn refusals_map_to_sysexits_and_the_worst_wins() {
        let reply = |code, enhanced| Reply::new(code, Some(enhanced), "no");
        assert_eq!(
            sysexits::for_reply(&reply(450, "4.2.0")),
            sysexits::TEMPFAIL
        );
        assert_eq!(sysexits::for_reply(&reply(550, "5.1.1")), sysexits::NOUSER);
        assert_eq!(sysexits::for_reply(&reply(550, "5.7.1")), sysexits::NOPERM);
        assert_eq!(sysexits::for_reply(&reply(554, "5.6.0")), sysexits::DATAERR);
        let message = |refused: Vec<(String, Reply)>| MessageReport {
            sender: "ops@earth.example".into(),
            refused,
            queued: None,
            dsn_queued: None,
        };
        let report = SubmitReport {
            messages: vec![
                message(vec![("a@b".into(), reply(550, "5.1.1"))]),
                message(vec![("c@d".into(), reply(550, "5.7.1"))]),
            ],
            nothing_queued: false,
        };
        assert_eq!(report.refusals_exit(), sysexits::NOPERM);
        let clean = SubmitReport {
            messages: vec![message(vec![])],
            nothing_queued: false,
        };
        assert_eq!(clean.refusals_exit(), 0);
    }
}
