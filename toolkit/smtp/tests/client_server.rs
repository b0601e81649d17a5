//! The relay client against this crate's own SMTP server (`serve`) on
//! loopback TCP: two independent implementations of framing, pipelining
//! and ESMTP parameters checking each other. Hundreds of messages with
//! hostile content (leading dots, bare CR/LF, 8-bit bytes, lone `.` lines)
//! on one session must arrive exactly as CRLF-normalised; per-recipient
//! refusals, DSN parameters, SMTPUTF8, SIZE and STARTTLS must carry over.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepmail_smtp::client::{RelayConfig, RelayError, SmtpClient, TlsMode};
use deepmail_smtp::serve::{serve, Handler, ServerConfig, SessionInfo};
use deepmail_smtp::{Envelope, Param, Recipient, Reply};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Accepts everyone but `nobody@…`, keeps every message.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(SessionInfo, Envelope, Vec<u8>)>>,
}

impl Handler for Recorder {
    async fn mail_from(&self, _: &SessionInfo, _: &str, _: &[Param]) -> Reply {
        Reply::new(250, Some("2.1.0"), "sender OK")
    }

    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, recipient: &Recipient) -> Reply {
        if recipient.mailbox.starts_with("nobody@") {
            Reply::new(550, Some("5.1.1"), "no such user")
        } else {
            Reply::new(250, Some("2.1.5"), "recipient OK")
        }
    }

    async fn message(&self, info: &SessionInfo, envelope: Envelope, content: Vec<u8>) -> Reply {
        let mut messages = self.messages.lock().unwrap();
        messages.push((info.clone(), envelope, content));
        Reply::new(250, Some("2.0.0"), format!("queued as {}", messages.len()))
    }
}

struct Server {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    _stop: oneshot::Sender<()>,
}

async fn start(config: ServerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        Arc::new(config),
        recorder.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        recorder,
        _stop: stop,
    }
}

fn client_config() -> RelayConfig {
    let mut c = RelayConfig::new("gw.moon.example");
    c.command_timeout = Duration::from_secs(10);
    c.data_timeout = Duration::from_secs(10);
    c
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        reverse_path: from.into(),
        mail_params: vec![],
        recipients: to
            .iter()
            .map(|m| Recipient {
                mailbox: m.to_string(),
                params: vec![],
            })
            .collect(),
    }
}

/// What the receiving server must see: every line ending CRLF, and a
/// final CRLF.
fn normalised(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if content.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A small deterministic generator of hostile message bodies.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn content(&mut self) -> Vec<u8> {
        let mut out = b"Subject: test\r\n\r\n".to_vec();
        let pieces = self.next() % 200;
        for _ in 0..pieces {
            let piece: &[u8] = match self.next() % 9 {
                0 => b".",
                1 => b"\r\n",
                2 => b"\n",
                3 => b"\r",
                4 => b"\r\n.\r\n",
                5 => b"..",
                6 => "\u{e9}t\u{e9} ".as_bytes(),
                7 => b"\n.\n",
                _ => b"plain words ",
            };
            out.extend_from_slice(piece);
        }
        out
    }
}

#[tokio::test]
async fn hostile_content_survives_both_implementations() {
    let server = start(ServerConfig::new("mx.moon.example")).await;
    let mut client = SmtpClient::connect(server.addr, &client_config())
        .await
        .unwrap();
    let ext = client.extensions().clone();
    assert!(ext.pipelining && ext.eight_bit_mime && ext.dsn && ext.smtputf8);
    let mut rng = Xorshift(0x5eed_1234_abcd_ef01);
    let mut sent = Vec::new();
    for i in 0..300 {
        let content = rng.content();
        let to = format!("r{i}@moon.example");
        let d = client
            .send(&envelope("ann@earth.example", &[to.as_str()]), &content)
            .await
            .unwrap();
        assert!(d.all_accepted(), "message {i}: {:?}", d);
        sent.push(content);
    }
    client.quit().await.unwrap();
    let messages = server.recorder.messages.lock().unwrap();
    assert_eq!(messages.len(), sent.len());
    for (i, ((_, _, got), content)) in messages.iter().zip(&sent).enumerate() {
        assert!(
            *got == normalised(content),
            "message {i} differs:\n got {:?}\nwant {:?}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&normalised(content))
        );
    }
}

#[tokio::test]
async fn refusals_and_dsn_parameters_carry_over() {
    let server = start(ServerConfig::new("mx.moon.example")).await;
    let mut client = SmtpClient::connect(server.addr, &client_config())
        .await
        .unwrap();
    let env = Envelope {
        reverse_path: "ann@earth.example".into(),
        mail_params: vec![
            Param::new("RET", Some("HDRS")),
            Param::new("ENVID", Some("QQ314159")),
        ],
        recipients: vec![
            Recipient {
                mailbox: "bob@moon.example".into(),
                params: vec![
                    Param::new("NOTIFY", Some("FAILURE,DELAY")),
                    Param::new("ORCPT", Some("rfc822;bob@moon.example")),
                ],
            },
            Recipient {
                mailbox: "nobody@moon.example".into(),
                params: vec![],
            },
            Recipient {
                mailbox: "j\u{fc}rgen@moon.example".into(),
                params: vec![],
            },
        ],
    };
    let d = client
        .send(&env, b"Subject: hi\r\n\r\nhello\r\n")
        .await
        .unwrap();
    assert!(d.recipients[0].accepted && d.recipients[2].accepted);
    let nobody = &d.recipients[1];
    assert!(nobody.is_permanent());
    assert_eq!(nobody.reply.enhanced.as_deref(), Some("5.1.1"));
    assert_eq!(d.data_reply.as_ref().map(|r| r.code), Some(250));
    client.quit().await.unwrap();

    let messages = server.recorder.messages.lock().unwrap();
    let (_, got, _) = &messages[0];
    let has = |params: &[Param], k: &str, v: Option<&str>| {
        params
            .iter()
            .any(|p| p.keyword.eq_ignore_ascii_case(k) && p.value.as_deref() == v)
    };
    assert!(has(&got.mail_params, "RET", Some("HDRS")), "{got:?}");
    assert!(has(&got.mail_params, "ENVID", Some("QQ314159")), "{got:?}");
    assert!(has(&got.mail_params, "SMTPUTF8", None), "{got:?}");
    let mailboxes: Vec<_> = got.recipients.iter().map(|r| r.mailbox.as_str()).collect();
    assert_eq!(mailboxes, ["bob@moon.example", "j\u{fc}rgen@moon.example"]);
    assert!(has(
        &got.recipients[0].params,
        "NOTIFY",
        Some("FAILURE,DELAY")
    ));
    assert!(has(
        &got.recipients[0].params,
        "ORCPT",
        Some("rfc822;bob@moon.example")
    ));
}

#[tokio::test]
async fn size_limit_is_honoured_before_sending() {
    let server = start(ServerConfig {
        max_message_bytes: 1000,
        ..ServerConfig::new("mx.moon.example")
    })
    .await;
    let mut client = SmtpClient::connect(server.addr, &client_config())
        .await
        .unwrap();
    assert_eq!(client.extensions().size, Some(1000));
    let env = envelope("ann@earth.example", &["bob@moon.example"]);
    let err = client.send(&env, &[b'x'; 2000]).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Incompatible {
                status: "5.3.4",
                ..
            }
        ),
        "{err}"
    );
    client.send(&env, b"small\r\n").await.unwrap();
    client.quit().await.unwrap();
    assert_eq!(server.recorder.messages.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn starttls_with_the_real_server() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::generate_simple_self_signed(vec!["mx.moon.example".to_string()]).unwrap();
    let cert: CertificateDer<'static> = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let server = start(ServerConfig {
        tls: Some(Arc::new(server_tls)),
        ..ServerConfig::new("mx.moon.example")
    })
    .await;
    let mut config = client_config();
    config.tls = TlsMode::Required(
        Arc::new(client_tls),
        ServerName::try_from("mx.moon.example").unwrap(),
    );
    let mut client = SmtpClient::connect(server.addr, &config).await.unwrap();
    assert!(client.is_tls());
    assert!(
        !client.extensions().starttls,
        "not offered again inside TLS"
    );
    let d = client
        .send(
            &envelope("ann@earth.example", &["bob@moon.example"]),
            b"secret\r\n",
        )
        .await
        .unwrap();
    assert!(d.all_accepted());
    client.quit().await.unwrap();
    let messages = server.recorder.messages.lock().unwrap();
    assert!(messages[0].0.tls);
    assert_eq!(messages[0].2, b"secret\r\n");
}
