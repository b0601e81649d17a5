//! Outgoing HTTP for sender plugins (`wasi:http/outgoing-handler`), made by
//! the host under the host's rules rather than wasmtime-wasi-http's default
//! handler (which speaks HTTP/1.1 only, trusts only bundled web roots and
//! ignores socket policy):
//!
//! * only the authorities (`host:port`) in the plugin's [`HttpGrant`];
//! * HTTPS trusting only the configured roots (a test CA works), with an
//!   optional client certificate (mutual TLS);
//! * HTTP/2 when the server offers it in ALPN, else HTTP/1.1;
//! * connect and response timeouts.
//!
//! A plugin without a grant gets `HttpRequestDenied` for every request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Where Debian and friends keep the system's trust roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

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

/// A grant with its TLS configuration built once.
pub(crate) struct HttpPolicy {
    grant: HttpGrant,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpPolicy {
    /// Validates the grant's PEM material and builds the TLS client config.
    pub(crate) fn new(grant: HttpGrant) -> Result<HttpPolicy, String> {
        let roots_pem = if grant.roots_pem.is_empty() {
            std::fs::read(SYSTEM_ROOTS)
                .map_err(|e| format!("no trust roots given and {SYSTEM_ROOTS}: {e}"))?
        } else {
            grant.roots_pem.clone()
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&roots_pem) {
            let cert = cert.map_err(|e| format!("trust roots: not PEM certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("trust roots: unusable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("trust roots: no certificate found in the PEM".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots);
        let mut tls = if grant.client_cert_pem.is_empty() {
            builder.with_no_client_auth()
        } else {
            let chain = CertificateDer::pem_slice_iter(&grant.client_cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&grant.client_key_pem)
                .map_err(|e| format!("client key: not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        };
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(HttpPolicy {
            grant,
            tls: Arc::new(tls),
        })
    }
}

/// The store's `wasi:http` hooks: every request goes through the policy.
pub(crate) struct HttpHooks {
    pub(crate) policy: Option<Arc<HttpPolicy>>,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// Spawns hyper's HTTP/2 background tasks on the runtime wasmtime-wasi runs.
#[derive(Clone, Copy)]
struct TokioExec;

impl<F> hyper::rt::Executor<F> for TokioExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Runs a hyper connection in a task of its own: it must make progress
/// (send the request body, read the response) while the caller waits for
/// the response head. The returned future reports how the connection ended.
fn drive<C>(conn: C) -> IoFuture
where
    C: Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    let task = tokio::spawn(conn);
    Box::new(async move {
        match task.await {
            Ok(result) => result.map_err(HttpError::from),
            Err(e) => Err(HttpError::InternalError(Some(format!(
                "HTTP connection task: {e}"
            )))),
        }
    })
}

fn ms(value: u64, default: u64) -> Duration {
    Duration::from_millis(if value == 0 { default } else { value })
}

async fn send(
    policy: Arc<HttpPolicy>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let grant = &policy.grant;
    let uri = request.uri().clone();
    let tls = match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => true,
        Some(s) if *s == Scheme::HTTP && grant.allow_plain_http => false,
        _ => return Err(HttpError::HttpRequestDenied),
    };
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let target = format!("{host}:{port}");
    let bracketed = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        target.clone()
    };
    if !grant
        .authorities
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&target) || a.eq_ignore_ascii_case(&bracketed))
    {
        return Err(HttpError::HttpRequestDenied);
    }
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(ms(grant.connect_timeout_ms, 10_000));
    let response_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(ms(grant.response_timeout_ms, 60_000));

    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&bracketed))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
            _ => HttpError::Connect(e),
        })?;
    let _ = tcp.set_nodelay(true);
    // HTTP/2 carries the target as :scheme, :authority and :path, so it
    // takes the absolute form; HTTP/1.1 puts the origin form on the request
    // line (the Host header keeps the authority).
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let invalid = |_: http::Error| HttpError::HttpRequestUriInvalid;
    let origin_form = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(invalid)?;
    let absolute_form = http::Uri::builder()
        .scheme("https")
        .authority(authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(invalid)?;

    macro_rules! exchange {
        ($io:expr, $h2:expr) => {{
            if $h2 {
                let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExec)
                    .handshake(TokioIo::new($io))
                    .await
                    .map_err(HttpError::from)?;
                let io = drive(conn);
                *request.uri_mut() = absolute_form;
                let response = tokio::time::timeout(response_timeout, sender.send_request(request))
                    .await
                    .map_err(|_| HttpError::HttpResponseTimeout)?
                    .map_err(HttpError::from)?;
                (response, io)
            } else {
                let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                    .handshake(TokioIo::new($io))
                    .await
                    .map_err(HttpError::from)?;
                let io = drive(conn);
                *request.uri_mut() = origin_form;
                let response = tokio::time::timeout(response_timeout, sender.send_request(request))
                    .await
                    .map_err(|_| HttpError::HttpResponseTimeout)?
                    .map_err(HttpError::from)?;
                (response, io)
            }
        }};
    }

    let (response, io) = if tls {
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => {
                ServerName::try_from(host.clone()).map_err(|_| HttpError::HttpRequestUriInvalid)?
            }
        };
        let connector = tokio_rustls::TlsConnector::from(policy.tls.clone());
        let stream = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
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
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        exchange!(stream, h2)
    } else {
        exchange!(tcp, false)
    };
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
