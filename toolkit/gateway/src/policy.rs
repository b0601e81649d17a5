//! The policy stage as the gateway uses it: "spam is stopped before it
//! leaves Earth". The plugin (default `builtin:basic-policy`, settings from
//! the `[policy]` table) is asked at MAIL, at each RCPT and at the end of
//! DATA; its refusals become SMTP replies (5xx reject, 4xx defer). A policy
//! plugin that fails (trap, timeout, bad answer) defers with 451: broken
//! policy never lets mail through, and never bounces it for good.

use deepmail_host::types::ForwardPath;
use deepmail_host::{Host, LoadError, PluginSource, Policy, Stage, Verdict};
use deepmail_smtp::{Envelope, Reply};

use crate::config::GatewayConfig;

/// The policy plugin could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// Loading the component failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plugin refused the `[policy]` settings.
    #[error("[policy] in {file}: {detail}")]
    Config {
        /// The configuration file.
        file: String,
        /// The plugin's explanation (names the key).
        detail: String,
    },
}

/// A loaded policy plugin with the gateway's settings.
pub struct GatewayPolicy {
    policy: Policy,
}

impl GatewayPolicy {
    /// The configured policy plugin; `None` when `[stages] policy = "none"`.
    pub fn load(
        host: &Host,
        config: &GatewayConfig,
    ) -> Result<Option<GatewayPolicy>, PolicyLoadError> {
        let source = match config.stages.get(Stage::Policy.name()).map(String::as_str) {
            Some("none") => return Ok(None),
            Some(s) => s.parse().unwrap_or_else(|e| match e {}),
            None => PluginSource::Builtin("basic-policy".into()),
        };
        let policy = Policy::load(host, &source, config.policy.clone())?;
        // A bad setting stops the gateway at start, not every message later.
        policy.check_config().map_err(|e| PolicyLoadError::Config {
            file: config.source.display().to_string(),
            detail: e.to_string(),
        })?;
        match policy.keeps_state() {
            Some(what) => {
                tracing::info!(stage = "policy", plugin = %source, keeps = what, "the policy plugin keeps state across messages (it exports policy-state); its instances are reused for every check")
            }
            None => {
                tracing::debug!(stage = "policy", plugin = %source, "each message is judged in a fresh policy instance")
            }
        }
        Ok(Some(GatewayPolicy { policy }))
    }

    fn reply(
        &self,
        verdict: Result<Verdict, deepmail_host::StageError>,
        what: &str,
    ) -> Option<Reply> {
        match verdict {
            Ok(Verdict::Accept) => None,
            Ok(Verdict::Reject(r)) => Some(Reply::new(
                if (500..600).contains(&r.code) {
                    r.code
                } else {
                    550
                },
                Some(if r.enhanced.starts_with('5') {
                    r.enhanced.as_str()
                } else {
                    "5.7.1"
                }),
                r.reason,
            )),
            Ok(Verdict::Defer(r)) => Some(Reply::new(
                if (400..500).contains(&r.code) {
                    r.code
                } else {
                    451
                },
                Some(if r.enhanced.starts_with('4') {
                    r.enhanced.as_str()
                } else {
                    "4.7.1"
                }),
                r.reason,
            )),
            Err(e) => {
                tracing::error!(stage = "policy", check = what, error = %e, "policy plugin failed; deferring");
                Some(Reply::new(
                    451,
                    Some("4.3.0"),
                    "policy check unavailable; try again later",
                ))
            }
        }
    }

    /// At MAIL: `Some(refusal)` or `None` to go on.
    pub fn check_sender(
        &self,
        reverse_path: &str,
        mail_params: &[deepmail_smtp::Param],
    ) -> Option<Reply> {
        self.reply(
            self.policy
                .check_sender(reverse_path, &crate::envelope::host_params(mail_params)),
            "sender",
        )
    }

    /// At RCPT.
    pub fn check_recipient(&self, reverse_path: &str, mailbox: &str) -> Option<Reply> {
        let rcpt = ForwardPath {
            mailbox: mailbox.to_string(),
            parameters: Vec::new(),
        };
        self.reply(
            self.policy.check_recipient(reverse_path, &rcpt),
            "recipient",
        )
    }

    /// At the end of DATA.
    pub fn check_message(&self, envelope: &Envelope, content: &[u8]) -> Option<Reply> {
        self.reply(
            self.policy
                .check_message(&crate::envelope::host_envelope(envelope), content),
            "message",
        )
    }
}
