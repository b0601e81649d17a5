//! The URI resource record (RFC 7553): RDATA decoding (§4.5) and the record
//! type handed to callers.

use crate::error::DnsError;

/// RR type code of URI (RFC 7553 §4.5, IANA "Resource Record (RR) TYPEs").
pub const TYPE_URI: u16 = 256;

/// One URI resource record: `owner TTL IN URI priority weight "target"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UriRecord {
    /// Lower is tried first (RFC 7553 §4.3).
    pub priority: u16,
    /// Relative share among records of equal priority (RFC 7553 §4.4).
    pub weight: u16,
    /// The URI: valid UTF-8, non-empty, starting with `scheme:`
    /// (RFC 3986 §3.1), no whitespace or control characters.
    pub target: String,
    /// Time to live in seconds (RFC 1035 §3.2.1; values with the top bit
    /// set are read as 0, RFC 2181 §8).
    pub ttl: u32,
}

impl UriRecord {
    /// The scheme of the target, as written (e.g. `https`).
    pub fn scheme(&self) -> &str {
        scheme_of(&self.target).unwrap_or("")
    }
}

/// Decodes URI RDATA (RFC 7553 §4.5): 2-octet priority, 2-octet weight and
/// the target URI as all remaining octets (not a length-prefixed
/// `<character-string>`).
///
/// Strict: the target must be non-empty (so RDATA is at least 5 octets),
/// valid UTF-8, free of whitespace and control characters, and start with a
/// scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`, RFC 3986
/// §3.1). Error offsets are relative to `rdata`.
///
/// ```
#[doc = include_str!("../examples/parse_uri_rdata.rs")]
/// ```
pub fn parse_uri_rdata(rdata: &[u8]) -> Result<(u16, u16, String), DnsError> {
    parse_uri_rdata_at(rdata, 0)
}

/// [`parse_uri_rdata`] with error offsets shifted by `base`, the RDATA's
/// offset in the message.
pub(crate) fn parse_uri_rdata_at(
    rdata: &[u8],
    base: usize,
) -> Result<(u16, u16, String), DnsError> {
    let invalid = |offset: usize, reason| DnsError::InvalidUri {
        offset: base + offset,
        reason,
    };
    let [p0, p1, w0, w1, target @ ..] = rdata else {
        return Err(DnsError::malformed(
            base + rdata.len(),
            "URI RDATA shorter than its 4-octet priority and weight (RFC 7553 §4.5)",
        ));
    };
    if target.is_empty() {
        // Structurally short: URI RDATA is at least 5 octets, since the
        // Target MUST NOT be empty (RFC 7553 §4.5).
        return Err(DnsError::malformed(
            base + 4,
            "URI RDATA of 4 octets: the target after priority and weight is empty (RFC 7553 §4.5)",
        ));
    }
    let target = core::str::from_utf8(target)
        .map_err(|e| invalid(4 + e.valid_up_to(), "target is not valid UTF-8"))?;
    if let Some(i) = target.find(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            4 + i,
            "target contains whitespace or a control character",
        ));
    }
    if scheme_of(target).is_none() {
        return Err(invalid(
            4,
            "target has no scheme (expected e.g. \"https:\" at the start)",
        ));
    }
    Ok((
        u16::from_be_bytes([*p0, *p1]),
        u16::from_be_bytes([*w0, *w1]),
        target.to_owned(),
    ))
}

/// The scheme of `uri` if it starts with a syntactically valid one
/// (RFC 3986 §3.1).
pub(crate) fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdata(p: u16, w: u16, target: &[u8]) -> Vec<u8> {
        let mut v = p.to_be_bytes().to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(target);
        v
    }

    #[test]
    fn rfc7553_examples() {
        // §4.1 examples, and the Net::DNS wire vector for the first one.
        let wire = [
            0x00, 0x0A, 0x00, 0x01, 0x66, 0x74, 0x70, 0x3A, 0x2F, 0x2F, 0x66, 0x74, 0x70, 0x31,
            0x2E, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x2E, 0x63, 0x6F, 0x6D, 0x2F, 0x70,
            0x75, 0x62, 0x6C, 0x69, 0x63,
        ];
        assert_eq!(
            parse_uri_rdata(&wire).unwrap(),
            (10, 1, "ftp://ftp1.example.com/public".to_owned())
        );
        assert_eq!(
            parse_uri_rdata(&rdata(10, 1, b"http://www.example.com/path")).unwrap(),
            (10, 1, "http://www.example.com/path".to_owned())
        );
        // deepmail's own record.
        assert_eq!(
            parse_uri_rdata(&rdata(10, 1, b"https://gw.moon.example/inboundmail")).unwrap(),
            (10, 1, "https://gw.moon.example/inboundmail".to_owned())
        );
    }

    #[test]
    fn target_is_not_a_character_string() {
        // A length octet in front would be part of the target (and here make
        // it invalid): the target is the rest of the RDATA, as is.
        let e = parse_uri_rdata(&rdata(1, 1, b"\x13https://a.example/x")).unwrap_err();
        assert_eq!(e.code(), "invalid-uri");
        // A target longer than 255 octets is fine.
        let long = format!("https://a.example/{}", "x".repeat(400));
        assert_eq!(
            parse_uri_rdata(&rdata(1, 1, long.as_bytes())).unwrap().2,
            long
        );
    }

    #[test]
    fn utf8_targets_are_accepted() {
        let (_, _, t) =
            parse_uri_rdata(&rdata(1, 2, "https://bücher.example/ü".as_bytes())).unwrap();
        assert_eq!(t, "https://bücher.example/ü");
    }

    #[test]
    fn strictness() {
        let check = |data: &[u8], code: &str, offset: usize| {
            let e = parse_uri_rdata(data).unwrap_err();
            assert_eq!(e.code(), code, "{data:?}: {e}");
            match e {
                DnsError::Malformed { offset: o, .. } | DnsError::InvalidUri { offset: o, .. } => {
                    assert_eq!(o, offset, "{data:?}: {e}")
                }
                _ => unreachable!(),
            }
        };
        check(b"", "malformed", 0);
        check(b"\x00\x01\x00", "malformed", 3);
        check(b"\x00\x01\x00\x01", "malformed", 4);
        check(&rdata(1, 1, b"https://a.example/\xff"), "invalid-uri", 22);
        check(
            &rdata(1, 1, b"gw.moon.example/inboundmail"),
            "invalid-uri",
            4,
        );
        check(&rdata(1, 1, b":nothing"), "invalid-uri", 4);
        check(&rdata(1, 1, b"1https://x"), "invalid-uri", 4);
        check(&rdata(1, 1, b"ht tps://x"), "invalid-uri", 6);
        check(&rdata(1, 1, b"https://x\r\n"), "invalid-uri", 13);
        assert!(parse_uri_rdata(&rdata(1, 1, b"x:")).is_ok());
        assert!(parse_uri_rdata(&rdata(1, 1, b"urn:ietf:rfc:7553")).is_ok());
        assert!(parse_uri_rdata(&rdata(1, 1, b"coap+tcp://x")).is_ok());
    }

    #[test]
    fn scheme_accessor() {
        let r = UriRecord {
            priority: 1,
            weight: 1,
            target: "HTTPS://gw.moon.example/".into(),
            ttl: 60,
        };
        assert_eq!(r.scheme(), "HTTPS");
    }
}
