//! The syntax of commands: replies for bad ones, paths, mailboxes and
//! domains (RFC 5321 §4.1.2, RFC 6531), ESMTP parameters (RFC 1870,
//! RFC 3461, RFC 6152, RFC 6710).

use super::*;

pub(super) fn ok(text: &str) -> Event {
    Event::Reply(Reply::new(250, Some("2.0.0"), text))
}

pub(super) fn syntax(usage: &str) -> Reply {
    Reply::new(501, Some("5.5.4"), format!("syntax: {usage}"))
}

pub(super) fn sequence(text: &str) -> Reply {
    Reply::new(503, Some("5.5.1"), text)
}

pub(super) fn bad_param(keyword: &str, expected: &str) -> Reply {
    Reply::new(
        501,
        Some("5.5.4"),
        format!("bad {keyword} parameter: expected {expected}"),
    )
}

pub(super) fn unknown_param(command: &str, keyword: &str, supported: &str) -> Reply {
    let shown: String = keyword.chars().take(32).collect();
    Reply::new(
        555,
        Some("5.5.4"),
        format!("unsupported {command} parameter {shown} (supported: {supported})"),
    )
}

pub(super) fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start_matches(' '))
}

/// Split `<path> params` after `FROM:`/`TO:`: the path between the angle
/// brackets (a `>` inside a quoted local part does not end it) and the
/// parameter text.
pub(super) fn split_path(s: &str) -> Result<(&str, &str), &'static str> {
    let Some(body) = s.strip_prefix('<') else {
        return Err("the address must be in angle brackets, e.g. <ann@example.org>");
    };
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            let path = &body[..i];
            if path.len() + 2 > MAX_PATH {
                return Err("path longer than 256 octets");
            }
            let rest = &body[i + 1..];
            if !rest.is_empty() && !rest.starts_with(' ') {
                return Err("expected a space between the address and the parameters");
            }
            return Ok((path, rest));
        }
    }
    Err("missing closing angle bracket")
}

/// What is wrong with a path, a mailbox or a domain (RFC 5321 §4.1.2,
/// §4.1.3, appendix C); the text goes into the 501 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PathError {
    #[error("bad quoted pair in the local part")]
    QuotedPair,
    #[error("control character in the local part")]
    ControlInLocalPart,
    #[error("unterminated quoted local part")]
    UnterminatedQuote,
    #[error("expected @ after the quoted local part")]
    NoAtAfterQuote,
    #[error("no @ in {0}")]
    NoAt(String),
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("character {0:?} in the local part (quote it)")]
    LocalPartChar(char),
    #[error("empty domain")]
    EmptyDomain,
    #[error("unterminated address literal")]
    UnterminatedLiteral,
    #[error("bad address literal [{0}]")]
    BadLiteral(String),
    #[error("bad domain {0}")]
    BadDomain(String),
    #[error("source route without a colon")]
    RouteWithoutColon,
    #[error("bad source route {0}")]
    BadRoute(String),
}

/// RFC 5321 §4.1.2 / appendix C: `<@a,@b:user@c>` must be accepted and the
/// route ignored.
pub(super) fn strip_source_route(path: &str) -> Result<&str, PathError> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    let Some(colon) = path.find(':') else {
        return Err(PathError::RouteWithoutColon);
    };
    let route = &path[..colon];
    if route
        .split(',')
        .any(|hop| hop.len() < 2 || !hop.starts_with('@') || check_domain(&hop[1..]).is_err())
    {
        return Err(PathError::BadRoute(route.to_string()));
    }
    Ok(&path[colon + 1..])
}

/// Parse ` KEY=value KEY2` (the text after the closing bracket).
pub(super) fn parse_params(s: &str) -> Result<Vec<Param>, Reply> {
    let mut params: Vec<Param> = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        // RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
        let keyword_ok = keyword
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !keyword_ok {
            let shown: String = word.chars().take(32).collect();
            return Err(Reply::new(
                501,
                Some("5.5.4"),
                format!("bad parameter {shown}: expected KEYWORD or KEYWORD=value"),
            ));
        }
        // esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 adds UTF-8.
        if let Some(v) = value {
            if v.is_empty() || v.contains('=') {
                return Err(bad_param(keyword, "a non-empty value without '='"));
            }
        }
        if params
            .iter()
            .any(|p| p.keyword.eq_ignore_ascii_case(keyword))
        {
            return Err(Reply::new(
                501,
                Some("5.5.4"),
                format!("parameter {keyword} given twice"),
            ));
        }
        params.push(Param::new(keyword, value));
    }
    Ok(params)
}

pub(super) fn check_rcpt_params(params: &[Param]) -> Result<(), Reply> {
    for p in params {
        let value = p.value.as_deref();
        match p.keyword.to_ascii_uppercase().as_str() {
            "NOTIFY" => {
                // RFC 3461 §4.1: NEVER, or a list of SUCCESS, FAILURE, DELAY.
                let expected = "NEVER or a list of SUCCESS, FAILURE, DELAY";
                let Some(v) = value else {
                    return Err(bad_param("NOTIFY", expected));
                };
                let items: Vec<String> = v.split(',').map(str::to_ascii_uppercase).collect();
                let valid = if items.iter().any(|i| i == "NEVER") {
                    items.len() == 1
                } else {
                    items
                        .iter()
                        .all(|i| matches!(i.as_str(), "SUCCESS" | "FAILURE" | "DELAY"))
                        && (1..items.len()).all(|k| !items[..k].contains(&items[k]))
                };
                if !valid {
                    return Err(bad_param("NOTIFY", expected));
                }
            }
            "ORCPT" => {
                // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters;
                // RFC 6533 adds the utf-8 address type.
                let expected = "addr-type;address, e.g. rfc822;ann@example.org";
                let Some((addr_type, address)) = value.and_then(|v| v.split_once(';')) else {
                    return Err(bad_param("ORCPT", expected));
                };
                let type_ok = addr_type
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                    && addr_type
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                let address_ok = !address.is_empty()
                    && value.is_some_and(|v| v.len() <= 500)
                    && (addr_type.eq_ignore_ascii_case("utf-8") || is_xtext(address));
                if !type_ok || !address_ok {
                    return Err(bad_param("ORCPT", expected));
                }
            }
            _ => return Err(unknown_param("RCPT", &p.keyword, "NOTIFY ORCPT")),
        }
    }
    Ok(())
}

/// An `MT-PRIORITY` value (RFC 6710 §3: `["-" / "+"] DIGIT`), -9 to 9.
pub fn parse_mt_priority(value: &str) -> Option<i8> {
    let (sign, digit) = match value.as_bytes() {
        [b'-', d] => (-1, *d),
        [b'+', d] | [d] => (1, *d),
        _ => return None,
    };
    digit.is_ascii_digit().then(|| sign * (digit - b'0') as i8)
}

/// RFC 3461 §4: xtext = *( xchar / "+" 2HEXCHAR ), xchar = %d33-42 / %d44-60
/// / %d62-126, hex digits upper case.
pub(super) fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                match (b.get(i + 1), b.get(i + 2)) {
                    (Some(&h), Some(&l)) if hex(h) && hex(l) => i += 3,
                    _ => return false,
                }
            }
            33..=60 | 62..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

/// Check `local@domain` (RFC 5321 §4.1.2, RFC 6531 §3.3 for UTF-8): a
/// dot-string (leniently: dots anywhere) or quoted-string local part, a
/// domain of letter/digit/hyphen labels or an address literal.
pub(super) fn check_mailbox(mailbox: &str) -> Result<(), PathError> {
    let (local, domain) = if let Some(quoted) = mailbox.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in quoted.char_indices() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return Err(PathError::QuotedPair);
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else if (c as u32) < 32 || c == '\x7f' {
                return Err(PathError::ControlInLocalPart);
            }
        }
        let Some(end) = end else {
            return Err(PathError::UnterminatedQuote);
        };
        let after = &quoted[end + 1..];
        let Some(domain) = after.strip_prefix('@') else {
            return Err(PathError::NoAtAfterQuote);
        };
        (&mailbox[..end + 2], domain)
    } else {
        let Some((local, domain)) = mailbox.rsplit_once('@') else {
            return Err(PathError::NoAt(mailbox.to_string()));
        };
        if local.is_empty() {
            return Err(PathError::EmptyLocalPart);
        }
        const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
        if let Some(c) = local
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || SPECIALS.contains(c) || !c.is_ascii()))
        {
            return Err(PathError::LocalPartChar(c));
        }
        (local, domain)
    };
    debug_assert!(!local.is_empty());
    check_domain(domain)
}

pub(super) fn check_domain(domain: &str) -> Result<(), PathError> {
    if domain.is_empty() {
        return Err(PathError::EmptyDomain);
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let Some(inner) = literal.strip_suffix(']') else {
            return Err(PathError::UnterminatedLiteral);
        };
        // dcontent = %d33-90 / %d94-126
        if inner.is_empty() || !inner.bytes().all(|b| matches!(b, 33..=90 | 94..=126)) {
            return Err(PathError::BadLiteral(inner.to_string()));
        }
        return Ok(());
    }
    for label in domain.split('.') {
        let label_ok = !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
        if !label_ok {
            return Err(PathError::BadDomain(domain.to_string()));
        }
    }
    Ok(())
}
