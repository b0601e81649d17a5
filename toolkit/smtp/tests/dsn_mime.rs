//! The DSNs from `build_dsn` read by an independent MIME parser
//! (mail-parser): the right headers, three parts of the right types, the
//! original returned whole or as headers; and `parse_dsn` on reports
//! written by other MTAs (Postfix, a DSN forwarded inside another message).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deepmail_smtp::dsn::{
    build_dsn, dsn_envelope, parse_dsn, Action, DsnRecipient, DsnRequest, ReturnContent,
};
use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn request(recipients: Vec<DsnRecipient>, return_content: ReturnContent) -> DsnRequest {
    DsnRequest {
        reporting_mta: "gw.moon.example".into(),
        from: "MAILER-DAEMON@gw.moon.example".into(),
        to: "ann@earth.example".into(),
        original_envelope_id: Some("ENV-42".into()),
        arrival_date: Some(at(1_700_000_000)),
        date: at(1_700_003_600),
        message_id: "dsn.7@gw.moon.example".into(),
        recipients,
        return_content,
    }
}

fn failed(mailbox: &str) -> DsnRecipient {
    DsnRecipient {
        original_recipient: Some(format!("rfc822;{mailbox}")),
        final_recipient: mailbox.into(),
        action: Action::Failed,
        status: "5.1.1".into(),
        remote_mta: Some("mx.moon.example".into()),
        diagnostic_code: Some(format!("smtp; 550 5.1.1 <{mailbox}>: no such user")),
        last_attempt: Some(at(1_700_003_000)),
    }
}

fn delayed(mailbox: &str) -> DsnRecipient {
    DsnRecipient {
        original_recipient: None,
        final_recipient: mailbox.into(),
        action: Action::Delayed,
        status: "4.4.1".into(),
        remote_mta: None,
        diagnostic_code: None,
        last_attempt: None,
    }
}

const ORIGINAL: &[u8] = b"From: Ann <ann@earth.example>\r\n\
To: bob@moon.example\r\n\
Subject: Greetings from Earth\r\n\
Message-ID: <orig.1@earth.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello Moon.\r\n\
.\r\n\
--not-a-boundary\r\n";

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    let ct = part.content_type().expect("part has a Content-Type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
}

#[test]
fn mail_parser_sees_a_multipart_report_with_three_parts() {
    let req = request(
        vec![failed("bob@moon.example"), delayed("carl@moon.example")],
        ReturnContent::Full,
    );
    let dsn = build_dsn(&req, ORIGINAL);
    let msg = MessageParser::default()
        .parse(&dsn)
        .expect("mail-parser parses the DSN");

    assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(msg.message_id(), Some("dsn.7@gw.moon.example"));
    let from = msg.from().and_then(|a| a.first()).and_then(|a| a.address());
    assert_eq!(from, Some("MAILER-DAEMON@gw.moon.example"));
    let to = msg.to().and_then(|a| a.first()).and_then(|a| a.address());
    assert_eq!(to, Some("ann@earth.example"));
    let date = msg.date().expect("a parseable Date");
    assert_eq!(date.to_timestamp(), 1_700_003_600);
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(msg.header_raw("MIME-Version").map(str::trim), Some("1.0"));

    let root = msg.root_part();
    let ct = root.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let subs = root.sub_parts().expect("multipart").to_vec();
    assert_eq!(subs.len(), 3);
    let parts: Vec<_> = subs.iter().map(|id| &msg.parts[*id as usize]).collect();

    assert_eq!(content_type(parts[0]), "text/plain");
    let text = parts[0].text_contents().unwrap();
    assert!(text.contains("<bob@moon.example>: 550 5.1.1"), "{text}");
    assert!(text.contains("<carl@moon.example>: status 4.4.1"), "{text}");

    assert_eq!(content_type(parts[1]), "message/delivery-status");
    let status = String::from_utf8_lossy(parts[1].contents()).into_owned();
    assert!(status.contains("Reporting-MTA: dns; gw.moon.example"));
    assert!(status.contains("Original-Envelope-Id: ENV-42"));
    assert!(status.contains("Final-Recipient: rfc822; carl@moon.example"));

    assert_eq!(content_type(parts[2]), "message/rfc822");
    let returned = parts[2]
        .message()
        .expect("the original as a nested message");
    assert_eq!(returned.subject(), Some("Greetings from Earth"));
    assert_eq!(returned.message_id(), Some("orig.1@earth.example"));
    assert!(returned.body_text(0).unwrap().contains("Hello Moon."));

    let parsed = parse_dsn(&dsn).unwrap();
    assert_eq!(parsed.recipients.len(), 2);
    assert_eq!(parsed.recipients[1].action, Action::Delayed);
    assert_eq!(parsed.recipients[1].status, "4.4.1");
    assert_eq!(
        parsed.arrival_date.as_deref(),
        Some("Tue, 14 Nov 2023 22:13:20 +0000")
    );

    let env = dsn_envelope(&req);
    assert_eq!(env.reverse_path, "");
    assert_eq!(env.recipients[0].mailbox, "ann@earth.example");
}

#[test]
fn headers_only_is_text_rfc822_headers() {
    let dsn = build_dsn(
        &request(vec![failed("bob@moon.example")], ReturnContent::HeadersOnly),
        ORIGINAL,
    );
    let msg = MessageParser::default().parse(&dsn).unwrap();
    let subs = msg.root_part().sub_parts().unwrap().to_vec();
    let returned = &msg.parts[subs[2] as usize];
    assert_eq!(content_type(returned), "text/rfc822-headers");
    let text = String::from_utf8_lossy(returned.contents()).into_owned();
    assert!(text.contains("Subject: Greetings from Earth"));
    assert!(!text.contains("Hello Moon."));
}

#[test]
fn global_dsn_for_utf8_addresses() {
    let mut r = failed("j\u{fc}rgen@moon.example");
    r.original_recipient = None;
    let mut req = request(vec![r], ReturnContent::Full);
    req.to = "\u{e1}nn@earth.example".into();
    let original = "From: \u{e1}nn@earth.example\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nHallo\r\n";
    let dsn = build_dsn(&req, original.as_bytes());
    let msg = MessageParser::default().parse(&dsn).unwrap();
    let ct = msg.root_part().content_type().unwrap();
    assert_eq!(ct.attribute("report-type"), Some("global-delivery-status"));
    let subs = msg.root_part().sub_parts().unwrap().to_vec();
    assert_eq!(
        content_type(&msg.parts[subs[1] as usize]),
        "message/global-delivery-status"
    );
    let returned = &msg.parts[subs[2] as usize];
    assert_eq!(content_type(returned), "message/global");
    assert_eq!(
        returned.message().and_then(|m| m.subject()),
        Some("Gr\u{fc}\u{df}e")
    );
    let parsed = parse_dsn(&dsn).unwrap();
    assert!(parsed.global);
    assert_eq!(
        parsed.recipients[0].final_recipient,
        "j\u{fc}rgen@moon.example"
    );
}

#[test]
fn parses_a_postfix_bounce() {
    let postfix = b"Return-Path: <>\r\n\
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: ann@example.com\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"9B0F1234.1700000000/mail.example.com\"\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--9B0F1234.1700000000/mail.example.com\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at host mail.example.com.\r\n\
\r\n\
--9B0F1234.1700000000/mail.example.com\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mail.example.com\r\n\
X-Postfix-Queue-ID: 9B0F1234\r\n\
X-Postfix-Sender: rfc822; ann@example.com\r\n\
Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; bob@example.net\r\n\
Original-Recipient: rfc822;bob@example.net\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.example.net\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected:\r\n\
\x20   User unknown in virtual mailbox table\r\n\
\r\n\
--9B0F1234.1700000000/mail.example.com\r\n\
Content-Description: Undelivered Message\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: hi\r\n\
\r\n\
x\r\n\
\r\n\
--9B0F1234.1700000000/mail.example.com--\r\n";
    let parsed = parse_dsn(postfix).unwrap();
    assert_eq!(parsed.reporting_mta.as_deref(), Some("mail.example.com"));
    assert_eq!(parsed.recipients.len(), 1);
    let r = &parsed.recipients[0];
    assert_eq!(r.final_recipient, "bob@example.net");
    assert_eq!(r.original_recipient.as_deref(), Some("bob@example.net"));
    assert_eq!(r.action, Action::Failed);
    assert_eq!(r.status, "5.1.1");
    let diag = r.diagnostic_code.as_deref().unwrap();
    assert!(diag.starts_with("smtp; 550 5.1.1"));
    assert!(diag.ends_with("User unknown in virtual mailbox table"));
}

#[test]
fn finds_a_report_forwarded_inside_another_multipart() {
    let inner = build_dsn(
        &request(vec![failed("bob@moon.example")], ReturnContent::HeadersOnly),
        ORIGINAL,
    );
    let inner = String::from_utf8(inner).unwrap();
    let (inner_head, inner_body) = inner.split_once("\r\n\r\n").unwrap();
    let ct_line = inner_head
        .split("\r\nMIME-Version: 1.0\r\n")
        .nth(1)
        .unwrap();
    let outer = format!(
        "Subject: Fwd\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
         --outer\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
         --outer\r\n{ct_line}\r\n\r\n{inner_body}\r\n--outer--\r\n"
    );
    let parsed = parse_dsn(outer.as_bytes()).unwrap();
    assert_eq!(parsed.recipients[0].final_recipient, "bob@moon.example");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_original_gives_a_well_formed_report(
        body in proptest::collection::vec(
            prop_oneof![
                Just(b"--".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"=_deepmail-dsn-".to_vec()),
                proptest::collection::vec(any::<u8>(), 1..8),
            ],
            0..60,
        ),
        headers_only in any::<bool>(),
    ) {
        let mut original = b"Subject: fuzz\r\n\r\n".to_vec();
        for piece in body {
            original.extend_from_slice(&piece);
        }
        let rc = if headers_only { ReturnContent::HeadersOnly } else { ReturnContent::Full };
        let dsn = build_dsn(&request(vec![failed("bob@moon.example")], rc), &original);
        let msg = MessageParser::default().parse(&dsn).unwrap();
        let subs = msg.root_part().sub_parts().unwrap().to_vec();
        prop_assert_eq!(subs.len(), 3);
        let parsed = parse_dsn(&dsn).unwrap();
        prop_assert_eq!(parsed.recipients.len(), 1);
        prop_assert_eq!(&parsed.recipients[0].final_recipient, "bob@moon.example");
    }
}
