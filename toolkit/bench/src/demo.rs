//! `demo`: the whole gateway path on one machine, nothing to install. An
//! Earth gateway and a Moon gateway run in this process on loopback, with
//! generated certificates, a user-space link that delays every byte by the
//! one-way light time, and an embedded SMTP sink standing in for the Moon
//! MTA. A sample message goes in by SMTP on Earth; the demo prints a
//! timeline of each stage and the message as the Moon MTA received it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use deepmail_gateway::{RunningGateway, TestPki};
use deepmail_smtp::{Envelope, Recipient};
use serde_json::json;

use crate::harness::{start_sink, warm_plugins, write_config};
use crate::logging::{init_logging, LogFormat};
use crate::mail::crlf;
use crate::{BenchError, Outcome, Stages};

const SAMPLE: &[u8] = include_bytes!("../samples/moon-hello.eml");

/// `deepmail demo`: the message, the light time, what to print and keep.
#[derive(Args)]
pub struct DemoArgs {
    /// RFC 5322 message to send (default: a built-in sample with 8-bit text,
    /// dot-leading lines and a binary attachment).
    #[arg(value_name = "MESSAGE")]
    input: Option<PathBuf>,
    /// One-way light time of the emulated Earth-Moon link, in milliseconds
    /// (the Moon is 1.28 s away).
    #[arg(long, value_name = "MS", default_value_t = 1280)]
    owlt_ms: u64,
    /// Keep the demo's directory (configs, certificates, spools) and print its path.
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Show the gateways' logs (stderr).
    #[arg(long)]
    verbose: bool,
}

/// Whether `dir` has anything in it (a batch appears there atomically).
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Runs the demo and prints its timeline (or JSON); [`Outcome::Failed`]
/// when the message changed in transit.
pub fn run(stages: &Stages, args: DemoArgs) -> Result<Outcome, BenchError> {
    if args.verbose {
        init_logging(LogFormat::Text, "info")?;
    }
    let message = match &args.input {
        Some(p) => std::fs::read(p).map_err(BenchError::io("reading", p))?,
        None => SAMPLE.to_vec(),
    };
    let content = crlf(&message);
    let (dir, runtime) = crate::harness::workspace("demo", true)?;
    let host = stages.host.clone();
    let result = runtime.block_on(demo(host, &dir, &args, content));
    if args.keep {
        eprintln!("deepmail demo: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn demo(
    host: deepmail_host::Host,
    dir: &Path,
    args: &DemoArgs,
    content: Vec<u8>,
) -> Result<Outcome, BenchError> {
    let owlt = Duration::from_millis(args.owlt_ms);
    let setup = Instant::now();
    let pki = TestPki::generate(
        &["gw.moon.example".into(), "localhost".into()],
        "gw.earth.example",
    )?;
    let certs = dir.join("certs");
    pki.write_to(&certs)
        .map_err(BenchError::io("writing", &certs))?;

    // The Moon MTA (embedded sink).
    let (sink, sink_addr, stop_sink) = start_sink("mta.moon.example").await?;

    // The Moon gateway: HTTPS in, SMTP out to the Moon MTA.
    let moon_config = write_config(
        &dir.join("moon.toml"),
        &format!(
            r#"name = "gw.moon.example"
spool = "spool-moon"
[receive]
https-listen = "127.0.0.1:0"
cert = "certs/server.pem"
key = "certs/server.key"
[relay]
smtp = "{sink_addr}"
domains = ["moon.example"]
"#
        ),
    )?;
    warm_plugins(&host, &["https-sender"]).await?;
    let moon_spool = moon_config.spool.clone();
    let moon = RunningGateway::start(moon_config, host.clone()).await?;
    let moon_https = moon.https_addr.ok_or(BenchError::NoAddress(
        "the Moon gateway has no HTTPS address",
    ))?;

    // The link: every byte waits one OWLT, each way.
    let link = deepmail_link::Link::start(
        deepmail_link::LinkConfig::with_delay(owlt).tcp(([127, 0, 0, 1], 0).into(), moon_https),
    )
    .await
    .map_err(BenchError::Link)?;
    let link_addr = link.tcp_listen_addrs()[0];

    // The Earth gateway: SMTP in, HTTPS across the link.
    let earth_config = write_config(
        &dir.join("earth.toml"),
        &format!(
            r#"name = "gw.earth.example"
spool = "spool-earth"
[smtp]
listen = "127.0.0.1:0"
relay-domains = ["moon.example"]
[delivery]
retry-initial-secs = 1
timeout-secs = {timeout}
[[route]]
domain = "moon.example"
uri = "https://localhost:{link}/inboundmail"
ca = "certs/ca.pem"
"#,
            link = link_addr.port(),
            timeout = 30 + 4 * owlt.as_secs()
        ),
    )?;
    let earth = RunningGateway::start(earth_config, host).await?;
    let earth_smtp = earth.smtp_addr.ok_or(BenchError::NoAddress(
        "the Earth gateway has no SMTP address",
    ))?;
    let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;

    // An Earth MTA hands the message to the Earth gateway by SMTP.
    let envelope = Envelope {
        reverse_path: "ops@earth.example".into(),
        mail_params: Vec::new(),
        recipients: vec![Recipient {
            mailbox: "ada@moon.example".into(),
            params: Vec::new(),
        }],
    };
    let t0 = Instant::now();
    let client_config = deepmail_smtp::client::RelayConfig::new("mta.earth.example");
    let delivery = deepmail_smtp::client::relay(earth_smtp, &client_config, &envelope, &content)
        .await
        .map_err(|source| BenchError::Smtp {
            what: "handing the message to the Earth gateway".into(),
            source,
        })?;
    let accepted_at = t0.elapsed();
    let accepted_reply = delivery
        .data_reply
        .clone()
        .map(|r| r.to_string())
        .unwrap_or_default();
    if !delivery.all_accepted() {
        return Err(BenchError::Refused(format!(
            "the Earth gateway refused the sample: {accepted_reply}"
        )));
    }

    // Watch each stage happen.
    let deadline = t0 + Duration::from_secs(60) + owlt * 6;
    let (mut spooled_at, mut delivered_at, mut acked_at) = (None, None, None);
    loop {
        let now = Instant::now();
        if spooled_at.is_none()
            && (has_entries(&moon_spool.join("incoming"))
                || has_entries(&moon_spool.join("relayed")))
        {
            spooled_at = Some(now - t0);
        }
        if delivered_at.is_none() {
            if let Some((_, _, at)) = sink
                .received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
            {
                delivered_at = Some(*at - t0);
            }
        }
        if acked_at.is_none() && earth.metrics.batches_sent.load(Ordering::Relaxed) > 0 {
            acked_at = Some(now - t0);
        }
        if spooled_at.is_some() && delivered_at.is_some() && acked_at.is_some() {
            break;
        }
        if now > deadline {
            return Err(BenchError::CheckFailed(format!(
                "the message did not make it within {:?}: spooled on the Moon {:?}, delivered {:?}, acknowledged {:?}",
                deadline - t0,
                spooled_at,
                delivered_at,
                acked_at
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Spooling is polled (2 ms), the sink stamps its arrival exactly; the
    // relay reads from the spool, so the spool came first.
    let (spooled_at, delivered_at, acked_at) = (
        spooled_at
            .unwrap_or_default()
            .min(delivered_at.unwrap_or_default()),
        delivered_at.unwrap_or_default(),
        acked_at.unwrap_or_default(),
    );
    let (got_envelope, got, _) = sink
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first()
        .cloned()
        .ok_or_else(|| BenchError::CheckFailed("the sink lost the message".into()))?;
    let intact = got.ends_with(&content);
    let stats = link.counters();
    let link_bytes = stats
        .relay(link_addr)
        .map(|r| (r.up.bytes_out, r.down.bytes_out))
        .unwrap_or_default();
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
    link.stop();
    let _ = stop_sink.send(true);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let owlts = |d: Duration| d.as_secs_f64() / owlt.as_secs_f64().max(1e-9);
    if args.json {
        let doc = json!({
            "owlt_ms": args.owlt_ms,
            "setup_ms": setup_ms,
            "smtp_accepted_ms": ms(accepted_at),
            "moon_spooled_ms": ms(spooled_at),
            "moon_mta_delivered_ms": ms(delivered_at),
            "earth_acknowledged_ms": ms(acked_at),
            "link_bytes": {"earth_to_moon": link_bytes.0, "moon_to_earth": link_bytes.1},
            "envelope": {"from": got_envelope.reverse_path, "to": got_envelope.recipients.iter().map(|r| r.mailbox.clone()).collect::<Vec<_>>()},
            "intact": intact,
            "delivered": String::from_utf8_lossy(&got),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "deepmail demo: Earth -> Moon through two gateways, one-way light time {} ms",
            args.owlt_ms
        );
        println!(
            "  (gateways, certificates, link and Moon MTA started in {setup_ms:.0} ms, in {})",
            dir.display()
        );
        println!();
        println!("  {:>10}  {:>6}  stage", "t (ms)", "OWLT");
        println!(
            "  {:>10.1}  {:>6}  Earth MTA -> Earth gateway: SMTP, policy, queued and fsynced",
            0.0, ""
        );
        println!(
            "  {:>10.1}  {:>6.2}  Earth gateway answered {accepted_reply}",
            ms(accepted_at),
            owlts(accepted_at)
        );
        println!("  {:>10.1}  {:>6.2}  Moon gateway: Batch SMTP received over HTTPS, decoded, spooled (fsync)", ms(spooled_at), owlts(spooled_at));
        println!("  {:>10.1}  {:>6.2}  Moon MTA accepted it by SMTP from the Moon gateway (envelope {} -> {})", ms(delivered_at), owlts(delivered_at), got_envelope.reverse_path, got_envelope.recipients.iter().map(|r| r.mailbox.as_str()).collect::<Vec<_>>().join(", "));
        println!(
            "  {:>10.1}  {:>6.2}  Earth gateway got the 200 back and removed it from its queue",
            ms(acked_at),
            owlts(acked_at)
        );
        println!();
        println!(
            "  link: {} bytes Earth->Moon, {} bytes back (the TLS handshake and the request cross it)",
            link_bytes.0, link_bytes.1
        );
        println!(
            "  content {} ({} bytes)",
            if intact {
                "delivered intact"
            } else {
                "CHANGED IN TRANSIT"
            },
            content.len()
        );
        println!();
        println!("--- the message as the Moon MTA received it ---");
        let text = String::from_utf8_lossy(&got);
        let lines: Vec<&str> = text.lines().collect();
        for line in lines.iter().take(40) {
            println!("{line}");
        }
        if lines.len() > 40 {
            println!("[... {} more lines]", lines.len() - 40);
        }
    }
    Ok(if intact {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
