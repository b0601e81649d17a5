//! The tokio driver around [`crate::server::ServerSession`]: accepts TCP
//! connections, runs one session per task, upgrades to TLS on STARTTLS
//! (RFC 3207), enforces timeouts (RFC 5321 §4.5.3.2) and a connection
//! limit, and asks a [`Handler`] about each sender, recipient and message.
//!
//! Replies are batched as RFC 2920 allows: they are written when the input
//! holds no further complete command, and at once for `354`, STARTTLS,
//! QUIT and before closing. On shutdown, [`serve`] stops accepting, lets
//! sessions in a transaction finish within a grace period and tells idle
//! ones `421 4.3.2`.
//!
//! A few hostile clients cannot lock everyone else out (the model is
//! Postfix's anvil and stress-dependent timeouts): one client address may
//! hold at most [`ServerConfig::max_connections_per_client`] sessions, and
//! while three quarters of [`ServerConfig::max_connections`] are in use the
//! wait for a command shrinks to [`ServerConfig::stress_command_timeout`],
//! so silent connections are closed in seconds rather than minutes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use crate::server::{Event, ServerSession, SessionConfig};
use crate::{Envelope, Param, Recipient, Reply};

/// Who is on the other end of a session, for the [`Handler`]'s decisions
/// and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Unique within the process, increasing.
    pub session_id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The name the client gave in EHLO/HELO.
    pub helo: Option<String>,
    /// Whether the session runs over TLS (after STARTTLS).
    pub tls: bool,
}

/// The application's side of the conversation. Every answer is a
/// [`Reply`]; a 2xx accepts, anything else refuses.
pub trait Handler: Send + Sync + 'static {
    /// `MAIL FROM` (syntax and parameters already checked; the reverse
    /// path is empty for `<>`).
    fn mail_from(
        &self,
        info: &SessionInfo,
        reverse_path: &str,
        params: &[Param],
    ) -> impl Future<Output = Reply> + Send;

    /// One `RCPT TO`, with the envelope so far (sender and the
    /// recipients accepted before this one): relay and policy rules go
    /// here, e.g. `550 5.7.1` for a domain not carried.
    fn rcpt_to(
        &self,
        info: &SessionInfo,
        envelope: &Envelope,
        recipient: &Recipient,
    ) -> impl Future<Output = Reply> + Send;

    /// A complete message (see [`Event::Message`] for the exact content).
    /// Answer 2xx only once it is safely spooled: the client forgets it
    /// then.
    fn message(
        &self,
        info: &SessionInfo,
        envelope: Envelope,
        content: Vec<u8>,
    ) -> impl Future<Output = Reply> + Send;
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The name in the greeting and replies.
    pub hostname: String,
    /// The largest message accepted (octets, advertised as `SIZE`).
    pub max_message_bytes: u64,
    /// The most recipients in one transaction.
    pub max_recipients: usize,
    /// Bad commands before `421` (0: no limit).
    pub max_errors: usize,
    /// STARTTLS is offered when this is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long to wait for a command (and for the client to read a
    /// reply, and for the TLS handshake). RFC 5321 §4.5.3.2.7: at least
    /// 5 minutes.
    pub command_timeout: Duration,
    /// How long to wait for the next piece of message content.
    pub data_timeout: Duration,
    /// Connections served at once; more get `421 4.3.2`.
    pub max_connections: usize,
    /// Connections one client address may hold at once; more get
    /// `421 4.7.0` (Postfix: `smtpd_client_connection_count_limit`).
    pub max_connections_per_client: usize,
    /// The wait for a command while the server is under pressure (three
    /// quarters of `max_connections` in use); Postfix uses 10 s.
    pub stress_command_timeout: Duration,
    /// On shutdown, how long sessions in a transaction may go on.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Defaults: 25 MiB, 100 recipients, 10 errors, no TLS, 300 s command
    /// and 600 s data timeouts, 100 connections (50 per client address),
    /// 10 s command timeout under pressure, 10 s shutdown grace.
    pub fn new(hostname: impl Into<String>) -> ServerConfig {
        ServerConfig {
            hostname: hostname.into(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            tls: None,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_connections: 100,
            max_connections_per_client: 50,
            stress_command_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// The settings of one session.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            hostname: self.hostname.clone(),
            max_message_bytes: self.max_message_bytes,
            max_recipients: self.max_recipients,
            starttls_available: self.tls.is_some(),
            max_errors: self.max_errors,
        }
    }
}

/// Why a connection failed (as opposed to ending normally).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading or writing the socket failed.
    #[error("SMTP connection i/o error: {0}")]
    Io(io::Error),
    /// The TLS handshake after STARTTLS failed or timed out.
    #[error("TLS handshake after STARTTLS failed: {0}")]
    TlsHandshake(io::Error),
    /// The client did not read our replies within the command timeout.
    #[error("the client did not read replies for {0:?}")]
    WriteTimeout(Duration),
}

// (Not `#[from]`: the message shows the cause, so it is not also the
// `source`, or an error chain printer says it twice.)
impl From<io::Error> for ConnectionError {
    fn from(e: io::Error) -> Self {
        ConnectionError::Io(e)
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection without QUIT.
    ClientClosed,
    /// Too many bad commands: `421` sent.
    TooManyErrors,
    /// The client was silent too long: `421 4.4.2` sent.
    Timeout,
    /// The server shut down: `421 4.3.2` sent.
    Shutdown,
    /// An error ended it.
    Failed(ConnectionError),
}

/// What happened on one connection.
#[derive(Debug)]
pub struct ConnectionSummary {
    /// [`SessionInfo::session_id`].
    pub session_id: u64,
    /// How it ended.
    pub end: ConnectionEnd,
    /// Messages the handler accepted (2xx).
    pub messages_accepted: u64,
    /// Messages the handler refused. (Messages the session refused itself,
    /// for bare LF or size, never reach the handler and are not counted.)
    pub messages_refused: u64,
}

/// What [`serve`] did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Connections served.
    pub connections: u64,
    /// Connections refused with `421 4.3.2` over `max_connections`.
    pub refused_busy: u64,
    /// Connections refused with `421 4.7.0` over
    /// `max_connections_per_client`.
    pub refused_per_client: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
    /// Messages the handler accepted.
    pub messages_accepted: u64,
    /// Messages the handler refused.
    pub messages_refused: u64,
    /// Connections closed for a timeout.
    pub timeouts: u64,
    /// Connections that ended in an error ([`ConnectionEnd::Failed`]) or
    /// whose task panicked.
    pub failed: u64,
    /// Connections told `421 4.3.2` at shutdown.
    pub closed_at_shutdown: u64,
    /// Connections still busy after the grace period, dropped.
    pub aborted: u64,
}

impl ServeStats {
    fn record(&mut self, done: Result<ConnectionSummary, JoinError>) {
        let summary = match done {
            Ok(summary) => summary,
            Err(e) if e.is_cancelled() => {
                self.aborted += 1;
                return;
            }
            Err(_) => {
                self.failed += 1;
                return;
            }
        };
        self.messages_accepted += summary.messages_accepted;
        self.messages_refused += summary.messages_refused;
        match summary.end {
            ConnectionEnd::Timeout => self.timeouts += 1,
            ConnectionEnd::Shutdown => self.closed_at_shutdown += 1,
            ConnectionEnd::Failed(_) => self.failed += 1,
            ConnectionEnd::Quit | ConnectionEnd::ClientClosed | ConnectionEnd::TooManyErrors => {}
        }
    }
}

/// The phases of [`serve`]'s shutdown, as seen by its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Close sessions when idle (no transaction in progress).
    Draining,
    /// Close sessions at the next wait for input.
    Closing,
}

/// After the grace period and the `421`s, how long handler calls may
/// still take before their tasks are dropped.
const LAST_CALL: Duration = Duration::from_secs(2);

/// How long a `421` on the way out may take to write.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Accept connections on `listener` and serve each in its own task until
/// `shutdown` completes; then stop accepting, let transactions in
/// progress finish within [`ServerConfig::shutdown_grace`], answer idle
/// sessions `421 4.3.2`, and return what happened.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> ServeStats {
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let (pressure, pressure_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut clients = Clients::default();
    let mut stats = ServeStats::default();
    let stress_at = (config.max_connections * 3).div_ceil(4).max(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                stats.record(clients.finished(done));
                pressure.send_if_modified(|p| std::mem::replace(p, tasks.len() >= stress_at) != *p);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if tasks.len() >= config.max_connections {
                        refuse_busy(stream, &config.hostname).await;
                        stats.refused_busy += 1;
                        continue;
                    }
                    if clients.count(peer.ip()) >= config.max_connections_per_client {
                        refuse(
                            stream,
                            Reply::new(
                                421,
                                Some("4.7.0"),
                                format!(
                                    "{} too many connections from {}, try again later",
                                    config.hostname,
                                    peer.ip()
                                ),
                            ),
                        )
                        .await;
                        stats.refused_per_client += 1;
                        continue;
                    }
                    stats.connections += 1;
                    let task = tasks.spawn(run_connection(
                        stream,
                        peer,
                        config.clone(),
                        handler.clone(),
                        Some(phase_rx.clone()),
                        Some(pressure_rx.clone()),
                    ));
                    clients.started(task.id(), peer.ip());
                    pressure.send_if_modified(|p| std::mem::replace(p, tasks.len() >= stress_at) != *p);
                }
                Err(_) => {
                    // EMFILE and friends: back off instead of spinning.
                    stats.accept_errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = phase.send(Phase::Draining);
    let grace_end = Instant::now() + config.shutdown_grace;
    while let Ok(Some(done)) = timeout_at(grace_end, tasks.join_next_with_id()).await {
        stats.record(clients.finished(done));
    }
    if tasks.is_empty() {
        return stats;
    }
    let _ = phase.send(Phase::Closing);
    let last_call = Instant::now() + LAST_CALL;
    while let Ok(Some(done)) = timeout_at(last_call, tasks.join_next_with_id()).await {
        stats.record(clients.finished(done));
    }
    tasks.abort_all();
    while let Some(done) = tasks.join_next_with_id().await {
        stats.record(clients.finished(done));
    }
    stats
}

/// Sessions per client address (the accept loop's own bookkeeping).
#[derive(Default)]
struct Clients {
    by_task: std::collections::HashMap<tokio::task::Id, std::net::IpAddr>,
    by_ip: std::collections::HashMap<std::net::IpAddr, usize>,
}

impl Clients {
    fn count(&self, ip: std::net::IpAddr) -> usize {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    fn started(&mut self, task: tokio::task::Id, ip: std::net::IpAddr) {
        self.by_task.insert(task, ip);
        *self.by_ip.entry(ip).or_default() += 1;
    }

    /// Forgets a finished session's task, whatever became of it.
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, ConnectionSummary), JoinError>,
    ) -> Result<ConnectionSummary, JoinError> {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        if let Some(ip) = self.by_task.remove(&id) {
            if let Some(n) = self.by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.by_ip.remove(&ip);
                }
            }
        }
        done.map(|(_, summary)| summary)
    }
}

/// Serve one connection (already accepted) from greeting to close.
pub async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
) -> ConnectionSummary {
    run_connection(stream, peer, config, handler, None, None).await
}

async fn refuse_busy(stream: TcpStream, hostname: &str) {
    let reply = Reply::new(
        421,
        Some("4.3.2"),
        format!("{hostname} too many connections, try again later"),
    );
    refuse(stream, reply).await;
}

/// Writes `reply` on a connection not served, and closes it.
async fn refuse(mut stream: TcpStream, reply: Reply) {
    // A fresh socket's send buffer is empty: this does not wait, and the
    // bound keeps a stuck one from holding up the accept loop.
    let _ = timeout(Duration::from_millis(200), async {
        stream.write_all(&reply.to_wire()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn run_connection<H: Handler>(
    mut tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: Option<watch::Receiver<Phase>>,
    pressure: Option<watch::Receiver<bool>>,
) -> ConnectionSummary {
    let _ = tcp.set_nodelay(true);
    let (session, greeting) = ServerSession::new(&config.session_config());
    let mut conn = Connection {
        config: &config,
        handler: &*handler,
        session,
        info: SessionInfo {
            session_id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            helo: None,
            tls: false,
        },
        out: greeting.to_wire(),
        shutdown,
        pressure,
        messages_accepted: 0,
        messages_refused: 0,
    };
    let end = match conn.drive(&mut tcp).await {
        Ok(Step::End(end)) => {
            close(&mut tcp).await;
            end
        }
        Ok(Step::StartTls) => conn.continue_in_tls(tcp).await,
        Err(e) => ConnectionEnd::Failed(e),
    };
    conn.summary(end)
}

/// What made [`Connection::drive`] return.
enum Step {
    /// `220` for STARTTLS was sent: do the handshake.
    StartTls,
    /// The session is over.
    End(ConnectionEnd),
}

struct Connection<'a, H> {
    config: &'a ServerConfig,
    handler: &'a H,
    session: ServerSession,
    info: SessionInfo,
    /// Replies not yet written.
    out: Vec<u8>,
    shutdown: Option<watch::Receiver<Phase>>,
    /// Whether the server is under pressure (see the module docs).
    pressure: Option<watch::Receiver<bool>>,
    messages_accepted: u64,
    messages_refused: u64,
}

impl<H: Handler> Connection<'_, H> {
    fn summary(&self, end: ConnectionEnd) -> ConnectionSummary {
        ConnectionSummary {
            session_id: self.info.session_id,
            end,
            messages_accepted: self.messages_accepted,
            messages_refused: self.messages_refused,
        }
    }

    async fn continue_in_tls(&mut self, tcp: TcpStream) -> ConnectionEnd {
        let Some(tls) = &self.config.tls else {
            // The session offers STARTTLS only with a TLS configuration.
            return ConnectionEnd::Failed(ConnectionError::TlsHandshake(io::Error::other(
                "STARTTLS accepted without a TLS configuration",
            )));
        };
        let acceptor = TlsAcceptor::from(tls.clone());
        let mut stream = match timeout(self.config.command_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return ConnectionEnd::Failed(ConnectionError::TlsHandshake(e)),
            Err(_) => {
                return ConnectionEnd::Failed(ConnectionError::TlsHandshake(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                )))
            }
        };
        self.session.tls_established();
        match self.drive(&mut stream).await {
            Ok(Step::End(end)) => {
                close(&mut stream).await;
                end
            }
            // The session refuses STARTTLS inside TLS.
            Ok(Step::StartTls) => ConnectionEnd::Failed(ConnectionError::TlsHandshake(
                io::Error::other("STARTTLS inside TLS"),
            )),
            Err(e) => ConnectionEnd::Failed(e),
        }
    }

    /// Run the session on `stream` until it ends or asks for TLS.
    async fn drive<S>(&mut self, stream: &mut S) -> Result<Step, ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(event) = self.session.next_event() {
                let flush_now = event.must_flush();
                self.info.helo = self.session.helo().map(str::to_string);
                self.info.tls = self.session.is_tls();
                match event {
                    Event::Reply(reply) => self.out.extend_from_slice(&reply.to_wire()),
                    Event::MailFrom {
                        reverse_path,
                        params,
                    } => {
                        let reply = self
                            .handler
                            .mail_from(&self.info, &reverse_path, &params)
                            .await;
                        self.answer(reply);
                    }
                    Event::RcptTo { recipient } => {
                        let none = Envelope::default();
                        let envelope = self.session.envelope().unwrap_or(&none);
                        let reply = self.handler.rcpt_to(&self.info, envelope, &recipient).await;
                        self.answer(reply);
                    }
                    Event::Message { envelope, content } => {
                        // The client waits for this answer: let it see the
                        // others meanwhile (the spool may take a while).
                        self.flush(stream).await?;
                        let reply = self.handler.message(&self.info, envelope, content).await;
                        if reply.is_positive() {
                            self.messages_accepted += 1;
                        } else {
                            self.messages_refused += 1;
                        }
                        self.answer(reply);
                    }
                    Event::StartTls(reply) => {
                        self.out.extend_from_slice(&reply.to_wire());
                        self.flush(stream).await?;
                        return Ok(Step::StartTls);
                    }
                    Event::Quit(reply) => {
                        self.out.extend_from_slice(&reply.to_wire());
                        self.flush(stream).await?;
                        return Ok(Step::End(ConnectionEnd::Quit));
                    }
                    Event::Close(reply) => {
                        self.out.extend_from_slice(&reply.to_wire());
                        self.flush(stream).await?;
                        return Ok(Step::End(ConnectionEnd::TooManyErrors));
                    }
                }
                if flush_now {
                    self.flush(stream).await?;
                }
            }
            // No further complete command: send what we have (RFC 2920).
            self.flush(stream).await?;

            let phase = self.phase();
            if phase == Phase::Closing || (phase == Phase::Draining && self.session.is_idle()) {
                let reply = Reply::new(
                    421,
                    Some("4.3.2"),
                    format!("{} shutting down, try again later", self.config.hostname),
                );
                self.farewell(stream, reply).await;
                return Ok(Step::End(ConnectionEnd::Shutdown));
            }

            let receiving_data = self.session.is_receiving_data();
            let waiting_for = if receiving_data {
                "message data"
            } else {
                "a command"
            };
            let started = Instant::now();
            // Once the server came under pressure during this wait, the
            // wait stays short: as silent connections are closed the
            // pressure eases, and the rest of them must not get the full
            // timeout back.
            let mut stressed = false;
            let read = loop {
                stressed |= self.pressure.as_ref().is_some_and(|p| *p.borrow());
                let wait = if receiving_data {
                    self.config.data_timeout
                } else if stressed {
                    self.config
                        .stress_command_timeout
                        .min(self.config.command_timeout)
                } else {
                    self.config.command_timeout
                };
                tokio::select! {
                    read = timeout_at(started + wait, stream.read(&mut buf)) => break Some(read),
                    () = phase_changed(&mut self.shutdown) => break None,
                    // Pressure came (or went): wait again with the limit,
                    // counted from the same start.
                    () = pressure_changed(&mut self.pressure) => continue,
                }
            };
            let Some(read) = read else { continue };
            match read {
                Ok(Ok(0)) => return Ok(Step::End(ConnectionEnd::ClientClosed)),
                Ok(Ok(n)) => self.session.feed(&buf[..n]),
                Ok(Err(e)) => return Err(ConnectionError::Io(e)),
                Err(_) => {
                    let reply = Reply::new(
                        421,
                        Some("4.4.2"),
                        format!(
                            "{} timeout waiting for {waiting_for}, closing connection",
                            self.config.hostname
                        ),
                    );
                    self.farewell(stream, reply).await;
                    return Ok(Step::End(ConnectionEnd::Timeout));
                }
            }
        }
    }

    fn answer(&mut self, reply: Reply) {
        // Only called right after a question event: cannot fail.
        let _ = self.session.answer(reply);
    }

    fn phase(&self) -> Phase {
        self.shutdown
            .as_ref()
            .map_or(Phase::Running, |rx| *rx.borrow())
    }

    async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), ConnectionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let wait = self.config.command_timeout;
        let out = &self.out;
        match timeout(wait, async {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await
        {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(ConnectionError::Io(e)),
            Err(_) => Err(ConnectionError::WriteTimeout(wait)),
        }
    }

    /// Best effort: a `421` before closing.
    async fn farewell<S: AsyncWrite + Unpin>(&mut self, stream: &mut S, reply: Reply) {
        self.out.extend_from_slice(&reply.to_wire());
        let out = std::mem::take(&mut self.out);
        let _ = timeout(FAREWELL_TIMEOUT, async {
            stream.write_all(&out).await?;
            stream.flush().await
        })
        .await;
    }
}

/// Wait until the shutdown phase changes; never, without a shutdown
/// signal (or once its sender is gone).
async fn phase_changed(shutdown: &mut Option<watch::Receiver<Phase>>) {
    if let Some(rx) = shutdown {
        if rx.changed().await.is_ok() {
            return;
        }
        *shutdown = None;
    }
    std::future::pending::<()>().await
}

/// Wait until the pressure signal changes; never without one (or once its
/// sender is gone).
async fn pressure_changed(pressure: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = pressure {
        if rx.changed().await.is_ok() {
            return;
        }
        *pressure = None;
    }
    std::future::pending::<()>().await
}

/// Close our side (TLS close_notify, then FIN), briefly.
async fn close<S: AsyncWrite + Unpin>(stream: &mut S) {
    let _ = timeout(FAREWELL_TIMEOUT, stream.shutdown()).await;
}
