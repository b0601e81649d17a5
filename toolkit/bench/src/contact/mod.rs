//! `bench contact`: the Mars-month benchmark. Two gateways (Earth, SMTP in;
//! Mars, BP in and SMTP out to its MTA) across the link emulator playing a
//! contact plan: windows a sol at the link's rate, the light time each
//! way, and a blackout for solar conjunction. Mail with a realistic mix of
//! sizes and priorities arrives on Earth all the time. The same load runs
//! against the Earth gateway with the plan (`plan`) and without it
//! (`baseline`: retry with backoff and a 5-day age limit, as before
//! contact plans), and the report compares them.
//!
//! Time is scaled: `--scale N` plays a real second in 1/N s (gateway
//! timers in the configuration alike). So that the loopback can keep up,
//! the traffic is scaled too: `--volume-scale V` sends 1/V of the real
//! number of messages (each of real size) over a link of 1/V the real
//! rate, so queues, utilisation and delays keep their real proportions.
//! What is not scaled is the software's reaction: the delay from a
//! window's opening to the first byte is reported in wall-clock ms.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use deepmail_gateway::RunningGateway;
use deepmail_link::contact_plan::{self, ContactPlan};
use deepmail_link::{DownMode, Link, LinkConfig, Schedule};
use deepmail_smtp::{Envelope, Param, Recipient};
use serde_json::json;

use crate::harness::{start_sink, status_kib, unix_ms, warm_plugins, write_config, Sink};
use crate::{BenchError, Outcome, Stages};

mod load;
mod report;
mod svg;

use load::*;
use report::*;
use svg::*;

/// A Mars solar day, seconds.
const SOL: f64 = 88_775.244;

/// Which Earth gateway a run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(crate) enum RunKind {
    /// The route carries the contact plan.
    Plan,
    /// No plan: retries with backoff (capped at an hour) and a 5-day age limit.
    Baseline,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Plan => "plan",
            RunKind::Baseline => "baseline",
        }
    }
}

/// `bench contact`: the month, the link, the load, the outputs.
#[derive(Args)]
pub(crate) struct ContactBenchArgs {
    /// Sols (Mars days of 88,775 s) during which mail arrives.
    #[arg(long, default_value_t = 30.0)]
    sols: f64,
    /// Play the month N times faster than real time (gateway timers alike).
    #[arg(long, value_name = "N", default_value_t = 14_400.0)]
    scale: f64,
    /// Send 1/V of the real number of messages over a link of 1/V the real
    /// rate (each message keeps its real size).
    #[arg(long, value_name = "V", default_value_t = 1_000.0)]
    volume_scale: f64,
    /// The link's rate in a window, bits per second (real).
    #[arg(long, value_name = "BITS", default_value_t = 2_000_000)]
    rate_bps: u64,
    /// Contact windows per sol, evenly spaced.
    #[arg(long, default_value_t = 2)]
    windows_per_sol: u32,
    /// Length of a window, hours.
    #[arg(long, default_value_t = 8.0)]
    window_hours: f64,
    /// One-way light time, seconds (Mars: 180 to 1,340).
    #[arg(long, value_name = "SECS", default_value_t = 750.0)]
    owlt_secs: f64,
    /// Sol at which the conjunction blackout begins.
    #[arg(long, default_value_t = 10.0)]
    blackout_start: f64,
    /// Length of the blackout, sols (0: none).
    #[arg(long, default_value_t = 14.0)]
    blackout_sols: f64,
    /// Offered load: message bytes as a fraction of what the windows during
    /// the arrival sols carry.
    #[arg(long, default_value_t = 0.3)]
    load: f64,
    /// Sols after the last arrival that the queue may take to drain.
    #[arg(long, default_value_t = 8.0)]
    drain_sols: f64,
    /// Runs, in order: plan, baseline, or both (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "plan,baseline")]
    runs: Vec<RunKind>,
    /// Seed of the message load (arrivals, sizes, priorities, contents).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write a chart (SVG) to FILE: queue length and delivered messages
    /// over the month, one line per run, windows and blackout shaded.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// Write every sample as CSV to FILE: run, real seconds, bytes handed
    /// to the link, bytes delivered across it, messages queued, bytes
    /// waiting, messages delivered.
    #[arg(long, value_name = "FILE")]
    samples: Option<std::path::PathBuf>,
    /// The gateways' logs on stderr at this level (error, warn, info,
    /// debug); none by default.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

/// One sample of the run, every few ms of wall-clock time.
#[derive(Clone, Copy)]
struct Sample {
    /// Real seconds from the start.
    t: f64,
    /// Bytes Earth handed to the link so far (before its rate and delay).
    bytes_in: u64,
    /// Bytes the link delivered to Mars so far.
    bytes_out: u64,
    /// Messages in the Earth gateway's queue.
    queued: u64,
    /// Bytes of them not on their way (waiting for a window or a slot).
    waiting: u64,
    /// Messages delivered to the Mars MTA so far.
    delivered: u64,
}

/// What one run measured.
struct RunResult {
    kind: RunKind,
    sent: usize,
    delivered: usize,
    duplicates: usize,
    expired: usize,
    bounced: usize,
    still_queued: u64,
    lost: usize,
    delay_warnings: usize,
    /// Real seconds from accepted on Earth to delivered on Mars, per id.
    delays: HashMap<usize, f64>,
    /// Message bytes delivered.
    message_bytes: u64,
    link_bytes: u64,
    utilisation: Option<f64>,
    /// Wall-clock ms from each window's opening to Earth's first bytes,
    /// for windows that opened with mail queued.
    first_byte_ms: Vec<f64>,
    peak_queue: u64,
    /// Earth's delivery attempts that failed (to be retried), and BP
    /// batches cut by a window's end or a broken session.
    attempts_failed: u64,
    cut: u64,
    peak_rss_kib: Option<u64>,
    samples: Vec<Sample>,
    wall: Duration,
}

pub(crate) fn run(stages: &Stages, args: ContactBenchArgs) -> Result<Outcome, BenchError> {
    let scenario = Scenario::new(&args)?;
    if let Some(level) = &args.log_level {
        crate::logging::init_logging(crate::logging::LogFormat::Text, level)?;
    }
    if args.runs.is_empty() {
        return Err(BenchError::BadArgument(
            "--runs names no run; give plan, baseline or both".into(),
        ));
    }
    let load = plan_load(&scenario, args.load, args.seed);
    let (dir, runtime) = crate::harness::workspace("bench-contact", false)?;
    let mut results = Vec::new();
    for kind in &args.runs {
        eprintln!(
            "bench contact: {} run, {} messages over {} sols ({:.0} s of wall-clock time)...",
            kind.name(),
            load.len(),
            args.sols,
            scenario.arrivals_end / scenario.scale
        );
        let r = runtime.block_on(measure(
            stages.host.clone(),
            &dir.join(kind.name()),
            &scenario,
            &load,
            *kind,
            args.seed,
        ));
        results.push(r?);
    }
    // The spools stay behind for inspection; the disk note in the README
    // says why they are not deleted between runs.
    eprintln!("bench contact: spools in {}", dir.display());
    report(&args, &scenario, &load, &results)?;
    Ok(Outcome::Passed)
}

/// The Earth gateway's configuration: with or without the plan, every
/// timer scaled.
fn earth_toml(
    s: &Scenario,
    kind: RunKind,
    earth_mta: std::net::SocketAddr,
    tcpcl: std::net::SocketAddr,
    plan: &str,
) -> String {
    let hours = |h: f64| h / s.scale;
    let mut route = format!(
        "[[route]]\ndomain = \"mars.example\"\ntransport = \"bp\"\ntcpcl = \"{tcpcl}\"\ndestination = \"ipn:2.25\"\nmtu = 65536\ncompress = \"gzip\"\nmax-age-hours = {}\n",
        hours(120.0)
    );
    if kind == RunKind::Plan {
        route.push_str(&format!(
            "max-age-cap-days = {}\nplan-from-node = 1\nplan-to-node = 2\ncontacts = \"\"\"\n{plan}\"\"\"\n",
            60.0 / s.scale
        ));
    }
    format!(
        "name = \"gw.earth.example\"\nspool = \"earth\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nrelay-domains = [\"mars.example\"]\n[relay]\nsmtp = \"{earth_mta}\"\ndomains = [\"earth.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = {}\nretry-max-secs = {}\ntimeout-secs = 10\ndelay-warning-hours = {}\nbatch-max-mib = 1\n{route}",
        (60.0 / s.scale).max(0.01),
        3600.0 / s.scale,
        hours(24.0)
    )
}

async fn measure(
    host: deepmail_host::Host,
    dir: &Path,
    s: &Scenario,
    load: &[Planned],
    kind: RunKind,
    seed: u64,
) -> Result<RunResult, BenchError> {
    if dir.exists() {
        // Keep an earlier run's spool (deleting a big one slows the disk).
        let aside = dir.with_extension(format!("old-{}", unix_ms()));
        std::fs::rename(dir, &aside).map_err(BenchError::io("moving aside", dir))?;
    }
    std::fs::create_dir_all(dir).map_err(BenchError::io("creating", dir))?;
    warm_plugins(&host, &["tcpcl-sender"]).await?;
    // Peak RSS per run (Linux: writing 5 resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (mars_mta, mars_mta_addr, stop_mars) = start_sink("mta.mars.example").await?;
    let (earth_mta, earth_mta_addr, stop_earth) = start_sink("mta.earth.example").await?;
    let mars = RunningGateway::start(
        write_config(
            &dir.join("mars.toml"),
            &format!(
                "name = \"gw.mars.example\"\nspool = \"mars\"\n[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:0\"\nendpoints = [\"ipn:2.25\"]\n[relay]\nsmtp = \"{mars_mta_addr}\"\ndomains = [\"mars.example\"]\n"
            ),
        )?,
        host.clone(),
    )
    .await?;
    let tcpcl = mars
        .tcpcl_addr
        .ok_or(BenchError::NoAddress("no TCPCL address on Mars"))?;

    // The plan starts on a whole second a little ahead: the gateway reads
    // it with that `@` reference, the emulator gets the same windows
    // relative to its own start.
    let start_unix = (unix_ms() / 1000 + 3) * 1000;
    let plan_text = s.plan_text(start_unix);
    let plan = ContactPlan::parse(&plan_text, 0).map_err(BenchError::Plan)?;
    let mut schedule = Schedule::from_plan(&plan, 1, 2, DownMode::Hold);
    let link_unix = unix_ms();
    let shift = |l: &contact_plan::Link| {
        contact_plan::Link::new(
            l.windows()
                .iter()
                .map(|w| {
                    let mut w = *w;
                    w.start_ms -= link_unix;
                    w.end_ms -= link_unix;
                    w
                })
                .collect(),
        )
    };
    schedule.up = shift(&schedule.up);
    schedule.down = shift(&schedule.down);
    let link = Arc::new(
        Link::start(LinkConfig {
            schedule: Some(schedule),
            ..LinkConfig::with_delay(s.wall(s.owlt)).tcp(([127, 0, 0, 1], 0).into(), tcpcl)
        })
        .await
        .map_err(BenchError::Link)?,
    );
    let link_start = Instant::now();
    let across = link.tcp_listen_addrs()[0];
    let earth = RunningGateway::start(
        write_config(
            &dir.join("earth.toml"),
            &earth_toml(s, kind, earth_mta_addr, across, &plan_text),
        )?,
        host.clone(),
    )
    .await?;
    let smtp = earth
        .smtp_addr
        .ok_or(BenchError::NoAddress("no SMTP address on Earth"))?;
    // Real time 0: the plan's reference.
    let t0 = link_start + Duration::from_millis(start_unix.saturating_sub(link_unix));
    tokio::time::sleep_until(t0.into()).await;
    let wall_start = Instant::now();

    // The sampler.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let samples = samples.clone();
        let metrics = earth.metrics.clone();
        let mars_mta = mars_mta.clone();
        let link = link.clone();
        let scale = s.scale;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let up = link
                    .counters()
                    .relays
                    .first()
                    .map(|r| r.up)
                    .unwrap_or_default();
                let m = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let queued = m(&metrics.queue_messages);
                let waiting = m(&metrics.queue_bytes_waiting);
                let delivered = mars_mta
                    .received
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len() as u64;
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample {
                        t: t0.elapsed().as_secs_f64() * scale,
                        bytes_in: up.bytes_in,
                        bytes_out: up.bytes_out,
                        queued,
                        waiting,
                        delivered,
                    });
            }
        })
    };

    // The load, each message at its time.
    let mut accepted: HashMap<usize, Instant> = HashMap::new();
    let mut refused = 0usize;
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    for p in load {
        tokio::time::sleep_until((t0 + s.wall(p.at)).into()).await;
        let body = content(p, seed);
        let envelope = Envelope {
            reverse_path: "crew-ops@earth.example".into(),
            mail_params: vec![Param {
                keyword: "MT-PRIORITY".into(),
                value: Some(PRIORITIES[p.priority].1.to_string()),
            }],
            recipients: vec![Recipient {
                mailbox: "ada@mars.example".into(),
                params: vec![],
            }],
        };
        let config = deepmail_smtp::client::RelayConfig::new("mta.earth.example");
        let d = deepmail_smtp::client::relay(smtp, &config, &envelope, &body).await;
        match d {
            Ok(d) if d.all_accepted() => {
                accepted.insert(p.id, Instant::now());
                sizes.insert(p.id, body.len() as u64);
            }
            Ok(d) => {
                refused += 1;
                eprintln!(
                    "bench contact: message {} refused: {:?}",
                    p.id, d.data_reply
                );
            }
            Err(e) => {
                refused += 1;
                eprintln!("bench contact: message {} not sent: {e}", p.id);
            }
        }
    }

    // Until every message is delivered or returned, or the drain is over.
    let deadline = t0 + s.wall(s.end);
    let settled = |mars_mta: &Sink, earth_mta: &Sink| {
        let delivered: HashSet<usize> = mars_mta
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(_, c, _)| bench_id(c))
            .collect();
        let (expired, bounced) = returns(earth_mta);
        let returned = expired
            .union(&bounced)
            .filter(|id| !delivered.contains(id))
            .count();
        delivered.len() + returned >= accepted.len()
    };
    while Instant::now() < deadline && !settled(&mars_mta, &earth_mta) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A last look a light time later (acknowledgements on their way).
    tokio::time::sleep(s.wall(s.owlt) * 2 + Duration::from_millis(200)).await;
    let wall = wall_start.elapsed();
    let _ = stop_tx.send(true);
    let _ = sampler.await;
    let peak_rss_kib = status_kib("VmHWM:");
    let m = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let still_queued = m(&earth.metrics.queue_messages);
    let delay_warnings = m(&earth.metrics.delay_warnings) as usize;
    let attempts_failed = m(&earth.metrics.batch_attempts_failed);
    let cut = m(&earth.metrics.bp_batches_cut);
    earth.shutdown(Duration::from_secs(5)).await;
    mars.shutdown(Duration::from_secs(5)).await;
    let link_bytes = link.counters().relays.first().map_or(0, |r| r.up.bytes_out);
    link.stop();
    let _ = stop_mars.send(true);
    let _ = stop_earth.send(true);

    let mut delays = HashMap::new();
    let mut duplicates = 0;
    let mut message_bytes = 0;
    for (_, c, at) in mars_mta
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let Some(id) = bench_id(c) else { continue };
        let Some(sent) = accepted.get(&id) else {
            continue;
        };
        if delays.contains_key(&id) {
            duplicates += 1;
            continue;
        }
        message_bytes += sizes.get(&id).copied().unwrap_or(0);
        delays.insert(
            id,
            at.saturating_duration_since(*sent).as_secs_f64() * s.scale,
        );
    }
    let (expired, bounced) = returns(&earth_mta);
    let expired: HashSet<usize> = expired
        .difference(&delays.keys().copied().collect())
        .copied()
        .collect();
    let bounced: HashSet<usize> = bounced
        .difference(&delays.keys().copied().collect())
        .copied()
        .collect();
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let accounted = delays.len() + expired.len() + bounced.len();
    let lost = accepted
        .len()
        .saturating_sub(accounted + still_queued as usize);
    Ok(RunResult {
        kind,
        sent: accepted.len(),
        delivered: delays.len(),
        duplicates,
        expired: expired.len(),
        bounced: bounced.len() + refused,
        still_queued,
        lost,
        delay_warnings,
        delays,
        message_bytes,
        link_bytes,
        utilisation: utilisation(s, &samples),
        first_byte_ms: first_bytes(s, &samples),
        peak_queue: samples.iter().map(|x| x.queued).max().unwrap_or(0),
        attempts_failed,
        cut,
        peak_rss_kib,
        samples,
        wall,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ContactBenchArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: ContactBenchArgs,
        }
        let mut argv = vec!["bench"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).a
    }

    #[test]
    fn the_default_month_has_two_windows_a_sol_and_a_blackout() {
        let s = Scenario::new(&args(&[])).unwrap();
        // 38 sols in all (30 + 8 to drain), 14 of them dark.
        assert_eq!(s.windows.len(), 2 * (38 - 14));
        assert!(s
            .windows
            .iter()
            .all(|(o, c)| (c - o - 8.0 * 3600.0).abs() < 1e-6));
        assert!(!s
            .windows
            .iter()
            .any(|(o, c)| *c > s.blackout.0 && *o < s.blackout.1));
        assert!(s.open_at(1.0) && !s.open_at(9.0 * 3600.0) && !s.open_at(12.0 * SOL));
        assert_eq!(s.emulated_rate(), 250_000 * 14_400 / 1_000);
    }

    #[test]
    fn the_plan_text_reads_back_with_the_scaled_windows() {
        let s = Scenario::new(&args(&[])).unwrap();
        let at = 1_800_000_000_000;
        let plan = ContactPlan::parse(&s.plan_text(at), 0).unwrap();
        let up = plan.link(1, 2);
        assert_eq!(up.windows().len(), s.windows.len());
        let w = up.windows()[1];
        assert_eq!(
            w.start_ms,
            at + (s.windows[1].0 / s.scale * 1000.0).round() as u64
        );
        assert_eq!(w.rate, s.emulated_rate());
        assert_eq!(plan.owlt_ms(1, 2, at + 1), Some(52));
        assert_eq!(plan.link(2, 1).windows().len(), s.windows.len());
    }

    #[test]
    fn the_load_offers_what_was_asked() {
        let s = Scenario::new(&args(&[])).unwrap();
        let load = plan_load(&s, 0.3, 1);
        let offered: f64 = load
            .iter()
            .map(|p| p.body as f64 * if CLASSES[p.class].4 { 4.0 / 3.0 } else { 1.0 })
            .sum();
        let ratio = offered / s.capacity_during_arrivals();
        assert!((0.2..0.4).contains(&ratio), "{ratio}");
        assert!(load.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(load, plan_load(&s, 0.3, 1), "the seed decides");
        let p = &load[0];
        let c = content(p, 1);
        assert_eq!(bench_id(&c), Some(p.id));
        assert!(c.len() >= p.body);
    }

    #[test]
    fn nonsense_is_refused_with_the_flag_named() {
        for (flags, what) in [
            (vec!["--scale", "0"], "--scale"),
            (vec!["--window-hours", "20"], "do not fit"),
            (vec!["--load", "2"], "at most 1"),
            (vec!["--volume-scale", "1"], "raise --volume-scale"),
        ] {
            let e = Scenario::new(&args(&flags)).err().unwrap().to_string();
            assert!(e.contains(what), "{flags:?}: {e}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
