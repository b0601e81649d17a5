//! Reading a DSN back (ours or another MTA's): its delivery-status part
//! found through the MIME structure, its fields returned; never panics.

use super::build::header_end;
use super::*;

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
