//! Argument syntax shared by the encoder and the decoder: paths (RFC 5321
//! §4.1.2 `Reverse-path`, `Forward-path`, `Mailbox`, `A-d-l`), domains and
//! address literals (§4.1.2, §4.1.3) and ESMTP parameters (§4.1.2
//! `esmtp-param`), widened for internationalised mail where RFC 6531 §3.3
//! allows it (`SMTPUTF8`).
//!
//! The encoder validates with the very functions the decoder parses with, so
//! anything `encode` writes, strict `decode` reads back.

/// Why a path, domain or parameter does not parse, and at which octet of the
/// examined text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Octet index into the examined text.
    pub at: usize,
    /// What was expected there, in a few words.
    pub reason: &'static str,
}

/// Which path grammar applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// MAIL FROM: `<>` allowed.
    Reverse,
    /// RCPT TO: `<Postmaster>` allowed, `<>` not.
    Forward,
}

type Parsed<T> = Result<T, SyntaxError>;

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn fail<T>(&self, reason: &'static str) -> Parsed<T> {
        Err(SyntaxError { at: self.i, reason })
    }
}

/// Parses a bracketed path at the start of `s` (`s[0]` must be `<`) and
/// returns the index just past its closing `>`; the path proper is
/// `s[1..end - 1]`. Non-ASCII octets are accepted wherever RFC 6531 allows
/// UTF-8; the caller rejects them when the transaction lacks `SMTPUTF8`.
pub(crate) fn parse_path(s: &[u8], kind: PathKind) -> Parsed<usize> {
    let mut c = Cursor { s, i: 0 };
    if !c.eat(b'<') {
        return c.fail("expected '<' to open the path");
    }
    if c.peek() == Some(b'>') {
        return match kind {
            PathKind::Reverse => Ok(2),
            PathKind::Forward => {
                c.fail("expected a mailbox: the null path <> is only a reverse-path")
            }
        };
    }
    if kind == PathKind::Forward {
        // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain; case-insensitive (§4.5.1).
        let rest = &s[1..];
        if rest.len() >= 11 && rest[..10].eq_ignore_ascii_case(b"Postmaster") && rest[10] == b'>' {
            return Ok(12);
        }
    }
    if c.peek() == Some(b'@') {
        // A-d-l ":" — a source route, obsolete but still valid syntax (§4.1.2, Appendix C).
        loop {
            if !c.eat(b'@') {
                return c.fail("expected '@' to start a source-route domain");
            }
            domain(&mut c)?;
            if c.eat(b',') {
                continue;
            }
            if c.eat(b':') {
                break;
            }
            return c.fail("expected ',' or ':' after a source-route domain");
        }
    }
    mailbox(&mut c)?;
    if !c.eat(b'>') {
        return c.fail("expected '>' to close the path");
    }
    Ok(c.i)
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`.
fn mailbox(c: &mut Cursor<'_>) -> Parsed<()> {
    if c.peek() == Some(b'"') {
        quoted_string(c)?;
    } else {
        dot_string(c)?;
    }
    if !c.eat(b'@') {
        return c.fail("expected '@' after the local part");
    }
    if c.peek() == Some(b'[') {
        address_literal(c)
    } else {
        domain(c)
    }
}

/// `atext` (RFC 5322 §3.2.3), plus UTF-8 (RFC 6531 §3.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `Dot-string = Atom *("." Atom)`.
fn dot_string(c: &mut Cursor<'_>) -> Parsed<()> {
    loop {
        let start = c.i;
        while c.peek().is_some_and(is_atext) {
            c.i += 1;
        }
        if c.i == start {
            return c.fail(
                "expected an atom (letters, digits or !#$%&'*+-/=?^_`{|}~) in the local part",
            );
        }
        if !c.eat(b'.') {
            return Ok(());
        }
    }
}

/// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`.
fn quoted_string(c: &mut Cursor<'_>) -> Parsed<()> {
    c.i += 1; // opening DQUOTE
    loop {
        match c.peek() {
            None => return c.fail("expected '\"' to close the quoted local part"),
            Some(b'"') => {
                c.i += 1;
                return Ok(());
            }
            Some(b'\\') => {
                c.i += 1;
                match c.peek() {
                    Some(32..=126) => c.i += 1,
                    _ => return c.fail("expected a printable ASCII character after '\\'"),
                }
            }
            Some(32..=33 | 35..=91 | 93..=126 | 0x80..=0xff) => c.i += 1,
            Some(_) => return c.fail("character not allowed in a quoted local part"),
        }
    }
}

fn is_let_dig(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`.
fn domain(c: &mut Cursor<'_>) -> Parsed<()> {
    loop {
        if !c.peek().is_some_and(is_let_dig) {
            return c.fail("expected a domain label (letter or digit)");
        }
        while c.peek().is_some_and(|b| is_let_dig(b) || b == b'-') {
            c.i += 1;
        }
        if c.s[c.i - 1] == b'-' {
            c.i -= 1;
            return c.fail("a domain label must not end in '-'");
        }
        if !c.eat(b'.') {
            return Ok(());
        }
    }
}

/// `address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]"` (§4.1.3).
fn address_literal(c: &mut Cursor<'_>) -> Parsed<()> {
    c.i += 1; // '['
    let start = c.i;
    while matches!(c.peek(), Some(33..=90 | 94..=126)) {
        c.i += 1;
    }
    let body = &c.s[start..c.i];
    if !c.eat(b']') {
        return c.fail("expected ']' to close the address literal");
    }
    let ok = if is_ipv4(body) {
        true
    } else if body.len() >= 5 && body[..5].eq_ignore_ascii_case(b"IPv6:") {
        is_ipv6(&body[5..])
    } else {
        match body.iter().position(|&b| b == b':') {
            Some(colon) => {
                let tag = &body[..colon];
                !tag.is_empty()
                    && tag.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                    && tag.last().is_some_and(|b| b.is_ascii_alphanumeric())
                    && colon + 1 < body.len()
            }
            None => false,
        }
    };
    if ok {
        Ok(())
    } else {
        Err(SyntaxError {
            at: start,
            reason: "expected an IPv4, IPv6: or tagged address literal",
        })
    }
}

/// `IPv4-address-literal = Snum 3("." Snum)`, `Snum` 0–255.
fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = part.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        if value > 255 {
            return false;
        }
    }
    parts == 4
}

fn is_hex_group(s: &[u8]) -> bool {
    (1..=4).contains(&s.len()) && s.iter().all(u8::is_ascii_hexdigit)
}

/// `IPv6-addr` in its four RFC 5321 forms (full, compressed, and both with
/// a trailing IPv4 part).
fn is_ipv6(s: &[u8]) -> bool {
    fn groups(part: &[u8]) -> Option<Vec<&[u8]>> {
        if part.is_empty() {
            Some(Vec::new())
        } else {
            Some(part.split(|&b| b == b':').collect())
        }
    }
    // Split off a trailing IPv4 part, if any.
    let (hex, v4) = match s.iter().rposition(|&b| b == b':') {
        Some(i) if s[i + 1..].contains(&b'.') => {
            if !is_ipv4(&s[i + 1..]) {
                return false;
            }
            // Keep a "::" ending intact ("::1.2.3.4").
            let keep = if i > 0 && s[i - 1] == b':' { i + 1 } else { i };
            (&s[..keep], true)
        }
        _ => (s, false),
    };
    let max = if v4 { 6 } else { 8 };
    let at = hex.windows(2).position(|w| w == b"::");
    match at {
        Some(i) => {
            let (left, right) = (&hex[..i], &hex[i + 2..]);
            if right.windows(2).any(|w| w == b"::") {
                return false;
            }
            let (Some(l), Some(r)) = (groups(left), groups(right)) else {
                return false;
            };
            // "::" stands for at least one group; at most max-2 explicit groups.
            l.iter().chain(r.iter()).all(|g| is_hex_group(g)) && l.len() + r.len() <= max - 2
        }
        None => {
            let g: Vec<&[u8]> = hex.split(|&b| b == b':').collect();
            g.len() == max && g.iter().all(|g| is_hex_group(g))
        }
    }
}

/// A HELO/EHLO argument: `Domain` or `address-literal` (RFC 5321 §4.1.1.1).
pub(crate) fn is_greeting_domain(s: &[u8]) -> bool {
    let mut c = Cursor { s, i: 0 };
    let parsed = if c.peek() == Some(b'[') {
        address_literal(&mut c)
    } else {
        domain(&mut c)
    };
    parsed.is_ok() && c.i == s.len()
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
pub(crate) fn is_esmtp_keyword(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphanumeric)
        && s.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF-8 with `SMTPUTF8`
/// (RFC 6531 §3.3).
pub(crate) fn is_esmtp_value(s: &[u8], utf8: bool) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| matches!(b, 33..=60 | 62..=126) || (utf8 && b >= 0x80))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str, kind: PathKind) -> Result<usize, &'static str> {
        parse_path(s.as_bytes(), kind).map_err(|e| e.reason)
    }

    #[test]
    fn accepts_rfc5321_paths() {
        for p in [
            "<a@b>",
            "<alice.smith@earth.example>",
            "<\"john doe\"@example.org>",
            "<\"a>b\\\"c\"@x.y>",
            "<@relay1.example,@relay2.example:bob@moon.example>",
            "<user@[192.0.2.1]>",
            "<user@[IPv6:2001:db8::1]>",
            "<user@[IPv6:::ffff:192.0.2.1]>",
            "<user@[IPv6:1:2:3:4:5:6:7:8]>",
            "<user@[x-tag:anything]>",
            "<üser@bücher.example>",
        ] {
            assert_eq!(path(p, PathKind::Forward), Ok(p.len()), "{p}");
        }
        assert_eq!(path("<>", PathKind::Reverse), Ok(2));
        assert_eq!(path("<postmaster>", PathKind::Forward), Ok(12));
        assert_eq!(path("<Postmaster> NOTIFY=NEVER", PathKind::Forward), Ok(12));
    }

    #[test]
    fn rejects_malformed_paths() {
        for p in [
            "a@b",
            "<a@b",
            "<a b@c>",
            "<@a:>",
            "<@a,b:c@d>",
            "<a@-b>",
            "<a@b->",
            "<a@b..c>",
            "<.a@b>",
            "<a.@b>",
            "<a@>",
            "<@b>",
            "<ab>",
            "<a@[1.2.3]>",
            "<a@[300.1.1.1]>",
            "<a@[IPv6:1:2:3:4:5:6:7]>",
            "<a@[IPv6:1::2::3]>",
            "<a@[IPv6:1:2:3:4:5:6:7::8]>",
            "<\"unterminated@b>",
            "<a\r@b>",
            "<Postmaster>",
        ] {
            let kind = if p == "<Postmaster>" {
                PathKind::Reverse
            } else {
                PathKind::Forward
            };
            assert!(path(p, kind).is_err(), "{p} should not parse");
        }
        assert!(path("<>", PathKind::Forward).is_err());
    }

    #[test]
    fn ipv6_forms() {
        for ok in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "1::2.3.4.5",
            "a:b::c:d",
        ] {
            assert!(is_ipv6(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "12345::",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:1.2.3.4",
            "::1.2.3",
        ] {
            assert!(!is_ipv6(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn parameters_and_greetings() {
        assert!(is_esmtp_keyword(b"BODY"));
        assert!(is_esmtp_keyword(b"X-1"));
        assert!(!is_esmtp_keyword(b"-X"));
        assert!(!is_esmtp_keyword(b""));
        assert!(is_esmtp_value(b"rfc822;a@b", false));
        assert!(!is_esmtp_value(b"a=b", false));
        assert!(!is_esmtp_value(b"", false));
        assert!(!is_esmtp_value("ü".as_bytes(), false));
        assert!(is_esmtp_value("ü".as_bytes(), true));
        assert!(is_greeting_domain(b"earth.example"));
        assert!(is_greeting_domain(b"[192.0.2.1]"));
        assert!(!is_greeting_domain(b"earth_gw"));
        assert!(!is_greeting_domain(b""));
    }
}
