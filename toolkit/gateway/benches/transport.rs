//! What it costs to deliver one Batch SMTP object over HTTPS (HTTP/2) and
//! HTTP/3 on loopback, natively and through the sender plugins, each
//! request on a NEW connection (TCP + TLS or QUIC handshake included),
//! against the in-process [`Receiver`] with its spool in a temp dir.
//!
//! ```sh
//! cargo bench -p deepmail-gateway --bench transport
//! python3 scripts/bench-table.py          # the `transport` table
//! ```
//!
//! Every measured POST is a *duplicate*: each batch is sent once (decoded,
//! fsynced into the spool) before its benchmark, so what is measured is the
//! transport, the receiver's decode and its dedupe, not the disk.
//!
//! Groups `transport/https` and `transport/h3`, ids `native/1KiB`,
//! `plugin/1KiB`, `native/1MiB`, `plugin/1MiB`:
//!
//! * https `native`: hyper HTTP/2 over tokio-rustls, as
//!   `deepmail_gateway::client` sets it up, one connection per request;
//! * https `plugin`: the builtin `https-sender` through the host, whose
//!   `wasi:http` hook connects per call (`toolkit/host/src/http.rs`);
//! * h3 `native`: quinn + h3 with a new endpoint and connection per request;
//! * h3 `plugin`: the builtin `quic-sender` (QUIC inside the component), a
//!   new UDP socket and connection per call; whether it resumed with 0-RTT
//!   is counted from its outcome text and printed.
//!
//! Groups `transport/https-detail` and `transport/h3-detail` take the
//! native numbers apart: `native-reuse` (one connection kept: no
//! handshake), `native-4KiB-chunks` (the body streamed through a channel
//! in 4 KiB pieces, as `wasi:http` hands the https-sender's writes to
//! hyper), `native-mtu1200` (MTU discovery off, as in the quic-sender).

use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use deepmail_gateway::{client_config, TestPki};
use deepmail_gateway::{Receiver, ReceiverConfig, Spool, BATCH_SMTP};
use deepmail_host::types::{Outcome, Payload};
use deepmail_host::{Codec, Host, HostConfig, HttpGrant, NetworkGrant, PluginSource, Sender};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls_pki_types::ServerName;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const TOKEN: &str = "s3cret";
const SIZES: [(&str, usize); 2] = [("1KiB", 1 << 10), ("1MiB", 1 << 20)];

/// A Batch SMTP object of about `size` bytes (one message, 65-byte lines).
fn batch(size: usize) -> Bytes {
    let mut b = b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nSubject: bench\r\n\r\n".to_vec();
    let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n";
    while b.len() + line.len() + 3 <= size {
        b.extend_from_slice(line);
    }
    b.extend_from_slice(b".\r\n");
    Bytes::from(b)
}

/// The Idempotency-Key `deepmail send` uses: the batch's SHA-256, hex.
fn key_of(body: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, body))
}

/// A session store that counts the TLS 1.3 tickets handed out, i.e. the
/// handshakes that tried to resume.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    resumptions: AtomicU64,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(
        &self,
        name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(name);
        if ticket.is_some() {
            self.resumptions.fetch_add(1, Ordering::Relaxed);
        }
        ticket
    }
}

/// A native TLS client config with ALPN `alpn` and a counting session store.
fn native_tls(pki: &TestPki, alpn: &[u8]) -> (rustls::ClientConfig, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: ClientSessionMemoryCache::new(256),
        resumptions: AtomicU64::new(0),
    });
    let mut tls = Arc::unwrap_or_clone(client_config(&[pki.ca_der()], None, &[alpn]).expect("tls"));
    tls.resumption = Resumption::store(store.clone());
    (tls, store)
}

/// A request body fed through a channel, like `wasi:http`'s outgoing body
/// (`wasmtime-wasi-http` `p2/body.rs`: an mpsc channel of 1 + 1 chunks).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

/// Native HTTPS: TCP, TLS and an HTTP/2 handshake set up as
/// `deepmail_gateway::Connection` does.
async fn h2_connect<B>(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> http2::SendRequest<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::IpAddress(addr.ip().into());
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(256 << 10)
        .handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

fn request<B>(url: &str, key: &str, len: usize, body: B) -> Request<B> {
    Request::post(url)
        .header(http::header::CONTENT_TYPE, BATCH_SMTP)
        .header(http::header::CONTENT_LENGTH, len)
        .header("idempotency-key", key)
        .header(http::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(body)
        .expect("request")
}

/// One POST on `send`, the whole response read; the status.
async fn h2_post<B>(send: &mut http2::SendRequest<B>, request: Request<B>) -> u16
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    send.ready().await.expect("connection");
    let response = send.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    response.into_body().collect().await.expect("response body");
    status
}

/// Native HTTP/3: a new quinn endpoint and connection, one POST, the whole
/// response read, then CONNECTION_CLOSE without waiting for the draining
/// period (as the quic-sender does). The status.
async fn h3_post(
    addr: SocketAddr,
    client: &quinn::ClientConfig,
    request: Request<()>,
    body: Bytes,
) -> u16 {
    let endpoint =
        quinn::Endpoint::client((Ipv4Addr::UNSPECIFIED, 0).into()).expect("QUIC endpoint");
    let conn = endpoint
        .connect_with(client.clone(), addr, &addr.ip().to_string())
        .expect("QUIC connect")
        .await
        .expect("QUIC handshake");
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .expect("HTTP/3 handshake");
    let driving = tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
    let mut stream = send.send_request(request).await.expect("request");
    stream.send_data(body).await.expect("body");
    stream.finish().await.expect("finish");
    let response = stream.recv_response().await.expect("response");
    while let Some(mut chunk) = stream.recv_data().await.expect("response body") {
        chunk.advance(chunk.remaining());
    }
    drop((stream, send));
    endpoint.close(0u32.into(), b"done");
    driving.abort();
    response.status().as_u16()
}

/// Native HTTP/3 on one kept connection.
struct H3Kept {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    endpoint: quinn::Endpoint,
}

impl H3Kept {
    async fn connect(addr: SocketAddr, client: &quinn::ClientConfig) -> H3Kept {
        let endpoint =
            quinn::Endpoint::client((Ipv4Addr::UNSPECIFIED, 0).into()).expect("QUIC endpoint");
        let conn = endpoint
            .connect_with(client.clone(), addr, &addr.ip().to_string())
            .expect("QUIC connect")
            .await
            .expect("QUIC handshake");
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .expect("HTTP/3 handshake");
        tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
        H3Kept { send, endpoint }
    }

    async fn post(&mut self, request: Request<()>, body: Bytes) -> u16 {
        let mut stream = self.send.send_request(request).await.expect("request");
        stream.send_data(body).await.expect("body");
        stream.finish().await.expect("finish");
        let response = stream.recv_response().await.expect("response");
        while let Some(mut chunk) = stream.recv_data().await.expect("response body") {
            chunk.advance(chunk.remaining());
        }
        response.status().as_u16()
    }
}

/// Counts of the quic-sender's outcomes by handshake kind.
#[derive(Default)]
struct RttKinds {
    zero: u64,
    one: u64,
    rejected: u64,
}

impl RttKinds {
    fn count(&mut self, outcome: &Outcome) {
        let Outcome::Delivered(said) = outcome else {
            panic!("quic-sender did not deliver: {outcome:?}");
        };
        if said.contains("(0-RTT rejected") {
            self.rejected += 1;
        } else if said.contains("(0-RTT,") {
            self.zero += 1;
        } else if said.contains("(1-RTT,") {
            self.one += 1;
        } else {
            panic!("unexpected quic-sender outcome: {said}");
        }
    }
}

fn delivered(outcome: &Outcome) {
    assert!(
        matches!(outcome, Outcome::Delivered(said) if said.contains("\"duplicate\":true")),
        "expected a duplicate delivery, got {outcome:?}"
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let pki =
        TestPki::generate(&["localhost".into(), "127.0.0.1".into()], "earth-gw").expect("test PKI");
    let host = Host::new(HostConfig {
        call_timeout: Duration::from_secs(60),
        ..HostConfig::default()
    })
    .expect("WebAssembly host");
    let codec = Codec::load(&host, &PluginSource::Builtin("bsmtp-codec".into())).expect("codec");
    let (chain, key) = pki.server_identity();
    let mut config = ReceiverConfig::new(chain, key);
    config.https_listen = Some((Ipv4Addr::LOCALHOST, 0).into());
    config.h3_listen = Some((Ipv4Addr::LOCALHOST, 0).into());
    config.tokens = vec![TOKEN.into()];
    let spool = Arc::new(Spool::open(dir.path()).expect("spool"));
    let receiver = rt
        .block_on(Receiver::bind(config, spool, codec))
        .expect("receiver");
    let (https, h3) = (
        receiver.https_addr().expect("https"),
        receiver.h3_addr().expect("h3"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(receiver.serve(async {
        let _ = stopped.await;
    }));
    eprintln!(
        "receiver: https {https}, h3 {h3}, spool {}",
        dir.path().display()
    );

    https_benches(&mut c, &rt, &host, &pki, https);
    h3_benches(&mut c, &rt, &host, &pki, h3);

    let _ = stop.send(());
    rt.block_on(server).expect("receiver task");
    c.final_summary();
}

fn https_benches(c: &mut Criterion, rt: &Runtime, host: &Host, pki: &TestPki, addr: SocketAddr) {
    let url = format!("https://{addr}/inboundmail");
    let (tls, store) = native_tls(pki, b"h2");
    let tls = Arc::new(tls);
    let grant = NetworkGrant {
        http: Some(HttpGrant {
            authorities: vec![addr.to_string()],
            roots_pem: pki.ca_cert_pem.clone().into_bytes(),
            connect_timeout_ms: 30_000,
            response_timeout_ms: 30_000,
            ..HttpGrant::default()
        }),
        ..NetworkGrant::default()
    };
    let sender = Sender::load(
        host,
        &PluginSource::Builtin("https-sender".into()),
        vec![
            ("timeout-ms".into(), "30000".into()),
            ("bearer-token".into(), TOKEN.into()),
        ],
        Some(grant),
    )
    .expect("https-sender");

    let mut group = c.benchmark_group("transport/https");
    for (label, size) in SIZES {
        let body = batch(size);
        let key = key_of(&body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        // Store it once (fsync): everything measured below is a duplicate.
        let stored = sender
            .send(&url, &key, Payload::Bsmtp(body.to_vec()))
            .expect("first send");
        assert!(matches!(stored, Outcome::Delivered(_)), "{stored:?}");

        let before = store.resumptions.load(Ordering::Relaxed);
        let mut connections = 0u64;
        group.bench_function(BenchmarkId::new("native", label), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut send = h2_connect(addr, &tls).await;
                    let r = request(&url, &key, body.len(), Full::new(body.clone()));
                    assert_eq!(h2_post(&mut send, r).await, 200);
                });
                connections += 1;
            })
        });
        eprintln!(
            "https native/{label}: {} of {connections} TLS handshakes offered a session ticket",
            store.resumptions.load(Ordering::Relaxed) - before
        );

        // The payload is the caller's Vec (the CLI reads it from a file):
        // building it is setup, not measured.
        group.bench_function(BenchmarkId::new("plugin", label), |b| {
            b.iter_batched(
                || Payload::Bsmtp(body.to_vec()),
                |payload| delivered(&sender.send(&url, &key, payload).expect("send")),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("transport/https-detail");
    let (label, size) = SIZES[0];
    let body = batch(size);
    let key = key_of(&body);
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut kept = rt.block_on(h2_connect::<Full<Bytes>>(addr, &tls));
    group.bench_function(BenchmarkId::new("native-reuse", label), |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = request(&url, &key, body.len(), Full::new(body.clone()));
                assert_eq!(h2_post(&mut kept, r).await, 200);
            })
        })
    });
    drop(kept);
    let (label, size) = SIZES[1];
    let body = batch(size);
    let key = key_of(&body);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(BenchmarkId::new("native-4KiB-chunks", label), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut send = h2_connect(addr, &tls).await;
                let (tx, rx) = mpsc::channel(2);
                let source = body.clone();
                // The writer copies each piece, as the host copies each
                // `blocking-write-and-flush` out of the guest's memory.
                let writer = tokio::spawn(async move {
                    for piece in source.chunks(4096) {
                        if tx.send(Bytes::copy_from_slice(piece)).await.is_err() {
                            break;
                        }
                    }
                });
                let r = request(&url, &key, body.len(), ChannelBody(rx));
                assert_eq!(h2_post(&mut send, r).await, 200);
                writer.await.expect("writer");
            })
        })
    });
    group.finish();
}

fn h3_benches(c: &mut Criterion, rt: &Runtime, host: &Host, pki: &TestPki, addr: SocketAddr) {
    let url = format!("https://{addr}/inboundmail");
    let (tls, store) = native_tls(pki, b"h3");
    let crypto = Arc::new(QuicClientConfig::try_from(tls).expect("QUIC TLS"));
    let client = quinn::ClientConfig::new(crypto.clone());
    let mut mtu1200 = quinn::ClientConfig::new(crypto);
    let mut transport = quinn::TransportConfig::default();
    transport.mtu_discovery_config(None);
    mtu1200.transport_config(Arc::new(transport));

    let grant = NetworkGrant {
        udp: true,
        remote: vec![addr],
        ..NetworkGrant::default()
    };
    let sender = Sender::load(
        host,
        &PluginSource::Builtin("quic-sender".into()),
        vec![
            ("timeout-ms".into(), "30000".into()),
            ("bearer-token".into(), TOKEN.into()),
            ("connect-to".into(), addr.to_string()),
            ("ca-pem".into(), pki.ca_cert_pem.clone()),
        ],
        Some(grant),
    )
    .expect("quic-sender");
    let h3_request = |key: &str, len: usize| request(&url, key, len, ());

    let mut group = c.benchmark_group("transport/h3");
    for (label, size) in SIZES {
        let body = batch(size);
        let key = key_of(&body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let stored = sender
            .send(&url, &key, Payload::Bsmtp(body.to_vec()))
            .expect("first send");
        assert!(matches!(stored, Outcome::Delivered(_)), "{stored:?}");

        let before = store.resumptions.load(Ordering::Relaxed);
        let mut connections = 0u64;
        group.bench_function(BenchmarkId::new("native", label), |b| {
            b.iter(|| {
                let status = rt.block_on(h3_post(
                    addr,
                    &client,
                    h3_request(&key, body.len()),
                    body.clone(),
                ));
                assert_eq!(status, 200);
                connections += 1;
            })
        });
        eprintln!(
            "h3 native/{label}: {} of {connections} QUIC handshakes offered a session ticket",
            store.resumptions.load(Ordering::Relaxed) - before
        );

        let mut kinds = RttKinds::default();
        group.bench_function(BenchmarkId::new("plugin", label), |b| {
            b.iter_batched(
                || Payload::Bsmtp(body.to_vec()),
                |payload| {
                    let outcome = sender.send(&url, &key, payload).expect("send");
                    delivered(&outcome);
                    kinds.count(&outcome);
                },
                BatchSize::PerIteration,
            )
        });
        eprintln!(
            "h3 plugin/{label}: {} calls 0-RTT, {} 1-RTT, {} 0-RTT rejected",
            kinds.zero, kinds.one, kinds.rejected
        );
    }
    group.finish();

    let mut group = c.benchmark_group("transport/h3-detail");
    let (label, size) = SIZES[0];
    let body = batch(size);
    let key = key_of(&body);
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut kept = rt.block_on(H3Kept::connect(addr, &client));
    group.bench_function(BenchmarkId::new("native-reuse", label), |b| {
        b.iter(|| {
            let status = rt.block_on(kept.post(h3_request(&key, body.len()), body.clone()));
            assert_eq!(status, 200);
        })
    });
    kept.endpoint.close(0u32.into(), b"done");
    drop(kept);
    let (label, size) = SIZES[1];
    let body = batch(size);
    let key = key_of(&body);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(BenchmarkId::new("native-mtu1200", label), |b| {
        b.iter(|| {
            let status = rt.block_on(h3_post(
                addr,
                &mtu1200,
                h3_request(&key, body.len()),
                body.clone(),
            ));
            assert_eq!(status, 200);
        })
    });
    group.finish();
}
