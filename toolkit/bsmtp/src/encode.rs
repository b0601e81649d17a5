//! The encoder: messages to one canonical Batch SMTP object (RFC 2442 §2),
//! i.e. the SMTP commands a client would send (RFC 5321 §4.1.1.1–§4.1.1.4,
//! §4.1.1.10) with the content made transparent by dot-stuffing (§4.5.2).
//!
//! Canonical form (`vectors/README.md`): optional `HELO d`/`EHLO d`; per
//! message `MAIL FROM:<rp>[ params]`, one `RCPT TO:<fp>[ params]` per
//! recipient, `DATA`, the content with every line end turned into CRLF (a
//! final CRLF added if missing) and every line starting with `.` given
//! another `.`, then `.`; optional `QUIT`. Upper-case verbs, CRLF throughout.
//!
//! Everything is validated before it is written, so no path, parameter or
//! content line can smuggle in a command: paths must parse per §4.1.2 and
//! contain no CR, LF, NUL, space, `<` or `>`; parameters must be
//! `esmtp-param`s; content must not contain NUL.

use memchr::{memchr, memchr2};

use crate::error::{EncodeError, EncodeErrorKind};
use crate::message::{Message, SmtpParam};
use crate::syntax::{self, PathKind};

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
pub(crate) const MAX_LINE: usize = 998;

/// The greeting command written once at the start of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Greeting {
    /// No greeting (what Exim's `use_bsmtp` transport writes by default).
    #[default]
    None,
    /// `HELO <domain>`.
    Helo(String),
    /// `EHLO <domain>`.
    Ehlo(String),
}

/// How to frame a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EncodeOptions {
    /// Greeting to write before the first transaction.
    pub greeting: Greeting,
    /// Write `QUIT` after the last transaction.
    pub quit: bool,
}

/// Encodes `messages` as one Batch SMTP object in canonical form.
///
/// Fails with class `invalid-envelope` for a greeting, path or parameter
/// that cannot be written safely, `no-recipients` for a message without
/// forward paths, `nul-byte` for NUL in content and `line-too-long` for a
/// content line over 998 octets (after dot-stuffing) when the message does
/// not declare `BODY=8BITMIME` or `BODY=BINARYMIME`.
pub fn encode(messages: &[Message], options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(messages, options, &mut out)?;
    Ok(out)
}

/// Like [`encode`], appending to `out`. On error `out` is left as it was.
pub fn encode_into(
    messages: &[Message],
    options: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write_batch(messages, options, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_batch(
    messages: &[Message],
    options: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.reserve(estimate(messages));
    let greeting = match &options.greeting {
        Greeting::None => None,
        Greeting::Helo(domain) => Some(("HELO ", domain)),
        Greeting::Ehlo(domain) => Some(("EHLO ", domain)),
    };
    if let Some((verb, domain)) = greeting {
        if !syntax::is_greeting_domain(domain.as_bytes()) {
            return Err(EncodeError {
                kind: EncodeErrorKind::InvalidGreeting,
                message_index: 0,
                detail: format!(
                    "{}{:?} is not a domain or address literal; expected e.g. earth-gw.example or [192.0.2.1] (RFC 5321 §4.1.1.1)",
                    verb, domain
                ),
            });
        }
        out.extend_from_slice(verb.as_bytes());
        out.extend_from_slice(domain.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (index, message) in messages.iter().enumerate() {
        write_message(index, message, out)?;
    }
    if options.quit {
        out.extend_from_slice(b"QUIT\r\n");
    }
    Ok(())
}

/// Room for the commands plus the content, a CR per 16 octets and a few
/// stuffed dots: enough for ordinary mail to encode without reallocating.
fn estimate(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| {
            let envelope: usize = 64
                + m.envelope.reverse_path.len()
                + m.envelope
                    .forward_paths
                    .iter()
                    .map(|f| f.mailbox.len() + 16)
                    .sum::<usize>();
            envelope + m.content.len() + m.content.len() / 16 + 8
        })
        .sum()
}

fn write_message(index: usize, message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let envelope = &message.envelope;
    let utf8 = envelope.has_mail_param("SMTPUTF8");
    let invalid = |detail: String| EncodeError {
        kind: EncodeErrorKind::InvalidEnvelope,
        message_index: index,
        detail,
    };

    if !envelope.reverse_path.is_empty() {
        check_path(&envelope.reverse_path, PathKind::Reverse, utf8)
            .map_err(|why| invalid(format!("reverse path {:?} {why}", envelope.reverse_path)))?;
    }
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(envelope.reverse_path.as_bytes());
    out.push(b'>');
    write_params(&envelope.mail_parameters, utf8, out)
        .map_err(|why| invalid(format!("MAIL parameter {why}")))?;

    if envelope.forward_paths.is_empty() {
        return Err(EncodeError {
            kind: EncodeErrorKind::NoRecipients,
            message_index: index,
            detail: "no forward paths; expected at least one recipient (RCPT TO)".to_owned(),
        });
    }
    for (n, recipient) in envelope.forward_paths.iter().enumerate() {
        check_path(&recipient.mailbox, PathKind::Forward, utf8)
            .map_err(|why| invalid(format!("forward path {n} {:?} {why}", recipient.mailbox)))?;
        out.extend_from_slice(b"RCPT TO:<");
        out.extend_from_slice(recipient.mailbox.as_bytes());
        out.push(b'>');
        write_params(&recipient.parameters, utf8, out)
            .map_err(|why| invalid(format!("RCPT parameter of forward path {n} {why}")))?;
    }

    out.extend_from_slice(b"DATA\r\n");
    write_content(index, &message.content, envelope.is_eight_bit(), out)?;
    out.extend_from_slice(b".\r\n");
    Ok(())
}

/// What is wrong with a path; the text follows the path in the error
/// (`reverse path "x" contains ...`).
#[derive(Debug, thiserror::Error)]
enum PathFault {
    #[error(
        "contains {}; expected a mailbox such as local@domain without CR, LF, NUL, spaces or angle brackets",
        describe_octet(*.0)
    )]
    Forbidden(u8),
    #[error("is empty; the null path <> is only a reverse-path")]
    Empty,
    #[error("does not parse at octet {0}; expected a single mailbox")]
    Trailing(usize),
    #[error("does not parse at octet {at}: {reason} (RFC 5321 §4.1.2)")]
    Syntax { at: usize, reason: &'static str },
    #[error("is not ASCII; expected an ASCII path or the SMTPUTF8 MAIL parameter (RFC 6531)")]
    NotAscii,
}

/// What is wrong with an ESMTP parameter (RFC 5321 §4.1.2).
#[derive(Debug, thiserror::Error)]
enum ParamFault {
    #[error(
        "keyword {0:?} is not valid; expected letters, digits and '-', starting with a letter or digit (RFC 5321 §4.1.2)"
    )]
    Keyword(String),
    #[error(
        "{keyword}={value:?} has an invalid value; expected 1 or more printable characters other than space and '='{note}"
    )]
    Value {
        keyword: String,
        value: String,
        /// Why ASCII, when SMTPUTF8 is not declared.
        note: &'static str,
    },
}

/// Checks a non-null path; on failure says what is wrong with it.
fn check_path(path: &str, kind: PathKind, utf8: bool) -> Result<(), PathFault> {
    if let Some(b) = path
        .bytes()
        .find(|b| matches!(b, b'\r' | b'\n' | 0 | b' ' | b'<' | b'>'))
    {
        return Err(PathFault::Forbidden(b));
    }
    if path.is_empty() {
        return Err(PathFault::Empty);
    }
    let mut bracketed = Vec::with_capacity(path.len() + 2);
    bracketed.push(b'<');
    bracketed.extend_from_slice(path.as_bytes());
    bracketed.push(b'>');
    match syntax::parse_path(&bracketed, kind) {
        Ok(end) if end == bracketed.len() => {}
        Ok(end) => return Err(PathFault::Trailing(end - 1)),
        Err(e) => {
            return Err(PathFault::Syntax {
                at: e.at.saturating_sub(1),
                reason: e.reason,
            })
        }
    }
    if !utf8 && !path.is_ascii() {
        return Err(PathFault::NotAscii);
    }
    Ok(())
}

fn write_params(params: &[SmtpParam], utf8: bool, out: &mut Vec<u8>) -> Result<(), ParamFault> {
    for param in params {
        if !syntax::is_esmtp_keyword(param.keyword.as_bytes()) {
            return Err(ParamFault::Keyword(param.keyword.clone()));
        }
        out.push(b' ');
        out.extend_from_slice(param.keyword.as_bytes());
        if let Some(value) = &param.value {
            if !syntax::is_esmtp_value(value.as_bytes(), utf8) {
                return Err(ParamFault::Value {
                    keyword: param.keyword.clone(),
                    value: value.clone(),
                    note: if utf8 {
                        ""
                    } else {
                        " (ASCII only without SMTPUTF8)"
                    },
                });
            }
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes `content` with CRLF line ends, a final CRLF and dot-stuffing.
///
/// One `memchr2` per line; each line is copied with one `extend_from_slice`.
fn write_content(
    index: usize,
    content: &[u8],
    eight_bit: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if let Some(at) = memchr(0, content) {
        return Err(EncodeError {
            kind: EncodeErrorKind::NulByte,
            message_index: index,
            detail: format!(
                "content octet {at} is NUL; NUL cannot be carried in DATA (RFC 5321 §4.1.1.4)"
            ),
        });
    }
    if content.is_empty() {
        out.extend_from_slice(b"\r\n");
        return Ok(());
    }
    let mut start = 0;
    let mut line_number = 1usize;
    while start < content.len() {
        let (end, next) = match memchr2(b'\r', b'\n', &content[start..]) {
            Some(i) => {
                let at = start + i;
                if content[at] == b'\r' && content.get(at + 1) == Some(&b'\n') {
                    (at, at + 2)
                } else {
                    (at, at + 1)
                }
            }
            None => (content.len(), content.len()),
        };
        let line = &content[start..end];
        let stuffed = line.first() == Some(&b'.');
        // The stuffing dot does not count (RFC 5321 §4.5.3.1.6: "not
        // counting the leading dot duplicated for transparency").
        if line.len() > MAX_LINE && !eight_bit {
            return Err(EncodeError {
                kind: EncodeErrorKind::LineTooLong,
                message_index: index,
                detail: format!(
                    "content line {line_number} (at content octet {start}) is {} octets; expected at most {MAX_LINE} \
                     (RFC 5321 §4.5.3.1.6) or the MAIL parameter BODY=8BITMIME",
                    line.len()
                ),
            });
        }
        if stuffed {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        start = next;
        line_number += 1;
    }
    Ok(())
}

/// Names an octet for an error message.
pub(crate) fn describe_octet(b: u8) -> String {
    match b {
        b'\r' => "CR".to_owned(),
        b'\n' => "LF".to_owned(),
        0 => "NUL".to_owned(),
        b' ' => "a space".to_owned(),
        b'\t' => "a tab".to_owned(),
        0x21..=0x7e => format!("'{}'", b as char),
        _ => format!("octet 0x{b:02x}"),
    }
}
