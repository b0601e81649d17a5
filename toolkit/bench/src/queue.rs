//! `bench queue`: what a long queue costs the Earth gateway. For each
//! queue length (e.g. 0, 50,000, 100,000, 200,000 messages already queued
//! behind a route that is down, as after a conjunction), in one run:
//! the time to start (the queue index is read from the spool), the CPU an
//! idle gateway uses holding that queue, the SMTP accept rate and CPU per
//! accepted message with that queue, and the process's memory.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use deepmail_gateway::RunningGateway;
use deepmail_gateway::{Destination, QueueEntry};
use deepmail_gateway::{SpooledEnvelope, SpooledRecipient};
use serde_json::json;

use crate::harness::{smtp_load, status_kib, unix_ms, write_config};
use crate::{BenchError, Outcome, Stages};

/// `bench queue`: the queue lengths and the load at each.
#[derive(Args)]
pub(crate) struct QueueBenchArgs {
    /// Queue lengths to measure, comma-separated (messages already queued
    /// before the gateway starts).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0usize, 50_000, 100_000, 200_000])]
    queued: Vec<usize>,
    /// Messages to send by SMTP at each queue length.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// SMTP connections sending at once.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Size of each message body, KiB.
    #[arg(long, default_value_t = 4)]
    size_kib: usize,
    /// Seconds the idle gateway is watched (CPU used holding the queue).
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// CPU time this process has used (user + system), from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Writes `n` queued messages for `mars.example` straight into `spool`
/// (the layout `Queue::enqueue` writes, without its fsyncs: this is setup,
/// not what is measured).
fn prefill(spool: &Path, n: usize, content: &[u8]) -> Result<(), BenchError> {
    let queue = spool.join("queue");
    std::fs::create_dir_all(&queue).map_err(BenchError::io("creating", &queue))?;
    let base = unix_ms();
    for i in 0..n {
        let id = format!("{base:011x}-prefill-{i}");
        let entry = QueueEntry {
            id: id.clone(),
            destination: Destination::Remote("mars.example".into()),
            envelope: SpooledEnvelope {
                reverse_path: "ops@earth.example".into(),
                mail_parameters: vec![],
                forward_paths: vec![SpooledRecipient {
                    mailbox: format!("crew{}@mars.example", i % 7),
                    parameters: vec![],
                }],
            },
            received_ms: base,
            bytes: content.len() as u64,
            origin: "bench prefill".into(),
            message_id: format!("<prefill-{i}@earth.example>"),
        };
        let shard = queue.join(deepmail_gateway::shard_of(&id));
        std::fs::create_dir_all(&shard).map_err(BenchError::io("creating", &shard))?;
        let record = shard.join(format!("{id}.msg"));
        std::fs::write(&record, deepmail_gateway::record_bytes(&entry, content))
            .map_err(BenchError::io("writing", &record))?;
    }
    Ok(())
}

struct Row {
    queued: usize,
    prefill: Duration,
    start: Duration,
    idle_cpu_percent: f64,
    accept: Duration,
    cpu_per_message: Duration,
    rss_kib: u64,
}

pub(crate) fn run(stages: &Stages, args: QueueBenchArgs) -> Result<Outcome, BenchError> {
    if args.messages == 0 || args.connections == 0 || args.queued.is_empty() {
        return Err(BenchError::BadArgument(
            "--messages, --connections and --queued must be given and at least 1".into(),
        ));
    }
    let (root, runtime) = crate::harness::workspace("bench-queue", false)?;
    let body_line = "The quick brown fox jumps over the lazy dog, on Mars. 0123456789\r\n";
    let body: String = body_line.repeat((args.size_kib * 1024).div_ceil(body_line.len()).max(1));
    let mut rows = Vec::new();
    for (run, &queued) in args.queued.iter().enumerate() {
        let dir = root.join(format!("run{run}-{queued}"));
        std::fs::create_dir_all(&dir).map_err(BenchError::io("creating", &dir))?;
        let t = Instant::now();
        let content = format!("Subject: queued\r\n\r\n{body}");
        prefill(&dir.join("spool"), queued, content.as_bytes())?;
        let prefill_time = t.elapsed();
        if !args.json {
            eprintln!(
                "bench queue: {queued} messages queued in {:.1} s; starting the gateway",
                prefill_time.as_secs_f64()
            );
        }
        // Both routes lead nowhere (a closed loopback port): what is
        // accepted stays queued, as behind a conjunction.
        let config = write_config(
            &dir.join("earth.toml"),
            &format!(
                "name = \"gw.earth.example\"\nspool = \"spool\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nrelay-domains = [\"moon.example\", \"mars.example\"]\nmax-connections = {}\n[delivery]\nretry-initial-secs = 3600\nretry-max-secs = 3600\n[[route]]\ndomain = \"mars.example\"\nuri = \"http://127.0.0.1:9/inboundmail\"\nallow-plain-http = true\n[[route]]\ndomain = \"moon.example\"\nuri = \"http://127.0.0.1:9/inboundmail\"\nallow-plain-http = true\n",
                args.connections + 4
            ),
        )?;
        let host = stages.host.clone();
        let row = runtime.block_on(async {
            let t = Instant::now();
            let gateway = RunningGateway::start(config, host).await?;
            let start = t.elapsed();
            let smtp = gateway
                .smtp_addr
                .ok_or(BenchError::NoAddress("no SMTP address"))?;
            // Let the first attempts fail and the routes be held.
            tokio::time::sleep(Duration::from_secs(2)).await;
            // The prefilled spool is what the gateway reads: a layout it
            // did not recognise would measure an empty queue.
            let seen = gateway
                .metrics
                .queue_messages
                .load(std::sync::atomic::Ordering::Relaxed);
            if seen < queued as u64 {
                return Err(BenchError::CheckFailed(format!(
                    "the gateway sees {seen} of the {queued} messages written into its spool"
                )));
            }
            let cpu0 =
                cpu_time().ok_or_else(|| BenchError::CheckFailed("no /proc/self/stat".into()))?;
            let t = Instant::now();
            tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
            let idle =
                (cpu_time().unwrap_or(cpu0) - cpu0).as_secs_f64() / t.elapsed().as_secs_f64();

            let cpu0 = cpu_time().unwrap_or_default();
            let t = Instant::now();
            smtp_load(
                smtp,
                args.messages,
                args.connections,
                args.size_kib,
                "moon.example",
            )
            .await?;
            let accept = t.elapsed();
            let cpu = cpu_time().unwrap_or(cpu0) - cpu0;
            let rss_kib = status_kib("VmRSS:").unwrap_or(0);
            gateway.shutdown(Duration::from_secs(5)).await;
            Ok::<_, BenchError>(Row {
                queued,
                prefill: prefill_time,
                start,
                idle_cpu_percent: idle * 100.0,
                accept,
                cpu_per_message: cpu / args.messages as u32,
                rss_kib,
            })
        })?;
        if !args.json {
            eprintln!(
                "bench queue: {queued} queued: start {:.2} s, idle {:.1}% of a core, {:.0} msg/s accepted",
                row.start.as_secs_f64(),
                row.idle_cpu_percent,
                args.messages as f64 / row.accept.as_secs_f64()
            );
        }
        rows.push(row);
    }
    // Kept, not deleted: removing hundreds of thousands of files takes
    // minutes and slows file creation on some file systems for a while.
    if rows.iter().any(|r| r.queued > 0) {
        eprintln!(
            "bench queue: the spools are kept in {} (remove them when convenient: rm -rf {})",
            root.display(),
            root.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    let rate = |r: &Row| args.messages as f64 / r.accept.as_secs_f64();
    let base = rate(&rows[0]);
    if args.json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "queued": r.queued, "prefill_s": r.prefill.as_secs_f64(), "start_s": r.start.as_secs_f64(),
                    "idle_cpu_percent": r.idle_cpu_percent, "accept_s": r.accept.as_secs_f64(),
                    "accepted_per_s": rate(r), "vs_first": rate(r) / base,
                    "cpu_ms_per_message": r.cpu_per_message.as_secs_f64() * 1000.0, "rss_kib": r.rss_kib,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "messages": args.messages, "connections": args.connections, "size_kib": args.size_kib,
                "idle_secs": args.idle_secs, "runs": out, "peak_rss_kib": status_kib("VmHWM:"),
            }))?
        );
    } else {
        println!(
            "{} messages of {} KiB over {} SMTP connections at each queue length (queued mail behind a route that is down)",
            args.messages, args.size_kib, args.connections
        );
        println!(
            "  {:>9} {:>8} {:>11} {:>9} {:>9} {:>12} {:>9}",
            "queued", "start s", "idle %core", "msg/s", "vs first", "CPU ms/msg", "RSS MiB"
        );
        for r in &rows {
            println!(
                "  {:>9} {:>8.2} {:>11.2} {:>9.0} {:>9.2} {:>12.2} {:>9.1}",
                r.queued,
                r.start.as_secs_f64(),
                r.idle_cpu_percent,
                rate(r),
                rate(r) / base,
                r.cpu_per_message.as_secs_f64() * 1000.0,
                r.rss_kib as f64 / 1024.0
            );
        }
        if let Some(kib) = status_kib("VmHWM:") {
            println!(
                "  peak memory of this process over all runs: {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
    }
    Ok(Outcome::Passed)
}
