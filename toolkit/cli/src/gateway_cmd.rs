//! `gateway`, `queue` and `submit`: run a gateway from its TOML file, look
//! at and act on its outbound queue, and hand it mail from an MTA's pipe
//! transport (sendmail-style exit codes).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use deepmail_gateway::sysexits;
use deepmail_gateway::SubmitError;
use deepmail_gateway::{GatewayConfig, RunningGateway};
use deepmail_gateway::{Queue, QueueReport};
use deepmail_host::types::{DecodeMode, DecodeOptions};

use deepmail_bench::logging::{init_logging, LogFormat};
use deepmail_bench::Stages;

#[derive(Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's TOML configuration (see docs/GATEWAY.md and examples/).
    #[arg(long, short = 'c', value_name = "TOML")]
    config: PathBuf,
    /// Log line format (stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Check the configuration and the plugins, then exit.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run_gateway(stages: &Stages, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format, &args.log_level)?;
    let mut config = GatewayConfig::load(&args.config)?;
    stages.apply_to(&mut config.stages);
    let host =
        RunningGateway::host_for(&stages.host, &config).context("starting the WebAssembly host")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if args.check {
            let report = RunningGateway::check(&config, host)?;
            println!("{}: ok ({report})", args.config.display());
            return Ok(ExitCode::SUCCESS);
        }
        let gateway = RunningGateway::start(config, host).await?;
        tracing::info!(
            stage = "gateway",
            name = %gateway.config.name,
            smtp = ?gateway.smtp_addr,
            https = ?gateway.https_addr,
            h3 = ?gateway.h3_addr,
            metrics = ?gateway.metrics_addr,
            spool = %gateway.config.spool.display(),
            "gateway running; SIGTERM or SIGINT stops it"
        );
        deepmail_gateway::shutdown_signal().await;
        tracing::info!(
            stage = "gateway",
            "stopping: in-flight work finishes, the rest stays spooled"
        );
        gateway.shutdown(Duration::from_secs(30)).await;
        tracing::info!(stage = "gateway", "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Args)]
pub(crate) struct QueueArgs {
    /// The gateway's TOML configuration (for its spool directory).
    #[arg(long, short = 'c', value_name = "TOML")]
    config: PathBuf,
    #[command(subcommand)]
    action: QueueAction,
}

#[derive(Subcommand)]
enum QueueAction {
    /// List queued messages with their batch, attempts and last error.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make messages due now (a running gateway picks them up within a second).
    Retry {
        /// Queue ids; none with --all.
        ids: Vec<String>,
        /// Every queued message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete messages from the queue without delivering them (no DSN).
    Delete {
        /// Queue ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub(crate) fn run_queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let config = GatewayConfig::load(&args.config)?;
    let queue = Queue::open(&config.spool, false)?;
    let snapshot = queue.snapshot()?;
    match args.action {
        QueueAction::List { json } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let report = QueueReport::new(&config, &queue, &snapshot, now);
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{}", report.text());
            }
            for d in report.damaged() {
                eprintln!("deepmail: damaged queue entry: {d}");
            }
            if !json {
                print!("{}", report.quarantine_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueAction::Retry { ids, all } => {
            if ids.is_empty() && !all {
                anyhow::bail!("name queue ids to retry, or give --all");
            }
            let touched = deepmail_gateway::make_due(&queue, &snapshot, &ids, all)?;
            for id in &ids {
                if !snapshot.entries.contains_key(id) {
                    eprintln!("deepmail: {id} is not queued");
                }
            }
            println!("{touched} message(s) due now");
            Ok(ExitCode::SUCCESS)
        }
        QueueAction::Delete { ids } => {
            let mut missing = false;
            for id in &ids {
                if queue.contains(id) {
                    queue.remove(id)?;
                    println!("deleted {id}");
                } else {
                    eprintln!("deepmail: {id} is not queued");
                    missing = true;
                }
            }
            Ok(if missing {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

#[derive(Args)]
pub(crate) struct SubmitArgs {
    /// The gateway's TOML configuration (its spool, relay domains and policy).
    #[arg(long, short = 'c', value_name = "TOML")]
    config: PathBuf,
    /// Envelope sender (reverse path); `<>` or empty for the null path.
    #[arg(short = 'f', value_name = "SENDER", required_unless_present = "bsmtp")]
    from: Option<String>,
    /// Read a Batch SMTP stream on stdin (what Exim's `use_bsmtp` pipe transport writes).
    #[arg(long)]
    bsmtp: bool,
    /// Recipients (after `--`).
    #[arg(value_name = "RCPT", required_unless_present = "bsmtp")]
    recipients: Vec<String>,
}

pub(crate) fn run_submit(stages: &Stages, args: SubmitArgs) -> ExitCode {
    match submit(stages, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deepmail submit: {e:#}");
            ExitCode::from(sysexits::TEMPFAIL)
        }
    }
}

fn submit(stages: &Stages, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut config = match GatewayConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("deepmail submit: {e}");
            return Ok(ExitCode::from(sysexits::CONFIG));
        }
    };
    stages.apply_to(&mut config.stages);
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading standard input")?;
    let messages = if args.bsmtp {
        match stages.codec()?.decode(
            &input,
            DecodeOptions {
                mode: DecodeMode::Lenient,
            },
        ) {
            Ok(m) => m
                .into_iter()
                .map(|m| (deepmail_gateway::smtp_envelope(&m.envelope), m.content))
                .collect(),
            Err(e) => {
                eprintln!("deepmail submit: the Batch SMTP on stdin does not decode: {e}");
                return Ok(ExitCode::from(sysexits::DATAERR));
            }
        }
    } else {
        vec![deepmail_gateway::pipe_message(
            args.from.as_deref().unwrap_or_default(),
            &args.recipients,
            &input,
        )]
    };
    if messages.is_empty() {
        eprintln!("deepmail submit: no message on stdin");
        return Ok(ExitCode::from(sysexits::DATAERR));
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let report = match deepmail_gateway::submit(
        &stages.host,
        config,
        stages.codec()?,
        messages,
        args.bsmtp,
        &format!("submit user={user}"),
    ) {
        Ok(r) => r,
        Err(e @ (SubmitError::NoSmtpSection | SubmitError::Policy(_))) => {
            eprintln!("deepmail submit: {}: {e}", args.config.display());
            return Ok(ExitCode::from(sysexits::CONFIG));
        }
        Err(e) => return Err(e.into()),
    };
    for (n, m) in report.messages.iter().enumerate() {
        for (r, reply) in &m.refused {
            eprintln!("deepmail submit: message {}: <{r}> refused: {reply}", n + 1);
        }
    }
    if report.nothing_queued {
        eprintln!("deepmail submit: nothing queued; try the whole input again later");
        return Ok(ExitCode::from(sysexits::TEMPFAIL));
    }
    for (n, m) in report.messages.iter().enumerate() {
        match &m.queued {
            Some(reply) if reply.is_positive() => println!("message {}: {reply}", n + 1),
            Some(reply) => {
                eprintln!("deepmail submit: message {}: {reply}", n + 1);
                return Ok(ExitCode::from(sysexits::for_reply(reply)));
            }
            None => {}
        }
        match m.dsn_queued {
            Some(true) => println!(
                "message {}: {} recipient(s) refused; DSN queued to <{}>",
                n + 1,
                m.refused.len(),
                m.sender
            ),
            Some(false) => println!(
                "message {}: {} recipient(s) refused; no DSN (null sender: kept as a dead letter; or NOTIFY declined it)",
                n + 1,
                m.refused.len()
            ),
            None => {}
        }
    }
    // A single message answers with its exit code, as sendmail does; in a
    // batch the refusals became DSNs.
    Ok(ExitCode::from(if args.bsmtp {
        0
    } else {
        report.refusals_exit()
    }))
}
