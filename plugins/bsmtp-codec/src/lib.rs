//! Default `codec-plugin` component: the `deepmail-bsmtp` library behind the
//! `deepmail:stages/bsmtp-codec` WIT interface. Built for `wasm32-wasip2` and
//! embedded in the `deepmail` binary as `builtin:bsmtp-codec`.
//!
//! Nothing but type conversion lives here; the codec itself is the sans-IO
//! library, so the plugin and native code paths cannot drift apart.

wit_bindgen::generate!({
    path: "../../wit",
    world: "codec-plugin",
});

use deepmail::stages::types::{Envelope, ForwardPath, Message, SmtpParam, StageError};
use exports::deepmail::stages::bsmtp_codec::{DecodeMode, DecodeOptions, EncodeOptions, Greeting};
use exports::deepmail::stages::plugin_info::Info;

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "bsmtp-codec".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "deepmail's RFC 2442 Batch SMTP codec (deepmail-bsmtp)".into(),
        }
    }
}

impl exports::deepmail::stages::bsmtp_codec::Guest for Plugin {
    fn encode(messages: Vec<Message>, options: EncodeOptions) -> Result<Vec<u8>, StageError> {
        let messages: Vec<_> = messages.into_iter().map(message_from_wit).collect();
        let options = deepmail_bsmtp::EncodeOptions {
            greeting: match options.greeting {
                Greeting::None => deepmail_bsmtp::Greeting::None,
                Greeting::Helo(d) => deepmail_bsmtp::Greeting::Helo(d),
                Greeting::Ehlo(d) => deepmail_bsmtp::Greeting::Ehlo(d),
            },
            quit: options.quit,
        };
        deepmail_bsmtp::encode(&messages, &options).map_err(|e| StageError {
            code: e.code().into(),
            message: e.to_string(),
            offset: None,
        })
    }

    fn decode(batch: Vec<u8>, options: DecodeOptions) -> Result<Vec<Message>, StageError> {
        let options = deepmail_bsmtp::DecodeOptions {
            mode: match options.mode {
                DecodeMode::Strict => deepmail_bsmtp::DecodeMode::Strict,
                DecodeMode::Lenient => deepmail_bsmtp::DecodeMode::Lenient,
            },
        };
        match deepmail_bsmtp::decode(&batch, &options) {
            Ok(messages) => Ok(messages.into_iter().map(message_to_wit).collect()),
            Err(e) => Err(StageError {
                code: e.code().into(),
                message: e.to_string(),
                offset: Some(e.offset),
            }),
        }
    }
}

fn params_from_wit(params: Vec<SmtpParam>) -> Vec<deepmail_bsmtp::SmtpParam> {
    params
        .into_iter()
        .map(|p| deepmail_bsmtp::SmtpParam {
            keyword: p.keyword,
            value: p.value,
        })
        .collect()
}

fn params_to_wit(params: Vec<deepmail_bsmtp::SmtpParam>) -> Vec<SmtpParam> {
    params
        .into_iter()
        .map(|p| SmtpParam {
            keyword: p.keyword,
            value: p.value,
        })
        .collect()
}

fn message_from_wit(m: Message) -> deepmail_bsmtp::Message {
    deepmail_bsmtp::Message {
        envelope: deepmail_bsmtp::Envelope {
            reverse_path: m.envelope.reverse_path,
            mail_parameters: params_from_wit(m.envelope.mail_parameters),
            forward_paths: m
                .envelope
                .forward_paths
                .into_iter()
                .map(|f| deepmail_bsmtp::ForwardPath {
                    mailbox: f.mailbox,
                    parameters: params_from_wit(f.parameters),
                })
                .collect(),
        },
        content: m.content,
    }
}

fn message_to_wit(m: deepmail_bsmtp::Message) -> Message {
    Message {
        envelope: Envelope {
            reverse_path: m.envelope.reverse_path,
            mail_parameters: params_to_wit(m.envelope.mail_parameters),
            forward_paths: m
                .envelope
                .forward_paths
                .into_iter()
                .map(|f| ForwardPath {
                    mailbox: f.mailbox,
                    parameters: params_to_wit(f.parameters),
                })
                .collect(),
        },
        content: m.content,
    }
}

export!(Plugin);
