//! The client's pure parts: reply parsing, dot-stuffing, the server's
//! extensions, and the checks and planning of a transaction. No I/O; the
//! driver in `mod.rs` feeds them bytes.

use super::*;

/// The service extensions announced in the `EHLO` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `SIZE` (RFC 1870): `Some(0)` when offered without a fixed limit.
    pub size: Option<u64>,
    /// `MT-PRIORITY` (RFC 6710).
    pub mt_priority: bool,
}

impl Extensions {
    /// The extensions in an `EHLO` reply (every line after the first is a
    /// keyword and its parameters; unknown keywords are ignored).
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "DSN" => ext.dsn = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "MT-PRIORITY" => ext.mt_priority = true,
                "SIZE" => {
                    ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                _ => {}
            }
        }
        ext
    }
}

/// Normalises line endings to CRLF and dot-stuffs message content as it is
/// fed, chunk by chunk (RFC 5321 4.5.2); [`DotStuffer::finish`] writes the
/// terminating `.CRLF`, after a CRLF only if the content did not end with
/// one. Bare LF and bare CR each become CRLF.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    /// A stuffer at the start of the content.
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// Appends the wire form of `input` (the next bytes of the content) to
    /// `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        if self.pending_cr {
            // The previous chunk ended with CR: a line break either way.
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(&first) = input.first() {
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            let Some(i) = memchr2(b'\r', b'\n', input) else {
                out.extend_from_slice(input);
                self.at_line_start = false;
                return;
            };
            out.extend_from_slice(&input[..i]);
            let after = &input[i + 1..];
            if input[i] == b'\r' && after.is_empty() {
                // Whether an LF follows is in the next chunk.
                self.pending_cr = true;
                self.at_line_start = false;
                return;
            }
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
            input = match (input[i], after.first()) {
                (b'\r', Some(b'\n')) => &after[1..],
                _ => after,
            };
        }
    }

    /// Appends the end of the content: a CRLF if the content did not end
    /// with a line break, then `.CRLF`.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The bytes sent after the `354` for `content`: CRLF-normalised,
/// dot-stuffed and terminated by `.CRLF` (with a CRLF before it only if the
/// content does not already end with a line break). Appends to `out`.
pub fn dot_stuff(content: &[u8], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::new();
    stuffer.feed(content, out);
    stuffer.finish(out);
}

/// What is wrong with a reply line (RFC 5321 §4.2); the line is shown, cut
/// at 80 octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ReplyLineError {
    #[error("not an SMTP reply line: {0:?}")]
    NotAReply(String),
    #[error("reply code changes within a multi-line reply: {0:?}")]
    CodeChanges(String),
    #[error("bad separator after reply code: {0:?}")]
    BadSeparator(String),
    #[error("reply longer than {MAX_REPLY_LINES} lines")]
    TooLong,
}

/// Assembles a [`Reply`] from the lines of a (possibly multi-line) reply.
#[derive(Debug, Default)]
pub(super) struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Takes one line without its CRLF; returns the reply after its last
    /// line, or a description of what is wrong with the line.
    pub(super) fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyLineError> {
        let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        let code = match line {
            [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ReplyLineError::NotAReply(shown())),
        };
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyLineError::CodeChanges(shown()));
        }
        self.code = Some(code);
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyLineError::BadSeparator(shown())),
        };
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyLineError::TooLong);
        }
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        if !last {
            return Ok(None);
        }
        let mut lines = std::mem::take(&mut self.lines);
        let enhanced = lines
            .first()
            .and_then(|first| enhanced_prefix(first, code))
            .map(str::to_string);
        if let Some(e) = &enhanced {
            for line in &mut lines {
                if let Some(rest) = line.strip_prefix(e.as_str()) {
                    if rest.is_empty() || rest.starts_with(' ') {
                        *line = rest.strip_prefix(' ').unwrap_or(rest).to_string();
                    }
                }
            }
        }
        self.code = None;
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
        }))
    }
}

/// The enhanced status code (RFC 3463 / RFC 2034) at the start of a reply
/// text, if its class matches the reply code's first digit.
pub(super) fn enhanced_prefix(text: &str, code: u16) -> Option<&str> {
    let end = text.find(' ').unwrap_or(text.len());
    let candidate = &text[..end];
    let mut parts = candidate.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let class_matches = class.len() == 1 && class.parse::<u16>().ok()? == code / 100;
    (parts.next().is_none() && class_matches && digits(subject, 3) && digits(detail, 3))
        .then_some(candidate)
}

pub(super) fn check_helo_name(name: &str) -> Result<(), RelayError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RelayError::InvalidConfig(format!(
            "helo_name {name:?} must be a non-empty host name or address literal without spaces"
        )));
    }
    Ok(())
}

/// A path fit for `MAIL FROM:<…>` / `RCPT TO:<…>`: no control characters
/// (CR/LF would inject commands) and no angle brackets.
pub(super) fn check_path(path: &str, what: &str) -> Result<(), RelayError> {
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || *c == '<' || *c == '>')
    {
        return Err(RelayError::InvalidEnvelope(format!(
            "{what} {path:?} contains {c:?}"
        )));
    }
    Ok(())
}

pub(super) fn param<'a>(params: &'a [Param], keyword: &str) -> Option<&'a Param> {
    params
        .iter()
        .find(|p| p.keyword.eq_ignore_ascii_case(keyword))
}

/// An ESMTP parameter value that can go on the wire unchanged: no spaces,
/// no control characters, ASCII unless `utf8` (SMTPUTF8 is in use).
pub(super) fn clean_value(value: &str, utf8: bool) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            if c.is_ascii() {
                c.is_ascii_graphic() && c != '='
            } else {
                utf8 && !c.is_control()
            }
        })
}

/// The offset where the header section of `content` ends (the start of the
/// first empty line, or the end).
pub(super) fn header_end(content: &[u8]) -> usize {
    let mut pos = 0;
    while pos < content.len() {
        let line_end = memchr(b'\n', &content[pos..]).map_or(content.len(), |i| pos + i + 1);
        let line = &content[pos..line_end];
        if line == b"\n" || line == b"\r\n" {
            return pos;
        }
        pos = line_end;
    }
    content.len()
}

/// The length of `content` with every line ending as CRLF (the `SIZE=`
/// of RFC 1870 counts CRLFs; dot-stuffing is not counted).
pub(super) fn crlf_len(content: &[u8]) -> usize {
    let mut bare = 0;
    let mut iter = memchr::memchr2_iter(b'\r', b'\n', content).peekable();
    while let Some(i) = iter.next() {
        if content[i] == b'\r' && content.get(i + 1) == Some(&b'\n') {
            // CRLF: skip its LF.
            iter.next();
        } else {
            bare += 1;
        }
    }
    content.len() + bare
}

/// Checks the message against the server's extensions and writes the
/// `MAIL` and `RCPT` commands (RFC 5321 4.1.1.2-3).
pub(super) fn plan_transaction(
    ext: &Extensions,
    envelope: &Envelope,
    content: &[u8],
) -> Result<Plan, RelayError> {
    if envelope.recipients.is_empty() {
        return Err(RelayError::InvalidEnvelope("no recipients".into()));
    }
    check_path(&envelope.reverse_path, "reverse path")?;
    for r in &envelope.recipients {
        if r.mailbox.is_empty() {
            return Err(RelayError::InvalidEnvelope("empty recipient".into()));
        }
        check_path(&r.mailbox, "recipient")?;
    }

    let eight_bit = !content.is_ascii();
    if eight_bit && !ext.eight_bit_mime {
        return Err(RelayError::Incompatible {
            status: "5.6.3",
            reason: "the message has 8-bit content and the next MTA does not offer 8BITMIME \
                     (RFC 6152); it was not sent rather than corrupted"
                .into(),
        });
    }
    let utf8_address = !envelope.reverse_path.is_ascii()
        || envelope.recipients.iter().any(|r| !r.mailbox.is_ascii());
    let utf8_headers = param(&envelope.mail_params, "SMTPUTF8").is_some()
        && !content[..header_end(content)].is_ascii();
    let smtputf8 = utf8_address || utf8_headers;
    if smtputf8 && !ext.smtputf8 {
        return Err(if utf8_address {
            RelayError::Incompatible {
                status: "5.6.7",
                reason: "the envelope has a non-ASCII address and the next MTA does not offer \
                         SMTPUTF8 (RFC 6531)"
                    .into(),
            }
        } else {
            RelayError::Incompatible {
                status: "5.6.9",
                reason: "the message has UTF-8 header fields and the next MTA does not offer \
                         SMTPUTF8 (RFC 6531)"
                    .into(),
            }
        });
    }
    let size = crlf_len(content);
    if let Some(limit) = ext.size {
        if limit > 0 && size as u64 > limit {
            return Err(RelayError::Incompatible {
                status: "5.3.4",
                reason: format!(
                    "the message ({size} octets) is larger than the next MTA's limit of \
                     {limit} octets"
                ),
            });
        }
    }

    let mut mail = format!("MAIL FROM:<{}>", envelope.reverse_path);
    if eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    if ext.size.is_some() {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if ext.dsn {
        if let Some(ret) = param(&envelope.mail_params, "RET").and_then(|p| p.value.as_deref()) {
            if ret.eq_ignore_ascii_case("FULL") || ret.eq_ignore_ascii_case("HDRS") {
                mail.push_str(&format!(" RET={}", ret.to_ascii_uppercase()));
            }
        }
        if let Some(envid) = param(&envelope.mail_params, "ENVID").and_then(|p| p.value.as_deref())
        {
            if clean_value(envid, false) && envid.len() <= 100 {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
    }
    // RFC 6710 §4.1: passed on only to a server that offers it.
    if ext.mt_priority {
        if let Some(p) = param(&envelope.mail_params, "MT-PRIORITY")
            .and_then(|p| p.value.as_deref())
            .and_then(crate::server::parse_mt_priority)
        {
            mail.push_str(&format!(" MT-PRIORITY={p}"));
        }
    }
    mail.push_str("\r\n");

    let rcpts = envelope
        .recipients
        .iter()
        .map(|r| {
            let mut line = format!("RCPT TO:<{}>", r.mailbox);
            if ext.dsn {
                if let Some(notify) = param(&r.params, "NOTIFY").and_then(|p| p.value.as_deref()) {
                    if valid_notify(notify) {
                        line.push_str(&format!(" NOTIFY={}", notify.to_ascii_uppercase()));
                    }
                }
                if let Some(orcpt) = param(&r.params, "ORCPT").and_then(|p| p.value.as_deref()) {
                    if clean_value(orcpt, smtputf8) && orcpt.contains(';') {
                        line.push_str(&format!(" ORCPT={orcpt}"));
                    }
                }
            }
            line.push_str("\r\n");
            line.into_bytes()
        })
        .collect();
    Ok(Plan {
        mail: mail.into_bytes(),
        rcpts,
    })
}

/// `NEVER`, or a comma-separated list of `SUCCESS`, `FAILURE`, `DELAY`
/// (RFC 3461 4.1).
pub(super) fn valid_notify(value: &str) -> bool {
    if value.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    !value.is_empty()
        && value.split(',').all(|v| {
            ["SUCCESS", "FAILURE", "DELAY"]
                .iter()
                .any(|k| v.eq_ignore_ascii_case(k))
        })
}
