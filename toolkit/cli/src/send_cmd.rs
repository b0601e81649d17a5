//! `send`: resolve a mail domain's next hops and deliver one Batch SMTP
//! object to the first that takes it, through the resolver and sender
//! plugins, with retries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use deepmail_host::types::{Outcome, Payload};
use deepmail_host::{PluginSource, Stage};
use sha2::{Digest, Sha256};

use deepmail_bench::send::{load_sender, SendOptions};
use deepmail_bench::{read_input, Stages};

/// sysexits(3): what MTAs calling us expect.
const EX_DATAERR: u8 = 65;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

#[derive(Args)]
pub(crate) struct SendArgs {
    /// The Batch SMTP object to deliver (`-` reads standard input).
    #[arg(value_name = "BSMTP")]
    input: PathBuf,
    /// Mail domain whose gateway receives it (its `_bsmtp._https` URI records are looked up).
    #[arg(long, value_name = "DOMAIN", required_unless_present = "to_uri")]
    domain: Option<String>,
    /// Deliver to this URI, skipping resolution.
    #[arg(long = "to-uri", value_name = "URI")]
    to_uri: Option<String>,
    /// DNS server for the resolver, address:port; repeatable (default: /etc/resolv.conf).
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    dns_servers: Vec<String>,
    /// A static route instead of DNS: "DOMAIN URI [PRIORITY [WEIGHT]]"; repeatable.
    #[arg(long = "route", value_name = "ROUTE")]
    routes: Vec<String>,
    /// PEM file with the trust roots for the next hop's certificate (default: the system's).
    #[arg(long = "ca", value_name = "PEM")]
    ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --key).
    #[arg(long = "cert", value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long = "key", value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer token to present (`Authorization: Bearer ...`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Seconds to wait for each attempt.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
    /// Rounds over all next hops after temporary failures, with doubling delays.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// Delay before the first retry round, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    retry_delay_ms: u64,
    /// Allow plain http:// next hops (tests on loopback only).
    #[arg(long)]
    allow_plain_http: bool,
    /// Send over HTTP/3 (QUIC) with the quic-sender plugin instead of HTTPS.
    #[arg(long)]
    h3: bool,
    /// A QUIC profile setting for the quic-sender, KEY=VALUE, repeatable
    /// (initial-rtt-ms, idle-timeout-ms, handshake-timeout-ms, stream-window,
    /// connection-window, initial-window, keep-alive-ms, zero-rtt).
    #[arg(long = "quic", value_name = "KEY=VALUE", requires = "h3")]
    quic: Vec<String>,
}

fn read_pem(path: &Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn run(stages: &Stages, args: SendArgs) -> anyhow::Result<ExitCode> {
    let body = read_input(&args.input)?;
    if body.is_empty() {
        bail!("{} is empty: nothing to send", args.input.display());
    }
    let key = hex::encode(Sha256::digest(&body));

    // Next hops: the given URI, or the resolver's answer.
    let hops: Vec<String> = match (&args.to_uri, &args.domain) {
        (Some(uri), _) => vec![uri.clone()],
        (None, Some(domain)) => {
            let resolver = stages.resolver(&args.dns_servers, &args.routes, 2000)?;
            let seed = u64::from(std::process::id()) ^ key.len() as u64;
            let schemes = if args.allow_plain_http {
                vec!["https".into(), "http".into()]
            } else {
                vec!["https".into()]
            };
            let resolved = resolver
                .resolve(domain, &schemes, seed)
                .map_err(|e| anyhow::anyhow!("cannot find the gateway for {domain}: {e}"))?;
            resolved.hops.into_iter().map(|h| h.uri).collect()
        }
        (None, None) => bail!("give --domain or --to-uri"),
    };

    let roots_pem = read_pem(&args.ca)?;
    let client_cert_pem = read_pem(&args.cert)?;
    let client_key_pem = read_pem(&args.key)?;
    let source = match (stages.chosen(Stage::Sender), args.h3) {
        (Some(chosen), _) => chosen.clone(),
        (None, true) => PluginSource::Builtin("quic-sender".into()),
        (None, false) => stages.source(Stage::Sender)?,
    };
    // A plugin call carries a whole transfer: allow it the transfer's time.
    let needed = Duration::from_secs(args.timeout.saturating_add(10));
    let host = if stages.host.config().call_timeout < needed {
        let config = deepmail_host::HostConfig {
            call_timeout: needed,
            ..stages.host.config().clone()
        };
        deepmail_host::Host::new(config).context("starting the WebAssembly host")?
    } else {
        stages.host.clone()
    };
    let options = SendOptions {
        timeout_secs: args.timeout,
        token: args.token.clone(),
        roots_pem,
        // clap makes --cert and --key come together.
        client: args
            .cert
            .is_some()
            .then_some((client_cert_pem, client_key_pem)),
        allow_plain_http: args.allow_plain_http,
        h3: args.h3,
        quic: args.quic.clone(),
    };

    let mut delay = Duration::from_millis(args.retry_delay_ms);
    let mut last = String::new();
    for round in 0..=args.retries {
        if round > 0 {
            eprintln!(
                "deepmail: retrying in {} ms (round {round} of {})",
                delay.as_millis(),
                args.retries
            );
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
        for hop in &hops {
            let sender = load_sender(&host, &source, hop, &options)?;
            match sender.send(hop, &key, Payload::Bsmtp(body.clone())) {
                Ok(Outcome::Delivered(said)) => {
                    println!("delivered to {hop} (batch {key}): {said}");
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(Outcome::PermanentFailure(said)) => {
                    eprintln!("deepmail: {hop} refused the batch for good: {said}");
                    return Ok(ExitCode::from(EX_DATAERR));
                }
                Ok(Outcome::TemporaryFailure(said)) => {
                    eprintln!("deepmail: {hop}: temporary failure: {said}");
                    last = said;
                }
                Err(e) if e.is_plugin_fault() => {
                    return Err(anyhow::anyhow!("sender plugin failed: {e}"))
                }
                // The plugin's settings are wrong: retrying cannot help.
                Err(e)
                    if matches!(
                        e.code.as_str(),
                        "invalid-config" | "invalid-next-hop" | "unsupported-payload"
                    ) =>
                {
                    eprintln!("deepmail: {hop}: {e}");
                    return Ok(ExitCode::from(EX_CONFIG));
                }
                Err(e) => {
                    eprintln!("deepmail: {hop}: {e}");
                    last = e.to_string();
                }
            }
        }
    }
    eprintln!(
        "deepmail: not delivered after {} round(s) over {} next hop(s); last: {last}",
        args.retries + 1,
        hops.len()
    );
    Ok(ExitCode::from(EX_TEMPFAIL))
}
