//! Errors with stable classes: [`DnsError`] for responses and RDATA,
//! [`NameError`] for domain names given by the caller. Every variant has a
//! kebab-case [`DnsError::code`] that callers and logs can match on; the
//! `Display` text names the position, the RFC section and, where there is
//! one, the fix.

/// A DNS response that gives no usable URI records, or is not a response to
/// our query at all.
///
/// The DNS outcome classes (`nxdomain`, `no-data`, `servfail`, `refused`,
/// `other-rcode`) are answers from the server, not defects in the message;
/// `truncated` asks the caller to repeat the query over TCP; the others mean
/// the datagram must be dropped (`id-mismatch`, `not-a-response`,
/// `question-mismatch` may be spoofed or stray packets: keep waiting for
/// the real one) or the message is broken (`malformed`, `invalid-uri`,
/// `cname-chain`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// RCODE 3 (Name Error): the name does not exist (RFC 1035 §4.1.1,
    /// RFC 2308 §2.1).
    #[error("nxdomain: the name does not exist (RCODE 3, RFC 2308 §2.1){}", NegTtl(*.negative_ttl))]
    NxDomain {
        /// How long the negative answer may be cached: the smaller of the
        /// authority SOA's TTL and its MINIMUM field (RFC 2308 §5), `None`
        /// when the response carries no SOA for the name.
        negative_ttl: Option<u32>,
    },
    /// NOERROR, but no URI RR for the name (RFC 2308 §2.2 NODATA).
    #[error("no-data: the name exists but has no URI records (RFC 2308 §2.2){}", NegTtl(*.negative_ttl))]
    NoData {
        /// As for [`DnsError::NxDomain`]: min(SOA TTL, SOA MINIMUM) from the
        /// authority section (RFC 2308 §5), `None` without a SOA.
        negative_ttl: Option<u32>,
    },
    /// RCODE 2 (Server Failure).
    #[error("servfail: the server could not answer (RCODE 2, RFC 1035 §4.1.1); retry later or ask another server")]
    ServFail,
    /// RCODE 5 (Refused).
    #[error("refused: the server refuses to answer (RCODE 5, RFC 1035 §4.1.1); ask a resolver that serves this client")]
    Refused,
    /// Any other non-zero RCODE, including FORMERR (1), NOTIMP (4) and the
    /// 12-bit extended codes of RFC 6891 §6.1.3 (e.g. BADVERS, 16).
    #[error("other-rcode: the server answered RCODE {rcode} (RFC 1035 §4.1.1, RFC 6891 §6.1.3)")]
    OtherRcode {
        /// The full RCODE: the header's 4 bits plus the OPT record's upper
        /// 8 bits when the response has one.
        rcode: u16,
    },
    /// TC is set: the answer did not fit and the rest is not to be used
    /// (RFC 2181 §9). Repeat the query over TCP ([`crate::frame_tcp`]).
    #[error("truncated: the response has TC set (RFC 1035 §4.1.1, RFC 2181 §9); repeat the query over TCP")]
    Truncated,
    /// The response ID is not the query's (RFC 1035 §4.1.1, RFC 5452 §4.3).
    #[error("id-mismatch: response ID {found} is not query ID {expected} (RFC 5452 §4.3); drop it and keep waiting")]
    IdMismatch {
        /// The ID of the query.
        expected: u16,
        /// The ID in the response.
        found: u16,
    },
    /// The question section does not echo the query's name, type and
    /// class IN (RFC 5452 §4.3).
    #[error("question-mismatch: {detail} (RFC 5452 §4.3); drop the response and keep waiting")]
    QuestionMismatch {
        /// What differs.
        detail: String,
    },
    /// Not a response to a standard query: QR is clear, or the OPCODE is
    /// not QUERY, which a response copies from its query (RFC 1035 §4.1.1).
    #[error("not-a-response: {reason} (RFC 1035 §4.1.1); drop the message")]
    NotAResponse {
        /// Which of the two it was.
        reason: &'static str,
    },
    /// The message is not well formed (RFC 1035 §4).
    #[error("malformed at byte {offset}: {reason} (RFC 1035 §4)")]
    Malformed {
        /// Byte offset into the message (or RDATA for
        /// [`crate::parse_uri_rdata`]) where the problem is.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A URI RR whose target is not a usable URI (RFC 7553 §4.5).
    #[error("invalid-uri at byte {offset}: {reason} (RFC 7553 §4.5, RFC 3986 §3.1)")]
    InvalidUri {
        /// Byte offset of the RDATA (relative to the RDATA for
        /// [`crate::parse_uri_rdata`], to the message for
        /// [`crate::parse_response`]).
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CNAME records in the answer loop, fork or chain longer than
    /// [`crate::MAX_CNAME_CHAIN`] (RFC 1034 §3.6.2).
    #[error("cname-chain: {detail} (RFC 1034 §3.6.2, RFC 2181 §10.1)")]
    CnameChain {
        /// What is wrong with the chain.
        detail: String,
    },
}

impl DnsError {
    /// The stable error class, e.g. `"nxdomain"` or `"malformed"`.
    pub fn code(&self) -> &'static str {
        match self {
            DnsError::NxDomain { .. } => "nxdomain",
            DnsError::NoData { .. } => "no-data",
            DnsError::ServFail => "servfail",
            DnsError::Refused => "refused",
            DnsError::OtherRcode { .. } => "other-rcode",
            DnsError::Truncated => "truncated",
            DnsError::IdMismatch { .. } => "id-mismatch",
            DnsError::QuestionMismatch { .. } => "question-mismatch",
            DnsError::NotAResponse { .. } => "not-a-response",
            DnsError::Malformed { .. } => "malformed",
            DnsError::InvalidUri { .. } => "invalid-uri",
            DnsError::CnameChain { .. } => "cname-chain",
        }
    }

    /// The negative-caching TTL of an `nxdomain` or `no-data` answer
    /// (RFC 2308 §5); `None` for other errors or without an authority SOA.
    pub fn negative_ttl(&self) -> Option<u32> {
        match self {
            DnsError::NxDomain { negative_ttl } | DnsError::NoData { negative_ttl } => {
                *negative_ttl
            }
            _ => None,
        }
    }

    pub(crate) fn malformed(offset: usize, reason: &'static str) -> Self {
        DnsError::Malformed { offset, reason }
    }
}

/// Formats the optional negative TTL of a negative answer.
struct NegTtl(Option<u32>);

impl core::fmt::Display for NegTtl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(ttl) => write!(f, "; cache for {ttl} s"),
            None => f.write_str("; no SOA, do not cache"),
        }
    }
}

/// A domain name the caller gave that cannot be sent in a query
/// (RFC 1035 §2.3.4, §3.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The empty string (write `.` for the root).
    #[error("empty-name: the domain name is empty; give e.g. \"moon.example\"")]
    Empty,
    /// Two dots in a row, or a leading dot.
    #[error(
        "empty-label: {name:?} has an empty label at character {position}; remove the extra dot"
    )]
    EmptyLabel {
        /// The name as given.
        name: String,
        /// Character offset of the empty label.
        position: usize,
    },
    /// A label over 63 octets (RFC 1035 §2.3.4).
    #[error("label-too-long: {name:?} has a {length}-octet label at character {position}; labels hold at most 63 (RFC 1035 §2.3.4)")]
    LabelTooLong {
        /// The name as given.
        name: String,
        /// Character offset of the label.
        position: usize,
        /// Its length in octets.
        length: usize,
    },
    /// More than 255 octets in wire form (RFC 1035 §2.3.4).
    #[error("name-too-long: {name:?} is {length} octets in wire form; names hold at most 255 (RFC 1035 §2.3.4)")]
    NameTooLong {
        /// The name as given (possibly with a prefix the crate added, such
        /// as `_bsmtp._https.`).
        name: String,
        /// Its wire length in octets.
        length: usize,
    },
    /// A character outside ASCII: internationalised names must be converted
    /// to A-labels (`xn--…`, RFC 5891 §5) by the caller first.
    #[error("non-ascii: {name:?} has non-ASCII {found:?} at character {position}; convert the name to A-labels (punycode, RFC 5891) first")]
    NonAscii {
        /// The name as given.
        name: String,
        /// Character offset.
        position: usize,
        /// The character.
        found: char,
    },
    /// Whitespace, a control character or a backslash (escapes of the
    /// master-file format are not supported).
    #[error("invalid-character: {name:?} has {found:?} at character {position}; domain names here are printable ASCII without spaces or backslashes")]
    InvalidCharacter {
        /// The name as given.
        name: String,
        /// Character offset.
        position: usize,
        /// The character.
        found: char,
    },
}

impl NameError {
    /// The stable error class, e.g. `"non-ascii"`.
    pub fn code(&self) -> &'static str {
        match self {
            NameError::Empty => "empty-name",
            NameError::EmptyLabel { .. } => "empty-label",
            NameError::LabelTooLong { .. } => "label-too-long",
            NameError::NameTooLong { .. } => "name-too-long",
            NameError::NonAscii { .. } => "non-ascii",
            NameError::InvalidCharacter { .. } => "invalid-character",
        }
    }
}
