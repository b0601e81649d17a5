//! The DSN a gateway sends is read by people and by MTAs and mail clients
//! (RFC 3461/3462/3464): its exact text is a contract. One report with a
//! failed and a delayed recipient, an envelope ID, an original recipient
//! and the returned headers, at a fixed date.

use std::time::{Duration, UNIX_EPOCH};

use deepmail_smtp::dsn::{build_dsn, Action, DsnRecipient, DsnRequest, ReturnContent};
use deepmail_smtp::{Recipient, Reply};

#[test]
fn a_dsn_reads_as_it_always_has() {
    let at = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let failed = DsnRecipient::new(
        &Recipient {
            mailbox: "ada@moon.example".into(),
            params: vec![],
        },
        Action::Failed,
        "5.1.1",
    )
    .with_reply(&Reply::new(550, Some("5.1.1"), "no such user here"));
    let mut delayed = DsnRecipient::new(
        &Recipient {
            mailbox: "log@moon.example".into(),
            params: vec![],
        },
        Action::Delayed,
        "4.4.7",
    );
    delayed.original_recipient = Some("rfc822;log@moon.example".into());
    delayed.remote_mta = Some("gw.moon.example".into());
    delayed.last_attempt = Some(at - Duration::from_secs(600));
    let request = DsnRequest {
        reporting_mta: "gw.earth.example".into(),
        from: "MAILER-DAEMON@gw.earth.example".into(),
        to: "ops@earth.example".into(),
        original_envelope_id: Some("QQ314159".into()),
        arrival_date: Some(at - Duration::from_secs(86_400)),
        date: at,
        message_id: "<dsn.1@gw.earth.example>".into(),
        recipients: vec![failed, delayed],
        return_content: ReturnContent::HeadersOnly,
    };
    let original =
        b"From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: status\r\n\r\nAll nominal.\r\n";
    let dsn = String::from_utf8(build_dsn(&request, original)).unwrap();
    assert!(
        !dsn.replace("\r\n", "").contains('\n'),
        "every line ends in CRLF"
    );
    insta::assert_snapshot!("dsn", dsn.replace("\r\n", "\n"));
}
