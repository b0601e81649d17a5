//! The in-process test bed the demo and the benchmarks share: an SMTP
//! sink standing in for an MTA, gateway configurations written to files,
//! sender plugins compiled ahead, an SMTP load, and readings of this
//! process from `/proc`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use deepmail_gateway::GatewayConfig;
use deepmail_smtp::client::{RelayConfig, SmtpClient};
use deepmail_smtp::serve::{Handler, ServerConfig, SessionInfo};
use deepmail_smtp::{Envelope, Param, Recipient, Reply};
use tokio::sync::Notify;

use crate::BenchError;

/// An MTA that takes every message and remembers it (the demo's Moon MTA).
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) received: Mutex<Vec<(Envelope, Vec<u8>, Instant)>>,
    pub(crate) arrived: Notify,
}

impl Handler for Sink {
    async fn mail_from(&self, _: &SessionInfo, _: &str, _: &[Param]) -> Reply {
        Reply::new(250, Some("2.1.0"), "ok")
    }
    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, _: &Recipient) -> Reply {
        Reply::new(250, Some("2.1.5"), "ok")
    }
    async fn message(&self, _: &SessionInfo, envelope: Envelope, content: Vec<u8>) -> Reply {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((envelope, content, Instant::now()));
        self.arrived.notify_waiters();
        Reply::new(250, Some("2.0.0"), "delivered to the habitat's mailboxes")
    }
}

/// Compiles `builtins` (sender plugins, which gateways load on first use)
/// into `host`'s cache, so a timeline measures the link, not Cranelift.
pub(crate) async fn warm_plugins(
    host: &deepmail_host::Host,
    builtins: &[&str],
) -> Result<(), BenchError> {
    let host = host.clone();
    let names: Vec<String> = builtins.iter().map(|b| b.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        for name in names {
            let source = deepmail_host::PluginSource::Builtin(name);
            deepmail_host::Sender::load(&host, &source, Vec::new(), None).map_err(|e| {
                BenchError::Warm {
                    plugin: source.to_string(),
                    source: e,
                }
            })?;
        }
        Ok::<_, BenchError>(())
    })
    .await?
}

/// Starts a [`Sink`] on a loopback port: its address, and a sender that
/// stops it.
pub(crate) async fn start_sink(
    name: &str,
) -> Result<
    (
        Arc<Sink>,
        std::net::SocketAddr,
        tokio::sync::watch::Sender<bool>,
    ),
    BenchError,
> {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::system("listening on a loopback port"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::system("listening on a loopback port"))?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let config = Arc::new(ServerConfig::new(name.to_string()));
    let s = sink.clone();
    tokio::spawn(async move {
        deepmail_smtp::serve::serve(listener, config, s, async move {
            let _ = stopped.wait_for(|v| *v).await;
        })
        .await;
    });
    Ok((sink, addr, stop))
}

/// Writes a gateway's configuration to `path` and loads it from there.
pub(crate) fn write_config(path: &Path, text: &str) -> Result<GatewayConfig, BenchError> {
    std::fs::write(path, text).map_err(BenchError::io("writing", path))?;
    Ok(GatewayConfig::load(path)?)
}

/// Sends `messages` messages of `size_kib` KiB to `crew<N>@<domain>` over
/// `connections` SMTP sessions at once (each reused for its share), and
/// fails on the first refusal: the load of `bench gateway` and `bench queue`.
pub(crate) async fn smtp_load(
    smtp: std::net::SocketAddr,
    messages: usize,
    connections: usize,
    size_kib: usize,
    domain: &str,
) -> Result<(), BenchError> {
    let body_line = "The quick brown fox jumps over the lazy dog, in deep space. 0123456789\r\n";
    let body: String = body_line.repeat((size_kib * 1024).div_ceil(body_line.len()).max(1));
    let mut senders = tokio::task::JoinSet::new();
    for c in 0..connections {
        let share: Vec<usize> = (0..messages).filter(|i| i % connections == c).collect();
        let body = body.clone();
        let domain = domain.to_string();
        senders.spawn(async move {
            let config = RelayConfig::new("mta.earth.example");
            let mut client =
                SmtpClient::connect(smtp, &config)
                    .await
                    .map_err(|source| BenchError::Smtp {
                        what: format!("connecting to {smtp}"),
                        source,
                    })?;
            for i in share {
                let envelope = Envelope {
                    reverse_path: "ops@earth.example".into(),
                    mail_params: vec![],
                    recipients: vec![Recipient {
                        mailbox: format!("crew{}@{domain}", i % 7),
                        params: vec![],
                    }],
                };
                let content = format!(
                    "Message-ID: <bench-{i}@earth.example>\r\nSubject: bench {i}\r\n\r\n{body}"
                );
                let d = client
                    .send(&envelope, content.as_bytes())
                    .await
                    .map_err(|source| BenchError::Smtp {
                        what: format!("sending message {i}"),
                        source,
                    })?;
                if !d.all_accepted() {
                    return Err(BenchError::Refused(format!(
                        "message {i} refused: {:?}",
                        d.data_reply
                    )));
                }
            }
            let _ = client.quit().await;
            Ok::<_, BenchError>(())
        });
    }
    while let Some(r) = senders.join_next().await {
        r??;
    }
    Ok(())
}

/// A `/proc/self/status` field in KiB, e.g. `VmHWM:` (peak resident
/// memory) or `VmRSS:`.
pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Now, Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a bench that runs gateways starts from: its work directory,
/// `deepmail-NAME-PID` in the temporary directory (emptied first when
/// `fresh`; the queue and contact benches keep what earlier runs left),
/// and a multi-threaded runtime.
pub(crate) fn workspace(
    name: &str,
    fresh: bool,
) -> Result<(PathBuf, tokio::runtime::Runtime), BenchError> {
    let dir = std::env::temp_dir().join(format!("deepmail-{name}-{}", std::process::id()));
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(BenchError::io("creating", &dir))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::system("starting the async runtime"))?;
    Ok((dir, runtime))
}
