//! The SMTP server session (RFC 5321, RFC 3207 STARTTLS, RFC 2920
//! pipelining) fed hostile bytes in pieces: every question is answered
//! (accept or refuse by the input itself), a STARTTLS goes on as if the
//! handshake succeeded, and memory stays bounded by the session's limits.
#![no_main]
use deepmail_smtp::server::{Event, ServerSession, SessionConfig};
use deepmail_smtp::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config = SessionConfig::new("mx.moon.example");
    config.max_message_bytes = 1 << 16;
    config.max_recipients = 8;
    config.starttls_available = true;
    let (mut session, _greeting) = ServerSession::new(&config);
    let verdict = data.first().copied().unwrap_or(0);
    for piece in data.chunks(61) {
        session.feed(piece);
        while let Some(event) = session.next_event() {
            let yes = Reply::new(250, Some("2.0.0"), "ok");
            let no = Reply::new(550, Some("5.7.1"), "no");
            match event {
                Event::MailFrom { .. } | Event::RcptTo { .. } | Event::Message { .. } => {
                    let _ = session.answer(if verdict % 3 == 0 { no } else { yes });
                }
                Event::StartTls(_) => session.tls_established(),
                Event::Quit(_) | Event::Close(_) => return,
                Event::Reply(_) => {}
            }
        }
    }
});
