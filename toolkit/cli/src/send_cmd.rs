//! `send`: resolve a mail domain's next hops and deliver one Batch SMTP
//! object to the first that takes it, through the resolver and sender
//! plugins, with retries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use deepmail_bench::send::{deliver, SendEvent, SendOutcome, SendRequest};
use deepmail_bench::Stages;

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

pub(crate) fn run(stages: &Stages, args: SendArgs) -> anyhow::Result<ExitCode> {
    let request = SendRequest {
        input: args.input,
        to_uri: args.to_uri,
        domain: args.domain,
        dns_servers: args.dns_servers,
        routes: args.routes,
        ca: args.ca,
        // clap makes --cert and --key come together.
        client: args.cert.zip(args.key),
        token: args.token,
        timeout_secs: args.timeout,
        retries: args.retries,
        retry_delay: Duration::from_millis(args.retry_delay_ms),
        allow_plain_http: args.allow_plain_http,
        h3: args.h3,
        quic: args.quic,
    };
    let outcome = deliver(stages, &request, |event| match event {
        SendEvent::Retrying {
            delay,
            round,
            rounds,
        } => eprintln!(
            "deepmail: retrying in {} ms (round {round} of {rounds})",
            delay.as_millis()
        ),
        SendEvent::TemporaryFailure { hop, said } => {
            eprintln!("deepmail: {hop}: temporary failure: {said}")
        }
        SendEvent::Failed { hop, error } => eprintln!("deepmail: {hop}: {error}"),
    })?;
    Ok(match outcome {
        SendOutcome::Delivered { hop, key, said } => {
            println!("delivered to {hop} (batch {key}): {said}");
            ExitCode::SUCCESS
        }
        SendOutcome::Refused { hop, said } => {
            eprintln!("deepmail: {hop} refused the batch for good: {said}");
            ExitCode::from(EX_DATAERR)
        }
        SendOutcome::Misconfigured { hop, error } => {
            eprintln!("deepmail: {hop}: {error}");
            ExitCode::from(EX_CONFIG)
        }
        SendOutcome::NotDelivered { rounds, hops, last } => {
            eprintln!("deepmail: not delivered after {rounds} round(s) over {hops} next hop(s); last: {last}");
            ExitCode::from(EX_TEMPFAIL)
        }
    })
}
