//! Messages from files and flags: the envelope a message is sent with
//! (for an RFC or an Exim reader), a batch decoded with a hint for
//! lenient input, decoded messages as JSON, one line of text or `.eml`
//! files, and CRLF line ends.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::ValueEnum;
use deepmail_host::types::{DecodeMode, DecodeOptions, Envelope, ForwardPath, Message, SmtpParam};
use deepmail_host::Codec;
use serde_json::{json, Value};

use crate::{read_input, BenchError};

/// Whose Batch SMTP reader the output is for.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Dialect {
    /// RFC 2442 / RFC 5321: MAIL and RCPT carry ESMTP parameters
    /// (BODY=8BITMIME, SMTPUTF8, ...) as the content needs them.
    Rfc,
    /// Exim's `exim -bS`, which reads MAIL FROM as one address and refuses
    /// every ESMTP parameter: none are written (8-bit content is still
    /// delivered intact by Exim).
    Exim,
}

/// [`envelope_from`] for a reader of `dialect`: for `exim -bS`, refuses
/// `--param` and `--body 8bitmime` and writes no ESMTP parameters.
pub fn envelope_for_dialect(
    dialect: Dialect,
    from: Option<&str>,
    to: &[String],
    params: &[String],
    body: Body,
    name: &str,
    content: &[u8],
) -> Result<Envelope, BenchError> {
    if dialect == Dialect::Rfc {
        return envelope_from(from, to, params, body, name, content, true);
    }
    if let Some(p) = params.first() {
        return Err(bad(format!("--param {p}: exim -bS accepts no ESMTP parameters on MAIL FROM; drop it or use --dialect rfc")));
    }
    if body == Body::EightBitMime {
        return Err(bad("--body 8bitmime: exim -bS accepts no ESMTP parameters on MAIL FROM; drop it or use --dialect rfc".into()));
    }
    let mut envelope = envelope_from(from, to, &[], Body::SevenBit, name, content, true)?;
    // Exim reads UTF-8 addresses without the SMTPUTF8 keyword.
    envelope.mail_parameters.clear();
    Ok(envelope)
}

/// The flags that choose each message's envelope (`deepmail encode`).
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeFlags<'a> {
    /// Whose reader the batch is for.
    pub dialect: Dialect,
    /// `--from`: the envelope sender (default: from the headers).
    pub from: Option<&'a str>,
    /// `--to`: the envelope recipients (default: from the headers).
    pub to: &'a [String],
    /// `--param`: extra MAIL parameters.
    pub params: &'a [String],
    /// `--body`: the BODY parameter to declare.
    pub body: Body,
}

/// Reads each file of `paths` (`-`: standard input) as one message of a
/// batch, with the envelope `flags` give it ([`envelope_for_dialect`]).
pub fn messages_from_files(
    paths: &[PathBuf],
    flags: EnvelopeFlags<'_>,
) -> Result<Vec<Message>, BenchError> {
    let mut messages = Vec::new();
    for path in paths {
        let content = read_input(path)?;
        let name = path.display().to_string();
        let envelope = envelope_for_dialect(
            flags.dialect,
            flags.from,
            flags.to,
            flags.params,
            flags.body,
            &name,
            &content,
        )?;
        messages.push(Message { envelope, content });
    }
    Ok(messages)
}

/// Decodes the Batch SMTP `batch` read from `name`, strictly or as Exim
/// would; a strict refusal that lenient decoding would accept says so.
pub fn decode_batch(
    codec: &Codec,
    batch: &[u8],
    lenient: bool,
    name: &Path,
) -> Result<Vec<Message>, BenchError> {
    let mode = if lenient {
        DecodeMode::Lenient
    } else {
        DecodeMode::Strict
    };
    codec.decode(batch, DecodeOptions { mode }).map_err(|e| {
        let hint = if !lenient
            && matches!(
                e.code.as_str(),
                "bare-lf" | "line-too-long" | "trailing-garbage"
            ) {
            "\nhint: batches written by Exim and other MTAs may need --lenient"
        } else {
            ""
        };
        BenchError::BadArgument(format!(
            "{} is not valid Batch SMTP: {e}{hint}",
            name.display()
        ))
    })
}

/// Each message's content as `NNNN.eml` (from `0001.eml`), for
/// [`crate::output::write_directory`].
pub fn eml_files(messages: &[Message]) -> Vec<(String, Vec<u8>)> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("{:04}.eml", i + 1), m.content.clone()))
        .collect()
}

/// The messages as a JSON array of [`message_json`], numbered from 1.
pub fn messages_json(messages: &[Message]) -> Value {
    Value::Array(
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| message_json(i + 1, m))
            .collect(),
    )
}

/// One line about message number `index`: its envelope, size and subject.
pub fn message_line(index: usize, m: &Message) -> String {
    let j = message_json(index, m);
    let to: Vec<&str> = m
        .envelope
        .forward_paths
        .iter()
        .map(|f| f.mailbox.as_str())
        .collect();
    format!(
        "#{index} from <{}> to {} ({} bytes) subject: {}",
        m.envelope.reverse_path,
        to.join(", "),
        m.content.len(),
        j["subject"].as_str().unwrap_or("(none)")
    )
}

/// Which BODY parameter to declare on MAIL FROM.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Body {
    /// BODY=8BITMIME when the content has 8-bit octets or lines over 998 octets.
    Auto,
    /// Declare nothing.
    #[value(name = "7bit")]
    SevenBit,
    /// Always BODY=8BITMIME.
    #[value(name = "8bitmime")]
    EightBitMime,
}

fn parse_param(text: &str) -> SmtpParam {
    match text.split_once('=') {
        Some((k, v)) => SmtpParam {
            keyword: k.to_string(),
            value: Some(v.to_string()),
        },
        None => SmtpParam {
            keyword: text.to_string(),
            value: None,
        },
    }
}

fn strip_brackets(a: &str) -> String {
    let a = a.trim();
    a.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(a)
        .to_string()
}

/// The envelope for `content`: `from`/`to` where given, else the headers;
/// BODY=8BITMIME and SMTPUTF8 added when the content or addresses need them.
pub fn envelope_from(
    from: Option<&str>,
    to: &[String],
    params: &[String],
    body: Body,
    name: &str,
    content: &[u8],
    say: bool,
) -> Result<Envelope, BenchError> {
    let parsed = mail_parser::MessageParser::default().parse(content);
    let reverse_path = match from {
        Some(f) => strip_brackets(f),
        None => {
            let msg = parsed
                .as_ref()
                .ok_or_else(|| bad(format!("{name}: not an RFC 5322 message; give --from")))?;
            let from = msg
                .return_address()
                .map(strip_brackets)
                .or_else(|| {
                    msg.from()
                        .and_then(|a| a.first())
                        .and_then(|a| a.address())
                        .map(str::to_string)
                })
                .ok_or_else(|| {
                    bad(format!(
                        "{name}: no Return-Path or From address; give --from"
                    ))
                })?;
            if say {
                eprintln!("deepmail: {name}: envelope sender {from} (from the headers)");
            }
            from
        }
    };
    let recipients: Vec<String> = if !to.is_empty() {
        to.iter().map(|t| strip_brackets(t)).collect()
    } else {
        let msg = parsed
            .as_ref()
            .ok_or_else(|| bad(format!("{name}: not an RFC 5322 message; give --to")))?;
        let mut r: Vec<String> = [msg.to(), msg.cc()]
            .into_iter()
            .flatten()
            .flat_map(|list| {
                list.iter()
                    .filter_map(|a| a.address().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        r.dedup();
        if r.is_empty() {
            return Err(bad(format!("{name}: no To or Cc addresses; give --to")));
        }
        if say {
            eprintln!(
                "deepmail: {name}: envelope recipients {} (from the headers)",
                r.join(", ")
            );
        }
        r
    };
    let mut mail_parameters: Vec<SmtpParam> = params.iter().map(|p| parse_param(p)).collect();
    let has = |ps: &[SmtpParam], k: &str| ps.iter().any(|p| p.keyword.eq_ignore_ascii_case(k));
    let needs_8bit =
        content.iter().any(|b| *b >= 0x80) || content.split(|b| *b == b'\n').any(|l| l.len() > 999);
    if !has(&mail_parameters, "BODY")
        && (body == Body::EightBitMime || (body == Body::Auto && needs_8bit))
    {
        mail_parameters.push(SmtpParam {
            keyword: "BODY".into(),
            value: Some("8BITMIME".into()),
        });
    }
    let non_ascii = !reverse_path.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
    if non_ascii && !has(&mail_parameters, "SMTPUTF8") {
        mail_parameters.push(SmtpParam {
            keyword: "SMTPUTF8".into(),
            value: None,
        });
    }
    Ok(Envelope {
        reverse_path,
        mail_parameters,
        forward_paths: recipients
            .into_iter()
            .map(|mailbox| ForwardPath {
                mailbox,
                parameters: vec![],
            })
            .collect(),
    })
}

fn params_text(ps: &[SmtpParam]) -> Vec<String> {
    ps.iter()
        .map(|p| match &p.value {
            Some(v) => format!("{}={v}", p.keyword),
            None => p.keyword.clone(),
        })
        .collect()
}

/// A decoded message as JSON for people and tools.
pub fn message_json(index: usize, m: &Message) -> Value {
    let parsed = mail_parser::MessageParser::default().parse(&m.content);
    let mut v = json!({
        "index": index,
        "reverse_path": m.envelope.reverse_path,
        "mail_parameters": params_text(&m.envelope.mail_parameters),
        "forward_paths": m.envelope.forward_paths.iter().map(|f| json!({
            "mailbox": f.mailbox, "parameters": params_text(&f.parameters)})).collect::<Vec<_>>(),
        "size": m.content.len(),
        "subject": parsed.as_ref().and_then(|p| p.subject()).map(str::to_string),
        "message_id": parsed.as_ref().and_then(|p| p.message_id()).map(str::to_string),
    });
    match std::str::from_utf8(&m.content) {
        Ok(text) => v["content"] = Value::String(text.to_string()),
        Err(_) => {
            v["content_base64"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(&m.content))
        }
    }
    v
}

/// `content` with every line ending in CRLF (LF or CRLF in), ending in
/// one: [`deepmail_smtp::crlf_lines`].
pub use deepmail_smtp::crlf_lines as crlf;

fn bad(sentence: String) -> BenchError {
    BenchError::BadArgument(sentence)
}
