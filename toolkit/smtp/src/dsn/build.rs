//! Writing a DSN: the RFC 5322 message with its `multipart/report` parts.

use super::*;

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
pub(super) fn wrap(text: &str, width: usize) -> String {
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
pub(super) fn decode_xtext(value: &str) -> String {
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
pub(super) fn decoded_or_raw(value: &str) -> String {
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
pub(super) fn header_end(message: &[u8]) -> usize {
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
pub(super) fn choose_boundary(seed: &str, parts: &[&[u8]]) -> String {
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
