//! Endpoint IDs (RFC 5050 §4.4; RFC 6260 compressed ipn EIDs).

use crate::*;

/// Longest scheme name or SSP RFC 5050 §4.4 allows, in bytes.
pub const MAX_EID_PART: usize = 1023;

/// An endpoint ID: a URI, `scheme:ssp`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Eid {
    pub scheme: String,
    pub ssp: String,
}

impl Eid {
    /// `dtn:none`, the null endpoint.
    pub fn null() -> Eid {
        Eid {
            scheme: "dtn".into(),
            ssp: "none".into(),
        }
    }

    pub fn is_null(&self) -> bool {
        self.scheme == "dtn" && self.ssp == "none"
    }

    /// `ipn:node.service` (RFC 6260).
    pub fn ipn(node: u64, service: u64) -> Eid {
        Eid {
            scheme: "ipn".into(),
            ssp: format!("{node}.{service}"),
        }
    }

    /// Node and service numbers of an `ipn` EID whose SSP is `N.S`.
    pub fn ipn_numbers(&self) -> Option<(u64, u64)> {
        if self.scheme != "ipn" {
            return None;
        }
        let (n, s) = self.ssp.split_once('.')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(n) || !digits(s) {
            return None;
        }
        Some((n.parse().ok()?, s.parse().ok()?))
    }

    /// Checks a scheme name and SSP as they may appear in a dictionary:
    /// a URI scheme (RFC 3986 §3.1), a non-empty SSP of printable
    /// characters without NUL, each at most 1023 bytes; `ipn` SSPs must be
    /// `node.service`.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let s = self.scheme.as_bytes();
        if s.is_empty() || !s[0].is_ascii_alphabetic() {
            return Err(format!(
                "scheme `{}` does not start with a letter",
                self.scheme
            ));
        }
        if !s
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(format!(
                "scheme `{}` has characters RFC 3986 §3.1 does not allow",
                self.scheme
            ));
        }
        if s.len() > MAX_EID_PART || self.ssp.len() > MAX_EID_PART {
            return Err(format!(
                "scheme and SSP are limited to {MAX_EID_PART} bytes each (§4.4)"
            ));
        }
        if self.ssp.is_empty() {
            return Err("empty scheme-specific part".into());
        }
        if self.ssp.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return Err("SSP contains NUL or control characters".into());
        }
        if self.scheme == "ipn" && self.ipn_numbers().is_none() {
            return Err(format!(
                "`ipn:{}` is not ipn:NODE.SERVICE (RFC 6260)",
                self.ssp
            ));
        }
        Ok(())
    }
}

impl std::str::FromStr for Eid {
    type Err = Error;

    fn from_str(text: &str) -> Result<Eid> {
        let Some((scheme, ssp)) = text.split_once(':') else {
            return Err(Error::new(
                "invalid-eid",
                format!("`{text}` is not scheme:ssp"),
            ));
        };
        let eid = Eid {
            scheme: scheme.into(),
            ssp: ssp.into(),
        };
        eid.check()
            .map_err(|e| Error::new("invalid-eid", format!("`{text}`: {e}")))?;
        Ok(eid)
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.ssp)
    }
}
