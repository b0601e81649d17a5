//! SMTP for the deepmail gateway (RFC 5321), in three parts:
//!
//! * [`server`]: a sans-IO server session. It is fed the bytes a client
//!   sent and returns the replies to write and the events the application
//!   must decide on (sender, recipient, message). No sockets, no clocks.
//! * [`serve`]: the tokio driver around it, with optional STARTTLS
//!   (RFC 3207), timeouts and a [`serve::Handler`] trait through which the
//!   gateway answers each recipient and says `250` only after spooling.
//! * [`client`]: the relay client that hands a message with its original
//!   envelope to the local MTA and reports an answer per recipient.
//! * [`dsn`]: delivery status notifications (RFC 3464, `multipart/report`,
//!   RFC 6522), built for rejected recipients and parsed back in tests.
//!
//! The types in this file ([`Reply`], [`Envelope`], [`Recipient`],
//! [`Param`]) are shared by all four.

#![warn(missing_docs)]

pub mod client;
pub mod dsn;
pub mod serve;
pub mod server;

use std::fmt;

/// `content` with every line ending in CRLF, as SMTP carries it (LF or
/// CRLF in; a last line without an end gets one): what a pipe or a file
/// with Unix line ends becomes before it is queued or sent.
pub fn crlf_lines(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 40 + 2);
    for (i, line) in content.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One ESMTP parameter (`BODY=8BITMIME`, `SMTPUTF8`, `SIZE=1234`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    /// The keyword, as the client spelled it (compare case-insensitively).
    pub keyword: String,
    /// The value; `None` for a keyword alone.
    pub value: Option<String>,
}

impl Param {
    /// A parameter.
    pub fn new(keyword: impl Into<String>, value: Option<&str>) -> Param {
        Param {
            keyword: keyword.into(),
            value: value.map(str::to_string),
        }
    }
}

/// One recipient of a transaction (`RCPT TO:<mailbox> params`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// The mailbox without angle brackets, e.g. `ann@moon.example`.
    pub mailbox: String,
    /// RCPT parameters (e.g. DSN's `NOTIFY=`, `ORCPT=`).
    pub params: Vec<Param>,
}

/// The envelope of one SMTP transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// `MAIL FROM` path without brackets; empty for the null reverse path
    /// `<>` (bounces: never answered with a DSN).
    pub reverse_path: String,
    /// MAIL parameters (`BODY=`, `SMTPUTF8`, `SIZE=`, `RET=`, `ENVID=`).
    pub mail_params: Vec<Param>,
    /// Accepted recipients, in RCPT order.
    pub recipients: Vec<Recipient>,
}

/// An SMTP reply: a three-digit code, an optional enhanced status code
/// (RFC 3463, e.g. `5.1.1`) and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// 200..=599.
    pub code: u16,
    /// `class.subject.detail`, e.g. `2.0.0`; written after the code on
    /// every line when present.
    pub enhanced: Option<String>,
    /// The text lines (at least one; may be empty strings).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<&str>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.map(str::to_string),
            lines: vec![text.into()],
        }
    }

    /// `2xx`.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// `4xx`: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// `5xx`: do not retry.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply on the wire: `250-first\r\n250 last\r\n`.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let lines: &[String] = if self.lines.is_empty() {
            &[String::new()][..]
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if let Some(e) = &self.enhanced {
                out.extend_from_slice(e.as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            // A reply line never carries CR or LF of its own.
            out.extend(line.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 no such user` (lines joined with ` / `), for logs and DSNs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.lines.join(" / ");
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_lines_ends_every_line_in_crlf() {
        assert_eq!(crlf_lines(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf_lines(b"a\r\n"), b"a\r\n");
        assert_eq!(crlf_lines(b"\n\n"), b"\r\n\r\n");
        assert_eq!(crlf_lines(b""), b"\r\n");
    }

    #[test]
    fn reply_wire_single_and_multi_line() {
        let r = Reply::new(250, Some("2.0.0"), "queued as 42");
        assert_eq!(r.to_wire(), b"250 2.0.0 queued as 42\r\n");
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec![
                "moon.example".into(),
                "PIPELINING".into(),
                "8BITMIME".into(),
            ],
        };
        assert_eq!(
            r.to_wire(),
            b"250-moon.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
        assert_eq!(r.to_string(), "250 moon.example / PIPELINING / 8BITMIME");
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let r = Reply::new(550, None, "bad\r\n250 ok");
        assert_eq!(r.to_wire(), b"550 bad250 ok\r\n");
    }
}
