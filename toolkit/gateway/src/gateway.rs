//! One gateway process: the SMTP ingress, the receiving endpoint, the
//! outbound queue runner, the inbound relay and `/metrics`, wired from one
//! [`GatewayConfig`] and stopped together. Stopping lets in-flight work
//! finish; whatever is not finished stays spooled for the next start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deepmail_host::Host;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::GatewayConfig;
use crate::deliver::Outbound;
use crate::ingress::{Acceptor, SmtpIngress};
use crate::metrics::{self, Metrics};
use crate::policy::GatewayPolicy;
use crate::queue::Queue;
use crate::relay::Inbound;
use crate::returns::Returns;
use crate::stages::GatewayStages;
use crate::tls::{load_certs, load_private_key};
use crate::{Receiver, ReceiverConfig, Spool};

/// Why a gateway could not start; callers can match on the kind.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another gateway holds the spool's lock.
    #[error("spool {} is in use by another gateway (pid {pid}); one gateway per spool", spool.display())]
    SpoolInUse {
        /// The spool directory.
        spool: std::path::PathBuf,
        /// What the lock file says (the holder's pid).
        pid: String,
    },
    /// `[bp] listen` is set but no fragmenter plugin is loaded.
    #[error("[bp] listen needs the fragmenter plugin")]
    NoFragmenter,
    /// A step of start-up failed: what it was, and why.
    #[error("{what}: {detail}")]
    Step {
        /// What the gateway was doing, e.g. `cannot bind 127.0.0.1:25`.
        what: String,
        /// The reason.
        detail: String,
    },
}

fn fail(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::Step {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

/// The TLS material of the gateway's listeners, loaded and checked.
pub struct TlsFiles {
    /// The SMTP ingress's STARTTLS configuration, when it offers TLS.
    smtp: Option<Arc<rustls::ServerConfig>>,
    /// The receiver's certificate chain, key and client CAs.
    receive: Option<ReceiveTls>,
    /// The TCPCL listener's TLS configuration, when it offers TLS.
    bp: Option<Arc<rustls::ServerConfig>>,
}

type ReceiveTls = (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
    Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
);

/// Loads every certificate and key the gateway's TLS listeners use and
/// builds their TLS configurations: a key file that holds a certificate,
/// or a key that is not its certificate's, fails here, naming the key.
/// [`RunningGateway::start`] starts from what this returns, and `deepmail
/// gateway --check` calls it, so the check loads exactly what start-up
/// loads.
pub fn load_tls_files(config: &GatewayConfig) -> Result<TlsFiles, StartError> {
    let smtp = match config.smtp.as_ref().and_then(|s| s.tls.as_ref()) {
        Some((cert, key)) => {
            let certs = load_certs(cert).map_err(|e| fail("smtp.tls-cert", e))?;
            let key = load_private_key(key).map_err(|e| fail("smtp.tls-key", e))?;
            Some(
                crate::tls::server_config(certs, key, None, &[])
                    .map_err(|e| fail("smtp.tls-cert/smtp.tls-key", e))?,
            )
        }
        None => None,
    };
    let receive = match &config.receive {
        Some(receive) => {
            let certs = load_certs(&receive.cert).map_err(|e| fail("receive.cert", e))?;
            let key = load_private_key(&receive.key).map_err(|e| fail("receive.key", e))?;
            let client_ca = match &receive.client_ca {
                Some(p) => Some(load_certs(p).map_err(|e| fail("receive.client-ca", e))?),
                None => None,
            };
            // What the receiver will build: fails now if the key is not
            // the certificate's.
            crate::tls::server_config(certs.clone(), key.clone_key(), client_ca.as_deref(), &[])
                .map_err(|e| fail("receive.cert/receive.key", e))?;
            Some((certs, key, client_ca))
        }
        None => None,
    };
    let bp = match config.bp.as_ref().and_then(|b| b.tls.as_ref()) {
        Some((cert, key)) => {
            let certs = load_certs(cert).map_err(|e| fail("bp.tls-cert", e))?;
            let key = load_private_key(key).map_err(|e| fail("bp.tls-key", e))?;
            Some(
                crate::tls::tcpcl_server_config(certs, key)
                    .map_err(|e| fail("bp.tls-cert/bp.tls-key", e))?,
            )
        }
        None => None,
    };
    Ok(TlsFiles { smtp, receive, bp })
}

/// A started gateway.
pub struct RunningGateway {
    /// The SMTP ingress address, if configured.
    pub smtp_addr: Option<SocketAddr>,
    /// The HTTPS endpoint address, if configured.
    pub https_addr: Option<SocketAddr>,
    /// The HTTP/3 endpoint address, if configured.
    pub h3_addr: Option<SocketAddr>,
    /// The `/metrics` address, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The TCPCLv4 listener's address, if configured.
    pub tcpcl_addr: Option<SocketAddr>,
    /// The live counters.
    pub metrics: Arc<Metrics>,
    /// The configuration it runs.
    pub config: Arc<GatewayConfig>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    stages: Arc<GatewayStages>,
    _lock: File,
}

/// How often sender plugins get to service the connections they keep
/// open (keepalives, the peer's SESS_TERM): well inside any keepalive
/// interval, which counts in seconds.
const SESSION_SERVICE_EVERY: Duration = Duration::from_secs(1);

/// Services the senders' open sessions until `stop`.
async fn service_sessions(
    stages: Arc<GatewayStages>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(SESSION_SERVICE_EVERY) => {}
        }
        let s = stages.clone();
        if let Ok(open) = tokio::task::spawn_blocking(move || s.maintain_senders(false)).await {
            metrics
                .sender_sessions_open
                .store(open, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Takes the spool's lock: one gateway per spool.
fn lock_spool(config: &GatewayConfig) -> Result<File, StartError> {
    std::fs::create_dir_all(&config.spool).map_err(|e| {
        fail(
            &format!("cannot create spool {}", config.spool.display()),
            e,
        )
    })?;
    let path = config.spool.join("lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(&path)
        .map_err(|e| fail(&format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(StartError::SpoolInUse {
                spool: config.spool.clone(),
                pid: holder.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(fail(&format!("cannot lock {}", path.display()), e))
        }
    }
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// What [`RunningGateway::check`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The codec plugin's source.
    pub codec: String,
    /// The resolver plugin's source, when a route needs one.
    pub resolver: Option<String>,
    /// Whether a policy plugin is configured (and loaded).
    pub policy: bool,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "codec {}, resolver {}, policy {}",
            self.codec,
            self.resolver.as_deref().unwrap_or("not needed"),
            if self.policy { "loaded" } else { "none" }
        )
    }
}

/// Why [`RunningGateway::check`] failed: the error of the step, as
/// start-up would give it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A TLS certificate or key does not load.
    #[error(transparent)]
    Tls(#[from] StartError),
    /// A stage plugin does not load.
    #[error(transparent)]
    Plugins(#[from] deepmail_host::LoadError),
    /// The policy plugin does not load.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyLoadError),
}

impl RunningGateway {
    /// Loads what start-up loads (the TLS files, the stage plugins, the
    /// policy plugin) without opening the spool or binding anything:
    /// `deepmail gateway --check`.
    pub fn check(config: &GatewayConfig, host: Host) -> Result<CheckReport, CheckError> {
        load_tls_files(config)?;
        let stages = GatewayStages::load(host.clone(), config)?;
        let policy = GatewayPolicy::load(&host, config)?;
        Ok(CheckReport {
            codec: stages.codec.info().source.clone(),
            resolver: stages.resolver.as_ref().map(|r| r.info().source.clone()),
            policy: policy.is_some(),
        })
    }

    /// A host whose plugin calls may each take a whole delivery
    /// (`[delivery] timeout-secs` and 10 s): `host` itself when it allows
    /// that already, else one like it with the longer call timeout.
    pub fn host_for(host: &Host, config: &GatewayConfig) -> Result<Host, deepmail_host::HostError> {
        let needed = config.delivery.timeout + std::time::Duration::from_secs(10);
        if host.config().call_timeout >= needed {
            return Ok(host.clone());
        }
        Host::new(deepmail_host::HostConfig {
            call_timeout: needed,
            ..host.config().clone()
        })
    }

    /// Opens the spool, loads the plugins, binds every listener and starts
    /// every loop. Call inside a tokio runtime; `host` should allow one
    /// plugin call the delivery timeout.
    pub async fn start(config: GatewayConfig, host: Host) -> Result<RunningGateway, StartError> {
        let mut tls_files = load_tls_files(&config)?;
        let lock = lock_spool(&config)?;
        let config = Arc::new(config);
        let spool = Arc::new(Spool::open(&config.spool).map_err(|e| fail("spool", e))?);
        let queue = Arc::new(Queue::open(&config.spool, true).map_err(|e| fail("queue", e))?);
        let stages = {
            let host = host.clone();
            let config = config.clone();
            tokio::task::spawn_blocking(move || GatewayStages::load(host, &config))
                .await
                .map_err(|e| fail("loading plugins", e))?
                .map_err(|e| fail("loading plugins", e))?
        };
        let stages = Arc::new(stages);
        let metrics = Arc::new(Metrics::default());
        // The queue's index, read from the spool once, before anything is
        // accepted (damaged records are moved aside and reported here).
        let quarantined = {
            let queue = queue.clone();
            tokio::task::spawn_blocking(move || queue.refresh())
                .await
                .map_err(|e| fail("queue", e))?
                .map_err(|e| fail("queue", e))?
        };
        for q in quarantined {
            Metrics::inc(&metrics.queue_quarantined);
            tracing::error!(stage = "queue", from = %q.from.display(), to = %q.to.display(), reason = %q.reason, "damaged queue record moved aside; the rest of the queue goes on");
        }
        let outbound_wake = Arc::new(Notify::new());
        let inbound_wake = Arc::new(Notify::new());
        let returns = Arc::new(
            Returns::new(
                config.clone(),
                queue.clone(),
                metrics.clone(),
                outbound_wake.clone(),
            )
            .map_err(|e| fail("spool", e))?,
        );
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        // Outbound queue runner: always (DSNs may need it on any gateway).
        let outbound = Arc::new(Outbound::new(
            config.clone(),
            queue.clone(),
            stages.clone(),
            returns.clone(),
            metrics.clone(),
            outbound_wake.clone(),
        ));
        tasks.spawn(outbound.run(stop_rx.clone()));
        tasks.spawn(service_sessions(
            stages.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        if config.routes.iter().any(|r| r.plan.is_some()) {
            tasks.spawn(reload_plans_on_hangup(
                config.clone(),
                outbound_wake.clone(),
                stop_rx.clone(),
            ));
        }

        // SMTP ingress.
        let mut smtp_addr = None;
        if let Some(smtp) = &config.smtp {
            let policy = GatewayPolicy::load(&stages.host, &config)
                .map_err(|e| fail("loading the policy plugin", e))?
                .map(Arc::new);
            let acceptor = Arc::new(Acceptor::new(
                config.clone(),
                smtp.relay_domains.clone(),
                queue.clone(),
                policy,
                Some(stages.codec.clone()),
                metrics.clone(),
                outbound_wake.clone(),
            ));
            let tls = tls_files.smtp.take();
            let listener = tokio::net::TcpListener::bind(smtp.listen)
                .await
                .map_err(|e| fail(&format!("cannot listen for SMTP on {}", smtp.listen), e))?;
            smtp_addr = listener.local_addr().ok();
            let server_config = Arc::new(deepmail_smtp::serve::ServerConfig {
                hostname: config.name.clone(),
                max_message_bytes: smtp.max_message_bytes,
                max_recipients: smtp.max_recipients,
                tls,
                max_connections: smtp.max_connections,
                max_connections_per_client: smtp.max_connections_per_client,
                ..deepmail_smtp::serve::ServerConfig::new(config.name.clone())
            });
            let handler = Arc::new(SmtpIngress::new(acceptor, metrics.clone()));
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                deepmail_smtp::serve::serve(listener, server_config, handler, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            });
            tracing::info!(stage = "ingress", listen = ?smtp_addr, relay_domains = ?smtp.relay_domains, "SMTP ingress listening");
        }

        // Receiving endpoint + inbound relay.
        let (mut https_addr, mut h3_addr) = (None, None);
        if let (Some(receive), Some((certs, key, client_ca))) =
            (&config.receive, tls_files.receive.take())
        {
            let rc = ReceiverConfig {
                https_listen: receive.https_listen,
                h3_listen: receive.h3_listen,
                path: receive.path.clone(),
                max_body_bytes: receive.max_body_bytes,
                client_ca,
                tokens: receive.tokens.clone(),
                handshake_timeout: receive.handshake_timeout,
                body_timeout: receive.body_timeout,
                max_requests_per_peer: receive.max_requests_per_peer,
                ..ReceiverConfig::new(certs, key)
            };
            let wake = inbound_wake.clone();
            let m = metrics.clone();
            let receiver = Receiver::bind(rc, spool.clone(), stages.codec.clone())
                .await
                .map_err(|e| fail("receive", e))?
                .with_request_log(move |r| {
                    if r.status == 200 && !r.duplicate {
                        Metrics::inc(&m.batches_received);
                        Metrics::stamp(&m.last_batch_received_unix_us);
                        m.messages_received
                            .fetch_add(r.messages as u64, std::sync::atomic::Ordering::Relaxed);
                        wake.notify_one();
                    }
                    tracing::info!(stage = "receive", transport = r.version, peer = %r.peer, status = r.status, batch = r.batch_id.as_deref().unwrap_or("-"), duplicate = r.duplicate, bytes = r.bytes, elapsed_ms = r.elapsed.as_millis() as u64, code = r.code.as_deref().unwrap_or("-"), "request");
                });
            https_addr = receiver.https_addr();
            h3_addr = receiver.h3_addr();
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                receiver
                    .serve(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            });
            tracing::info!(stage = "receive", https = ?https_addr, h3 = ?h3_addr, "receiving endpoint listening");
        }
        if let Some(relay) = &config.relay {
            let inbound = Arc::new(Inbound::new(
                config.clone(),
                relay.clone(),
                spool.clone(),
                returns.clone(),
                metrics.clone(),
                inbound_wake.clone(),
            ));
            tasks.spawn(inbound.run(stop_rx.clone()));
        }

        // The Bundle Protocol node: TCPCLv4 in, reassembly, spool.
        let mut tcpcl_addr = None;
        if let (Some(bp), Some(listen)) = (&config.bp, config.bp.as_ref().and_then(|b| b.listen)) {
            let fragmenter = stages.fragmenter.clone().ok_or(StartError::NoFragmenter)?;
            let inbound = {
                let (bp, spool, codec, metrics, wake) = (
                    bp.clone(),
                    spool.clone(),
                    stages.codec.clone(),
                    metrics.clone(),
                    inbound_wake.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    crate::bp::BpInbound::new(bp, spool, codec, fragmenter, metrics, wake)
                })
                .await
                .map_err(|e| fail("bp", e))?
                .map_err(|e| fail("bp", e))?
            };
            let inbound = Arc::new(inbound);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| fail(&format!("cannot listen for TCPCL on {listen}"), e))?;
            tcpcl_addr = listener.local_addr().ok();
            let mut server = deepmail_tcpcl::ServerConfig::new(bp.node_id.clone());
            server.session.transfer_mru = bp.max_adu_bytes.max(1 << 20);
            server.session.handshake_timeout = bp.handshake_timeout;
            // Each session buffers one whole segment before it can decode
            // it, outside the budget below: 64 KiB segments (what our
            // sender sends anyway) keep that to 100 x 64 KiB.
            server.session.segment_mru = 64 << 10;
            // No number of peers may make the listener buffer more than
            // this in total (a segment over it is refused, NoResources).
            server.memory_budget = Some(deepmail_tcpcl::MemoryBudget::new(
                bp.max_buffer_bytes.max(server.session.transfer_mru),
            ));
            // RFC 9174 §4.4: CAN_TLS with a certificate; the peer that
            // offers it too gets TLS, and with require-tls one that does
            // not is refused (ContactFailure).
            if let Some(tls) = tls_files.bp.take() {
                server.session.offer_tls = true;
                server.session.require_tls = bp.require_tls;
                server.tls = Some(tokio_rustls::TlsAcceptor::from(tls));
            }
            let handler = Arc::new(crate::bp::BpHandler(inbound.clone()));
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                let served = deepmail_tcpcl::serve(listener, server, handler, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                if let Err(e) = served {
                    tracing::error!(stage = "bp", error = %e, "TCPCL listener failed");
                }
            });
            tasks.spawn(crate::bp::expire_loop(inbound, stop_rx.clone()));
            tracing::info!(stage = "bp", listen = ?tcpcl_addr, node = %bp.node_id, endpoints = ?bp.endpoints, "TCPCLv4 listener");
        }

        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_listen {
            let listener = metrics::bind(addr)
                .await
                .map_err(|e| fail(&format!("cannot listen for metrics on {addr}"), e))?;
            metrics_addr = listener.local_addr().ok();
            tasks.spawn(metrics::serve(listener, metrics.clone(), stop_rx.clone()));
        }

        Ok(RunningGateway {
            smtp_addr,
            https_addr,
            h3_addr,
            metrics_addr,
            tcpcl_addr,
            metrics,
            config,
            stop,
            tasks,
            stages,
            _lock: lock,
        })
    }

    /// Stops accepting, lets in-flight work finish (at most `grace`),
    /// ends the sessions senders kept open (TCPCL SESS_TERM), and returns.
    /// Everything unfinished stays in the spool.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                stage = "gateway",
                grace_ms = grace.as_millis() as u64,
                "work still in flight after the grace period; it stays spooled"
            );
            self.tasks.abort_all();
        }
        let stages = self.stages.clone();
        let _ = tokio::task::spawn_blocking(move || stages.maintain_senders(true)).await;
    }
}

/// On SIGHUP, reads the configuration file again and takes its routes'
/// contact plans (the rest of the file needs a restart: said in the log).
/// A file that no longer loads changes nothing.
async fn reload_plans_on_hangup(
    config: Arc<GatewayConfig>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            stage = "gateway",
            "cannot listen for SIGHUP: contact plans are read at start only"
        );
        return;
    };
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        let path = config.source.clone();
        let fresh = tokio::task::spawn_blocking(move || GatewayConfig::load(&path)).await;
        match fresh {
            Ok(Ok(fresh)) => {
                let (reloaded, restart) = config.reload_plans(&fresh);
                for r in &reloaded {
                    tracing::info!(stage = "gateway", plan = %r, "contact plan reloaded");
                }
                for r in &restart {
                    tracing::warn!(stage = "gateway", change = %r, "needs a restart");
                }
                if reloaded.is_empty() {
                    tracing::info!(stage = "gateway", file = %config.source.display(), "SIGHUP: no contact plan changed");
                }
                wake.notify_one();
            }
            Ok(Err(e)) => {
                tracing::error!(stage = "gateway", error = %e, "SIGHUP: the configuration does not load; the running plans stay")
            }
            Err(e) => tracing::error!(stage = "gateway", error = %e, "SIGHUP: reload failed"),
        }
    }
}
