//! `basic-policy`: the default `policy-plugin`, which stops spam before it
//! leaves Earth. It refuses over-sized messages, senders and recipients
//! outside configured domains, and messages whose SPF, DKIM or DMARC check
//! failed according to the `Authentication-Results` header fields
//! (RFC 8601) written by the operator's own border MTA. It does not run
//! SPF, DKIM or DMARC itself, reads no DNS and keeps no state: it judges
//! only what it is given, so it has no capabilities at all.
//!
//! # Settings
//!
//! Key/value pairs from the gateway configuration, passed on every call.
//! Unknown keys and bad values are an `invalid-config` stage error naming
//! the key.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max-message-bytes` | `52428800` (50 MiB) | largest message accepted; a byte count, or with a `KiB`/`MiB`/`GiB` suffix. Checked against `SIZE=` at MAIL (RFC 1870) and the content at end of DATA: 552 5.3.4 |
//! | `sender-domains` | any | comma list of reverse-path domains accepted; `.example.com` admits every subdomain of example.com (not example.com itself). Case-insensitive; the null reverse-path `<>` is always accepted. Else 550 5.7.1. Repeats add to the list |
//! | `recipient-domains` | any | the same for recipient domains, at RCPT and again at end of DATA. Else 550 5.7.1 |
//! | `reject-auth-failures` | `spf,dkim,dmarc` | methods whose `fail` in a trusted `Authentication-Results` rejects the message (550 5.7.1, naming the method, the domain and the authserv-id), unless a trusted result for the same method passed; `none` or empty disables it |
//! | `authserv-id` | none | the authserv-id(s) of your border MTA, comma list. **Required** for any `Authentication-Results` to count: fields from other authserv-ids are ignored, because anyone can write one (RFC 8601 §5, §7.1). Your MTA must remove incoming fields that claim its id |
//! | `dmarc-policy` | `published` | `published`: a `dmarc=fail` does not reject when the result records that the domain publishes `p=none` (RFC 7489 §6.3); `always`: every trusted `dmarc=fail` rejects |
//!
//! The logic is in host-testable modules ([`auth_results`], [`header`],
//! [`settings`], [`checks`]); the WebAssembly component is a thin wrapper
//! compiled only for `wasm32`.

#![warn(missing_docs)]

pub mod auth_results;
pub mod checks;
pub mod header;
pub mod settings;

pub use crate::checks::{check_message, check_recipient, check_sender, Refusal, Verdict};
pub use crate::settings::{ConfigError, Settings};

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy-plugin",
    });

    use deepmail::stages::types::{Envelope, ForwardPath, SmtpParam, StageError};
    use exports::deepmail::stages::plugin_info::Info;
    use exports::deepmail::stages::policy::{Refusal, Verdict};

    use crate::settings::{ConfigError, Settings};

    struct Plugin;

    impl exports::deepmail::stages::plugin_info::Guest for Plugin {
        fn describe() -> Info {
            Info {
                name: "basic-policy".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "size limit, sender/recipient domains, trusted \
                              Authentication-Results (SPF, DKIM, DMARC)"
                    .into(),
            }
        }
    }

    fn settings(config: &[(String, String)]) -> Result<Settings, StageError> {
        Settings::parse(config).map_err(|e: ConfigError| StageError {
            code: "invalid-config".into(),
            message: e.to_string(),
            offset: None,
        })
    }

    fn verdict(v: crate::Verdict) -> Verdict {
        match v {
            crate::Verdict::Accept => Verdict::Accept,
            crate::Verdict::Reject(r) => Verdict::Reject(Refusal {
                code: r.code,
                enhanced: r.enhanced.into(),
                reason: r.reason,
            }),
        }
    }

    impl exports::deepmail::stages::policy::Guest for Plugin {
        fn check_config(config: Vec<(String, String)>) -> Result<(), StageError> {
            settings(&config).map(|_| ())
        }

        fn check_sender(
            reverse_path: String,
            parameters: Vec<SmtpParam>,
            config: Vec<(String, String)>,
        ) -> Result<Verdict, StageError> {
            let settings = settings(&config)?;
            let params: Vec<(&str, Option<&str>)> = parameters
                .iter()
                .map(|p| (p.keyword.as_str(), p.value.as_deref()))
                .collect();
            Ok(verdict(crate::check_sender(
                &settings,
                &reverse_path,
                &params,
            )))
        }

        fn check_recipient(
            reverse_path: String,
            recipient: ForwardPath,
            config: Vec<(String, String)>,
        ) -> Result<Verdict, StageError> {
            let settings = settings(&config)?;
            Ok(verdict(crate::check_recipient(
                &settings,
                &reverse_path,
                &recipient.mailbox,
            )))
        }

        fn check_message(
            envelope: Envelope,
            content: Vec<u8>,
            config: Vec<(String, String)>,
        ) -> Result<Verdict, StageError> {
            let settings = settings(&config)?;
            let recipients: Vec<&str> = envelope
                .forward_paths
                .iter()
                .map(|f| f.mailbox.as_str())
                .collect();
            Ok(verdict(crate::check_message(
                &settings,
                &envelope.reverse_path,
                &recipients,
                &content,
            )))
        }
    }

    export!(Plugin);
}
