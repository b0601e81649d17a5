//! The policy stage as the host calls it: a plugin exporting
//! `deepmail:stages/policy` that accepts, rejects or defers a sender (at
//! SMTP MAIL), a recipient (at RCPT) and a message (at the end of DATA),
//! with no capabilities at all.
//!
//! The plugin is untrusted, and its refusal becomes an SMTP reply line, so
//! the host checks every refusal before handing it on: the reply code must
//! be 5xx for a rejection and 4xx for a deferral, the enhanced status code
//! must be RFC 3463 syntax of the same class, and the reason text is cut
//! to one line of printable ASCII. A verdict that breaks the first two
//! rules is a stage error (`invalid-verdict`), never a reply.
//!
//! `check_message` runs in a fresh instance, used for that call only,
//! unless the plugin exports `policy-state` (it means to remember across
//! messages): no message's content can reach the verdict on another by
//! accident.

use std::fmt;
use std::sync::Arc;

use crate::bindings::deepmail::stages::types::{self, Envelope, ForwardPath, SmtpParam};
use crate::bindings::exports::deepmail::stages::{policy, policy_state};
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::plugin::{LoadedPlugin, PluginInfo, PluginSource, Stage};

/// Longest reason text passed on, in bytes: an SMTP reply line is at most
/// 512 octets with its code and CRLF (RFC 5321 §4.5.3.1.5).
const MAX_REASON: usize = 400;

/// Why a sender, recipient or message is refused: the SMTP reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SMTP reply code: 5xx for a rejection, 4xx for a deferral.
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. `5.7.1`; same class as `code`.
    pub enhanced: String,
    /// One line of printable ASCII, never empty.
    pub reason: String,
}

impl Refusal {
    /// The reply line without its CRLF, e.g. `550 5.7.1 sender domain
    /// spam.example is not permitted`.
    pub fn reply(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.reason)
    }
}

/// The policy's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Accept,
    /// Permanent refusal (5xx): do not retry.
    Reject(Refusal),
    /// Temporary refusal (4xx): the client may retry later.
    Defer(Refusal),
}

impl Verdict {
    /// True for [`Verdict::Accept`].
    pub fn is_accept(&self) -> bool {
        matches!(self, Verdict::Accept)
    }

    /// The refusal, unless the verdict is to accept.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Verdict::Accept => None,
            Verdict::Reject(r) | Verdict::Defer(r) => Some(r),
        }
    }
}

/// A loaded policy plugin with its settings. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<policy::GuestIndices>,
    config: Vec<(String, String)>,
    /// What the plugin says it keeps across messages, when it exports
    /// `policy-state`.
    keeps: Option<String>,
}

impl Policy {
    /// Loads `source` as the policy stage with `config` (key/value settings
    /// passed on every call). The plugin gets no network and no files.
    /// Settings are not checked here; call [`Policy::check_config`] at
    /// start-up to refuse a bad configuration before any mail arrives.
    pub fn load(
        host: &Host,
        source: &PluginSource,
        config: Vec<(String, String)>,
    ) -> Result<Policy, LoadError> {
        let plugin = host.load(source, Stage::Policy, None)?;
        let indices =
            policy::GuestIndices::new(plugin.instance_pre()).map_err(|e| LoadError::Link {
                plugin: plugin.label().to_string(),
                detail: format!("{e:#}"),
            })?;
        let keeps = if plugin.exports_interface("policy-state") {
            let state = policy_state::GuestIndices::new(plugin.instance_pre()).map_err(|e| {
                LoadError::Link {
                    plugin: plugin.label().to_string(),
                    detail: format!("{e:#}"),
                }
            })?;
            let said = plugin
                .call(|store, instance| state.load(&mut *store, instance)?.call_keeps(&mut *store))
                .map_err(|e| LoadError::Link {
                    plugin: plugin.label().to_string(),
                    detail: format!("policy-state.keeps: {e}"),
                })?;
            // Logged by the host: one line of printable ASCII.
            Some(if said.trim().is_empty() {
                "state across messages (the plugin does not say what)".to_string()
            } else {
                clean_reason(&said, 5)
            })
        } else {
            None
        };
        Ok(Policy {
            plugin,
            indices: Arc::new(indices),
            config,
            keeps,
        })
    }

    /// What the plugin keeps across messages, in its words, if it exports
    /// `policy-state`; then its instances are reused for every call.
    /// `None`: each `check_message` gets a fresh instance.
    pub fn keeps_state(&self) -> Option<&str> {
        self.keeps.as_deref()
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }

    /// The settings passed on every call.
    pub fn config(&self) -> &[(String, String)] {
        &self.config
    }

    /// Asks the plugin whether its settings are usable; the error (usually
    /// `invalid-config`) names the bad setting.
    pub fn check_config(&self) -> Result<(), StageError> {
        self.plugin
            .call(|store, instance| {
                self.indices
                    .load(&mut *store, instance)?
                    .call_check_config(&mut *store, &self.config)
            })?
            .map_err(|e| self.stage_error(e))
    }

    /// At SMTP MAIL: may `reverse_path` (without angle brackets; empty for
    /// the null path `<>`) send, with these MAIL `parameters`?
    pub fn check_sender(
        &self,
        reverse_path: &str,
        parameters: &[SmtpParam],
    ) -> Result<Verdict, StageError> {
        let verdict = self.plugin.call(|store, instance| {
            self.indices.load(&mut *store, instance)?.call_check_sender(
                &mut *store,
                reverse_path,
                parameters,
                &self.config,
            )
        })?;
        self.verdict(verdict)
    }

    /// At each SMTP RCPT of a transaction from `reverse_path`: may mail go
    /// to `recipient`?
    pub fn check_recipient(
        &self,
        reverse_path: &str,
        recipient: &ForwardPath,
    ) -> Result<Verdict, StageError> {
        let verdict = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_check_recipient(&mut *store, reverse_path, recipient, &self.config)
        })?;
        self.verdict(verdict)
    }

    /// At the end of DATA, before acknowledging: may this message (the
    /// envelope with the recipients accepted at RCPT, and the RFC 5322
    /// content, CRLF line ends, not dot-stuffed) leave Earth?
    pub fn check_message(
        &self,
        envelope: &Envelope,
        content: &[u8],
    ) -> Result<Verdict, StageError> {
        let call = |store: &mut wasmtime::Store<_>, instance: &wasmtime::component::Instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_check_message(&mut *store, envelope, content, &self.config)
        };
        let verdict = if self.keeps.is_some() {
            self.plugin.call(call)
        } else {
            self.plugin.call_fresh(call)
        }?;
        self.verdict(verdict)
    }

    fn stage_error(&self, e: types::StageError) -> StageError {
        StageError {
            code: e.code,
            message: e.message,
            offset: e.offset,
            plugin: self.plugin.label().to_string(),
        }
    }

    fn verdict(
        &self,
        result: Result<policy::Verdict, types::StageError>,
    ) -> Result<Verdict, StageError> {
        let verdict = result.map_err(|e| self.stage_error(e))?;
        checked_verdict(verdict).map_err(|bad| StageError {
            code: "invalid-verdict".into(),
            message: bad.to_string(),
            offset: None,
            plugin: self.plugin.label().to_string(),
        })
    }
}

/// A verdict the host will not turn into an SMTP reply.
#[derive(Debug, thiserror::Error)]
enum BadVerdict {
    /// A reply code of the wrong class for the verdict's kind.
    #[error("policy plugin answered {kind} with reply code {code}; {kind} needs {class}xx")]
    Code {
        kind: &'static str,
        code: u16,
        class: u16,
    },
    /// An enhanced status code that is not RFC 3463 syntax of its class.
    #[error(
        "policy plugin answered {kind} with enhanced status code {enhanced:?}; expected \
         {class}.<subject>.<detail> (RFC 3463), e.g. {class}.7.1"
    )]
    Enhanced {
        kind: &'static str,
        enhanced: String,
        class: u16,
    },
}

/// The plugin's verdict, checked and cleaned for use as an SMTP reply.
fn checked_verdict(verdict: policy::Verdict) -> Result<Verdict, BadVerdict> {
    Ok(match verdict {
        policy::Verdict::Accept => Verdict::Accept,
        policy::Verdict::Reject(r) => Verdict::Reject(checked_refusal(r, 5)?),
        policy::Verdict::Defer(r) => Verdict::Defer(checked_refusal(r, 4)?),
    })
}

fn checked_refusal(r: policy::Refusal, class: u16) -> Result<Refusal, BadVerdict> {
    let kind = if class == 5 { "reject" } else { "defer" };
    if r.code / 100 != class {
        return Err(BadVerdict::Code {
            kind,
            code: r.code,
            class,
        });
    }
    let enhanced = if r.enhanced.is_empty() {
        format!("{class}.0.0")
    } else {
        let parts: Vec<&str> = r.enhanced.split('.').collect();
        let number = |s: &str, max_len: usize| {
            !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
        };
        let valid = parts.len() == 3
            && parts[0] == class.to_string()
            && number(parts[1], 3)
            && number(parts[2], 3);
        if !valid {
            return Err(BadVerdict::Enhanced {
                kind,
                enhanced: r.enhanced,
                class,
            });
        }
        r.enhanced
    };
    Ok(Refusal {
        code: r.code,
        enhanced,
        reason: clean_reason(&r.reason, class),
    })
}

/// One line of printable ASCII: control characters (CR and LF included)
/// become spaces, other characters `?`, runs of spaces collapse, and the
/// text is cut at [`MAX_REASON`] bytes.
fn clean_reason(reason: &str, class: u16) -> String {
    let mut out = String::with_capacity(reason.len().min(MAX_REASON));
    for c in reason.chars() {
        let c = match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() >= MAX_REASON {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end().to_string();
    if out.is_empty() {
        if class == 5 {
            "refused by policy".into()
        } else {
            "deferred by policy, try again later".into()
        }
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: u16, enhanced: &str, reason: &str) -> policy::Refusal {
        policy::Refusal {
            code,
            enhanced: enhanced.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn accept_and_good_refusals_pass_through() {
        assert_eq!(
            checked_verdict(policy::Verdict::Accept).unwrap(),
            Verdict::Accept
        );
        let v = checked_verdict(policy::Verdict::Reject(refusal(550, "5.7.1", "no"))).unwrap();
        assert_eq!(v.refusal().unwrap().reply(), "550 5.7.1 no");
        assert!(!v.is_accept());
        let v = checked_verdict(policy::Verdict::Defer(refusal(451, "4.7.1", "later"))).unwrap();
        assert!(matches!(v, Verdict::Defer(_)));
        assert_eq!(v.refusal().unwrap().reply(), "451 4.7.1 later");
    }

    #[test]
    fn missing_enhanced_code_and_reason_get_defaults() {
        let v = checked_verdict(policy::Verdict::Defer(refusal(450, "", "  \r\n"))).unwrap();
        assert_eq!(
            v.refusal().unwrap().reply(),
            "450 4.0.0 deferred by policy, try again later"
        );
        let v = checked_verdict(policy::Verdict::Reject(refusal(554, "", ""))).unwrap();
        assert_eq!(v.refusal().unwrap().reply(), "554 5.0.0 refused by policy");
    }

    #[test]
    fn mismatched_codes_are_refused() {
        for (v, needle) in [
            (
                policy::Verdict::Reject(refusal(451, "4.7.1", "x")),
                "needs 5xx",
            ),
            (
                policy::Verdict::Defer(refusal(550, "5.7.1", "x")),
                "needs 4xx",
            ),
            (
                policy::Verdict::Reject(refusal(250, "2.0.0", "x")),
                "needs 5xx",
            ),
            (
                policy::Verdict::Reject(refusal(5500, "5.7.1", "x")),
                "needs 5xx",
            ),
            (
                policy::Verdict::Reject(refusal(550, "4.7.1", "x")),
                "RFC 3463",
            ),
            (
                policy::Verdict::Reject(refusal(550, "5.7", "x")),
                "RFC 3463",
            ),
            (
                policy::Verdict::Reject(refusal(550, "5.7.1000", "x")),
                "RFC 3463",
            ),
            (
                policy::Verdict::Reject(refusal(550, "5.x.1", "x")),
                "RFC 3463",
            ),
            (
                policy::Verdict::Reject(refusal(550, "5..1", "x")),
                "RFC 3463",
            ),
        ] {
            let e = checked_verdict(v.clone()).unwrap_err();
            assert!(e.to_string().contains(needle), "{v:?}: {e}");
        }
    }

    #[test]
    fn reasons_cannot_inject_reply_lines() {
        let v = checked_verdict(policy::Verdict::Reject(refusal(
            550,
            "5.7.1",
            "no\r\n250 2.0.0 ok\0 caf\u{e9}   end\t",
        )))
        .unwrap();
        assert_eq!(
            v.refusal().unwrap().reason,
            "no 250 2.0.0 ok caf? end",
            "one line of printable ASCII"
        );
        let long = "x".repeat(10_000);
        let v = checked_verdict(policy::Verdict::Reject(refusal(550, "5.7.1", &long))).unwrap();
        assert_eq!(v.refusal().unwrap().reason.len(), MAX_REASON);
    }
}
