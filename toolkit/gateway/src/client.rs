//! A minimal client for the endpoint: POST a batch over HTTPS (HTTP/1.1 or
//! HTTP/2, by ALPN) or HTTP/3, on a connection that can be reused. For
//! tests, the `deepmail` CLI's end-to-end test and quick measurements; the
//! production senders are the `https-sender` / `quic-sender` plugins.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Why a request could not be made (not an HTTP error status: those are
/// responses).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(String);

fn err(context: &str) -> impl FnOnce(&dyn std::fmt::Display) -> ClientError + '_ {
    move |e| ClientError(format!("{context}: {e}"))
}

/// Which HTTP to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 over TLS (ALPN `h2`).
    Http2,
    /// HTTP/3 over QUIC (ALPN `h3`).
    Http3,
}

/// A POST of a Batch SMTP object with the sender's headers. `uri` is the
/// full URL, e.g. `https://127.0.0.1:8443/inboundmail`.
pub fn batch_request(
    uri: &str,
    body: impl Into<Bytes>,
    idempotency_key: Option<&str>,
    bearer_token: Option<&str>,
) -> Result<Request<Bytes>, ClientError> {
    let mut builder = Request::post(uri).header(http::header::CONTENT_TYPE, crate::BATCH_SMTP);
    if let Some(key) = idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    if let Some(token) = bearer_token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(body.into()).map_err(|e| err("request")(&e))
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        endpoint: quinn::Endpoint,
    },
}

/// One connection to the endpoint.
pub struct Connection {
    sender: Sender,
    version: Version,
}

impl Connection {
    /// Connects to `addr`, verifying the server as `server_name` with
    /// `tls` (whose ALPN is replaced to match `version`).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: &rustls::ClientConfig,
        version: HttpVersion,
    ) -> Result<Connection, ClientError> {
        let mut tls = tls.clone();
        let name =
            ServerName::try_from(server_name.to_string()).map_err(|e| err("server name")(&e))?;
        match version {
            HttpVersion::Http1 | HttpVersion::Http2 => {
                tls.alpn_protocols = vec![if version == HttpVersion::Http2 {
                    b"h2".to_vec()
                } else {
                    b"http/1.1".to_vec()
                }];
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| err("connect")(&e))?;
                let _ = tcp.set_nodelay(true);
                let stream = TlsConnector::from(Arc::new(tls))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| err("TLS handshake")(&e))?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let io = TokioIo::new(stream);
                if h2 {
                    let (send, conn) = http2::Builder::new(TokioExecutor::new())
                        .initial_stream_window_size(4 << 20)
                        .initial_connection_window_size(8 << 20)
                        .max_frame_size(256 << 10)
                        .handshake(io)
                        .await
                        .map_err(|e| err("HTTP/2 handshake")(&e))?;
                    tokio::spawn(conn);
                    Ok(Connection {
                        sender: Sender::H2(send),
                        version: Version::HTTP_2,
                    })
                } else {
                    let (send, conn) = http1::handshake(io)
                        .await
                        .map_err(|e| err("HTTP/1.1 handshake")(&e))?;
                    tokio::spawn(conn);
                    Ok(Connection {
                        sender: Sender::H1(send),
                        version: Version::HTTP_11,
                    })
                }
            }
            HttpVersion::Http3 => {
                tls.alpn_protocols = vec![b"h3".to_vec()];
                let crypto = QuicClientConfig::try_from(tls).map_err(|e| err("QUIC TLS")(&e))?;
                let local: SocketAddr = if addr.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let mut endpoint =
                    quinn::Endpoint::client(local).map_err(|e| err("QUIC endpoint")(&e))?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint
                    .connect(addr, server_name)
                    .map_err(|e| err("QUIC connect")(&e))?
                    .await
                    .map_err(|e| err("QUIC handshake")(&e))?;
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                    .await
                    .map_err(|e| err("HTTP/3 handshake")(&e))?;
                tokio::spawn(async move {
                    let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
                });
                Ok(Connection {
                    sender: Sender::H3 { send, endpoint },
                    version: Version::HTTP_3,
                })
            }
        }
    }

    /// The HTTP version in use (HTTP/2 only when the server agreed by ALPN).
    pub fn version(&self) -> Version {
        self.version
    }

    /// Sends one request and reads the whole response.
    pub async fn send(&mut self, request: Request<Bytes>) -> Result<Response<Bytes>, ClientError> {
        match &mut self.sender {
            Sender::H1(send) => {
                send.ready().await.map_err(|e| err("connection")(&e))?;
                let (mut parts, body) = request.into_parts();
                // HTTP/1.1 takes the path in the request line and a Host header.
                if let Some(authority) = parts.uri.authority().cloned() {
                    parts.headers.insert(
                        http::header::HOST,
                        http::HeaderValue::from_str(authority.as_str())
                            .map_err(|e| err("host")(&e))?,
                    );
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = path.parse().map_err(|e| err("path")(&e))?;
                }
                let response = send
                    .send_request(Request::from_parts(parts, Full::new(body)))
                    .await
                    .map_err(|e| err("request")(&e))?;
                collect(response).await
            }
            Sender::H2(send) => {
                send.ready().await.map_err(|e| err("connection")(&e))?;
                let (parts, body) = request.into_parts();
                let response = send
                    .send_request(Request::from_parts(parts, Full::new(body)))
                    .await
                    .map_err(|e| err("request")(&e))?;
                collect(response).await
            }
            Sender::H3 { send, .. } => {
                let (parts, body) = request.into_parts();
                let mut stream = send
                    .send_request(Request::from_parts(parts, ()))
                    .await
                    .map_err(|e| err("request")(&e))?;
                // The server may answer (413, 401) before taking the whole
                // body and stop the stream: read the response regardless.
                let sent = async {
                    if !body.is_empty() {
                        stream.send_data(body).await?;
                    }
                    stream.finish().await
                }
                .await;
                let response = match stream.recv_response().await {
                    Ok(r) => r,
                    Err(e) => {
                        let why = match sent {
                            Err(s) => format!("{e} (sending: {s})"),
                            Ok(()) => e.to_string(),
                        };
                        return Err(ClientError(format!("response: {why}")));
                    }
                };
                let mut data = BytesMut::new();
                while let Some(mut chunk) = stream
                    .recv_data()
                    .await
                    .map_err(|e| err("response body")(&e))?
                {
                    data.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
                }
                let (parts, ()) = response.into_parts();
                Ok(Response::from_parts(parts, data.freeze()))
            }
        }
    }

    /// Closes the connection (waits briefly for QUIC to say goodbye).
    pub async fn close(self) {
        if let Sender::H3 { endpoint, send } = self.sender {
            drop(send);
            endpoint.close(quinn::VarInt::from_u32(0), b"done");
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
        }
    }
}

async fn collect(
    response: Response<hyper::body::Incoming>,
) -> Result<Response<Bytes>, ClientError> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| err("response body")(&e))?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}
