//! End-to-end tests of the SMTP server over loopback TCP: a pipelining
//! client, a per-recipient refusal from the handler, STARTTLS with an
//! rcgen certificate and a tokio-rustls client (and plaintext injected
//! after STARTTLS), SMTP smuggling, timeouts, the connection limit and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepmail_smtp::serve::{
    serve, serve_connection, ConnectionEnd, Handler, ServeStats, ServerConfig, SessionInfo,
};
use deepmail_smtp::{Envelope, Param, Recipient, Reply};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The gateway's part in miniature: relays for moon.example only, spools
/// into memory.
#[derive(Default)]
struct Gateway {
    senders: Mutex<Vec<(SessionInfo, String)>>,
    messages: Mutex<Vec<(SessionInfo, Envelope, Vec<u8>)>>,
}

impl Handler for Gateway {
    async fn mail_from(&self, info: &SessionInfo, reverse_path: &str, _: &[Param]) -> Reply {
        self.senders
            .lock()
            .unwrap()
            .push((info.clone(), reverse_path.to_string()));
        Reply::new(250, Some("2.1.0"), "sender OK")
    }

    async fn rcpt_to(&self, _: &SessionInfo, envelope: &Envelope, recipient: &Recipient) -> Reply {
        assert!(!envelope.reverse_path.contains("nobody"));
        if recipient.mailbox.ends_with("@moon.example") {
            Reply::new(250, Some("2.1.5"), "recipient OK")
        } else {
            Reply::new(550, Some("5.7.1"), "relay not permitted")
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
    gateway: Arc<Gateway>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ServeStats>,
}

impl Server {
    async fn start(config: ServerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Arc::new(config),
            gateway.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            gateway,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) -> ServeStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(Duration::from_secs(20), self.task)
            .await
            .expect("serve stops")
            .unwrap()
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        max_message_bytes: 100_000,
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::new("mx.moon.example")
    }
}

/// A bare-hands SMTP client.
struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Client<S> {
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// One reply: the code and the lines' text (after `ddd-`/`ddd `).
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = timeout(Duration::from_secs(10), self.stream.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            assert!(n > 0, "connection closed while waiting for a reply");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line[4..line.len() - 2].to_string());
            if line.as_bytes()[3] == b' ' {
                return (code, lines);
            }
        }
    }

    /// The code and first line of one reply, e.g. `250 2.1.0 sender OK`.
    async fn short_reply(&mut self) -> String {
        let (code, lines) = self.reply().await;
        format!("{code} {}", lines[0])
    }

    async fn send(&mut self, text: &str) {
        self.stream
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .unwrap();
    }

    async fn command(&mut self, text: &str) -> String {
        self.send(&format!("{text}\r\n")).await;
        self.short_reply().await
    }

    /// The connection is closed by the server (after any replies read).
    async fn expect_eof(&mut self) {
        let mut rest = String::new();
        let n = timeout(Duration::from_secs(10), self.stream.read_line(&mut rest))
            .await
            .expect("close in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "expected the server to close, got {rest:?}");
    }
}

async fn connect(addr: SocketAddr) -> Client<TcpStream> {
    let mut client = Client::new(TcpStream::connect(addr).await.unwrap());
    let (code, lines) = client.reply().await;
    assert_eq!(code, 220);
    assert!(lines[0].starts_with("mx.moon.example"));
    client
}

const MESSAGE: &str = "From: ann@earth.example\r\nTo: bob@moon.example\r\n\
                       Subject: greetings from Earth\r\n\r\nHello moon.\r\n.. a stuffed line\r\n";

#[tokio::test]
async fn pipelined_transaction_with_a_refused_recipient() {
    let server = Server::start(config()).await;
    let mut client = connect(server.addr).await;
    client.send("EHLO earth.example\r\n").await;
    let (code, ehlo) = client.reply().await;
    assert_eq!(code, 250);
    for keyword in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "SIZE 100000",
        "ENHANCEDSTATUSCODES",
        "DSN",
    ] {
        assert!(ehlo.iter().any(|l| l == keyword), "{keyword} in {ehlo:?}");
    }
    assert!(!ehlo.iter().any(|l| l == "STARTTLS"), "no TLS configured");

    // One write: the whole envelope and DATA (RFC 2920).
    client
        .send(
            "MAIL FROM:<ann@earth.example> BODY=8BITMIME RET=HDRS ENVID=x1\r\n\
             RCPT TO:<bob@moon.example> NOTIFY=FAILURE\r\n\
             RCPT TO:<eve@mars.example>\r\nDATA\r\n",
        )
        .await;
    assert_eq!(client.short_reply().await, "250 2.1.0 sender OK");
    assert_eq!(client.short_reply().await, "250 2.1.5 recipient OK");
    assert_eq!(client.short_reply().await, "550 5.7.1 relay not permitted");
    assert_eq!(client.reply().await.0, 354);
    client.send(&format!("{MESSAGE}.\r\n")).await;
    assert_eq!(client.short_reply().await, "250 2.0.0 queued as 1");
    assert_eq!(
        client.command("QUIT").await,
        "221 2.0.0 mx.moon.example closing connection"
    );
    client.expect_eof().await;

    {
        let messages = server.gateway.messages.lock().unwrap();
        assert_eq!(messages.len(), 1);
        let (info, envelope, content) = &messages[0];
        assert_eq!(info.helo.as_deref(), Some("earth.example"));
        assert!(!info.tls);
        assert_eq!(envelope.reverse_path, "ann@earth.example");
        assert_eq!(
            envelope.mail_params,
            [
                Param::new("BODY", Some("8BITMIME")),
                Param::new("RET", Some("HDRS")),
                Param::new("ENVID", Some("x1")),
            ]
        );
        assert_eq!(
            envelope.recipients,
            [Recipient {
                mailbox: "bob@moon.example".into(),
                params: vec![Param::new("NOTIFY", Some("FAILURE"))],
            }]
        );
        assert_eq!(
            content.as_slice(),
            MESSAGE.replace("\r\n..", "\r\n.").as_bytes()
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(content)
            .expect("a parsable message");
        assert_eq!(parsed.subject(), Some("greetings from Earth"));
    }
    let stats = server.stop().await;
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.messages_accepted, 1);
}

#[tokio::test]
async fn smuggled_message_is_refused_whole() {
    let server = Server::start(config()).await;
    let mut client = connect(server.addr).await;
    client.command("EHLO earth.example").await;
    client
        .send("MAIL FROM:<ann@earth.example>\r\nRCPT TO:<bob@moon.example>\r\nDATA\r\n")
        .await;
    for _ in 0..2 {
        client.reply().await;
    }
    assert_eq!(client.reply().await.0, 354);
    client
        .send(
            "Subject: one\r\n\r\nhi\n.\r\nMAIL FROM:<admin@moon.example>\r\n\
             RCPT TO:<bob@moon.example>\r\nDATA\r\nSubject: forged\r\n\r\n.\r\n",
        )
        .await;
    let refused = client.short_reply().await;
    assert!(refused.starts_with("554 5.6.0 bare LF"), "{refused}");
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert!(server.gateway.messages.lock().unwrap().is_empty());
    // Only the real MAIL reached the handler.
    assert_eq!(server.gateway.senders.lock().unwrap().len(), 1);
    server.stop().await;
}

fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["mx.moon.example".into()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
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

#[tokio::test]
async fn starttls_upgrades_and_drops_injected_plaintext() {
    let (server_tls, client_tls) = tls_pair();
    let server = Server::start(ServerConfig {
        tls: Some(server_tls),
        ..config()
    })
    .await;
    let mut client = connect(server.addr).await;
    client.send("EHLO earth.example\r\n").await;
    let (_, ehlo) = client.reply().await;
    assert!(ehlo.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");

    // CVE-2011-0411: a command injected after STARTTLS in the same packet.
    client
        .send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
        .await;
    assert_eq!(client.short_reply().await, "220 2.0.0 ready to start TLS");
    let tcp = client.stream.into_inner();
    let connector = tokio_rustls::TlsConnector::from(client_tls);
    let tls = connector
        .connect(ServerName::try_from("mx.moon.example").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let mut client = Client::new(tls);

    // The injected MAIL was not run: the session starts over.
    assert_eq!(
        client.command("MAIL FROM:<ann@earth.example>").await,
        "503 5.5.1 send EHLO or HELO first"
    );
    client.send("EHLO earth.example\r\n").await;
    let (code, ehlo) = client.reply().await;
    assert_eq!(code, 250);
    assert!(!ehlo.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    assert_eq!(
        client.command("STARTTLS").await,
        "503 5.5.1 TLS already active"
    );
    client
        .send("MAIL FROM:<ann@earth.example>\r\nRCPT TO:<bob@moon.example>\r\nDATA\r\n")
        .await;
    assert_eq!(client.reply().await.0, 250);
    assert_eq!(client.reply().await.0, 250);
    assert_eq!(client.reply().await.0, 354);
    client.send(&format!("{MESSAGE}.\r\nQUIT\r\n")).await;
    assert_eq!(client.short_reply().await, "250 2.0.0 queued as 1");
    assert_eq!(client.reply().await.0, 221);
    client.expect_eof().await;

    let senders = server.gateway.senders.lock().unwrap().clone();
    assert_eq!(senders.len(), 1, "{senders:?}");
    assert_eq!(senders[0].1, "ann@earth.example");
    assert!(senders[0].0.tls);
    let (info, _, _) = server.gateway.messages.lock().unwrap()[0].clone();
    assert!(info.tls);
    assert_eq!(info.helo.as_deref(), Some("earth.example"));
    server.stop().await;
}

#[tokio::test]
async fn failed_tls_handshake_ends_the_connection() {
    let (server_tls, _) = tls_pair();
    let server = Server::start(ServerConfig {
        tls: Some(server_tls),
        ..config()
    })
    .await;
    let mut client = connect(server.addr).await;
    client.command("EHLO earth.example").await;
    assert_eq!(
        client.command("STARTTLS").await,
        "220 2.0.0 ready to start TLS"
    );
    client.send("this is not a ClientHello\r\n").await;
    // The server answers with a TLS alert, then closes.
    let mut rest = Vec::new();
    timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut client.stream, &mut rest),
    )
    .await
    .expect("close in time")
    .unwrap();
    assert_eq!(rest.first(), Some(&0x15), "a TLS alert record: {rest:?}");
    let stats = server.stop().await;
    assert_eq!(stats.failed, 1);
}

#[tokio::test]
async fn idle_client_times_out() {
    let server = Server::start(ServerConfig {
        command_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut client = connect(server.addr).await;
    assert_eq!(
        client.short_reply().await,
        "421 4.4.2 mx.moon.example timeout waiting for a command, closing connection"
    );
    client.expect_eof().await;
    let stats = server.stop().await;
    assert_eq!(stats.timeouts, 1);
}

#[tokio::test]
async fn stalled_data_times_out() {
    let server = Server::start(ServerConfig {
        data_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut client = connect(server.addr).await;
    client.command("HELO earth.example").await;
    client.command("MAIL FROM:<ann@earth.example>").await;
    client.command("RCPT TO:<bob@moon.example>").await;
    assert_eq!(client.command("DATA").await.get(..3), Some("354"));
    client.send("Subject: half a message\r\n").await;
    let reply = client.short_reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    client.expect_eof().await;
    assert!(server.gateway.messages.lock().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let server = Server::start(ServerConfig {
        max_connections: 1,
        ..config()
    })
    .await;
    let mut first = connect(server.addr).await;
    let mut second = Client::new(TcpStream::connect(server.addr).await.unwrap());
    assert_eq!(
        second.short_reply().await,
        "421 4.3.2 mx.moon.example too many connections, try again later"
    );
    second.expect_eof().await;
    assert_eq!(first.command("NOOP").await, "250 2.0.0 OK");
    assert_eq!(first.command("QUIT").await.get(..3), Some("221"));
    first.expect_eof().await;
    // The slot is free again once the finished task is reaped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(server.addr).await;
    assert_eq!(third.command("QUIT").await.get(..3), Some("221"));
    let stats = server.stop().await;
    assert_eq!(stats.refused_busy, 1);
    assert_eq!(stats.connections, 2);
}

/// One address cannot take every slot: over its own limit it gets
/// `421 4.7.0`, while other addresses still get in.
#[tokio::test]
async fn one_client_address_cannot_hold_every_slot() {
    let server = Server::start(ServerConfig {
        max_connections: 10,
        max_connections_per_client: 2,
        ..config()
    })
    .await;
    let _a = connect(server.addr).await;
    let _b = connect(server.addr).await;
    let mut third = Client::new(TcpStream::connect(server.addr).await.unwrap());
    let reply = third.short_reply().await;
    assert!(
        reply.starts_with("421 4.7.0 mx.moon.example too many connections from 127.0.0.1"),
        "{reply}"
    );
    third.expect_eof().await;
    // Another address (127.0.0.2 is loopback too on Linux) is served.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = Client::new(other.connect(server.addr).await.unwrap());
    assert_eq!(other.short_reply().await.get(..3), Some("220"));
    assert_eq!(other.command("QUIT").await.get(..3), Some("221"));
    let stats = server.stop().await;
    assert_eq!(stats.refused_per_client, 1);
}

/// 100 silent connections used to lock everyone out for the whole command
/// timeout (300 s). Under pressure (three quarters of the slots in use)
/// the wait for a command drops to the stress timeout, so the silent ones
/// are closed and a real client gets in.
#[tokio::test]
async fn silent_connections_under_pressure_are_closed_quickly() {
    let server = Server::start(ServerConfig {
        max_connections: 4,
        command_timeout: Duration::from_secs(60),
        stress_command_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(server.addr).await);
    }
    for client in &mut silent {
        let reply = client.short_reply().await;
        assert!(reply.starts_with("421 4.4.2"), "{reply}");
        client.expect_eof().await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed after {:?}, not the 60 s command timeout",
        started.elapsed()
    );
    // Below the pressure mark again: the full command timeout applies, and
    // a real client is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = connect(server.addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert_eq!(client.command("QUIT").await.get(..3), Some("221"));
    let stats = server.stop().await;
    assert_eq!(stats.timeouts, 4);
}

/// A silent connection that saw the server under pressure keeps the short
/// wait when the pressure eases: otherwise, as silent connections are
/// closed, the rest of them get the full timeout back.
#[tokio::test]
async fn a_wait_that_saw_pressure_stays_short_when_it_eases() {
    let server = Server::start(ServerConfig {
        max_connections: 4,
        command_timeout: Duration::from_secs(60),
        stress_command_timeout: Duration::from_millis(1500),
        ..config()
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = vec![connect(server.addr).await, connect(server.addr).await];
    // A third connection puts the server under pressure (three quarters
    // of four), then leaves: the pressure is gone again.
    let mut passing = connect(server.addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(passing.command("QUIT").await.get(..3), Some("221"));
    for client in &mut silent {
        let reply = client.short_reply().await;
        assert!(reply.starts_with("421 4.4.2"), "{reply}");
        client.expect_eof().await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed after {:?}, not the 60 s command timeout",
        started.elapsed()
    );
    let stats = server.stop().await;
    assert_eq!(stats.timeouts, 2);
}

#[tokio::test]
async fn too_many_errors_close_the_connection() {
    let server = Server::start(ServerConfig {
        max_errors: 3,
        ..config()
    })
    .await;
    let mut client = connect(server.addr).await;
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    for _ in 0..3 {
        assert_eq!(client.reply().await.0, 500);
    }
    let reply = client.short_reply().await;
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
    client.expect_eof().await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_lets_transactions_finish() {
    let server = Server::start(config()).await;
    let mut idle = connect(server.addr).await;
    idle.command("EHLO idle.example").await;
    let mut busy = connect(server.addr).await;
    busy.command("EHLO busy.example").await;
    assert_eq!(
        busy.command("MAIL FROM:<ann@earth.example>").await.get(..3),
        Some("250")
    );

    let addr = server.addr;
    let gateway = server.gateway.clone();
    let stopping = tokio::spawn(server.stop());

    assert_eq!(
        idle.short_reply().await,
        "421 4.3.2 mx.moon.example shutting down, try again later"
    );
    idle.expect_eof().await;
    // New connections are no longer accepted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err());

    assert_eq!(
        busy.command("RCPT TO:<bob@moon.example>").await.get(..3),
        Some("250")
    );
    assert_eq!(busy.command("DATA").await.get(..3), Some("354"));
    busy.send(&format!("{MESSAGE}.\r\n")).await;
    assert_eq!(busy.short_reply().await, "250 2.0.0 queued as 1");
    assert_eq!(busy.reply().await.0, 421);
    busy.expect_eof().await;

    let stats = stopping.await.unwrap();
    assert_eq!(stats.closed_at_shutdown, 2);
    assert_eq!(stats.messages_accepted, 1);
    assert_eq!(gateway.messages.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn shutdown_grace_is_bounded() {
    let server = Server::start(ServerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut busy = connect(server.addr).await;
    busy.command("EHLO busy.example").await;
    busy.command("MAIL FROM:<ann@earth.example>").await;
    let stats = server.stop().await;
    // The transaction did not finish in time: told 421 all the same.
    assert_eq!(busy.reply().await.0, 421);
    busy.expect_eof().await;
    assert_eq!(stats.closed_at_shutdown, 1);
}

#[tokio::test]
async fn serve_connection_serves_one_accepted_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(Gateway::default());
    let config = Arc::new(config());
    let server = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            let (stream, peer) = listener.accept().await.unwrap();
            serve_connection(stream, peer, config, gateway).await
        }
    });
    let mut client = connect(addr).await;
    client.command("HELO earth.example").await;
    client.command("MAIL FROM:<>").await;
    client.command("RCPT TO:<postmaster@moon.example>").await;
    client.command("DATA").await;
    client.send("Subject: bounce\r\n\r\n.\r\n").await;
    assert_eq!(client.short_reply().await, "250 2.0.0 queued as 1");
    client.send("QUIT\r\n").await;
    assert_eq!(client.reply().await.0, 221);
    let summary = server.await.unwrap();
    assert!(matches!(summary.end, ConnectionEnd::Quit), "{summary:?}");
    assert_eq!(summary.messages_accepted, 1);
    let messages = gateway.messages.lock().unwrap();
    assert_eq!(messages[0].1.reverse_path, "");
    assert_eq!(messages[0].2, b"Subject: bounce\r\n\r\n");
}
