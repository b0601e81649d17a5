//! Parser for the value of an `Authentication-Results` header field
//! (RFC 8601 §2.2): the authserv-id, an optional version, then `none` or a
//! list of `method=result` statements with their `reason=` and
//! `ptype.property=value` data. Pure and total: any input, however
//! malformed, truncated or hostile, gives a value or a [`ParseError`] with a
//! byte offset, never a panic, and the work is linear in the input (nested
//! comments are counted, not recursed into).
//!
//! Comments are skipped where RFC 5322 allows CFWS, but the ones inside a
//! result are kept ([`MethodResult::comments`]): some verifiers report
//! facts only there, e.g. the DMARC policy as `dmarc=fail (p=NONE ...)`.
//!
//! Deliberate leniencies, each seen in the wild, because only header fields
//! written by the operator's own border MTA are ever acted on:
//!
//! * a property value (`pvalue`) runs to the next space, comment or `;`,
//!   so base64 fragments such as `header.b=ab/c+=` are kept;
//! * a bare `name=value` that is not `reason` (e.g. Microsoft's
//!   `action=none`) is kept as a property with an empty `property`;
//! * a registered method name followed by `=` or `/` where a property
//!   should be starts the next result even without its `;`
//!   (`dkim=pass spf=pass`);
//! * empty statements (`;;`) and a trailing `;` are ignored.

use std::fmt;

/// One parsed `Authentication-Results` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Who evaluated the message (RFC 8601 §2.5), as written, e.g.
    /// `mx.earth.example`. Quoted strings are unquoted.
    pub authserv_id: String,
    /// The `authres-version` after the authserv-id, if given (`1`).
    pub version: Option<u32>,
    /// The statements, in order; empty for `none`.
    pub results: Vec<MethodResult>,
}

/// One `method=result` statement (`resinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// The method, lower-cased: `spf`, `dkim`, `dmarc`, `arc`, ...
    pub method: String,
    /// The method version after `/`, if given (`dkim/1=pass`).
    pub method_version: Option<u32>,
    /// The result, lower-cased: `pass`, `fail`, `softfail`, `none`, ...
    pub result: String,
    /// The `reason=` value, unquoted.
    pub reason: Option<String>,
    /// `ptype.property=value` data, in order.
    pub properties: Vec<Property>,
    /// Text of the comments inside this statement, outer parentheses
    /// removed, in order.
    pub comments: Vec<String>,
}

/// One `ptype.property=value` (RFC 8601 §2.3), e.g. `header.from=example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// `smtp`, `header`, `body`, `policy`, lower-cased; for a bare
    /// `name=value` the name.
    pub ptype: String,
    /// `mailfrom`, `from`, `d`, ..., lower-cased; empty for a bare
    /// `name=value`.
    pub property: String,
    /// The value as written, unquoted.
    pub value: String,
}

impl MethodResult {
    /// The value of the first `ptype.property` property, compared
    /// case-insensitively.
    pub fn property(&self, ptype: &str, property: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| {
                p.ptype.eq_ignore_ascii_case(ptype) && p.property.eq_ignore_ascii_case(property)
            })
            .map(|p| p.value.as_str())
    }
}

/// Why a field value is not a valid `Authentication-Results` payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Something other than what the grammar allows at `offset`.
    #[error("expected {expected} at byte {offset}")]
    Expected {
        /// What was expected, for a person.
        expected: &'static str,
        /// Byte offset into the field value.
        offset: usize,
    },
    /// A `(` comment that never closes.
    #[error("comment opened at byte {offset} is not closed")]
    UnterminatedComment {
        /// Where the comment starts.
        offset: usize,
    },
    /// A `"` quoted string that never closes.
    #[error("quoted string opened at byte {offset} is not closed")]
    UnterminatedQuote {
        /// Where the string starts.
        offset: usize,
    },
}

/// Methods in the IANA "Email Authentication Methods" registry; a name from
/// this list followed by `=` starts a new statement even without a `;`.
const KNOWN_METHODS: &[&str] = &[
    "arc",
    "auth",
    "dkim",
    "dkim-adsp",
    "dkim-atps",
    "dmarc",
    "dnswl",
    "domainkeys",
    "iprev",
    "rrvs",
    "sender-id",
    "smime",
    "spf",
    "vbr",
];

/// Parses the value of one `Authentication-Results` field (after the
/// colon; unfolded or not).
pub fn parse(value: &str) -> Result<AuthResults, ParseError> {
    let mut c = Cursor {
        s: value.as_bytes(),
        pos: 0,
        comments: Vec::new(),
    };
    c.skip_cfws()?;
    let id_at = c.pos;
    let authserv_id = c.value("an authserv-id")?;
    if authserv_id.is_empty() {
        // `""`: a quoted string may be empty, an authserv-id may not
        // (it names the host that vouches for the results).
        return Err(ParseError::Expected {
            expected: "a non-empty authserv-id",
            offset: id_at,
        });
    }
    let mut version = None;
    if c.skip_cfws()? && c.peek().is_some_and(|b| b.is_ascii_digit()) {
        let start = c.pos;
        let digits = c.digits();
        if c.at_delimiter() {
            version = digits;
        } else {
            return Err(ParseError::Expected {
                expected: "a version number or `;`",
                offset: start,
            });
        }
    }
    let mut results = Vec::new();
    let mut saw_statement = false;
    // Whether the next statement may start without its `;` (recovery from
    // a missing separator).
    let mut continued = false;
    loop {
        if !continued {
            c.skip_cfws()?;
            match c.peek() {
                None => break,
                Some(b';') => {
                    c.pos += 1;
                    // Comments from here on belong to this statement.
                    c.comments.clear();
                }
                Some(_) => {
                    return Err(ParseError::Expected {
                        expected: "`;` before a result",
                        offset: c.pos,
                    })
                }
            }
            c.skip_cfws()?;
            match c.peek() {
                None => {
                    saw_statement = true;
                    break;
                }
                Some(b';') => {
                    saw_statement = true;
                    continue;
                }
                Some(_) => {}
            }
        }
        continued = false;
        saw_statement = true;
        let method_at = c.pos;
        let method = c.keyword().ok_or(ParseError::Expected {
            expected: "a method name",
            offset: method_at,
        })?;
        c.skip_cfws()?;
        if method == "none" && !matches!(c.peek(), Some(b'=') | Some(b'/')) {
            // `no-result`: nothing was evaluated.
            continue;
        }
        let mut method_version = None;
        if c.peek() == Some(b'/') {
            c.pos += 1;
            c.skip_cfws()?;
            let at = c.pos;
            method_version = Some(c.digits().ok_or(ParseError::Expected {
                expected: "a method version number after `/`",
                offset: at,
            })?);
            c.skip_cfws()?;
        }
        c.expect(b'=', "`=` after the method name")?;
        c.skip_cfws()?;
        let result_at = c.pos;
        let result = c.keyword().ok_or(ParseError::Expected {
            expected: "a result keyword after `=`",
            offset: result_at,
        })?;
        let mut statement = MethodResult {
            method,
            method_version,
            result,
            reason: None,
            properties: Vec::new(),
            comments: Vec::new(),
        };
        loop {
            let spaced = c.skip_cfws()?;
            match c.peek() {
                None | Some(b';') => break,
                Some(_) if !spaced => {
                    return Err(ParseError::Expected {
                        expected: "a space or `;` after a result",
                        offset: c.pos,
                    })
                }
                Some(_) => {}
            }
            let name_at = c.pos;
            let name = c.keyword().ok_or(ParseError::Expected {
                expected: "`reason=`, a property `ptype.property=value` or `;`",
                offset: name_at,
            })?;
            c.skip_cfws()?;
            match c.peek() {
                Some(b'.') => {
                    c.pos += 1;
                    c.skip_cfws()?;
                    let at = c.pos;
                    let property = c.keyword().ok_or(ParseError::Expected {
                        expected: "a property name after `.`",
                        offset: at,
                    })?;
                    c.skip_cfws()?;
                    c.expect(b'=', "`=` after the property name")?;
                    c.skip_cfws()?;
                    let value = c.pvalue()?;
                    statement.properties.push(Property {
                        ptype: name,
                        property,
                        value,
                    });
                }
                Some(b'=' | b'/') if KNOWN_METHODS.contains(&name.as_str()) => {
                    // The `;` before the next statement is missing.
                    c.pos = name_at;
                    continued = true;
                    break;
                }
                Some(b'=') => {
                    c.pos += 1;
                    c.skip_cfws()?;
                    if name == "reason" {
                        statement.reason = Some(c.value("a reason value")?);
                    } else {
                        let value = c.pvalue()?;
                        statement.properties.push(Property {
                            ptype: name,
                            property: String::new(),
                            value,
                        });
                    }
                }
                _ => {
                    return Err(ParseError::Expected {
                        expected: "`.` or `=` after a property type",
                        offset: c.pos,
                    })
                }
            }
        }
        statement.comments = std::mem::take(&mut c.comments);
        results.push(statement);
    }
    if !saw_statement {
        return Err(ParseError::Expected {
            expected: "`;` and a result, or `; none`, after the authserv-id",
            offset: c.pos,
        });
    }
    Ok(AuthResults {
        authserv_id,
        version,
        results,
    })
}

/// A position in the field value, and the comments passed since the
/// current statement began.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    comments: Vec<String>,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Whether the cursor is at the end, a `;`, white space or a comment.
    fn at_delimiter(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(b';' | b' ' | b'\t' | b'\r' | b'\n' | b'(')
        )
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError::Expected {
                expected,
                offset: self.pos,
            })
        }
    }

    /// Skips folding white space and comments (RFC 5322 §3.2.2 CFWS);
    /// says whether there was any.
    fn skip_cfws(&mut self) -> Result<bool, ParseError> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'(') => self.comment()?,
                _ => return Ok(self.pos > start),
            }
        }
    }

    /// Skips one comment, nested comments and quoted pairs included, and
    /// keeps its text.
    fn comment(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                // A quoted pair: the next byte is literal.
                b'\\' if self.pos < self.s.len() => self.pos += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        let text = &self.s[start + 1..self.pos - 1];
                        self.comments
                            .push(String::from_utf8_lossy(text).trim().to_string());
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(ParseError::UnterminatedComment { offset: start })
    }

    /// An RFC 5321 `Keyword` (letters, digits, `-`; `_` tolerated),
    /// lower-cased.
    fn keyword(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.pos += 1;
        }
        (self.pos > start)
            .then(|| String::from_utf8_lossy(&self.s[start..self.pos]).to_ascii_lowercase())
    }

    fn digits(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        // Saturate rather than fail on absurdly long numbers.
        (self.pos > start).then(|| {
            self.s[start..self.pos].iter().fold(0u32, |n, d| {
                n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
            })
        })
    }

    /// An RFC 2045 `value`: a token or a quoted string.
    fn value(&mut self, expected: &'static str) -> Result<String, ParseError> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let start = self.pos;
        while self.peek().is_some_and(is_token_byte) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(ParseError::Expected {
                expected,
                offset: start,
            });
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// A quoted string, unquoted (quoted pairs resolved).
    fn quoted(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.pos += 1;
                    }
                }
                other => out.push(other),
            }
        }
        Err(ParseError::UnterminatedQuote { offset: start })
    }

    /// A property value (RFC 8601 `pvalue`): a quoted string, optionally
    /// followed by `@domain`, or anything up to white space, a comment or
    /// `;`.
    fn pvalue(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        if self.peek() == Some(b'"') {
            out = self.quoted()?;
            if self.peek() != Some(b'@') {
                return Ok(out);
            }
        }
        let start = self.pos;
        while !self.at_delimiter() {
            self.pos += 1;
        }
        if start == self.pos && out.is_empty() {
            return Err(ParseError::Expected {
                expected: "a property value after `=`",
                offset: start,
            });
        }
        out.push_str(&String::from_utf8_lossy(&self.s[start..self.pos]));
        Ok(out)
    }
}

/// RFC 2045 token characters, plus UTF-8 (RFC 6532 allows U-labels in an
/// authserv-id).
fn is_token_byte(b: u8) -> bool {
    b >= 0x80 || (b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

impl fmt::Display for MethodResult {
    /// The statement as `method=result` plus its properties, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.method, self.result)?;
        for p in &self.properties {
            if p.property.is_empty() {
                write!(f, " {}={}", p.ptype, p.value)?;
            } else {
                write!(f, " {}.{}={}", p.ptype, p.property, p.value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(value: &str) -> AuthResults {
        match parse(value) {
            Ok(r) => r,
            Err(e) => panic!("{value:?} should parse: {e}"),
        }
    }

    fn prop(ptype: &str, property: &str, value: &str) -> Property {
        Property {
            ptype: ptype.into(),
            property: property.into(),
            value: value.into(),
        }
    }

    #[test]
    fn none_with_version() {
        // RFC 8601 Appendix B.2.
        let r = ok(" example.org 1; none");
        assert_eq!(r.authserv_id, "example.org");
        assert_eq!(r.version, Some(1));
        assert!(r.results.is_empty());
        let r = ok("example.org; none");
        assert_eq!(r.version, None);
        assert!(r.results.is_empty());
    }

    #[test]
    fn spf_pass() {
        // RFC 8601 Appendix B.3.
        let r = ok(" example.com; spf=pass smtp.mailfrom=example.net");
        assert_eq!(r.results.len(), 1);
        let spf = &r.results[0];
        assert_eq!((spf.method.as_str(), spf.result.as_str()), ("spf", "pass"));
        assert_eq!(spf.property("smtp", "mailfrom"), Some("example.net"));
        assert_eq!(spf.property("SMTP", "MailFrom"), Some("example.net"));
    }

    #[test]
    fn folded_with_comments_and_several_statements() {
        // RFC 8601 Appendix B.4, folded as it arrives.
        let r = ok(" example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n          spf=pass smtp.mailfrom=example.net");
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.results[0].method, "auth");
        assert_eq!(r.results[0].comments, vec!["cram-md5".to_string()]);
        assert_eq!(
            r.results[0].properties,
            vec![prop("smtp", "auth", "sender@example.net")]
        );
        assert_eq!(r.results[1].method, "spf");
        assert!(r.results[1].comments.is_empty());
    }

    #[test]
    fn reasons_quoted_and_local_part_less_values() {
        // RFC 8601 Appendix B.6.
        let r = ok(" example.com;\r\n   dkim=pass reason=\"good signature\"\r\n     header.i=@mail-router.example.net;\r\n   dkim=fail reason=\"bad signature\"\r\n     header.i=@newyork.example.com");
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.results[0].reason.as_deref(), Some("good signature"));
        assert_eq!(
            r.results[0].property("header", "i"),
            Some("@mail-router.example.net")
        );
        assert_eq!(r.results[1].result, "fail");
        assert_eq!(r.results[1].reason.as_deref(), Some("bad signature"));
    }

    #[test]
    fn gmail_style_field() {
        let r = ok(" mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=sel header.b=Ab/c+d=;\r\n       spf=pass (google.com: domain of x@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=x@example.com;\r\n       dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=example.com");
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].property("header", "b"), Some("Ab/c+d="));
        assert_eq!(r.results[2].method, "dmarc");
        assert_eq!(r.results[2].comments, vec!["p=NONE sp=NONE dis=NONE"]);
        assert_eq!(r.results[2].property("header", "from"), Some("example.com"));
    }

    #[test]
    fn quoted_authserv_id_method_version_and_spaced_property() {
        let r = ok("\"mx.earth.example\" 1 ; dkim / 1 = pass header . d = example.com");
        assert_eq!(r.authserv_id, "mx.earth.example");
        assert_eq!(r.results[0].method_version, Some(1));
        assert_eq!(r.results[0].property("header", "d"), Some("example.com"));
    }

    #[test]
    fn comments_nest_and_escape_anywhere() {
        let r = ok("(lead) mx.example (x (nested \\) paren) y); (c1) spf (c2) = (c3) fail (c4) smtp.mailfrom (c5) = (c6) a@b.example");
        assert_eq!(r.authserv_id, "mx.example");
        let spf = &r.results[0];
        assert_eq!(spf.result, "fail");
        assert_eq!(spf.property("smtp", "mailfrom"), Some("a@b.example"));
        assert_eq!(spf.comments, vec!["c1", "c2", "c3", "c4", "c5", "c6"]);
    }

    #[test]
    fn quoted_local_part_and_case() {
        let r = ok("mx.example; SPF=FAIL smtp.mailfrom=\"john smith\"@example.com; DMARC=Fail Header.From=Example.COM");
        assert_eq!(r.results[0].method, "spf");
        assert_eq!(r.results[0].result, "fail");
        assert_eq!(
            r.results[0].property("smtp", "mailfrom"),
            Some("john smith@example.com")
        );
        assert_eq!(r.results[1].property("header", "from"), Some("Example.COM"));
    }

    #[test]
    fn leniencies_seen_in_the_wild() {
        // Missing `;` between statements (Zoho).
        let r =
            ok("mx.zoho.com;\r\n dkim=pass\r\n spf=pass (zoho.com: ok) smtp.mailfrom=a@b.example;");
        let methods: Vec<&str> = r.results.iter().map(|m| m.method.as_str()).collect();
        assert_eq!(methods, ["dkim", "spf"]);
        // Bare name=value (Microsoft).
        let r = ok("spf.protection.outlook.com; dmarc=fail action=oreject header.from=example.com");
        assert_eq!(r.results[0].properties[0], prop("action", "", "oreject"));
        assert_eq!(r.results[0].property("header", "from"), Some("example.com"));
        // Empty statements and a trailing `;`.
        let r = ok("mx.example;; spf=pass;");
        assert_eq!(r.results.len(), 1);
    }

    #[test]
    fn malformed_fields_are_errors_with_offsets() {
        let cases: &[(&str, ParseError)] = &[
            (
                "",
                ParseError::Expected {
                    expected: "an authserv-id",
                    offset: 0,
                },
            ),
            (
                "   ; spf=pass",
                ParseError::Expected {
                    expected: "an authserv-id",
                    offset: 3,
                },
            ),
            (
                "mx.example",
                ParseError::Expected {
                    expected: "`;` and a result, or `; none`, after the authserv-id",
                    offset: 10,
                },
            ),
            (
                "mx.example spf=pass",
                ParseError::Expected {
                    expected: "`;` before a result",
                    offset: 11,
                },
            ),
            (
                "mx.example; spf",
                ParseError::Expected {
                    expected: "`=` after the method name",
                    offset: 15,
                },
            ),
            (
                "mx.example; spf=",
                ParseError::Expected {
                    expected: "a result keyword after `=`",
                    offset: 16,
                },
            ),
            (
                "mx.example; spf=pass smtp.mailfrom=",
                ParseError::Expected {
                    expected: "a property value after `=`",
                    offset: 35,
                },
            ),
            (
                "mx.example; spf=pass smtp.",
                ParseError::Expected {
                    expected: "a property name after `.`",
                    offset: 26,
                },
            ),
            (
                "mx.example; spf=pass smtp",
                ParseError::Expected {
                    expected: "`.` or `=` after a property type",
                    offset: 25,
                },
            ),
            (
                "mx.example; spf=pass,dkim=pass",
                ParseError::Expected {
                    expected: "a space or `;` after a result",
                    offset: 20,
                },
            ),
            (
                "mx.example 1x; none",
                ParseError::Expected {
                    expected: "a version number or `;`",
                    offset: 11,
                },
            ),
            (
                "mx.example; dkim/=pass",
                ParseError::Expected {
                    expected: "a method version number after `/`",
                    offset: 17,
                },
            ),
            (
                "mx.example; spf=pass (unclosed",
                ParseError::UnterminatedComment { offset: 21 },
            ),
            (
                "mx.example; spf=pass reason=\"open",
                ParseError::UnterminatedQuote { offset: 28 },
            ),
            ("\"mx.example", ParseError::UnterminatedQuote { offset: 0 }),
            (
                "mx.example; =pass",
                ParseError::Expected {
                    expected: "a method name",
                    offset: 12,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).as_ref(), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn truncations_of_a_valid_field_never_panic() {
        let full = "(c) mx.example 1; dkim/1=pass (good (very)) reason=\"a \\\"b\\\"\" header.d=example.com header.b=ab/c+=; spf=fail smtp.mailfrom=\"x y\"@example.com; none";
        for end in 0..=full.len() {
            if full.is_char_boundary(end) {
                let _ = parse(&full[..end]);
            }
        }
    }

    #[test]
    fn deep_nesting_is_linear_not_recursive() {
        let mut hostile = String::from("mx.example; spf=fail ");
        hostile.push_str(&"(".repeat(200_000));
        hostile.push_str(&")".repeat(200_000));
        let r = ok(&hostile);
        assert_eq!(r.results[0].result, "fail");
        let unclosed = format!("mx.example; spf=fail {}", "(".repeat(100_000));
        assert!(matches!(
            parse(&unclosed),
            Err(ParseError::UnterminatedComment { .. })
        ));
        let r = ok(&format!("mx.example {}; none", "9".repeat(1000)));
        assert_eq!(r.version, Some(u32::MAX), "saturates");
    }

    #[test]
    fn an_empty_quoted_authserv_id_is_malformed() {
        // Found by grammar_soup_never_panics: `"";` parsed with an empty id.
        assert!(matches!(
            parse("\"\";"),
            Err(ParseError::Expected {
                expected: "a non-empty authserv-id",
                offset: 0
            })
        ));
        assert!(parse(" \"\" ; spf=pass").is_err());
    }

    #[test]
    fn utf8_authserv_id_and_values() {
        let r = ok("mx.bücher.example; dmarc=fail header.from=bücher.example (ünïcode)");
        assert_eq!(r.authserv_id, "mx.bücher.example");
        assert_eq!(
            r.results[0].property("header", "from"),
            Some("bücher.example")
        );
        assert_eq!(r.results[0].comments, vec!["ünïcode"]);
    }

    #[test]
    fn display_names_method_result_and_properties() {
        let r = ok("mx.example; dmarc=fail action=none header.from=example.com");
        assert_eq!(
            r.results[0].to_string(),
            "dmarc=fail action=none header.from=example.com"
        );
    }

    fn keyword() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,8}"
    }

    fn statement() -> impl Strategy<Value = MethodResult> {
        (
            keyword(),
            keyword(),
            proptest::option::of("[a-z ]{0,10}"),
            proptest::collection::vec((keyword(), keyword(), "[A-Za-z0-9@._/+=-]{1,12}"), 0..4),
        )
            .prop_filter("`none` alone is no-result", |(m, ..)| m != "none")
            .prop_map(|(method, result, reason, props)| MethodResult {
                method,
                method_version: None,
                result,
                reason,
                properties: props
                    .into_iter()
                    .map(|(ptype, property, value)| Property {
                        ptype,
                        property,
                        value,
                    })
                    .collect(),
                comments: Vec::new(),
            })
    }

    /// Writes a field the way RFC 8601 §2.2 spells it, folded.
    fn write(authserv_id: &str, results: &[MethodResult]) -> String {
        let mut out = format!(" {authserv_id}");
        if results.is_empty() {
            out.push_str("; none");
        }
        for r in results {
            out.push_str(&format!(";\r\n\t{}={}", r.method, r.result));
            if let Some(reason) = &r.reason {
                out.push_str(&format!(" reason=\"{reason}\""));
            }
            for p in &r.properties {
                out.push_str(&format!(" {}.{}={}", p.ptype, p.property, p.value));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn written_fields_parse_back(
            id in "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}",
            results in proptest::collection::vec(statement(), 0..5),
        ) {
            // A property keyword equal to a registered method would be read
            // as a missing `;`; that leniency is tested above.
            prop_assume!(results.iter().all(|r| r.properties.iter().all(|p| !KNOWN_METHODS.contains(&p.ptype.as_str()) && p.ptype != "reason")));
            let parsed = parse(&write(&id, &results)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.authserv_id, id);
            prop_assert_eq!(parsed.results, results);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn grammar_soup_never_panics(s in "[a-z0-9 ;=./@()\"\\\\\r\n\t-]{0,120}") {
            if let Ok(r) = parse(&s) {
                prop_assert!(!r.authserv_id.is_empty());
            }
        }
    }
}
