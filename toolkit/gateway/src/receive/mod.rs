//! The receiving endpoint: `POST <path>` of an `application/batch-SMTP`
//! object over HTTPS (HTTP/1.1 and HTTP/2, chosen by ALPN) and HTTP/3
//! (QUIC), decoded by the codec plugin and stored in the [`Spool`] before
//! the 200 goes out. This is the server side of the wire contract in
//! `wit/deepmail.wit` (`interface sender`).
//!
//! Every request, whatever the transport, goes through one handler, in
//! this order: route (404, 405), authenticate (401), `Content-Length`
//! against the size limit (413), `Content-Type` (415), `Idempotency-Key`
//! syntax (400), the body counted while read (413), strict decode (422 with
//! the codec's error class), dedupe and durable store (200, or 500 when the
//! spool fails). Errors are JSON `{"code","message"}`.

mod h3;
mod https;
mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use deepmail_host::types::{DecodeMode, DecodeOptions};
use deepmail_host::Codec;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::spool::{self, BatchMeta, NewBatch, Spool, StoreOutcome};
use crate::tls::{self, TlsError};

pub use deepmail_gateway_config::DEFAULT_PATH;
pub use settings::{ReceiveSettings, ReceiveSettingsError, ReceiveSetup};
/// The default size limit of one batch: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;
/// The media type of Batch SMTP (RFC 2442).
pub const BATCH_SMTP: &str = "application/batch-SMTP";

/// How to run the endpoint.
#[derive(Debug)]
pub struct ReceiverConfig {
    /// TCP address for HTTPS (HTTP/1.1 and HTTP/2); `None` for none.
    pub https_listen: Option<SocketAddr>,
    /// UDP address for HTTP/3; `None` for none. May share the port number
    /// of `https_listen`.
    pub h3_listen: Option<SocketAddr>,
    /// The route, e.g. `/inboundmail`.
    pub path: String,
    /// Largest body accepted, in bytes.
    pub max_body_bytes: u64,
    /// The server certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The server's private key.
    pub key: PrivateKeyDer<'static>,
    /// CAs a client certificate may chain to; `None` disables mutual TLS.
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
    /// Bearer tokens accepted in `Authorization: Bearer <token>`.
    pub tokens: Vec<String>,
    /// Time allowed for a TLS or QUIC handshake, and for HTTP/1.1 request
    /// headers to arrive; also the QUIC idle timeout. Over
    /// a long link: at least two one-way light times, plus margin.
    pub handshake_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    /// The whole request body must arrive within this time (`408` after):
    /// a client sending 1 byte a second cannot hold a request for ever.
    pub body_timeout: Duration,
    /// Requests one client address may have in progress at once (`503`
    /// with `Retry-After` beyond).
    pub max_requests_per_peer: usize,
}

impl ReceiverConfig {
    /// HTTPS on `127.0.0.1:8443`, no HTTP/3, no authentication, the default
    /// path and size limit.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        ReceiverConfig {
            https_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
            h3_listen: None,
            path: DEFAULT_PATH.to_string(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cert_chain,
            key,
            client_ca: None,
            tokens: Vec::new(),
            handshake_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            body_timeout: Duration::from_secs(600),
            max_requests_per_peer: 16,
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Certificates, key or client CA were unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listening socket could not be bound.
    #[error("cannot listen for {transport} on {addr}: {error}")]
    Bind {
        /// `https` (TCP) or `h3` (UDP).
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
    /// QUIC could not be configured.
    #[error("HTTP/3: {0}")]
    Quic(String),
    /// Neither listener was configured.
    #[error("nothing to listen on: configure an HTTPS or an HTTP/3 address")]
    NoListener,
    /// The path does not start with `/`.
    #[error("path {0:?} must start with `/`")]
    BadPath(String),
}

/// The transport a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: HTTP/1.1 or HTTP/2.
    Https,
    /// HTTP/3 over QUIC.
    H3,
}

impl Transport {
    /// `https` or `h3`, as written in `meta.json`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::H3 => "h3",
        }
    }
}

/// One handled request, for the request log.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// How it came.
    pub transport: Transport,
    /// `HTTP/1.1`, `HTTP/2` or `HTTP/3`.
    pub version: &'static str,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// The error class, for a non-200.
    pub code: Option<String>,
    /// The batch id, once known.
    pub batch_id: Option<String>,
    /// Messages in the batch (0 unless it was accepted).
    pub messages: usize,
    /// Whether the batch was a duplicate.
    pub duplicate: bool,
    /// Body bytes read.
    pub bytes: u64,
    /// Time from the request head to the response.
    pub elapsed: Duration,
}

/// A callback that sees every handled request.
pub(crate) type RequestLog = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// What every request handler shares.
pub(crate) struct Shared {
    path: String,
    max_body: u64,
    body_timeout: Duration,
    max_requests_per_peer: usize,
    /// Requests in progress per client address.
    in_progress: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    tokens: Vec<String>,
    mutual_tls: bool,
    codec: Codec,
    spool: Arc<Spool>,
    log: Option<RequestLog>,
}

/// The endpoint, bound and ready to [`serve`](Receiver::serve).
pub struct Receiver {
    shared: Shared,
    tcp: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    quic: Option<quinn::Endpoint>,
    https_addr: Option<SocketAddr>,
    h3_addr: Option<SocketAddr>,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
}

impl Receiver {
    /// Builds the TLS configurations and binds the sockets. Call inside a
    /// tokio runtime.
    pub async fn bind(
        config: ReceiverConfig,
        spool: Arc<Spool>,
        codec: Codec,
    ) -> Result<Receiver, ReceiveError> {
        if config.https_listen.is_none() && config.h3_listen.is_none() {
            return Err(ReceiveError::NoListener);
        }
        if !config.path.starts_with('/') {
            return Err(ReceiveError::BadPath(config.path));
        }
        let client_ca = config.client_ca.as_deref();
        let mut tcp = None;
        let mut https_addr = None;
        if let Some(addr) = config.https_listen {
            let tls = tls::server_config(
                config.cert_chain.clone(),
                config.key.clone_key(),
                client_ca,
                &[b"h2", b"http/1.1"],
            )?;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| ReceiveError::Bind {
                        transport: "https",
                        addr,
                        error,
                    })?;
            https_addr = Some(listener.local_addr().map_err(|error| ReceiveError::Bind {
                transport: "https",
                addr,
                error,
            })?);
            tcp = Some((listener, tls));
        }
        let mut quic = None;
        let mut h3_addr = None;
        if let Some(addr) = config.h3_listen {
            let tls = tls::server_config(
                config.cert_chain.clone(),
                config.key.clone_key(),
                client_ca,
                &[b"h3"],
            )?;
            let endpoint = h3::bind(addr, tls, config.handshake_timeout)?;
            h3_addr = Some(endpoint.local_addr().map_err(|error| ReceiveError::Bind {
                transport: "h3",
                addr,
                error,
            })?);
            quic = Some(endpoint);
        }
        Ok(Receiver {
            shared: Shared {
                path: config.path,
                max_body: config.max_body_bytes,
                body_timeout: config.body_timeout,
                max_requests_per_peer: config.max_requests_per_peer.max(1),
                in_progress: Default::default(),
                tokens: config.tokens,
                mutual_tls: config.client_ca.is_some(),
                codec,
                spool,
                log: None,
            },
            tcp,
            quic,
            https_addr,
            h3_addr,
            handshake_timeout: config.handshake_timeout,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// Calls `log` after every request.
    pub fn with_request_log(
        mut self,
        log: impl Fn(&RequestRecord) + Send + Sync + 'static,
    ) -> Self {
        self.shared.log = Some(Arc::new(log));
        self
    }

    /// The bound HTTPS (TCP) address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The bound HTTP/3 (UDP) address.
    pub fn h3_addr(&self) -> Option<SocketAddr> {
        self.h3_addr
    }

    /// The route.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to the configured grace period) and
    /// returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(self.shared);
        let mut tasks = JoinSet::new();
        if let Some((listener, tls)) = self.tcp {
            tasks.spawn(https::serve(
                listener,
                tls,
                shared.clone(),
                stop_rx.clone(),
                self.handshake_timeout,
                self.shutdown_grace,
            ));
        }
        if let Some(endpoint) = self.quic {
            tasks.spawn(h3::serve(
                endpoint,
                shared.clone(),
                stop_rx,
                self.handshake_timeout,
                self.shutdown_grace,
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// Completes once `stop` says true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The parts of a request the handler looks at.
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) peer: SocketAddr,
    pub(crate) transport: Transport,
    pub(crate) version: &'static str,
    /// Subject of the verified client certificate, if one was presented.
    pub(crate) client_subject: Option<String>,
}

/// Why a request body could not be read (hyper's or h3's error).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body, read chunk by chunk.
pub(crate) trait BodySource: Send {
    /// The next chunk; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, BodyError>> + Send;
}

/// The response, transport-neutral.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// False when the handler answered before reading the whole body.
    pub(crate) body_consumed: bool,
}

/// A failed request: status, class, message, and the extras some carry.
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
    offset: Option<Option<u64>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Refusal {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code: code.to_string(),
            message: message.into(),
            offset: None,
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: HeaderName, value: &'static str) -> Refusal {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

struct Accepted {
    batch_id: String,
    messages: usize,
    duplicate: bool,
}

/// Progress the log wants even when the request fails.
#[derive(Default)]
struct Progress {
    bytes: u64,
    batch_id: Option<String>,
    body_consumed: bool,
}

/// Handles one request on any transport.
pub(crate) async fn handle<B: BodySource>(
    shared: &Shared,
    head: &RequestHead,
    body: &mut B,
) -> Reply {
    let started = Instant::now();
    let mut progress = Progress::default();
    let outcome = handle_inner(shared, head, body, &mut progress).await;
    if let Err(refusal) = &outcome {
        let drain = !progress.body_consumed
            && refusal.status != StatusCode::PAYLOAD_TOO_LARGE
            && refusal.status != StatusCode::REQUEST_TIMEOUT;
        if drain {
            // Bounded: a refused client trickling its body must not hold
            // the connection (the connection is closed instead).
            progress.body_consumed = tokio::time::timeout(
                DRAIN_TIME.min(shared.body_timeout),
                drain_small_body(head, body),
            )
            .await
            .unwrap_or(false);
        }
    }
    let messages = outcome.as_ref().map(|a| a.messages).unwrap_or(0);
    let (status, json, headers, code, duplicate) = match outcome {
        Ok(a) => (
            StatusCode::OK,
            json!({"batch_id": a.batch_id, "messages": a.messages, "duplicate": a.duplicate}),
            Vec::new(),
            None,
            a.duplicate,
        ),
        Err(r) => {
            let mut body = json!({"code": r.code, "message": r.message});
            if let Some(offset) = r.offset {
                body["offset"] = json!(offset);
            }
            (r.status, body, r.headers, Some(r.code), false)
        }
    };
    if let Some(log) = &shared.log {
        log(&RequestRecord {
            transport: head.transport,
            version: head.version,
            peer: head.peer,
            method: head.method.to_string(),
            path: head.path.clone(),
            status: status.as_u16(),
            code,
            batch_id: progress.batch_id,
            duplicate,
            messages,
            bytes: progress.bytes,
            elapsed: started.elapsed(),
        });
    }
    let mut body = serde_json::to_vec(&json).unwrap_or_default();
    body.push(b'\n');
    Reply {
        status,
        body: Bytes::from(body),
        headers,
        body_consumed: progress.body_consumed,
    }
}

async fn handle_inner<B: BodySource>(
    shared: &Shared,
    head: &RequestHead,
    body: &mut B,
    progress: &mut Progress,
) -> Result<Accepted, Refusal> {
    if head.path != shared.path {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "nothing at {}; batches go to POST {}",
                head.path, shared.path
            ),
        ));
    }
    if head.method != Method::POST {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{} takes POST only, not {}", shared.path, head.method),
        )
        .header(http::header::ALLOW, "POST"));
    }
    let identity = authenticate(shared, head)?;

    let max = shared.max_body;
    let declared = match head.headers.get(CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "bad-content-length",
                        "Content-Length is not a number",
                    )
                })?,
        ),
    };
    if let Some(len) = declared {
        if len > max {
            return Err(too_large(max, Some(len)));
        }
    }

    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_batch_smtp(content_type) {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "Content-Type must be {BATCH_SMTP}, got {}",
                if content_type.is_empty() {
                    "none"
                } else {
                    content_type
                }
            ),
        ));
    }

    // RFC 9110 §8.4: gzip, or none.
    let gzipped = match head
        .headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-content-encoding",
                format!("Content-Encoding `{other}` is not taken here; send gzip or none"),
            )
            .header(http::header::ACCEPT_ENCODING, "gzip"))
        }
    };

    let key = match head.headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v.to_str().ok().filter(|k| spool::is_valid_batch_id(k));
            Some(key.map(str::to_string).ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad-idempotency-key",
                    "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ : - \
                     (not `.` or `..`); senders use the lower-case hex SHA-256 of the body",
                )
            })?)
        }
    };
    progress.batch_id.clone_from(&key);

    // At most so many requests per client address at once.
    let _slot = PeerSlot::take(shared, head.peer.ip()).ok_or_else(|| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-requests",
            format!(
                "{} requests from {} are already in progress here; try again later",
                shared.max_requests_per_peer,
                head.peer.ip()
            ),
        )
        .header(http::header::RETRY_AFTER, "5")
    })?;

    // The body, counted as it arrives, within the body timeout.
    let body_deadline = tokio::time::Instant::now() + shared.body_timeout;
    let mut buf = BytesMut::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
    loop {
        let Ok(next) = tokio::time::timeout_at(body_deadline, body.next_chunk()).await else {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the request body did not arrive within {} s ({} bytes came)",
                    shared.body_timeout.as_secs_f64(),
                    progress.bytes
                ),
            ));
        };
        match next {
            Ok(Some(chunk)) => {
                progress.bytes += chunk.len() as u64;
                if progress.bytes > max {
                    return Err(too_large(max, None));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "body-incomplete",
                    format!(
                        "the request body broke off after {} bytes: {e}",
                        progress.bytes
                    ),
                ))
            }
        }
    }
    progress.body_consumed = true;
    if let Some(len) = declared {
        if len != progress.bytes {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body-incomplete",
                format!(
                    "Content-Length said {len} bytes, the body had {}",
                    progress.bytes
                ),
            ));
        }
    }
    let raw = if gzipped {
        // Bounded: a decompression bomb is refused before it costs memory.
        let compressed = buf.freeze();
        tokio::task::spawn_blocking(move || crate::compress::gunzip(&compressed, max))
            .await
            .map_err(|e| internal("decompression task failed", e))?
            .map_err(|e| match e {
                crate::compress::DecompressError::TooLarge { .. } => Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "decompressed-too-large",
                    e.to_string(),
                ),
                crate::compress::DecompressError::Invalid(_) => Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad-content-encoding",
                    e.to_string(),
                ),
            })?
            .into()
    } else {
        buf.freeze()
    };

    // Hash and decode off the async threads: both are CPU-bound.
    let codec = shared.codec.clone();
    let raw_for_decode = raw.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &raw_for_decode));
        let messages = codec.decode(
            &raw_for_decode,
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        );
        (sha256, messages)
    })
    .await;
    let (sha256, messages) = decoded.map_err(|e| internal("decode task failed", e))?;
    let messages = messages.map_err(|e| {
        let status = if e.is_plugin_fault() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut r = Refusal::new(status, &e.code, e.message);
        r.offset = Some(e.offset);
        r
    })?;
    if messages.is_empty() {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-messages",
            "the batch holds no message",
        ));
    }

    let batch_id = key.unwrap_or_else(|| sha256.clone());
    let body_sha256 = sha256.clone();
    progress.batch_id = Some(batch_id.clone());
    let count = messages.len();
    let meta = BatchMeta {
        batch_id: batch_id.clone(),
        received_at: spool::rfc3339(SystemTime::now()),
        peer: head.peer.to_string(),
        identity,
        transport: head.transport.name().to_string(),
        messages: count,
        bytes: progress.bytes,
        sha256,
    };
    let spool = shared.spool.clone();
    let stored = tokio::task::spawn_blocking(move || {
        spool.store(&NewBatch {
            meta,
            raw: &raw,
            messages: &messages,
        })
    })
    .await
    .map_err(|e| internal("spool task failed", e))?
    .map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "spool-failed",
            format!("the batch could not be stored, try again later: {e}"),
        )
    })?;
    if let StoreOutcome::Conflict { stored_sha256 } = stored {
        // draft-ietf-httpapi-idempotency-key-header §2.7: a key reused with
        // another payload is answered 422.
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            format!(
                "Idempotency-Key {batch_id} was already used for a different batch (SHA-256 {stored_sha256}, \
                 this one {body_sha256}): a client bug; send each batch under a key of its own"
            ),
        ));
    }
    Ok(Accepted {
        batch_id,
        messages: count,
        duplicate: stored == StoreOutcome::Duplicate,
    })
}

/// One request in progress from a client address; frees its place when
/// dropped.
struct PeerSlot<'a> {
    shared: &'a Shared,
    ip: std::net::IpAddr,
}

impl<'a> PeerSlot<'a> {
    fn take(shared: &'a Shared, ip: std::net::IpAddr) -> Option<PeerSlot<'a>> {
        let mut map = shared
            .in_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= shared.max_requests_per_peer {
            if *n == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(PeerSlot { shared, ip })
    }
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .in_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Bodies up to this size are read and dropped after a refusal (401, 415,
/// 400, 404, 405), so an HTTP/1.1 connection stays usable.
const DRAIN_LIMIT: u64 = 64 << 10;

/// ... and within this time; otherwise the connection is closed.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads and discards a refused request's body when it declares at most
/// [`DRAIN_LIMIT`] bytes; true when the body was read to its end.
async fn drain_small_body<B: BodySource>(head: &RequestHead, body: &mut B) -> bool {
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_none_or(|len| len > DRAIN_LIMIT) {
        return false;
    }
    let mut read = 0u64;
    loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len() as u64;
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("{what}: {e}"),
    )
}

fn too_large(max: u64, declared: Option<u64>) -> Refusal {
    let message = match declared {
        Some(len) => format!("the batch is {len} bytes; this endpoint takes at most {max}"),
        None => format!("the batch is over this endpoint's limit of {max} bytes"),
    };
    Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", message)
}

/// Who sent the request, or 401. With no client CA and no token
/// configured, everyone is `anonymous`.
fn authenticate(shared: &Shared, head: &RequestHead) -> Result<String, Refusal> {
    if !shared.mutual_tls && shared.tokens.is_empty() {
        return Ok("anonymous".to_string());
    }
    if shared.mutual_tls {
        if let Some(subject) = &head.client_subject {
            return Ok(subject.clone());
        }
    }
    let presented = head
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let refusal = |message: &str| {
        let r = Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        if shared.tokens.is_empty() {
            r
        } else {
            r.header(http::header::WWW_AUTHENTICATE, "Bearer realm=\"deepmail\"")
        }
    };
    match presented {
        Some(token) if !shared.tokens.is_empty() => {
            if shared
                .tokens
                .iter()
                .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
            {
                Ok("token".to_string())
            } else {
                Err(refusal("the bearer token is not accepted"))
            }
        }
        _ => Err(refusal(match (shared.mutual_tls, shared.tokens.is_empty()) {
            (true, true) => "a client certificate from the configured CA is required",
            (true, false) => {
                "present a client certificate from the configured CA or `Authorization: Bearer <token>`"
            }
            _ => "`Authorization: Bearer <token>` is required",
        })),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `application/batch-SMTP`, any case, parameters allowed.
fn is_batch_smtp(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(BATCH_SMTP)
}

/// The JSON content type every reply carries.
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_is_case_insensitive_with_parameters() {
        assert!(is_batch_smtp("application/batch-SMTP"));
        assert!(is_batch_smtp("Application/BATCH-smtp; charset=utf-8"));
        assert!(is_batch_smtp("  application/batch-smtp  "));
        assert!(!is_batch_smtp("application/batch-smtpx"));
        assert!(!is_batch_smtp("text/plain"));
        assert!(!is_batch_smtp(""));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
