//! Delivery status notifications: RFC 3464 reports inside a
//! `multipart/report; report-type=delivery-status` message (RFC 6522),
//! sent to the original reverse path when a recipient is refused by the far
//! MTA or a message expires in the queue, and parsed back to check what
//! came back (ours or another MTA's, such as Exim's).
//!
//! * [`build_dsn`] writes the whole RFC 5322 message (CRLF line endings):
//!   a human-readable `text/plain` part, the `message/delivery-status`
//!   part (per-message fields, RFC 3464 2.2; per-recipient fields, 2.3) and
//!   the original as `message/rfc822`, or only its header as
//!   `text/rfc822-headers` (RFC 6522 3.2; `RET=HDRS` or over
//!   [`MAX_RETURNED_CONTENT`]). When addresses or diagnostics are not
//!   ASCII it uses the RFC 6533 types `message/global-delivery-status`,
//!   `message/global` and `message/global-headers`. It is marked
//!   `Auto-Submitted: auto-replied` (RFC 3834).
//! * [`should_send_dsn`] applies RFC 3461 4.1 (`NOTIFY=`) and never answers
//!   the null reverse path, which is what keeps bounces from looping.
//! * [`parse_dsn`] finds the delivery-status part of any DSN and returns
//!   its fields; it never panics, whatever the input.
//!
//! No I/O and no clock: dates are inputs.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::{memchr, memchr2, memmem};

use crate::{Envelope, Recipient, Reply};

/// Content above this size is returned as its header only.
pub const MAX_RETURNED_CONTENT: usize = 256 * 1024;

/// How deep [`parse_dsn`] descends into nested multiparts.
const MAX_MIME_DEPTH: usize = 8;

/// The `Action` field of a per-recipient report (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Could not be delivered; no more attempts.
    Failed,
    /// Not delivered yet; attempts continue.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed to a system that sends no DSNs.
    Relayed,
    /// Delivered and forwarded to several addresses (a list).
    Expanded,
}

impl Action {
    /// The field value: `failed`, `delayed`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// Parses a field value (case-insensitive; a trailing comment such as
    /// `failed (bad address)` is ignored).
    pub fn parse(value: &str) -> Option<Action> {
        let word = value.split(['(', ' ', '\t']).next()?.trim();
        [
            Action::Failed,
            Action::Delayed,
            Action::Delivered,
            Action::Relayed,
            Action::Expanded,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What of the original message the DSN carries (RFC 3461 4.3, `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnContent {
    /// The whole message (`RET=FULL`, and the default), unless it is
    /// larger than [`MAX_RETURNED_CONTENT`].
    #[default]
    Full,
    /// Only the header section (`RET=HDRS`).
    HeadersOnly,
}

impl ReturnContent {
    /// From the envelope's `RET=` parameter: `HDRS` gives
    /// [`ReturnContent::HeadersOnly`], anything else [`ReturnContent::Full`].
    pub fn from_envelope(envelope: &Envelope) -> ReturnContent {
        let hdrs = envelope.mail_params.iter().any(|p| {
            p.keyword.eq_ignore_ascii_case("RET")
                && p.value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("HDRS"))
        });
        if hdrs {
            ReturnContent::HeadersOnly
        } else {
            ReturnContent::Full
        }
    }
}

/// The report on one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The `ORCPT` parameter value as received (`rfc822;bob+2Bx@moon.example`,
    /// xtext); written decoded as `Original-Recipient: rfc822; bob+x@…`.
    /// Without a `type;` prefix the value is taken as an `rfc822` address.
    pub original_recipient: Option<String>,
    /// The recipient address (`Final-Recipient`).
    pub final_recipient: String,
    /// What happened.
    pub action: Action,
    /// The RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// The host that gave the diagnostic (`Remote-MTA: dns; host`).
    pub remote_mta: Option<String>,
    /// `type; text`, e.g. `smtp; 550 5.1.1 <bob@moon.example>: no such
    /// user`; `smtp; ` is prepended when the value has no type.
    pub diagnostic_code: Option<String>,
    /// When the last delivery attempt was made.
    pub last_attempt: Option<SystemTime>,
}

impl DsnRecipient {
    /// A report for an envelope recipient: its mailbox, and its `ORCPT`
    /// parameter when it had one.
    pub fn new(recipient: &Recipient, action: Action, status: impl Into<String>) -> DsnRecipient {
        let original_recipient = recipient
            .params
            .iter()
            .find(|p| p.keyword.eq_ignore_ascii_case("ORCPT"))
            .and_then(|p| p.value.clone());
        DsnRecipient {
            original_recipient,
            final_recipient: recipient.mailbox.clone(),
            action,
            status: status.into(),
            remote_mta: None,
            diagnostic_code: None,
            last_attempt: None,
        }
    }

    /// Sets the status and the diagnostic from an SMTP reply: its enhanced
    /// code, or `X.0.0` from its class when it has none.
    pub fn with_reply(mut self, reply: &Reply) -> DsnRecipient {
        self.status = status_of(reply);
        self.diagnostic_code = Some(format!("smtp; {reply}"));
        self
    }
}

/// The RFC 3463 status of a reply: its enhanced code, or `2.0.0` / `4.0.0`
/// / `5.0.0` from its class.
pub fn status_of(reply: &Reply) -> String {
    match &reply.enhanced {
        Some(e) => e.clone(),
        None => format!("{}.0.0", (reply.code / 100).clamp(2, 5)),
    }
}

/// Everything a DSN says besides the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRequest {
    /// The host name of the MTA writing the report (`Reporting-MTA: dns;
    /// host`).
    pub reporting_mta: String,
    /// The `From` address, e.g. `MAILER-DAEMON@gw.moon.example`.
    pub from: String,
    /// The `To` address: the original reverse path.
    pub to: String,
    /// The original `ENVID` parameter (xtext; written decoded).
    pub original_envelope_id: Option<String>,
    /// When the original message arrived.
    pub arrival_date: Option<SystemTime>,
    /// The `Date` of the DSN.
    pub date: SystemTime,
    /// The DSN's `Message-ID`, with or without angle brackets.
    pub message_id: String,
    /// One report per recipient.
    pub recipients: Vec<DsnRecipient>,
    /// What to return of the original.
    pub return_content: ReturnContent,
}

/// The envelope a DSN is sent with: the null reverse path (so that it is
/// never bounced itself) and the original reverse path as the recipient
/// (RFC 3461 6.2).
pub fn dsn_envelope(req: &DsnRequest) -> Envelope {
    Envelope {
        reverse_path: String::new(),
        mail_params: Vec::new(),
        recipients: vec![Recipient {
            mailbox: req.to.clone(),
            params: Vec::new(),
        }],
    }
}

/// Whether a DSN with `action` is to be sent for `recipient` (RFC 3461
/// 4.1): never to the null reverse path; never with `NOTIFY=NEVER`;
/// `failed` with `FAILURE`, `delayed` with `DELAY`, `delivered` /
/// `relayed` / `expanded` with `SUCCESS`. Without `NOTIFY`, failures and
/// delays are reported, successes not.
pub fn should_send_dsn(envelope: &Envelope, recipient: &Recipient, action: Action) -> bool {
    let reverse = envelope.reverse_path.trim();
    if reverse.is_empty() || reverse == "<>" {
        return false;
    }
    let notify = recipient
        .params
        .iter()
        .find(|p| p.keyword.eq_ignore_ascii_case("NOTIFY"))
        .and_then(|p| p.value.as_deref());
    let Some(notify) = notify else {
        return matches!(action, Action::Failed | Action::Delayed);
    };
    let wanted = match action {
        Action::Failed => "FAILURE",
        Action::Delayed => "DELAY",
        Action::Delivered | Action::Relayed | Action::Expanded => "SUCCESS",
    };
    let mut keywords = notify.split(',').map(str::trim);
    !notify.trim().eq_ignore_ascii_case("NEVER") && keywords.any(|k| k.eq_ignore_ascii_case(wanted))
}

/// An RFC 5322 `date-time` in UTC: `Tue, 1 Jul 2003 10:52:37 +0000`.
pub fn format_date(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(e) => {
            let back = e.duration();
            let whole = i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 2);
            -whole - i64::from(back.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day} {month_name} {year:04} {:02}:{:02}:{:02} +0000",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Proleptic Gregorian (year, month 1..=12, day 1..=31) of a day count
/// from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A header or field value on one line: control characters (CR, LF, …)
/// become spaces, so no value can start a field of its own.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Appends `Name: value` and CRLF, folding before spaces so that lines
/// stay near 78 characters (RFC 5322 2.2.3); unfolding gives the value
/// back unchanged.
fn push_field(out: &mut String, name: &str, value: &str) {
    let value = one_line(value);
    let mut line_len = name.len() + 2;
    out.push_str(name);
    out.push_str(": ");
    let mut first = true;
    for word in value.split(' ').flat_map(|w| cut_word(w, MAX_WORD)) {
        if !first {
            // Never fold before an empty word: a continuation line of
            // white space only would end the field group.
            if !word.is_empty() && line_len + 1 + word.len() > 78 && line_len > name.len() + 2 {
                out.push_str("\r\n");
                line_len = 0;
            }
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
        first = false;
    }
    out.push_str("\r\n");
}

/// The longest run without a space kept on one line; longer ones are cut
/// (a line must stay under SMTP's 998 octets, RFC 5321 4.5.3.1.6).
const MAX_WORD: usize = 900;

/// `word` in pieces of at most `max` octets, cut at character boundaries.
fn cut_word(word: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

/// `text` in lines of at most `width` octets, broken at white space (a
/// longer word is cut); continuation lines are indented by four spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace().flat_map(|w| cut_word(w, width - 4)) {
        if !line.trim_start().is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push_str("\r\n");
            line = "    ".to_string();
        } else if !line.trim_start().is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// Decodes xtext (`+2B`, RFC 3461 4) and unitext (`\x{E9}`, RFC 6533 3)
/// escapes; an invalid escape is kept as it is.
fn decode_xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(['+', '\\']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(hex) = rest.strip_prefix('+').and_then(|r| r.get(..2)) {
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                if b.is_ascii() && hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    out.push(char::from(b));
                    rest = &rest[3..];
                    continue;
                }
            }
        }
        if let Some(body) = rest.strip_prefix("\\x{") {
            if let Some(end) = body.find('}') {
                let hex = &body[..end];
                if (1..=6).contains(&hex.len()) && hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    if let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        out.push(c);
                        rest = &body[end + 1..];
                        continue;
                    }
                }
            }
        }
        // Not an escape: keep the character.
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out
}

/// A decoded xtext value, or the raw one if decoding produced control
/// characters.
fn decoded_or_raw(value: &str) -> String {
    let decoded = decode_xtext(value);
    if decoded.chars().any(char::is_control) {
        value.to_string()
    } else {
        decoded
    }
}

/// `rfc822; addr` for an ASCII address, `utf-8; addr` otherwise (RFC 6533 3).
fn typed_address(addr: &str) -> String {
    if addr.is_ascii() {
        format!("rfc822; {addr}")
    } else {
        format!("utf-8; {addr}")
    }
}

/// `Original-Recipient` from an `ORCPT` value.
fn original_recipient_field(orcpt: &str) -> String {
    match orcpt.split_once(';') {
        Some((kind, addr)) if !kind.trim().is_empty() => {
            format!("{}; {}", kind.trim(), decoded_or_raw(addr.trim()))
        }
        _ => typed_address(&decoded_or_raw(orcpt.trim())),
    }
}

/// Whether a field value starts with an RFC 3464 `type;` (an atom).
fn has_type(value: &str) -> bool {
    value.split_once(';').is_some_and(|(kind, _)| {
        !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Text of the diagnostic for the human-readable part.
fn reason_text(r: &DsnRecipient) -> String {
    match &r.diagnostic_code {
        Some(d) if has_type(d) => d
            .split_once(';')
            .map_or(d.as_str(), |(_, t)| t)
            .trim()
            .to_string(),
        Some(d) => d.trim().to_string(),
        None => format!("status {}", r.status),
    }
}

/// The `message/delivery-status` body (RFC 3464 2.1).
fn status_fields(req: &DsnRequest) -> String {
    let mut out = String::new();
    push_field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", req.reporting_mta),
    );
    if let Some(envid) = &req.original_envelope_id {
        push_field(&mut out, "Original-Envelope-Id", &decoded_or_raw(envid));
    }
    if let Some(arrival) = req.arrival_date {
        push_field(&mut out, "Arrival-Date", &format_date(arrival));
    }
    for r in &req.recipients {
        out.push_str("\r\n");
        if let Some(orcpt) = &r.original_recipient {
            push_field(
                &mut out,
                "Original-Recipient",
                &original_recipient_field(orcpt),
            );
        }
        push_field(
            &mut out,
            "Final-Recipient",
            &typed_address(&r.final_recipient),
        );
        push_field(&mut out, "Action", r.action.as_str());
        push_field(&mut out, "Status", &r.status);
        if let Some(mta) = &r.remote_mta {
            push_field(&mut out, "Remote-MTA", &format!("dns; {mta}"));
        }
        if let Some(diag) = &r.diagnostic_code {
            if has_type(diag) {
                push_field(&mut out, "Diagnostic-Code", diag);
            } else {
                push_field(&mut out, "Diagnostic-Code", &format!("smtp; {diag}"));
            }
        }
        if let Some(t) = r.last_attempt {
            push_field(&mut out, "Last-Attempt-Date", &format_date(t));
        }
    }
    out
}

/// The human-readable first part.
fn explanation(req: &DsnRequest, headers_only_by_size: bool) -> String {
    let mut out = format!(
        "This is the mail system at host {}.\r\n",
        one_line(&req.reporting_mta)
    );
    let sections = [
        (
            Action::Failed,
            "Your message could not be delivered to the recipients below. This is\r\n\
             a permanent error; the system will not try again. The reason is given\r\n\
             after each address.",
        ),
        (
            Action::Delayed,
            "Your message has not been delivered yet to the recipients below. The\r\n\
             system will keep trying; you do not need to send it again. The reason\r\n\
             of the last attempt is given after each address.",
        ),
        (
            Action::Delivered,
            "Your message was delivered to the recipients below.",
        ),
        (
            Action::Relayed,
            "Your message was handed on to the recipients below, to a system that\r\n\
             does not report delivery.",
        ),
        (
            Action::Expanded,
            "Your message was delivered and forwarded to a list for the recipients\r\n\
             below.",
        ),
    ];
    for (action, text) in sections {
        let mut listed = req
            .recipients
            .iter()
            .filter(|r| r.action == action)
            .peekable();
        if listed.peek().is_none() {
            continue;
        }
        out.push_str("\r\n");
        out.push_str(text);
        out.push_str("\r\n\r\n");
        for r in listed {
            out.push_str(&wrap(
                &format!("<{}>: {}", r.final_recipient, reason_text(r)),
                76,
            ));
        }
    }
    if headers_only_by_size {
        out.push_str(&format!(
            "\r\nThe message was larger than {} KiB; only its header is attached.\r\n",
            MAX_RETURNED_CONTENT / 1024
        ));
    }
    out
}

/// Appends `src` with every line ending (CRLF, bare LF, bare CR) as CRLF.
fn push_crlf(src: &[u8], out: &mut Vec<u8>) {
    let mut rest = src;
    while let Some(i) = memchr2(b'\r', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"\r\n");
        rest = match (rest[i], rest.get(i + 1)) {
            (b'\r', Some(b'\n')) => &rest[i + 2..],
            _ => &rest[i + 1..],
        };
    }
    out.extend_from_slice(rest);
}

/// Where the header section of a message ends: the start of the first
/// empty line (or the end of the input).
fn header_end(message: &[u8]) -> usize {
    let mut pos = 0;
    while pos < message.len() {
        let end = memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if line == b"\n" || line == b"\r\n" {
            return pos;
        }
        pos = end;
    }
    message.len()
}

/// FNV-1a, to derive a boundary from the message id.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A boundary that occurs in none of `parts` (RFC 2046 5.1.1).
fn choose_boundary(seed: &str, parts: &[&[u8]]) -> String {
    let mut n = fnv1a(seed.as_bytes());
    loop {
        let boundary = format!("=_deepmail-dsn-{n:016x}");
        if parts
            .iter()
            .all(|p| memmem::find(p, boundary.as_bytes()).is_none())
        {
            return boundary;
        }
        n = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
}

/// The DSN for `req`, returning (part of) `original`: a complete RFC 5322
/// message with CRLF line endings, ready to be sent with
/// [`dsn_envelope`].
pub fn build_dsn(req: &DsnRequest, original: &[u8]) -> Vec<u8> {
    let too_big = original.len() > MAX_RETURNED_CONTENT;
    let full = req.return_content == ReturnContent::Full && !too_big;
    let mut returned = Vec::with_capacity(if full { original.len() + 1024 } else { 4096 });
    let header_len = header_end(original);
    if full {
        push_crlf(original, &mut returned);
    } else {
        push_crlf(&original[..header_len], &mut returned);
    }
    let utf8_headers = !original[..header_len].is_ascii();
    let (returned_type, returned_description) = match (full, utf8_headers) {
        (true, false) => ("message/rfc822", "Undelivered Message"),
        (true, true) => ("message/global", "Undelivered Message"),
        (false, false) => ("text/rfc822-headers", "Undelivered Message Headers"),
        (false, true) => ("message/global-headers", "Undelivered Message Headers"),
    };
    let returned_description = if req.recipients.iter().any(|r| r.action == Action::Failed) {
        returned_description
    } else if full {
        "Message"
    } else {
        "Message Headers"
    };

    let text = explanation(req, too_big && req.return_content == ReturnContent::Full);
    let status = status_fields(req);
    let global = !status.is_ascii();
    let (report_type, status_type) = if global {
        ("global-delivery-status", "message/global-delivery-status")
    } else {
        ("delivery-status", "message/delivery-status")
    };
    let boundary = choose_boundary(
        &req.message_id,
        &[text.as_bytes(), status.as_bytes(), &returned],
    );

    let subject = if req.recipients.iter().any(|r| r.action == Action::Failed) {
        "Undelivered Mail Returned to Sender"
    } else if req.recipients.iter().any(|r| r.action == Action::Delayed) {
        "Delivery Status Notification (Delay)"
    } else {
        "Delivery Status Notification (Success)"
    };
    let message_id = one_line(
        req.message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>'),
    );

    let mut head = String::new();
    head.push_str(&format!(
        "From: Mail Delivery System <{}>\r\n",
        one_line(&req.from)
    ));
    head.push_str(&format!("To: <{}>\r\n", one_line(&req.to)));
    head.push_str(&format!("Subject: {subject}\r\n"));
    head.push_str(&format!("Date: {}\r\n", format_date(req.date)));
    head.push_str(&format!("Message-ID: <{message_id}>\r\n"));
    head.push_str("Auto-Submitted: auto-replied\r\n");
    head.push_str("MIME-Version: 1.0\r\n");
    head.push_str(&format!(
        "Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    if !(text.is_ascii() && status.is_ascii() && returned.is_ascii()) {
        // RFC 2045 6.4: a multipart with an 8bit part is itself 8bit.
        head.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    head.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");

    let cte = |body: &[u8]| {
        if body.is_ascii() {
            ""
        } else {
            "Content-Transfer-Encoding: 8bit\r\n"
        }
    };
    let charset = if text.is_ascii() { "us-ascii" } else { "utf-8" };

    let mut out = Vec::with_capacity(head.len() + text.len() + status.len() + returned.len() + 512);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\n\
             Content-Description: Notification\r\n{}\r\n",
            cte(text.as_bytes())
        )
        .as_bytes(),
    );
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\
             Content-Description: Delivery report\r\n{}\r\n",
            cte(status.as_bytes())
        )
        .as_bytes(),
    );
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: {returned_type}\r\n\
             Content-Description: {returned_description}\r\n{}\r\n",
            cte(&returned)
        )
        .as_bytes(),
    );
    out.extend_from_slice(&returned);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Why [`parse_dsn`] found no usable report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    /// No `message/delivery-status` (or `message/global-delivery-status`)
    /// part anywhere in the message.
    #[error("not a delivery status notification: no message/delivery-status part")]
    NoDeliveryStatus,
    /// A `multipart/*` entity has no `boundary` parameter.
    #[error("a multipart entity has no boundary parameter")]
    MissingBoundary,
    /// Multiparts nested deeper than the parser follows.
    #[error("MIME parts nested deeper than {0} levels")]
    TooDeep(usize),
    /// The delivery-status part's base64 is broken.
    #[error("the delivery-status part has invalid base64")]
    BadEncoding,
    /// The delivery-status part has no per-recipient fields.
    #[error("the delivery-status part reports on no recipient")]
    NoRecipients,
    /// A per-recipient group lacks a required field.
    #[error("recipient {index} of the delivery-status part has no {field} field")]
    MissingField {
        /// 0-based recipient group.
        index: usize,
        /// `Final-Recipient`, `Action` or `Status`.
        field: &'static str,
    },
    /// An `Action` value that RFC 3464 2.3.3 does not define.
    #[error("recipient {index}: unknown Action {value:?}")]
    InvalidAction {
        /// 0-based recipient group.
        index: usize,
        /// The value found.
        value: String,
    },
    /// A `Status` that is not `class.subject.detail`.
    #[error("recipient {index}: Status {value:?} is not class.subject.detail (e.g. 5.1.1)")]
    InvalidStatus {
        /// 0-based recipient group.
        index: usize,
        /// The value found.
        value: String,
    },
}

/// The fields of a delivery-status part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDsn {
    /// The `Reporting-MTA` name, without its `dns;` type.
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id`.
    pub original_envelope_id: Option<String>,
    /// `Arrival-Date`, as written.
    pub arrival_date: Option<String>,
    /// Whether it was a `message/global-delivery-status` part (RFC 6533).
    pub global: bool,
    /// One per recipient group, in order.
    pub recipients: Vec<ParsedRecipient>,
}

/// The fields of one per-recipient group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRecipient {
    /// `Original-Recipient` address, without its type.
    pub original_recipient: Option<String>,
    /// `Final-Recipient` address, without its type or angle brackets.
    pub final_recipient: String,
    /// `Action`.
    pub action: Action,
    /// `Status`, e.g. `5.1.1`.
    pub status: String,
    /// `Remote-MTA` name, without its type.
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code` as written, type included (`smtp; 550 …`).
    pub diagnostic_code: Option<String>,
    /// `Last-Attempt-Date`, as written.
    pub last_attempt_date: Option<String>,
}

/// A MIME entity's header fields (names lower-cased, values unfolded and
/// trimmed) and body.
struct Entity<'a> {
    fields: Vec<(String, String)>,
    body: &'a [u8],
}

impl Entity<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits an entity into header fields and body.
fn split_entity(bytes: &[u8]) -> Entity<'_> {
    let end = header_end(bytes);
    let body_start = if end < bytes.len() {
        // Skip the empty line itself.
        end + if bytes[end] == b'\r' { 2 } else { 1 }
    } else {
        end
    };
    Entity {
        fields: parse_fields(&bytes[..end]),
        body: bytes.get(body_start..).unwrap_or_default(),
    }
}

/// Field lines (with folding) to `(lower-case name, unfolded value)`;
/// lines that are not fields are skipped.
fn parse_fields(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                fields.push((name.to_ascii_lowercase(), value.to_string()));
            }
        }
    }
    for (_, value) in &mut fields {
        *value = value.trim().to_string();
    }
    fields
}

/// A `Content-Type` value: lower-cased `type/subtype` and its parameters
/// (names lower-cased, quotes removed).
fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            pieces.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    pieces.push(current);
    let mut pieces = pieces.into_iter();
    let mime_type = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    (mime_type, params)
}

/// The body parts of a multipart body (RFC 2046 5.1.1). A missing close
/// delimiter (truncated input) ends the last part at the end of the input.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i + 1);
        let line = &body[pos..line_end];
        if let Some(after) = line.strip_prefix(delimiter.as_bytes()) {
            let closing = after.starts_with(b"--");
            let rest = if closing { &after[2..] } else { after };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(start) = part_start {
                    // The CRLF before the delimiter belongs to it.
                    let mut end = pos.max(start);
                    if end > start && body[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && body[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(&body[start..end]);
                }
                if closing {
                    return parts;
                }
                part_start = Some(line_end);
            }
        }
        pos = line_end;
    }
    if let Some(start) = part_start {
        parts.push(&body[start.min(body.len())..]);
    }
    parts
}

/// Decodes a body according to its `Content-Transfer-Encoding`.
fn decode_body(body: &[u8], encoding: Option<&str>) -> Result<Vec<u8>, DsnError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => decode_base64(body).ok_or(DsnError::BadEncoding),
        Some("quoted-printable") => Ok(decode_quoted_printable(body)),
        _ => Ok(body.to_vec()),
    }
}

fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'=' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let hex = |b: u8| char::from(b).to_digit(16);
        match (input.get(i + 1), input.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(value as u8);
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// Finds the first delivery-status part, depth first: its decoded body
/// and whether it is the RFC 6533 global kind.
fn find_status_part(bytes: &[u8], depth: usize) -> Result<Option<(Vec<u8>, bool)>, DsnError> {
    if depth > MAX_MIME_DEPTH {
        return Err(DsnError::TooDeep(MAX_MIME_DEPTH));
    }
    let entity = split_entity(bytes);
    let (mime_type, params) =
        parse_content_type(entity.field("content-type").unwrap_or("text/plain"));
    match mime_type.as_str() {
        "message/delivery-status" | "message/global-delivery-status" => {
            let body = decode_body(entity.body, entity.field("content-transfer-encoding"))?;
            Ok(Some((body, mime_type == "message/global-delivery-status")))
        }
        t if t.starts_with("multipart/") => {
            let boundary = params
                .iter()
                .find(|(n, _)| n == "boundary")
                .map(|(_, v)| v.as_str())
                .filter(|b| !b.is_empty())
                .ok_or(DsnError::MissingBoundary)?;
            for part in split_multipart(entity.body, boundary) {
                if let Some(found) = find_status_part(part, depth + 1)? {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// The value after `type;` (or the whole value), trimmed, without angle
/// brackets.
fn untyped(value: &str) -> String {
    let v = value.split_once(';').map_or(value, |(_, v)| v).trim();
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(v)
        .to_string()
}

fn valid_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(s.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        && ok(parts.next(), 1)
        && ok(parts.next(), 3)
        && ok(parts.next(), 3)
        && parts.next().is_none()
}

/// Finds the delivery-status part of a DSN (ours or another MTA's) and
/// returns its per-message and per-recipient fields (RFC 3464 2.2, 2.3).
pub fn parse_dsn(message: &[u8]) -> Result<ParsedDsn, DsnError> {
    let (body, global) = find_status_part(message, 0)?.ok_or(DsnError::NoDeliveryStatus)?;
    // Groups of fields separated by empty lines.
    let text = String::from_utf8_lossy(&body);
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(parse_fields(current.as_bytes()));
                current.clear();
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.is_empty() {
        groups.push(parse_fields(current.as_bytes()));
    }
    groups.retain(|g| !g.is_empty());

    let get = |group: &[(String, String)], name: &str| {
        group
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut groups = groups.into_iter().peekable();
    let mut parsed = ParsedDsn {
        reporting_mta: None,
        original_envelope_id: None,
        arrival_date: None,
        global,
        recipients: Vec::new(),
    };
    // The per-message group comes first; some MTAs leave it out.
    if let Some(first) = groups.next_if(|g| get(g, "final-recipient").is_none()) {
        parsed.reporting_mta = get(&first, "reporting-mta").map(|v| untyped(&v));
        parsed.original_envelope_id = get(&first, "original-envelope-id");
        parsed.arrival_date = get(&first, "arrival-date");
    }
    for (index, group) in groups.enumerate() {
        let required = |field: &'static str| {
            get(&group, &field.to_ascii_lowercase()).ok_or(DsnError::MissingField { index, field })
        };
        let final_recipient = untyped(&required("Final-Recipient")?);
        let action_value = required("Action")?;
        let action = Action::parse(&action_value).ok_or_else(|| DsnError::InvalidAction {
            index,
            value: action_value.clone(),
        })?;
        let status_value = required("Status")?;
        let status = status_value
            .split([' ', '\t', '('])
            .next()
            .unwrap_or_default()
            .to_string();
        if !valid_status(&status) {
            return Err(DsnError::InvalidStatus {
                index,
                value: status_value,
            });
        }
        parsed.recipients.push(ParsedRecipient {
            original_recipient: get(&group, "original-recipient").map(|v| untyped(&v)),
            final_recipient,
            action,
            status,
            remote_mta: get(&group, "remote-mta").map(|v| untyped(&v)),
            diagnostic_code: get(&group, "diagnostic-code"),
            last_attempt_date: get(&group, "last-attempt-date"),
        });
    }
    if parsed.recipients.is_empty() {
        return Err(DsnError::NoRecipients);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Param;
    use proptest::prelude::*;
    use std::time::Duration;

    fn system_time(secs_since_epoch: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs_since_epoch)
    }

    fn request(recipients: Vec<DsnRecipient>) -> DsnRequest {
        DsnRequest {
            reporting_mta: "gw.moon.example".into(),
            from: "MAILER-DAEMON@gw.moon.example".into(),
            to: "ann@earth.example".into(),
            original_envelope_id: Some("QQ314159".into()),
            arrival_date: Some(system_time(1_057_056_757)),
            date: system_time(1_057_060_357),
            message_id: "<dsn.1@gw.moon.example>".into(),
            recipients,
            return_content: ReturnContent::Full,
        }
    }

    fn bob_failed() -> DsnRecipient {
        DsnRecipient {
            original_recipient: Some("rfc822;bob+2Bspace@moon.example".into()),
            final_recipient: "bob+space@moon.example".into(),
            action: Action::Failed,
            status: "5.1.1".into(),
            remote_mta: Some("mx.moon.example".into()),
            diagnostic_code: Some("smtp; 550 5.1.1 <bob+space@moon.example>: no such user".into()),
            last_attempt: Some(system_time(1_057_060_000)),
        }
    }

    const ORIGINAL: &[u8] =
        b"From: ann@earth.example\nTo: bob@moon.example\nSubject: hi\n\nHello Bob.\n";

    #[test]
    fn dates() {
        assert_eq!(
            format_date(system_time(0)),
            "Thu, 1 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            format_date(system_time(1_057_056_757)),
            "Tue, 1 Jul 2003 10:52:37 +0000"
        );
        assert_eq!(
            format_date(system_time(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            format_date(UNIX_EPOCH - Duration::from_secs(1)),
            "Wed, 31 Dec 1969 23:59:59 +0000"
        );
        assert_eq!(
            format_date(system_time(4_102_444_799)),
            "Thu, 31 Dec 2099 23:59:59 +0000"
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("a+2Bb+3Dc"), "a+b=c");
        assert_eq!(decode_xtext("bad+zz+"), "bad+zz+");
        assert_eq!(decode_xtext("j\\x{FC}rgen"), "j\u{fc}rgen");
        assert_eq!(decode_xtext("\\x{zz}\\"), "\\x{zz}\\");
        assert_eq!(decoded_or_raw("a+0Db"), "a+0Db");
    }

    #[test]
    fn built_dsn_has_the_rfc_3464_fields() {
        let dsn = build_dsn(&request(vec![bob_failed()]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in {text}"
        );
        assert!(!text.replace("\r\n", "").contains('\r'));
        for needle in [
            "From: Mail Delivery System <MAILER-DAEMON@gw.moon.example>\r\n",
            "To: <ann@earth.example>\r\n",
            "Subject: Undelivered Mail Returned to Sender\r\n",
            "Date: Tue, 1 Jul 2003 11:52:37 +0000\r\n",
            "Message-ID: <dsn.1@gw.moon.example>\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;\r\n",
            "Content-Type: message/delivery-status\r\n",
            "Reporting-MTA: dns; gw.moon.example\r\n",
            "Original-Envelope-Id: QQ314159\r\n",
            "Arrival-Date: Tue, 1 Jul 2003 10:52:37 +0000\r\n",
            "Original-Recipient: rfc822; bob+space@moon.example\r\n",
            "Final-Recipient: rfc822; bob+space@moon.example\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.moon.example\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob+space@moon.example>: no such user\r\n",
            "Content-Type: message/rfc822\r\n",
            "Subject: hi\r\n\r\nHello Bob.\r\n",
            "<bob+space@moon.example>: 550 5.1.1 <bob+space@moon.example>: no such user\r\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.ends_with("--\r\n"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.reporting_mta.as_deref(), Some("gw.moon.example"));
        assert_eq!(parsed.original_envelope_id.as_deref(), Some("QQ314159"));
        assert_eq!(parsed.recipients.len(), 1);
        let r = &parsed.recipients[0];
        assert_eq!(r.final_recipient, "bob+space@moon.example");
        assert_eq!(
            r.original_recipient.as_deref(),
            Some("bob+space@moon.example")
        );
        assert_eq!(r.action, Action::Failed);
        assert_eq!(r.status, "5.1.1");
        assert_eq!(r.remote_mta.as_deref(), Some("mx.moon.example"));
        assert!(!parsed.global);
    }

    #[test]
    fn headers_only_on_request_and_over_the_cap() {
        let mut req = request(vec![bob_failed()]);
        req.return_content = ReturnContent::HeadersOnly;
        let text = String::from_utf8(build_dsn(&req, ORIGINAL)).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(text.contains("Subject: hi\r\n"));
        assert!(!text.contains("Hello Bob."));

        req.return_content = ReturnContent::Full;
        let mut big = b"Subject: big\r\n\r\n".to_vec();
        big.resize(MAX_RETURNED_CONTENT + 1, b'x');
        let dsn = build_dsn(&req, &big);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(text.contains("only its header is attached"));
        assert!(dsn.len() < 8 * 1024);
    }

    #[test]
    fn delay_subject_and_global_types() {
        let mut r = bob_failed();
        r.action = Action::Delayed;
        r.status = "4.4.1".into();
        r.final_recipient = "j\u{fc}rgen@moon.example".into();
        r.original_recipient = None;
        r.diagnostic_code = Some("connection timed out".into());
        let original = "Subject: Gr\u{fc}\u{df}e\r\n\r\nhallo\r\n".as_bytes();
        let dsn = build_dsn(&request(vec![r]), original);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.contains("Subject: Delivery Status Notification (Delay)\r\n"));
        assert!(text.contains("report-type=global-delivery-status;"));
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; j\u{fc}rgen@moon.example\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; connection timed out\r\n"));
        assert!(text.contains("Content-Type: message/global\r\n"));
        assert!(text.contains("charset=utf-8"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert!(parsed.global);
        assert_eq!(
            parsed.recipients[0].final_recipient,
            "j\u{fc}rgen@moon.example"
        );
        assert_eq!(parsed.recipients[0].action, Action::Delayed);
    }

    #[test]
    fn boundary_avoids_the_content() {
        let req = request(vec![bob_failed()]);
        let first = choose_boundary(&req.message_id, &[]);
        let hostile = format!("Subject: x\r\n\r\n--{first}--\r\n{first}\r\n");
        let dsn = build_dsn(&req, hostile.as_bytes());
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.recipients.len(), 1);
        assert!(!String::from_utf8(dsn)
            .unwrap()
            .contains(&format!("boundary=\"{first}\"")));
    }

    #[test]
    fn header_injection_is_flattened() {
        let mut r = bob_failed();
        r.diagnostic_code =
            Some("smtp; 550 bad\r\nAction: delivered\r\n\r\nFinal-Recipient: x".into());
        let mut req = request(vec![r]);
        req.to = "ann@earth.example>\r\nBcc: evil@example".into();
        let dsn = build_dsn(&req, ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(!text.contains("\r\nBcc:"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.recipients[0].action, Action::Failed);
    }

    #[test]
    fn huge_diagnostics_keep_lines_short() {
        let mut r = bob_failed();
        let word = "x".repeat(5000);
        r.diagnostic_code = Some(format!("smtp; 550 {word} {}", ["y"; 3000].join(" ")));
        let dsn = build_dsn(&request(vec![r]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.split("\r\n").all(|l| l.len() <= 998));
        let parsed = parse_dsn(&dsn).unwrap();
        assert!(parsed.recipients[0]
            .diagnostic_code
            .as_deref()
            .unwrap()
            .ends_with("y y y"));
        let wrapped = wrap("<a@b>: one two three", 12);
        assert_eq!(wrapped, "<a@b>: one\r\n    two\r\n    three\r\n");
        assert_eq!(wrap("", 76), "\r\n");
    }

    #[test]
    fn long_diagnostics_fold_and_unfold() {
        let long = format!("smtp; 550 5.7.1 {}", ["policy"; 40].join(" "));
        let mut r = bob_failed();
        r.diagnostic_code = Some(long.clone());
        let dsn = build_dsn(&request(vec![r]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        let field: Vec<&str> = text
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Diagnostic-Code:"))
            .take_while(|l| l.starts_with("Diagnostic-Code:") || l.starts_with(' '))
            .collect();
        assert!(field.len() > 2, "{text}");
        assert!(field.iter().all(|l| l.len() <= 78), "{field:?}");
        assert_eq!(
            parse_dsn(&dsn).unwrap().recipients[0].diagnostic_code,
            Some(long)
        );
    }

    #[test]
    fn should_send_follows_notify() {
        let env = |rp: &str| Envelope {
            reverse_path: rp.into(),
            ..Envelope::default()
        };
        let rcpt = |notify: Option<&str>| Recipient {
            mailbox: "bob@moon.example".into(),
            params: notify
                .map(|n| vec![Param::new("notify", Some(n))])
                .unwrap_or_default(),
        };
        let e = env("ann@earth.example");
        assert!(!should_send_dsn(&env(""), &rcpt(None), Action::Failed));
        assert!(!should_send_dsn(
            &env("<>"),
            &rcpt(Some("FAILURE")),
            Action::Failed
        ));
        assert!(should_send_dsn(&e, &rcpt(None), Action::Failed));
        assert!(should_send_dsn(&e, &rcpt(None), Action::Delayed));
        assert!(!should_send_dsn(&e, &rcpt(None), Action::Delivered));
        assert!(!should_send_dsn(&e, &rcpt(Some("NEVER")), Action::Failed));
        assert!(should_send_dsn(&e, &rcpt(Some("failure")), Action::Failed));
        assert!(!should_send_dsn(
            &e,
            &rcpt(Some("FAILURE")),
            Action::Delayed
        ));
        assert!(should_send_dsn(
            &e,
            &rcpt(Some("SUCCESS,DELAY")),
            Action::Delayed
        ));
        assert!(should_send_dsn(&e, &rcpt(Some("SUCCESS")), Action::Relayed));
        assert!(!should_send_dsn(&e, &rcpt(Some("SUCCESS")), Action::Failed));
    }

    #[test]
    fn recipient_from_envelope_and_reply() {
        let rcpt = Recipient {
            mailbox: "bob@moon.example".into(),
            params: vec![Param::new("ORCPT", Some("rfc822;bob@moon.example"))],
        };
        let reply = Reply::new(550, Some("5.1.1"), "no such user");
        let r = DsnRecipient::new(&rcpt, Action::Failed, "5.0.0").with_reply(&reply);
        assert_eq!(r.status, "5.1.1");
        assert_eq!(
            r.original_recipient.as_deref(),
            Some("rfc822;bob@moon.example")
        );
        assert_eq!(
            r.diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 no such user")
        );
        assert_eq!(status_of(&Reply::new(451, None, "later")), "4.0.0");
    }

    #[test]
    fn parses_an_exim_bounce() {
        let exim = b"Return-path: <>\n\
Auto-Submitted: auto-replied\n\
From: Mail Delivery System <Mailer-Daemon@mx.moon.example>\n\
To: ann@earth.example\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=1700000000-eximdsn-1234\n\
MIME-Version: 1.0\n\
Subject: Mail delivery failed: returning message to sender\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: text/plain; charset=us-ascii\n\
\n\
This message was created automatically by mail delivery software.\n\
\n\
  bob@moon.example\n\
    Unrouteable address\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.moon.example\n\
\n\
Action: failed\n\
Final-Recipient: rfc822;bob@moon.example\n\
Status: 5.0.0\n\
\n\
Action: failed\n\
Final-Recipient: rfc822;carl@moon.example\n\
Status: 5.0.0\n\
Remote-MTA: dns; mx2.moon.example\n\
Diagnostic-Code: smtp; 550 Unknown user\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: message/rfc822\n\
\n\
Subject: hi\n\
\n\
x\n\
--1700000000-eximdsn-1234--\n";
        let parsed = parse_dsn(exim).unwrap();
        assert_eq!(parsed.reporting_mta.as_deref(), Some("mx.moon.example"));
        assert_eq!(parsed.recipients.len(), 2);
        assert_eq!(parsed.recipients[0].final_recipient, "bob@moon.example");
        assert_eq!(parsed.recipients[1].status, "5.0.0");
        assert_eq!(
            parsed.recipients[1].remote_mta.as_deref(),
            Some("mx2.moon.example")
        );
        assert_eq!(
            parsed.recipients[1].diagnostic_code.as_deref(),
            Some("smtp; 550 Unknown user")
        );
    }

    #[test]
    fn parses_encoded_status_parts() {
        let fields = "Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: delivered\r\nStatus: 2.0.0\r\n";
        let b64 = "UmVwb3J0aW5nLU1UQTogZG5zOyBhLmV4YW1wbGUNCg0KRmluYWwtUmVjaXBpZW50OiByZmM4MjI7\r\nIGJAYw0KQWN0aW9uOiBkZWxpdmVyZWQNClN0YXR1czogMi4wLjANCg==";
        let qp = fields
            .replace("\r\n\r\n", "=0D=0A\r\n\r\n")
            .replace(": ", "=3A ");
        for (cte, body) in [("base64", b64.to_string()), ("quoted-printable", qp)] {
            let msg = format!(
                "Content-Type: multipart/report; boundary=\"b\"\r\n\r\n--b\r\n\
                 Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n--b--\r\n"
            );
            let parsed = parse_dsn(msg.as_bytes()).unwrap_or_else(|e| panic!("{cte}: {e}"));
            assert_eq!(parsed.reporting_mta.as_deref(), Some("a.example"), "{cte}");
            assert_eq!(parsed.recipients[0].action, Action::Delivered);
            assert!(parsed.global);
        }
        let bad = "Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n";
        assert_eq!(parse_dsn(bad.as_bytes()), Err(DsnError::BadEncoding));
    }

    #[test]
    fn clean_errors_for_bad_input() {
        assert_eq!(parse_dsn(b""), Err(DsnError::NoDeliveryStatus));
        assert_eq!(
            parse_dsn(b"Subject: hi\r\n\r\nbody"),
            Err(DsnError::NoDeliveryStatus)
        );
        assert_eq!(
            parse_dsn(b"Content-Type: multipart/report\r\n\r\n--x\r\n"),
            Err(DsnError::MissingBoundary)
        );
        let no_action = b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; b@c\r\nStatus: 5.0.0\r\n";
        assert_eq!(
            parse_dsn(no_action),
            Err(DsnError::MissingField {
                index: 0,
                field: "Action"
            })
        );
        let odd_action = b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: exploded\r\nStatus: 5.0.0\r\n";
        assert!(matches!(
            parse_dsn(odd_action),
            Err(DsnError::InvalidAction { .. })
        ));
        let odd_status = b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: failed\r\nStatus: 9.9\r\n";
        assert!(matches!(
            parse_dsn(odd_status),
            Err(DsnError::InvalidStatus { .. })
        ));
        let only_message =
            b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n";
        assert_eq!(parse_dsn(only_message), Err(DsnError::NoRecipients));
        let mut deep = String::new();
        for i in 0..20 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        assert_eq!(
            parse_dsn(deep.as_bytes()),
            Err(DsnError::TooDeep(MAX_MIME_DEPTH))
        );
    }

    #[test]
    fn truncations_never_panic() {
        let dsn = build_dsn(&request(vec![bob_failed(), bob_failed()]), ORIGINAL);
        for cut in 0..dsn.len() {
            let _ = parse_dsn(&dsn[..cut]);
        }
    }

    fn address() -> impl Strategy<Value = String> {
        ("[a-z0-9._+-]{1,12}", "[a-z0-9-]{1,10}\\.[a-z]{2,4}").prop_map(|(l, d)| format!("{l}@{d}"))
    }

    fn recipient() -> impl Strategy<Value = DsnRecipient> {
        (
            address(),
            // xtext: a '+' in ORCPT starts an escape.
            proptest::option::of(address().prop_map(|a| a.replace('+', "_"))),
            prop_oneof![
                Just(Action::Failed),
                Just(Action::Delayed),
                Just(Action::Delivered),
                Just(Action::Relayed),
                Just(Action::Expanded),
            ],
            (2u8..6, 0u16..8, 0u16..1000),
            proptest::option::of("[a-z0-9.-]{1,20}"),
            proptest::option::of("[ -~]{0,200}"),
            proptest::option::of(0u64..4_000_000_000),
        )
            .prop_map(
                |(final_recipient, orcpt, action, (c, s, d), remote_mta, reason, last)| {
                    let class = if c == 3 { 2 } else { c };
                    DsnRecipient {
                        original_recipient: orcpt.map(|o| format!("rfc822;{o}")),
                        final_recipient,
                        action,
                        status: format!("{class}.{s}.{d}"),
                        remote_mta,
                        diagnostic_code: reason.map(|r| format!("smtp; {}", r.trim())),
                        last_attempt: last.map(system_time),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn build_then_parse(
            recipients in proptest::collection::vec(recipient(), 1..6),
            envid in proptest::option::of("[A-Za-z0-9]{1,20}"),
            original in proptest::collection::vec(any::<u8>(), 0..400),
            headers_only in any::<bool>(),
        ) {
            let mut req = request(recipients.clone());
            req.original_envelope_id = envid.clone();
            if headers_only {
                req.return_content = ReturnContent::HeadersOnly;
            }
            let dsn = build_dsn(&req, &original);
            let parsed = parse_dsn(&dsn).unwrap();
            prop_assert_eq!(parsed.reporting_mta.as_deref(), Some("gw.moon.example"));
            prop_assert_eq!(parsed.original_envelope_id, envid);
            prop_assert_eq!(parsed.recipients.len(), recipients.len());
            for (p, r) in parsed.recipients.iter().zip(&recipients) {
                prop_assert_eq!(&p.final_recipient, &r.final_recipient);
                prop_assert_eq!(
                    p.original_recipient.as_deref(),
                    r.original_recipient.as_deref().and_then(|o| o.strip_prefix("rfc822;"))
                );
                prop_assert_eq!(p.action, r.action);
                prop_assert_eq!(&p.status, &r.status);
                prop_assert_eq!(&p.remote_mta, &r.remote_mta);
                let expected_diag = r.diagnostic_code.as_ref().map(|d| d.trim().split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "));
                let got_diag = p.diagnostic_code.as_ref().map(|d| d.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "));
                prop_assert_eq!(got_diag, expected_diag);
                prop_assert_eq!(p.last_attempt_date.clone(), r.last_attempt.map(format_date));
            }
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_dsn(&input);
            let mut framed = b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n".to_vec();
            framed.extend_from_slice(&input);
            let _ = parse_dsn(&framed);
        }
    }
}
