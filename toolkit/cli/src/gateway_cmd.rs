//! `gateway`, `queue` and `submit`: run a gateway from its TOML file, look
//! at and act on its outbound queue, and hand it mail from an MTA's pipe
//! transport (sendmail-style exit codes).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use deepmail_gateway::GatewayPolicy;
use deepmail_gateway::Queue;
use deepmail_gateway::SubmitError;
use deepmail_gateway::{GatewayConfig, RunningGateway};
use deepmail_host::types::{DecodeMode, DecodeOptions};
use serde_json::json;

use deepmail_bench::logging::{init_logging, LogFormat};
use deepmail_bench::Stages;

/// sysexits(3), what MTAs' pipe transports understand.
mod sysexits {
    pub(super) const DATAERR: u8 = 65;
    pub(super) const NOUSER: u8 = 67;
    pub(super) const TEMPFAIL: u8 = 75;
    pub(super) const NOPERM: u8 = 77;
    pub(super) const CONFIG: u8 = 78;
}

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

/// A host whose plugin calls may take a whole delivery.
fn gateway_host(stages: &Stages, config: &GatewayConfig) -> anyhow::Result<deepmail_host::Host> {
    let needed = config.delivery.timeout + Duration::from_secs(10);
    if stages.host.config().call_timeout >= needed {
        return Ok(stages.host.clone());
    }
    let host_config = deepmail_host::HostConfig {
        call_timeout: needed,
        ..stages.host.config().clone()
    };
    deepmail_host::Host::new(host_config).context("starting the WebAssembly host")
}

pub(crate) fn run_gateway(stages: &Stages, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format, &args.log_level)?;
    let mut config = GatewayConfig::load(&args.config)?;
    stages.apply_to(&mut config.stages);
    let host = gateway_host(stages, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if args.check {
            deepmail_gateway::load_tls_files(&config)?;
            let stages = deepmail_gateway::GatewayStages::load(host.clone(), &config)?;
            let policy = GatewayPolicy::load(&host, &config)?;
            println!(
                "{}: ok (codec {}, resolver {}, policy {})",
                args.config.display(),
                stages.codec.info().source,
                stages
                    .resolver
                    .as_ref()
                    .map(|r| r.info().source.clone())
                    .unwrap_or_else(|| "not needed".into()),
                if policy.is_some() { "loaded" } else { "none" }
            );
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

/// Per destination: what is queued and, for routes with a contact plan,
/// the next window and what is expected to leave in it (oldest first, as
/// much as the window carries).
fn destination_rows(
    config: &GatewayConfig,
    snapshot: &deepmail_gateway::Snapshot,
    now: u64,
) -> Vec<serde_json::Value> {
    let mut by_dest: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for e in snapshot.entries.values() {
        by_dest
            .entry(e.destination.to_string())
            .or_default()
            .push((e.received_ms, e.bytes));
    }
    let at = |ms: u64| {
        deepmail_link::contact_plan::civil::rfc3339(
            std::time::UNIX_EPOCH + Duration::from_millis(ms),
        )
    };
    by_dest
        .into_iter()
        .map(|(dest, mut msgs)| {
            msgs.sort_unstable();
            let bytes: u64 = msgs.iter().map(|m| m.1).sum();
            let mut row = json!({"destination": dest, "messages": msgs.len(), "bytes": bytes});
            let window = config
                .route_for(&dest)
                .and_then(|r| r.plan.as_ref())
                .and_then(|p| p.link.next(now).map(|w| (p, w)));
            if let Some((plan, w)) = window {
                let mut room = w.bytes_left(now.max(w.start_ms).saturating_add(w.owlt_ms));
                let (mut n, mut b) = (0u64, 0u64);
                for (_, size) in &msgs {
                    if *size > room {
                        break;
                    }
                    room -= size;
                    n += 1;
                    b += size;
                }
                row["next_window"] = json!({
                    "plan": plan.source, "from_node": plan.nodes.0, "to_node": plan.nodes.1,
                    "opens": at(w.start_ms), "closes": at(w.end_ms), "open_now": w.start_ms <= now,
                    "opens_in_secs": w.start_ms.saturating_sub(now) / 1000,
                    "rate_bytes_per_sec": w.rate, "owlt_ms": w.owlt_ms,
                });
                row["expected_to_leave"] = json!({"messages": n, "bytes": b});
            }
            row
        })
        .collect()
}

pub(crate) fn run_queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let config = GatewayConfig::load(&args.config)?;
    let queue = Queue::open(&config.spool, false)?;
    let snapshot = queue.snapshot()?;
    let quarantined = queue.quarantined();
    let batch_of = |id: &str| {
        snapshot
            .batches
            .iter()
            .find(|b| b.members.iter().any(|m| m == id))
    };
    match args.action {
        QueueAction::List { json } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let rows: Vec<_> = snapshot
                .entries
                .values()
                .map(|e| {
                    let b = batch_of(&e.id);
                    json!({
                        "id": e.id,
                        "destination": e.destination.to_string(),
                        "from": e.envelope.reverse_path,
                        "to": e.envelope.forward_paths.iter().map(|f| f.mailbox.clone()).collect::<Vec<_>>(),
                        "bytes": e.bytes,
                        "age_secs": now.saturating_sub(e.received_ms) / 1000,
                        "message_id": e.message_id,
                        "batch": b.map(|b| b.id.clone()),
                        "attempts": b.map(|b| b.attempts).unwrap_or(0),
                        "next_attempt_in_secs": b.map(|b| b.next_attempt_ms.saturating_sub(now) / 1000).unwrap_or(0),
                        "last_error": b.and_then(|b| b.last_error.clone()),
                    })
                })
                .collect();
            let destinations = destination_rows(&config, &snapshot, now);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"spool": config.spool, "messages": rows, "destinations": destinations, "damaged": snapshot.damaged,
                                "quarantined": quarantined.iter().map(|(p, r)| json!({"path": p, "reason": r})).collect::<Vec<_>>()})
                    )?
                );
            } else if rows.is_empty() {
                println!("queue of {} is empty", config.name);
            } else {
                println!(
                    "{:<44} {:<16} {:>9} {:>6} {:>4}  from -> to / last error",
                    "id", "destination", "bytes", "age s", "try"
                );
                for r in &rows {
                    println!(
                        "{:<44} {:<16} {:>9} {:>6} {:>4}  {} -> {}",
                        r["id"].as_str().unwrap_or(""),
                        r["destination"].as_str().unwrap_or(""),
                        // (A JSON value's Display ignores width: numbers.)
                        r["bytes"].as_u64().unwrap_or(0),
                        r["age_secs"].as_u64().unwrap_or(0),
                        r["attempts"].as_u64().unwrap_or(0),
                        r["from"].as_str().filter(|f| !f.is_empty()).unwrap_or("<>"),
                        r["to"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default(),
                    );
                    if let Some(err) = r["last_error"].as_str() {
                        println!("{:>44}   last error: {err}", "");
                    }
                }
                println!("{} message(s)", rows.len());
                for d in &destinations {
                    let Some(w) = d.get("next_window") else {
                        continue;
                    };
                    println!(
                        "{}: {} queued ({} bytes); next window {} to {} ({}), {} B/s: {} message(s), {} bytes expected to leave in it",
                        d["destination"].as_str().unwrap_or(""),
                        d["messages"],
                        d["bytes"],
                        w["opens"].as_str().unwrap_or(""),
                        w["closes"].as_str().unwrap_or(""),
                        if w["open_now"].as_bool() == Some(true) {
                            "open now".to_string()
                        } else {
                            format!("in {} s", w["opens_in_secs"])
                        },
                        w["rate_bytes_per_sec"],
                        d["expected_to_leave"]["messages"],
                        d["expected_to_leave"]["bytes"],
                    );
                }
            }
            for d in &snapshot.damaged {
                eprintln!("deepmail: damaged queue entry: {d}");
            }
            if !json && !quarantined.is_empty() {
                println!(
                    "\n{} damaged record(s) moved aside into {} (not sent; kept for you):",
                    quarantined.len(),
                    config.spool.join("quarantine").display()
                );
                for (path, reason) in &quarantined {
                    println!("  {}: {reason}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueAction::Retry { ids, all } => {
            if ids.is_empty() && !all {
                anyhow::bail!("name queue ids to retry, or give --all");
            }
            let mut touched = 0;
            for mut b in snapshot.batches.clone() {
                if all || b.members.iter().any(|m| ids.contains(m)) {
                    b.next_attempt_ms = 0;
                    queue.save_batch(&b)?;
                    touched += b.members.len();
                }
            }
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

/// Exit code for an SMTP refusal.
fn exit_for(reply: &deepmail_smtp::Reply) -> u8 {
    match reply.enhanced.as_deref() {
        _ if reply.is_transient() => sysexits::TEMPFAIL,
        Some(e) if e.starts_with("5.1.") => sysexits::NOUSER,
        Some(e) if e.starts_with("5.7.") => sysexits::NOPERM,
        _ => sysexits::DATAERR,
    }
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
        vec![(
            deepmail_smtp::Envelope {
                reverse_path: strip_brackets(args.from.as_deref().unwrap_or_default()),
                mail_params: Vec::new(),
                recipients: args
                    .recipients
                    .iter()
                    .map(|r| deepmail_smtp::Recipient {
                        mailbox: strip_brackets(r),
                        params: Vec::new(),
                    })
                    .collect(),
            },
            // Pipe input may have LF line ends: SMTP content is CRLF.
            deepmail_bench::mail::crlf(&input),
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
    let mut worst = 0u8;
    for (n, m) in report.messages.iter().enumerate() {
        for (r, reply) in &m.refused {
            eprintln!("deepmail submit: message {}: <{r}> refused: {reply}", n + 1);
            worst = worst.max(exit_for(reply));
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
                return Ok(ExitCode::from(exit_for(reply)));
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
    if args.bsmtp {
        worst = 0;
    }
    Ok(ExitCode::from(worst))
}

/// `<a@b>` or `a@b` as `a@b`.
fn strip_brackets(path: &str) -> String {
    path.trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}
