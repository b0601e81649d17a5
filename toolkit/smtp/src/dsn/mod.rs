//! Delivery status notifications: RFC 3464 reports inside a
//! `multipart/report; report-type=delivery-status` message (RFC 6522),
//! sent to the original reverse path when a recipient is refused by the far
//! MTA or a message expires in the queue, and parsed back to check what
//! came back (ours or another MTA's, such as Exim's).
//!
//! * [`build_dsn`] writes the whole RFC 5322 message (CRLF line endings):
//!   a human-readable `text/plain` part, the `message/delivery-status`
//!   part (per-message fields, RFC 3464 2.2; per-recipient fields, 2.3) and
//!   the original as `message/rfc822`, or only its header as
//!   `text/rfc822-headers` (RFC 6522 3.2; `RET=HDRS` or over
//!   [`MAX_RETURNED_CONTENT`]). When addresses or diagnostics are not
//!   ASCII it uses the RFC 6533 types `message/global-delivery-status`,
//!   `message/global` and `message/global-headers`. It is marked
//!   `Auto-Submitted: auto-replied` (RFC 3834).
//! * [`should_send_dsn`] applies RFC 3461 4.1 (`NOTIFY=`) and never answers
//!   the null reverse path, which is what keeps bounces from looping.
//! * [`parse_dsn`] finds the delivery-status part of any DSN and returns
//!   its fields; it never panics, whatever the input.
//!
//! No I/O and no clock: dates are inputs.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::{memchr, memchr2, memmem};

use crate::{Envelope, Recipient, Reply};

/// Content above this size is returned as its header only.
pub const MAX_RETURNED_CONTENT: usize = 256 * 1024;

/// How deep [`parse_dsn`] descends into nested multiparts.
const MAX_MIME_DEPTH: usize = 8;

/// The `Action` field of a per-recipient report (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Could not be delivered; no more attempts.
    Failed,
    /// Not delivered yet; attempts continue.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed to a system that sends no DSNs.
    Relayed,
    /// Delivered and forwarded to several addresses (a list).
    Expanded,
}

impl Action {
    /// The field value: `failed`, `delayed`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// Parses a field value (case-insensitive; a trailing comment such as
    /// `failed (bad address)` is ignored).
    pub fn parse(value: &str) -> Option<Action> {
        let word = value.split(['(', ' ', '\t']).next()?.trim();
        [
            Action::Failed,
            Action::Delayed,
            Action::Delivered,
            Action::Relayed,
            Action::Expanded,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What of the original message the DSN carries (RFC 3461 4.3, `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnContent {
    /// The whole message (`RET=FULL`, and the default), unless it is
    /// larger than [`MAX_RETURNED_CONTENT`].
    #[default]
    Full,
    /// Only the header section (`RET=HDRS`).
    HeadersOnly,
}

impl ReturnContent {
    /// From the envelope's `RET=` parameter: `HDRS` gives
    /// [`ReturnContent::HeadersOnly`], anything else [`ReturnContent::Full`].
    pub fn from_envelope(envelope: &Envelope) -> ReturnContent {
        let hdrs = envelope.mail_params.iter().any(|p| {
            p.keyword.eq_ignore_ascii_case("RET")
                && p.value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("HDRS"))
        });
        if hdrs {
            ReturnContent::HeadersOnly
        } else {
            ReturnContent::Full
        }
    }
}

/// The report on one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The `ORCPT` parameter value as received (`rfc822;bob+2Bx@moon.example`,
    /// xtext); written decoded as `Original-Recipient: rfc822; bob+x@…`.
    /// Without a `type;` prefix the value is taken as an `rfc822` address.
    pub original_recipient: Option<String>,
    /// The recipient address (`Final-Recipient`).
    pub final_recipient: String,
    /// What happened.
    pub action: Action,
    /// The RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// The host that gave the diagnostic (`Remote-MTA: dns; host`).
    pub remote_mta: Option<String>,
    /// `type; text`, e.g. `smtp; 550 5.1.1 <bob@moon.example>: no such
    /// user`; `smtp; ` is prepended when the value has no type.
    pub diagnostic_code: Option<String>,
    /// When the last delivery attempt was made.
    pub last_attempt: Option<SystemTime>,
}

impl DsnRecipient {
    /// A report for an envelope recipient: its mailbox, and its `ORCPT`
    /// parameter when it had one.
    pub fn new(recipient: &Recipient, action: Action, status: impl Into<String>) -> DsnRecipient {
        let original_recipient = recipient
            .params
            .iter()
            .find(|p| p.keyword.eq_ignore_ascii_case("ORCPT"))
            .and_then(|p| p.value.clone());
        DsnRecipient {
            original_recipient,
            final_recipient: recipient.mailbox.clone(),
            action,
            status: status.into(),
            remote_mta: None,
            diagnostic_code: None,
            last_attempt: None,
        }
    }

    /// Sets the status and the diagnostic from an SMTP reply: its enhanced
    /// code, or `X.0.0` from its class when it has none.
    pub fn with_reply(mut self, reply: &Reply) -> DsnRecipient {
        self.status = status_of(reply);
        self.diagnostic_code = Some(format!("smtp; {reply}"));
        self
    }
}

/// The RFC 3463 status of a reply: its enhanced code, or `2.0.0` / `4.0.0`
/// / `5.0.0` from its class.
pub fn status_of(reply: &Reply) -> String {
    match &reply.enhanced {
        Some(e) => e.clone(),
        None => format!("{}.0.0", (reply.code / 100).clamp(2, 5)),
    }
}

/// Everything a DSN says besides the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRequest {
    /// The host name of the MTA writing the report (`Reporting-MTA: dns;
    /// host`).
    pub reporting_mta: String,
    /// The `From` address, e.g. `MAILER-DAEMON@gw.moon.example`.
    pub from: String,
    /// The `To` address: the original reverse path.
    pub to: String,
    /// The original `ENVID` parameter (xtext; written decoded).
    pub original_envelope_id: Option<String>,
    /// When the original message arrived.
    pub arrival_date: Option<SystemTime>,
    /// The `Date` of the DSN.
    pub date: SystemTime,
    /// The DSN's `Message-ID`, with or without angle brackets.
    pub message_id: String,
    /// One report per recipient.
    pub recipients: Vec<DsnRecipient>,
    /// What to return of the original.
    pub return_content: ReturnContent,
}

/// The envelope a DSN is sent with: the null reverse path (so that it is
/// never bounced itself) and the original reverse path as the recipient
/// (RFC 3461 6.2).
pub fn dsn_envelope(req: &DsnRequest) -> Envelope {
    Envelope {
        reverse_path: String::new(),
        mail_params: Vec::new(),
        recipients: vec![Recipient {
            mailbox: req.to.clone(),
            params: Vec::new(),
        }],
    }
}

/// Whether a DSN with `action` is to be sent for `recipient` (RFC 3461
/// 4.1): never to the null reverse path; never with `NOTIFY=NEVER`;
/// `failed` with `FAILURE`, `delayed` with `DELAY`, `delivered` /
/// `relayed` / `expanded` with `SUCCESS`. Without `NOTIFY`, failures and
/// delays are reported, successes not.
pub fn should_send_dsn(envelope: &Envelope, recipient: &Recipient, action: Action) -> bool {
    let reverse = envelope.reverse_path.trim();
    if reverse.is_empty() || reverse == "<>" {
        return false;
    }
    let notify = recipient
        .params
        .iter()
        .find(|p| p.keyword.eq_ignore_ascii_case("NOTIFY"))
        .and_then(|p| p.value.as_deref());
    let Some(notify) = notify else {
        return matches!(action, Action::Failed | Action::Delayed);
    };
    let wanted = match action {
        Action::Failed => "FAILURE",
        Action::Delayed => "DELAY",
        Action::Delivered | Action::Relayed | Action::Expanded => "SUCCESS",
    };
    let mut keywords = notify.split(',').map(str::trim);
    !notify.trim().eq_ignore_ascii_case("NEVER") && keywords.any(|k| k.eq_ignore_ascii_case(wanted))
}

/// An RFC 5322 `date-time` in UTC: `Tue, 1 Jul 2003 10:52:37 +0000`.
pub fn format_date(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(e) => {
            let back = e.duration();
            let whole = i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 2);
            -whole - i64::from(back.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = deepmail_contact_plan::civil::from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day} {month_name} {year:04} {:02}:{:02}:{:02} +0000",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

mod build;
mod parse;

pub use build::build_dsn;
pub use parse::{parse_dsn, DsnError, ParsedDsn, ParsedRecipient};

#[cfg(test)]
mod tests {
    use super::build::{choose_boundary, decode_xtext, decoded_or_raw, wrap};
    use super::*;
    use crate::Param;
    use proptest::prelude::*;
    use std::time::Duration;

    fn system_time(secs_since_epoch: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs_since_epoch)
    }

    fn request(recipients: Vec<DsnRecipient>) -> DsnRequest {
        DsnRequest {
            reporting_mta: "gw.moon.example".into(),
            from: "MAILER-DAEMON@gw.moon.example".into(),
            to: "ann@earth.example".into(),
            original_envelope_id: Some("QQ314159".into()),
            arrival_date: Some(system_time(1_057_056_757)),
            date: system_time(1_057_060_357),
            message_id: "<dsn.1@gw.moon.example>".into(),
            recipients,
            return_content: ReturnContent::Full,
        }
    }

    fn bob_failed() -> DsnRecipient {
        DsnRecipient {
            original_recipient: Some("rfc822;bob+2Bspace@moon.example".into()),
            final_recipient: "bob+space@moon.example".into(),
            action: Action::Failed,
            status: "5.1.1".into(),
            remote_mta: Some("mx.moon.example".into()),
            diagnostic_code: Some("smtp; 550 5.1.1 <bob+space@moon.example>: no such user".into()),
            last_attempt: Some(system_time(1_057_060_000)),
        }
    }

    const ORIGINAL: &[u8] =
        b"From: ann@earth.example\nTo: bob@moon.example\nSubject: hi\n\nHello Bob.\n";

    #[test]
    fn dates() {
        assert_eq!(
            format_date(system_time(0)),
            "Thu, 1 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            format_date(system_time(1_057_056_757)),
            "Tue, 1 Jul 2003 10:52:37 +0000"
        );
        assert_eq!(
            format_date(system_time(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            format_date(UNIX_EPOCH - Duration::from_secs(1)),
            "Wed, 31 Dec 1969 23:59:59 +0000"
        );
        assert_eq!(
            format_date(system_time(4_102_444_799)),
            "Thu, 31 Dec 2099 23:59:59 +0000"
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("a+2Bb+3Dc"), "a+b=c");
        assert_eq!(decode_xtext("bad+zz+"), "bad+zz+");
        assert_eq!(decode_xtext("j\\x{FC}rgen"), "j\u{fc}rgen");
        assert_eq!(decode_xtext("\\x{zz}\\"), "\\x{zz}\\");
        assert_eq!(decoded_or_raw("a+0Db"), "a+0Db");
    }

    #[test]
    fn built_dsn_has_the_rfc_3464_fields() {
        let dsn = build_dsn(&request(vec![bob_failed()]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in {text}"
        );
        assert!(!text.replace("\r\n", "").contains('\r'));
        for needle in [
            "From: Mail Delivery System <MAILER-DAEMON@gw.moon.example>\r\n",
            "To: <ann@earth.example>\r\n",
            "Subject: Undelivered Mail Returned to Sender\r\n",
            "Date: Tue, 1 Jul 2003 11:52:37 +0000\r\n",
            "Message-ID: <dsn.1@gw.moon.example>\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;\r\n",
            "Content-Type: message/delivery-status\r\n",
            "Reporting-MTA: dns; gw.moon.example\r\n",
            "Original-Envelope-Id: QQ314159\r\n",
            "Arrival-Date: Tue, 1 Jul 2003 10:52:37 +0000\r\n",
            "Original-Recipient: rfc822; bob+space@moon.example\r\n",
            "Final-Recipient: rfc822; bob+space@moon.example\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.moon.example\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob+space@moon.example>: no such user\r\n",
            "Content-Type: message/rfc822\r\n",
            "Subject: hi\r\n\r\nHello Bob.\r\n",
            "<bob+space@moon.example>: 550 5.1.1 <bob+space@moon.example>: no such user\r\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.ends_with("--\r\n"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.reporting_mta.as_deref(), Some("gw.moon.example"));
        assert_eq!(parsed.original_envelope_id.as_deref(), Some("QQ314159"));
        assert_eq!(parsed.recipients.len(), 1);
        let r = &parsed.recipients[0];
        assert_eq!(r.final_recipient, "bob+space@moon.example");
        assert_eq!(
            r.original_recipient.as_deref(),
            Some("bob+space@moon.example")
        );
        assert_eq!(r.action, Action::Failed);
        assert_eq!(r.status, "5.1.1");
        assert_eq!(r.remote_mta.as_deref(), Some("mx.moon.example"));
        assert!(!parsed.global);
    }

    #[test]
    fn headers_only_on_request_and_over_the_cap() {
        let mut req = request(vec![bob_failed()]);
        req.return_content = ReturnContent::HeadersOnly;
        let text = String::from_utf8(build_dsn(&req, ORIGINAL)).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(text.contains("Subject: hi\r\n"));
        assert!(!text.contains("Hello Bob."));

        req.return_content = ReturnContent::Full;
        let mut big = b"Subject: big\r\n\r\n".to_vec();
        big.resize(MAX_RETURNED_CONTENT + 1, b'x');
        let dsn = build_dsn(&req, &big);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(text.contains("only its header is attached"));
        assert!(dsn.len() < 8 * 1024);
    }

    #[test]
    fn delay_subject_and_global_types() {
        let mut r = bob_failed();
        r.action = Action::Delayed;
        r.status = "4.4.1".into();
        r.final_recipient = "j\u{fc}rgen@moon.example".into();
        r.original_recipient = None;
        r.diagnostic_code = Some("connection timed out".into());
        let original = "Subject: Gr\u{fc}\u{df}e\r\n\r\nhallo\r\n".as_bytes();
        let dsn = build_dsn(&request(vec![r]), original);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.contains("Subject: Delivery Status Notification (Delay)\r\n"));
        assert!(text.contains("report-type=global-delivery-status;"));
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; j\u{fc}rgen@moon.example\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; connection timed out\r\n"));
        assert!(text.contains("Content-Type: message/global\r\n"));
        assert!(text.contains("charset=utf-8"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert!(parsed.global);
        assert_eq!(
            parsed.recipients[0].final_recipient,
            "j\u{fc}rgen@moon.example"
        );
        assert_eq!(parsed.recipients[0].action, Action::Delayed);
    }

    #[test]
    fn boundary_avoids_the_content() {
        let req = request(vec![bob_failed()]);
        let first = choose_boundary(&req.message_id, &[]);
        let hostile = format!("Subject: x\r\n\r\n--{first}--\r\n{first}\r\n");
        let dsn = build_dsn(&req, hostile.as_bytes());
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.recipients.len(), 1);
        assert!(!String::from_utf8(dsn)
            .unwrap()
            .contains(&format!("boundary=\"{first}\"")));
    }

    #[test]
    fn header_injection_is_flattened() {
        let mut r = bob_failed();
        r.diagnostic_code =
            Some("smtp; 550 bad\r\nAction: delivered\r\n\r\nFinal-Recipient: x".into());
        let mut req = request(vec![r]);
        req.to = "ann@earth.example>\r\nBcc: evil@example".into();
        let dsn = build_dsn(&req, ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(!text.contains("\r\nBcc:"));
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.recipients[0].action, Action::Failed);
    }

    #[test]
    fn huge_diagnostics_keep_lines_short() {
        let mut r = bob_failed();
        let word = "x".repeat(5000);
        r.diagnostic_code = Some(format!("smtp; 550 {word} {}", ["y"; 3000].join(" ")));
        let dsn = build_dsn(&request(vec![r]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.split("\r\n").all(|l| l.len() <= 998));
        let parsed = parse_dsn(&dsn).unwrap();
        assert!(parsed.recipients[0]
            .diagnostic_code
            .as_deref()
            .unwrap()
            .ends_with("y y y"));
        let wrapped = wrap("<a@b>: one two three", 12);
        assert_eq!(wrapped, "<a@b>: one\r\n    two\r\n    three\r\n");
        assert_eq!(wrap("", 76), "\r\n");
    }

    #[test]
    fn long_diagnostics_fold_and_unfold() {
        let long = format!("smtp; 550 5.7.1 {}", ["policy"; 40].join(" "));
        let mut r = bob_failed();
        r.diagnostic_code = Some(long.clone());
        let dsn = build_dsn(&request(vec![r]), ORIGINAL);
        let text = String::from_utf8(dsn.clone()).unwrap();
        let field: Vec<&str> = text
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Diagnostic-Code:"))
            .take_while(|l| l.starts_with("Diagnostic-Code:") || l.starts_with(' '))
            .collect();
        assert!(field.len() > 2, "{text}");
        assert!(field.iter().all(|l| l.len() <= 78), "{field:?}");
        assert_eq!(
            parse_dsn(&dsn).unwrap().recipients[0].diagnostic_code,
            Some(long)
        );
    }

    #[test]
    fn should_send_follows_notify() {
        let env = |rp: &str| Envelope {
            reverse_path: rp.into(),
            ..Envelope::default()
        };
        let rcpt = |notify: Option<&str>| Recipient {
            mailbox: "bob@moon.example".into(),
            params: notify
                .map(|n| vec![Param::new("notify", Some(n))])
                .unwrap_or_default(),
        };
        let e = env("ann@earth.example");
        assert!(!should_send_dsn(&env(""), &rcpt(None), Action::Failed));
        assert!(!should_send_dsn(
            &env("<>"),
            &rcpt(Some("FAILURE")),
            Action::Failed
        ));
        assert!(should_send_dsn(&e, &rcpt(None), Action::Failed));
        assert!(should_send_dsn(&e, &rcpt(None), Action::Delayed));
        assert!(!should_send_dsn(&e, &rcpt(None), Action::Delivered));
        assert!(!should_send_dsn(&e, &rcpt(Some("NEVER")), Action::Failed));
        assert!(should_send_dsn(&e, &rcpt(Some("failure")), Action::Failed));
        assert!(!should_send_dsn(
            &e,
            &rcpt(Some("FAILURE")),
            Action::Delayed
        ));
        assert!(should_send_dsn(
            &e,
            &rcpt(Some("SUCCESS,DELAY")),
            Action::Delayed
        ));
        assert!(should_send_dsn(&e, &rcpt(Some("SUCCESS")), Action::Relayed));
        assert!(!should_send_dsn(&e, &rcpt(Some("SUCCESS")), Action::Failed));
    }

    #[test]
    fn recipient_from_envelope_and_reply() {
        let rcpt = Recipient {
            mailbox: "bob@moon.example".into(),
            params: vec![Param::new("ORCPT", Some("rfc822;bob@moon.example"))],
        };
        let reply = Reply::new(550, Some("5.1.1"), "no such user");
        let r = DsnRecipient::new(&rcpt, Action::Failed, "5.0.0").with_reply(&reply);
        assert_eq!(r.status, "5.1.1");
        assert_eq!(
            r.original_recipient.as_deref(),
            Some("rfc822;bob@moon.example")
        );
        assert_eq!(
            r.diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 no such user")
        );
        assert_eq!(status_of(&Reply::new(451, None, "later")), "4.0.0");
    }

    #[test]
    fn parses_an_exim_bounce() {
        let exim = b"Return-path: <>\n\
Auto-Submitted: auto-replied\n\
From: Mail Delivery System <Mailer-Daemon@mx.moon.example>\n\
To: ann@earth.example\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=1700000000-eximdsn-1234\n\
MIME-Version: 1.0\n\
Subject: Mail delivery failed: returning message to sender\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: text/plain; charset=us-ascii\n\
\n\
This message was created automatically by mail delivery software.\n\
\n\
  bob@moon.example\n\
    Unrouteable address\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.moon.example\n\
\n\
Action: failed\n\
Final-Recipient: rfc822;bob@moon.example\n\
Status: 5.0.0\n\
\n\
Action: failed\n\
Final-Recipient: rfc822;carl@moon.example\n\
Status: 5.0.0\n\
Remote-MTA: dns; mx2.moon.example\n\
Diagnostic-Code: smtp; 550 Unknown user\n\
\n\
--1700000000-eximdsn-1234\n\
Content-type: message/rfc822\n\
\n\
Subject: hi\n\
\n\
x\n\
--1700000000-eximdsn-1234--\n";
        let parsed = parse_dsn(exim).unwrap();
        assert_eq!(parsed.reporting_mta.as_deref(), Some("mx.moon.example"));
        assert_eq!(parsed.recipients.len(), 2);
        assert_eq!(parsed.recipients[0].final_recipient, "bob@moon.example");
        assert_eq!(parsed.recipients[1].status, "5.0.0");
        assert_eq!(
            parsed.recipients[1].remote_mta.as_deref(),
            Some("mx2.moon.example")
        );
        assert_eq!(
            parsed.recipients[1].diagnostic_code.as_deref(),
            Some("smtp; 550 Unknown user")
        );
    }

    #[test]
    fn parses_encoded_status_parts() {
        let fields = "Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: delivered\r\nStatus: 2.0.0\r\n";
        let b64 = "UmVwb3J0aW5nLU1UQTogZG5zOyBhLmV4YW1wbGUNCg0KRmluYWwtUmVjaXBpZW50OiByZmM4MjI7\r\nIGJAYw0KQWN0aW9uOiBkZWxpdmVyZWQNClN0YXR1czogMi4wLjANCg==";
        let qp = fields
            .replace("\r\n\r\n", "=0D=0A\r\n\r\n")
            .replace(": ", "=3A ");
        for (cte, body) in [("base64", b64.to_string()), ("quoted-printable", qp)] {
            let msg = format!(
                "Content-Type: multipart/report; boundary=\"b\"\r\n\r\n--b\r\n\
                 Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n--b--\r\n"
            );
            let parsed = parse_dsn(msg.as_bytes()).unwrap_or_else(|e| panic!("{cte}: {e}"));
            assert_eq!(parsed.reporting_mta.as_deref(), Some("a.example"), "{cte}");
            assert_eq!(parsed.recipients[0].action, Action::Delivered);
            assert!(parsed.global);
        }
        let bad = "Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n";
        assert_eq!(parse_dsn(bad.as_bytes()), Err(DsnError::BadEncoding));
    }

    #[test]
    fn clean_errors_for_bad_input() {
        assert_eq!(parse_dsn(b""), Err(DsnError::NoDeliveryStatus));
        assert_eq!(
            parse_dsn(b"Subject: hi\r\n\r\nbody"),
            Err(DsnError::NoDeliveryStatus)
        );
        assert_eq!(
            parse_dsn(b"Content-Type: multipart/report\r\n\r\n--x\r\n"),
            Err(DsnError::MissingBoundary)
        );
        let no_action = b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; b@c\r\nStatus: 5.0.0\r\n";
        assert_eq!(
            parse_dsn(no_action),
            Err(DsnError::MissingField {
                index: 0,
                field: "Action"
            })
        );
        let odd_action = b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: exploded\r\nStatus: 5.0.0\r\n";
        assert!(matches!(
            parse_dsn(odd_action),
            Err(DsnError::InvalidAction { .. })
        ));
        let odd_status = b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; b@c\r\nAction: failed\r\nStatus: 9.9\r\n";
        assert!(matches!(
            parse_dsn(odd_status),
            Err(DsnError::InvalidStatus { .. })
        ));
        let only_message =
            b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n";
        assert_eq!(parse_dsn(only_message), Err(DsnError::NoRecipients));
        let mut deep = String::new();
        for i in 0..20 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        assert_eq!(
            parse_dsn(deep.as_bytes()),
            Err(DsnError::TooDeep(MAX_MIME_DEPTH))
        );
    }

    #[test]
    fn truncations_never_panic() {
        let dsn = build_dsn(&request(vec![bob_failed(), bob_failed()]), ORIGINAL);
        for cut in 0..dsn.len() {
            let _ = parse_dsn(&dsn[..cut]);
        }
    }

    fn address() -> impl Strategy<Value = String> {
        ("[a-z0-9._+-]{1,12}", "[a-z0-9-]{1,10}\\.[a-z]{2,4}").prop_map(|(l, d)| format!("{l}@{d}"))
    }

    fn recipient() -> impl Strategy<Value = DsnRecipient> {
        (
            address(),
            // xtext: a '+' in ORCPT starts an escape.
            proptest::option::of(address().prop_map(|a| a.replace('+', "_"))),
            prop_oneof![
                Just(Action::Failed),
                Just(Action::Delayed),
                Just(Action::Delivered),
                Just(Action::Relayed),
                Just(Action::Expanded),
            ],
            (2u8..6, 0u16..8, 0u16..1000),
            proptest::option::of("[a-z0-9.-]{1,20}"),
            proptest::option::of("[ -~]{0,200}"),
            proptest::option::of(0u64..4_000_000_000),
        )
            .prop_map(
                |(final_recipient, orcpt, action, (c, s, d), remote_mta, reason, last)| {
                    let class = if c == 3 { 2 } else { c };
                    DsnRecipient {
                        original_recipient: orcpt.map(|o| format!("rfc822;{o}")),
                        final_recipient,
                        action,
                        status: format!("{class}.{s}.{d}"),
                        remote_mta,
                        diagnostic_code: reason.map(|r| format!("smtp; {}", r.trim())),
                        last_attempt: last.map(system_time),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn build_then_parse(
            recipients in proptest::collection::vec(recipient(), 1..6),
            envid in proptest::option::of("[A-Za-z0-9]{1,20}"),
            original in proptest::collection::vec(any::<u8>(), 0..400),
            headers_only in any::<bool>(),
        ) {
            let mut req = request(recipients.clone());
            req.original_envelope_id = envid.clone();
            if headers_only {
                req.return_content = ReturnContent::HeadersOnly;
            }
            let dsn = build_dsn(&req, &original);
            let parsed = parse_dsn(&dsn).unwrap();
            prop_assert_eq!(parsed.reporting_mta.as_deref(), Some("gw.moon.example"));
            prop_assert_eq!(parsed.original_envelope_id, envid);
            prop_assert_eq!(parsed.recipients.len(), recipients.len());
            for (p, r) in parsed.recipients.iter().zip(&recipients) {
                prop_assert_eq!(&p.final_recipient, &r.final_recipient);
                prop_assert_eq!(
                    p.original_recipient.as_deref(),
                    r.original_recipient.as_deref().and_then(|o| o.strip_prefix("rfc822;"))
                );
                prop_assert_eq!(p.action, r.action);
                prop_assert_eq!(&p.status, &r.status);
                prop_assert_eq!(&p.remote_mta, &r.remote_mta);
                let expected_diag = r.diagnostic_code.as_ref().map(|d| d.trim().split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "));
                let got_diag = p.diagnostic_code.as_ref().map(|d| d.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "));
                prop_assert_eq!(got_diag, expected_diag);
                prop_assert_eq!(p.last_attempt_date.clone(), r.last_attempt.map(format_date));
            }
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_dsn(&input);
            let mut framed = b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n".to_vec();
            framed.extend_from_slice(&input);
            let _ = parse_dsn(&framed);
        }
    }
}
