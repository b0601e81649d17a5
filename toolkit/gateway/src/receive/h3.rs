//! HTTP/3 (RFC 9114) over QUIC: quinn for the transport, h3 for the
//! framing. Graceful shutdown sends GOAWAY on every connection, lets the
//! requests in flight finish, then closes the endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::RequestResolver;
use http::{Response, Version};
use quinn::crypto::rustls::QuicServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{handle, BodyError, BodySource, ReceiveError, RequestHead, Shared, Transport, JSON};
use crate::tls::certificate_subject;

type H3Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

struct H3Body<'a>(&'a mut H3Stream);

impl BodySource for H3Body<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match self.0.recv_data().await {
            Ok(Some(mut data)) => Ok(Some(data.copy_to_bytes(data.remaining()))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A QUIC endpoint on `addr` speaking `tls` (whose ALPN must be `h3`),
/// idle connections closed after `idle` (the handshake timeout): the handshake
/// waits a round trip of the link for the client's Finished, so over a
/// long link this is the handshake timeout.
pub(super) fn bind(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    idle: Duration,
) -> Result<quinn::Endpoint, ReceiveError> {
    // Accept 0-RTT: a resumed sender's POST arrives with its first flight,
    // saving a whole round trip (minutes at Mars distance). Replays are
    // harmless here: every batch is deduplicated by its Idempotency-Key.
    // quinn takes early data only with the limit at u32::MAX.
    let mut tls = (*tls).clone();
    tls.max_early_data_size = u32::MAX;
    let crypto =
        QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| ReceiveError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Room for a large batch in flight on a fast path.
    transport.stream_receive_window(quinn::VarInt::from_u32(8 << 20));
    transport.receive_window(quinn::VarInt::from_u32(16 << 20));
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).unwrap_or(quinn::VarInt::MAX.into()),
    ));
    config.transport_config(Arc::new(transport));
    quinn::Endpoint::server(config, addr).map_err(|error| ReceiveError::Bind {
        transport: "h3",
        addr,
        error,
    })
}

pub(super) async fn serve(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    connections.spawn(connection(
                        incoming,
                        shared.clone(),
                        stop.clone(),
                        handshake_timeout,
                    ));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = super::stopped(&mut stop) => break,
        }
    }
    // Refuse new connections; let the open ones finish their requests.
    endpoint.set_server_config(None);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

async fn connection(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
) {
    let Ok(connecting) = incoming.accept() else {
        return;
    };
    // Serve before the handshake completes (0.5-RTT), so that a resumed
    // sender's 0-RTT request is answered one OWLT after it was sent rather
    // than after the client's Finished (three OWLT). Without early data the
    // client's requests cannot arrive before its Finished anyway.
    let (conn, handshake) = match connecting.into_0rtt() {
        Ok(pair) => pair,
        // Not reached for incoming connections (quinn documents `Ok`).
        Err(connecting) => match tokio::time::timeout(handshake_timeout, connecting).await {
            Ok(Ok(conn)) => {
                connection_ready(conn, shared, stop).await;
                return;
            }
            _ => return,
        },
    };
    // Resolves when the handshake completes or the connection is lost (its
    // value says whether 0-RTT was accepted, which does not matter here).
    let completed = async move {
        tokio::time::timeout(handshake_timeout, handshake)
            .await
            .is_ok()
    };
    if shared.mutual_tls && conn.peer_identity().is_none() {
        // A full handshake: the client certificate comes with the client's
        // Finished, and the subject must be known before any request.
        if !completed.await || conn.close_reason().is_some() {
            conn.close(quinn::VarInt::from_u32(0), b"no handshake in time");
            return;
        }
    } else {
        // A resumed session (whose client certificate, if any, rustls
        // restored from the ticket) or no mutual TLS: still bound the
        // handshake, as before.
        let watchdog = conn.clone();
        tokio::spawn(async move {
            if !completed.await {
                watchdog.close(quinn::VarInt::from_u32(0), b"no handshake in time");
            }
        });
    }
    connection_ready(conn, shared, stop).await;
}

/// Serves the requests of an accepted connection.
async fn connection_ready(
    conn: quinn::Connection,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = conn.remote_address();
    let client_subject = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().cloned())
        .map(|leaf| certificate_subject(&leaf).unwrap_or_else(|| "client-certificate".into()));
    let mut h3conn: h3::server::Connection<h3_quinn::Connection, Bytes> =
        match h3::server::Connection::new(h3_quinn::Connection::new(conn)).await {
            Ok(c) => c,
            Err(_) => return,
        };
    let mut requests = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            accepted = h3conn.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(request(resolver, shared.clone(), peer, client_subject.clone()));
                }
                // GOAWAY done and every request answered, or the peer closed.
                Ok(None) | Err(_) => break,
            },
            _ = super::stopped(&mut stop), if !stopping => {
                stopping = true;
                let _ = h3conn.shutdown(0).await;
            }
        }
    }
    while requests.join_next().await.is_some() {}
}

async fn request(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    client_subject: Option<String>,
) {
    let Ok((req, mut stream)) = resolver.resolve_request().await else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let head = RequestHead {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        peer,
        transport: Transport::H3,
        version: "HTTP/3",
        client_subject,
    };
    let reply = handle(&shared, &head, &mut H3Body(&mut stream)).await;
    let mut response = Response::new(());
    *response.status_mut() = reply.status;
    *response.version_mut() = Version::HTTP_3;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, JSON);
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    if stream.send_response(response).await.is_err() {
        return;
    }
    let _ = stream.send_data(reply.body).await;
    let _ = stream.finish().await;
    if !reply.body_consumed {
        // RFC 9114 §4.1: a complete response before the whole request;
        // ask the client to stop sending the rest.
        stream.stop_sending(Code::H3_NO_ERROR);
    }
}
