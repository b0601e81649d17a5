//! The tokio driver around [`PassiveSession`] (feature `tokio`): accepts
//! TCP connections, runs one TCPCLv4 session per task, and asks a
//! [`BundleHandler`] about each complete bundle before the final XFER_ACK
//! (RFC 9174 §5.2.3) or an XFER_REFUSE (§5.2.4) goes back.
//!
//! Limits: a number of sessions at once (more are answered with SESS_TERM
//! `Busy`, §6.1), bundles awaiting the handler per session (reading pauses
//! at that many, so a fast sender cannot pile up memory), the session's
//! handshake, idle and keepalive timers, and a write timeout. On shutdown
//! every session sends SESS_TERM and gets a grace period to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{timeout, timeout_at};

use crate::message::{RefuseReason, SessTermReason};
use crate::passive::PassiveSession;
use crate::session::{ConfigError, Event, SessionConfig, Termination};

/// The application's side: what to do with a complete bundle.
pub trait BundleHandler: Send + Sync + 'static {
    /// A complete bundle from the node `peer_node_id` (its SESS_INIT node
    /// ID, which the peer chooses) connected from `peer` (its address,
    /// which it does not). `Ok(())` sends the final XFER_ACK, after which the sender
    /// forgets the bundle: return it only once the bundle is safely
    /// stored. `Err(reason)` sends XFER_REFUSE, e.g.
    /// [`RefuseReason::NotAcceptable`] for a bundle not addressed to this
    /// node or that does not parse, [`RefuseReason::NoResources`] when it
    /// cannot be stored now.
    fn on_bundle(
        &self,
        peer: SocketAddr,
        peer_node_id: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), RefuseReason>> + Send;
}

/// The server's settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// Each session's settings (node ID, MRUs, keepalive, timeouts).
    pub session: SessionConfig,
    /// Sessions served at once; more are refused with SESS_TERM `Busy`.
    pub max_sessions: usize,
    /// Bundles of one session handed to the handler and not yet decided;
    /// at this many the session stops reading until one is decided.
    pub max_undecided: usize,
    /// How long one write may take before the session is dropped.
    pub write_timeout: Duration,
    /// On shutdown, how long sessions may take to end cleanly.
    pub shutdown_grace: Duration,
    /// Received bytes all sessions together may buffer (unfinished
    /// transfers and bundles awaiting the handler); beyond it a transfer
    /// is refused with `NoResources`. `None`: only the per-session limits
    /// (`transfer_mru`, `max_undecided`) apply.
    pub memory_budget: Option<std::sync::Arc<crate::MemoryBudget>>,
    /// TLS for sessions where both sides offer it (feature `tls`): this
    /// side's certificate and key (and client-certificate policy). Set
    /// [`SessionConfig::offer_tls`] (and `require_tls`) with it; `serve`
    /// refuses to start with `offer_tls` and no TLS configuration.
    #[cfg(feature = "tls")]
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ServerConfig");
        d.field("session", &self.session)
            .field("max_sessions", &self.max_sessions)
            .field("max_undecided", &self.max_undecided)
            .field("write_timeout", &self.write_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("memory_budget", &self.memory_budget);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.as_ref().map(|_| "configured"));
        d.finish()
    }
}

impl ServerConfig {
    /// Checks the session settings, and that offering TLS comes with a
    /// certificate to offer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()?;
        #[cfg(feature = "tls")]
        let has_tls = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let has_tls = false;
        if self.session.offer_tls && !has_tls {
            return Err(ConfigError::NoTlsIdentity);
        }
        Ok(())
    }

    /// Defaults for node `node_id`: [`SessionConfig::new`] with a 10 minute
    /// idle limit for sessions without keepalives, 100 sessions, 8
    /// undecided bundles per session, 60 s write timeout, 10 s grace.
    pub fn new(node_id: impl Into<String>) -> ServerConfig {
        let mut session = SessionConfig::new(node_id);
        session.idle_timeout = Some(Duration::from_secs(600));
        ServerConfig {
            session,
            max_sessions: 100,
            max_undecided: 8,
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            memory_budget: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// What happened in one session.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The peer's node ID, if the session got that far.
    pub peer_node_id: Option<String>,
    /// Whether the session ran over TLS.
    pub tls: bool,
    /// Bundles the handler accepted (final XFER_ACK sent).
    pub bundles_accepted: u64,
    /// Bundles the handler refused (XFER_REFUSE sent).
    pub bundles_refused: u64,
    /// How the session ended.
    pub termination: Option<Termination>,
    /// A socket error that ended it, if any.
    pub io_error: Option<String>,
}

/// What [`serve`] did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Sessions served.
    pub sessions: u64,
    /// Connections refused with `Busy` over `max_sessions`.
    pub refused_busy: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
    /// Bundles accepted.
    pub bundles_accepted: u64,
    /// Bundles refused by the handler.
    pub bundles_refused: u64,
    /// Sessions that ended in a socket error, or whose task panicked.
    pub failed: u64,
    /// Sessions still running after the shutdown grace period, dropped.
    pub aborted: u64,
}

impl ServeStats {
    fn record(&mut self, done: Result<SessionSummary, JoinError>) {
        match done {
            Ok(s) => {
                self.bundles_accepted += s.bundles_accepted;
                self.bundles_refused += s.bundles_refused;
                if s.io_error.is_some() {
                    self.failed += 1;
                }
            }
            Err(e) if e.is_cancelled() => self.aborted += 1,
            Err(_) => self.failed += 1,
        }
    }
}

/// Read buffer per session.
const READ_CHUNK: usize = 64 * 1024;

/// How long turning away a connection as busy may take.
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Accepts connections on `listener` and serves each as a TCPCLv4 passive
/// session until `shutdown` completes; then stops accepting, ends every
/// session with SESS_TERM, waits up to [`ServerConfig::shutdown_grace`],
/// and returns what happened. Fails at once on invalid session settings.
pub async fn serve<H: BundleHandler>(
    listener: TcpListener,
    config: ServerConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<ServeStats, ConfigError> {
    config.validate()?;
    let config = Arc::new(config);
    let (stopping, stopping_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut stats = ServeStats::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => stats.record(done),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if tasks.len() >= config.max_sessions {
                        refuse_busy(stream, &config.session).await;
                        stats.refused_busy += 1;
                        continue;
                    }
                    stats.sessions += 1;
                    tasks.spawn(run_session(
                        stream,
                        peer,
                        config.clone(),
                        handler.clone(),
                        Some(stopping_rx.clone()),
                    ));
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
    let _ = stopping.send(true);
    let grace_end = tokio::time::Instant::now() + config.shutdown_grace;
    while let Ok(Some(done)) = timeout_at(grace_end, tasks.join_next()).await {
        stats.record(done);
    }
    tasks.abort_all();
    while let Some(done) = tasks.join_next().await {
        stats.record(done);
    }
    Ok(stats)
}

/// Serves one accepted connection as a passive session, to its end.
pub async fn serve_connection<H: BundleHandler>(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
) -> SessionSummary {
    run_session(stream, peer, config, handler, None).await
}

/// Answers the contact header and ends the session as `Busy`.
async fn refuse_busy(mut stream: TcpStream, config: &SessionConfig) {
    let _ = timeout(BUSY_TIMEOUT, async {
        let now = std::time::Instant::now();
        let mut session =
            PassiveSession::new(config.clone(), now).map_err(std::io::Error::other)?;
        session.terminate(now, SessTermReason::Busy);
        let mut buf = [0u8; 64];
        while !session.is_closed() {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            session.handle_input(now, &buf[..n]);
            while let Some(bytes) = session.poll_transmit(now) {
                stream.write_all(&bytes).await?;
            }
        }
        stream.shutdown().await
    })
    .await;
}

/// The connection under a session: TCP, then TLS once the handshake that
/// [`Event::StartTls`] asks for is done.
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Between the two, or after a failed handshake.
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf).await,
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.read(buf).await,
            Conn::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.write_all(bytes).await,
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.shutdown().await,
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.shutdown().await,
            Conn::Gone => Ok(()),
        }
    }

    /// Runs the TLS handshake as the server (§4.4: the passive entity is
    /// the TLS server) within `limit`; `Err` says why it failed.
    /// `half_rtt` (our SESS_INIT) is handed to TLS before the handshake:
    /// with `send_half_rtt_data` in the rustls configuration it leaves
    /// with the server's Finished (RFC 8446 §2: 0.5-RTT data), so the
    /// peer can send its first segment a round trip earlier.
    async fn start_tls(
        &mut self,
        config: &ServerConfig,
        limit: Duration,
        half_rtt: Vec<u8>,
    ) -> Result<(), TlsStartError> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(TlsStartError::Twice);
        };
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &config.tls {
            let accept = acceptor.accept_with(tcp, move |tls| {
                use std::io::Write;
                // Buffered in the connection until it may send: never fails.
                let _ = tls.writer().write_all(&half_rtt);
            });
            return match timeout(limit, accept).await {
                Ok(Ok(tls)) => {
                    *self = Conn::Tls(Box::new(tls));
                    Ok(())
                }
                Ok(Err(e)) => Err(TlsStartError::Handshake(e)),
                Err(_) => Err(TlsStartError::Timeout(limit)),
            };
        }
        let _ = (tcp, config, limit, half_rtt);
        Err(TlsStartError::NotConfigured)
    }
}

/// Why a session's TLS handshake did not happen.
#[derive(Debug, thiserror::Error)]
enum TlsStartError {
    /// The session asked for TLS a second time.
    #[error("TLS was asked for twice")]
    Twice,
    /// The handshake itself failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The peer did not complete the handshake in time.
    #[error("no TLS handshake from the peer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Negotiated, but this server has no certificate.
    #[error("TLS was negotiated but this server has no TLS configuration")]
    NotConfigured,
}

async fn run_session<H: BundleHandler>(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    mut stopping: Option<watch::Receiver<bool>>,
) -> SessionSummary {
    let _ = tcp.set_nodelay(true);
    let mut tcp = Conn::Plain(tcp);
    let mut start_tls = false;
    let mut summary = SessionSummary {
        peer,
        peer_node_id: None,
        tls: false,
        bundles_accepted: 0,
        bundles_refused: 0,
        termination: None,
        io_error: None,
    };
    let mut session = match PassiveSession::new(config.session.clone(), std::time::Instant::now()) {
        Ok(s) => s,
        Err(e) => {
            summary.io_error = Some(format!("invalid session settings: {e}"));
            return summary;
        }
    };
    if let Some(budget) = &config.memory_budget {
        session.set_budget(budget.clone());
    }
    // Decisions come back from the handler tasks; one sender stays here,
    // so `recv` never reports a closed channel.
    let (decided_tx, mut decided) = mpsc::unbounded_channel::<(u64, Result<(), RefuseReason>)>();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut eof = false;
    let mut told_to_stop = false;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Established(info) => summary.peer_node_id = Some(info.node_id),
                Event::BundleReceived { transfer_id, bytes } => {
                    let handler = handler.clone();
                    let tx = decided_tx.clone();
                    let node = summary.peer_node_id.clone().unwrap_or_default();
                    // Detached: a bundle being stored is not cut short if
                    // the connection drops meanwhile. A handler that
                    // panics refuses the bundle with No Resources (the
                    // sender tries again later) instead of leaving the
                    // transfer undecided for ever.
                    tokio::spawn(async move {
                        let stored =
                            tokio::spawn(
                                async move { handler.on_bundle(peer, &node, bytes).await },
                            );
                        // (The panic hook has already reported the panic.)
                        let result = stored.await.unwrap_or(Err(RefuseReason::NoResources));
                        let _ = tx.send((transfer_id, result));
                    });
                }
                Event::SessionTerminated(t) => summary.termination = Some(t),
                Event::StartTls => start_tls = true,
                Event::TransferAcked(_)
                | Event::TransferRefused(..)
                | Event::MessageRejected(_) => {}
            }
        }
        while let Some(bytes) = session.poll_transmit(std::time::Instant::now()) {
            let written = timeout(config.write_timeout, tcp.write_all(&bytes)).await;
            let failure = match written {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "the peer read nothing for {} ms",
                    config.write_timeout.as_millis()
                )),
            };
            if let Some(e) = failure {
                summary.io_error = Some(e);
                return summary;
            }
        }
        if session.is_closed() {
            let _ = timeout(Duration::from_secs(1), tcp.shutdown()).await;
            return summary;
        }
        if std::mem::take(&mut start_tls) {
            // Our contact header is written. As TLS server we wait a round
            // trip for the ClientHello (the peer sends it once our contact
            // header arrives) and another for the client's Finished: twice
            // the time one exchange may take.
            let limit = config.session.handshake_timeout.saturating_mul(2);
            // SESS_INIT goes to TLS with the handshake (0.5-RTT data).
            let now = std::time::Instant::now();
            session.tls_established(now);
            let mut sess_init = Vec::new();
            while let Some(bytes) = session.poll_transmit(now) {
                sess_init.extend_from_slice(&bytes);
            }
            match tcp.start_tls(&config, limit, sess_init).await {
                Ok(()) => summary.tls = true,
                Err(detail) => {
                    summary.io_error = Some(detail.to_string());
                    return summary;
                }
            }
            continue;
        }
        if !told_to_stop && stopping.as_ref().is_some_and(|s| *s.borrow()) {
            told_to_stop = true;
            session.terminate(std::time::Instant::now(), SessTermReason::Unknown);
            continue;
        }
        let wake = session.poll_timeout().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        let can_read = !eof && session.undecided() < config.max_undecided.max(1);
        tokio::select! {
            biased;
            Some((id, result)) = decided.recv() => {
                let ok = match result {
                    Ok(()) => session.accept(id),
                    Err(reason) => session.refuse(id, reason),
                };
                if ok.is_ok() {
                    if result.is_ok() {
                        summary.bundles_accepted += 1;
                    } else {
                        summary.bundles_refused += 1;
                    }
                }
            }
            read = tcp.read(&mut buf), if can_read => match read {
                Ok(0) => {
                    eof = true;
                    session.handle_eof(std::time::Instant::now());
                }
                Ok(n) => session.handle_input(std::time::Instant::now(), &buf[..n]),
                Err(e) => {
                    summary.io_error = Some(e.to_string());
                    eof = true;
                    session.handle_eof(std::time::Instant::now());
                }
            },
            () = tokio::time::sleep_until(wake) => session.handle_timeout(std::time::Instant::now()),
            changed = async {
                match stopping.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            }, if !told_to_stop => {
                if changed.is_err() {
                    // serve() is gone: stop as if told to.
                    stopping = None;
                    told_to_stop = true;
                    session.terminate(std::time::Instant::now(), SessTermReason::Unknown);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The server over loopback TCP, against a native [`ActiveSession`]
    //! driver (blocking std sockets on a thread).

    use std::io::{Read, Write};
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;
    use crate::{ActiveSession, Initiator};

    /// Stores what it accepts; refuses bundles that start with `refuse`.
    #[derive(Default)]
    struct Store {
        got: Mutex<Vec<(String, Vec<u8>)>>,
        delay: Option<Duration>,
    }

    impl BundleHandler for Store {
        async fn on_bundle(
            &self,
            _peer: SocketAddr,
            peer_node_id: &str,
            bytes: Vec<u8>,
        ) -> Result<(), RefuseReason> {
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            if bytes.starts_with(b"refuse") {
                return Err(RefuseReason::NotAcceptable);
            }
            assert!(!bytes.starts_with(b"panic"), "a handler bug");
            self.got
                .lock()
                .unwrap()
                .push((peer_node_id.to_string(), bytes));
            Ok(())
        }
    }

    /// What the client saw.
    #[derive(Debug, Default)]
    struct ClientReport {
        acked: Vec<u64>,
        refused: Vec<(u64, RefuseReason)>,
        termination: Option<Termination>,
    }

    /// A blocking TCPCL client: sends `bundles`, waits for every outcome,
    /// ends the session.
    fn client(addr: SocketAddr, bundles: Vec<Vec<u8>>, keepalive_secs: u16) -> ClientReport {
        let mut config = SessionConfig::new("ipn:1.0");
        config.keepalive_secs = keepalive_secs;
        config.max_segment_len = 10_000;
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut session = ActiveSession::new(config, Instant::now()).unwrap();
        let mut report = ClientReport::default();
        let mut total = None;
        let mut buf = vec![0u8; 65536];
        let give_up = Instant::now() + Duration::from_secs(20);
        while !session.is_closed() {
            assert!(Instant::now() < give_up, "client stuck: {report:?}");
            while let Some(bytes) = session.poll_transmit(Instant::now()) {
                tcp.write_all(&bytes).unwrap();
            }
            while let Some(e) = session.poll_event() {
                match e {
                    Event::Established(_) => {
                        total = Some(bundles.len());
                        for b in &bundles {
                            session.send_bundle(b.clone()).unwrap();
                        }
                    }
                    Event::TransferAcked(id) => report.acked.push(id),
                    Event::TransferRefused(id, r) => report.refused.push((id, r)),
                    Event::SessionTerminated(t) => report.termination = Some(t),
                    _ => {}
                }
                if total == Some(report.acked.len() + report.refused.len()) {
                    total = None;
                    session.terminate(Instant::now(), SessTermReason::Unknown);
                }
            }
            if session.is_closed() {
                while let Some(bytes) = session.poll_transmit(Instant::now()) {
                    let _ = tcp.write_all(&bytes);
                }
                break;
            }
            match tcp.read(&mut buf) {
                Ok(0) => session.handle_eof(Instant::now()),
                Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
            if session.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                session.handle_timeout(Instant::now());
            }
        }
        while let Some(e) = session.poll_event() {
            if let Event::SessionTerminated(t) = e {
                report.termination = Some(t);
            }
        }
        report
    }

    async fn start(
        config: ServerConfig,
        store: Arc<Store>,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<ServeStats, ConfigError>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, store, async {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bundles_arrive_intact_and_refusals_come_back() {
        let store = Arc::new(Store::default());
        let mut config = ServerConfig::new("ipn:2.0");
        config.session.segment_mru = 4096;
        let (addr, stop, server) = start(config, store.clone()).await;
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let bundles = vec![big.clone(), b"refuse me".to_vec(), b"small".to_vec()];
        let report = tokio::task::spawn_blocking(move || client(addr, bundles, 30))
            .await
            .unwrap();
        // Handlers run concurrently: acknowledgements may come in any order.
        let mut acked = report.acked.clone();
        acked.sort_unstable();
        assert_eq!(acked, [0, 2]);
        assert_eq!(report.refused, [(1, RefuseReason::NotAcceptable)]);
        let t = report.termination.unwrap();
        assert_eq!(t.initiator, Initiator::Local, "{t}");
        {
            let mut got = store.got.lock().unwrap().clone();
            got.sort_by_key(|(_, b)| b.len());
            assert_eq!(got.len(), 2);
            assert!(got.iter().all(|(node, _)| node == "ipn:1.0"));
            assert_eq!(got[0].1, b"small");
            assert!(got[1].1 == big, "the 300 kB bundle arrived intact");
        }
        stop.send(()).unwrap();
        let stats = server.await.unwrap().unwrap();
        assert_eq!(stats.sessions, 1);
        assert_eq!((stats.bundles_accepted, stats.bundles_refused), (2, 1));
        assert_eq!(stats.failed, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_that_panics_refuses_with_no_resources() {
        let store = Arc::new(Store::default());
        let (addr, stop, server) = start(ServerConfig::new("ipn:2.0"), store.clone()).await;
        let bundles = vec![b"panic here".to_vec(), b"fine".to_vec()];
        let report = tokio::task::spawn_blocking(move || client(addr, bundles, 30))
            .await
            .unwrap();
        // Decided (so the sender may retry later), not left hanging.
        assert_eq!(report.refused, [(0, RefuseReason::NoResources)]);
        assert_eq!(report.acked, [1]);
        stop.send(()).unwrap();
        let stats = server.await.unwrap().unwrap();
        assert_eq!((stats.bundles_accepted, stats.bundles_refused), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_handlers_keep_the_session_alive_with_keepalives() {
        let store = Arc::new(Store {
            delay: Some(Duration::from_millis(2500)),
            ..Store::default()
        });
        let mut config = ServerConfig::new("ipn:2.0");
        config.session.keepalive_secs = 1;
        let (addr, stop, server) = start(config, store.clone()).await;
        // Keepalive 1 s: idle limit 2 s, shorter than the handler's 2.5 s.
        let report = tokio::task::spawn_blocking(move || client(addr, vec![b"slow".to_vec()], 1))
            .await
            .unwrap();
        assert_eq!(report.acked, [0], "{report:?}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_max_sessions_is_busy_and_silent_peers_time_out() {
        let store = Arc::new(Store::default());
        let mut config = ServerConfig::new("ipn:2.0");
        config.max_sessions = 1;
        config.session.handshake_timeout = Duration::from_millis(700);
        let (addr, stop, server) = start(config, store).await;
        // A connection that says nothing holds the one slot...
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // ...so the next is told Busy after its contact header.
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"dtn!\x04\x00").await.unwrap();
        let mut answer = Vec::new();
        timeout(Duration::from_secs(5), busy.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, b"dtn!\x04\x00\x05\x00\x03");
        // The silent one is dropped at the handshake deadline.
        let mut rest = Vec::new();
        let t = Instant::now();
        timeout(Duration::from_secs(5), silent.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert!(t.elapsed() < Duration::from_secs(2));
        stop.send(()).unwrap();
        let stats = server.await.unwrap().unwrap();
        assert_eq!((stats.sessions, stats.refused_busy), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_ends_sessions_with_sess_term() {
        let store = Arc::new(Store::default());
        let (addr, stop, server) = start(ServerConfig::new("ipn:2.0"), store).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut hello = b"dtn!\x04\x00".to_vec();
        crate::Message::SessInit(crate::message::SessInit {
            keepalive_secs: 0,
            segment_mru: 1000,
            transfer_mru: 1000,
            node_id: "ipn:1.0".into(),
            extensions: vec![],
        })
        .encode(&mut hello)
        .unwrap();
        tcp.write_all(&hello).await.unwrap();
        let mut got = vec![0u8; 6 + 1 + 2 + 16 + 2 + 7 + 4];
        tcp.read_exact(&mut got).await.unwrap();
        stop.send(()).unwrap();
        let mut term = [0u8; 3];
        tcp.read_exact(&mut term).await.unwrap();
        assert_eq!(term, [0x05, 0x00, 0x00], "SESS_TERM on shutdown");
        tcp.write_all(&[0x05, 0x01, 0x00]).await.unwrap();
        let stats = server.await.unwrap().unwrap();
        assert_eq!((stats.sessions, stats.aborted), (1, 0));
    }

    #[tokio::test]
    async fn invalid_settings_are_refused_before_serving() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = serve(
            listener,
            ServerConfig::new("moon"),
            Arc::new(Store::default()),
            async {},
        )
        .await;
        assert!(matches!(r, Err(ConfigError::NodeId { .. })));
    }
}
