//! `receive`: run the receiving endpoint (HTTPS and HTTP/3 `POST` of Batch
//! SMTP into a durable spool) until SIGTERM or SIGINT. Settings come from
//! flags and/or a TOML file with the same keys; flags win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use deepmail_gateway::{load_certs, load_private_key};
use deepmail_gateway::{
    shutdown_signal, Receiver, ReceiverConfig, RequestRecord, Spool, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PATH,
};
use serde::Deserialize;

use deepmail_bench::Stages;

const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

#[derive(Args)]
pub(crate) struct ReceiveArgs {
    /// TCP address for HTTPS, HTTP/1.1 and HTTP/2 [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// UDP address for HTTP/3 (may reuse the HTTPS port number); off unless given.
    #[arg(long = "h3-listen", value_name = "ADDR:PORT")]
    h3_listen: Option<String>,
    /// Spool directory; accepted batches go to SPOOL/incoming/<batch-id>/.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Server certificate chain, PEM (leaf first).
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// Server private key, PEM.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// Accept client certificates issued by this CA (PEM) as authentication.
    #[arg(long = "client-ca", value_name = "PEM")]
    client_ca: Option<PathBuf>,
    /// Accept `Authorization: Bearer TOKEN`; repeatable.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// Route that takes the POSTs [default: /inboundmail].
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Largest batch accepted, MiB [default: 64].
    #[arg(long = "max-body-mib", value_name = "MIB")]
    max_body_mib: Option<u64>,
    /// TOML file with the same keys (listen, h3-listen, spool, cert, key,
    /// client-ca, token = [..], path, max-body-mib); flags override it.
    #[arg(long, value_name = "TOML")]
    config: Option<PathBuf>,
}

/// The TOML file. Relative paths are relative to the file's directory.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<String>,
    h3_listen: Option<String>,
    spool: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    #[serde(default)]
    token: Vec<String>,
    path: Option<String>,
    max_body_mib: Option<u64>,
}

/// Where a setting came from, for error messages.
fn origin(from_flag: bool, key: &str, file: Option<&Path>) -> String {
    match (from_flag, file) {
        (true, _) | (false, None) => format!("--{key}"),
        (false, Some(f)) => format!("{}: key `{key}`", f.display()),
    }
}

fn parse_addr(value: &str, origin: &str) -> anyhow::Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{origin} = {value:?}: expected ADDR:PORT, e.g. 127.0.0.1:8443"))
}

pub(crate) fn run(stages: &Stages, args: ReceiveArgs) -> anyhow::Result<()> {
    let (file, file_path) = match &args.config {
        None => (FileConfig::default(), None),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            let file: FileConfig =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (file, Some(path.as_path()))
        }
    };
    let base = file_path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let from_file = |p: Option<PathBuf>| p.map(|p| base.join(p));

    let pick =
        |flag: Option<String>, file: Option<String>, key: &str| -> (Option<String>, String) {
            let from_flag = flag.is_some();
            (flag.or(file), origin(from_flag, key, file_path))
        };
    let (listen, listen_origin) = pick(args.listen, file.listen, "listen");
    let listen = parse_addr(listen.as_deref().unwrap_or(DEFAULT_LISTEN), &listen_origin)?;
    let (h3_listen, h3_origin) = pick(args.h3_listen, file.h3_listen, "h3-listen");
    let h3_listen = h3_listen.map(|a| parse_addr(&a, &h3_origin)).transpose()?;
    let (path, path_origin) = pick(args.path, file.path, "path");
    let path = path.unwrap_or_else(|| DEFAULT_PATH.to_string());
    if !path.starts_with('/') {
        bail!("{path_origin} = {path:?}: the path must start with `/`, e.g. /inboundmail");
    }
    let max_body = match args.max_body_mib.or(file.max_body_mib) {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(0) => bail!(
            "{}: must be at least 1",
            origin(args.max_body_mib.is_some(), "max-body-mib", file_path)
        ),
        Some(mib) => mib.saturating_mul(1 << 20),
    };
    let required = |flag: Option<PathBuf>, file: Option<PathBuf>, key: &str| {
        flag.or(from_file(file))
            .with_context(|| format!("--{key} is required (or `{key}` in the --config file)"))
    };
    let spool_dir = required(args.spool, file.spool, "spool")?;
    let cert_path = required(args.cert, file.cert, "cert")?;
    let key_path = required(args.key, file.key, "key")?;
    let client_ca_path = args.client_ca.or(from_file(file.client_ca));
    let tokens = if args.tokens.is_empty() {
        file.token
    } else {
        args.tokens
    };
    if let Some(empty) = tokens
        .iter()
        .position(|t| t.trim().is_empty() || t.contains(' '))
    {
        bail!(
            "token #{}: a bearer token may not be empty or contain spaces",
            empty + 1
        );
    }

    let cert_chain = load_certs(&cert_path)?;
    let key = load_private_key(&key_path)?;
    let client_ca = client_ca_path.as_deref().map(load_certs).transpose()?;

    let mut config = ReceiverConfig::new(cert_chain, key);
    config.https_listen = Some(listen);
    config.h3_listen = h3_listen;
    config.path = path;
    config.max_body_bytes = max_body;
    config.client_ca = client_ca;
    config.tokens = tokens;

    let spool = Spool::open(&spool_dir)
        .with_context(|| format!("opening the spool {}", spool_dir.display()))?;
    let codec = stages.codec()?;

    let auth = match (&client_ca_path, config.tokens.len()) {
        (None, 0) => "none (anyone who can connect may post)".to_string(),
        (Some(ca), 0) => format!("client certificates from {}", ca.display()),
        (None, n) => format!("{n} bearer token(s)"),
        (Some(ca), n) => format!(
            "client certificates from {} or {n} bearer token(s)",
            ca.display()
        ),
    };
    println!(
        "spool {} ({} leftover(s) of an interrupted write removed); auth: {auth}; limit {} MiB",
        spool_dir.display(),
        spool.cleaned_leftovers(),
        max_body >> 20
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let receiver = Receiver::bind(config, Arc::new(spool), codec)
            .await?
            .with_request_log(print_request);
        if let Some(addr) = receiver.https_addr() {
            println!("listening https://{addr}{} (h1, h2)", receiver.path());
        }
        if let Some(addr) = receiver.h3_addr() {
            println!("listening h3 https://{addr}{} (QUIC)", receiver.path());
        }
        receiver
            .serve(async {
                shutdown_signal().await;
                println!("shutting down: finishing in-flight requests");
            })
            .await;
        println!("stopped");
        anyhow::Ok(())
    })
}

fn print_request(r: &RequestRecord) {
    let mut line = format!(
        "{} {} {} {} {} batch={} {} B {:.1} ms",
        r.peer,
        r.version,
        r.method,
        r.path,
        r.status,
        r.batch_id.as_deref().unwrap_or("-"),
        r.bytes,
        r.elapsed.as_secs_f64() * 1e3
    );
    if r.duplicate {
        line.push_str(" duplicate");
    }
    if let Some(code) = &r.code {
        line.push_str(&format!(" {code}"));
    }
    println!("{line}");
}
