//! Errors: one stable class per problem (the `fragmenter` codes of
//! `vectors/README.md`), the byte offset it was found at, and a sentence that
//! names the RFC 9171 section and the fix.

use core::fmt;

/// What went wrong, as a stable class. [`ErrorKind::code`] gives the
/// kebab-case name shared with the WIT `stage-error.code` and the vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not well-formed CBOR, or not the structure RFC 9171 §4 requires.
    MalformedCbor,
    /// The input ends before the bundle does.
    Truncated,
    /// Bytes follow the bundle's closing break.
    TrailingBytes,
    /// Primary block version is not 7.
    UnsupportedVersion,
    /// An endpoint ID that §4.2.5 does not allow.
    InvalidEid,
    /// A flag combination §4.2.3 / §4.2.4 forbids.
    InvalidFlags,
    /// CRC type not 0, 1 or 2.
    InvalidCrcType,
    /// Primary block without a CRC and no integrity block protecting it.
    MissingPrimaryCrc,
    /// A CRC value that does not match the block.
    CrcMismatch,
    /// No payload block.
    MissingPayload,
    /// The payload block is not the last block.
    PayloadNotLast,
    /// Block number 0, payload not numbered 1, or a non-payload block numbered 1.
    InvalidBlockNumber,
    /// A repeated block number, or a second block of a type allowed once.
    DuplicateBlock,
    /// Creation time 0 without a bundle age block.
    MissingBundleAge,
    /// An unknown block flagged "delete bundle if block can't be processed".
    UnprocessableBlock,
    /// Fragment offset / length inconsistent with the total ADU length.
    InvalidFragment,
    /// `build`: a spec the RFC does not allow.
    InvalidSpec,
    /// Fragmenting a bundle flagged "must not be fragmented".
    MustNotFragment,
    /// The MTU cannot hold a fragment with even one payload byte.
    MtuTooSmall,
    /// Fragments of one bundle disagree on the total ADU length.
    InconsistentTotalLength,
    /// A fragment runs past the total ADU length.
    OffsetOutOfRange,
    /// Overlapping fragments disagree on bytes.
    OverlapMismatch,
    /// Over the reassembler's ADU size, pending bytes or pending bundles limit.
    LimitExceeded,
    /// The bundle's lifetime ended before `now`.
    Expired,
    /// A block integrity or confidentiality block is not a valid abstract
    /// security block, or breaks the rules of RFC 9172 §3 (a target that is
    /// not in the bundle, a block targeted by two BIBs, a BIB targeting a
    /// security block, results that do not match the targets).
    InvalidSecurityBlock,
    /// A security block this implementation cannot process: a context
    /// other than BIB-HMAC-SHA2, a wrapped key, or a BIB encrypted by a BCB.
    UnsupportedSecurityContext,
    /// Integrity is required but no BIB from a known key covers the payload
    /// (with the primary block in its scope).
    BibMissing,
    /// A BIB's security source has no key configured here.
    BibUnknownKey,
    /// A BIB's HMAC does not match the block it targets: the block was
    /// altered, or signed with another key.
    BibMismatch,
}

impl ErrorKind {
    /// The stable error class, exactly as `vectors/README.md` spells it.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::MalformedCbor => "malformed-cbor",
            ErrorKind::Truncated => "truncated",
            ErrorKind::TrailingBytes => "trailing-bytes",
            ErrorKind::UnsupportedVersion => "unsupported-version",
            ErrorKind::InvalidEid => "invalid-eid",
            ErrorKind::InvalidFlags => "invalid-flags",
            ErrorKind::InvalidCrcType => "invalid-crc-type",
            ErrorKind::MissingPrimaryCrc => "missing-primary-crc",
            ErrorKind::CrcMismatch => "crc-mismatch",
            ErrorKind::MissingPayload => "missing-payload",
            ErrorKind::PayloadNotLast => "payload-not-last",
            ErrorKind::InvalidBlockNumber => "invalid-block-number",
            ErrorKind::DuplicateBlock => "duplicate-block",
            ErrorKind::MissingBundleAge => "missing-bundle-age",
            ErrorKind::UnprocessableBlock => "unprocessable-block",
            ErrorKind::InvalidFragment => "invalid-fragment",
            ErrorKind::InvalidSpec => "invalid-spec",
            ErrorKind::MustNotFragment => "must-not-fragment",
            ErrorKind::MtuTooSmall => "mtu-too-small",
            ErrorKind::InconsistentTotalLength => "inconsistent-total-length",
            ErrorKind::OffsetOutOfRange => "offset-out-of-range",
            ErrorKind::OverlapMismatch => "overlap-mismatch",
            ErrorKind::LimitExceeded => "limit-exceeded",
            ErrorKind::Expired => "expired",
            ErrorKind::InvalidSecurityBlock => "invalid-security-block",
            ErrorKind::UnsupportedSecurityContext => "unsupported-security-context",
            ErrorKind::BibMissing => "bib-missing",
            ErrorKind::BibUnknownKey => "bib-unknown-key",
            ErrorKind::BibMismatch => "bib-mismatch",
        }
    }

    /// Every class, in the order of the table in `vectors/README.md`.
    pub const ALL: [ErrorKind; 29] = [
        ErrorKind::MalformedCbor,
        ErrorKind::Truncated,
        ErrorKind::TrailingBytes,
        ErrorKind::UnsupportedVersion,
        ErrorKind::InvalidEid,
        ErrorKind::InvalidFlags,
        ErrorKind::InvalidCrcType,
        ErrorKind::MissingPrimaryCrc,
        ErrorKind::CrcMismatch,
        ErrorKind::MissingPayload,
        ErrorKind::PayloadNotLast,
        ErrorKind::InvalidBlockNumber,
        ErrorKind::DuplicateBlock,
        ErrorKind::MissingBundleAge,
        ErrorKind::UnprocessableBlock,
        ErrorKind::InvalidFragment,
        ErrorKind::InvalidSpec,
        ErrorKind::MustNotFragment,
        ErrorKind::MtuTooSmall,
        ErrorKind::InconsistentTotalLength,
        ErrorKind::OffsetOutOfRange,
        ErrorKind::OverlapMismatch,
        ErrorKind::LimitExceeded,
        ErrorKind::Expired,
        ErrorKind::InvalidSecurityBlock,
        ErrorKind::UnsupportedSecurityContext,
        ErrorKind::BibMissing,
        ErrorKind::BibUnknownKey,
        ErrorKind::BibMismatch,
    ];

    /// The RFC section (RFC 9171 unless it says otherwise) the rule comes from.
    pub fn section(self) -> &'static str {
        match self {
            ErrorKind::MalformedCbor => "RFC 9171 §4.1, RFC 8949 §4.2.1",
            ErrorKind::Truncated | ErrorKind::TrailingBytes => "RFC 9171 §4.1",
            ErrorKind::UnsupportedVersion => "RFC 9171 §4.3.1",
            ErrorKind::InvalidEid => "RFC 9171 §4.2.5.1",
            ErrorKind::InvalidFlags => "RFC 9171 §4.2.3, §4.2.4",
            ErrorKind::InvalidCrcType => "RFC 9171 §4.2.1",
            ErrorKind::MissingPrimaryCrc => "RFC 9171 §4.3.1",
            ErrorKind::CrcMismatch => "RFC 9171 §4.2.2, §5.6 step 3",
            ErrorKind::MissingPayload | ErrorKind::PayloadNotLast => "RFC 9171 §4.1",
            ErrorKind::InvalidBlockNumber => "RFC 9171 §4.1, §4.3.2",
            ErrorKind::DuplicateBlock => "RFC 9171 §4.1, §4.4",
            ErrorKind::MissingBundleAge => "RFC 9171 §4.4.2",
            ErrorKind::UnprocessableBlock => "RFC 9171 §5.6 step 4",
            ErrorKind::InvalidFragment => "RFC 9171 §4.3.1",
            ErrorKind::InvalidSpec => "RFC 9171 §4.2.3, §4.2.5, §4.3.1",
            ErrorKind::MustNotFragment | ErrorKind::MtuTooSmall => "RFC 9171 §5.8",
            ErrorKind::InconsistentTotalLength
            | ErrorKind::OffsetOutOfRange
            | ErrorKind::OverlapMismatch => "RFC 9171 §5.9",
            ErrorKind::LimitExceeded => "RFC 9171 §5.9 (local reassembly limits)",
            ErrorKind::Expired => "RFC 9171 §4.3.1 lifetime, §5.5",
            ErrorKind::InvalidSecurityBlock => "RFC 9172 §3.6, §3.7",
            ErrorKind::UnsupportedSecurityContext => "RFC 9172 §3.10, RFC 9173 §3.3",
            ErrorKind::BibMissing => "RFC 9172 §5.1.2 (local security policy)",
            ErrorKind::BibUnknownKey | ErrorKind::BibMismatch => "RFC 9173 §3.7, §3.8.2",
        }
    }

    /// What the sender or operator can do about it, when there is something.
    pub fn fix(self) -> Option<&'static str> {
        Some(match self {
            ErrorKind::MalformedCbor => {
                "encode the bundle as an indefinite-length CBOR array of definite blocks with shortest-form integers"
            }
            ErrorKind::Truncated => "pass the whole bundle; the convergence layer may have cut it short",
            ErrorKind::TrailingBytes => "pass exactly one bundle per buffer",
            ErrorKind::UnsupportedVersion => "only Bundle Protocol version 7 is supported",
            ErrorKind::InvalidEid => "use dtn:none, dtn://node/demux or ipn:node.service",
            ErrorKind::InvalidFlags => {
                "clear the status-report request flags on administrative records and anonymous bundles, and set must-not-fragment when the source is dtn:none"
            }
            ErrorKind::InvalidCrcType => "use CRC type 0 (none), 1 (CRC-16 X.25) or 2 (CRC-32C)",
            ErrorKind::MissingPrimaryCrc => "give the primary block a CRC-16 or CRC-32C",
            ErrorKind::CrcMismatch => "the block was altered in transit; have it sent again",
            ErrorKind::MissingPayload => "end the bundle with a payload block (type 1, number 1)",
            ErrorKind::PayloadNotLast => "put the payload block last",
            ErrorKind::InvalidBlockNumber => {
                "number the payload block 1 and every other canonical block 2 or higher"
            }
            ErrorKind::DuplicateBlock => {
                "give each block a unique number and include previous-node, bundle-age and hop-count blocks at most once"
            }
            ErrorKind::MissingBundleAge => "set a creation time or add a bundle age block (type 7)",
            ErrorKind::UnprocessableBlock => return None,
            ErrorKind::InvalidFragment => {
                "a fragment needs 0 < total ADU length and offset + payload length <= total"
            }
            ErrorKind::InvalidSpec => {
                "use valid EIDs, a primary CRC, and must-not-fragment when the source is dtn:none"
            }
            ErrorKind::MustNotFragment => "use a link whose MTU holds the whole bundle",
            ErrorKind::MtuTooSmall => "raise the MTU",
            ErrorKind::InconsistentTotalLength | ErrorKind::OffsetOutOfRange => return None,
            ErrorKind::OverlapMismatch => return None,
            ErrorKind::LimitExceeded => "raise the ReassemblyLimits or expire pending ADUs first",
            ErrorKind::Expired => return None,
            ErrorKind::InvalidSecurityBlock => {
                "give each BIB distinct targets that are non-security blocks present in the bundle, and one result set per target"
            }
            ErrorKind::UnsupportedSecurityContext => {
                "sign with BIB-HMAC-SHA2 (context 1) using the key itself, not a wrapped key, and without a BCB over the BIB"
            }
            ErrorKind::BibMissing => {
                "configure the sending gateway to sign its bundles (bib-key-file on its bp route)"
            }
            ErrorKind::BibUnknownKey => {
                "add the security source's key to [bp.bib-keys] here, or have the sender sign as a source that has one"
            }
            ErrorKind::BibMismatch => {
                "check both gateways hold the same key for this source; otherwise the bundle was altered on the way"
            }
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error from building, parsing, fragmenting or reassembling bundles.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct BundleError {
    /// The class of the problem.
    pub kind: ErrorKind,
    /// Byte offset into the input the error refers to, when there is one.
    pub offset: Option<u64>,
    /// What exactly was found, in one sentence.
    pub detail: String,
}

impl BundleError {
    /// Creates an error of `kind` at byte `offset`.
    pub(crate) fn at(kind: ErrorKind, offset: usize, detail: impl Into<String>) -> Self {
        BundleError {
            kind,
            offset: Some(offset as u64),
            detail: detail.into(),
        }
    }

    /// Creates an error of `kind` that refers to no particular byte.
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        BundleError {
            kind,
            offset: None,
            detail: detail.into(),
        }
    }

    /// The stable error class, exactly one of the `fragmenter` classes of
    /// `vectors/README.md` (e.g. `crc-mismatch`).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

struct Rendered<'a>(&'a BundleError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.kind.code())?;
        if let Some(offset) = e.offset {
            write!(f, " at byte {offset}")?;
        }
        write!(f, ": {} ({})", e.detail, e.kind.section())?;
        if let Some(fix) = e.kind.fix() {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// Result alias used throughout the crate.
pub(crate) type Result<T> = core::result::Result<T, BundleError>;
