//! HTTPS: TLS over TCP (tokio-rustls), HTTP/1.1 or HTTP/2 as ALPN chose,
//! served by hyper; graceful shutdown through hyper-util's watcher.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{handle, BodyError, BodySource, RequestHead, Shared, Transport, JSON};
use crate::tls::certificate_subject;

struct HyperBody(Incoming);

impl BodySource for HyperBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                    // Trailers: nothing to do with them.
                }
            }
        }
    }
}

/// Accepts TLS connections until `stop`, then waits (up to `grace`) for
/// the connections' in-flight requests.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    builder
        .http2()
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(256 << 10);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = super::stopped(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("deepmail receive: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                _ => return, // failed or too slow handshake: nothing to answer
            };
            let client_subject = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| {
                    certificate_subject(leaf).unwrap_or_else(|| "client-certificate".into())
                });
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let client_subject = client_subject.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req, peer, client_subject).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

async fn respond(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
    client_subject: Option<String>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let version = parts.version;
    let head = RequestHead {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        peer,
        transport: Transport::Https,
        version: if version == Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        },
        client_subject,
    };
    let mut body = HyperBody(body);
    let reply = handle(shared, &head, &mut body).await;
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, JSON);
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    if !reply.body_consumed && version < Version::HTTP_2 {
        // The rest of the body is not read: the connection cannot be reused.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
