//! The data model: one message is an RFC 5321 §2.3.1 envelope plus RFC 5322
//! content. These types mirror the WIT `types` interface
//! (`wit/deepmail.wit`) field for field.

/// One ESMTP parameter on a MAIL or RCPT command (RFC 5321 §4.1.2
/// `esmtp-param`), e.g. `BODY=8BITMIME` or `SMTPUTF8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SmtpParam {
    /// Keyword as written, e.g. `BODY`; compared case-insensitively.
    pub keyword: String,
    /// Value after `=`, if any, e.g. `8BITMIME`.
    pub value: Option<String>,
}

impl SmtpParam {
    /// A parameter with a value, e.g. `SmtpParam::new("BODY", "8BITMIME")`.
    pub fn new(keyword: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            keyword: keyword.into(),
            value: Some(value.into()),
        }
    }

    /// A parameter without `=`, e.g. `SmtpParam::flag("SMTPUTF8")`.
    pub fn flag(keyword: impl Into<String>) -> Self {
        Self {
            keyword: keyword.into(),
            value: None,
        }
    }
}

/// One recipient of a transaction: an RCPT TO command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ForwardPath {
    /// The mailbox without angle brackets, e.g. `bob@moon.example`. A source
    /// route (RFC 5321 §4.1.2 `A-d-l`, e.g. `@relay.example:bob@moon.example`)
    /// is kept as written; `Postmaster` (§4.1.1.3) is allowed.
    pub mailbox: String,
    /// RCPT parameters, e.g. `NOTIFY=FAILURE`.
    pub parameters: Vec<SmtpParam>,
}

impl ForwardPath {
    /// A recipient without parameters.
    pub fn new(mailbox: impl Into<String>) -> Self {
        Self {
            mailbox: mailbox.into(),
            parameters: Vec::new(),
        }
    }
}

/// The SMTP envelope of one message (RFC 5321 §2.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Envelope {
    /// MAIL FROM reverse-path without angle brackets; `""` is the null
    /// reverse-path `<>` of delivery status notifications.
    pub reverse_path: String,
    /// MAIL parameters, e.g. `BODY=8BITMIME`, `SMTPUTF8`, `SIZE=1234`.
    pub mail_parameters: Vec<SmtpParam>,
    /// Recipients in RCPT order; at least one for a message that encodes.
    pub forward_paths: Vec<ForwardPath>,
}

impl Envelope {
    /// Whether the MAIL parameters include `keyword` (case-insensitive).
    pub(crate) fn has_mail_param(&self, keyword: &str) -> bool {
        has_param(&self.mail_parameters, keyword)
    }

    /// Whether the transaction declared `BODY=8BITMIME` or `BODY=BINARYMIME`,
    /// which lifts the 998-octet line limit on the content.
    pub(crate) fn is_eight_bit(&self) -> bool {
        is_eight_bit(&self.mail_parameters)
    }
}

pub(crate) fn has_param(params: &[SmtpParam], keyword: &str) -> bool {
    params
        .iter()
        .any(|p| p.keyword.eq_ignore_ascii_case(keyword))
}

pub(crate) fn is_eight_bit(params: &[SmtpParam]) -> bool {
    params.iter().any(|p| {
        p.keyword.eq_ignore_ascii_case("BODY")
            && p.value.as_deref().is_some_and(|v| {
                v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("BINARYMIME")
            })
    })
}

/// One email: envelope plus RFC 5322 content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Message {
    /// Who sent it and to whom it goes.
    pub envelope: Envelope,
    /// The RFC 5322 message (headers, blank line, body) as delivered: not
    /// dot-stuffed. `decode` returns it with CRLF line ends, ending in CRLF
    /// (or empty); `encode` accepts any line ends and normalises them.
    pub content: Vec<u8>,
}
