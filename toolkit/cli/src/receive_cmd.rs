//! `receive`: run the receiving endpoint (HTTPS and HTTP/3 `POST` of Batch
//! SMTP into a durable spool) until SIGTERM or SIGINT. Settings come from
//! flags and/or a TOML file with the same keys; flags win (merged and
//! checked by `deepmail_gateway::ReceiveSettings`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use deepmail_gateway::{
    shutdown_signal, ReceiveSettings, ReceiveSetup, Receiver, RequestRecord, Spool,
};

use deepmail_bench::Stages;

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

pub(crate) fn run(stages: &Stages, args: ReceiveArgs) -> anyhow::Result<()> {
    let flags = ReceiveSettings {
        listen: args.listen,
        h3_listen: args.h3_listen,
        spool: args.spool,
        cert: args.cert,
        key: args.key,
        client_ca: args.client_ca,
        token: args.tokens,
        path: args.path,
        max_body_mib: args.max_body_mib,
    };
    let ReceiveSetup {
        config,
        spool: spool_dir,
        auth,
    } = ReceiveSettings::setup(flags, args.config.as_deref())?;
    let max_body = config.max_body_bytes;
    let spool = Spool::open(&spool_dir)
        .with_context(|| format!("opening the spool {}", spool_dir.display()))?;
    let codec = stages.codec()?;

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
