//! Domain names (RFC 1035 §2.3.4, §3.1): validated on construction, kept in
//! uncompressed wire form, compared case-insensitively (RFC 4343 §3).

use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;

use crate::error::NameError;

/// Longest label, in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name in wire form, length octets and the root label included
/// (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;

/// A fully qualified domain name: 0 to 127 labels of 1..=63 octets, at most
/// 255 octets in wire form.
///
/// Equality and hashing ignore ASCII case (RFC 4343 §3), so a response that
/// echoes `_BSMTP._https.Moon.Example` matches a query for
/// `_bsmtp._https.moon.example`. `Display` writes the presentation form
/// with a trailing dot, escaping `.`, `\` and non-printable octets that may
/// arrive in names read off the wire (RFC 4343 §2.1).
#[derive(Clone)]
pub struct Name {
    /// Uncompressed wire form: length-prefixed labels ending in the root
    /// label `0`.
    wire: Vec<u8>,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// Parses a name in the usual dotted form (`moon.example` or
    /// `moon.example.`; `.` is the root).
    ///
    /// The name must be ASCII: internationalised names are converted to
    /// A-labels by the caller (IDNA, RFC 5891), so `ü` is a
    /// [`NameError::NonAscii`]. Spaces, control characters and `\` are
    /// refused; master-file escapes are not supported.
    pub fn parse(text: &str) -> Result<Name, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text == "." {
            return Ok(Name::root());
        }
        let body = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(body.len() + 2);
        let mut position = 0;
        for label in body.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel {
                    name: text.to_owned(),
                    position,
                });
            }
            for (i, found) in label.char_indices() {
                let at = position + i;
                if !found.is_ascii() {
                    return Err(NameError::NonAscii {
                        name: text.to_owned(),
                        position: at,
                        found,
                    });
                }
                if !found.is_ascii_graphic() || found == '\\' {
                    return Err(NameError::InvalidCharacter {
                        name: text.to_owned(),
                        position: at,
                        found,
                    });
                }
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong {
                    name: text.to_owned(),
                    position,
                    length: label.len(),
                });
            }
            // Length checked against MAX_LABEL_LEN just above.
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
            position += label.len() + 1;
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong {
                name: text.to_owned(),
                length: wire.len(),
            });
        }
        Ok(Name { wire })
    }

    /// Wraps wire bytes the message reader has already validated.
    pub(crate) fn from_validated_wire(wire: Vec<u8>) -> Name {
        debug_assert!(wire.len() <= MAX_NAME_LEN && wire.last() == Some(&0));
        Name { wire }
    }

    /// `label.self`, checked against the 255-octet limit.
    pub(crate) fn prepend(&self, label: &str) -> Result<Name, NameError> {
        let child = Name::parse(label)?;
        let mut wire = child.wire;
        wire.pop();
        wire.extend_from_slice(&self.wire);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong {
                name: format!("{label}.{self}"),
                length: wire.len(),
            });
        }
        Ok(Name { wire })
    }

    /// The name in uncompressed wire form (RFC 1035 §3.1), root label
    /// included.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// The labels, leftmost first, without the root label.
    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    /// Whether this is the root name `.`.
    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// Whether `self` is `ancestor` or lies below it (case-insensitively).
    pub fn is_subdomain_of(&self, ancestor: &Name) -> bool {
        let mine: Vec<&[u8]> = self.labels().collect();
        let theirs: Vec<&[u8]> = ancestor.labels().collect();
        theirs.len() <= mine.len()
            && mine[mine.len() - theirs.len()..]
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

/// Iterator over the labels of a [`Name`], from [`Name::labels`].
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            self.rest = &[];
            return None;
        }
        let (label, rest) = tail.split_at(len);
        self.rest = rest;
        Some(label)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        // Length octets are below 64, so ASCII case folding leaves them alone.
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in &self.wire {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Name, NameError> {
        Name::parse(text)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// The owner name of deepmail's gateway URI records: `_bsmtp._https.<domain>`
/// (RFC 7553 §4.1 `_service._proto` naming; the `_https` label says the
/// URIs are fetched over HTTPS).
///
/// `domain` is the far gateway's mail domain, e.g. `moon.example`, already in
/// A-label form.
///
/// ```
#[doc = include_str!("../examples/service_name.rs")]
/// ```
pub fn bsmtp_service_name(domain: &str) -> Result<Name, NameError> {
    let domain = Name::parse(domain)?;
    domain.prepend("_bsmtp._https").map_err(|e| match e {
        NameError::NameTooLong { length, .. } => NameError::NameTooLong {
            name: format!("_bsmtp._https.{domain}"),
            length,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let n = Name::parse("moon.example").unwrap();
        assert_eq!(n.as_wire(), b"\x04moon\x07example\x00");
        assert_eq!(n.to_string(), "moon.example.");
        assert_eq!(Name::parse("moon.example.").unwrap(), n);
        assert_eq!(Name::parse(".").unwrap(), Name::root());
        assert_eq!(Name::root().to_string(), ".");
        assert_eq!(n.labels().count(), 2);
    }

    #[test]
    fn compares_case_insensitively_and_hashes_alike() {
        use std::collections::hash_map::DefaultHasher;
        let a = Name::parse("Moon.EXAMPLE").unwrap();
        let b = Name::parse("moon.example").unwrap();
        assert_eq!(a, b);
        let h = |n: &Name| {
            let mut s = DefaultHasher::new();
            n.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&b));
        assert_ne!(a, Name::parse("moon.example.org").unwrap());
    }

    #[test]
    fn rejects_bad_names_with_codes() {
        let code = |s: &str| Name::parse(s).unwrap_err().code();
        assert_eq!(code(""), "empty-name");
        assert_eq!(code("a..b"), "empty-label");
        assert_eq!(code(".a"), "empty-label");
        assert_eq!(code("a.b.."), "empty-label");
        assert_eq!(code(&"x".repeat(64)), "label-too-long");
        assert_eq!(code("mönd.example"), "non-ascii");
        assert_eq!(code("moon example"), "invalid-character");
        assert_eq!(code("moon\\.example"), "invalid-character");
        // 4 labels of 63 + 4 length octets + root = 257 octets.
        let long = [&"a".repeat(63)[..]; 4].join(".");
        assert_eq!(code(&long), "name-too-long");
        assert!(Name::parse(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn non_ascii_error_names_the_fix() {
        let e = Name::parse("bücher.example").unwrap_err();
        assert!(e.to_string().contains("A-labels"), "{e}");
        assert!(matches!(
            e,
            NameError::NonAscii {
                position: 1,
                found: 'ü',
                ..
            }
        ));
    }

    #[test]
    fn name_of_exactly_255_octets_is_accepted() {
        // 3 × (1 + 63) + (1 + 61) + 1 = 255.
        let name = format!("{a}.{a}.{a}.{b}", a = "a".repeat(63), b = "b".repeat(61));
        assert_eq!(Name::parse(&name).unwrap().as_wire().len(), 255);
        assert_eq!(
            Name::parse(&format!("{name}b")).unwrap_err().code(),
            "name-too-long"
        );
    }

    #[test]
    fn bsmtp_service_name_prefixes_and_checks_length() {
        let n = bsmtp_service_name("moon.example").unwrap();
        assert_eq!(n.as_wire(), b"\x06_bsmtp\x06_https\x04moon\x07example\x00");
        // 14 octets of prefix push a 250-octet domain over the limit.
        let domain = format!("{a}.{a}.{a}.{b}", a = "a".repeat(63), b = "b".repeat(56));
        assert_eq!(Name::parse(&domain).unwrap().as_wire().len(), 250);
        let e = bsmtp_service_name(&domain).unwrap_err();
        assert_eq!(e.code(), "name-too-long");
        assert!(e.to_string().contains("_bsmtp._https."), "{e}");
        assert_eq!(bsmtp_service_name("").unwrap_err().code(), "empty-name");
    }

    #[test]
    fn subdomain_relation() {
        let n = Name::parse("_bsmtp._https.moon.example").unwrap();
        assert!(n.is_subdomain_of(&Name::parse("MOON.example").unwrap()));
        assert!(n.is_subdomain_of(&n));
        assert!(n.is_subdomain_of(&Name::root()));
        assert!(!n.is_subdomain_of(&Name::parse("oon.example").unwrap()));
        assert!(!Name::root().is_subdomain_of(&n));
    }

    #[test]
    fn display_escapes_wire_octets() {
        let n = Name::from_validated_wire(b"\x03a.b\x02\x00\\\x00".to_vec());
        assert_eq!(n.to_string(), "a\\.b.\\000\\\\.");
    }
}
