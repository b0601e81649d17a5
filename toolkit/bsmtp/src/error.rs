//! Errors with stable classes: each kind maps to one error class of
//! `vectors/README.md` ("Error classes", stage `codec`), which is also the
//! WIT `stage-error.code`.

/// What went wrong while decoding; [`DecodeErrorKind::code`] is its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// Input ends inside DATA (no line containing only `.`).
    MissingFinalDot,
    /// Input ends, or QUIT comes, after MAIL/RCPT without DATA.
    IncompleteTransaction,
    /// The last line has no line terminator (strict mode).
    UnterminatedLine,
    /// RCPT or DATA before MAIL, MAIL inside a transaction, a greeting inside
    /// a transaction (strict mode).
    OutOfSequence,
    /// DATA in a transaction without RCPT.
    NoRecipients,
    /// A known verb with bad syntax, e.g. MAIL without `FROM:`, or a blank
    /// line in strict mode.
    MalformedCommand,
    /// A reverse- or forward-path that does not parse (RFC 5321 §4.1.2).
    MalformedPath,
    /// A malformed `esmtp-param`.
    BadParameter,
    /// A verb Batch SMTP does not allow.
    UnknownCommand,
    /// A NUL octet.
    NulByte,
    /// A CR not followed by LF.
    BareCr,
    /// An LF not preceded by CR (strict mode).
    BareLf,
    /// A line over 998 octets (excluding CRLF) where the limit applies.
    LineTooLong,
    /// Anything but blank lines after QUIT (strict mode).
    TrailingGarbage,
}

impl DecodeErrorKind {
    /// The stable error class, e.g. `"missing-final-dot"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingFinalDot => "missing-final-dot",
            Self::IncompleteTransaction => "incomplete-transaction",
            Self::UnterminatedLine => "unterminated-line",
            Self::OutOfSequence => "out-of-sequence",
            Self::NoRecipients => "no-recipients",
            Self::MalformedCommand => "malformed-command",
            Self::MalformedPath => "malformed-path",
            Self::BadParameter => "bad-parameter",
            Self::UnknownCommand => "unknown-command",
            Self::NulByte => "nul-byte",
            Self::BareCr => "bare-cr",
            Self::BareLf => "bare-lf",
            Self::LineTooLong => "line-too-long",
            Self::TrailingGarbage => "trailing-garbage",
        }
    }
}

/// A batch that cannot be decoded: the class, where it went wrong and why.
///
/// `Display` reads e.g. `line 4 (byte 87): RCPT TO before MAIL FROM;
/// expected MAIL FROM:<reverse-path> to start a transaction`. The error does
/// not depend on how the input was split into chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} (byte {offset}): {detail}")]
pub struct DecodeError {
    /// The class of error.
    pub kind: DecodeErrorKind,
    /// 1-based number of the line the error is on (for end-of-input errors,
    /// the line that would have come next).
    pub line: u64,
    /// 0-based byte offset into the input: the offending octet for
    /// `nul-byte`, `bare-cr`, `bare-lf` and `trailing-garbage`, the end of
    /// the input for `missing-final-dot` and `incomplete-transaction` at end
    /// of input, otherwise the first octet of the offending line.
    pub offset: u64,
    /// What was wrong and what was expected instead.
    pub detail: String,
}

impl DecodeError {
    /// The stable error class, e.g. `"missing-final-dot"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// What went wrong while encoding; [`EncodeErrorKind::code`] is its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeErrorKind {
    /// A path or parameter that cannot be written safely
    /// (class `invalid-envelope`).
    InvalidEnvelope,
    /// The greeting's domain cannot be written safely (class
    /// `invalid-envelope`; `message_index` is 0 and means nothing).
    InvalidGreeting,
    /// A message without forward paths.
    NoRecipients,
    /// A NUL octet in the content.
    NulByte,
    /// A content line over 998 octets without `BODY=8BITMIME`/`BINARYMIME`.
    LineTooLong,
}

impl EncodeErrorKind {
    /// The stable error class, e.g. `"invalid-envelope"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidEnvelope | Self::InvalidGreeting => "invalid-envelope",
            Self::NoRecipients => "no-recipients",
            Self::NulByte => "nul-byte",
            Self::LineTooLong => "line-too-long",
        }
    }
}

/// Messages that cannot be encoded: the class, which message and why.
///
/// `Display` reads e.g. `message #2: forward path 1 "bob@moon example"
/// contains a space; expected a mailbox such as local@domain`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", subject(*.kind, *.message_index))]
pub struct EncodeError {
    /// The class of error.
    pub kind: EncodeErrorKind,
    /// 0-based index of the offending message in the input slice.
    pub message_index: usize,
    /// What was wrong and what was expected instead.
    pub detail: String,
}

fn subject(kind: EncodeErrorKind, index: usize) -> String {
    match kind {
        EncodeErrorKind::InvalidGreeting => "greeting".to_owned(),
        _ => format!("message #{index}"),
    }
}

impl EncodeError {
    /// The stable error class, e.g. `"invalid-envelope"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}
