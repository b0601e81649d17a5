//! `bench`: measurements a user can repeat on their own machine.
//! `bench gateway` pushes messages through an Earth and a Moon gateway in
//! this process (SMTP in, queue, Batch SMTP over HTTPS on loopback, spool,
//! SMTP out to an embedded sink) and reports messages per second at each
//! stage and the process's peak memory.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use deepmail_gateway::{RunningGateway, TestPki};
use serde_json::json;

use crate::harness::{smtp_load, start_sink, status_kib, write_config};
use crate::{BenchError, Outcome, Stages};

/// `deepmail bench`: which benchmark, and its options.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Messages per second SMTP-in (Earth) to spool (Moon) to SMTP-out, and peak memory.
    Gateway(GatewayBenchArgs),
    /// Fragmenter implementations compared: native deepmail-bundle against the
    /// fragmenter plugin in use, over ADU sizes × MTUs × CRC types (table, JSON, SVG).
    Fragment(crate::fragment::FragmentBenchArgs),
    /// The latency table: one message by SMTP, HTTPS, HTTP/3 and BP over an
    /// emulated link, accepted on Earth to spooled on the Moon, in OWLT.
    Link(crate::link::LinkBenchArgs),
    /// What a long queue costs: start time, idle CPU, SMTP accept rate and
    /// CPU per message with 0 to 200,000 messages queued behind a route
    /// that is down.
    Queue(crate::queue::QueueBenchArgs),
    /// Bytes on the link per message byte with `compress = "gzip"`, on
    /// CPython's email test messages, attachments and generated mail.
    Compress(crate::compress::CompressBenchArgs),
    /// The Mars-month benchmark: two gateways across the link emulator
    /// playing a contact plan (windows a sol, light time, a conjunction
    /// blackout), mail arriving all the time; with the plan and without
    /// (baseline), time and volume scaled (table, JSON, SVG).
    Contact(crate::contact::ContactBenchArgs),
}

#[derive(Args)]
struct GatewayBenchArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// SMTP connections sending at once (each reused for its share).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Size of each message body, KiB.
    #[arg(long, default_value_t = 4)]
    size_kib: usize,
    /// Most messages per Batch SMTP object.
    #[arg(long, default_value_t = 50)]
    batch_max: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark `args` names, printing its report.
pub fn run(stages: &Stages, args: BenchArgs) -> Result<Outcome, BenchError> {
    match args.what {
        BenchWhat::Gateway(a) => gateway(stages, a),
        BenchWhat::Fragment(a) => crate::fragment::run(stages, a),
        BenchWhat::Link(a) => crate::link::run(stages, a),
        BenchWhat::Queue(a) => crate::queue::run(stages, a),
        BenchWhat::Compress(a) => crate::compress::run(stages, a),
        BenchWhat::Contact(a) => crate::contact::run(stages, a),
    }
}

fn gateway(stages: &Stages, args: GatewayBenchArgs) -> Result<Outcome, BenchError> {
    if args.messages == 0 || args.connections == 0 {
        return Err(BenchError::BadArgument(
            "--messages and --connections must be at least 1".into(),
        ));
    }
    let (dir, runtime) = crate::harness::workspace("bench", true)?;
    let host = stages.host.clone();
    let result = runtime.block_on(async {
        let pki = TestPki::generate(&["localhost".into()], "bench")?;
        let certs = dir.join("certs");
        pki.write_to(&certs).map_err(BenchError::io("writing", &certs))?;
        let (sink, sink_addr, stop_sink) = start_sink("mta.moon.example").await?;
        let moon = RunningGateway::start(
            write_config(
                &dir.join("moon.toml"),
                &format!(
                    "name = \"gw.moon.example\"\nspool = \"moon\"\n[receive]\nhttps-listen = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n[relay]\nsmtp = \"{sink_addr}\"\ndomains = [\"moon.example\"]\n"
                ),
            )?,
            host.clone(),
        )
        .await?;
        let moon_port = moon
            .https_addr
            .ok_or(BenchError::NoAddress("no Moon HTTPS address"))?
            .port();
        let earth = RunningGateway::start(
            write_config(
                &dir.join("earth.toml"),
                &format!(
                    "name = \"gw.earth.example\"\nspool = \"earth\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nrelay-domains = [\"moon.example\"]\nmax-connections = {}\n[delivery]\nbatch-max-messages = {}\nretry-initial-secs = 0.5\n[[route]]\ndomain = \"moon.example\"\nuri = \"https://localhost:{moon_port}/inboundmail\"\nca = \"certs/ca.pem\"\n",
                    args.connections + 4,
                    args.batch_max
                ),
            )?,
            host,
        )
        .await?;
        let earth_smtp = earth
            .smtp_addr
            .ok_or(BenchError::NoAddress("no Earth SMTP address"))?;
        let started = Instant::now();
        smtp_load(earth_smtp, args.messages, args.connections, args.size_kib, "moon.example").await?;
        let accepted = started.elapsed();
        let n = args.messages as u64;
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut spooled = None;
        loop {
            if spooled.is_none() && moon.metrics.messages_received.load(Ordering::Relaxed) >= n {
                spooled = Some(started.elapsed());
            }
            if spooled.is_some() && sink.received.lock().unwrap_or_else(|e| e.into_inner()).len() as u64 >= n {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::CheckFailed(
                    "not all messages arrived within 300 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let relayed = started.elapsed();
        let spooled = spooled.unwrap_or(relayed);
        let batches = earth.metrics.batches_sent.load(Ordering::Relaxed);
        earth.shutdown(Duration::from_secs(5)).await;
        moon.shutdown(Duration::from_secs(5)).await;
        let _ = stop_sink.send(true);
        Ok::<_, BenchError>((accepted, spooled, relayed, batches))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (accepted, spooled, relayed, batches) = result?;
    let rate = |d: Duration| args.messages as f64 / d.as_secs_f64();
    let peak = status_kib("VmHWM:");
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "messages": args.messages, "connections": args.connections, "size_kib": args.size_kib,
                "batch_max": args.batch_max, "batches": batches,
                "smtp_accepted_s": accepted.as_secs_f64(), "moon_spooled_s": spooled.as_secs_f64(), "moon_mta_s": relayed.as_secs_f64(),
                "smtp_in_per_s": rate(accepted), "to_moon_spool_per_s": rate(spooled), "to_moon_mta_per_s": rate(relayed),
                "peak_rss_kib": peak,
            }))?
        );
    } else {
        println!(
            "{} messages of {} KiB over {} SMTP connections, batches of up to {} ({} batches sent)",
            args.messages, args.size_kib, args.connections, args.batch_max, batches
        );
        println!("  {:<44} {:>9} {:>10}", "stage", "seconds", "msg/s");
        println!(
            "  {:<44} {:>9.2} {:>10.0}",
            "SMTP in on Earth (250 after fsync)",
            accepted.as_secs_f64(),
            rate(accepted)
        );
        println!(
            "  {:<44} {:>9.2} {:>10.0}",
            "spooled on the Moon (HTTPS, decode, fsync)",
            spooled.as_secs_f64(),
            rate(spooled)
        );
        println!(
            "  {:<44} {:>9.2} {:>10.0}",
            "accepted by the Moon MTA (SMTP relay)",
            relayed.as_secs_f64(),
            rate(relayed)
        );
        if let Some(kib) = peak {
            println!(
                "  peak memory of this process (both gateways, sender, sink): {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
    }
    Ok(Outcome::Passed)
}
