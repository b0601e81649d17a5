//! Endpoint IDs (RFC 9171 §4.2.5.1): the `dtn` and `ipn` URI schemes, their
//! text form and their CBOR encoding.

use core::fmt;
use core::str::FromStr;

use crate::cbor::{put_head, put_text, put_uint, Reader, MAJOR_ARRAY, MAJOR_TEXT, MAJOR_UINT};
use crate::error::{BundleError, ErrorKind, Result};

const SCHEME_DTN: u64 = 1;
const SCHEME_IPN: u64 = 2;

/// A bundle endpoint ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Eid {
    /// The null endpoint `dtn:none`, encoded `[1, 0]`.
    Null,
    /// A `dtn` scheme EID; the string is the scheme-specific part after
    /// `dtn:`, always of the form `//node-name/demux`.
    Dtn(String),
    /// An `ipn` scheme EID `ipn:node.service`, encoded `[2, [node, service]]`.
    Ipn {
        /// Node number.
        node: u64,
        /// Service number; mail uses 25.
        service: u64,
    },
}

impl Eid {
    /// Checks the EID against RFC 9171 §4.2.5.1 (useful for an `Eid` built
    /// by hand rather than parsed).
    /// The error is of kind [`ErrorKind::InvalidEid`], without an offset.
    pub fn validate(&self) -> Result<()> {
        match self {
            Eid::Dtn(ssp) => check_dtn_ssp(ssp).map_err(|why| {
                BundleError::new(ErrorKind::InvalidEid, format!("dtn:{ssp}: {why}"))
            }),
            Eid::Null | Eid::Ipn { .. } => Ok(()),
        }
    }

    /// Appends the CBOR encoding.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_head(out, MAJOR_ARRAY, 2);
        match self {
            Eid::Null => {
                put_uint(out, SCHEME_DTN);
                put_uint(out, 0);
            }
            Eid::Dtn(ssp) => {
                put_uint(out, SCHEME_DTN);
                put_text(out, ssp);
            }
            Eid::Ipn { node, service } => {
                put_uint(out, SCHEME_IPN);
                put_head(out, MAJOR_ARRAY, 2);
                put_uint(out, *node);
                put_uint(out, *service);
            }
        }
    }

    /// Reads one EID; `what` names the field for error messages.
    pub(crate) fn decode(r: &mut Reader<'_>, what: &str) -> Result<Eid> {
        let start = r.pos();
        let invalid =
            |why: String| BundleError::at(ErrorKind::InvalidEid, start, format!("{what}: {why}"));
        let mut items = r.array(what).map_err(|e| eid_kind(e, start))?;
        if let Some(n) = items.declared() {
            if n != 2 {
                return Err(invalid(format!("an EID is an array of 2 items, found {n}")));
            }
        }
        items
            .need(r, what, "URI scheme code")
            .map_err(|e| eid_kind(e, start))?;
        let scheme = r.uint(what).map_err(|e| eid_kind(e, start))?;
        items
            .need(r, what, "scheme-specific part")
            .map_err(|e| eid_kind(e, start))?;
        let eid = match scheme {
            SCHEME_DTN => match r.peek().map(|b| b >> 5) {
                Some(MAJOR_UINT) => {
                    let v = r.uint(what)?;
                    if v != 0 {
                        return Err(invalid(format!(
                            "dtn scheme-specific part is the integer {v}; only 0 (dtn:none) is allowed"
                        )));
                    }
                    Eid::Null
                }
                Some(MAJOR_TEXT) => {
                    let ssp = r.text(what)?;
                    check_dtn_ssp(ssp).map_err(|why| invalid(format!("dtn:{ssp}: {why}")))?;
                    Eid::Dtn(ssp.to_owned())
                }
                Some(_) => {
                    return Err(invalid(
                        "dtn scheme-specific part must be a text string or 0".into(),
                    ))
                }
                None => {
                    return Err(BundleError::at(
                        ErrorKind::Truncated,
                        r.pos(),
                        format!("input ends inside {what}"),
                    ))
                }
            },
            SCHEME_IPN => {
                // RFC 9171 §4.2.5.1.2: an array of exactly two unsigned
                // integers. (RFC 9758's three-element form is not accepted.)
                let mut nums = r.array(what).map_err(|e| eid_kind(e, start))?;
                let mut v = [0u64; 2];
                let mut n = 0;
                while nums.more(r, what)? {
                    if n == 2 {
                        return Err(invalid(
                            "ipn scheme-specific part is [node, service]; found more than 2 numbers (RFC 9758 three-element EIDs are not supported)".into(),
                        ));
                    }
                    v[n] = r.uint(what).map_err(|e| eid_kind(e, start))?;
                    n += 1;
                }
                if n != 2 {
                    return Err(invalid(format!(
                        "ipn scheme-specific part is [node, service], found {n} numbers"
                    )));
                }
                Eid::Ipn {
                    node: v[0],
                    service: v[1],
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown URI scheme code {other} (1 = dtn, 2 = ipn)"
                )))
            }
        };
        items.end(r, what).map_err(|e| eid_kind(e, start))?;
        Ok(eid)
    }
}

/// Structural problems inside an EID are `invalid-eid`; truncation stays.
fn eid_kind(mut e: BundleError, start: usize) -> BundleError {
    if e.kind == ErrorKind::MalformedCbor {
        e.kind = ErrorKind::InvalidEid;
        e.offset = e.offset.or(Some(start as u64));
    }
    e
}

/// `dtn-hier-part = "//" node-name name-delim demux` (RFC 9171 §4.2.5.1.1),
/// `node-name = reg-name` (RFC 3986), `demux = *VCHAR`.
fn check_dtn_ssp(ssp: &str) -> core::result::Result<(), &'static str> {
    let rest = ssp
        .strip_prefix("//")
        .ok_or("scheme-specific part must be \"none\" or start with \"//\"")?;
    let slash = rest
        .find('/')
        .ok_or("a \"/\" must follow the node name (dtn://node/demux)")?;
    let (node, demux) = (&rest.as_bytes()[..slash], &rest.as_bytes()[slash + 1..]);
    if node.is_empty() {
        return Err("node name is empty");
    }
    let mut i = 0;
    while i < node.len() {
        let c = node[i];
        if c == b'%' {
            let hex = node
                .get(i + 1..i + 3)
                .ok_or("incomplete percent-encoding in node name")?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("bad percent-encoding in node name");
            }
            i += 3;
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c);
        if !ok {
            return Err("node name has a character reg-name does not allow");
        }
        i += 1;
    }
    if !demux.iter().all(|c| (0x21..=0x7e).contains(c)) {
        return Err("demux must be visible US-ASCII characters (VCHAR)");
    }
    Ok(())
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Eid::Null => f.write_str("dtn:none"),
            Eid::Dtn(ssp) => write!(f, "dtn:{ssp}"),
            Eid::Ipn { node, service } => write!(f, "ipn:{node}.{service}"),
        }
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for Eid {
    type Err = BundleError;

    /// Parses `dtn:none`, `dtn://node/demux` or `ipn:node.service`
    /// (RFC 9171 §4.2.5.1; RFC 9758's `ipn:allocator.node.service` is refused).
    fn from_str(s: &str) -> Result<Eid> {
        let bad = |why: &str| BundleError::new(ErrorKind::InvalidEid, format!("{s:?}: {why}"));
        if let Some(ssp) = s.strip_prefix("dtn:") {
            if ssp == "none" {
                return Ok(Eid::Null);
            }
            check_dtn_ssp(ssp).map_err(bad)?;
            return Ok(Eid::Dtn(ssp.to_owned()));
        }
        if let Some(ssp) = s.strip_prefix("ipn:") {
            let parts: Vec<&str> = ssp.split('.').collect();
            let nums: Option<Vec<u64>> = parts.iter().map(|p| digits(p)).collect();
            let nums =
                nums.ok_or_else(|| bad("ipn numbers must be decimal digits that fit in 64 bits"))?;
            return match nums[..] {
                [node, service] => Ok(Eid::Ipn { node, service }),
                _ => Err(bad("expected ipn:node.service")),
            };
        }
        Err(bad("scheme must be dtn: or ipn:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Eid) -> Vec<u8> {
        let mut v = Vec::new();
        e.encode(&mut v);
        v
    }

    #[test]
    fn text_forms_round_trip() {
        for s in [
            "dtn:none",
            "ipn:2.25",
            "dtn://node/svc",
            "dtn://earth-gw/",
            "dtn://n/~mail/x",
            "ipn:0.0",
        ] {
            let e: Eid = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
            let bytes = enc(&e);
            let mut r = Reader::new(&bytes);
            assert_eq!(Eid::decode(&mut r, "eid").unwrap(), e);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn encodings_match_rfc_9171() {
        assert_eq!(enc(&Eid::Null), [0x82, 0x01, 0x00]);
        assert_eq!(
            enc(&"ipn:2.25".parse().unwrap()),
            [0x82, 0x02, 0x82, 0x02, 0x18, 0x19]
        );
        assert_eq!(
            enc(&"dtn://a/b".parse().unwrap()),
            [0x82, 0x01, 0x65, b'/', b'/', b'a', b'/', b'b']
        );
    }

    #[test]
    fn rfc_9758_three_part_ipn_is_refused() {
        assert_eq!(
            "ipn:1.2.25".parse::<Eid>().unwrap_err().kind,
            ErrorKind::InvalidEid
        );
        let bytes = [0x82, 0x02, 0x83, 0x01, 0x02, 0x18, 0x19];
        let e = Eid::decode(&mut Reader::new(&bytes), "eid").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidEid);
    }

    #[test]
    fn bad_text_forms() {
        for s in [
            "dtn:",
            "dtn:node/x",
            "dtn://",
            "dtn:///x",
            "dtn://node",
            "dtn://no de/x",
            "dtn://n/a b",
            "ipn:1",
            "ipn:1.2.3.4",
            "ipn:+1.2",
            "ipn:1.x",
            "ipn:18446744073709551616.1",
            "http://x/",
            "ipn:1.2.3",
        ] {
            let e = s.parse::<Eid>().unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidEid, "{s}");
        }
    }

    #[test]
    fn bad_encodings_are_invalid_eid() {
        let cases: &[&[u8]] = &[
            &[0x82, 0x01, 0x01],                         // dtn integer other than 0
            &[0x82, 0x01, 0x64, b'n', b'o', b'n', b'e'], // "none" as text
            &[0x82, 0x01, 0x41, 0x00],                   // byte string ssp
            &[0x82, 0x03, 0x00],                         // unknown scheme
            &[0x83, 0x01, 0x00, 0x00],                   // three items
            &[0x82, 0x02, 0x81, 0x01],                   // ipn with one number
            &[0x82, 0x02, 0x82, 0x01, 0x41, 0x00],       // ipn service not uint
            &[0x01],                                     // not an array
        ];
        for c in cases {
            let e = Eid::decode(&mut Reader::new(c), "eid").unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidEid, "{c:02x?}: {e}");
        }
    }
}
