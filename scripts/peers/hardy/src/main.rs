//! `hardy-node`: a small Bundle Protocol v7 relay built from Hardy's
//! published crates (hardy-bpa 0.2 + hardy-tcpclv4 0.4), used by deepmail's
//! tests as a second, independent BPv7 / TCPCLv4 implementation.
//!
//! One TCPCLv4 listener, static routes `PATTERN=IP:PORT` whose sessions the
//! node opens itself (and reopens when they drop), in-memory storage, logs on
//! stderr. See README.md beside Cargo.toml.

mod routes;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use hardy_bpa::bpa::{Bpa, BpaRegistration};
use hardy_bpa::filter::{Filter, Hook};
use hardy_bpv7::eid::NodeId;
use hardy_eid_patterns::EidPattern;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const LOG_ENV: &str = "HARDY_NODE_LOG";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Unrouted {
    /// Delete bundles whose destination matches no --route (and is not this
    /// node's administrative endpoint) as soon as they arrive.
    Drop,
    /// Keep them in memory until a route appears or their lifetime ends.
    Keep,
}

/// A relay-only BPv7 node (RFC 9171) speaking TCPCLv4 (RFC 9174), built from
/// Hardy's crates: hardy-bpa 0.2 and hardy-tcpclv4 0.4.
#[derive(Debug, Parser)]
#[command(
    name = "hardy-node",
    version = concat!(env!("CARGO_PKG_VERSION"), " (hardy-bpa 0.2, hardy-tcpclv4 0.4)"),
    after_help = "\
Example: a relay ipn:101.0 on 127.0.0.1:4556 sending everything for node 2 to
the TCPCLv4 peer at 127.0.0.1:4560:

  hardy-node --node-id ipn:101.0 --listen 127.0.0.1:4556 --route 'ipn:2.*=127.0.0.1:4560'

For each distinct route address the node opens an active TCPCLv4 session
itself and reopens it (every --reconnect seconds) while it is down. Bundles
routed to a peer whose session is down wait in memory until it is back.
Logs go to stderr (level from --log or $HARDY_NODE_LOG, default info); one
line 'hardy-node: ready ...' on stderr when the listener accepts connections.
SIGTERM / SIGINT: orderly shutdown, exit 0. Exit 2: bad command line or
configuration; 1: runtime failure (e.g. the listen address is taken)."
)]
struct Args {
    /// This node's own node ID: ipn:N.0 (or dtn://name/).
    #[arg(long, value_name = "NODE_ID", value_parser = parse_node_id)]
    node_id: NodeId,

    /// Address of the passive TCPCLv4 listener.
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,

    /// Static route: bundles whose destination matches the EID pattern
    /// (e.g. 'ipn:2.*', 'ipn:*.*', 'dtn://moon-gw/**') go over TCPCLv4 to the
    /// peer at IP:PORT. Repeatable; the first --route has the highest
    /// priority.
    #[arg(long = "route", value_name = "PATTERN=IP:PORT", value_parser = parse_route)]
    routes: Vec<routes::Route>,

    /// What to do with bundles whose destination matches no --route.
    #[arg(long, value_enum, default_value_t = Unrouted::Drop)]
    unrouted: Unrouted,

    /// Seconds between attempts to (re)open the session of a route.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_secs)]
    reconnect: f64,

    /// TCPCLv4 keepalive interval offered in SESS_INIT, seconds (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    keepalive: u16,

    /// Segment MRU offered in SESS_INIT (largest XFER_SEGMENT we accept).
    #[arg(long, value_name = "OCTETS", default_value_t = 65536)]
    segment_mru: u64,

    /// Transfer MRU offered in SESS_INIT (largest bundle we accept).
    #[arg(long, value_name = "OCTETS", default_value_t = 0x4000_0000)]
    transfer_mru: u64,

    /// Seconds to wait for a peer's contact header / SESS_INIT.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    contact_timeout: u16,

    /// Accept bundles whose primary block has no CRC (Hardy drops them by
    /// default, citing RFC 9171 §4.3.1).
    #[arg(long)]
    accept_no_crc: bool,

    /// TLS: this node's certificate chain (PEM). With --tls-key, the contact
    /// header offers TLS (CAN_TLS) and TLS is used with peers that offer it too.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS: the private key of --tls-cert (PEM, PKCS#8 'BEGIN PRIVATE KEY').
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// TLS: CA certificate(s) (PEM file, or a directory of PEM files) used to
    /// verify the certificate of a peer this node connects to.
    #[arg(long, value_name = "FILE|DIR", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,

    /// TLS: the name checked in the peer's certificate when connecting
    /// (default: 'localhost' for loopback peers, else the peer's IP address).
    #[arg(long, value_name = "NAME", requires = "tls_cert")]
    tls_server_name: Option<String>,

    /// TLS: accept any peer certificate when connecting (testing only).
    #[arg(long, requires = "tls_cert", conflicts_with = "tls_ca")]
    tls_insecure: bool,

    /// Refuse sessions (in and out) that do not negotiate TLS.
    #[arg(long, requires = "tls_cert")]
    require_tls: bool,

    /// Log filter: a level (error, warn, info, debug, trace) or
    /// 'target=level,...' (e.g. 'info,hardy_tcpclv4=debug'). Default: $HARDY_NODE_LOG, else info.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    let id: NodeId = s
        .parse()
        .map_err(|e| format!("'{s}' is not a node ID (want ipn:N.0 or dtn://name/): {e}"))?;
    if matches!(id, NodeId::LocalNode) {
        return Err(format!("'{s}' is the local-node alias, not a node ID"));
    }
    Ok(id)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

fn parse_route(s: &str) -> Result<routes::Route, String> {
    let Some((pat, addr)) = s.rsplit_once('=') else {
        return Err(format!("'{s}' is not PATTERN=IP:PORT (no '=')"));
    };
    let pattern: EidPattern = pat
        .parse()
        .map_err(|e| format!("'{pat}' is not an EID pattern (e.g. ipn:2.*): {e}"))?;
    let addr = addr
        .to_socket_addrs()
        .map_err(|e| format!("'{addr}' is not IP:PORT (or HOST:PORT): {e}"))?
        .next()
        .ok_or_else(|| format!("'{addr}' resolves to no address"))?;
    Ok(routes::Route {
        text: pat.to_string(),
        pattern,
        addr,
    })
}

fn init_logging(arg: Option<&str>) -> Result<(), String> {
    let spec = arg
        .map(str::to_string)
        .or_else(|| std::env::var(LOG_ENV).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "info".to_string());
    let targets: tracing_subscriber::filter::Targets = spec
        .parse()
        .map_err(|e| format!("bad log filter '{spec}': {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(targets)
        .init();
    Ok(())
}

/// hardy-tcpclv4 wants a directory of CA files; a single file is linked into
/// a private temporary directory that is removed once the CLA has loaded it.
struct CaDir {
    path: PathBuf,
    temp: bool,
}

impl CaDir {
    fn new(p: &std::path::Path) -> Result<Self, String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("--tls-ca {}: {e}", p.display()))?;
        if meta.is_dir() {
            return Ok(Self {
                path: p.to_path_buf(),
                temp: false,
            });
        }
        let abs = std::path::absolute(p).map_err(|e| format!("--tls-ca {}: {e}", p.display()))?;
        let dir = std::env::temp_dir().join(format!("hardy-node-ca.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::os::unix::fs::symlink(&abs, dir.join("ca.pem"))
            .map_err(|e| format!("linking {} into {}: {e}", abs.display(), dir.display()))?;
        Ok(Self {
            path: dir,
            temp: true,
        })
    }
}

impl Drop for CaDir {
    fn drop(&mut self) {
        if self.temp {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn tcpcl_config(args: &Args, ca: Option<&CaDir>) -> Result<hardy_tcpclv4::config::Config, String> {
    for (flag, p) in [("--tls-cert", &args.tls_cert), ("--tls-key", &args.tls_key)] {
        if let Some(p) = p {
            std::fs::File::open(p).map_err(|e| format!("{flag} {}: {e}", p.display()))?;
        }
    }
    let tls = args.tls_cert.as_ref().map(|cert| {
        let mut t = hardy_tcpclv4::config::TlsConfig {
            cert_file: Some(cert.clone()),
            private_key_file: args.tls_key.clone(),
            ca_certs: ca.map(|c| c.path.clone()),
            server_name: args.tls_server_name.clone(),
            ..Default::default()
        };
        t.debug.accept_self_signed = args.tls_insecure;
        t
    });
    if tls.as_ref().is_some_and(|t| t.ca_certs.is_none()) && !args.tls_insecure {
        return Err(
            "--tls-cert needs --tls-ca (to verify the peers this node connects to) or --tls-insecure"
                .into(),
        );
    }
    Ok(hardy_tcpclv4::config::Config {
        address: Some(args.listen),
        segment_mru: args.segment_mru,
        transfer_mru: args.transfer_mru,
        session_defaults: hardy_tcpclv4::config::SessionConfig {
            contact_timeout: args.contact_timeout,
            keepalive_interval: Some(args.keepalive),
            require_tls: args.require_tls,
        },
        tls,
        ..Default::default()
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(args.log.as_deref()) {
        eprintln!("hardy-node: {e}");
        return ExitCode::from(2);
    }
    if args.segment_mru == 0 || args.transfer_mru == 0 {
        eprintln!("hardy-node: --segment-mru and --transfer-mru must be > 0");
        return ExitCode::from(2);
    }
    for r in &args.routes {
        if r.addr == args.listen {
            eprintln!(
                "hardy-node: --route {}={} points at this node's own listener",
                r.text, r.addr
            );
            return ExitCode::from(2);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hardy-node: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(run(args));
    // Hardy's tasks are all stopped by Bpa::shutdown; do not wait for
    // stragglers (e.g. a contact still in its timeout).
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}

async fn run(args: Args) -> ExitCode {
    // --- configuration, all checked before anything starts ------------------
    let ca = match args.tls_ca.as_deref().map(CaDir::new).transpose() {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("hardy-node: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match tcpcl_config(&args, ca.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hardy-node: {e}");
            return ExitCode::from(2);
        }
    };
    let tcpcl = match hardy_tcpclv4::Cla::new(&config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("hardy-node: TCPCLv4 configuration: {e}");
            return ExitCode::from(2);
        }
    };
    drop(ca); // loaded by Cla::new

    // hardy-tcpclv4 binds its listener in a background task and only logs a
    // failure; check the address first so a taken port is a clear error.
    match std::net::TcpListener::bind(args.listen) {
        Ok(l) => drop(l),
        Err(e) => {
            eprintln!("hardy-node: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    }

    let node_ids = match hardy_bpa::node_ids::NodeIds::try_from(std::slice::from_ref(&args.node_id))
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("hardy-node: --node-id {}: {e}", args.node_id);
            return ExitCode::from(2);
        }
    };

    let state = routes::State::new(args.routes.clone(), args.node_id.clone());
    let mut builder = Bpa::builder()
        .node_ids(node_ids)
        .status_reports(false)
        .routing_agent("static-routes", state.agent());
    if args.unrouted == Unrouted::Drop {
        builder = builder.filter(
            Hook::Ingress,
            "unrouted-drop",
            &[],
            Filter::Read(state.unrouted_filter()),
        );
    }
    let bpa = match builder.build().await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("hardy-node: building the BPA failed: {e}");
            return ExitCode::from(1);
        }
    };
    if args.accept_no_crc {
        use hardy_bpa::filter::rfc9171::{Config, Rfc9171ValidityFilter};
        let _ = bpa.unregister_filter(Hook::Ingress, "rfc9171-validity");
        let f = Rfc9171ValidityFilter::new(&Config {
            primary_block_integrity: false,
            bundle_age_required: true,
        });
        if let Err(e) = bpa.register_filter(
            Hook::Ingress,
            "rfc9171-validity",
            &[],
            Filter::Read(Arc::new(f)),
        ) {
            eprintln!("hardy-node: replacing the RFC 9171 validity filter failed: {e}");
            return ExitCode::from(1);
        }
    }
    bpa.start(false);

    let cla = Arc::new(routes::WatchedCla::new(tcpcl.clone(), state.clone()));
    if let Err(e) = bpa.register_cla("tcpclv4".into(), cla, None).await {
        eprintln!("hardy-node: registering the TCPCLv4 CLA failed: {e}");
        bpa.shutdown().await;
        return ExitCode::from(1);
    }

    // Wait until the listener accepts connections (a bare TCP connect that is
    // closed at once: Hardy drops it on the missing contact header).
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(args.listen).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        error!("the TCPCLv4 listener on {} did not come up", args.listen);
        eprintln!(
            "hardy-node: the TCPCLv4 listener on {} did not come up within 5 s",
            args.listen
        );
        bpa.shutdown().await;
        return ExitCode::from(1);
    }

    let cancel = shutdown_flag();
    let supervisors = state.spawn_supervisors(
        tcpcl.clone(),
        Duration::from_secs_f64(args.reconnect),
        cancel.clone(),
    );

    let tls = if args.tls_cert.is_some() {
        if args.require_tls {
            "required"
        } else {
            "offered"
        }
    } else {
        "off"
    };
    let routes_txt = args
        .routes
        .iter()
        .map(|r| format!("{}={}", r.text, r.addr))
        .collect::<Vec<_>>()
        .join(" ");
    info!(node_id = %args.node_id, listen = %args.listen, tls, "node ready");
    eprintln!(
        "hardy-node: ready node-id={} listen={} tls={} unrouted={} routes=[{}] pid={}",
        args.node_id,
        args.listen,
        tls,
        match args.unrouted {
            Unrouted::Drop => "drop",
            Unrouted::Keep => "keep",
        },
        routes_txt,
        std::process::id()
    );

    // --- run until SIGTERM / SIGINT -------------------------------------------
    let sig = wait_for_signal().await;
    info!("{sig}: shutting down");
    cancel.send_replace(true);
    for s in supervisors {
        let _ = s.await;
    }
    match tokio::time::timeout(Duration::from_secs(5), bpa.shutdown()).await {
        Ok(()) => info!("stopped"),
        Err(_) => warn!("BPA shutdown took over 5 s; exiting anyway"),
    }
    ExitCode::SUCCESS
}

/// A shutdown flag the supervisors watch.
fn shutdown_flag() -> tokio::sync::watch::Sender<bool> {
    tokio::sync::watch::Sender::new(false)
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            warn!("cannot install signal handlers; running until killed");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
