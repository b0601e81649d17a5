//! One HTTP/3 `POST` over a fresh QUIC connection, as a sans-IO state
//! machine on top of `quinn_proto::{Endpoint, Connection}`.
//!
//! The caller owns the socket and the clock: it feeds received datagrams
//! ([`Exchange::handle_datagram`]) and expired timers
//! ([`Exchange::handle_timeout`]) with the current `Instant`, sends what
//! [`Exchange::poll_transmit`] yields, and sleeps until
//! [`Exchange::poll_timeout`]. When [`Exchange::result`] is set and nothing
//! is left to transmit, the exchange is over.
//!
//! With a cached session ticket and `zero-rtt` on, the streams are opened and
//! the whole request is written before the handshake completes (0-RTT); if
//! the server rejects early data, quinn forgets those streams and the request
//! is written again in 1-RTT.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::quic_tls::{QuicClientConfig, ResetKey};
use bytes::{Bytes, BytesMut};
use quinn_proto::congestion::CubicConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint,
    EndpointConfig, Event, IdleTimeout, ReadError, StreamEvent, StreamId, TransportConfig, VarInt,
    WriteError,
};

use crate::config::Settings;
use crate::h3::{self, ResponseReader};
use crate::qpack::RequestHead;
use crate::tls;

/// Largest response body kept (it is the reason text of a failure, or the
/// receiver's receipt).
const BODY_LIMIT: usize = 16 * 1024;
/// Largest response HEADERS frame accepted.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// What became of 0-RTT on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroRtt {
    /// No session ticket was cached (or `zero-rtt` is off): a full handshake.
    NotAttempted,
    /// The request went out as early data and the server took it.
    Accepted,
    /// The server refused early data; the request was sent again after the
    /// handshake.
    Rejected,
}

/// A response the server gave, with how the connection went.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The HTTP response.
    pub response: h3::Response,
    /// Time from the first packet sent to the handshake's completion.
    pub handshake: Duration,
    /// Time from the first packet sent to the end of the response.
    pub total: Duration,
    /// 0-RTT use.
    pub zero_rtt: ZeroRtt,
    /// Smoothed RTT at the end.
    pub rtt: Duration,
}

/// Why no response came back. Every kind is worth retrying later; the text
/// says what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No handshake or no response before the deadline.
    Timeout(String),
    /// The certificate chain or the TLS handshake failed.
    Tls(String),
    /// The connection was refused, reset or closed before the response.
    Connection(String),
    /// The server broke HTTP/3 or QUIC rules.
    Protocol(String),
}

impl Failure {
    /// The text for the outcome message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Timeout(m)
            | Failure::Tls(m)
            | Failure::Connection(m)
            | Failure::Protocol(m) => m,
        }
    }
}

/// Bytes queued on one outgoing stream.
struct Outgoing {
    id: StreamId,
    parts: Vec<Bytes>,
    /// Bytes of `parts` written so far.
    written: usize,
    /// Finish the stream after the last byte (request) or leave it open
    /// (control and QPACK streams must stay open, RFC 9114 §6.2.1).
    fin: bool,
    done: bool,
}

impl Outgoing {
    fn total(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// The unwritten rest of the part `written` falls into.
    fn next_slice(&self) -> Option<&[u8]> {
        let mut skip = self.written;
        for part in &self.parts {
            if skip < part.len() {
                return Some(&part[skip..]);
            }
            skip -= part.len();
        }
        None
    }
}

/// One delivery in progress.
pub struct Exchange {
    endpoint: Endpoint,
    handle: ConnectionHandle,
    conn: Connection,
    remote: SocketAddr,
    server_name: String,
    /// A client certificate is configured (mutual TLS): a refused
    /// handshake may be about it.
    client_auth: bool,
    started: Instant,
    handshake_deadline: Instant,
    deadline: Instant,
    handshake_timeout: Duration,
    timeout: Duration,
    connected_at: Option<Instant>,
    control: Bytes,
    request: Vec<Bytes>,
    streams: Vec<Outgoing>,
    request_stream: Option<StreamId>,
    reader: Option<ResponseReader>,
    zero_rtt: ZeroRtt,
    endpoint_transmits: VecDeque<Vec<u8>>,
    result: Option<Result<Delivered, Failure>>,
}

/// The transport parameters and recovery settings of the deep-space profile.
pub fn transport_config(s: &Settings) -> TransportConfig {
    let mut t = TransportConfig::default();
    if let Some(rtt) = s.initial_rtt {
        t.initial_rtt(rtt);
    }
    // IdleTimeout is capped at 2^62 ms; anything configurable fits.
    t.max_idle_timeout(IdleTimeout::try_from(s.idle_timeout).ok());
    if let Some(w) = s.stream_window {
        t.stream_receive_window(VarInt::from_u64(w).unwrap_or(VarInt::MAX));
    }
    if let Some(w) = s.connection_window {
        t.receive_window(VarInt::from_u64(w).unwrap_or(VarInt::MAX));
    }
    let send = s.connection_window.max(s.stream_window);
    if let Some(w) = send {
        t.send_window(w);
    }
    if let Some(w) = s.initial_window {
        let mut cubic = CubicConfig::default();
        cubic.initial_window(w);
        t.congestion_controller_factory(Arc::new(cubic));
    }
    t.keep_alive_interval(s.keep_alive);
    // No DF bit can be set through wasi:sockets: stay at the 1200-byte
    // minimum rather than probe for a larger MTU.
    t.mtu_discovery_config(None);
    // The client accepts the server's control and QPACK streams only.
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(3));
    t
}

impl Exchange {
    /// Starts the connection for a `POST` of `body` with `fields` (regular
    /// header fields, lower case). The first packets are ready in
    /// [`Exchange::poll_transmit`].
    pub fn start(
        now: Instant,
        settings: &Settings,
        crypto: Arc<QuicClientConfig>,
        fields: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Exchange, Failure> {
        let reset_key = ResetKey::random()
            .map_err(|_| Failure::Tls("no randomness for the QUIC endpoint's reset key".into()))?;
        let mut endpoint = Endpoint::new(
            Arc::new(EndpointConfig::new(Arc::new(reset_key))),
            None,
            false,
            None,
        );
        let mut client = ClientConfig::new(crypto);
        client.transport_config(Arc::new(transport_config(settings)));
        client.token_store(tls::token_store());
        let (handle, conn) = endpoint
            .connect(now, client, settings.connect_to, &settings.server_name)
            .map_err(|e| Failure::Protocol(format!("cannot start a QUIC connection: {e}")))?;
        let head = RequestHead {
            authority: &settings.authority,
            path: &settings.path,
            fields,
        };
        let prefix = h3::request_prefix(&head, body.len() as u64);
        let mut ex = Exchange {
            endpoint,
            handle,
            conn,
            remote: settings.connect_to,
            server_name: settings.server_name.clone(),
            client_auth: settings.client_identity.is_some(),
            started: now,
            handshake_deadline: now + settings.handshake_timeout,
            deadline: now + settings.timeout,
            handshake_timeout: settings.handshake_timeout,
            timeout: settings.timeout,
            connected_at: None,
            control: Bytes::from(h3::control_stream_preface()),
            request: vec![Bytes::from(prefix), body],
            streams: Vec::new(),
            request_stream: None,
            reader: None,
            zero_rtt: ZeroRtt::NotAttempted,
            endpoint_transmits: VecDeque::new(),
            result: None,
        };
        if ex.conn.has_0rtt() {
            // A ticket from an earlier delivery: write everything now.
            ex.zero_rtt = ZeroRtt::Accepted;
            ex.open_streams();
            ex.write_streams();
        }
        Ok(ex)
    }

    /// The outcome, once there is one.
    pub fn result(&self) -> Option<&Result<Delivered, Failure>> {
        self.result.as_ref()
    }

    /// Takes the outcome.
    pub fn take_result(&mut self) -> Option<Result<Delivered, Failure>> {
        self.result.take()
    }

    /// The next datagram to send, written into `buf`; its length.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        if let Some(datagram) = self.endpoint_transmits.pop_front() {
            buf.clear();
            buf.extend_from_slice(&datagram);
            return Some(datagram.len());
        }
        buf.clear();
        let transmit = self.conn.poll_transmit(now, 1, buf)?;
        Some(transmit.size)
    }

    /// When [`Exchange::handle_timeout`] must be called next.
    pub fn poll_timeout(&mut self) -> Instant {
        let deadline = if self.connected_at.is_none() {
            self.handshake_deadline.min(self.deadline)
        } else {
            self.deadline
        };
        match self.conn.poll_timeout() {
            Some(t) => t.min(deadline),
            None => deadline,
        }
    }

    /// Takes one datagram from the peer.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        let mut response = Vec::new();
        match self.endpoint.handle(
            now,
            self.remote,
            None,
            None,
            BytesMut::from(data),
            &mut response,
        ) {
            Some(DatagramEvent::ConnectionEvent(handle, event)) if handle == self.handle => {
                self.conn.handle_event(event);
            }
            Some(DatagramEvent::Response(transmit)) => {
                response.truncate(transmit.size);
                self.endpoint_transmits.push_back(response);
            }
            _ => {}
        }
        self.drive(now);
    }

    /// Runs timers that expired by `now`, and the delivery's deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.result.is_none() {
            if self.connected_at.is_none() && now >= self.handshake_deadline.min(self.deadline) {
                let limit = self.handshake_timeout.min(self.timeout);
                self.fail(
                    now,
                    Failure::Timeout(format!(
                        "no QUIC handshake with {} ({}) within {} ms",
                        self.server_name,
                        self.remote,
                        limit.as_millis()
                    )),
                );
            } else if now >= self.deadline {
                self.fail(
                    now,
                    Failure::Timeout(format!(
                        "no complete HTTP/3 response from {} ({}) within {} ms",
                        self.server_name,
                        self.remote,
                        self.timeout.as_millis()
                    )),
                );
            }
        }
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
        self.drive(now);
    }

    /// The socket said the peer refused the datagrams (ICMP port
    /// unreachable): nothing listens there.
    pub fn handle_refused(&mut self, now: Instant, detail: &str) {
        if self.result.is_none() {
            self.fail(
                now,
                Failure::Connection(format!(
                    "{} ({}) refused the connection: {detail}",
                    self.server_name, self.remote
                )),
            );
        }
    }

    fn fail(&mut self, now: Instant, failure: Failure) {
        if self.result.is_none() {
            self.result = Some(Err(failure));
        }
        if !self.conn.is_closed() {
            self.conn.close(
                now,
                VarInt::from_u32(h3::error_code::NO_ERROR as u32),
                Bytes::new(),
            );
        }
    }

    fn open_streams(&mut self) {
        if !self.streams.is_empty() {
            return;
        }
        let mut streams = self.conn.streams();
        let (Some(control), Some(encoder), Some(decoder)) = (
            streams.open(Dir::Uni),
            streams.open(Dir::Uni),
            streams.open(Dir::Uni),
        ) else {
            // Fewer than three unidirectional streams allowed: RFC 9114 §6.2
            // says the server must allow them; report it.
            self.result.get_or_insert(Err(Failure::Protocol(format!(
                "{} does not allow the three unidirectional streams HTTP/3 needs",
                self.server_name
            ))));
            return;
        };
        let Some(request) = streams.open(Dir::Bi) else {
            self.result.get_or_insert(Err(Failure::Protocol(format!(
                "{} does not allow a request stream",
                self.server_name
            ))));
            return;
        };
        let uni = |id, bytes: Bytes| Outgoing {
            id,
            parts: vec![bytes],
            written: 0,
            fin: false,
            done: false,
        };
        self.streams = vec![
            uni(control, self.control.clone()),
            uni(
                encoder,
                Bytes::from(h3::uni_stream_preface(h3::stream_type::QPACK_ENCODER)),
            ),
            uni(
                decoder,
                Bytes::from(h3::uni_stream_preface(h3::stream_type::QPACK_DECODER)),
            ),
            Outgoing {
                id: request,
                parts: self.request.clone(),
                written: 0,
                fin: true,
                done: false,
            },
        ];
        self.request_stream = Some(request);
        self.reader = Some(ResponseReader::new(BODY_LIMIT, MAX_HEADER_BYTES));
    }

    fn write_streams(&mut self) {
        for out in &mut self.streams {
            while !out.done {
                let Some(slice) = out.next_slice() else {
                    if out.fin {
                        // Finishing an already finished or stopped stream is
                        // harmless: the error only says so.
                        let _ = self.conn.send_stream(out.id).finish();
                    }
                    out.done = true;
                    break;
                };
                match self.conn.send_stream(out.id).write(slice) {
                    Ok(n) => out.written += n,
                    Err(WriteError::Blocked) => break,
                    // Stopped by the peer (e.g. it answered before reading
                    // the whole body) or closed: nothing more to write.
                    Err(WriteError::Stopped(_)) | Err(WriteError::ClosedStream) => {
                        out.done = true;
                    }
                }
            }
            debug_assert!(out.written <= out.total());
        }
    }

    fn read_request_stream(&mut self, now: Instant, id: StreamId) {
        let mut recv = self.conn.recv_stream(id);
        let mut chunks = match recv.read(true) {
            Ok(c) => c,
            Err(_) => return,
        };
        let mut finished = false;
        let mut reset = None;
        let mut error = None;
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    if let Some(reader) = self.reader.as_mut() {
                        if let Err(e) = reader.push(&chunk.bytes) {
                            error = Some(e);
                            break;
                        }
                    }
                }
                Ok(None) => {
                    finished = true;
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    reset = Some(code);
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        if let Some(e) = error {
            let code = e.code();
            self.result.get_or_insert(Err(Failure::Protocol(format!(
                "{}: bad HTTP/3 response: {e}",
                self.server_name
            ))));
            if !self.conn.is_closed() {
                self.conn
                    .close(now, VarInt::from_u32(code as u32), Bytes::new());
            }
            return;
        }
        if finished {
            if let Some(reader) = self.reader.take() {
                match reader.finish() {
                    Ok(response) => self.complete(now, response),
                    Err(e) => {
                        self.fail(now, Failure::Protocol(format!("{}: {e}", self.server_name)))
                    }
                }
            }
        } else if let Some(code) = reset {
            let partial = self.reader.take().and_then(ResponseReader::partial);
            match partial {
                // A complete status is enough to decide; the body was cut.
                Some(response) => self.complete(now, response),
                None => self.fail(
                    now,
                    Failure::Connection(format!(
                        "{} reset the request stream (HTTP/3 error {:#x}) before responding",
                        self.server_name,
                        code.into_inner()
                    )),
                ),
            }
        }
    }

    fn complete(&mut self, now: Instant, response: h3::Response) {
        if self.result.is_none() {
            let connected = self.connected_at.unwrap_or(now);
            self.result = Some(Ok(Delivered {
                response,
                handshake: connected.saturating_duration_since(self.started),
                total: now.saturating_duration_since(self.started),
                zero_rtt: self.zero_rtt,
                rtt: self.conn.rtt(),
            }));
        }
        if !self.conn.is_closed() {
            self.conn.close(
                now,
                VarInt::from_u32(h3::error_code::NO_ERROR as u32),
                Bytes::new(),
            );
        }
    }

    /// Reads and drops what the server sends on its own unidirectional
    /// streams (control, QPACK encoder/decoder): with no dynamic table and
    /// no push there is nothing in them this client acts on.
    fn drain_uni(&mut self, id: StreamId) {
        let mut recv = self.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return;
        };
        while let Ok(Some(_)) = chunks.next(usize::MAX) {}
        let _ = chunks.finalize();
    }

    fn drive(&mut self, now: Instant) {
        while let Some(event) = self.conn.poll_endpoint_events() {
            if let Some(event) = self.endpoint.handle_event(self.handle, event) {
                self.conn.handle_event(event);
            }
        }
        while let Some(event) = self.conn.poll() {
            match event {
                Event::Connected => {
                    self.connected_at = Some(now);
                    if self.zero_rtt != ZeroRtt::NotAttempted && !self.conn.accepted_0rtt() {
                        // quinn dropped the 0-RTT streams: start over.
                        self.zero_rtt = ZeroRtt::Rejected;
                        self.streams.clear();
                        self.request_stream = None;
                    }
                    self.open_streams();
                }
                Event::ConnectionLost { reason } if self.result.is_none() => {
                    self.result = Some(Err(self.classify(reason)));
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    if Some(id) == self.request_stream {
                        self.read_request_stream(now, id);
                    } else {
                        self.drain_uni(id);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    while let Some(id) = self.conn.streams().accept(Dir::Uni) {
                        self.drain_uni(id);
                    }
                }
                Event::Stream(StreamEvent::Available { .. }) => self.open_streams(),
                _ => {}
            }
        }
        if self.result.is_none() {
            self.write_streams();
        }
    }

    fn classify(&self, reason: ConnectionError) -> Failure {
        let peer = format!("{} ({})", self.server_name, self.remote);
        match reason {
            ConnectionError::TransportError(e) if (0x100..0x200).contains(&u64::from(e.code)) => {
                Failure::Tls(format!(
                    "TLS handshake with {peer} failed: {} (check ca-pem and server-name)",
                    e.reason
                ))
            }
            ConnectionError::ConnectionClosed(close)
                if (0x100..0x200).contains(&u64::from(close.error_code)) =>
            {
                let hint = if self.client_auth {
                    " (if the receiver requires mutual TLS, check that it trusts the CA of \
                     client-cert-pem)"
                } else {
                    ""
                };
                Failure::Tls(format!("{peer} refused the TLS handshake: {close}{hint}"))
            }
            ConnectionError::TimedOut => Failure::Timeout(format!(
                "{peer} went silent for longer than the idle timeout"
            )),
            ConnectionError::TransportError(e) => {
                Failure::Protocol(format!("QUIC error with {peer}: {e}"))
            }
            other => Failure::Connection(format!("connection to {peer} lost: {other}")),
        }
    }
}
