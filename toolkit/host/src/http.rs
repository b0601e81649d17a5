//! Outgoing HTTP for sender plugins (`wasi:http/outgoing-handler`), made by
//! the host under the host's rules rather than wasmtime-wasi-http's default
//! handler (which speaks HTTP/1.1 only, trusts only bundled web roots and
//! ignores socket policy):
//!
//! * only the authorities (`host:port`) in the plugin's [`HttpGrant`];
//! * HTTPS trusting only the configured roots (a test CA works), with an
//!   optional client certificate (mutual TLS);
//! * HTTP/2 when the server offers it in ALPN, else HTTP/1.1;
//! * connect and response timeouts;
//! * connections kept between requests (hyper-util's pooled client, one
//!   pool per loaded plugin): after the first delivery to a next hop, the
//!   next request leaves at once on the open HTTP/2 connection (or
//!   HTTP/1.1 keep-alive) instead of costing a TCP and a TLS handshake,
//!   which at Moon or Mars distance is two round trips. A request that
//!   finds its kept connection closed is sent again on a new one (the
//!   client retries requests that never left).
//!
//! A plugin without a grant gets `HttpRequestDenied` for every request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Where Debian and friends keep the system's trust roots: the one place
/// deepmail names it (the HTTPS grant, the QUIC sender's roots).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system's trust roots as PEM ([`SYSTEM_ROOTS`]).
pub fn system_roots_pem() -> std::io::Result<Vec<u8>> {
    std::fs::read(SYSTEM_ROOTS)
}

/// What a sender plugin may do over HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HttpGrant {
    /// `host:port` authorities requests may go to (lower case).
    pub authorities: Vec<String>,
    /// PEM trust roots; empty means the system's (`/etc/ssl/certs`).
    pub roots_pem: Vec<u8>,
    /// PEM client certificate chain for mutual TLS; empty means none.
    pub client_cert_pem: Vec<u8>,
    /// PEM private key of the client certificate.
    pub client_key_pem: Vec<u8>,
    /// Allow `http://` (no TLS): for tests on loopback only.
    pub allow_plain_http: bool,
    /// Milliseconds to connect (TCP and TLS).
    pub connect_timeout_ms: u64,
    /// Milliseconds to wait for the response head.
    pub response_timeout_ms: u64,
}

/// A grant with its TLS configuration and connection pool built once.
pub(crate) struct HttpPolicy {
    grant: HttpGrant,
    client: Client<GrantConnector, WasiBody>,
}

/// Why an HTTP grant's TLS material is unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GrantError {
    /// No roots in the grant, and the system's could not be read.
    #[error("no trust roots given and {SYSTEM_ROOTS}: {0}")]
    NoSystemRoots(std::io::Error),
    /// The roots are not PEM certificates.
    #[error("trust roots: not PEM certificates: {0}")]
    RootsNotPem(rustls::pki_types::pem::Error),
    /// A root certificate rustls cannot use.
    #[error("trust roots: unusable certificate: {0}")]
    RootUnusable(rustls::Error),
    /// PEM without a certificate.
    #[error("trust roots: no certificate found in the PEM")]
    NoRoots,
    /// rustls refused the protocol versions.
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The client certificate is not PEM.
    #[error("client certificate: not PEM: {0}")]
    ClientCertNotPem(rustls::pki_types::pem::Error),
    /// The client key is not a PEM private key.
    #[error("client key: not a PEM private key: {0}")]
    ClientKeyNotPem(rustls::pki_types::pem::Error),
    /// rustls refused the client certificate and key.
    #[error("client certificate: {0}")]
    ClientCert(rustls::Error),
}

impl HttpPolicy {
    /// Validates the grant's PEM material and builds the TLS client config.
    pub(crate) fn new(grant: HttpGrant) -> Result<HttpPolicy, GrantError> {
        let roots_pem = if grant.roots_pem.is_empty() {
            system_roots_pem().map_err(GrantError::NoSystemRoots)?
        } else {
            grant.roots_pem.clone()
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&roots_pem) {
            let cert = cert.map_err(GrantError::RootsNotPem)?;
            roots.add(cert).map_err(GrantError::RootUnusable)?;
        }
        if roots.is_empty() {
            return Err(GrantError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(GrantError::Tls)?
            .with_root_certificates(roots);
        let mut tls = if grant.client_cert_pem.is_empty() {
            builder.with_no_client_auth()
        } else {
            let chain = CertificateDer::pem_slice_iter(&grant.client_cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(GrantError::ClientCertNotPem)?;
            let key = PrivateKeyDer::from_pem_slice(&grant.client_key_pem)
                .map_err(GrantError::ClientKeyNotPem)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(GrantError::ClientCert)?
        };
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = GrantConnector {
            tls: Arc::new(tls),
            connect_timeout: ms(grant.connect_timeout_ms, 10_000),
        };
        // A kept connection is checked with HTTP/2 PINGs no more often
        // than the answer to a request may take (the grant's response
        // timeout, sized by the caller for the link's round trip), and
        // closed after a long idle time.
        let answer = ms(grant.response_timeout_ms, 60_000);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(answer.saturating_mul(4).max(Duration::from_secs(600)))
            .http2_keep_alive_interval(answer.max(Duration::from_secs(30)))
            .http2_keep_alive_timeout(answer.max(Duration::from_secs(20)))
            .http2_keep_alive_while_idle(true)
            .build(connector);
        Ok(HttpPolicy { grant, client })
    }
}

/// Opens connections for the pool: TCP, then TLS with the grant's roots
/// and client certificate, offering HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Clone)]
struct GrantConnector {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

/// A pooled connection: plain TCP (tests on loopback) or TLS.
enum Conn {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(_) => Connected::new(),
            Conn::Tls(s) if s.inner().get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            Conn::Tls(_) => Connected::new(),
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tower_service::Service<http::Uri> for GrantConnector {
    type Response = Conn;
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, HttpError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HttpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.connect(uri).await })
    }
}

impl GrantConnector {
    async fn connect(self, uri: http::Uri) -> Result<Conn, HttpError> {
        let tls = uri.scheme() == Some(&Scheme::HTTPS);
        let target = Target::of(&uri, tls)?;
        let host = target.host;
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&target.address))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                _ => HttpError::Connect(e),
            })?;
        let _ = tcp.set_nodelay(true);
        if !tls {
            return Ok(Conn::Plain(TokioIo::new(tcp)));
        }
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host).map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let stream = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(|e| {
                let certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                if certificate {
                    HttpError::TlsCertificateError
                } else {
                    HttpError::Tls(e)
                }
            })?;
        Ok(Conn::Tls(Box::new(TokioIo::new(stream))))
    }
}

/// Where a request goes: the host (lower case, IPv6 without brackets),
/// the port (the scheme's default if none) and `host:port` to connect to
/// (IPv6 bracketed).
struct Target {
    host: String,
    port: u16,
    address: String,
}

impl Target {
    fn of(uri: &http::Uri, tls: bool) -> Result<Target, HttpError> {
        let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            host,
            port,
            address,
        })
    }
}

/// The `wasi:http` error behind a pooled client's error: the connector's
/// own (refused, timeout, certificate) or hyper's.
fn client_error(e: hyper_util::client::legacy::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(err) = source {
        if let Some(own) = err.downcast_ref::<HttpError>() {
            return match own {
                HttpError::ConnectionRefused => HttpError::ConnectionRefused,
                HttpError::ConnectionTimeout => HttpError::ConnectionTimeout,
                HttpError::TlsCertificateError => HttpError::TlsCertificateError,
                HttpError::HttpRequestUriInvalid => HttpError::HttpRequestUriInvalid,
                other => HttpError::InternalError(Some(other.to_string())),
            };
        }
        source = err.source();
    }
    if e.is_connect() {
        return HttpError::ConnectionTerminated;
    }
    HttpError::InternalError(Some(format!("HTTP: {e}")))
}

/// The store's `wasi:http` hooks: every request goes through the policy.
pub(crate) struct HttpHooks {
    pub(crate) policy: Option<Arc<HttpPolicy>>,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

fn ms(value: u64, default: u64) -> Duration {
    Duration::from_millis(if value == 0 { default } else { value })
}

async fn send(
    policy: Arc<HttpPolicy>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let grant = &policy.grant;
    let uri = request.uri().clone();
    let tls = match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => true,
        Some(s) if *s == Scheme::HTTP && grant.allow_plain_http => false,
        _ => return Err(HttpError::HttpRequestDenied),
    };
    let target = Target::of(&uri, tls)?;
    let plain = format!("{}:{}", target.host, target.port);
    if !grant
        .authorities
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&plain) || a.eq_ignore_ascii_case(&target.address))
    {
        return Err(HttpError::HttpRequestDenied);
    }
    // The pool's connector uses the grant's connect timeout; a plugin may
    // ask for a shorter wait for the answer.
    let response_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(ms(grant.response_timeout_ms, 60_000));
    let response = tokio::time::timeout(response_timeout, policy.client.request(request))
        .await
        .map_err(|_| HttpError::HttpResponseTimeout)?
        .map_err(client_error)?;
    // The pool drives the connection in its own task.
    let io: IoFuture = Box::new(async { Ok(()) });
    Ok((
        response.map(|body| body.map_err(HttpError::from).boxed_unsync()),
        io,
    ))
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let policy = self.policy.clone();
        Box::new(async move {
            match policy {
                Some(policy) => send(policy, request, options).await,
                None => Err(HttpError::HttpRequestDenied),
            }
        })
    }
}
