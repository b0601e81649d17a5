//! The relay client against a scripted fake SMTP server on loopback TCP:
//! per-recipient outcomes, PIPELINING, RSET and session reuse, the
//! ESMTP parameters, local refusals (8BITMIME, SMTPUTF8, SIZE), HELO
//! fallback, STARTTLS (and plaintext injected after it), timeouts,
//! refused and broken sessions, content framing, and load (a thousand
//! messages on one session, a 10 MB message).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deepmail_smtp::client::{
    dot_stuff, relay, RelayConfig, RelayError, SmtpClient, Stage, TlsMode,
};
use deepmail_smtp::{Envelope, Param, Recipient};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One step of the fake server's script.
#[derive(Clone)]
enum Step {
    /// Write these bytes (replies, with their CRLFs).
    Send(String),
    /// Read one line; it must be exactly this (without CRLF).
    Expect(String),
    /// Read message content up to and including the `.CRLF` line.
    Data,
    /// Nothing must arrive for a while: the client is waiting for a reply.
    Quiet,
    /// TLS handshake as the server.
    StartTls(Arc<rustls::ServerConfig>),
    /// Stop answering, keep the connection open.
    Hang,
    /// Close the connection.
    Close,
}

fn send(s: &str) -> Step {
    Step::Send(s.to_string())
}

fn expect(s: &str) -> Step {
    Step::Expect(s.to_string())
}

/// What the fake server received.
#[derive(Debug, Default)]
struct Transcript {
    lines: Vec<String>,
    data: Vec<Vec<u8>>,
}

struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Conn {
    /// One raw line including its LF; `None` at EOF.
    async fn raw_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                return Some(self.buf.drain(..=i).collect());
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = self.io.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Message content up to and including the `.CRLF` line.
    async fn data(&mut self) -> Option<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if self.buf.starts_with(b".\r\n") {
                return Some(self.buf.drain(..3).collect());
            }
            if let Some(i) = memchr::memmem::find(&self.buf[scanned..], b"\r\n.\r\n") {
                return Some(self.buf.drain(..scanned + i + 5).collect());
            }
            scanned = self.buf.len().saturating_sub(4);
            let mut chunk = vec![0u8; 256 * 1024];
            let n = self.io.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Serves one connection with `script`; the handle yields what was received.
async fn fake_server(script: Vec<Step>) -> (SocketAddr, JoinHandle<Transcript>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = Conn {
            io: Box::new(tcp),
            buf: Vec::new(),
        };
        let mut t = Transcript::default();
        for step in script {
            match step {
                Step::Send(s) => conn.io.write_all(s.as_bytes()).await.unwrap(),
                Step::Expect(want) => {
                    let line = conn.raw_line().await.expect("client closed early");
                    let line = String::from_utf8_lossy(&line).into_owned();
                    let line = line.trim_end_matches(['\r', '\n']).to_string();
                    assert_eq!(line, want, "transcript so far: {:?}", t.lines);
                    t.lines.push(line);
                }
                Step::Data => {
                    let data = conn.data().await.expect("client closed in DATA");
                    t.data.push(data);
                }
                Step::Quiet => {
                    assert!(conn.buf.is_empty(), "client pipelined: {:?}", conn.buf);
                    let mut byte = [0u8; 1];
                    let read =
                        tokio::time::timeout(Duration::from_millis(150), conn.io.read(&mut byte))
                            .await;
                    assert!(read.is_err(), "client sent more without waiting");
                }
                Step::StartTls(config) => {
                    assert!(conn.buf.is_empty());
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let (placeholder, _) = tokio::io::duplex(1);
                    let plain = std::mem::replace(&mut conn.io, Box::new(placeholder));
                    let tls = acceptor.accept(plain).await.unwrap();
                    conn.io = Box::new(tls);
                }
                Step::Hang => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Step::Close => return t,
            }
        }
        t
    });
    (addr, task)
}

fn config() -> RelayConfig {
    let mut c = RelayConfig::new("gw.moon.example");
    c.connect_timeout = Duration::from_secs(5);
    c.command_timeout = Duration::from_secs(5);
    c.data_timeout = Duration::from_secs(5);
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

const GREETING: &str = "220 mx.moon.example ESMTP\r\n";
const EHLO_PLAIN: &str = "250-mx.moon.example\r\n250 8BITMIME\r\n";
const EHLO_PIPE: &str =
    "250-mx.moon.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 20000000\r\n";

fn hello(ehlo: &str) -> Vec<Step> {
    vec![send(GREETING), expect("EHLO gw.moon.example"), send(ehlo)]
}

#[tokio::test]
async fn non_pipelined_transaction_with_a_refused_recipient() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        Step::Quiet,
        send("250 2.1.0 ok\r\n"),
        expect("RCPT TO:<bob@moon.example>"),
        Step::Quiet,
        send("250 2.1.5 ok\r\n"),
        expect("RCPT TO:<nobody@moon.example>"),
        send("550-5.1.1 <nobody@moon.example>:\r\n550 5.1.1 no such user\r\n"),
        expect("DATA"),
        send("354 go ahead\r\n"),
        Step::Data,
        send("250 2.0.0 queued as 42\r\n"),
        expect("QUIT"),
        send("221 2.0.0 bye\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    assert!(client.extensions().eight_bit_mime);
    assert!(!client.extensions().pipelining);
    assert!(!client.is_tls());
    let env = envelope(
        "ann@earth.example",
        &["bob@moon.example", "nobody@moon.example"],
    );
    let delivery = client
        .send(&env, b"Subject: hi\n\n.hidden dot\nbye")
        .await
        .unwrap();
    assert_eq!(delivery.recipients.len(), 2);
    let bob = &delivery.recipients[0];
    assert!(bob.accepted);
    assert_eq!(bob.reply.code, 250);
    assert_eq!(bob.reply.lines, ["queued as 42"]);
    let nobody = &delivery.recipients[1];
    assert!(!nobody.accepted && nobody.is_permanent());
    assert_eq!(nobody.reply.code, 550);
    assert_eq!(nobody.reply.enhanced.as_deref(), Some("5.1.1"));
    assert_eq!(
        nobody.reply.lines,
        ["<nobody@moon.example>:", "no such user"]
    );
    assert_eq!(delivery.data_reply.as_ref().map(|r| r.code), Some(250));
    assert!(!delivery.all_accepted());
    client.quit().await.unwrap();
    let t = server.await.unwrap();
    assert_eq!(
        t.data,
        [b"Subject: hi\r\n\r\n..hidden dot\r\nbye\r\n.\r\n".to_vec()]
    );
}

#[tokio::test]
async fn pipelining_sends_mail_rcpt_and_data_in_one_write() {
    let mut script = hello(EHLO_PIPE);
    script.extend([
        // No reply before DATA has arrived: a client waiting for the MAIL
        // reply would time out here.
        expect("MAIL FROM:<ann@earth.example> SIZE=18"),
        expect("RCPT TO:<bob@moon.example>"),
        expect("RCPT TO:<carl@moon.example>"),
        expect("RCPT TO:<dan@moon.example>"),
        expect("DATA"),
        send(
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n451 4.2.1 mailbox busy\r\n250 2.1.5 ok\r\n354 go\r\n",
        ),
        Step::Data,
        send("250 2.0.0 queued\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    assert!(client.extensions().pipelining);
    assert_eq!(client.extensions().size, Some(20_000_000));
    let env = envelope(
        "ann@earth.example",
        &["bob@moon.example", "carl@moon.example", "dan@moon.example"],
    );
    let delivery = client
        .send(&env, b"Subject: x\r\n\r\nhi\r\n")
        .await
        .unwrap();
    let accepted: Vec<_> = delivery
        .accepted()
        .map(|r| r.recipient.mailbox.as_str())
        .collect();
    assert_eq!(accepted, ["bob@moon.example", "dan@moon.example"]);
    let carl = &delivery.recipients[1];
    assert!(carl.is_transient());
    assert_eq!(carl.reply.enhanced.as_deref(), Some("4.2.1"));
    let t = server.await.unwrap();
    // Already ends with CRLF: no blank line added.
    assert_eq!(t.data, [b"Subject: x\r\n\r\nhi\r\n.\r\n".to_vec()]);
}

#[tokio::test]
async fn all_recipients_refused_sends_no_data_and_the_session_is_reused() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<x@moon.example>"),
        send("550 5.1.1 no\r\n"),
        expect("RCPT TO:<y@moon.example>"),
        send("450 4.2.0 later\r\n"),
        // No DATA: the transaction is reset.
        expect("RSET"),
        send("250 ok\r\n"),
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<bob@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        send("250 queued\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(
            &envelope("ann@earth.example", &["x@moon.example", "y@moon.example"]),
            b"hi\r\n",
        )
        .await
        .unwrap();
    assert!(d.data_reply.is_none());
    assert!(d.recipients[0].is_permanent());
    assert!(d.recipients[1].is_transient());
    assert!(client.is_usable());
    let d = client
        .send(
            &envelope("ann@earth.example", &["bob@moon.example"]),
            b"hi\r\n",
        )
        .await
        .unwrap();
    assert!(d.all_accepted());
    server.await.unwrap();
}

#[tokio::test]
async fn pipelined_all_refused_and_data_refused() {
    let mut script = hello(EHLO_PIPE);
    script.extend([
        expect("MAIL FROM:<> SIZE=2"),
        expect("RCPT TO:<x@moon.example>"),
        expect("DATA"),
        send("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(&envelope("", &["x@moon.example"]), b"hi")
        .await
        .unwrap();
    assert!(d.data_reply.is_none());
    assert_eq!(d.recipients[0].reply.code, 550);
    server.await.unwrap();
}

#[tokio::test]
async fn pipelined_all_refused_but_data_accepted_gets_a_lone_dot() {
    // RFC 2920 3.1: the client cannot assume DATA fails; if it is accepted
    // the client sends an empty message's dot.
    let mut script = hello(EHLO_PIPE);
    script.extend([
        expect("MAIL FROM:<ann@earth.example> SIZE=8"),
        expect("RCPT TO:<x@moon.example>"),
        expect("DATA"),
        send("250 ok\r\n550 5.1.1 no\r\n354 go\r\n"),
        Step::Data,
        send("554 5.5.1 no recipients\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(
            &envelope("ann@earth.example", &["x@moon.example"]),
            b"secret\r\n",
        )
        .await
        .unwrap();
    assert!(!d.recipients[0].accepted);
    assert!(client.is_usable());
    let t = server.await.unwrap();
    assert_eq!(t.data, [b".\r\n".to_vec()], "the content must not be sent");
}

#[tokio::test]
async fn end_of_data_failure_applies_to_every_accepted_recipient() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<a@moon.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<b@moon.example>"),
        send("550 5.1.1 unknown\r\n"),
        expect("RCPT TO:<c@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        send("452 4.3.1 insufficient system storage\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(
            &envelope(
                "ann@earth.example",
                &["a@moon.example", "b@moon.example", "c@moon.example"],
            ),
            b"x",
        )
        .await
        .unwrap();
    assert_eq!(d.data_reply.as_ref().map(|r| r.code), Some(452));
    let codes: Vec<_> = d.recipients.iter().map(|r| r.reply.code).collect();
    assert_eq!(codes, [452, 550, 452]);
    assert!(d.recipients.iter().all(|r| !r.accepted));
    assert!(d.recipients[0].is_transient() && d.recipients[1].is_permanent());
    server.await.unwrap();
}

#[tokio::test]
async fn data_command_refused_applies_to_accepted_recipients() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<a@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("554 5.7.0 no thanks\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(&envelope("ann@earth.example", &["a@moon.example"]), b"x")
        .await
        .unwrap();
    assert!(d.recipients[0].is_permanent());
    assert_eq!(d.recipients[0].reply.code, 554);
    let t = server.await.unwrap();
    assert!(t.data.is_empty());
}

#[tokio::test]
async fn mail_refused_is_an_error_and_the_session_is_reused() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<spam@earth.example>"),
        send("550 5.7.1 go away\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
        expect("MAIL FROM:<ann@earth.example>"),
        send("451 4.3.0 try later\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
        expect("QUIT"),
        send("221 bye\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let err = client
        .send(&envelope("spam@earth.example", &["a@moon.example"]), b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Refused {
                stage: Stage::Mail,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_permanent());
    assert_eq!(err.reply().map(|r| r.code), Some(550));
    assert!(client.is_usable());
    let err = client
        .send(&envelope("ann@earth.example", &["a@moon.example"]), b"x")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    client.quit().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn pipelined_mail_refused_reads_every_reply() {
    let mut script = hello(EHLO_PIPE);
    script.extend([
        expect("MAIL FROM:<spam@earth.example> SIZE=1"),
        expect("RCPT TO:<a@moon.example>"),
        expect("DATA"),
        send("550 5.7.1 go away\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n"),
        expect("RSET"),
        send("250 ok\r\n"),
        expect("MAIL FROM:<ann@earth.example> SIZE=1"),
        expect("RCPT TO:<a@moon.example>"),
        expect("DATA"),
        send("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let err = client
        .send(&envelope("spam@earth.example", &["a@moon.example"]), b"x")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RelayError::Refused {
            stage: Stage::Mail,
            ..
        }
    ));
    let d = client
        .send(&envelope("ann@earth.example", &["a@moon.example"]), b"x")
        .await
        .unwrap();
    assert!(d.all_accepted());
    server.await.unwrap();
}

#[tokio::test]
async fn helo_fallback_and_local_8bit_refusal() {
    let script = vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("502 5.5.1 what?\r\n"),
        expect("HELO gw.moon.example"),
        send("250 mx.moon.example\r\n"),
        // The 8-bit message is refused without a word to the server.
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<bob@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
    ];
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    assert_eq!(client.extensions(), &Default::default());
    let env = envelope("ann@earth.example", &["bob@moon.example"]);
    let err = client
        .send(&env, "Subject: caf\u{e9}\r\n\r\n".as_bytes())
        .await
        .unwrap_err();
    match &err {
        RelayError::Incompatible { status, reason } => {
            assert_eq!(*status, "5.6.3");
            assert!(reason.contains("8BITMIME"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(err.is_permanent());
    assert!(client.is_usable());
    client.send(&env, b"Subject: cafe\r\n\r\n").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn esmtp_parameters_follow_the_offer() {
    let ehlo = "250-mx.moon.example\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 SIZE\r\n";
    let content = "Subject: Gr\u{fc}\u{df}e\r\n\r\n";
    let mut script = hello(ehlo);
    script.extend([
        expect(&format!(
            "MAIL FROM:<ann@earth.example> BODY=8BITMIME SMTPUTF8 SIZE={} RET=HDRS ENVID=abc+2B1",
            content.len()
        )),
        send("250 ok\r\n"),
        expect("RCPT TO:<j\u{fc}rgen@moon.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;j\u{fc}rgen@moon.example"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let ext = client.extensions().clone();
    assert!(ext.dsn && ext.smtputf8 && ext.eight_bit_mime);
    assert_eq!(ext.size, Some(0));
    let env = Envelope {
        reverse_path: "ann@earth.example".into(),
        mail_params: vec![
            Param::new("BODY", Some("8BITMIME")),
            Param::new("SMTPUTF8", None),
            Param::new("RET", Some("HDRS")),
            Param::new("ENVID", Some("abc+2B1")),
            Param::new("MT-PRIORITY", Some("3")),
            Param::new("AUTH", Some("<>")),
        ],
        recipients: vec![Recipient {
            mailbox: "j\u{fc}rgen@moon.example".into(),
            params: vec![
                Param::new("NOTIFY", Some("success,failure")),
                Param::new("ORCPT", Some("rfc822;j\u{fc}rgen@moon.example")),
                Param::new("RRVS", Some("2014-04-03T23:01:00Z")),
            ],
        }],
    };
    let d = client.send(&env, content.as_bytes()).await.unwrap();
    assert!(d.all_accepted());
    server.await.unwrap();
}

/// RFC 6710: MT-PRIORITY goes to a server that offers it (normalised),
/// never to one that does not (the test above).
#[tokio::test]
async fn mt_priority_follows_the_offer() {
    let ehlo = "250-mx.moon.example\r\n250 MT-PRIORITY\r\n";
    let mut script = hello(ehlo);
    script.extend([
        expect("MAIL FROM:<ann@earth.example> MT-PRIORITY=4"),
        send("250 ok\r\n"),
        expect("RCPT TO:<bob@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    assert!(client.extensions().mt_priority);
    let mut env = envelope("ann@earth.example", &["bob@moon.example"]);
    env.mail_params.push(Param::new("MT-PRIORITY", Some("+4")));
    let d = client
        .send(&env, b"Subject: x\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert!(d.all_accepted());
    server.await.unwrap();
}

#[tokio::test]
async fn smtputf8_and_size_refused_locally() {
    let ehlo = "250-mx.moon.example\r\n250-8BITMIME\r\n250 SIZE 10\r\n";
    let (addr, server) = fake_server(hello(ehlo)).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let err = client
        .send(
            &envelope("ann@earth.example", &["j\u{fc}rgen@moon.example"]),
            b"x",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Incompatible {
                status: "5.6.7",
                ..
            }
        ),
        "{err}"
    );
    let err = client
        .send(
            &envelope("ann@earth.example", &["bob@moon.example"]),
            b"eleven byte",
        )
        .await
        .unwrap_err();
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
    assert!(client.is_usable());
    server.await.unwrap();
}

#[tokio::test]
async fn greeting_refusals_carry_their_class() {
    for (greeting, transient) in [
        ("554 5.3.2 no service\r\n", false),
        ("421 4.3.2 busy\r\n", true),
    ] {
        let (addr, server) =
            fake_server(vec![send(greeting), expect("QUIT"), send("221 bye\r\n")]).await;
        let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
        assert!(
            matches!(
                err,
                RelayError::Refused {
                    stage: Stage::Greeting,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.is_transient(), transient, "{err}");
        server.await.unwrap();
    }
}

#[tokio::test]
async fn ehlo_and_helo_refusals() {
    let (addr, server) = fake_server(vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("421 4.7.0 bye\r\n"),
    ])
    .await;
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Refused {
                stage: Stage::Ehlo,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    server.await.unwrap();

    let (addr, server) = fake_server(vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("500 no\r\n"),
        expect("HELO gw.moon.example"),
        send("550 5.7.1 not you\r\n"),
    ])
    .await;
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Refused {
                stage: Stage::Helo,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_permanent());
    server.await.unwrap();
}

#[tokio::test]
async fn silent_server_times_out() {
    let (addr, _server) = fake_server(vec![Step::Hang]).await;
    let mut c = config();
    c.command_timeout = Duration::from_millis(200);
    let err = SmtpClient::connect(addr, &c).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Timeout {
                stage: Stage::Greeting,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn slow_end_of_data_times_out_and_breaks_the_session() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<a@moon.example>"),
        send("250 ok\r\n"),
        expect("DATA"),
        send("354 go\r\n"),
        Step::Data,
        Step::Hang,
    ]);
    let (addr, _server) = fake_server(script).await;
    let mut c = config();
    c.data_timeout = Duration::from_millis(200);
    let mut client = SmtpClient::connect(addr, &c).await.unwrap();
    let env = envelope("ann@earth.example", &["a@moon.example"]);
    let err = client.send(&env, b"x").await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Timeout {
                stage: Stage::DataEnd,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(!client.is_usable());
    assert!(matches!(
        client.send(&env, b"x").await,
        Err(RelayError::SessionBroken)
    ));
}

#[tokio::test]
async fn connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(matches!(err, RelayError::Connect { .. }), "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(&addr.to_string()));
}

#[tokio::test]
async fn garbage_is_a_protocol_violation() {
    let (addr, _server) = fake_server(vec![send("hello there\r\n")]).await;
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Protocol {
                stage: Stage::Greeting,
                ..
            }
        ),
        "{err}"
    );

    let (addr, _server) = fake_server(vec![send("220-a\r\n250 b\r\n")]).await;
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(matches!(err, RelayError::Protocol { .. }), "{err}");

    let long = format!("220 {}\r\n", "x".repeat(10_000));
    let (addr, _server) = fake_server(vec![send(&long)]).await;
    let err = SmtpClient::connect(addr, &config()).await.unwrap_err();
    assert!(matches!(err, RelayError::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn server_closing_mid_transaction_breaks_the_session() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([expect("MAIL FROM:<ann@earth.example>"), Step::Close]);
    let (addr, _server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let env = envelope("ann@earth.example", &["a@moon.example"]);
    let err = client.send(&env, b"x").await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Io {
                stage: Stage::Mail,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(!client.is_usable());
    assert!(matches!(
        client.send(&env, b"x").await,
        Err(RelayError::SessionBroken)
    ));
}

#[tokio::test]
async fn a_421_ends_the_session() {
    let mut script = hello(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<ann@earth.example>"),
        send("250 ok\r\n"),
        expect("RCPT TO:<a@moon.example>"),
        send("421 4.3.2 shutting down\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let err = client
        .send(
            &envelope("ann@earth.example", &["a@moon.example", "b@moon.example"]),
            b"x",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Refused {
                stage: Stage::Rcpt,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(!client.is_usable());
    server.await.unwrap();
}

#[tokio::test]
async fn invalid_envelopes_and_config_are_refused_before_sending() {
    let (addr, server) = fake_server(hello(EHLO_PLAIN)).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    for env in [
        envelope("ann@earth.example", &[]),
        envelope("ann@earth.example\r\nRSET", &["a@moon.example"]),
        envelope("ann@earth.example", &["a@moon.example>\r\nDATA"]),
    ] {
        let err = client.send(&env, b"x").await.unwrap_err();
        assert!(matches!(err, RelayError::InvalidEnvelope(_)), "{err}");
        assert!(err.is_permanent());
    }
    assert!(client.is_usable());
    server.await.unwrap();

    let mut c = config();
    c.helo_name = "gw moon".into();
    let err = SmtpClient::connect(addr, &c).await.unwrap_err();
    assert!(matches!(err, RelayError::InvalidConfig(_)), "{err}");
}

#[tokio::test]
async fn relay_connects_sends_and_quits() {
    let mut script = hello(EHLO_PIPE);
    script.extend([
        expect("MAIL FROM:<> SIZE=8"),
        expect("RCPT TO:<ann@earth.example>"),
        expect("DATA"),
        send("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
        expect("QUIT"),
        send("221 bye\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let d = relay(
        addr,
        &config(),
        &envelope("", &["ann@earth.example"]),
        b"bounce\n",
    )
    .await
    .unwrap();
    assert!(d.all_accepted());
    let t = server.await.unwrap();
    assert_eq!(t.lines.last().map(String::as_str), Some("QUIT"));
    assert_eq!(t.data, [b"bounce\r\n.\r\n".to_vec()]);
}

#[tokio::test]
async fn a_thousand_messages_on_one_session() {
    const N: usize = 1000;
    let mut script = hello(EHLO_PIPE);
    for i in 0..N {
        let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
        script.extend([
            expect(&format!(
                "MAIL FROM:<ann@earth.example> SIZE={}",
                body.len()
            )),
            expect(&format!("RCPT TO:<r{i}@moon.example>")),
            expect("DATA"),
            send("250 ok\r\n250 ok\r\n354 go\r\n"),
            Step::Data,
            send(&format!("250 queued as {i}\r\n")),
        ]);
    }
    script.extend([expect("QUIT"), send("221 bye\r\n")]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    for i in 0..N {
        let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
        let mailbox = format!("r{i}@moon.example");
        let d = client
            .send(
                &envelope("ann@earth.example", &[mailbox.as_str()]),
                body.as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(d.recipients[0].reply.lines, [format!("queued as {i}")]);
    }
    client.quit().await.unwrap();
    let t = server.await.unwrap();
    assert_eq!(t.data.len(), N);
}

#[tokio::test]
async fn many_recipients_are_pipelined_in_batches() {
    const N: usize = 450;
    let mut script = hello(EHLO_PIPE);
    script.push(expect("MAIL FROM:<ann@earth.example> SIZE=1"));
    let mut replies = String::from("250 ok\r\n");
    for i in 0..N {
        if (i + 2) % 100 == 0 {
            // The first batch is MAIL + 99 RCPT; each later batch 100;
            // the client then waits for the replies.
            script.push(expect(&format!("RCPT TO:<r{i}@moon.example>")));
            script.push(Step::Quiet);
            replies.push_str("250 ok\r\n");
            script.push(Step::Send(std::mem::take(&mut replies)));
        } else {
            script.push(expect(&format!("RCPT TO:<r{i}@moon.example>")));
            replies.push_str(if i % 7 == 0 {
                "550 5.1.1 no\r\n"
            } else {
                "250 ok\r\n"
            });
        }
    }
    script.push(expect("DATA"));
    replies.push_str("354 go\r\n");
    script.push(Step::Send(replies));
    script.extend([Step::Data, send("250 ok\r\n")]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("r{i}@moon.example")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let d = client
        .send(&envelope("ann@earth.example", &refs), b"x")
        .await
        .unwrap();
    assert_eq!(d.recipients.len(), N);
    for (i, r) in d.recipients.iter().enumerate() {
        let refused = i % 7 == 0 && (i + 2) % 100 != 0;
        assert_eq!(r.accepted, !refused, "recipient {i}");
    }
    server.await.unwrap();
}

#[tokio::test]
async fn a_ten_megabyte_message_arrives_intact() {
    let mut content = b"Subject: big\r\n\r\n".to_vec();
    let mut i = 0u32;
    while content.len() < 10 * 1024 * 1024 {
        // Lines with leading dots, bare LFs and 8-bit bytes.
        content.extend_from_slice(format!(".line {i} \u{e9}t\u{e9}\n").as_bytes());
        i += 1;
    }
    let mut expected = Vec::new();
    dot_stuff(&content, &mut expected);
    let ehlo = EHLO_PIPE;
    let mut script = hello(ehlo);
    script.extend([
        expect(&format!(
            "MAIL FROM:<ann@earth.example> BODY=8BITMIME SIZE={}",
            // Each bare LF counts as CRLF.
            content.len() + i as usize
        )),
        expect("RCPT TO:<bob@moon.example>"),
        expect("DATA"),
        send("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
    ]);
    let (addr, server) = fake_server(script).await;
    let mut client = SmtpClient::connect(addr, &config()).await.unwrap();
    let d = client
        .send(
            &envelope("ann@earth.example", &["bob@moon.example"]),
            &content,
        )
        .await
        .unwrap();
    assert!(d.all_accepted());
    let t = server.await.unwrap();
    assert!(t.data[0] == expected, "content differs");
}

fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::generate_simple_self_signed(vec!["mx.moon.example".to_string()]).unwrap();
    let cert: CertificateDer<'static> = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("mx.moon.example").unwrap()
}

#[tokio::test]
async fn starttls_then_a_second_ehlo() {
    let (server_tls, client_tls) = tls_configs();
    let script = vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("250-mx.moon.example\r\n250-STARTTLS\r\n250 SIZE 100\r\n"),
        expect("STARTTLS"),
        send("220 2.0.0 ready\r\n"),
        Step::StartTls(server_tls),
        expect("EHLO gw.moon.example"),
        send("250-mx.moon.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        expect("MAIL FROM:<ann@earth.example>"),
        expect("RCPT TO:<bob@moon.example>"),
        expect("DATA"),
        send("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Data,
        send("250 ok\r\n"),
        expect("QUIT"),
        send("221 bye\r\n"),
    ];
    let (addr, server) = fake_server(script).await;
    let mut c = config();
    c.tls = TlsMode::Required(client_tls, server_name());
    let mut client = SmtpClient::connect(addr, &c).await.unwrap();
    assert!(client.is_tls());
    // What was offered before TLS is forgotten (no SIZE now).
    assert_eq!(client.extensions().size, None);
    assert!(client.extensions().pipelining);
    let d = client
        .send(
            &envelope("ann@earth.example", &["bob@moon.example"]),
            b"secret\r\n",
        )
        .await
        .unwrap();
    assert!(d.all_accepted());
    client.quit().await.unwrap();
    let t = server.await.unwrap();
    assert_eq!(t.data, [b"secret\r\n.\r\n".to_vec()]);
}

#[tokio::test]
async fn starttls_required_but_not_offered() {
    let (_, client_tls) = tls_configs();
    let mut script = hello(EHLO_PLAIN);
    script.extend([expect("QUIT"), send("221 bye\r\n")]);
    let (addr, server) = fake_server(script).await;
    let mut c = config();
    c.tls = TlsMode::Required(client_tls, server_name());
    let err = SmtpClient::connect(addr, &c).await.unwrap_err();
    assert!(matches!(err, RelayError::TlsUnavailable), "{err}");
    assert!(err.is_transient());
    server.await.unwrap();
}

#[tokio::test]
async fn starttls_if_offered_stays_plain_when_not_offered_or_refused() {
    let (_, client_tls) = tls_configs();
    let mut c = config();
    c.tls = TlsMode::IfOffered(client_tls, server_name());

    let (addr, server) = fake_server(hello(EHLO_PLAIN)).await;
    let client = SmtpClient::connect(addr, &c).await.unwrap();
    assert!(!client.is_tls());
    server.await.unwrap();

    let (addr, server) = fake_server(vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("250-mx.moon.example\r\n250 STARTTLS\r\n"),
        expect("STARTTLS"),
        send("454 4.7.0 TLS not available\r\n"),
    ])
    .await;
    let client = SmtpClient::connect(addr, &c).await.unwrap();
    assert!(!client.is_tls());
    server.await.unwrap();
}

#[tokio::test]
async fn plaintext_injected_after_starttls_is_refused() {
    let (_, client_tls) = tls_configs();
    let (addr, _server) = fake_server(vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("250-mx.moon.example\r\n250 STARTTLS\r\n"),
        expect("STARTTLS"),
        send("220 ready\r\n250 injected\r\n"),
        Step::Hang,
    ])
    .await;
    let mut c = config();
    c.tls = TlsMode::IfOffered(client_tls, server_name());
    let err = SmtpClient::connect(addr, &c).await.unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Protocol {
                stage: Stage::StartTls,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn tls_handshake_failure_is_reported() {
    let (_, client_tls) = tls_configs();
    let (addr, _server) = fake_server(vec![
        send(GREETING),
        expect("EHLO gw.moon.example"),
        send("250-mx.moon.example\r\n250 STARTTLS\r\n"),
        expect("STARTTLS"),
        send("220 ready\r\n"),
        // Not a TLS server.
        send("this is not a TLS record\r\n"),
        Step::Hang,
    ])
    .await;
    let mut c = config();
    c.tls = TlsMode::Required(client_tls, server_name());
    let err = SmtpClient::connect(addr, &c).await;
    // Either the junk arrived with the 220 (injection) or during the
    // handshake; both are errors, never a plaintext session.
    match err {
        Err(RelayError::Tls(_)) | Err(RelayError::Protocol { .. }) => {}
        other => panic!("{other:?}"),
    }
}
