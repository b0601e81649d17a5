//! The receiving endpoint over real sockets on 127.0.0.1: HTTPS (HTTP/1.1,
//! HTTP/2) and HTTP/3, with the embedded codec plugin and a spool in a
//! temporary directory. Every status of the contract, the files written,
//! deduplication, mutual TLS and graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use deepmail_gateway::{batch_request, Connection, HttpVersion};
use deepmail_gateway::{client_config, TestPki};
use deepmail_gateway::{Receiver, ReceiverConfig, RequestRecord, Spool};
use deepmail_host::types::{DecodeMode, DecodeOptions};
use deepmail_host::{Codec, Host, HostConfig, PluginSource};
use http::{Request, StatusCode, Version};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SERVER_NAME: &str = "gw.moon.example";
const TOKEN: &str = "s3cret-token";

/// Two messages; the second has a line starting with a dot (dot-stuffed).
const BATCH: &[u8] = b"MAIL FROM:<ops@earth.example> BODY=8BITMIME\r\n\
RCPT TO:<ada@moon.example>\r\n\
RCPT TO:<log@moon.example> NOTIFY=FAILURE\r\n\
DATA\r\n\
Subject: hello moon\r\n\
\r\n\
first message\r\n\
.\r\n\
MAIL FROM:<>\r\n\
RCPT TO:<ops@earth.example>\r\n\
DATA\r\n\
Subject: second\r\n\
\r\n\
..a line that starts with a dot\r\n\
.\r\n";

fn codec() -> Codec {
    static CODEC: OnceLock<Codec> = OnceLock::new();
    CODEC
        .get_or_init(|| {
            let host = Host::new(HostConfig {
                cache_dir: Some(
                    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
                ),
                ..HostConfig::default()
            })
            .unwrap();
            Codec::load(&host, &PluginSource::Builtin("bsmtp-codec".into())).unwrap()
        })
        .clone()
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        TestPki::generate(
            &[SERVER_NAME.to_string(), "127.0.0.1".to_string()],
            "earth-gw",
        )
        .unwrap()
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[derive(Default)]
struct Options {
    tokens: Vec<String>,
    mutual_tls: bool,
    max_body: Option<u64>,
    body_timeout: Option<Duration>,
    max_requests_per_peer: Option<usize>,
}

struct Server {
    https: SocketAddr,
    h3: SocketAddr,
    spool: Arc<Spool>,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    log: Arc<Mutex<Vec<RequestRecord>>>,
}

impl Server {
    async fn start(options: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path().join("spool")).unwrap());
        let (chain, key) = pki().server_identity();
        let mut config = ReceiverConfig::new(chain, key);
        config.https_listen = Some("127.0.0.1:0".parse().unwrap());
        config.h3_listen = Some("127.0.0.1:0".parse().unwrap());
        config.tokens = options.tokens;
        if options.mutual_tls {
            config.client_ca = Some(vec![pki().ca_der()]);
        }
        if let Some(max) = options.max_body {
            config.max_body_bytes = max;
        }
        if let Some(t) = options.body_timeout {
            config.body_timeout = t;
        }
        if let Some(n) = options.max_requests_per_peer {
            config.max_requests_per_peer = n;
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let receiver = Receiver::bind(config, spool.clone(), codec())
            .await
            .unwrap()
            .with_request_log(move |r| log2.lock().unwrap().push(r.clone()));
        let https = receiver.https_addr().unwrap();
        let h3 = receiver.h3_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(receiver.serve(async {
            let _ = stopped.await;
        }));
        Server {
            https,
            h3,
            spool,
            _dir: dir,
            stop: Some(stop),
            task,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{SERVER_NAME}:{}{path}", self.https.port())
    }

    async fn connect(&self, version: HttpVersion) -> Connection {
        self.connect_as(version, None).await.unwrap()
    }

    async fn connect_as(
        &self,
        version: HttpVersion,
        identity: Option<&TestPki>,
    ) -> Result<Connection, deepmail_gateway::ClientError> {
        let tls = client_config(
            &[pki().ca_der()],
            identity.map(|p| p.client_identity()),
            &[],
        )
        .unwrap();
        let addr = if version == HttpVersion::Http3 {
            self.h3
        } else {
            self.https
        };
        Connection::connect(addr, SERVER_NAME, &tls, version).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .unwrap();
    }
}

async fn post(conn: &mut Connection, request: Request<Bytes>) -> (StatusCode, Value) {
    let response = conn.send(request).await.expect("response");
    let status = response.status();
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/json"
    );
    let json: Value = serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "JSON body ({e}): {}",
            String::from_utf8_lossy(response.body())
        )
    });
    assert!(
        json.get("code").is_some() || status == StatusCode::OK,
        "errors carry a code: {json}"
    );
    (status, json)
}

fn batch(server: &Server, body: &[u8], key: Option<&str>, token: Option<&str>) -> Request<Bytes> {
    batch_request(
        &server.url("/inboundmail"),
        Bytes::copy_from_slice(body),
        key,
        token,
    )
    .unwrap()
}

fn assert_spooled(server: &Server, batch_id: &str, body: &[u8], transport: &str) {
    let listed = server.spool.list().unwrap();
    let found: Vec<_> = listed
        .iter()
        .filter(|b| b.meta.batch_id == batch_id)
        .collect();
    assert_eq!(found.len(), 1, "stored once: {listed:?}");
    let b = found[0];
    assert_eq!(b.raw().unwrap(), body, "batch.bsmtp is the body as sent");
    let expected = codec()
        .decode(
            body,
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        )
        .unwrap();
    let got = b.messages().unwrap();
    assert_eq!(got.len(), expected.len());
    for ((env, eml), want) in got.iter().zip(&expected) {
        assert_eq!(eml, &want.content);
        assert_eq!(env.reverse_path, want.envelope.reverse_path);
        let rcpts: Vec<_> = env.forward_paths.iter().map(|f| &f.mailbox).collect();
        let want_rcpts: Vec<_> = want
            .envelope
            .forward_paths
            .iter()
            .map(|f| &f.mailbox)
            .collect();
        assert_eq!(rcpts, want_rcpts);
    }
    assert_eq!(b.meta.messages, expected.len());
    assert_eq!(b.meta.bytes, body.len() as u64);
    assert_eq!(b.meta.sha256, sha256_hex(body));
    assert_eq!(b.meta.transport, transport);
    assert!(b.meta.peer.starts_with("127.0.0.1:"), "{:?}", b.meta);
    assert!(b.meta.received_at.ends_with('Z'), "{:?}", b.meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_post_is_spooled_byte_for_byte() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http1).await;
    assert_eq!(conn.version(), Version::HTTP_11);
    let key = sha256_hex(BATCH);
    let (status, json) = post(&mut conn, batch(&server, BATCH, Some(&key), None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"batch_id": key, "messages": 2, "duplicate": false})
    );
    assert_spooled(&server, &key, BATCH, "https");
    let got = server.spool.list().unwrap()[0].messages().unwrap();
    assert_eq!(
        got[1].1,
        b"Subject: second\r\n\r\n.a line that starts with a dot\r\n"
    );
    assert_eq!(got[0].0.forward_paths[1].parameters[0].keyword, "NOTIFY");
    assert_eq!(
        got[0].0.mail_parameters[0].value.as_deref(),
        Some("8BITMIME")
    );
    assert_eq!(server.spool.list().unwrap()[0].meta.identity, "anonymous");
    // The connection stays usable.
    let (status, json) = post(&mut conn, batch(&server, BATCH, Some(&key), None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["duplicate"], true);
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].bytes, BATCH.len() as u64);
    assert_eq!(log[0].batch_id.as_deref(), Some(key.as_str()));
    assert_eq!(log[0].version, "HTTP/1.1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_when_offered() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http2).await;
    assert_eq!(conn.version(), Version::HTTP_2);
    let response = conn
        .send(batch(&server, BATCH, Some("h2-batch"), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_spooled(&server, "h2-batch", BATCH, "https");
    assert_eq!(server.log.lock().unwrap()[0].version, "HTTP/2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_post_is_spooled() {
    let server = Server::start(Options {
        tokens: vec![TOKEN.into()],
        ..Options::default()
    })
    .await;
    let mut conn = server.connect(HttpVersion::Http3).await;
    assert_eq!(conn.version(), Version::HTTP_3);
    let (status, json) = post(&mut conn, batch(&server, BATCH, None, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // Without a key, the batch id is the body's SHA-256, as senders send it.
    assert_eq!(json["batch_id"], sha256_hex(BATCH));
    assert_spooled(&server, &sha256_hex(BATCH), BATCH, "h3");
    assert_eq!(server.spool.list().unwrap()[0].meta.identity, "token");
    // Errors travel over HTTP/3 too.
    let (status, json) = post(&mut conn, batch(&server, BATCH, None, Some("nope"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, _) = post(&mut conn, batch(&server, b"junk", None, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    conn.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_missing_or_wrong_is_401_and_nothing_is_stored() {
    let server = Server::start(Options {
        tokens: vec!["other".into(), TOKEN.into()],
        ..Options::default()
    })
    .await;
    for version in [HttpVersion::Http1, HttpVersion::Http2, HttpVersion::Http3] {
        let mut conn = server.connect(version).await;
        for token in [None, Some("wrong"), Some("s3cret-toke"), Some("")] {
            let response = conn.send(batch(&server, BATCH, None, token)).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{version:?} {token:?}"
            );
            assert_eq!(
                response.headers()[http::header::WWW_AUTHENTICATE],
                "Bearer realm=\"deepmail\""
            );
            let json: Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(json["code"], "unauthorized");
        }
        // A lower-case scheme is still Bearer.
        let mut request = batch(&server, BATCH, Some("lower"), None);
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("bearer {TOKEN}").parse().unwrap(),
        );
        let (status, _) = post(&mut conn, request).await;
        assert_eq!(status, StatusCode::OK);
        conn.close().await;
    }
    assert_eq!(server.spool.list().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_our_ca_and_rejects_others() {
    let server = Server::start(Options {
        mutual_tls: true,
        ..Options::default()
    })
    .await;
    for version in [HttpVersion::Http1, HttpVersion::Http2, HttpVersion::Http3] {
        // Our CA's client certificate: accepted, identity is its subject.
        let mut conn = server.connect_as(version, Some(pki())).await.unwrap();
        let key = format!("mtls-{version:?}");
        let (status, json) = post(&mut conn, batch(&server, BATCH, Some(&key), None)).await;
        assert_eq!(status, StatusCode::OK, "{version:?}: {json}");
        let stored = server.spool.list().unwrap();
        let meta = &stored.iter().find(|b| b.meta.batch_id == key).unwrap().meta;
        assert_eq!(meta.identity, "O=deepmail test,CN=earth-gw");
        conn.close().await;

        // No certificate: the handshake completes, HTTP says 401.
        let mut conn = server.connect_as(version, None).await.unwrap();
        let (status, json) = post(&mut conn, batch(&server, BATCH, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{version:?}");
        assert_eq!(json["code"], "unauthorized");
        conn.close().await;

        // A certificate from another CA: the handshake (or the first
        // request, with TLS 1.3's late client alert) fails.
        let stranger = TestPki::generate(&[SERVER_NAME.to_string()], "earth-gw").unwrap();
        let rejected = match server.connect_as(version, Some(&stranger)).await {
            Err(_) => true,
            Ok(mut conn) => conn
                .send(batch(&server, BATCH, Some("stranger"), None))
                .await
                .is_err(),
        };
        assert!(
            rejected,
            "{version:?}: a client cert from another CA is refused"
        );
    }
    assert_eq!(server.spool.list().unwrap().len(), 3);
    assert!(!server.spool.contains("stranger"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let server = Server::start(Options {
        max_body: Some(1024),
        ..Options::default()
    })
    .await;
    let big = {
        let mut b = b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n".to_vec();
        b.extend(std::iter::repeat_n(b'x', 4000));
        b.extend_from_slice(b"\r\n.\r\n");
        b
    };
    for version in [HttpVersion::Http1, HttpVersion::Http2, HttpVersion::Http3] {
        // Declared too large: refused from Content-Length, before the body.
        let mut conn = server.connect(version).await;
        let (status, json) = post(&mut conn, batch(&server, &big, None, None)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{version:?}: {json}");
        assert_eq!(json["code"], "payload-too-large");
        conn.close().await;
    }
    // Not declared (a streamed body): counted while read. Only HTTP/2 and
    // HTTP/3 can send a body without Content-Length through this client.
    for version in [HttpVersion::Http2, HttpVersion::Http3] {
        let mut conn = server.connect(version).await;
        let mut request = batch(&server, &big, None, None);
        request.headers_mut().remove(http::header::CONTENT_LENGTH);
        let (status, _) = post(&mut conn, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{version:?}");
        conn.close().await;
    }
    // Exactly at the limit is fine.
    let mut at_limit =
        b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n".to_vec();
    at_limit.resize(1024 - 5, b'y');
    at_limit.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(at_limit.len(), 1024);
    let mut conn = server.connect(HttpVersion::Http1).await;
    let (status, json) = post(&mut conn, batch(&server, &at_limit, None, None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(server.spool.list().unwrap().len(), 1);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .filter(|r| r.status == 413)
            .all(|r| r.bytes <= 1024 + 64 * 1024),
        "413 without reading the rest: {log:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_must_be_batch_smtp() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http2).await;
    for (content_type, ok) in [
        (Some("text/plain"), false),
        (Some("application/batch-smtpx"), false),
        (None, false),
        (Some("APPLICATION/Batch-Smtp"), true),
        (Some("application/batch-SMTP; charset=utf-8"), true),
    ] {
        let mut request = batch(&server, BATCH, None, None);
        match content_type {
            Some(ct) => {
                request
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            None => {
                request.headers_mut().remove(http::header::CONTENT_TYPE);
            }
        }
        let (status, json) = post(&mut conn, request).await;
        if ok {
            assert_eq!(status, StatusCode::OK, "{content_type:?}: {json}");
        } else {
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
            assert_eq!(json["code"], "unsupported-media-type");
        }
    }
    // Both accepted posts were the same batch: stored once.
    assert_eq!(server.spool.list().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batch_smtp_is_422_with_the_codec_class() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http1).await;
    let cases: [&[u8]; 4] = [
        b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\nno end\r\n",
        b"MAIL FROM:<a@earth.example>\nRCPT TO:<b@moon.example>\nDATA\nbare lf\n.\n",
        b"RCPT TO:<b@moon.example>\r\n",
        b"",
    ];
    for body in cases {
        let (status, json) = post(&mut conn, batch(&server, body, None, None)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}: {json}",
            String::from_utf8_lossy(body)
        );
        match codec().decode(
            body,
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        ) {
            Err(e) => {
                assert_eq!(json["code"], e.code.as_str());
                assert_eq!(json["message"], e.message.as_str());
                assert_eq!(json["offset"], serde_json::json!(e.offset));
            }
            Ok(messages) => {
                assert!(messages.is_empty());
                assert_eq!(json["code"], "no-messages");
            }
        }
    }
    let (_, json) = post(&mut conn, batch(&server, cases[0], None, None)).await;
    assert_eq!(json["code"], "missing-final-dot");
    assert!(json["offset"].is_u64(), "{json}");
    assert!(server.spool.list().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_checked_and_duplicates_stored_once() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http1).await;
    for bad in ["..", "has space", "slash/x", &"k".repeat(129)] {
        let (status, json) = post(&mut conn, batch(&server, BATCH, Some(bad), None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json["code"], "bad-idempotency-key");
    }
    // Concurrent identical requests on separate connections: one stores,
    // the others are duplicates.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let version = [HttpVersion::Http1, HttpVersion::Http2, HttpVersion::Http3][i % 3];
        let mut conn = server.connect(version).await;
        let request = batch(&server, BATCH, Some("same-key"), None);
        tasks.push(tokio::spawn(async move {
            let r = conn.send(request).await.unwrap();
            conn.close().await;
            r
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let json: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(json["batch_id"], "same-key");
        assert_eq!(json["messages"], 2);
        if json["duplicate"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one request stored the batch");
    assert_eq!(server.spool.list().unwrap().len(), 1);
    let leftovers = std::fs::read_dir(server.spool.root().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);

    // The same key with another body is a client bug, not a duplicate:
    // 422, and the stored batch is kept as it was.
    let other = String::from_utf8_lossy(BATCH).replace("hello moon", "a different body");
    assert_ne!(other.as_bytes(), BATCH);
    let mut conn = server.connect(HttpVersion::Http2).await;
    let (status, json) = post(
        &mut conn,
        batch(&server, other.as_bytes(), Some("same-key"), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["code"], "idempotency-key-reused");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("already used for a different batch"),
        "{json}"
    );
    let stored = server.spool.list().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::read(stored[0].dir.join("batch.bsmtp")).unwrap(),
        BATCH
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_and_json_errors() {
    let server = Server::start(Options::default()).await;
    let mut conn = server.connect(HttpVersion::Http2).await;
    let (status, json) = post(
        &mut conn,
        batch_request(&server.url("/elsewhere"), BATCH, None, None).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["code"], "not-found");
    let get = Request::get(server.url("/inboundmail"))
        .body(Bytes::new())
        .unwrap();
    let response = conn.send(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[http::header::ALLOW], "POST");
    let json: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(json["code"], "method-not-allowed");
    assert!(json["message"].as_str().unwrap().contains("POST"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = Server::start(Options::default()).await;
    // HTTP/1.1 by hand, so the body can arrive in two halves with the
    // shutdown signal in between.
    let mut stream = trickling_post(&server, "in-flight", 50).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Shut down while the request is half-read.
    let _ = server.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.task.is_finished(),
        "waits for the in-flight request"
    );
    // New connections are refused by now.
    assert!(
        tokio::net::TcpStream::connect(server.https).await.is_err(),
        "the listener is closed"
    );
    stream.write_all(&BATCH[50..]).await.unwrap();
    stream.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"batch_id\":\"in-flight\""),
        "{response}"
    );
    assert!(server.spool.contains("in-flight"));
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("server stops once the request is done")
        .unwrap();
}

/// A POST over HTTP/1.1 by hand whose body stops after `sent` bytes; the
/// stream stays open.
async fn trickling_post(
    server: &Server,
    key: &str,
    sent: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let tls = client_config(&[pki().ca_der()], None, &[b"http/1.1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(SERVER_NAME.try_into().unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /inboundmail HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\
         Content-Type: application/batch-SMTP\r\nIdempotency-Key: {key}\r\n\
         Content-Length: {}\r\n\r\n",
        BATCH.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&BATCH[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// A client that sends its body a byte now and then cannot hold a request
/// (and its memory) for ever: 408 when the body timeout runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_times_out_with_408() {
    use tokio::io::AsyncReadExt;
    let server = Server::start(Options {
        body_timeout: Some(Duration::from_millis(500)),
        ..Options::default()
    })
    .await;
    let started = std::time::Instant::now();
    let mut stream = trickling_post(&server, "trickle", 20).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body-timeout"), "{response}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!server.spool.contains("trickle"));
    server.stop().await;
}

/// One client address cannot hold every request slot: beyond its limit it
/// gets 503 with Retry-After (temporary for senders), and its slot frees
/// when its request ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_hold_more_than_its_requests() {
    let server = Server::start(Options {
        max_requests_per_peer: Some(1),
        ..Options::default()
    })
    .await;
    let slow = trickling_post(&server, "slow-one", 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = server.connect(HttpVersion::Http2).await;
    let request = batch(&server, BATCH, Some("second"), None);
    let response = conn.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "5");
    let json: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(json["code"], "too-many-requests");
    // The slow request ends (the client goes away): the slot is free again.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, json) = post(&mut conn, batch(&server, BATCH, Some("third"), None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    server.stop().await;
}

/// `Content-Encoding: gzip` bodies are decompressed (bounded) and spooled
/// as the Batch SMTP they carry; a bomb is 413 and an unknown encoding 415,
/// with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_taken_and_bombs_refused() {
    use deepmail_gateway::gzip;
    let server = Server::start(Options {
        max_body: Some(1 << 20),
        ..Options::default()
    })
    .await;
    for version in [HttpVersion::Http1, HttpVersion::Http2, HttpVersion::Http3] {
        let mut conn = server.connect(version).await;
        // A bomb: 64 MiB of one line in a 64 KiB body.
        let mut bomb =
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n".to_vec();
        bomb.resize(64 << 20, b'x');
        let mut request = batch(&server, &gzip(&bomb), None, None);
        request
            .headers_mut()
            .insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let (status, json) = post(&mut conn, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{version:?}: {json}");
        assert_eq!(json["code"], "decompressed-too-large");
        // An encoding not taken here.
        let mut request = batch(&server, BATCH, None, None);
        request
            .headers_mut()
            .insert(http::header::CONTENT_ENCODING, "br".parse().unwrap());
        let (status, json) = post(&mut conn, request).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{version:?}: {json}"
        );
        assert_eq!(json["code"], "unsupported-content-encoding");
        // Not gzip at all, though it says so.
        let mut request = batch(&server, BATCH, None, None);
        request
            .headers_mut()
            .insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let (status, json) = post(&mut conn, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{version:?}: {json}");
        assert_eq!(json["code"], "bad-content-encoding");
        conn.close().await;
    }
    assert!(server.spool.list().unwrap().is_empty(), "nothing stored");
    // The real thing: spooled as the Batch SMTP it carries.
    let mut conn = server.connect(HttpVersion::Http2).await;
    let key = sha256_hex(BATCH);
    let mut request = batch(&server, &gzip(BATCH), Some(&key), None);
    request
        .headers_mut()
        .insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
    let (status, json) = post(&mut conn, request).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let listed = server.spool.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].raw().unwrap(), BATCH);
    assert_eq!(listed[0].meta.messages, 2);
    server.stop().await;
}
